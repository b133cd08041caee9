/*
 * Customer-managed keys (CMKs): the AWS KMS key model on an HSM.
 *
 * A key is one store record (kind "key", id = key UUID) holding its
 * description, state, rotation settings, policy and version list. Each
 * version is an AES-256 token object whose CKA_ID is derived from
 * (key id, version), so decrypt needs no store lookup beyond the key.
 * Verified records are cached per handle with their compiled policy and
 * dropped whenever the store changes underneath (another process wrote).
 */
#ifndef PK_KEYS_KEYS_H
#define PK_KEYS_KEYS_H

#include <stdbool.h>
#include <stdint.h>

#include <pthread.h>

#include "p11/p11.h"
#include "p11kms/p11kms.h"
#include "policy/policy.h"
#include "store/records.h"
#include "util/codec.h"
#include "util/kv.h"
#include "keys/nonce_window.h"
#include "util/secbuf.h"

#define PK_KEY_MAX_VERSIONS 10000
#define PK_KEY_DESCRIPTION_MAX 8192
#define PK_PLAINTEXT_MAX 4096
#define PK_DATAKEY_MAX 1024
#define PK_ROTATION_MIN_DAYS 90
#define PK_ROTATION_MAX_DAYS 2560
#define PK_DELETION_MIN_DAYS 7
#define PK_DELETION_MAX_DAYS 30
#define PK_DELETION_DEFAULT_DAYS 30
#define PK_ALIAS_MAX 256
#define PK_SERVICE_ALIAS "alias/p11kms/default"
#define PK_STORE_MAC_KEY_ID "p11kms/sys/store-mac"
#define PK_STORE_MAC_KEY_LABEL "p11kms:sys:store-mac"
/*
 * IVs are deterministic (NIST SP 800-38D 8.2.1): a 64-bit invocation
 * counter, unique per key version because windows of it are reserved in
 * the store transactionally, behind a 32-bit fixed field drawn at random
 * for each window, so even a store rolled back to an old copy repeats an
 * IV only if two windows also drew the same field. p11kms still stops a
 * version at 2^30 invocations, a quarter of the 2^32 bound that 8.3 gives
 * for random IVs, and rotates the key automatically.
 */
#define PK_NONCE_LIMIT (UINT64_C(1) << 30)

/*
 * What keys/ and secrets/ are given when a handle opens (core/handle.c
 * fills it; they never see the p11kms handle): the records service, the
 * token, their own state objects and the account identity for ARNs.
 */
struct pk_keycache;
struct pk_secrets;
typedef struct pk_env {
    const pk_records *rs;
    pk_p11 *p11;
    struct pk_keycache *keys;
    struct pk_secrets *secrets; /* secrets/ state (secret_state.c), made at open */
    const char *account;
    const char *region;
    uint64_t nonce_limit;       /* GCM invocations per key version (PK_NONCE_LIMIT; lowered by tests) */
} pk_env;

typedef enum pk_key_state {
    PK_KEY_ENABLED,
    PK_KEY_DISABLED,
    PK_KEY_PENDING_DELETION,
    PK_KEY_DELETED
} pk_key_state;

const char *pk_key_state_name(pk_key_state s);

typedef struct pk_key_version {
    uint32_t number;
    int64_t created_ms;
} pk_key_version;

/* A verified, parsed key record. Immutable once cached, except the nonce window. */
typedef struct pk_key {
    char id[PK_UUID_STR_LEN + 1];
    uint8_t uuid[PK_UUID_LEN];
    char arn[160];
    char *description;
    pk_key_state state;
    bool service;           /* the p11kms-owned default key */
    int64_t created_ms;
    int64_t deletion_ms;    /* PendingDeletion: when it is destroyed */
    int64_t last_rotated_ms;
    uint32_t rotation_days; /* 0 = automatic rotation off */
    uint32_t nversions;
    pk_key_version *versions;
    uint64_t nonce_reserved; /* invocations reserved for the current version (persisted) */
    char *policy_json;
    pk_policy *policy;
    uint64_t rev;           /* store record revision */
    /* In-memory window of reserved invocations not yet used (under nonce_lock). */
    pthread_mutex_t nonce_lock;
    pk_nonce_window win;
    uint8_t iv_fixed[4];     /* random fixed field of the current window (SP 800-38D 8.2.1) */
    int refs;
} pk_key;

/* ---- ids (key_id.c) ---- */
/* CKA_ID of a key version: 'K' || UUID || be32(version). */
void pk_key_version_id(const uint8_t uuid[PK_UUID_LEN], uint32_t version, pk_keyid *out);
void pk_key_version_label(const char *key_id, uint32_t version, char *out, size_t size);
void pk_key_arn(const pk_env *env, const char *key_id, char *out, size_t size);
/* Validate an alias name (alias/NAME, AWS character rules). reserved_ok allows alias/p11kms/. */
PK_MUST_USE pk_result pk_alias_validate(const char *alias, bool reserved_ok);

/* A key reference as a caller gives it: UUID, alias/NAME, key or alias ARN. */
typedef struct pk_key_ref {
    char key_id[PK_UUID_STR_LEN + 1];
    char alias[PK_ALIAS_MAX + 8];   /* set when the caller named an alias */
    uint32_t version;               /* 0 = not given */
} pk_key_ref;
/* Resolve (aliases through the store). allow_version permits a ":vN" suffix. */
PK_MUST_USE pk_result pk_key_resolve(pk_env *env, const char *ref, bool allow_version, pk_key_ref *out);

/* ---- the record (key_record.c) ---- */
PK_MUST_USE pk_result pk_key_from_record(const pk_record *rec, pk_key **out);
PK_MUST_USE pk_result pk_key_to_record(const pk_key *k, pk_record *rec);
/* The time automatic work is due: deletion date, or next rotation. */
int64_t pk_key_due_ms(const pk_key *k);
void pk_key_free(pk_key *k);

/* ---- cache (key_cache.c) ---- */
PK_MUST_USE pk_result pk_keycache_new(struct pk_keycache **out);
void pk_keycache_free(struct pk_keycache *c);
/* A verified key, from the cache or the store; release with pk_key_release. NOT_FOUND when absent. */
PK_MUST_USE pk_result pk_key_get(pk_env *env, const char *key_id, pk_key **out);
void pk_key_release(pk_env *env, pk_key *k);
/*
 * Ask the store whether another process wrote (at most every
 * store_recheck_ms, dropping this cache if so) and return a counter that
 * grows each time one was noticed: other per-handle caches of store rows
 * compare it to know when to drop theirs.
 */
PK_MUST_USE pk_result pk_store_generation(pk_env *env, uint64_t *gen);
/* Cached alias -> key id (verified when first read); false on a miss. */
bool pk_alias_cached(pk_env *env, const char *alias, char key_id[PK_UUID_STR_LEN + 1]);
void pk_alias_remember(pk_env *env, const char *alias, const char key_id[PK_UUID_STR_LEN + 1]);
/* Drop cached aliases after this handle changed one. */
void pk_alias_forget_all(pk_env *env);
/* Forget a key after this handle changed it (own commits do not show in `changed`). */
void pk_key_forget(pk_env *env, const char *key_id);
/* Load inside a write transaction (store_lock held), bypassing the cache. */
PK_MUST_USE pk_result pk_key_load_tx(pk_env *env, const char *key_id, pk_key **out);
/* Write a modified key record inside a write transaction. */
PK_MUST_USE pk_result pk_key_save_tx(pk_env *env, pk_key *k);
/* Inside a write transaction: make version n+1 in the HSM and append it (rotation). */
PK_MUST_USE pk_result pk_key_add_version_tx(pk_env *env, pk_key *k);
/*
 * Take one GCM invocation from the current version's budget (may reserve a
 * new window in the store, or rotate) and build its IV: the window's random
 * 32-bit fixed field || the 64-bit invocation counter.
 */
PK_MUST_USE pk_result pk_key_take_nonce(pk_env *env, pk_key *k, uint32_t *version, uint8_t iv[PK_GCM_IV_LEN]);

/* Every key record in the store, each verified and parsed (Deleted ones included). */
typedef struct pk_key_list {
    pk_key **keys;
    size_t n, cap;
} pk_key_list;
PK_MUST_USE pk_result pk_key_load_all(pk_env *env, pk_key_list *out);
void pk_key_list_free(pk_key_list *l);

/* ---- lifecycle (key_lifecycle.c) ---- */
typedef struct pk_key_create_args {
    const char *description;
    const char *policy_json;  /* NULL: built from admins/operators or the caller */
    uint32_t rotation_days;
    bool service;
    const uint8_t *uuid;      /* the new key's id, so its audit record can name it; NULL: a fresh one */
} pk_key_create_args;
PK_MUST_USE pk_result pk_key_create(pk_env *env, const pk_key_create_args *a, char out_id[PK_UUID_STR_LEN + 1]);
PK_MUST_USE pk_result pk_key_set_state(pk_env *env, const char *key_id, pk_key_state want);
PK_MUST_USE pk_result pk_key_rotate(pk_env *env, const char *key_id, uint32_t *new_version);
PK_MUST_USE pk_result pk_key_schedule_deletion(pk_env *env, const char *key_id, uint32_t days, int64_t *when_ms);
PK_MUST_USE pk_result pk_key_cancel_deletion(pk_env *env, const char *key_id);
PK_MUST_USE pk_result pk_key_put_policy(pk_env *env, const char *key_id, const char *policy_json);

/* What purge did (keys destroyed, keys rotated), for the caller's report. */
typedef struct pk_purge_report {
    char (*destroyed)[PK_UUID_STR_LEN + 1];
    size_t ndestroyed;
    char (*rotated)[PK_UUID_STR_LEN + 1];
    size_t nrotated;
} pk_purge_report;
/* Destroy keys whose deletion window passed; with rotate, also rotate keys past their period. */
PK_MUST_USE pk_result pk_key_purge(pk_env *env, bool rotate, pk_purge_report *report);
void pk_purge_report_free(pk_purge_report *r);

/* ---- aliases (key_alias.c) ---- */
PK_MUST_USE pk_result pk_alias_create(pk_env *env, const char *alias, const char *key_id, bool reserved_ok);
PK_MUST_USE pk_result pk_alias_delete(pk_env *env, const char *alias, char key_id_out[PK_UUID_STR_LEN + 1]);
typedef struct pk_alias_entry {
    char alias[PK_ALIAS_MAX + 8];
    char key_id[PK_UUID_STR_LEN + 1];
    int64_t created_ms;
} pk_alias_entry;
/* All aliases, or those of one key. Caller frees *out. */
PK_MUST_USE pk_result pk_alias_list(pk_env *env, const char *key_id, pk_alias_entry **out, size_t *n);
/* The same with store_lock already held (inside a transaction). */
PK_MUST_USE pk_result pk_alias_list_tx(pk_env *env, const char *key_id, pk_alias_entry **out, size_t *n);

/* ---- ciphertext blobs (blob.c) ---- */
#define PK_BLOB_VERSION 1
#define PK_BLOB_HEADER_LEN 34 /* version, flags, key id, key version, IV */

typedef struct pk_blob {
    uint8_t version;
    uint8_t key_uuid[PK_UUID_LEN];
    uint32_t key_version;
    const uint8_t *iv;
    pk_bytes header;  /* bytes authenticated as AAD */
    pk_bytes ct;      /* ciphertext || tag */
} pk_blob;

typedef pk_kv pk_ctx_kv;

/* Validate an encryption context (sizes, duplicates, UTF-8) and build its canonical AAD suffix. */
PK_MUST_USE pk_result pk_context_encode(const pk_ctx_kv *ctx, size_t n, pk_buf *out);
/* Parse and check the framing; any problem is P11KMS_ERR_CIPHERTEXT_INVALID. */
PK_MUST_USE pk_result pk_blob_parse(pk_bytes in, pk_blob *out);
/* Write the header for a new blob into out (PK_BLOB_HEADER_LEN bytes). */
void pk_blob_header(uint8_t *out, const uint8_t uuid[PK_UUID_LEN], uint32_t version, const uint8_t iv[PK_GCM_IV_LEN]);

/* ---- crypto (key_crypto.c): callers have authorised the request ---- */
PK_MUST_USE pk_result pk_key_encrypt(pk_env *env, pk_key *k, pk_bytes ctx_aad, pk_bytes pt, pk_buf *blob);
/* Decrypt a parsed blob with its key (state checked by the caller). */
PK_MUST_USE pk_result pk_key_decrypt(pk_env *env, pk_key *k, const pk_blob *b, pk_bytes ctx_aad, pk_secbuf *pt);

#endif
