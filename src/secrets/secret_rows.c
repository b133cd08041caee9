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

#define ROW_BUCKETS 4096

typedef struct row_entry {
    pk_secret row;
    struct row_entry *hnext, *lru_prev, *lru_next;
} row_entry;

struct pk_rows {
    pthread_mutex_t lock;
    row_entry *buckets[ROW_BUCKETS];
    row_entry lru; /* sentinel: lru.lru_next is the most recent */
    size_t n, max;
    uint64_t ticket;    /* +1 on every forget */
    uint64_t store_gen; /* pk_store_generation the rows were read under */
    uint64_t hits, misses;
};

pk_result pk_rows_new(size_t max, pk_rows **out)
{
    pk_rows *c = calloc(1, sizeof(*c));
    PK_ENSURE_ALLOC(c);
    pthread_mutex_init(&c->lock, NULL);
    c->lru.lru_next = c->lru.lru_prev = &c->lru;
    c->max = max;
    *out = c;
    return PK_OK;
}

static void drop_inlock(pk_rows *c, row_entry *e)
{
    row_entry **pp = &c->buckets[pk_str_hash(e->row.id) % ROW_BUCKETS];
    while (*pp != e) pp = &(*pp)->hnext;
    *pp = e->hnext;
    e->lru_prev->lru_next = e->lru_next;
    e->lru_next->lru_prev = e->lru_prev;
    pk_secret_clear(&e->row);
    free(e);
    c->n--;
}

static void clear_inlock(pk_rows *c)
{
    while (c->lru.lru_next != &c->lru) drop_inlock(c, c->lru.lru_next);
}

void pk_rows_free(pk_rows *c)
{
    if (c == NULL) return;
    clear_inlock(c);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

static row_entry *find_inlock(pk_rows *c, const char *id)
{
    for (row_entry *e = c->buckets[pk_str_hash(id) % ROW_BUCKETS]; e != NULL; e = e->hnext)
        if (strcmp(e->row.id, id) == 0) return e;
    return NULL;
}

static void to_front_inlock(pk_rows *c, row_entry *e)
{
    e->lru_next = c->lru.lru_next;
    e->lru_prev = &c->lru;
    c->lru.lru_next->lru_prev = e;
    c->lru.lru_next = e;
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
    while (c->n > max) drop_inlock(c, c->lru.lru_prev);
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
        e->lru_prev->lru_next = e->lru_next;
        e->lru_next->lru_prev = e->lru_prev;
        to_front_inlock(c, e);
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
    while (c->n >= c->max) drop_inlock(c, c->lru.lru_prev);
    if ((e = calloc(1, sizeof(*e))) == NULL) goto done; /* only a cache */
    if (pk_failed(copy_row(row, &e->row))) {
        pk_error_clear();
        free(e);
        goto done;
    }
    e->hnext = c->buckets[pk_str_hash(row->id) % ROW_BUCKETS];
    c->buckets[pk_str_hash(row->id) % ROW_BUCKETS] = e;
    to_front_inlock(c, e);
    c->n++;
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
    *entries = c->n;
    pthread_mutex_unlock(&c->lock);
}
