/*
 * Per-handle secrets state: verified namespace-key chains, nonce windows,
 * the decrypted-map cache and configuration.
 *
 * core/handle.c makes it when a handle opens and frees it (wiping the
 * decrypted-map cache) when the handle closes; it reaches this folder as
 * pk_env.secrets. There is no process-wide state.
 */
#include "config.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"
#include "secrets/secrets_impl.h"

#define TTL_MAX_S (7 * 86400UL)
#define CACHE_DEFAULT_MAX 1000

static void entry_release(pk_lru_node *n, void *ctx);

void pk_secrets_free(pk_secrets *s)
{
    if (s == NULL) return;
    pk_chains_destroy(s);
    pk_lru_map_destroy(&s->cache, entry_release, NULL); /* wipes the maps */
    pk_rows_free(s->rows);
    for (size_t i = 0; i < s->nsensitive; i++) free(s->sensitive[i]);
    free(s->sensitive);
    pthread_mutex_destroy(&s->lock);
    pthread_mutex_destroy(&s->reserve_lock);
    free(s);
}

/* sensitive_options = a, b, c: extra option names treated like password. */
static pk_result read_sensitive(pk_secrets *s, const p11kms_config *cfg)
{
    const char *v = p11kms_config_get(cfg, "sensitive_options");
    const char *p = v;
    while (p != NULL && *p != '\0') {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        while (n > 0 && isspace((unsigned char)*p)) p++, n--;
        while (n > 0 && isspace((unsigned char)p[n - 1])) n--;
        if (n > 0) {
            char **grown = realloc(s->sensitive, (s->nsensitive + 1) * sizeof(*grown));
            PK_ENSURE_ALLOC(grown);
            s->sensitive = grown;
            s->sensitive[s->nsensitive] = strndup(p, n);
            PK_ENSURE_ALLOC(s->sensitive[s->nsensitive]);
            for (char *c = s->sensitive[s->nsensitive]; *c; c++) *c = (char)tolower((unsigned char)*c);
            s->nsensitive++;
        }
        p = end ? end + 1 : NULL;
    }
    return PK_OK;
}

pk_result pk_secrets_new(const p11kms_config *cfg, pk_secrets **out)
{
    pk_result r = PK_OK;
    unsigned long ttl = 0, max = 0, uses = 0;
    pk_secrets *s = calloc(1, sizeof(*s));
    PK_ENSURE_ALLOC(s);
    pthread_mutex_init(&s->lock, NULL);
    pthread_mutex_init(&s->reserve_lock, NULL);
    s->nonce_limit = PK_NSKEY_NONCE_LIMIT;
    PK_TRY(pk_lru_map_init(&s->chains, CHAIN_BUCKETS, 0));
    PK_TRY(pk_lru_map_init(&s->nsdefs, CHAIN_BUCKETS, 0));
    PK_TRY(pk_lru_map_init(&s->cache, CACHE_BUCKETS, 0));
    PK_TRY(pk_rows_new(PK_ROWS_MAX, &s->rows));
    PK_TRY(pk_conf_uint(cfg, "cache_ttl_s", 0, 0, TTL_MAX_S, &ttl));
    PK_TRY(pk_conf_uint(cfg, "cache_max_entries", CACHE_DEFAULT_MAX, 1, 1000000, &max));
    PK_TRY(pk_conf_uint(cfg, "cache_max_uses", 0, 0, UINT32_MAX, &uses));
    PK_TRY(read_sensitive(s, cfg));
    /* Off unless a TTL is configured (docs/SECRETS.md "Cache"). */
    pk_secrets_set_cache(s, (uint64_t)ttl * 1000, ttl ? (size_t)max : 0, uses);
    *out = s;
    s = NULL;
out:
    pk_secrets_free(s);
    return r;
}

pk_result pk_secrets_of(pk_env *env, pk_secrets **out)
{
    PK_ENSURE(env->secrets != NULL, P11KMS_ERR_INTERNAL, "secrets state missing (handle not open)");
    *out = env->secrets;
    return PK_OK;
}

void pk_secrets_set_nonce_limit(pk_secrets *s, uint64_t limit)
{
    pthread_mutex_lock(&s->lock);
    s->nonce_limit = limit ? limit : PK_NSKEY_NONCE_LIMIT;
    pthread_mutex_unlock(&s->lock);
}

void pk_secrets_get_stats(pk_secrets *s, pk_secrets_stats *out)
{
    pthread_mutex_lock(&s->lock);
    *out = s->stats;
    out->cache_entries = pk_lru_map_count(&s->cache);
    pthread_mutex_unlock(&s->lock);
    pk_rows_stats(s->rows, &out->row_hits, &out->row_misses, &out->row_entries);
}

pk_rows *pk_secrets_rows(pk_secrets *s) { return s->rows; }

void pk_secret_row_forget(pk_env *env, const char *id)
{
    if (env->secrets != NULL) pk_rows_forget(env->secrets->rows, id);
}

/*
 * Flink's rule (GlobalConfiguration.isSensitive): an option is sensitive
 * when its lower-cased name contains one of the sensitive names.
 */
bool pk_secrets_option_sensitive(pk_secrets *s, const char *name)
{
    char low[PK_SECRET_KEY_MAX + 1];
    size_t n = strlen(name);
    if (n > PK_SECRET_KEY_MAX) n = PK_SECRET_KEY_MAX;
    for (size_t i = 0; i < n; i++) low[i] = (char)tolower((unsigned char)name[i]);
    low[n] = '\0';
    if (pk_conn_option_sensitive_builtin(low)) return true;
    for (size_t i = 0; s != NULL && i < s->nsensitive; i++)
        if (strstr(low, s->sensitive[i]) != NULL) return true;
    return false;
}

/* ---- the decrypted-map cache ---- */

static void entry_release(pk_lru_node *n, void *ctx)
{
    map_entry *e = PK_LRU_ENTRY(n, map_entry, node);
    (void)ctx;
    pk_secbuf_free(&e->enc); /* wipes */
    pk_secmem_free(e);
}

static void entry_drop_inlock(pk_secrets *s, map_entry *e)
{
    pk_lru_map_remove(&s->cache, &e->node);
    entry_release(&e->node, NULL);
}

static bool entry_evict(pk_lru_map *m, pk_lru_node *n, void *ctx)
{
    (void)ctx;
    pk_lru_map_remove(m, n);
    entry_release(n, NULL);
    return true;
}

static map_entry *entry_find_inlock(pk_secrets *s, const char *id)
{
    pk_lru_node *n = pk_lru_map_find(&s->cache, id, strlen(id));
    return n ? PK_LRU_ENTRY(n, map_entry, node) : NULL;
}

void pk_secrets_set_cache(pk_secrets *s, uint64_t ttl_ms, size_t max_entries, uint64_t max_uses)
{
    pk_cache_clear(s);
    pthread_mutex_lock(&s->lock);
    s->cache_ttl_ms = ttl_ms;
    s->cache_max = ttl_ms ? max_entries : 0;
    s->cache_max_uses = max_uses;
    pthread_mutex_unlock(&s->lock);
}

bool pk_cache_lookup(pk_secrets *s, const char *id, int64_t now_ms, char ns[PK_NS_MAX + 1],
                     char cmk[PK_UUID_STR_LEN + 1], pk_secbuf *encoded)
{
    map_entry *e;
    bool hit = false;
    pthread_mutex_lock(&s->lock);
    if (s->cache_max == 0) {
        pthread_mutex_unlock(&s->lock);
        return false;
    }
    e = entry_find_inlock(s, id);
    if (e != NULL && (now_ms >= e->expires_ms || (s->cache_max_uses && e->uses >= s->cache_max_uses))) {
        entry_drop_inlock(s, e);
        e = NULL;
    }
    if (e != NULL && pk_ok(pk_secbuf_set(encoded, e->enc.data, e->enc.len))) {
        e->uses++;
        memcpy(ns, e->ns, sizeof(e->ns));
        memcpy(cmk, e->cmk, sizeof(e->cmk));
        pk_lru_map_touch(&s->cache, &e->node);
        hit = true;
        if (s->cache_max_uses && e->uses >= s->cache_max_uses) entry_drop_inlock(s, e);
    }
    if (hit) s->stats.cache_hits++;
    else s->stats.cache_misses++;
    pthread_mutex_unlock(&s->lock);
    return hit;
}

void pk_cache_store(pk_secrets *s, const char *id, const char *ns, const char *cmk, pk_bytes encoded, int64_t now_ms)
{
    map_entry *e;
    pthread_mutex_lock(&s->lock);
    if (s->cache_max == 0) goto done;
    if ((e = entry_find_inlock(s, id)) != NULL) entry_drop_inlock(s, e);
    (void)pk_lru_map_evict(&s->cache, s->cache_max - 1, entry_evict, NULL);
    e = pk_secmem_alloc(sizeof(*e));
    if (e == NULL) goto done;
    if (pk_failed(pk_secbuf_set(&e->enc, encoded.ptr, encoded.len))) {
        pk_secmem_free(e);
        goto done;
    }
    snprintf(e->id, sizeof(e->id), "%s", id);
    snprintf(e->ns, sizeof(e->ns), "%s", ns);
    snprintf(e->cmk, sizeof(e->cmk), "%s", cmk);
    e->expires_ms = now_ms + (int64_t)s->cache_ttl_ms;
    pk_lru_map_insert(&s->cache, &e->node, e->id, strlen(e->id));
    pk_lru_map_touch(&s->cache, &e->node);
done:
    pthread_mutex_unlock(&s->lock);
}

void pk_cache_forget(pk_secrets *s, const char *id)
{
    map_entry *e;
    pthread_mutex_lock(&s->lock);
    if ((e = entry_find_inlock(s, id)) != NULL) entry_drop_inlock(s, e);
    pthread_mutex_unlock(&s->lock);
}

void pk_cache_clear(pk_secrets *s)
{
    pthread_mutex_lock(&s->lock);
    pk_lru_map_clear(&s->cache, entry_release, NULL);
    pthread_mutex_unlock(&s->lock);
}
