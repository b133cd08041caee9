/*
 * One hash map with an optional LRU list, for every cache (util/ stands on
 * nothing: no allocation of entries, no global state, no locking).
 *
 * Intrusive: the caller embeds a pk_lru_node in its entry, owns the entry's
 * memory and the key bytes the node points at (they must live while the node
 * is in the map). Entries may be on the LRU list or not (e.g. the p11 cache
 * bounds only data keys); pk_lru_map_touch puts one at the front.
 *
 * Not thread-safe by itself: callers hold their own lock.
 *
 * Hash: 64-bit FNV-1a over the key, started from a per-map seed and finished
 * with a 64-bit avalanche mix. Keys are ids the service made or names an
 * authorised caller created one at a time, not attacker-chosen in bulk; a
 * caller that does face chosen keys passes a random seed to pk_lru_map_init.
 */
#ifndef PK_UTIL_LRU_MAP_H
#define PK_UTIL_LRU_MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/result.h"

typedef struct pk_lru_node {
    struct pk_lru_node *hnext;
    struct pk_lru_node *lru_prev, *lru_next; /* NULL when not on the LRU list */
    const void *key;
    size_t key_len;
    uint64_t hash;
} pk_lru_node;

typedef struct pk_lru_map {
    pk_lru_node **buckets;
    size_t nbuckets, count;
    pk_lru_node lru;  /* sentinel: lru.lru_next is the most recent */
    size_t lru_count; /* entries on the LRU list */
    uint64_t seed;
} pk_lru_map;

/* Called on LRU entries from the least recent while the list is over
 * capacity. Return false to keep n (e.g. pinned); to evict it, remove it
 * with pk_lru_map_remove, free or wipe it, and return true. */
typedef bool (*pk_lru_evict_fn)(pk_lru_map *m, pk_lru_node *n, void *ctx);
/* Releases one entry (pk_lru_map_clear); the node is already unlinked. */
typedef void (*pk_lru_release_fn)(pk_lru_node *n, void *ctx);

/* Entry pointer from its node: PK_LRU_ENTRY(node, cache_entry, node). */
#define PK_LRU_ENTRY(n, type, member) ((type *)(void *)((char *)(n) - offsetof(type, member)))

PK_MUST_USE pk_result pk_lru_map_init(pk_lru_map *m, size_t initial_buckets, uint64_t seed);
/* Release every entry (release may be NULL) and free the buckets. */
void pk_lru_map_destroy(pk_lru_map *m, pk_lru_release_fn release, void *ctx);
/* Release every entry but keep the map usable. */
void pk_lru_map_clear(pk_lru_map *m, pk_lru_release_fn release, void *ctx);

pk_lru_node *pk_lru_map_find(const pk_lru_map *m, const void *key, size_t key_len);
/* Add n under key (not already present; key bytes must outlive the node).
 * Not on the LRU list until touched. Never fails: if growing the table
 * cannot allocate, chains get longer but stay correct. */
void pk_lru_map_insert(pk_lru_map *m, pk_lru_node *n, const void *key, size_t key_len);
/* Unlink n from the table and the LRU list; the caller frees it. */
void pk_lru_map_remove(pk_lru_map *m, pk_lru_node *n);
/* Make n the most recently used (adding it to the LRU list if needed). */
void pk_lru_map_touch(pk_lru_map *m, pk_lru_node *n);
/* Evict from the least recent end while more than capacity entries are on
 * the LRU list; returns how many were evicted. */
size_t pk_lru_map_evict(pk_lru_map *m, size_t capacity, pk_lru_evict_fn evict, void *ctx);

/* Visit every entry (fn must not insert or remove). */
void pk_lru_map_each(const pk_lru_map *m, void (*fn)(pk_lru_node *n, void *ctx), void *ctx);

static inline size_t pk_lru_map_count(const pk_lru_map *m) { return m->count; }
static inline size_t pk_lru_map_lru_count(const pk_lru_map *m) { return m->lru_count; }
/* Least recently used entry on the list, or NULL. */
static inline pk_lru_node *pk_lru_map_oldest(const pk_lru_map *m)
{
    return m->lru.lru_prev == &m->lru ? NULL : m->lru.lru_prev;
}

#endif
