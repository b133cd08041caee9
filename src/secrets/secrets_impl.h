/* State shared by the files of src/secrets (not used elsewhere). */
#ifndef PK_SECRETS_IMPL_H
#define PK_SECRETS_IMPL_H

#include <pthread.h>

#include "secrets/secrets.h"

#define CHAIN_BUCKETS 4096
#define CHAIN_MAX 65536        /* verified chains kept; beyond it the cache starts over */
#define CACHE_BUCKETS 1024

/* A verified namespace-key chain and this handle's window of reserved GCM invocations. */
typedef struct chain_entry {
    char id[PK_UUID_STR_LEN + 1 + PK_NS_MAX + 1]; /* CMK:NS */
    pk_nskey k;
    pk_nonce_window win;       /* this handle's reserved invocations (keys/nonce_window.h) */
    uint8_t digest[16];        /* pk_nskey_id's name digest, so a read needs no SHA-256 */
    bool have_digest;
    struct chain_entry *next;
} chain_entry;

/* The configured key of a namespace. */
typedef struct nsdef_entry {
    char ns[PK_NS_MAX + 1];
    char cmk[PK_UUID_STR_LEN + 1];
    struct nsdef_entry *next;
} nsdef_entry;

/* A decrypted map (canonical encoding) in locked memory. */
typedef struct map_entry {
    char id[PK_UUID_STR_LEN + 1];
    char ns[PK_NS_MAX + 1];
    char cmk[PK_UUID_STR_LEN + 1];
    pk_secbuf enc;
    int64_t expires_ms;
    uint64_t uses;
    struct map_entry *hnext, *lru_prev, *lru_next;
} map_entry;

struct pk_secrets {
    pthread_mutex_t lock;          /* chains, nsdefs, cache, stats */
    pthread_mutex_t reserve_lock;  /* one nonce reservation at a time */
    chain_entry *chains[CHAIN_BUCKETS];
    size_t nchains;
    nsdef_entry *nsdefs[CHAIN_BUCKETS];
    size_t nnsdefs;
    uint64_t nonce_limit;
    uint64_t cache_ttl_ms;
    size_t cache_max;
    uint64_t cache_max_uses;
    map_entry *cache[CACHE_BUCKETS];
    map_entry lru;                 /* sentinel: lru.lru_next is the most recent */
    size_t ncache;
    char **sensitive;              /* extra names from sensitive_options, lower case */
    size_t nsensitive;
    pk_secrets_stats stats;
    pk_rows *rows;                 /* secret rows as stored (own lock) */
};

size_t pk_str_hash(const char *s);
void pk_chains_free_inlock(pk_secrets *s);

#endif
