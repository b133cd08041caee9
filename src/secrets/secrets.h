/*
 * The SecretStore (Flink FLIP-529) and connections, on HSM envelope
 * encryption. See docs/SECRETS.md for the design; in short:
 *
 *   CMK (token key, src/keys)
 *    └─ namespace key (AES-256, per namespace and CMK, versioned): exists
 *       outside the HSM only RFC 5649-wrapped under a CMK version; the p11
 *       layer unwraps it into a bounded LRU of session objects.
 *        └─ secret maps: AES-256-GCM by the HSM under the namespace key, a
 *           fresh random 96-bit IV per write, AAD binding the whole record.
 *
 * Store records (all MAC'd in the HSM by core/integrity.c):
 *   ns/NS               the namespace's configured CMK
 *   nskey/CMK:NS        (ref NS) the namespace key chain under one CMK
 *   secret/UUID         (ref NS) one encrypted map
 *   conn/NAME           (ref NS) one connection's public options
 * Bodies use a small length-prefixed binary encoding (never JSON): secret
 * values are never handed to jansson, whose heap is not wiped.
 *
 * Only this folder knows the formats; src/core/api_secrets.c and
 * api_connections.c build the public operations on top.
 */
#ifndef PK_SECRETS_SECRETS_H
#define PK_SECRETS_SECRETS_H

#include <stdbool.h>
#include <stdint.h>

#include "keys/keys.h"
#include "util/bytes.h"
#include "util/secbuf.h"

/* ---- Limits (docs/SECRETS.md "Limits") ---- */
#define PK_SECRET_MAX_PAIRS 64
#define PK_SECRET_KEY_MAX 256            /* bytes of one map key */
#define PK_SECRET_MAX_BYTES (64 * 1024)  /* sum of key and value bytes */
#define PK_NS_MAX 128                    /* namespace name */
#define PK_SECRET_ID_MAX 512             /* a generated UUID or a caller-chosen name (Secrets Manager Name) */
#define PK_NS_DEFAULT "default"
#define PK_CONN_NAME_MAX 200
#define PK_CONN_RESERVED_KEY "__flink.encrypted-secret-key__"
/*
 * Random 96-bit IVs under one namespace-key version: the same bound and the
 * same reservation window as CMK versions (keys/nonce_window.h; NIST SP
 * 800-38D 8.3: p11kms stops at 2^30 and rolls to a new version).
 */
#define PK_NSKEY_NONCE_LIMIT PK_NONCE_LIMIT

/* ---- Binary record bodies: a cursor and writers ---- */
typedef struct pk_cur {
    const uint8_t *p;
    size_t n;
    bool bad;
} pk_cur;
static inline pk_cur pk_cur_of(const void *p, size_t n) { return (pk_cur){(const uint8_t *)p, n, false}; }
uint32_t pk_cur_u32(pk_cur *c);
uint64_t pk_cur_u64(pk_cur *c);
/* A length-prefixed field as a view into the cursor's bytes. */
pk_bytes pk_cur_lp(pk_cur *c);
/* A length-prefixed string copied into out (NUL-terminated); bad when it does not fit or holds a NUL. */
void pk_cur_str(pk_cur *c, char *out, size_t size);

/* ---- Secret maps (secret_map.c): the public p11kms_secret_map ---- */
/*
 * Canonical encoding, built only in locked memory:
 *   "PKSM" || u8 1 || be32 count || (be32 klen || key || be32 vlen || value)*
 * with keys strictly ascending (bytewise): one map, one encoding.
 */
PK_MUST_USE pk_result pk_map_encode(const p11kms_secret_map *m, pk_secbuf *out);
PK_MUST_USE pk_result pk_map_decode(pk_bytes enc, p11kms_secret_map **out);
/* Validate keys and values (UTF-8, sizes, count). */
PK_MUST_USE pk_result pk_map_check(const p11kms_secret_map *m);
PK_MUST_USE pk_result pk_map_new(p11kms_secret_map **out);
PK_MUST_USE pk_result pk_map_set(p11kms_secret_map *m, const char *key, size_t klen, const char *val, size_t vlen);
bool pk_map_remove(p11kms_secret_map *m, const char *key);
void pk_map_free(p11kms_secret_map *m);
size_t pk_map_count(const p11kms_secret_map *m);
const char *pk_map_key(const p11kms_secret_map *m, size_t i);
const char *pk_map_value(const p11kms_secret_map *m, size_t i);
const char *pk_map_get(const p11kms_secret_map *m, const char *key);
/* Strict flat JSON object of strings -> map (no jansson; every byte in locked memory). */
PK_MUST_USE pk_result pk_map_from_json(const char *text, size_t len, p11kms_secret_map **out);
/* The map as a JSON object, in locked memory. */
PK_MUST_USE pk_result pk_map_to_json(const p11kms_secret_map *m, pk_secbuf *out);
bool pk_utf8_valid(const uint8_t *p, size_t n);

/* ---- Per-handle state (secret_state.c) ---- */
typedef struct pk_secrets pk_secrets;
/* Made when a handle opens (cache settings and sensitive_options read from cfg). */
PK_MUST_USE pk_result pk_secrets_new(const p11kms_config *cfg, pk_secrets **out);
/* Wipes the decrypted-map cache (p11kms_close). */
void pk_secrets_free(pk_secrets *s);
/* The handle's secrets state (env->secrets). */
PK_MUST_USE pk_result pk_secrets_of(pk_env *env, pk_secrets **out);
/* Tests only: lower the per-version invocation bound of namespace keys. */
void pk_secrets_set_nonce_limit(pk_secrets *s, uint64_t limit);
/* Cache settings (0 entries = off). */
void pk_secrets_set_cache(pk_secrets *s, uint64_t ttl_ms, size_t max_entries, uint64_t max_uses);
/* Counters for tests and benchmarks. */
typedef struct pk_secrets_stats {
    uint64_t chain_loads;   /* namespace-key records read from the store and verified */
    uint64_t reservations;  /* nonce blocks reserved (store writes) */
    uint64_t rollovers;     /* namespace-key versions added by the bound */
    uint64_t cache_hits, cache_misses;
    size_t cache_entries;
    uint64_t row_hits, row_misses; /* secret_rows.c */
    size_t row_entries;
} pk_secrets_stats;
void pk_secrets_get_stats(pk_secrets *s, pk_secrets_stats *out);
/* Extra sensitive option names from `sensitive_options` (comma-separated). */
bool pk_secrets_option_sensitive(pk_secrets *s, const char *name);

/* ---- Namespaces and their keys (secret_ns.c) ---- */
PK_MUST_USE pk_result pk_ns_validate(const char *ns);

typedef struct pk_nskey_version {
    uint32_t number;
    uint32_t kek_version;         /* CMK version the wrapped form is under */
    uint8_t wrapped[PK_KWP_WRAPPED_LEN];
    size_t wrapped_len;
    int64_t created_ms;
} pk_nskey_version;

/* A verified namespace-key chain (record nskey/CMK:NS). */
typedef struct pk_nskey {
    char ns[PK_NS_MAX + 1];
    char cmk[PK_UUID_STR_LEN + 1];
    uint8_t cmk_uuid[PK_UUID_LEN];
    uint32_t nversions;
    pk_nskey_version *v;
    uint64_t nonce_reserved;      /* invocations reserved for the current version */
    uint64_t rev;
} pk_nskey;

/* CKA_ID of a namespace-key version: 'N' || SHA-256(ns || 0 || cmk uuid)[0..16] || be32(version). */
PK_MUST_USE pk_result pk_nskey_id(const char *ns, const uint8_t cmk_uuid[PK_UUID_LEN], uint32_t version,
                                  pk_keyid *out);
/* The configured CMK of a namespace ("" when the namespace does not exist yet). */
PK_MUST_USE pk_result pk_ns_default_key(pk_env *env, const char *ns, char out[PK_UUID_STR_LEN + 1]);
/*
 * Make sure the namespace and its key chain under CMK k exist (creating the
 * first version, wrapped under k's newest version, in the HSM).
 */
PK_MUST_USE pk_result pk_ns_ensure(pk_env *env, const char *ns, pk_key *k);
/* Take one GCM invocation of the current namespace-key version; may reserve a block or roll the key. */
PK_MUST_USE pk_result pk_ns_take_nonce(pk_env *env, const char *ns, pk_key *k, uint32_t *nsv);
/*
 * AES-GCM with namespace-key version nsv under CMK cmk (from the cache;
 * reloaded once from the store when the cached chain is stale).
 */
PK_MUST_USE pk_result pk_ns_encrypt(pk_env *env, const char *ns, const uint8_t cmk_uuid[PK_UUID_LEN], uint32_t nsv,
                                    const uint8_t iv[PK_GCM_IV_LEN], pk_bytes aad, pk_bytes pt, uint8_t *out,
                                    bool in_tx);
PK_MUST_USE pk_result pk_ns_decrypt(pk_env *env, const char *ns, const uint8_t cmk_uuid[PK_UUID_LEN], uint32_t nsv,
                                    const uint8_t iv[PK_GCM_IV_LEN], pk_bytes aad, pk_bytes ct, pk_secbuf *pt,
                                    bool in_tx);
/* Current version of the chain (for reports); 0 when absent. */
PK_MUST_USE pk_result pk_ns_current_version(pk_env *env, const char *ns, const char *cmk, uint32_t *out);

/* Record codecs (also used by rewrap). */
PK_MUST_USE pk_result pk_nskey_from_record(const pk_record *rec, pk_nskey *out);
PK_MUST_USE pk_result pk_nskey_to_record(const pk_nskey *k, pk_record *rec);
void pk_nskey_clear(pk_nskey *k);
/* Inside a write transaction: append a new version wrapped under CMK version kek_version. */
PK_MUST_USE pk_result pk_nskey_add_version_tx(pk_env *env, pk_nskey *k, uint32_t kek_version);
/* Forget cached chains (after a rewrap by this handle). */
void pk_ns_forget(pk_env *env, const char *ns, const char *cmk);

/* ---- Secret records (secret_record.c) ---- */
typedef struct pk_secret {
    char id[PK_SECRET_ID_MAX + 1];
    char ns[PK_NS_MAX + 1];
    char cmk[PK_UUID_STR_LEN + 1];
    uint8_t cmk_uuid[PK_UUID_LEN];
    uint32_t version;             /* 1 on store, +1 on each update */
    uint32_t nsv;                 /* namespace-key version used */
    int64_t created_ms, updated_ms;
    uint8_t iv[PK_GCM_IV_LEN];
    pk_buf ct;                    /* ciphertext || tag */
    uint64_t rev;
} pk_secret;

void pk_secret_clear(pk_secret *s);
PK_MUST_USE pk_result pk_secret_from_record(const pk_record *rec, pk_secret *out);
PK_MUST_USE pk_result pk_secret_to_record(const pk_secret *s, pk_record *rec);
/* The GCM AAD: binds id, namespace, CMK, secret version, namespace-key version and times. */
PK_MUST_USE pk_result pk_secret_aad(const pk_secret *s, pk_buf *out);
/*
 * Encrypt the encoded map into s (fresh IV; ct). Every other field, nsv
 * included (from pk_ns_take_nonce), is set by the caller: it is the AAD.
 */
/* in_tx: the caller holds store_lock (inside pk_with_write_tx). */
PK_MUST_USE pk_result pk_secret_seal(pk_env *env, pk_secret *s, pk_bytes encoded_map, bool in_tx);
/* Decrypt s into an encoded map (locked memory). Caller has authorised. */
PK_MUST_USE pk_result pk_secret_open(pk_env *env, const pk_secret *s, pk_secbuf *encoded_map, bool in_tx);
/* Read a secret record without its MAC check (reads rely on the GCM tag; see secret_record.c). */
PK_MUST_USE pk_result pk_secret_read(pk_env *env, const char *id, pk_secret *out, pk_record *raw);
/* Read and verify (MAC) a secret record; NOT_FOUND when absent. Caller holds store_lock or not (take_lock). */
PK_MUST_USE pk_result pk_secret_load(pk_env *env, const char *id, bool take_lock, pk_secret *out);
/* Inside a write transaction: store s (insert when s->rev == 0, else update at s->rev). */
PK_MUST_USE pk_result pk_secret_save_tx(pk_env *env, pk_secret *s);
PK_MUST_USE pk_result pk_secret_id_validate(const char *id);
/* Whether name is a valid caller-chosen secret id (1..512 of [A-Za-z0-9/_+=.@-]). */
bool pk_secret_name_ok(const char *name);

/* ---- Cache of secret rows as stored, ciphertext only (secret_rows.c) ---- */
#define PK_ROWS_MAX 16384 /* rows kept per handle (about 15 MB with 64-byte values: ids hold 512-char names) */
typedef struct pk_rows pk_rows;
PK_MUST_USE pk_result pk_rows_new(size_t max, pk_rows **out);
void pk_rows_free(pk_rows *c);
/* Benchmarks and tests: change the bound (0 = off), dropping the oldest rows beyond it. */
void pk_rows_set_max(pk_rows *c, size_t max);
/* Take before reading a row from the store; pk_rows_put refuses the row if a write came in between. */
uint64_t pk_rows_ticket(pk_rows *c);
/* A copy of the cached row (caller clears it), when cached under this store generation. */
bool pk_rows_get(pk_rows *c, const char *id, uint64_t store_gen, pk_secret *out);
void pk_rows_put(pk_rows *c, const pk_secret *row, uint64_t store_gen, uint64_t ticket);
/* This handle writes or removes id (inside the write transaction). */
void pk_rows_forget(pk_rows *c, const char *id);
void pk_rows_stats(pk_rows *c, uint64_t *hits, uint64_t *misses, size_t *entries);
/* The handle's row cache. */
pk_rows *pk_secrets_rows(pk_secrets *s);
/* pk_rows_forget on the handle's cache (for write paths holding only the handle). */
void pk_secret_row_forget(pk_env *env, const char *id);

/* ---- Decrypted-map cache (secret_cache.c): off by default ---- */
/* On a hit: a copy of the map plus the namespace and CMK for the policy check. */
bool pk_cache_lookup(pk_secrets *s, const char *id, int64_t now_ms, char ns[PK_NS_MAX + 1],
                     char cmk[PK_UUID_STR_LEN + 1], pk_secbuf *encoded);
void pk_cache_store(pk_secrets *s, const char *id, const char *ns, const char *cmk, pk_bytes encoded, int64_t now_ms);
void pk_cache_forget(pk_secrets *s, const char *id);
void pk_cache_clear(pk_secrets *s);

/* ---- Connections (connection.c) ---- */
typedef struct pk_conn_opt {
    char *key;
    char *value;
} pk_conn_opt;

typedef struct pk_conn {
    char name[PK_CONN_NAME_MAX + 1];
    char ns[PK_NS_MAX + 1];
    char cmk[PK_UUID_STR_LEN + 1];
    char secret_id[PK_UUID_STR_LEN + 1];   /* "" = no sensitive options */
    char *type;
    char *comment;
    pk_conn_opt *opts;                      /* public options, sorted by key */
    size_t nopts;
    char **sensitive;                       /* names of the options kept in the secret, sorted */
    size_t nsensitive;
    int64_t created_ms, updated_ms;
    uint64_t rev;
} pk_conn;

/* Normalise and check [catalog.][db.]name. */
PK_MUST_USE pk_result pk_conn_name_validate(const char *name);
bool pk_conn_option_sensitive_builtin(const char *name);
void pk_conn_clear(pk_conn *c);
PK_MUST_USE pk_result pk_conn_from_record(const pk_record *rec, pk_conn *out);
PK_MUST_USE pk_result pk_conn_to_record(const pk_conn *c, pk_record *rec);
PK_MUST_USE pk_result pk_conn_set_opt(pk_conn *c, const char *key, const char *value);
bool pk_conn_del_opt(pk_conn *c, const char *key);
PK_MUST_USE pk_result pk_conn_add_sensitive(pk_conn *c, const char *key);
bool pk_conn_del_sensitive(pk_conn *c, const char *key);
/* Verified load; NOT_FOUND when absent. */
PK_MUST_USE pk_result pk_conn_load(pk_env *env, const char *name, bool take_lock, pk_conn *out);

#endif
