/*
 * Per-handle cache of verified key records and their compiled policies.
 *
 * A hit costs a hash lookup. Alias mappings are cached the same way, so a
 * request by alias costs no store read or HSM MAC check either. At most
 * every store_recheck_ms (50 ms) the store is asked whether anyone else
 * wrote (PRAGMA data_version for SQLite); if so the whole cache is dropped. So a key disabled by another
 * process is refused by a long-lived handle within 50 ms, and at once by a
 * new process. Own writes forget the keys they touched immediately.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "crypto/crypto.h"
#include "keys/keys.h"
#include "util/lru_map.h"

#define INITIAL_BUCKETS 64

/* A cached key record; its map key is key->id. */
typedef struct entry {
    pk_lru_node node;
    pk_key *key;
} entry;

/* A verified alias -> key id mapping (the alias record's MAC was checked when it was read). */
typedef struct alias_entry {
    pk_lru_node node;
    char alias[PK_ALIAS_MAX + 8];
    char key_id[PK_UUID_STR_LEN + 1];
} alias_entry;

/* Both maps are unbounded (keys and aliases are few) and use no LRU list. */
struct pk_keycache {
    pthread_mutex_t lock;
    pk_lru_map keys;     /* key id -> entry */
    pk_lru_map aliases;  /* alias -> alias_entry */
    uint64_t generation; /* +1 each time another process's write is noticed */
};

static void key_unref(pk_key *k)
{
    if (__atomic_sub_fetch(&k->refs, 1, __ATOMIC_ACQ_REL) == 0) pk_key_free(k);
}

static void release_key(pk_lru_node *n, void *ctx)
{
    entry *e = PK_LRU_ENTRY(n, entry, node);
    (void)ctx;
    key_unref(e->key);
    free(e);
}

static void release_alias(pk_lru_node *n, void *ctx)
{
    (void)ctx;
    free(PK_LRU_ENTRY(n, alias_entry, node));
}

pk_result pk_keycache_new(struct pk_keycache **out)
{
    pk_result r = PK_OK;
    struct pk_keycache *c = calloc(1, sizeof(*c));
    PK_ENSURE_ALLOC(c);
    r = pk_lru_map_init(&c->keys, INITIAL_BUCKETS, 0);
    if (pk_ok(r)) r = pk_lru_map_init(&c->aliases, INITIAL_BUCKETS, 0);
    if (pk_failed(r)) {
        pk_lru_map_destroy(&c->keys, NULL, NULL);
        free(c);
        return r;
    }
    pthread_mutex_init(&c->lock, NULL);
    *out = c;
    return PK_OK;
}

static void flush_aliases_inlock(struct pk_keycache *c) { pk_lru_map_clear(&c->aliases, release_alias, NULL); }

static void flush_inlock(struct pk_keycache *c)
{
    flush_aliases_inlock(c);
    pk_lru_map_clear(&c->keys, release_key, NULL);
}

static entry *key_find_inlock(struct pk_keycache *c, const char *key_id)
{
    pk_lru_node *n = pk_lru_map_find(&c->keys, key_id, strlen(key_id));
    return n ? PK_LRU_ENTRY(n, entry, node) : NULL;
}

static alias_entry *alias_find_inlock(struct pk_keycache *c, const char *alias)
{
    pk_lru_node *n = pk_lru_map_find(&c->aliases, alias, strlen(alias));
    return n ? PK_LRU_ENTRY(n, alias_entry, node) : NULL;
}

void pk_keycache_free(struct pk_keycache *c)
{
    if (c == NULL) return;
    pk_lru_map_destroy(&c->aliases, release_alias, NULL);
    pk_lru_map_destroy(&c->keys, release_key, NULL);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

void pk_alias_forget_all(pk_env *env)
{
    pthread_mutex_lock(&env->keys->lock);
    flush_aliases_inlock(env->keys);
    pthread_mutex_unlock(&env->keys->lock);
}

void pk_key_forget(pk_env *env, const char *key_id)
{
    struct pk_keycache *c = env->keys;
    entry *e;
    pthread_mutex_lock(&c->lock);
    /* Its aliases may be gone too (purge deletes them); aliases are few, so drop them all. */
    flush_aliases_inlock(c);
    if ((e = key_find_inlock(c, key_id)) != NULL) {
        pk_lru_map_remove(&c->keys, &e->node);
        release_key(&e->node, NULL);
    }
    pthread_mutex_unlock(&c->lock);
}

void pk_key_release(pk_env *env, pk_key *k)
{
    (void)env;
    if (k != NULL) key_unref(k);
}

static pk_result load_inlock(pk_env *env, const char *key_id, pk_key **out)
{
    pk_record rec = {0};
    bool found = false;
    pk_result r = pk_records_load(env->rs, "key", key_id, &rec, &found);
    if (pk_ok(r) && !found) r = pk_fail(P11KMS_ERR_NOT_FOUND, "key %s not found", key_id);
    if (pk_ok(r)) r = pk_key_from_record(&rec, out);
    if (pk_ok(r)) pk_key_arn(env, (*out)->id, (*out)->arn, sizeof((*out)->arn));
    pk_record_clear(&rec);
    return r;
}

pk_result pk_key_load_tx(pk_env *env, const char *key_id, pk_key **out)
{
    PK_GUARD(load_inlock(env, key_id, out));
    (*out)->refs = 1;
    return PK_OK;
}

pk_result pk_key_save_tx(pk_env *env, pk_key *k)
{
    pk_record rec;
    pk_result r = pk_key_to_record(k, &rec);
    if (pk_ok(r)) r = pk_records_save(env->rs, &rec, k->rev);
    if (pk_ok(r)) k->rev = rec.rev;
    pk_record_clear(&rec);
    return r;
}

/*
 * At most every store_recheck_ms, ask the store whether another process
 * wrote; if so, drop every cached record and alias.
 */
static pk_result refresh_if_changed(pk_env *env)
{
    bool changed = false;
    pk_result r;

    pk_records_lock(env->rs);
    r = pk_records_changed(env->rs, &changed);
    if (pk_ok(r) && changed) {
        pthread_mutex_lock(&env->keys->lock);
        flush_inlock(env->keys);
        __atomic_add_fetch(&env->keys->generation, 1, __ATOMIC_ACQ_REL);
        pthread_mutex_unlock(&env->keys->lock);
    }
    pk_records_unlock(env->rs);
    return r;
}

pk_result pk_store_generation(pk_env *env, uint64_t *gen)
{
    PK_GUARD(refresh_if_changed(env));
    *gen = __atomic_load_n(&env->keys->generation, __ATOMIC_ACQUIRE);
    return PK_OK;
}

bool pk_alias_cached(pk_env *env, const char *alias, char key_id[PK_UUID_STR_LEN + 1])
{
    struct pk_keycache *c = env->keys;
    alias_entry *a;
    if (pk_failed(refresh_if_changed(env))) return false;
    pthread_mutex_lock(&c->lock);
    if ((a = alias_find_inlock(c, alias)) != NULL) memcpy(key_id, a->key_id, PK_UUID_STR_LEN + 1);
    pthread_mutex_unlock(&c->lock);
    return a != NULL;
}

void pk_alias_remember(pk_env *env, const char *alias, const char key_id[PK_UUID_STR_LEN + 1])
{
    struct pk_keycache *c = env->keys;
    alias_entry *a = calloc(1, sizeof(*a)), *old;
    if (a == NULL) return; /* only a cache */
    if (!pk_strlcpy(a->alias, sizeof(a->alias), alias)) {
        free(a);
        return;
    }
    memcpy(a->key_id, key_id, PK_UUID_STR_LEN + 1);
    pthread_mutex_lock(&c->lock);
    if ((old = alias_find_inlock(c, alias)) != NULL) { /* the latest read wins */
        pk_lru_map_remove(&c->aliases, &old->node);
        free(old);
    }
    pk_lru_map_insert(&c->aliases, &a->node, a->alias, strlen(a->alias));
    pthread_mutex_unlock(&c->lock);
}

pk_result pk_key_get(pk_env *env, const char *key_id, pk_key **out)
{
    struct pk_keycache *c = env->keys;
    pk_result r;
    pk_key *k = NULL;
    entry *e;

    PK_GUARD(refresh_if_changed(env));

    pthread_mutex_lock(&c->lock);
    if ((e = key_find_inlock(c, key_id)) != NULL) {
        __atomic_add_fetch(&e->key->refs, 1, __ATOMIC_ACQ_REL);
        *out = e->key;
        pthread_mutex_unlock(&c->lock);
        return PK_OK;
    }
    pthread_mutex_unlock(&c->lock);

    pk_records_lock(env->rs);
    r = load_inlock(env, key_id, &k);
    pk_records_unlock(env->rs);
    PK_GUARD(r);
    k->refs = 2; /* the cache's and the caller's */
    e = calloc(1, sizeof(*e));
    if (e == NULL) {
        pk_key_free(k);
        return pk_fail(P11KMS_ERR_NO_MEMORY, "out of memory");
    }
    e->key = k;
    pthread_mutex_lock(&c->lock);
    if (key_find_inlock(c, key_id) == NULL) {
        pk_lru_map_insert(&c->keys, &e->node, k->id, strlen(k->id));
        e = NULL;
    } else {
        k->refs = 1; /* another thread cached it meanwhile: ours is the caller's alone */
    }
    pthread_mutex_unlock(&c->lock);
    free(e);
    *out = k;
    return PK_OK;
}

/* Inside a write transaction: reserve `block` invocations, rotating first when the budget is spent. */
typedef struct reserve_job {
    pk_env *env;
    const char *key_id;
    uint64_t block;
    uint32_t version;
    uint64_t start;
    bool rotated;
} reserve_job;

static pk_result reserve_tx(void *ctx)
{
    reserve_job *j = ctx;
    pk_env *env = j->env;
    pk_key *k = NULL;
    pk_result r = PK_OK;

    PK_TRY(pk_key_load_tx(env, j->key_id, &k));
    if (pk_nonce_budget_spent(k->nonce_reserved, j->block, env->nonce_limit)) {
        PK_TRY(pk_key_add_version_tx(env, k));
        j->rotated = true;
    }
    j->version = k->nversions;
    j->start = k->nonce_reserved;
    k->nonce_reserved += j->block;
    PK_TRY(pk_key_save_tx(env, k));
out:
    pk_key_release(env, k);
    return r;
}

static void make_iv(const uint8_t fixed[4], uint64_t counter, uint8_t iv[PK_GCM_IV_LEN])
{
    memcpy(iv, fixed, 4);
    pk_store_be64(iv + 4, counter);
}

/*
 * The cached record is stale (the key rotated: budget spent, or another
 * process rotated it). Replace it with the fresh one and hand it the new
 * window, so the reservation is not wasted.
 */
static void hand_to_fresh(pk_env *env, const char *key_id, const reserve_job *j, const uint8_t fixed[4])
{
    pk_key *fresh = NULL;
    pk_key_forget(env, key_id);
    if (pk_failed(pk_key_get(env, key_id, &fresh))) return;
    pthread_mutex_lock(&fresh->nonce_lock);
    if (fresh->nversions == j->version && fresh->win.end == 0) {
        memcpy(fresh->iv_fixed, fixed, 4);
        pk_nonce_window_fill(&fresh->win, j->version, j->start, j->block);
    }
    pthread_mutex_unlock(&fresh->nonce_lock);
    pk_key_release(env, fresh);
}

pk_result pk_key_take_nonce(pk_env *env, pk_key *k, uint32_t *version, uint8_t iv[PK_GCM_IV_LEN])
{
    reserve_job j;
    uint8_t fixed[4];
    uint64_t counter;
    pk_result r;
    bool stale;

    pthread_mutex_lock(&k->nonce_lock);
    if (pk_nonce_window_take(&k->win, k->nversions, &counter)) {
        make_iv(k->iv_fixed, counter, iv);
        *version = k->nversions;
        pthread_mutex_unlock(&k->nonce_lock);
        return PK_OK;
    }
    /*
     * Reserve under the key's lock so threads sharing this key wait for one
     * reservation instead of each writing the store.
     */
    memset(&j, 0, sizeof(j));
    j.env = env;
    j.key_id = k->id;
    j.block = pk_nonce_window_block(&k->win, env->nonce_limit);
    r = pk_random(fixed, sizeof(fixed));
    if (pk_ok(r)) r = pk_records_write_tx(env->rs, reserve_tx, &j);
    stale = pk_ok(r) && (j.rotated || j.version != k->nversions);
    if (pk_ok(r) && !stale) {
        memcpy(k->iv_fixed, fixed, sizeof(fixed));
        pk_nonce_window_fill(&k->win, j.version, j.start, j.block);
    }
    if (pk_ok(r)) {
        make_iv(fixed, j.start, iv);
        *version = j.version;
    }
    pthread_mutex_unlock(&k->nonce_lock);
    if (stale) hand_to_fresh(env, k->id, &j, fixed);
    return r;
}

/* ---- every key record, verified (listing and reports; not a hot path) ---- */

typedef struct walk_ctx {
    pk_env *env;
    pk_key_list *l;
    pk_result err;
} walk_ctx;

static bool collect_key(const pk_record *rec, void *ctx)
{
    walk_ctx *w = ctx;
    pk_key_list *l = w->l;
    pk_key *k = NULL;
    w->err = pk_records_check(w->env->rs, rec);
    if (pk_ok(w->err)) w->err = pk_key_from_record(rec, &k);
    if (pk_failed(w->err)) return false;
    pk_key_arn(w->env, k->id, k->arn, sizeof(k->arn));
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 32;
        pk_key **p = realloc(l->keys, cap * sizeof(*p));
        if (p == NULL) {
            pk_key_free(k);
            w->err = pk_fail(P11KMS_ERR_NO_MEMORY, "out of memory");
            return false;
        }
        l->keys = p;
        l->cap = cap;
    }
    l->keys[l->n++] = k;
    return true;
}

pk_result pk_key_load_all(pk_env *env, pk_key_list *l)
{
    walk_ctx w = {env, l, PK_OK};
    pk_result r;
    memset(l, 0, sizeof(*l));
    pk_records_lock(env->rs);
    r = env->rs->store->ops->list(env->rs->store, "key", NULL, collect_key, &w);
    pk_records_unlock(env->rs);
    if (pk_ok(r)) r = w.err;
    if (pk_failed(r)) pk_key_list_free(l);
    return r;
}

void pk_key_list_free(pk_key_list *l)
{
    for (size_t i = 0; i < l->n; i++) pk_key_free(l->keys[i]);
    free(l->keys);
    memset(l, 0, sizeof(*l));
}
