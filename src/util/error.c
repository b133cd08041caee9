/* Error codes' names, messages and exit codes, and the per-thread detail
 * and origin behind pk_result. The public calls that show them are
 * core/api_errors.c: util/ defines no p11kms_ symbol, so a client may link
 * it beside libp11kms. */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/result.h"

#define PK_DETAIL_MAX 512

/* Per-thread, so concurrent callers of one handle never see each other's errors. */
static __thread char tl_detail[PK_DETAIL_MAX];
static __thread char tl_origin[96];

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

const char *pk_rc_message(p11kms_rc rc)
{
    return rc_valid(rc) ? rc_table[rc].message : "unknown error";
}

const char *pk_rc_name(p11kms_rc rc)
{
    return rc_valid(rc) ? rc_table[rc].name : "P11KMS_ERR_UNKNOWN";
}

int pk_rc_exit_code(p11kms_rc rc)
{
    return rc_valid(rc) ? rc_table[rc].exit_code : 1;
}

const char *pk_error_detail(void)
{
    return tl_detail;
}

pk_result pk_fail_at(p11kms_rc code, const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tl_detail, sizeof(tl_detail), fmt, ap);
    va_end(ap);
    snprintf(tl_origin, sizeof(tl_origin), "%s:%d", file, line);
    if (code == P11KMS_OK) code = P11KMS_ERR_INTERNAL;
    return (pk_result){code};
}

pk_result pk_recode(pk_result r, p11kms_rc code)
{
    if (pk_failed(r)) r.code = code;
    return r;
}

pk_result pk_annotate(pk_result r, const char *fmt, ...)
{
    char prefix[PK_DETAIL_MAX];
    char old[PK_DETAIL_MAX];
    va_list ap;

    if (pk_ok(r)) return r;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof(prefix), fmt, ap);
    va_end(ap);
    memcpy(old, tl_detail, sizeof(old));
    /* Truncation is acceptable: details are one-line messages. */
    size_t pl = strnlen(prefix, sizeof(tl_detail) - 1);
    memcpy(tl_detail, prefix, pl);
    size_t ol = strnlen(old, sizeof(tl_detail) - 1 - pl);
    memcpy(tl_detail + pl, old, ol);
    tl_detail[pl + ol] = '\0';
    return r;
}

void pk_error_clear(void)
{
    tl_detail[0] = '\0';
    tl_origin[0] = '\0';
}

const char *pk_error_origin(void)
{
    return tl_origin;
}

void pk_error_set_origin(const char *origin)
{
    snprintf(tl_origin, sizeof(tl_origin), "%s", origin != NULL ? origin : "");
}

/* Only "1" enables it, so a stray P11KMS_DEBUG=0 stays quiet. */
static bool debug_enabled(void)
{
    const char *v = getenv("P11KMS_DEBUG");
    return v != NULL && strcmp(v, "1") == 0;
}

p11kms_rc pk_error_report(p11kms_rc rc)
{
    /* The detail is secret-free by contract, so it may go to stderr. */
    if (rc != P11KMS_OK && debug_enabled())
        fprintf(stderr, "p11kms debug: %s: %s\n", tl_origin[0] ? tl_origin : "?", tl_detail);
    return rc;
}
