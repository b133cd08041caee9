/* The public face of the error codes: stable names, messages, exit codes
 * (README.md), the thread's last detail, and the version. */
#include "config.h"

#include "util/result.h"

static const struct {
    const char *name;
    const char *message;
    int exit_code;
} rc_table[P11KMS_RC_COUNT_] = {
    [P11KMS_OK] = {"P11KMS_OK", "success", 0},
    [P11KMS_ERR_INVALID_ARGUMENT] = {"P11KMS_ERR_INVALID_ARGUMENT", "invalid argument", 2},
    [P11KMS_ERR_CONFIG] = {"P11KMS_ERR_CONFIG", "configuration error", 3},
    [P11KMS_ERR_TOKEN] = {"P11KMS_ERR_TOKEN", "token unavailable", 3},
    [P11KMS_ERR_LOGIN] = {"P11KMS_ERR_LOGIN", "token login failed", 3},
    [P11KMS_ERR_MECHANISM] = {"P11KMS_ERR_MECHANISM", "token lacks a required mechanism", 3},
    [P11KMS_ERR_HSM] = {"P11KMS_ERR_HSM", "HSM operation failed", 1},
    [P11KMS_ERR_ACCESS_DENIED] = {"P11KMS_ERR_ACCESS_DENIED", "access denied", 4},
    [P11KMS_ERR_NOT_FOUND] = {"P11KMS_ERR_NOT_FOUND", "not found", 5},
    [P11KMS_ERR_ALREADY_EXISTS] = {"P11KMS_ERR_ALREADY_EXISTS", "already exists", 1},
    [P11KMS_ERR_DISABLED] = {"P11KMS_ERR_DISABLED", "key is disabled", 1},
    [P11KMS_ERR_INVALID_STATE] = {"P11KMS_ERR_INVALID_STATE", "invalid key state", 1},
    [P11KMS_ERR_CIPHERTEXT_INVALID] = {"P11KMS_ERR_CIPHERTEXT_INVALID", "ciphertext invalid or context mismatch", 1},
    [P11KMS_ERR_INTEGRITY] = {"P11KMS_ERR_INTEGRITY", "store record failed integrity check", 1},
    [P11KMS_ERR_STORE] = {"P11KMS_ERR_STORE", "metadata store error", 1},
    [P11KMS_ERR_AUDIT_UNAVAILABLE] = {"P11KMS_ERR_AUDIT_UNAVAILABLE", "audit unavailable", 1},
    [P11KMS_ERR_LIMIT] = {"P11KMS_ERR_LIMIT", "limit exceeded", 1},
    [P11KMS_ERR_POLICY_INVALID] = {"P11KMS_ERR_POLICY_INVALID", "invalid key policy", 2},
    [P11KMS_ERR_NO_MEMORY] = {"P11KMS_ERR_NO_MEMORY", "out of memory", 1},
    [P11KMS_ERR_INTERNAL] = {"P11KMS_ERR_INTERNAL", "internal error", 1},
    [P11KMS_ERR_NOT_INITIALIZED] = {"P11KMS_ERR_NOT_INITIALIZED", "store not initialised", 3},
    /* Authentication refusals exit 4, like a denial. */
    [P11KMS_ERR_SIGNATURE_INVALID] = {"P11KMS_ERR_SIGNATURE_INVALID", "request signature does not match", 4},
    [P11KMS_ERR_UNRECOGNIZED_CLIENT] = {"P11KMS_ERR_UNRECOGNIZED_CLIENT", "access key unknown or disabled", 4},
    [P11KMS_ERR_INCOMPLETE_SIGNATURE] = {"P11KMS_ERR_INCOMPLETE_SIGNATURE", "request signature incomplete", 4},
    [P11KMS_ERR_REQUEST_EXPIRED] = {"P11KMS_ERR_REQUEST_EXPIRED", "request expired", 4},
};

static int rc_valid(p11kms_rc rc) { return (int)rc >= 0 && rc < P11KMS_RC_COUNT_; }

P11KMS_API const char *p11kms_strerror(p11kms_rc rc)
{
    return rc_valid(rc) ? rc_table[rc].message : "unknown error";
}

P11KMS_API const char *p11kms_rc_name(p11kms_rc rc)
{
    return rc_valid(rc) ? rc_table[rc].name : "P11KMS_ERR_UNKNOWN";
}

P11KMS_API int p11kms_exit_code(p11kms_rc rc)
{
    return rc_valid(rc) ? rc_table[rc].exit_code : 1;
}

P11KMS_API const char *p11kms_last_error(void)
{
    return pk_error_detail();
}

P11KMS_API const char *p11kms_version(void)
{
    return PACKAGE_VERSION;
}
