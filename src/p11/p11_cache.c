/*
 * Key id -> object handle cache.
 *
 * Token keys: the first miss in a connection sweeps every secret-key object
 * once (one FindObjects, whose cost SoftHSM makes proportional to the
 * number of objects anyway), so later first uses cost nothing; keys made
 * by other processes afterwards are found by a targeted FindObjects on
 * CKA_ID. Each token key used is copied once to a session object
 * (CKA_TOKEN=FALSE keeps SENSITIVE and non-EXTRACTABLE).
 *
 * Data keys (unwrapped namespace keys) exist only as session objects and
 * are bounded: the least recently used unpinned one is destroyed when the
 * limit is passed, so thousands of namespaces never exhaust the token.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "p11/p11_internal.h"

#define INITIAL_BUCKETS 1024
#define DEFAULT_DATA_KEY_LIMIT 4096
#define FIND_BATCH 256

pk_result p11_cache_init(pk_p11 *p)
{
    /* Ids are made by the service or by authorised callers, so no random seed. */
    PK_GUARD(pk_lru_map_init(&p->cache, INITIAL_BUCKETS, 0));
    p->data_key_limit = DEFAULT_DATA_KEY_LIMIT;
    pthread_mutex_init(&p->cache_lock, NULL);
    return PK_OK;
}

static cache_entry *lookup_inlock(pk_p11 *p, const pk_keyid *id)
{
    pk_lru_node *n = pk_lru_map_find(&p->cache, id->bytes, id->len);
    return n != NULL ? PK_LRU_ENTRY(n, cache_entry, node) : NULL;
}

static cache_entry *insert_inlock(pk_p11 *p, const pk_keyid *id)
{
    cache_entry *e = calloc(1, sizeof(*e));
    if (e == NULL) return NULL;
    e->id = *id;
    e->token_obj = CK_INVALID_HANDLE;
    e->session_obj = CK_INVALID_HANDLE;
    pk_lru_map_insert(&p->cache, &e->node, e->id.bytes, e->id.len);
    return e;
}

static void unlink_inlock(pk_p11 *p, cache_entry *e)
{
    pk_lru_map_remove(&p->cache, &e->node);
    free(e);
}

static void release_entry(pk_lru_node *n, void *ctx)
{
    (void)ctx;
    free(PK_LRU_ENTRY(n, cache_entry, node));
}

void p11_cache_forget_inlock(pk_p11 *p)
{
    pk_lru_map_clear(&p->cache, release_entry, NULL);
    p->swept = false;
}

void p11_cache_free(pk_p11 *p)
{
    if (p->cache.buckets == NULL) return;
    pk_lru_map_destroy(&p->cache, release_entry, NULL);
    pthread_mutex_destroy(&p->cache_lock);
}

static pk_result read_id(pk_p11 *p, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE obj, pk_keyid *id)
{
    CK_ATTRIBUTE a = P11_ATTR(CKA_ID, id->bytes, sizeof(id->bytes));
    CK_RV rv = p->fn->C_GetAttributeValue(s, obj, &a, 1);
    /*
     * A failing token is not a foreign object: skipping the object would
     * make one of our keys look absent (a store "of another token").
     */
    if (rv != CKR_OK && rv != CKR_ATTRIBUTE_TYPE_INVALID && rv != CKR_ATTRIBUTE_SENSITIVE && rv != CKR_BUFFER_TOO_SMALL)
        return pk_p11_rv_fail(rv, "C_GetAttributeValue");
    if (rv != CKR_OK || a.ulValueLen == CK_UNAVAILABLE_INFORMATION || a.ulValueLen > sizeof(id->bytes)) {
        id->len = 0;
        return PK_OK; /* not one of ours (no usable CKA_ID) */
    }
    id->len = a.ulValueLen;
    return PK_OK;
}

/* Run one FindObjects over `tmpl` and record every hit's token handle. */
static pk_result find_inlock(pk_p11 *p, CK_SESSION_HANDLE s, CK_ATTRIBUTE *tmpl, CK_ULONG n)
{
    pk_result r = PK_OK;
    CK_OBJECT_HANDLE objs[FIND_BATCH];
    CK_ULONG got = 0;

    P11_ENSURE_RV(p->fn->C_FindObjectsInit(s, tmpl, n), "C_FindObjectsInit");
    p->stats.find_sweeps++;
    do {
        P11_CHECK_RV(p->fn->C_FindObjects(s, objs, FIND_BATCH, &got), "C_FindObjects");
        for (CK_ULONG i = 0; i < got; i++) {
            pk_keyid id;
            cache_entry *e;
            PK_TRY(read_id(p, s, objs[i], &id));
            if (id.len == 0) continue;
            e = lookup_inlock(p, &id);
            if (e == NULL) e = insert_inlock(p, &id);
            PK_CHECK_ALLOC(e);
            if (!e->data_key) e->token_obj = objs[i];
        }
    } while (got == FIND_BATCH);
out:
    (void)p->fn->C_FindObjectsFinal(s);
    return r;
}

/* Locate the token object for id: full sweep once per connection, then targeted finds. */
static pk_result locate_inlock(pk_p11 *p, CK_SESSION_HANDLE s, const pk_keyid *id, cache_entry **out)
{
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_BBOOL yes = CK_TRUE;
    cache_entry *e;

    if (!p->swept) {
        CK_ATTRIBUTE all[] = {P11_ATTR(CKA_CLASS, &cls, sizeof(cls)), P11_ATTR(CKA_TOKEN, &yes, sizeof(yes))};
        PK_GUARD(find_inlock(p, s, all, PK_ARRAY_LEN(all)));
        p->swept = true;
    } else {
        CK_ATTRIBUTE one[] = {P11_ATTR(CKA_CLASS, &cls, sizeof(cls)), P11_ATTR(CKA_TOKEN, &yes, sizeof(yes)),
                              P11_ATTR(CKA_ID, (void *)id->bytes, id->len)};
        PK_GUARD(find_inlock(p, s, one, PK_ARRAY_LEN(one)));
    }
    e = lookup_inlock(p, id);
    *out = (e != NULL && e->token_obj != CK_INVALID_HANDLE) ? e : NULL;
    return PK_OK;
}

pk_result p11_cache_token_handle(pk_p11 *p, CK_SESSION_HANDLE s, const pk_keyid *id, CK_OBJECT_HANDLE *out)
{
    pk_result r = PK_OK;
    cache_entry *e;

    pthread_mutex_lock(&p->cache_lock);
    e = lookup_inlock(p, id);
    if (e == NULL || e->token_obj == CK_INVALID_HANDLE) r = locate_inlock(p, s, id, &e);
    *out = (pk_ok(r) && e != NULL) ? e->token_obj : CK_INVALID_HANDLE;
    pthread_mutex_unlock(&p->cache_lock);
    return r;
}

pk_result p11_cache_get(pk_p11 *p, CK_SESSION_HANDLE s, const pk_keyid *id, cache_entry **out)
{
    pk_result r = PK_OK;
    cache_entry *e;
    CK_BBOOL no = CK_FALSE;
    CK_ATTRIBUTE copy_tmpl[] = {P11_ATTR(CKA_TOKEN, &no, sizeof(no))};

    pthread_mutex_lock(&p->cache_lock);
    e = lookup_inlock(p, id);
    if (e != NULL && e->session_obj != CK_INVALID_HANDLE) goto found;
    if (e == NULL || e->token_obj == CK_INVALID_HANDLE) {
        PK_TRY(locate_inlock(p, s, id, &e));
        PK_CHECK(e != NULL, P11KMS_ERR_NOT_FOUND, "key object is missing from the token");
    }
    P11_CHECK_RV(p->fn->C_CopyObject(s, e->token_obj, copy_tmpl, PK_ARRAY_LEN(copy_tmpl), &e->session_obj),
                 "C_CopyObject");
    p->stats.copies++;
found:
    e->pins++;
    if (e->data_key) pk_lru_map_touch(&p->cache, &e->node);
    *out = e;
out:
    pthread_mutex_unlock(&p->cache_lock);
    return r;
}

void p11_cache_unpin(pk_p11 *p, cache_entry *e)
{
    pthread_mutex_lock(&p->cache_lock);
    e->pins--;
    pthread_mutex_unlock(&p->cache_lock);
}

void p11_cache_note_token_key(pk_p11 *p, const pk_keyid *id, CK_OBJECT_HANDLE obj)
{
    cache_entry *e;
    pthread_mutex_lock(&p->cache_lock);
    e = lookup_inlock(p, id);
    if (e == NULL) e = insert_inlock(p, id);
    if (e != NULL) e->token_obj = obj;
    pthread_mutex_unlock(&p->cache_lock);
}

void p11_cache_drop_copy(pk_p11 *p, CK_SESSION_HANDLE s, const pk_keyid *id)
{
    cache_entry *e;
    pthread_mutex_lock(&p->cache_lock);
    e = lookup_inlock(p, id);
    /* A pinned copy is in use: its operations finish, and the store's state refuses the key meanwhile. */
    if (e != NULL && !e->data_key && e->pins == 0 && e->session_obj != CK_INVALID_HANDLE) {
        (void)p->fn->C_DestroyObject(s, e->session_obj);
        e->session_obj = CK_INVALID_HANDLE;
    }
    pthread_mutex_unlock(&p->cache_lock);
}

void p11_cache_remove(pk_p11 *p, CK_SESSION_HANDLE s, const pk_keyid *id)
{
    cache_entry *e;
    pthread_mutex_lock(&p->cache_lock);
    e = lookup_inlock(p, id);
    if (e != NULL) {
        if (e->session_obj != CK_INVALID_HANDLE) (void)p->fn->C_DestroyObject(s, e->session_obj);
        unlink_inlock(p, e);
    }
    pthread_mutex_unlock(&p->cache_lock);
}

struct evict_ctx {
    pk_p11 *p;
    CK_SESSION_HANDLE s;
};

/* Eviction destroys the session object; pinned keys are in use and stay. */
static bool evict_one(pk_lru_map *m, pk_lru_node *n, void *ctx)
{
    const struct evict_ctx *c = ctx;
    cache_entry *e = PK_LRU_ENTRY(n, cache_entry, node);
    (void)m;
    if (e->pins > 0) return false;
    (void)c->p->fn->C_DestroyObject(c->s, e->session_obj);
    unlink_inlock(c->p, e);
    return true;
}

static void evict_inlock(pk_p11 *p, CK_SESSION_HANDLE s)
{
    struct evict_ctx c = {p, s};
    p->stats.evictions += pk_lru_map_evict(&p->cache, p->data_key_limit, evict_one, &c);
}

bool p11_cache_pin_data_key(pk_p11 *p, const pk_keyid *id, cache_entry **out)
{
    cache_entry *e;
    pthread_mutex_lock(&p->cache_lock);
    e = lookup_inlock(p, id);
    if (e != NULL && e->data_key) {
        e->pins++;
        pk_lru_map_touch(&p->cache, &e->node);
    } else {
        e = NULL;
    }
    pthread_mutex_unlock(&p->cache_lock);
    *out = e;
    return e != NULL;
}

pk_result p11_cache_put_data_key(pk_p11 *p, CK_SESSION_HANDLE s, const pk_keyid *id, CK_OBJECT_HANDLE obj,
                                 cache_entry **out)
{
    cache_entry *e;
    pthread_mutex_lock(&p->cache_lock);
    e = lookup_inlock(p, id);
    if (e != NULL && e->data_key) {
        /* Another thread unwrapped the same key first: keep its copy. */
        (void)p->fn->C_DestroyObject(s, obj);
    } else {
        e = insert_inlock(p, id);
        if (e == NULL) {
            pthread_mutex_unlock(&p->cache_lock);
            (void)p->fn->C_DestroyObject(s, obj);
            return pk_fail(P11KMS_ERR_NO_MEMORY, "out of memory");
        }
        e->data_key = true;
        e->session_obj = obj;
        pk_lru_map_touch(&p->cache, &e->node);
        p->stats.unwraps++;
    }
    e->pins++;
    evict_inlock(p, s);
    *out = e;
    pthread_mutex_unlock(&p->cache_lock);
    return PK_OK;
}

bool pk_p11_data_key_cached(pk_p11 *p, const pk_keyid *id)
{
    cache_entry *e;
    bool yes;
    pthread_mutex_lock(&p->cache_lock);
    e = lookup_inlock(p, id);
    yes = e != NULL && e->data_key;
    pthread_mutex_unlock(&p->cache_lock);
    return yes;
}

void pk_p11_set_data_key_limit(pk_p11 *p, size_t limit)
{
    pthread_mutex_lock(&p->cache_lock);
    p->data_key_limit = limit ? limit : 1;
    pthread_mutex_unlock(&p->cache_lock);
}

void pk_p11_get_stats(pk_p11 *p, pk_p11_stats *out)
{
    pthread_mutex_lock(&p->cache_lock);
    *out = p->stats;
    out->data_keys_cached = pk_lru_map_lru_count(&p->cache);
    pthread_mutex_unlock(&p->cache_lock);
}
