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

/* ---- Handle, callers, buffers --------------------------------------- */

typedef struct p11kms p11kms;
typedef struct p11kms_caller p11kms_caller;
typedef struct p11kms_buf p11kms_buf;

/* One encryption-context pair (UTF-8, NUL-terminated). */
typedef struct p11kms_kv {
    const char *key;
    const char *value;
} p11kms_kv;

/*
 * The caller of an operation. Every operation takes one explicitly: the
 * daemon derives it from an authenticated connection, the CLI from --as.
 */
P11KMS_API P11KMS_MUST_USE p11kms_rc p11kms_caller_new(const char *principal_arn, p11kms_caller **out);
/* The caller's network address, for aws:SourceIp conditions (optional). */
P11KMS_API P11KMS_MUST_USE p11kms_rc p11kms_caller_set_source_ip(p11kms_caller *c, const char *ip);
P11KMS_API void p11kms_caller_free(p11kms_caller *c);

/* Bytes returned by the library. p11kms_buf_free wipes them before release. */
P11KMS_API const uint8_t *p11kms_buf_data(const p11kms_buf *b);
P11KMS_API size_t p11kms_buf_len(const p11kms_buf *b);
P11KMS_API void p11kms_buf_free(p11kms_buf *b);
/* Strings returned by the library (JSON documents, ids). */
P11KMS_API void p11kms_free(char *s);

/*
 * Open a handle: token (login), store, audit trail. cfg must outlive the
 * handle (the PIN is re-read from its source after a reconnect or fork).
 * Keys whose deletion window has passed are destroyed here.
 */
P11KMS_API P11KMS_MUST_USE p11kms_rc p11kms_open(const p11kms_config *cfg, p11kms **out);
P11KMS_API void p11kms_close(p11kms *h);

/*
 * Create the store, the system keys (store integrity, audit seals) and the
 * p11kms service key (alias/p11kms/default), administered by `admins`
 * (default: the caller) and usable by `operators` (default: any principal).
 * Idempotent; refuses a store that belongs to another token.
 * *report_json describes what was done (p11kms_free it).
 */
P11KMS_API P11KMS_MUST_USE p11kms_rc p11kms_init(const p11kms_config *cfg, const p11kms_caller *caller,
                                                 const char *const *admins, size_t nadmins,
                                                 const char *const *operators, size_t noperators,
                                                 char **report_json);

/* ---- Keys --------------------------------------------------------------- */
/*
 * KEY arguments accept a key id, "alias/NAME", or a key/alias ARN
 * (arn:aws:kms:REGION:ACCOUNT:key/ID). JSON results are p11kms_free'd.
 */

typedef struct p11kms_key_spec {
    const char *description;          /* optional */
    const char *policy_json;          /* optional: a full key policy */
    const char *const *admins;        /* optional: build the default policy from templates */
    size_t nadmins;
    const char *const *operators;
    size_t noperators;
    unsigned rotation_days;           /* 0 = off, else 90..2560 */
    int bypass_lockout_check;         /* with policy_json: skip the lockout safety check */
} p11kms_key_spec;

P11KMS_API P11KMS_MUST_USE p11kms_rc p11kms_key_create(p11kms *h, const p11kms_caller *c, const p11kms_key_spec *spec,
                                                       char **key_id);
P11KMS_API P11KMS_MUST_USE p11kms_rc p11kms_key_describe(p11kms *h, const p11kms_caller *c, const char *key,
                                                         char **json);
P11KMS_API P11KMS_MUST_USE p11kms_rc p11kms_key_list(p11kms *h, const p11kms_caller *c, char **json);
P11KMS_API P11KMS_MUST_USE p11kms_rc p11kms_key_enable(p11kms *h, const p11kms_caller *c, const char *key);
P11KMS_API P11KMS_MUST_USE p11kms_rc p11kms_key_disable(p11kms *h, const p11kms_caller *c, const char *key);
P11KMS_API P11KMS_MUST_USE p11kms_rc p11kms_key_rotate(p11kms *h, const p11kms_caller *c, const char *key,
                                                       unsigned *new_version);
/* days: 7..30, or 0 for the default 30. *deletion_ms gets the destruction time. */
P11KMS_API P11KMS_MUST_USE p11kms_rc p11kms_key_schedule_deletion(p11kms *h, const p11kms_caller *c, const char *key,
                                                                  unsigned days, int64_t *deletion_ms);
P11KMS_API P11KMS_MUST_USE p11kms_rc p11kms_key_cancel_deletion(p11kms *h, const p11kms_caller *c, const char *key);
/* Destroy keys past their deletion window and rotate keys past their rotation period. */
P11KMS_API P11KMS_MUST_USE p11kms_rc p11kms_key_purge(p11kms *h, const p11kms_caller *c, char **report_json);
P11KMS_API P11KMS_MUST_USE p11kms_rc p11kms_key_get_policy(p11kms *h, const p11kms_caller *c, const char *key,
                                                           char **policy_json);
P11KMS_API P11KMS_MUST_USE p11kms_rc p11kms_key_put_policy(p11kms *h, const p11kms_caller *c, const char *key,
                                                           const char *policy_json, int bypass_lockout_check);

P11KMS_API P11KMS_MUST_USE p11kms_rc p11kms_alias_create(p11kms *h, const p11kms_caller *c, const char *alias,
                                                         const char *key);
P11KMS_API P11KMS_MUST_USE p11kms_rc p11kms_alias_delete(p11kms *h, const p11kms_caller *c, const char *alias);
/* key may be NULL for every alias. */
P11KMS_API P11KMS_MUST_USE p11kms_rc p11kms_alias_list(p11kms *h, const p11kms_caller *c, const char *key,
                                                       char **json);

/* ---- Cryptographic operations (all inside the HSM) ---------------------- */

/* Plaintext of 1..4096 bytes. *blob is the self-describing ciphertext (docs/FORMAT.md). */
P11KMS_API P11KMS_MUST_USE p11kms_rc p11kms_encrypt(p11kms *h, const p11kms_caller *c, const char *key,
                                                    const p11kms_kv *ctx, size_t nctx, const uint8_t *pt,
                                                    size_t pt_len, p11kms_buf **blob);
/*
 * Needs no key: the blob names it. Any wrong context, tampered or truncated
 * blob gives P11KMS_ERR_CIPHERTEXT_INVALID and no output. key_id (optional)
 * receives the key that decrypted.
 */
P11KMS_API P11KMS_MUST_USE p11kms_rc p11kms_decrypt(p11kms *h, const p11kms_caller *c, const p11kms_kv *ctx,
                                                    size_t nctx, const uint8_t *blob, size_t blob_len,
                                                    p11kms_buf **pt, char **key_id);
/*
 * A data key of `bytes` (16 = AES_128, 32 = AES_256, or 1..1024), generated
 * by the HSM's RNG and encrypted under key. pt may be NULL (the
 * WithoutPlaintext variant). The blob decrypts with p11kms_decrypt.
 */
P11KMS_API P11KMS_MUST_USE p11kms_rc p11kms_generate_data_key(p11kms *h, const p11kms_caller *c, const char *key,
                                                              const p11kms_kv *ctx, size_t nctx, size_t bytes,
                                                              p11kms_buf **pt, p11kms_buf **blob);
/*
 * Decrypt under the blob's key and encrypt under dst_key (another key, or
 * the same key's newest version) with dst_ctx. The plaintext never leaves
 * the library. Needs kms:ReEncryptFrom on the source and kms:ReEncryptTo
 * on the destination.
 */
P11KMS_API P11KMS_MUST_USE p11kms_rc p11kms_reencrypt(p11kms *h, const p11kms_caller *c, const uint8_t *blob,
                                                      size_t blob_len, const p11kms_kv *src_ctx, size_t nsrc,
                                                      const char *dst_key, const p11kms_kv *dst_ctx, size_t ndst,
                                                      p11kms_buf **out);

/* ---- Compliance reports ------------------------------------------------- */
/*
 * Every key with its state, versions and rotation status, the live PKCS#11
 * attributes of each version's token object, and token objects with a
 * p11kms label the store does not know. *nfindings counts what an auditor
 * must look at (weak attributes, missing objects, overdue rotation,
 * unknown objects).
 */
P11KMS_API P11KMS_MUST_USE p11kms_rc p11kms_report_keys(p11kms *h, const p11kms_caller *c, char **json,
                                                        size_t *nfindings);
/* Every key's current policy through the linter (separation of duties, wildcards, ...). */
P11KMS_API P11KMS_MUST_USE p11kms_rc p11kms_report_policies(p11kms *h, const p11kms_caller *c, char **json,
                                                            size_t *nfindings);

#ifdef __cplusplus
}
#endif
#endif /* P11KMS_P11KMS_H */
