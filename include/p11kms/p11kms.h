/*
 * p11kms: customer-managed keys, secrets and policies kept in a PKCS#11 HSM.
 *
 * This is the whole public interface. Every type is opaque; every buffer the
 * library returns is owned by the caller and must be released with the
 * matching _free function, which wipes it first. No PKCS#11, OpenSSL, jansson
 * or SQLite type appears here, so the library can change backends without
 * breaking callers.
 *
 * Threads: one p11kms handle may be shared by any number of threads, and so
 * may a p11kms_caller and a p11kms_config (the library only reads them).
 * Error details are kept per thread (p11kms_last_error).
 *
 * Conventions that hold for every function below:
 * - Every _free function, p11kms_close and p11kms_free accept NULL and do
 *   nothing with it.
 * - On failure every out-parameter is set to NULL (or 0) and nothing needs
 *   to be freed; on success the caller owns what it points to.
 * - An encryption context is a set: the order of its pairs does not matter
 *   (it is bound in canonical order, docs/FORMAT.md), and a key given twice,
 *   an empty key or text that is not UTF-8 is refused with
 *   P11KMS_ERR_INVALID_ARGUMENT.
 * - Spec structs (p11kms_key_spec, p11kms_connection_spec,
 *   p11kms_policy_request) start with
 *   size_t struct_size, which the caller sets to sizeof the struct it was
 *   compiled with. A size the library does not know is refused with
 *   P11KMS_ERR_INVALID_ARGUMENT; a smaller known size is an older caller,
 *   and fields added after it are taken as zero. Zero the struct first.
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
    P11KMS_ERR_SIGNATURE_INVALID,    /* SigV4 signature does not match (AWS InvalidSignatureException) */
    P11KMS_ERR_UNRECOGNIZED_CLIENT,  /* access key unknown or disabled (AWS UnrecognizedClientException) */
    P11KMS_ERR_INCOMPLETE_SIGNATURE, /* malformed Authorization, host/x-amz-date unsigned (AWS IncompleteSignature) */
    P11KMS_ERR_REQUEST_EXPIRED,      /* clock skew over 5 minutes (AWS RequestExpired) */
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
/*
 * A path-valued key ("audit", "store", ...) resolved against the config
 * file's folder, or NULL when unset. Valid as long as cfg.
 */
P11KMS_API const char *p11kms_config_path_value(const p11kms_config *cfg, const char *key);
/*
 * Whether a connection option is sensitive (its value shown as "****"):
 * its lower-cased name contains a built-in sensitive word (password,
 * secret, token, ...) or one listed in the config's `sensitive_options`.
 * cfg may be NULL (built-in words only).
 */
P11KMS_API int p11kms_connection_option_sensitive(const p11kms_config *cfg, const char *name);
/*
 * The i-th `key = value` line in file order (repeatable keys such as
 * `listen` and key families such as principal.uid.<N> included): 1 and
 * *key and *value set, or 0 past the end. Path-valued keys come made absolute.
 */
P11KMS_API int p11kms_config_entry(const p11kms_config *cfg, size_t i, const char **key, const char **value);

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
/* The caller's principal ARN (valid while c lives; "" for NULL), e.g. the one p11kms_sigv4_verify found. */
P11KMS_API const char *p11kms_caller_principal(const p11kms_caller *c);
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
 * With `connect =` in cfg the handle is a client of p11kmsd (docs/DAEMON.md):
 * no token, store or audit trail on this host. The key, alias, crypto,
 * secret, connection and render calls go to the daemon, which names the
 * caller, so they take c = NULL (a caller is refused with
 * P11KMS_ERR_INVALID_ARGUMENT); calls that need the token are refused.
 */
P11KMS_API P11KMS_MUST_USE p11kms_rc p11kms_open(const p11kms_config *cfg, p11kms **out);
P11KMS_API void p11kms_close(p11kms *h);

/*
 * Create the store, the system keys (store integrity, audit seals) and the
 * p11kms service key (alias/p11kms/default), administered by `admins`
 * (default: the caller) and usable by `operators`, which a fresh store
 * requires (P11KMS_ERR_INVALID_ARGUMENT without; "*" means every principal).
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
    size_t struct_size;               /* sizeof(p11kms_key_spec), see the top */
    const char *description;          /* optional */
    const char *policy_json;          /* optional: a full key policy */
    const char *const *admins;        /* optional: build the default policy from templates */
    size_t nadmins;
    const char *const *operators;
    size_t noperators;
    unsigned rotation_days;           /* 0 = off, else 90..2560 */
    int bypass_lockout_check;         /* with policy_json: skip the lockout safety check */
    int bypass_lint;                  /* with policy_json: accept lint errors (unknown actions, keys) */
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
/*
 * Replace a key's policy. Refused with P11KMS_ERR_POLICY_INVALID when the
 * policy does not parse, or when the linter finds an error (an unknown
 * action or condition key, which would silently grant or deny nothing);
 * P11KMS_POLICY_BYPASS_LINT accepts such a policy and the audit record says
 * so. P11KMS_POLICY_BYPASS_LOCKOUT_CHECK accepts a policy that would lock
 * the caller out of kms:PutKeyPolicy.
 */
#define P11KMS_POLICY_BYPASS_LOCKOUT_CHECK 1u
#define P11KMS_POLICY_BYPASS_LINT 2u
P11KMS_API P11KMS_MUST_USE p11kms_rc p11kms_key_put_policy(p11kms *h, const p11kms_caller *c, const char *key,
                                                           const char *policy_json, unsigned flags);

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

/* ---- Secrets and connections (Flink FLIP-529 SecretStore) --------------- */
/*
 * A secret is a map of UTF-8 strings (keys non-empty; at most 64 pairs and
 * 64 KiB of keys and values) in a namespace (default "default"), encrypted
 * by the HSM under the namespace's key, which is wrapped under a CMK.
 * docs/SECRETS.md describes the key hierarchy, policy actions and limits.
 * Secret values live only in locked memory that is wiped when freed.
 */

typedef struct p11kms_secret_map p11kms_secret_map;

P11KMS_API P11KMS_MUST_USE p11kms_rc p11kms_secret_map_new(p11kms_secret_map **out);
/* Set (or replace) key = value; both are copied into locked memory. */
P11KMS_API P11KMS_MUST_USE p11kms_rc p11kms_secret_map_set(p11kms_secret_map *m, const char *key, const char *value);
/* Remove a key; P11KMS_ERR_NOT_FOUND when absent. */
P11KMS_API P11KMS_MUST_USE p11kms_rc p11kms_secret_map_remove(p11kms_secret_map *m, const char *key);
/* The value for key, or NULL. Valid until the map changes or is freed. */
P11KMS_API const char *p11kms_secret_map_get(const p11kms_secret_map *m, const char *key);
P11KMS_API size_t p11kms_secret_map_count(const p11kms_secret_map *m);
/* Pairs in ascending key order (bytewise). */
P11KMS_API const char *p11kms_secret_map_key_at(const p11kms_secret_map *m, size_t i);
P11KMS_API const char *p11kms_secret_map_value_at(const p11kms_secret_map *m, size_t i);
/* Parse a flat JSON object of strings ({"user":"u","password":"p"}); strict, in locked memory. */
P11KMS_API P11KMS_MUST_USE p11kms_rc p11kms_secret_map_from_json(const char *json, size_t len,
                                                                 p11kms_secret_map **out);
/* The map as a JSON object (locked memory; p11kms_buf_free wipes it). */
P11KMS_API P11KMS_MUST_USE p11kms_rc p11kms_secret_map_to_json(const p11kms_secret_map *m, p11kms_buf **out);
/* Wipes every key and value. NULL is fine. */
P11KMS_API void p11kms_secret_map_free(p11kms_secret_map *m);

/*
 * Store a new secret. ns NULL = "default"; key NULL = the namespace's
 * configured key, else the service key (alias/p11kms/default). The first
 * secret of a namespace configures its key. Needs kms:GenerateDataKey on the
 * key, evaluated with the encryption context
 * {"p11kms:namespace": NS, "p11kms:secret-id": ID}. *id: p11kms_free.
 */
P11KMS_API P11KMS_MUST_USE p11kms_rc p11kms_secret_put(p11kms *h, const p11kms_caller *c, const char *ns,
                                                       const char *key, const p11kms_secret_map *map, char **id);
/*
 * Store a new secret under a caller-chosen id (the AWS Secrets Manager Name:
 * 1 to 512 of [A-Za-z0-9/_+=.@-]); otherwise as p11kms_secret_put.
 * P11KMS_ERR_ALREADY_EXISTS when a secret already has that id.
 */
P11KMS_API P11KMS_MUST_USE p11kms_rc p11kms_secret_put_named(p11kms *h, const p11kms_caller *c, const char *ns,
                                                             const char *key, const char *name,
                                                             const p11kms_secret_map *map);
/* A secret's metadata (never its value). Set struct_size = sizeof(p11kms_secret_info). */
typedef struct p11kms_secret_info {
    size_t struct_size;
    char ns[129];         /* namespace */
    char key_id[37];      /* the protecting CMK's key id */
    uint32_t version;     /* 1 when stored, +1 on each update */
    int64_t created_ms;   /* epoch milliseconds */
    int64_t updated_ms;
} p11kms_secret_info;
/* p11kms_secret_get that also fills *info for the map it returns (kms:Decrypt). */
P11KMS_API P11KMS_MUST_USE p11kms_rc p11kms_secret_get_info(p11kms *h, const p11kms_caller *c, const char *id,
                                                            p11kms_secret_map **out, p11kms_secret_info *info);
/* One secret's metadata; kms:DescribeKey on its key. P11KMS_ERR_NOT_FOUND for an unknown id. */
P11KMS_API P11KMS_MUST_USE p11kms_rc p11kms_secret_describe(p11kms *h, const p11kms_caller *c, const char *id,
                                                            p11kms_secret_info *info);
/*
 * The secret's AWS Secrets Manager ARN, arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME-XXXXXX,
 * XXXXXX = base32 (lower case) of the first 30 bits of SHA-256("p11kms-secret-arn" || NAME). *arn: p11kms_free.
 */
P11KMS_API P11KMS_MUST_USE p11kms_rc p11kms_secret_arn(p11kms *h, const char *name, char **arn);
/* kms:Decrypt. P11KMS_ERR_NOT_FOUND for an unknown id. *out: p11kms_secret_map_free. */
P11KMS_API P11KMS_MUST_USE p11kms_rc p11kms_secret_get(p11kms *h, const p11kms_caller *c, const char *id,
                                                       p11kms_secret_map **out);
/* Replace the map atomically (readers see the old or the new map). kms:GenerateDataKey. */
P11KMS_API P11KMS_MUST_USE p11kms_rc p11kms_secret_update(p11kms *h, const p11kms_caller *c, const char *id,
                                                          const p11kms_secret_map *map);
/* kms:GenerateDataKey (the right to write a secret is the right to delete it). */
P11KMS_API P11KMS_MUST_USE p11kms_rc p11kms_secret_remove(p11kms *h, const p11kms_caller *c, const char *id);
/*
 * Ids and metadata (never values) of the secrets whose key allows the
 * caller kms:DescribeKey; ns NULL = every namespace. JSON array.
 */
P11KMS_API P11KMS_MUST_USE p11kms_rc p11kms_secret_list(p11kms *h, const p11kms_caller *c, const char *ns,
                                                        char **json);

/* Progress of a rewrap: what is being done ("rewrap" or "reencrypt"), the item, done of total. */
typedef void (*p11kms_progress_fn)(void *ctx, const char *what, const char *item, size_t done, size_t total);
/*
 * Re-wrap namespace keys under their CMK's newest version (no secret is
 * decrypted), for one namespace or (all != 0) every namespace. With
 * reencrypt, also move every secret to a new namespace-key version; their
 * plaintext exists only briefly in locked memory. Needs kms:ReEncryptFrom
 * and kms:ReEncryptTo on each CMK. *json summarises (p11kms_free).
 */
P11KMS_API P11KMS_MUST_USE p11kms_rc p11kms_secret_rewrap(p11kms *h, const p11kms_caller *c, const char *ns,
                                                          int all, int reencrypt, p11kms_progress_fn progress,
                                                          void *progress_ctx, char **json);

/*
 * Connections (FLIP-529 CREATE/ALTER/DROP/DESCRIBE/SHOW CONNECTION). NAME is
 * [catalog.][db.]name. Sensitive options (password, secret, token, ... and
 * `sensitive_options` in p11kms.conf) go into one secret; the connection
 * keeps the rest plus __flink.encrypted-secret-key__ = the secret id.
 */
typedef struct p11kms_connection_spec {
    size_t struct_size;                /* sizeof(p11kms_connection_spec), see the top */
    const char *type;                  /* optional */
    const char *comment;               /* optional */
    const char *ns;                    /* optional: namespace of its secret (default "default") */
    const char *key;                   /* optional: CMK, as for p11kms_secret_put */
    const p11kms_secret_map *options;  /* option = value; values in locked memory */
} p11kms_connection_spec;

/* kms:GenerateDataKey on the connection's key. ALREADY_EXISTS when the name is taken. */
P11KMS_API P11KMS_MUST_USE p11kms_rc p11kms_connection_create(p11kms *h, const p11kms_caller *c, const char *name,
                                                              const p11kms_connection_spec *spec);
/*
 * Set and/or reset options in one write transaction; the secret id stays.
 * comment NULL leaves the comment. kms:GenerateDataKey (and kms:Decrypt
 * when the secret part changes).
 */
P11KMS_API P11KMS_MUST_USE p11kms_rc p11kms_connection_alter(p11kms *h, const p11kms_caller *c, const char *name,
                                                             const p11kms_secret_map *set, const char *const *reset,
                                                             size_t nreset, const char *comment);
/* Remove the connection and its secret. kms:GenerateDataKey. */
P11KMS_API P11KMS_MUST_USE p11kms_rc p11kms_connection_drop(p11kms *h, const p11kms_caller *c, const char *name);
/* JSON with sensitive values shown as "****". kms:DescribeKey. */
P11KMS_API P11KMS_MUST_USE p11kms_rc p11kms_connection_describe(p11kms *h, const p11kms_caller *c, const char *name,
                                                                char **json);
/* CREATE CONNECTION statement with sensitive values shown as '****'. kms:DescribeKey. */
P11KMS_API P11KMS_MUST_USE p11kms_rc p11kms_connection_show_create(p11kms *h, const p11kms_caller *c,
                                                                   const char *name, char **sql);
/* All options, secrets included (audited as kms:Decrypt). *out: p11kms_secret_map_free. */
P11KMS_API P11KMS_MUST_USE p11kms_rc p11kms_connection_resolve(p11kms *h, const p11kms_caller *c, const char *name,
                                                               p11kms_secret_map **out);
/* Names, types and comments; like: SQL LIKE pattern (% and _) or NULL. */
P11KMS_API P11KMS_MUST_USE p11kms_rc p11kms_connection_list(p11kms *h, const p11kms_caller *c, const char *like,
                                                            char **json);

/*
 * Replace ${secret:ID:FIELD}, ${connection:NAME:OPTION} and ${kms:BASE64}
 * (a p11kms_decrypt blob without context) in a text; "$${" is a literal
 * "${". A placeholder may end in a filter: |yaml, |json, |properties,
 * |shell, |raw (docs/SECRETS.md); without one, a value holding a control
 * character or bytes that are not UTF-8 is refused. Each distinct secret,
 * connection and blob is read (and audited) once. Any unresolved, denied
 * or refused placeholder fails the whole render and *out stays NULL.
 * *out (locked memory): p11kms_buf_free.
 */
/* Larger templates, or more placeholders, are refused (P11KMS_ERR_INVALID_ARGUMENT). */
#define P11KMS_RENDER_MAX_TEMPLATE_BYTES (1024 * 1024)
#define P11KMS_RENDER_MAX_PLACEHOLDERS 1024
P11KMS_API P11KMS_MUST_USE p11kms_rc p11kms_render(p11kms *h, const p11kms_caller *c, const char *template_text,
                                                   size_t len, p11kms_buf **out);

/* ---- Audit trail (docs/AUDIT.md); no store or handle needed ---- */

/* Accept records after the last seal (a log still being written). */
#define P11KMS_AUDIT_ALLOW_UNSEALED 1u
/*
 * Verify the hash chain and seals of files[0..nfiles) or, with nfiles 0,
 * of the configured series (`audit` and its rotated files, oldest first;
 * P11KMS_ERR_NOT_FOUND "audit: no audit log at PATH" when there is none).
 * Logs in to the token for the audit key. A broken trail is not a failure
 * of the call: *report_json is {"ok":bool, and when not ok "problem",
 * "file","line","seq","detail", then "files","records","seals","last_seq",
 * "last_sealed_seq","unsealed","unreadable","head"}. Free with p11kms_free.
 */
P11KMS_API P11KMS_MUST_USE p11kms_rc p11kms_audit_verify(const p11kms_config *cfg, const char *const *files,
                                                         size_t nfiles, unsigned flags, char **report_json);
/*
 * Record RotateAuditLog by principal, seal, and start a new file.
 * *rotated is the name the closed file got (free with p11kms_free).
 */
P11KMS_API P11KMS_MUST_USE p11kms_rc p11kms_audit_rotate(const p11kms_config *cfg, const char *principal,
                                                         char **rotated);
/* The configured series as a JSON array of paths, oldest first (may be []). */
P11KMS_API P11KMS_MUST_USE p11kms_rc p11kms_audit_files(const p11kms_config *cfg, char **json);

/* ---- Offline key policies (docs/POLICY.md); no handle, token or store ---- */

typedef struct p11kms_policy p11kms_policy;

/*
 * Compile a key policy document. P11KMS_ERR_POLICY_INVALID with the line
 * and reason when it is malformed. A compiled policy is read-only: any
 * number of threads may evaluate it at once.
 */
P11KMS_API P11KMS_MUST_USE p11kms_rc p11kms_policy_compile(const char *json, size_t len, p11kms_policy **out);
P11KMS_API void p11kms_policy_free(p11kms_policy *pol);

/* A what-if request. A spec struct: set struct_size (see the top). */
typedef struct p11kms_policy_request {
    size_t struct_size;                 /* sizeof(p11kms_policy_request) */
    const char *principal;              /* caller ARN */
    const char *action;                 /* "kms:Encrypt" */
    const char *resource;               /* key ARN; NULL matches only Resource "*" */
    const p11kms_kv *context;           /* encryption context, keys unique */
    size_t ncontext;
    const p11kms_kv *request_context;   /* aws:SourceIp, kms:RequestAlias, ... */
    size_t nrequest_context;
    int64_t time_ms;                    /* request time, ms since the epoch (UTC); the caller's clock */
} p11kms_policy_request;

/*
 * Evaluate req against pol. request_json (optional, request_json_len
 * bytes) is one JSON request object (a `policy eval --batch` line) whose
 * members override req's fields. principal and action are required.
 * *result is {"decision":"Allowed"|"ExplicitlyDenied"|"ImplicitlyDenied",
 * "matched":[Sid...]} plus "truncated":true when not every Sid fits.
 */
P11KMS_API P11KMS_MUST_USE p11kms_rc p11kms_policy_eval(const p11kms_policy *pol, const p11kms_policy_request *req,
                                                        const char *request_json, size_t request_json_len,
                                                        char **result);
/*
 * Lint findings as a JSON array of {"kind","statement":N|null,"sid",
 * "message","error":bool}; [] when clean. error marks findings that
 * key create / put-policy refuse without --bypass-lint.
 */
P11KMS_API P11KMS_MUST_USE p11kms_rc p11kms_policy_lint(const p11kms_policy *pol, char **findings);
/* ISO 8601 ("2024-06-15T12:00:00Z") or epoch seconds, as Date conditions read it. */
P11KMS_API P11KMS_MUST_USE p11kms_rc p11kms_policy_parse_time(const char *s, int64_t *ms);

/* ---- Token set-up; no store or handle needed ---- */

/*
 * Initialise the token in the first free slot of module with label, and
 * set the SO PIN and the user PIN, read from files (regular, not readable
 * by group or others, at most 256 bytes). PINs are never arguments, so
 * they stay out of argv; the library wipes them after use.
 */
P11KMS_API P11KMS_MUST_USE p11kms_rc p11kms_token_init(const char *module, const char *label,
                                                       const char *so_pin_file, const char *user_pin_file);

/* ---- Blob inspection (docs/FORMAT.md); no key access, nothing decrypted ---- */

/*
 * The key id (36-character UUID plus NUL) and key version a ciphertext
 * blob names. P11KMS_ERR_CIPHERTEXT_INVALID when it is too short or of an
 * unknown format version. Pure; any thread.
 */
P11KMS_API P11KMS_MUST_USE p11kms_rc p11kms_blob_info(const uint8_t *blob, size_t len, char key_id[37],
                                                      uint32_t *key_version);

/* ---- Authentication of callers (p11kmsd; docs/AUTH.md) ------------------ */

/* How the caller authenticated, for the audit record ("auth":{"method":..,"id":..,"request_id":..}). */
typedef enum p11kms_auth_method {
    P11KMS_AUTH_NONE = 0,     /* in-process (the command with --as) */
    P11KMS_AUTH_PEER_UID,     /* Unix socket: id = "uid=1001 gid=1001" */
    P11KMS_AUTH_SIGV4,        /* id = the access key id */
    P11KMS_AUTH_CERTIFICATE   /* id = the client certificate's subject (or SHA-256 fingerprint) */
} p11kms_auth_method;
/*
 * Record how this caller was authenticated and the request id the response
 * returns (x-amzn-RequestId). Both strings are copied (NULL clears). The
 * audit record of every operation made with this caller carries them.
 */
P11KMS_API P11KMS_MUST_USE p11kms_rc p11kms_caller_set_auth(p11kms_caller *c, p11kms_auth_method method,
                                                            const char *identity, const char *request_id);

typedef struct p11kms_http_header {
    const char *name;   /* as received; compared case-insensitively */
    const char *value;  /* as received (the library trims and folds spaces as SigV4 requires) */
} p11kms_http_header;

typedef struct p11kms_sigv4_request {
    size_t struct_size;              /* sizeof(p11kms_sigv4_request) */
    const char *method;              /* "POST" */
    const char *path;                /* "/" (raw, not yet decoded) */
    const char *query;               /* raw query string without '?', or "" */
    const p11kms_http_header *headers;
    size_t nheaders;
    const uint8_t *body;
    size_t body_len;
    const char *service;             /* the signing name the daemon serves on this request: "kms" or "secretsmanager" */
    int64_t now_ms;                  /* 0: the library's clock */
    /* Added later: a struct_size that ends before it means NULL. */
    const char *request_id;          /* the daemon's x-amzn-RequestId: in the audit record, refusals included */
} p11kms_sigv4_request;

/*
 * Verify an AWS Signature Version 4 (Authorization header form,
 * AWS4-HMAC-SHA256). The access key's secret never leaves the HSM: the token
 * holds "AWS4"+secret as a non-extractable generic secret, the first HMAC of
 * the signing-key chain runs there, and only the derived per-day signing key
 * is cached, in locked memory. On success *caller is a new caller for the
 * access key's principal (p11kms_caller_free), with its auth set to SIGV4
 * and the key id, and *access_key_id (may be NULL) receives the id
 * (p11kms_free). Failures: P11KMS_ERR_SIGNATURE_INVALID,
 * P11KMS_ERR_UNRECOGNIZED_CLIENT, P11KMS_ERR_INCOMPLETE_SIGNATURE,
 * P11KMS_ERR_REQUEST_EXPIRED, with a one-line detail that never contains a
 * secret. Every refusal is audited (action "p11kms:Authenticate").
 */
P11KMS_API P11KMS_MUST_USE p11kms_rc p11kms_sigv4_verify(p11kms *h, const p11kms_sigv4_request *req,
                                                         p11kms_caller **caller, char **access_key_id);

/*
 * Ask the token something only it can answer: the live attributes of the
 * handle's store-MAC key (C_GetAttributeValue on the token object, never a
 * cached copy). P11KMS_OK, or the token's error with a one-line detail.
 * No caller, no audit record: for health probes (p11kmsd GET /health).
 */
P11KMS_API P11KMS_MUST_USE p11kms_rc p11kms_token_check(p11kms *h);

/*
 * Access keys: only the service administrators (kms:PutKeyPolicy on the
 * service key alias/p11kms/default) manage them; every change is audited.
 * Create: at most two per principal. *access_key_id "AKIA..." (20 chars,
 * p11kms_free) and *secret (40 chars) are returned once; the secret exists
 * outside the HSM only in that buffer (locked memory, wiped by
 * p11kms_buf_free).
 */
P11KMS_API P11KMS_MUST_USE p11kms_rc p11kms_access_key_create(p11kms *h, const p11kms_caller *c, const char *principal,
                                                              char **access_key_id, p11kms_buf **secret);
/* JSON array of {"AccessKeyId","Principal","Status":"Active"|"Inactive","CreateDate"}; principal NULL = all. */
P11KMS_API P11KMS_MUST_USE p11kms_rc p11kms_access_key_list(p11kms *h, const p11kms_caller *c, const char *principal,
                                                            char **json);
P11KMS_API P11KMS_MUST_USE p11kms_rc p11kms_access_key_set_enabled(p11kms *h, const p11kms_caller *c,
                                                                   const char *access_key_id, int enabled);
/* Removes the record and destroys the token object. */
P11KMS_API P11KMS_MUST_USE p11kms_rc p11kms_access_key_delete(p11kms *h, const p11kms_caller *c,
                                                              const char *access_key_id);

/* The ARN that names a key in every response: arn:aws:kms:REGION:ACCOUNT:key/UUID (p11kms_free). */
P11KMS_API P11KMS_MUST_USE p11kms_rc p11kms_key_arn(p11kms *h, const char *key_id, char **arn);
/*
 * Turn automatic rotation on (days 90..2560) or off (days 0): AWS
 * EnableKeyRotation / DisableKeyRotation, kms:EnableKeyRotation /
 * kms:DisableKeyRotation. p11kms_key_describe reports the period.
 */
P11KMS_API P11KMS_MUST_USE p11kms_rc p11kms_key_set_rotation(p11kms *h, const p11kms_caller *c, const char *key,
                                                             unsigned days);
/* Point an existing alias at another key (AWS UpdateAlias): kms:UpdateAlias on the old and the new key. */
P11KMS_API P11KMS_MUST_USE p11kms_rc p11kms_alias_update(p11kms *h, const p11kms_caller *c, const char *alias,
                                                         const char *key);
/* ---- Files in the AWS Encryption SDK message format (docs/FILES.md) ----- */
/*
 * Streaming encryption of any length into an ESDK message (format version
 * 2, framed), decryptable by the official AWS Encryption SDKs given a KMS
 * keyring that reaches this key service. The data key comes from
 * GenerateDataKey under `key` in the HSM with the message's encryption
 * context; it and the key derived from it are held in locked memory only
 * while the key schedule is set up, then wiped; the schedule lives in
 * OpenSSL's cipher contexts, cleansed when the stream is freed. Output goes through `out` as it is
 * produced: the stream never holds more than one batch of frames (1 MiB
 * per thread, at least one frame, at most 64 MiB) plus the caller's chunk.
 *
 * out returns 0, or a p11kms_rc (e.g. P11KMS_ERR_INTERNAL) to stop the
 * stream; the call that was writing then fails with that code.
 */
typedef int (*p11kms_write_fn)(void *arg, const uint8_t *p, size_t n);
typedef struct p11kms_file_opts {
    uint32_t frame_length; /* plaintext bytes per frame; 0 = 4096; at most 64 MiB */
    uint16_t suite;        /* 0 = 0x0478 (committing, unsigned); 0x0578 adds an ECDSA P-384 signature */
    unsigned threads;      /* frames sealed in parallel; 0 = 1; the output is the same for any count */
} p11kms_file_opts;
typedef struct p11kms_file_encryptor p11kms_file_encryptor;
/* Generates the data key and writes the header. opts may be NULL. */
P11KMS_API P11KMS_MUST_USE p11kms_rc p11kms_file_encryptor_new(p11kms *h, const p11kms_caller *c, const char *key,
                                                               const p11kms_kv *ctx, size_t nctx,
                                                               const p11kms_file_opts *opts, p11kms_write_fn out,
                                                               void *arg, p11kms_file_encryptor **enc);
P11KMS_API P11KMS_MUST_USE p11kms_rc p11kms_file_encrypt_update(p11kms_file_encryptor *enc, const uint8_t *p,
                                                                size_t n);
/*
 * Writes the final frame (and the signature). *summary_json (optional,
 * p11kms_free it): {"KeyArn","EncryptionContext","Bytes","Frames","Suite",
 * "FrameLength"}. Without a successful final the output is incomplete and
 * every reader refuses it.
 */
P11KMS_API P11KMS_MUST_USE p11kms_rc p11kms_file_encrypt_final(p11kms_file_encryptor *enc, char **summary_json);
P11KMS_API void p11kms_file_encryptor_free(p11kms_file_encryptor *enc);

/*
 * Decryption of suites 0x0478 and 0x0578: the key commitment, the header
 * tag and the signature are verified, and a frame's plaintext is passed to
 * `out` only after its tag verified. A truncated message, a missing final
 * frame, duplicated, reordered or dropped frames, a changed header and a
 * context that lacks a `required` pair each fail with
 * P11KMS_ERR_CIPHERTEXT_INVALID and their own message; plaintext already
 * written before such a failure must be discarded by the caller (the
 * command writes to a temporary file). h and c are borrowed until the
 * decryptor is freed.
 */
typedef struct p11kms_file_decryptor p11kms_file_decryptor;
P11KMS_API P11KMS_MUST_USE p11kms_rc p11kms_file_decryptor_new(p11kms *h, const p11kms_caller *c,
                                                               const p11kms_kv *required, size_t nreq,
                                                               unsigned threads, p11kms_write_fn out, void *arg,
                                                               p11kms_file_decryptor **dec);
P11KMS_API P11KMS_MUST_USE p11kms_rc p11kms_file_decrypt_update(p11kms_file_decryptor *dec, const uint8_t *p,
                                                                size_t n);
/* End of input; fails when the message is incomplete. The summary as for encryption. */
P11KMS_API P11KMS_MUST_USE p11kms_rc p11kms_file_decrypt_final(p11kms_file_decryptor *dec, char **summary_json);
/* The verified context (valid until the decryptor is freed); INVALID_STATE before the header verified. */
P11KMS_API P11KMS_MUST_USE p11kms_rc p11kms_file_decryptor_context(const p11kms_file_decryptor *dec,
                                                                   const p11kms_kv **ctx, size_t *nctx);
/*
 * A rewrapper is a decryptor that re-encrypts only the header's aws-kms
 * data key inside the HSM (ReEncrypt) to new_key, or with new_key NULL to
 * the newest version of the same key, writes the header with its new tag
 * and passes the body through byte for byte. Suite 0x0578 is refused: its
 * signature covers the header. Use p11kms_file_decrypt_update/_final.
 */
P11KMS_API P11KMS_MUST_USE p11kms_rc p11kms_file_rewrapper_new(p11kms *h, const p11kms_caller *c,
                                                               const char *new_key, p11kms_write_fn out, void *arg,
                                                               p11kms_file_decryptor **rw);
P11KMS_API void p11kms_file_decryptor_free(p11kms_file_decryptor *dec);

/* ---- Store freshness (docs/STORE.md, Freshness) ---- */

#define P11KMS_ACCEPT_RESTORE_DRY_RUN 1u
/*
 * Take a store that its anchor in the HSM refuses (a restored backup) back
 * into service: report what is given up, then (unless DRY_RUN) re-anchor the
 * store to its records as they are. Only a principal the service key's
 * policy allows kms:PutKeyPolicy (a key administrator); reason (required,
 * one printable line, at most 256 bytes) goes on the audit record.
 * *report_json: {"store_state","anchored_state","lost_write_transactions",
 * "changed_outside":[{"kind","records","recorded_state_records"}],"reason",
 * "accepted"}. Free with p11kms_free.
 */
P11KMS_API P11KMS_MUST_USE p11kms_rc p11kms_store_accept_restore(const p11kms_config *cfg, const p11kms_caller *c,
                                                                 const char *reason, unsigned flags,
                                                                 char **report_json);

/* ---- Token health (issue 17) ------------------------------------------ */

/* How the handle's token connection has fared. Set struct_size = sizeof(p11kms_token_health). */
typedef struct p11kms_token_health {
    size_t struct_size;
    int down;                      /* 1: the last reconnect failed; operations fail fast until one succeeds */
    unsigned long long reconnects; /* connections rebuilt since the handle opened */
    unsigned long long reinits;    /* module re-initialisations (C_Finalize + C_Initialize) */
    unsigned long long faults;     /* session or device faults that forced a reconnect */
    char last_fault[48];           /* the CKR name of the last of them, "" if none */
} p11kms_token_health;
P11KMS_API P11KMS_MUST_USE p11kms_rc p11kms_token_health_get(p11kms *h, p11kms_token_health *out);

#ifdef __cplusplus
}
#endif
#endif /* P11KMS_P11KMS_H */
