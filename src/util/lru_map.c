/* One hash-plus-LRU map for every cache; see lru_map.h. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "util/lru_map.h"

#define MIN_BUCKETS 16

static uint64_t hash_key(uint64_t seed, const void *key, size_t len)
{
    const unsigned char *b = key;
    uint64_t h = 1469598103934665603ull ^ seed; /* FNV-1a */
    for (size_t i = 0; i < len; i++) {
        h ^= b[i];
        h *= 1099511628211ull;
    }
    /* Avalanche (splitmix64 finaliser) so low bits index buckets well. */
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebull;
    return h ^ (h >> 31);
}

/* Table sizes are powers of two, so a mask picks the bucket. */
static size_t bucket_of(const pk_lru_map *m, uint64_t h) { return (size_t)h & (m->nbuckets - 1); }

pk_result pk_lru_map_init(pk_lru_map *m, size_t initial_buckets, uint64_t seed)
{
    size_t nb = MIN_BUCKETS;
    memset(m, 0, sizeof(*m));
    while (nb < initial_buckets && nb < ((size_t)1 << 40)) nb *= 2;
    m->buckets = calloc(nb, sizeof(*m->buckets));
    PK_ENSURE_ALLOC(m->buckets);
    m->nbuckets = nb;
    m->seed = seed;
    m->lru.lru_next = m->lru.lru_prev = &m->lru;
    return PK_OK;
}

void pk_lru_map_clear(pk_lru_map *m, pk_lru_release_fn release, void *ctx)
{
    for (size_t i = 0; i < m->nbuckets; i++) {
        pk_lru_node *n = m->buckets[i];
        m->buckets[i] = NULL;
        while (n != NULL) {
            pk_lru_node *next = n->hnext;
            n->hnext = n->lru_next = n->lru_prev = NULL;
            if (release != NULL) release(n, ctx);
            n = next;
        }
    }
    m->count = m->lru_count = 0;
    m->lru.lru_next = m->lru.lru_prev = &m->lru;
}

void pk_lru_map_destroy(pk_lru_map *m, pk_lru_release_fn release, void *ctx)
{
    if (m->buckets == NULL) return;
    pk_lru_map_clear(m, release, ctx);
    free(m->buckets);
    m->buckets = NULL;
    m->nbuckets = 0;
}

pk_lru_node *pk_lru_map_find(const pk_lru_map *m, const void *key, size_t key_len)
{
    uint64_t h = hash_key(m->seed, key, key_len);
    for (pk_lru_node *n = m->buckets[bucket_of(m, h)]; n != NULL; n = n->hnext)
        if (n->hash == h && n->key_len == key_len && memcmp(n->key, key, key_len) == 0) return n;
    return NULL;
}

static void grow(pk_lru_map *m)
{
    size_t old = m->nbuckets;
    pk_lru_node **b = calloc(old * 2, sizeof(*b));
    if (b == NULL) return; /* keep the longer chains; still correct */
    m->nbuckets = old * 2;
    for (size_t i = 0; i < old; i++) {
        pk_lru_node *n = m->buckets[i];
        while (n != NULL) {
            pk_lru_node *next = n->hnext;
            size_t j = bucket_of(m, n->hash);
            n->hnext = b[j];
            b[j] = n;
            n = next;
        }
    }
    free(m->buckets);
    m->buckets = b;
}

void pk_lru_map_insert(pk_lru_map *m, pk_lru_node *n, const void *key, size_t key_len)
{
    size_t j;
    if (m->count >= 2 * m->nbuckets) grow(m);
    n->key = key;
    n->key_len = key_len;
    n->hash = hash_key(m->seed, key, key_len);
    n->lru_next = n->lru_prev = NULL;
    j = bucket_of(m, n->hash);
    n->hnext = m->buckets[j];
    m->buckets[j] = n;
    m->count++;
}

static void lru_unlink(pk_lru_map *m, pk_lru_node *n)
{
    if (n->lru_next == NULL) return;
    n->lru_prev->lru_next = n->lru_next;
    n->lru_next->lru_prev = n->lru_prev;
    n->lru_next = n->lru_prev = NULL;
    m->lru_count--;
}

void pk_lru_map_remove(pk_lru_map *m, pk_lru_node *n)
{
    pk_lru_node **pp = &m->buckets[bucket_of(m, n->hash)];
    while (*pp != NULL && *pp != n) pp = &(*pp)->hnext;
    if (*pp == NULL) return; /* not in this map */
    *pp = n->hnext;
    n->hnext = NULL;
    lru_unlink(m, n);
    m->count--;
}

void pk_lru_map_touch(pk_lru_map *m, pk_lru_node *n)
{
    if (m->lru.lru_next == n) return; /* already the most recent */
    lru_unlink(m, n);
    n->lru_next = m->lru.lru_next;
    n->lru_prev = &m->lru;
    m->lru.lru_next->lru_prev = n;
    m->lru.lru_next = n;
    m->lru_count++;
}

size_t pk_lru_map_evict(pk_lru_map *m, size_t capacity, pk_lru_evict_fn evict, void *ctx)
{
    size_t evicted = 0;
    pk_lru_node *n = m->lru.lru_prev;
    while (m->lru_count > capacity && n != &m->lru) {
        pk_lru_node *prev = n->lru_prev; /* n may be freed by evict */
        if (evict(m, n, ctx)) evicted++;
        n = prev;
    }
    return evicted;
}

void pk_lru_map_each(const pk_lru_map *m, void (*fn)(pk_lru_node *n, void *ctx), void *ctx)
{
    for (size_t i = 0; i < m->nbuckets; i++)
        for (pk_lru_node *n = m->buckets[i]; n != NULL; n = n->hnext) fn(n, ctx);
}
