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

static size_t hash_id(const pk_keyid *id)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < id->len; i++) {
        h ^= id->bytes[i];
        h *= 1099511628211ull;
    }
    return (size_t)h;
}

static bool id_equal(const pk_keyid *a, const pk_keyid *b)
{
    return a->len == b->len && memcmp(a->bytes, b->bytes, a->len) == 0;
}

pk_result p11_cache_init(pk_p11 *p)
{
    p->nbuckets = INITIAL_BUCKETS;
    p->buckets = calloc(p->nbuckets, sizeof(*p->buckets));
    PK_ENSURE_ALLOC(p->buckets);
    p->lru.lru_next = p->lru.lru_prev = &p->lru;
    p->data_key_limit = DEFAULT_DATA_KEY_LIMIT;
    pthread_mutex_init(&p->cache_lock, NULL);
    return PK_OK;
}

static cache_entry *lookup_inlock(pk_p11 *p, const pk_keyid *id)
{
    for (cache_entry *e = p->buckets[hash_id(id) % p->nbuckets]; e != NULL; e = e->hnext)
        if (id_equal(&e->id, id)) return e;
    return NULL;
}

static void lru_unlink(cache_entry *e)
{
    e->lru_prev->lru_next = e->lru_next;
    e->lru_next->lru_prev = e->lru_prev;
    e->lru_next = e->lru_prev = NULL;
}

static void lru_push_front(pk_p11 *p, cache_entry *e)
{
    e->lru_next = p->lru.lru_next;
    e->lru_prev = &p->lru;
    p->lru.lru_next->lru_prev = e;
    p->lru.lru_next = e;
}

static void grow_inlock(pk_p11 *p)
{
    size_t nb = p->nbuckets * 2;
    cache_entry **b = calloc(nb, sizeof(*b));
    if (b == NULL) return; /* keep the longer chains; still correct */
    for (size_t i = 0; i < p->nbuckets; i++) {
        cache_entry *e = p->buckets[i];
        while (e != NULL) {
            cache_entry *next = e->hnext;
            size_t h = hash_id(&e->id) % nb;
            e->hnext = b[h];
            b[h] = e;
            e = next;
        }
    }
    free(p->buckets);
    p->buckets = b;
    p->nbuckets = nb;
}

static cache_entry *insert_inlock(pk_p11 *p, const pk_keyid *id)
{
    cache_entry *e = calloc(1, sizeof(*e));
    size_t h;
    if (e == NULL) return NULL;
    if (p->count >= 2 * p->nbuckets) grow_inlock(p);
    e->id = *id;
    e->token_obj = CK_INVALID_HANDLE;
    e->session_obj = CK_INVALID_HANDLE;
    h = hash_id(id) % p->nbuckets;
    e->hnext = p->buckets[h];
    p->buckets[h] = e;
    p->count++;
    return e;
}

static void unlink_inlock(pk_p11 *p, cache_entry *e)
{
    cache_entry **pp = &p->buckets[hash_id(&e->id) % p->nbuckets];
    while (*pp != e) pp = &(*pp)->hnext;
    *pp = e->hnext;
    if (e->data_key) {
        lru_unlink(e);
        p->data_keys--;
    }
    p->count--;
    free(e);
}

void p11_cache_forget_inlock(pk_p11 *p)
{
    for (size_t i = 0; i < p->nbuckets; i++) {
        cache_entry *e = p->buckets[i];
        while (e != NULL) {
            cache_entry *next = e->hnext;
            free(e);
            e = next;
        }
        p->buckets[i] = NULL;
    }
    p->count = 0;
    p->data_keys = 0;
    p->lru.lru_next = p->lru.lru_prev = &p->lru;
    p->swept = false;
}

void p11_cache_free(pk_p11 *p)
{
    if (p->buckets == NULL) return;
    p11_cache_forget_inlock(p);
    free(p->buckets);
    p->buckets = NULL;
    pthread_mutex_destroy(&p->cache_lock);
}

static pk_result read_id(pk_p11 *p, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE obj, pk_keyid *id)
{
    CK_ATTRIBUTE a = P11_ATTR(CKA_ID, id->bytes, sizeof(id->bytes));
    CK_RV rv = p->fn->C_GetAttributeValue(s, obj, &a, 1);
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
    if (e->data_key) {
        lru_unlink(e);
        lru_push_front(p, e);
    }
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

static void evict_inlock(pk_p11 *p, CK_SESSION_HANDLE s)
{
    cache_entry *e = p->lru.lru_prev;
    while (p->data_keys > p->data_key_limit && e != &p->lru) {
        cache_entry *prev = e->lru_prev;
        if (e->pins == 0) {
            (void)p->fn->C_DestroyObject(s, e->session_obj);
            unlink_inlock(p, e);
            p->stats.evictions++;
        }
        e = prev;
    }
}

bool p11_cache_pin_data_key(pk_p11 *p, const pk_keyid *id, cache_entry **out)
{
    cache_entry *e;
    pthread_mutex_lock(&p->cache_lock);
    e = lookup_inlock(p, id);
    if (e != NULL && e->data_key) {
        e->pins++;
        lru_unlink(e);
        lru_push_front(p, e);
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
        lru_push_front(p, e);
        p->data_keys++;
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
    out->data_keys_cached = p->data_keys;
    pthread_mutex_unlock(&p->cache_lock);
}
