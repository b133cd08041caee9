/*
 * Cache of secret rows as they are stored: metadata, IV and ciphertext,
 * never plaintext. A repeated get then skips the store read (a SQLite read
 * transaction is about a quarter of a get, most of it file locking); the
 * decrypt in the HSM, the policy check and the audit record still happen
 * on every get.
 *
 * Freshness is the key cache's (keys/key_cache.c): writes by other
 * processes drop the whole cache when the store reports a change, which a
 * handle asks at most every store_recheck_ms (50 ms); this handle's own
 * writes forget their row inside the write transaction. A reader that read
 * a row while this handle was writing one never caches it: every forget
 * bumps a ticket, and pk_rows_put refuses a row read under an older one.
 * Bounded, least recently used first out.
 */
#include "config.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "secrets/secrets_impl.h"

#include "util/lru_map.h"

#define ROW_BUCKETS 1024 /* initial; the map grows */

typedef struct row_entry {
    pk_lru_node node; /* map key: row.id */
    pk_secret row;
} row_entry;

struct pk_rows {
    pthread_mutex_t lock;
    pk_lru_map map;     /* every entry is on the LRU list */
    size_t max;
    uint64_t ticket;    /* +1 on every forget */
    uint64_t store_gen; /* pk_store_generation the rows were read under */
    uint64_t hits, misses;
};

static void release_row(pk_lru_node *n, void *ctx)
{
    row_entry *e = PK_LRU_ENTRY(n, row_entry, node);
    (void)ctx;
    pk_secret_clear(&e->row);
    free(e);
}

pk_result pk_rows_new(size_t max, pk_rows **out)
{
    pk_rows *c = calloc(1, sizeof(*c));
    PK_ENSURE_ALLOC(c);
    if (pk_failed(pk_lru_map_init(&c->map, ROW_BUCKETS, 0))) {
        free(c);
        return pk_fail(P11KMS_ERR_NO_MEMORY, "out of memory");
    }
    pthread_mutex_init(&c->lock, NULL);
    c->max = max;
    *out = c;
    return PK_OK;
}

static void drop_inlock(pk_rows *c, row_entry *e)
{
    pk_lru_map_remove(&c->map, &e->node);
    release_row(&e->node, NULL);
}

static bool evict_row(pk_lru_map *m, pk_lru_node *n, void *ctx)
{
    (void)ctx;
    pk_lru_map_remove(m, n);
    release_row(n, NULL);
    return true;
}

static void clear_inlock(pk_rows *c) { pk_lru_map_clear(&c->map, release_row, NULL); }

void pk_rows_free(pk_rows *c)
{
    if (c == NULL) return;
    pk_lru_map_destroy(&c->map, release_row, NULL);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

static row_entry *find_inlock(pk_rows *c, const char *id)
{
    pk_lru_node *n = pk_lru_map_find(&c->map, id, strlen(id));
    return n ? PK_LRU_ENTRY(n, row_entry, node) : NULL;
}

/* Rows read before another process's write was noticed are all suspect. */
static bool current_inlock(pk_rows *c, uint64_t store_gen)
{
    if (store_gen == c->store_gen) return true;
    if (store_gen < c->store_gen) return false;
    clear_inlock(c);
    c->store_gen = store_gen;
    return true;
}

static pk_result copy_row(const pk_secret *from, pk_secret *to)
{
    *to = *from;
    memset(&to->ct, 0, sizeof(to->ct));
    return pk_buf_append(&to->ct, from->ct.data, from->ct.len);
}

void pk_rows_set_max(pk_rows *c, size_t max)
{
    pthread_mutex_lock(&c->lock);
    c->max = max;
    (void)pk_lru_map_evict(&c->map, max, evict_row, NULL);
    pthread_mutex_unlock(&c->lock);
}

uint64_t pk_rows_ticket(pk_rows *c)
{
    uint64_t t;
    pthread_mutex_lock(&c->lock);
    t = c->ticket;
    pthread_mutex_unlock(&c->lock);
    return t;
}

bool pk_rows_get(pk_rows *c, const char *id, uint64_t store_gen, pk_secret *out)
{
    row_entry *e = NULL;
    bool hit = false;
    pthread_mutex_lock(&c->lock);
    if (c->max > 0 && current_inlock(c, store_gen) && (e = find_inlock(c, id)) != NULL &&
        pk_ok(copy_row(&e->row, out))) {
        pk_lru_map_touch(&c->map, &e->node);
        hit = true;
    }
    if (hit) c->hits++;
    else c->misses++;
    pthread_mutex_unlock(&c->lock);
    if (!hit) pk_error_clear(); /* a failed copy is only a miss */
    return hit;
}

void pk_rows_put(pk_rows *c, const pk_secret *row, uint64_t store_gen, uint64_t ticket)
{
    row_entry *e;
    pthread_mutex_lock(&c->lock);
    if (c->max == 0 || ticket != c->ticket || !current_inlock(c, store_gen)) goto done;
    if ((e = find_inlock(c, row->id)) != NULL) drop_inlock(c, e);
    (void)pk_lru_map_evict(&c->map, c->max - 1, evict_row, NULL);
    if ((e = calloc(1, sizeof(*e))) == NULL) goto done; /* only a cache */
    if (pk_failed(copy_row(row, &e->row))) {
        pk_error_clear();
        free(e);
        goto done;
    }
    pk_lru_map_insert(&c->map, &e->node, e->row.id, strlen(e->row.id));
    pk_lru_map_touch(&c->map, &e->node);
done:
    pthread_mutex_unlock(&c->lock);
}

void pk_rows_forget(pk_rows *c, const char *id)
{
    row_entry *e;
    pthread_mutex_lock(&c->lock);
    c->ticket++;
    if ((e = find_inlock(c, id)) != NULL) drop_inlock(c, e);
    pthread_mutex_unlock(&c->lock);
}

void pk_rows_stats(pk_rows *c, uint64_t *hits, uint64_t *misses, size_t *entries)
{
    pthread_mutex_lock(&c->lock);
    *hits = c->hits;
    *misses = c->misses;
    *entries = pk_lru_map_count(&c->map);
    pthread_mutex_unlock(&c->lock);
}
