/* State shared by the files of src/secrets (not used elsewhere). */
#ifndef PK_SECRETS_IMPL_H
#define PK_SECRETS_IMPL_H

#include <pthread.h>

#include "secrets/secrets.h"
#include "util/lru_map.h"

#define CHAIN_BUCKETS 256       /* initial; the maps grow */
#define CHAIN_MAX 65536        /* verified chains kept; beyond it the cache starts over */
#define CACHE_BUCKETS 256

/* A verified namespace-key chain and this handle's window of reserved GCM invocations. */
typedef struct chain_entry {
    pk_lru_node node;          /* map key: id */
    char id[PK_UUID_STR_LEN + 1 + PK_NS_MAX + 1]; /* CMK:NS */
    pk_nskey k;
    pk_nonce_window win;       /* this handle's reserved invocations (keys/nonce_window.h) */
    uint8_t digest[16];        /* pk_nskey_id's name digest, so a read needs no SHA-256 */
    bool have_digest;
} chain_entry;

/* The configured key of a namespace. */
typedef struct nsdef_entry {
    pk_lru_node node;          /* map key: ns */
    char ns[PK_NS_MAX + 1];
    char cmk[PK_UUID_STR_LEN + 1];
} nsdef_entry;

/* A decrypted map (canonical encoding) in locked memory. */
typedef struct map_entry {
    pk_lru_node node;          /* map key: id; on the LRU list */
    char id[PK_SECRET_ID_MAX + 1];
    char ns[PK_NS_MAX + 1];
    char cmk[PK_UUID_STR_LEN + 1];
    pk_secbuf enc;
    int64_t expires_ms;
    uint64_t uses;
} map_entry;

struct pk_secrets {
    pthread_mutex_t lock;          /* chains, nsdefs, cache, stats */
    pthread_mutex_t reserve_lock;  /* one nonce reservation at a time */
    pk_lru_map chains;             /* CMK:NS -> chain_entry */
    pk_lru_map nsdefs;             /* NS -> nsdef_entry */
    uint64_t nonce_limit;
    uint64_t cache_ttl_ms;
    size_t cache_max;
    uint64_t cache_max_uses;
    pk_lru_map cache;              /* id -> map_entry, least recently used out */
    char **sensitive;              /* extra names from sensitive_options, lower case */
    size_t nsensitive;
    pk_secrets_stats stats;
    pk_rows *rows;                 /* secret rows as stored (own lock) */
};

void pk_chains_free_inlock(pk_secrets *s);
/* Free the chain and namespace maps (pk_secrets_free). */
void pk_chains_destroy(pk_secrets *s);

/* ---- the chain cache (secret_ns.c), used by secret_ns_use.c; *_inlock: hold s->lock ---- */
/* "CMK:NS", the chain's record id and cache key. */
void pk_chain_record_id(const char *cmk, const char *ns, char *out, size_t size);
chain_entry *pk_chain_find_inlock(pk_secrets *s, const char *id);
/* Put a verified chain in the cache (taking k), keeping the window when the version is the same. */
void pk_chain_put_inlock(pk_secrets *s, pk_nskey *k);
/* Load and verify a chain record. *found=false when absent. */
PK_MUST_USE pk_result pk_chain_load(pk_env *env, const char *ns, const char *cmk, bool take_lock, pk_nskey *out,
                                    bool *found);
/* The cached chain's version want_version, loading the chain when absent or older than min_version. */
PK_MUST_USE pk_result pk_chain_get(pk_env *env, pk_secrets *s, const char *ns, const char *cmk, uint32_t min_version,
                                   pk_nskey_version *ver_out, uint32_t want_version, bool in_tx, bool *found);
/* Inside a write transaction: save a modified chain record. */
PK_MUST_USE pk_result pk_nskey_save_tx(pk_env *env, pk_nskey *k);
/* 'N' || the chain's name digest || version: the CKA_ID of a namespace key's session object. */
void pk_nskey_id_of(const uint8_t digest[16], uint32_t version, pk_keyid *out);

#endif
