/*
 * p11kms: customer-managed keys, secrets and policies kept in a PKCS#11 HSM.
 *
 * This is the whole public interface. Every type is opaque; every buffer the
 * library returns is owned by the caller and must be released with the
 * matching _free function, which wipes it first. No PKCS#11, OpenSSL, jansson
 * or SQLite type appears here, so the library can change backends without
 * breaking callers.
 *
 * Threads: one p11kms handle may be shared by any number of threads. Error
 * details are kept per thread (p11kms_last_error).
 */
#ifndef P11KMS_P11KMS_H
#define P11KMS_P11KMS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define P11KMS_API __attribute__((visibility("default")))
#define P11KMS_MUST_USE __attribute__((warn_unused_result))
#else
#define P11KMS_API
#define P11KMS_MUST_USE
#endif

/* Result codes. Names and numbers are stable; new codes are only appended. */
typedef enum p11kms_rc {
    P11KMS_OK = 0,
    P11KMS_ERR_INVALID_ARGUMENT,  /* bad input from the caller */
    P11KMS_ERR_CONFIG,            /* configuration file or value */
    P11KMS_ERR_TOKEN,             /* module, slot or token unusable */
    P11KMS_ERR_LOGIN,             /* login failed (wrong PIN, locked PIN) */
    P11KMS_ERR_MECHANISM,         /* token lacks a required mechanism */
    P11KMS_ERR_HSM,               /* a PKCS#11 call failed */
    P11KMS_ERR_ACCESS_DENIED,     /* key policy denied the request */
    P11KMS_ERR_NOT_FOUND,         /* key, alias, secret or connection unknown */
    P11KMS_ERR_ALREADY_EXISTS,    /* alias, connection or store already there */
    P11KMS_ERR_DISABLED,          /* key is disabled */
    P11KMS_ERR_INVALID_STATE,     /* operation not allowed in the key's state */
    P11KMS_ERR_CIPHERTEXT_INVALID,/* ciphertext invalid or context mismatch */
    P11KMS_ERR_INTEGRITY,         /* store record failed integrity check */
    P11KMS_ERR_STORE,             /* metadata store failure */
    P11KMS_ERR_AUDIT_UNAVAILABLE, /* audit record could not be written */
    P11KMS_ERR_LIMIT,             /* a size or usage limit was reached */
    P11KMS_ERR_POLICY_INVALID,    /* key policy document is malformed */
    P11KMS_ERR_NO_MEMORY,
    P11KMS_ERR_INTERNAL,
    P11KMS_ERR_NOT_INITIALIZED,   /* store not initialised: run p11kms init */
    P11KMS_RC_COUNT_
} p11kms_rc;

/* Short fixed message for a code ("key is disabled"). Never NULL. */
P11KMS_API const char *p11kms_strerror(p11kms_rc rc);
/* Stable symbolic name ("P11KMS_ERR_DISABLED"). Never NULL. */
P11KMS_API const char *p11kms_rc_name(p11kms_rc rc);
/*
 * One-line detail of the last failure on this thread, e.g.
 * "C_Login: CKR_PIN_INCORRECT". It never contains key material, secret
 * values or PINs. Valid until the next p11kms call on this thread.
 */
P11KMS_API const char *p11kms_last_error(void);
/* Process exit code the p11kms command uses for a code (0 ok .. 5 not found). */
P11KMS_API int p11kms_exit_code(p11kms_rc rc);
P11KMS_API const char *p11kms_version(void);

/* ---- Configuration -------------------------------------------------- */

typedef struct p11kms_config p11kms_config;

/*
 * Load p11kms.conf. With path NULL the file is looked up in order:
 * $P11KMS_CONFIG, ./p11kms.conf, /etc/p11kms/p11kms.conf.
 */
P11KMS_API P11KMS_MUST_USE p11kms_rc p11kms_config_load(const char *path, p11kms_config **out);
/* The file the configuration was read from. */
P11KMS_API const char *p11kms_config_path(const p11kms_config *cfg);
/* A value by key ("module", "token", "store", ...), or NULL when unset. */
P11KMS_API const char *p11kms_config_get(const p11kms_config *cfg, const char *key);
P11KMS_API void p11kms_config_free(p11kms_config *cfg);

/* ---- Token inspection (no store needed) ------------------------------ */

typedef struct p11kms_token_info p11kms_token_info;

/*
 * Load the module, select the token, try to log in and probe mechanisms.
 * On P11KMS_OK *out is set even when login failed: p11kms_token_info_login()
 * then returns the login error. Errors before a token is found leave *out NULL.
 */
P11KMS_API P11KMS_MUST_USE p11kms_rc p11kms_token_probe(const p11kms_config *cfg,
                                                        p11kms_token_info **out);
P11KMS_API const char *p11kms_token_info_module(const p11kms_token_info *ti);
P11KMS_API const char *p11kms_token_info_label(const p11kms_token_info *ti);
P11KMS_API const char *p11kms_token_info_serial(const p11kms_token_info *ti);
P11KMS_API const char *p11kms_token_info_manufacturer(const p11kms_token_info *ti);
P11KMS_API const char *p11kms_token_info_model(const p11kms_token_info *ti);
/* P11KMS_OK when login succeeded, otherwise the login error. */
P11KMS_API p11kms_rc p11kms_token_info_login(const p11kms_token_info *ti);
/* Detail of the login failure ("C_Login: CKR_PIN_INCORRECT ..."), or "". */
P11KMS_API const char *p11kms_token_info_login_detail(const p11kms_token_info *ti);
/* Probed mechanisms: name ("CKM_AES_GCM"), role ("gcm"), whether present. */
P11KMS_API size_t p11kms_token_info_mech_count(const p11kms_token_info *ti);
P11KMS_API const char *p11kms_token_info_mech_name(const p11kms_token_info *ti, size_t i);
P11KMS_API const char *p11kms_token_info_mech_role(const p11kms_token_info *ti, size_t i);
P11KMS_API int p11kms_token_info_mech_present(const p11kms_token_info *ti, size_t i);
P11KMS_API void p11kms_token_info_free(p11kms_token_info *ti);

#ifdef __cplusplus
}
#endif
#endif /* P11KMS_P11KMS_H */
