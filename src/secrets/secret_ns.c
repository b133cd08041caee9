/*
 * Namespaces and namespace keys.
 *
 * A namespace key is an AES-256 key generated in the HSM and kept only
 * wrapped (RFC 5649, CKM_AES_KEY_WRAP_PAD) under a CMK version, one chain
 * per (namespace, CMK). Its versions are append-only: a version is never
 * changed except by re-wrapping the same key under a newer CMK version, so
 * a cached chain is never wrong for a version it holds, only possibly
 * missing newer ones (then it is reloaded). That is why this cache needs
 * no store `changed` check on the read path.
 *
 * GCM invocations per namespace-key version are bounded (random 96-bit IVs,
 * NIST SP 800-38D 8.3): writers reserve blocks of invocations in the chain
 * record (persisted before use, so a crash only wastes a block) and the
 * reservation that would pass the bound adds a new version instead. That
 * and GCM under a namespace key are in secret_ns_use.c.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/crypto.h"
#include "secrets/secrets_impl.h"

#define NSKEY_FORMAT 1
#define NS_FORMAT 1

pk_result pk_ns_validate(const char *ns)
{
    size_t n;
    PK_ENSURE(ns != NULL, P11KMS_ERR_INVALID_ARGUMENT, "no namespace given");
    n = strlen(ns);
    PK_ENSURE(n >= 1 && n <= PK_NS_MAX &&
                  strspn(ns, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-/") == n &&
                  ns[0] != '/' && ns[0] != '.',
              P11KMS_ERR_INVALID_ARGUMENT,
              "invalid namespace '%.*s': use 1 to %d letters, digits, '.', '_', '-' or '/'", (int)(n > 140 ? 140 : n),
              ns, PK_NS_MAX);
    return PK_OK;
}

/* 'N' || the chain's name digest || version: the CKA_ID of a namespace key's session object. */
void pk_nskey_id_of(const uint8_t digest[16], uint32_t version, pk_keyid *out)
{
    memset(out, 0, sizeof(*out));
    out->bytes[0] = 'N';
    memcpy(out->bytes + 1, digest, 16);
    pk_store_be32(out->bytes + 17, version);
    out->len = 21;
}

pk_result pk_nskey_id(const char *ns, const uint8_t cmk_uuid[PK_UUID_LEN], uint32_t version, pk_keyid *out)
{
    pk_sha256_ctx *c = NULL;
    uint8_t d[PK_SHA256_LEN];
    pk_result r = PK_OK;
    PK_TRY(pk_sha256_begin(&c));
    PK_TRY(pk_sha256_update(c, ns, strlen(ns) + 1)); /* with its NUL: no ambiguity with the uuid */
    PK_TRY(pk_sha256_update(c, cmk_uuid, PK_UUID_LEN));
    PK_TRY(pk_sha256_finish(c, d));
    pk_nskey_id_of(d, version, out);
out:
    pk_sha256_free(c);
    return r;
}

void pk_chain_record_id(const char *cmk, const char *ns, char *out, size_t size)
{
    snprintf(out, size, "%s:%s", cmk, ns);
}

/* ---- record codecs ---- */

void pk_nskey_clear(pk_nskey *k)
{
    free(k->v);
    memset(k, 0, sizeof(*k));
}

pk_result pk_nskey_to_record(const pk_nskey *k, pk_record *rec)
{
    pk_buf *b = &rec->body;
    memset(rec, 0, sizeof(*rec));
    snprintf(rec->kind, sizeof(rec->kind), "nskey");
    pk_chain_record_id(k->cmk, k->ns, rec->id, sizeof(rec->id));
    snprintf(rec->ref, sizeof(rec->ref), "%s", k->ns);
    PK_GUARD(pk_buf_append_be32(b, NSKEY_FORMAT));
    PK_GUARD(pk_buf_append_lpstr(b, k->ns));
    PK_GUARD(pk_buf_append_lpstr(b, k->cmk));
    PK_GUARD(pk_buf_append_be64(b, k->nonce_reserved));
    PK_GUARD(pk_buf_append_be32(b, k->nversions));
    for (uint32_t i = 0; i < k->nversions; i++) {
        PK_GUARD(pk_buf_append_be32(b, k->v[i].number));
        PK_GUARD(pk_buf_append_be32(b, k->v[i].kek_version));
        PK_GUARD(pk_buf_append_be64(b, (uint64_t)k->v[i].created_ms));
        PK_GUARD(pk_buf_append_lp(b, k->v[i].wrapped, k->v[i].wrapped_len));
    }
    return PK_OK;
}

pk_result pk_nskey_from_record(const pk_record *rec, pk_nskey *k)
{
    pk_cur c = pk_cur_of(rec->body.data, rec->body.len);
    uint32_t n;
    memset(k, 0, sizeof(*k));
    c.bad = pk_cur_u32(&c) != NSKEY_FORMAT;
    pk_cur_str(&c, k->ns, sizeof(k->ns));
    pk_cur_str(&c, k->cmk, sizeof(k->cmk));
    k->nonce_reserved = pk_cur_u64(&c);
    n = pk_cur_u32(&c);
    PK_ENSURE(!c.bad && n >= 1 && n <= 1000000 && pk_uuid_parse(k->cmk, k->cmk_uuid), P11KMS_ERR_INTEGRITY,
              "store record nskey/%s is malformed", rec->id);
    k->v = calloc(n, sizeof(*k->v));
    PK_ENSURE_ALLOC(k->v);
    for (uint32_t i = 0; i < n; i++) {
        pk_bytes w;
        k->v[i].number = pk_cur_u32(&c);
        k->v[i].kek_version = pk_cur_u32(&c);
        k->v[i].created_ms = (int64_t)pk_cur_u64(&c);
        w = pk_cur_lp(&c);
        if (c.bad || w.len > sizeof(k->v[i].wrapped) || k->v[i].number != i + 1) {
            c.bad = true;
            break;
        }
        memcpy(k->v[i].wrapped, w.ptr, w.len);
        k->v[i].wrapped_len = w.len;
    }
    k->nversions = n;
    k->rev = rec->rev;
    if (c.bad || c.n != 0) {
        pk_nskey_clear(k);
        return pk_fail(P11KMS_ERR_INTEGRITY, "store record nskey/%s is malformed", rec->id);
    }
    return PK_OK;
}

/* ---- chain cache ---- */

static void chain_release(pk_lru_node *n, void *ctx)
{
    chain_entry *e = PK_LRU_ENTRY(n, chain_entry, node);
    (void)ctx;
    pk_nskey_clear(&e->k);
    free(e);
}

static void nsdef_release(pk_lru_node *n, void *ctx)
{
    (void)ctx;
    free(PK_LRU_ENTRY(n, nsdef_entry, node));
}

void pk_chains_free_inlock(pk_secrets *s)
{
    pk_lru_map_clear(&s->chains, chain_release, NULL);
    pk_lru_map_clear(&s->nsdefs, nsdef_release, NULL);
}

void pk_chains_destroy(pk_secrets *s)
{
    pk_lru_map_destroy(&s->chains, chain_release, NULL);
    pk_lru_map_destroy(&s->nsdefs, nsdef_release, NULL);
}

chain_entry *pk_chain_find_inlock(pk_secrets *s, const char *id)
{
    pk_lru_node *n = pk_lru_map_find(&s->chains, id, strlen(id));
    return n ? PK_LRU_ENTRY(n, chain_entry, node) : NULL;
}

/* Put a verified chain in the cache (taking k), keeping the window when the version is the same. */
void pk_chain_put_inlock(pk_secrets *s, pk_nskey *k)
{
    char id[sizeof(((chain_entry *)0)->id)];
    chain_entry *e;
    pk_chain_record_id(k->cmk, k->ns, id, sizeof(id));
    e = pk_chain_find_inlock(s, id);
    if (e != NULL) {
        if (k->rev < e->k.rev) {
            pk_nskey_clear(k); /* ours is newer */
            return;
        }
        pk_nskey_clear(&e->k);
        e->k = *k;
        memset(k, 0, sizeof(*k));
        return;
    }
    if (pk_lru_map_count(&s->chains) >= CHAIN_MAX) pk_chains_free_inlock(s);
    e = calloc(1, sizeof(*e));
    if (e == NULL) {
        pk_nskey_clear(k);
        return;
    }
    snprintf(e->id, sizeof(e->id), "%s", id);
    e->k = *k;
    memset(k, 0, sizeof(*k));
    pk_lru_map_insert(&s->chains, &e->node, e->id, strlen(e->id));
}

void pk_ns_forget(pk_env *env, const char *ns, const char *cmk)
{
    pk_secrets *s;
    char id[sizeof(((chain_entry *)0)->id)];
    chain_entry *e;
    if (pk_failed(pk_secrets_of(env, &s))) return;
    pk_chain_record_id(cmk, ns, id, sizeof(id));
    pthread_mutex_lock(&s->lock);
    if ((e = pk_chain_find_inlock(s, id)) != NULL) {
        pk_lru_map_remove(&s->chains, &e->node);
        chain_release(&e->node, NULL);
    }
    pthread_mutex_unlock(&s->lock);
}

/* Load and verify a chain record. *found=false when absent. */
pk_result pk_chain_load(pk_env *env, const char *ns, const char *cmk, bool take_lock, pk_nskey *out, bool *found)
{
    pk_record rec = {0};
    char id[PK_STORE_ID_MAX];
    pk_result r;
    pk_chain_record_id(cmk, ns, id, sizeof(id));
    if (take_lock) pk_records_lock(env->rs);
    r = pk_records_load(env->rs, "nskey", id, &rec, found);
    if (take_lock) pk_records_unlock(env->rs);
    if (pk_ok(r) && *found) r = pk_nskey_from_record(&rec, out);
    /* The record must describe the chain its id names. */
    if (pk_ok(r) && *found && (strcmp(out->ns, ns) != 0 || strcmp(out->cmk, cmk) != 0)) {
        pk_nskey_clear(out);
        r = pk_fail(P11KMS_ERR_INTEGRITY, "store record nskey/%s is malformed", id);
    }
    pk_record_clear(&rec);
    return r;
}

/*
 * The cached chain (a copy: only nversions/v needed by callers), loading
 * it when absent or older than min_version.
 */
pk_result pk_chain_get(pk_env *env, pk_secrets *s, const char *ns, const char *cmk, uint32_t min_version,
                       pk_nskey_version *ver_out, uint32_t want_version, bool in_tx, bool *found)
{
    char id[sizeof(((chain_entry *)0)->id)];
    chain_entry *e;
    pk_nskey k;
    pk_chain_record_id(cmk, ns, id, sizeof(id));
    pthread_mutex_lock(&s->lock);
    e = pk_chain_find_inlock(s, id);
    if (e != NULL && e->k.nversions >= min_version) {
        if (ver_out) *ver_out = e->k.v[want_version - 1];
        pthread_mutex_unlock(&s->lock);
        *found = true;
        return PK_OK;
    }
    pthread_mutex_unlock(&s->lock);
    PK_GUARD(pk_chain_load(env, ns, cmk, !in_tx, &k, found));
    if (!*found) return PK_OK;
    pthread_mutex_lock(&s->lock);
    s->stats.chain_loads++;
    if (k.nversions < min_version) {
        pthread_mutex_unlock(&s->lock);
        pk_nskey_clear(&k);
        *found = false;
        return PK_OK;
    }
    if (ver_out) *ver_out = k.v[want_version - 1];
    pk_chain_put_inlock(s, &k);
    pthread_mutex_unlock(&s->lock);
    return PK_OK;
}

/* ---- the namespace record (its configured key) ---- */

static pk_result nsdef_load(pk_env *env, const char *ns, bool take_lock, char cmk[PK_UUID_STR_LEN + 1], bool *found)
{
    pk_record rec = {0};
    pk_result r;
    if (take_lock) pk_records_lock(env->rs);
    r = pk_records_load(env->rs, "ns", ns, &rec, found);
    if (take_lock) pk_records_unlock(env->rs);
    if (pk_ok(r) && *found) {
        pk_cur c = pk_cur_of(rec.body.data, rec.body.len);
        uint8_t u[PK_UUID_LEN];
        c.bad = pk_cur_u32(&c) != NS_FORMAT;
        pk_cur_str(&c, cmk, PK_UUID_STR_LEN + 1);
        (void)pk_cur_u64(&c);
        if (c.bad || !pk_uuid_parse(cmk, u))
            r = pk_fail(P11KMS_ERR_INTEGRITY, "store record ns/%s is malformed", ns);
    }
    pk_record_clear(&rec);
    return r;
}

pk_result pk_ns_default_key(pk_env *env, const char *ns, char out[PK_UUID_STR_LEN + 1])
{
    pk_secrets *s;
    bool found = false;
    pk_lru_node *n;
    nsdef_entry *d;
    PK_GUARD(pk_secrets_of(env, &s));
    pthread_mutex_lock(&s->lock);
    if ((n = pk_lru_map_find(&s->nsdefs, ns, strlen(ns))) != NULL) {
        memcpy(out, PK_LRU_ENTRY(n, nsdef_entry, node)->cmk, PK_UUID_STR_LEN + 1);
        pthread_mutex_unlock(&s->lock);
        return PK_OK;
    }
    pthread_mutex_unlock(&s->lock);
    out[0] = '\0';
    PK_GUARD(nsdef_load(env, ns, true, out, &found));
    if (!found) {
        out[0] = '\0';
        return PK_OK;
    }
    d = calloc(1, sizeof(*d));
    PK_ENSURE_ALLOC(d);
    snprintf(d->ns, sizeof(d->ns), "%s", ns);
    memcpy(d->cmk, out, PK_UUID_STR_LEN + 1);
    pthread_mutex_lock(&s->lock);
    if (pk_lru_map_find(&s->nsdefs, ns, strlen(ns)) == NULL) {
        pk_lru_map_insert(&s->nsdefs, &d->node, d->ns, strlen(d->ns));
        d = NULL;
    }
    pthread_mutex_unlock(&s->lock);
    free(d); /* another thread cached it meanwhile */
    return PK_OK;
}

/* ---- creating chains and versions ---- */

pk_result pk_nskey_add_version_tx(pk_env *env, pk_nskey *k, uint32_t kek_version)
{
    pk_keyid kek;
    pk_nskey_version *grown;
    pk_nskey_version nv;
    memset(&nv, 0, sizeof(nv));
    pk_key_version_id(k->cmk_uuid, kek_version, &kek);
    nv.wrapped_len = sizeof(nv.wrapped);
    /* Generated by the HSM; leaves it only wrapped (RFC 5649). */
    PK_GUARD(pk_p11_generate_wrapped(env->p11, &kek, nv.wrapped, &nv.wrapped_len));
    nv.number = k->nversions + 1;
    nv.kek_version = kek_version;
    nv.created_ms = pk_records_now(env->rs);
    grown = realloc(k->v, (k->nversions + 1) * sizeof(*grown));
    PK_ENSURE_ALLOC(grown);
    k->v = grown;
    k->v[k->nversions++] = nv;
    k->nonce_reserved = 0;
    return PK_OK;
}

pk_result pk_nskey_save_tx(pk_env *env, pk_nskey *k)
{
    pk_record rec;
    pk_result r = pk_nskey_to_record(k, &rec);
    if (pk_ok(r)) r = pk_records_save(env->rs, &rec, k->rev);
    if (pk_ok(r)) k->rev = rec.rev;
    pk_record_clear(&rec);
    return r;
}

typedef struct ensure_job {
    pk_env *env;
    const char *ns;
    pk_key *k;
    pk_nskey made;
    bool have;
} ensure_job;

static pk_result ensure_tx(void *ctx)
{
    ensure_job *j = ctx;
    pk_env *env = j->env;
    bool found = false;
    char cmk[PK_UUID_STR_LEN + 1];
    pk_record rec;
    pk_result r;

    PK_GUARD(pk_chain_load(env, j->ns, j->k->id, false, &j->made, &found));
    if (!found) {
        memset(&j->made, 0, sizeof(j->made));
        snprintf(j->made.ns, sizeof(j->made.ns), "%s", j->ns);
        memcpy(j->made.cmk, j->k->id, sizeof(j->made.cmk));
        memcpy(j->made.cmk_uuid, j->k->uuid, PK_UUID_LEN);
        PK_GUARD(pk_nskey_add_version_tx(env, &j->made, j->k->nversions));
        PK_GUARD(pk_nskey_save_tx(env, &j->made));
    }
    j->have = true;
    /* The first key used in a namespace becomes its configured key. */
    PK_GUARD(nsdef_load(env, j->ns, false, cmk, &found));
    if (found) return PK_OK;
    memset(&rec, 0, sizeof(rec));
    snprintf(rec.kind, sizeof(rec.kind), "ns");
    snprintf(rec.id, sizeof(rec.id), "%s", j->ns);
    r = pk_buf_append_be32(&rec.body, NS_FORMAT);
    if (pk_ok(r)) r = pk_buf_append_lpstr(&rec.body, j->k->id);
    if (pk_ok(r)) r = pk_buf_append_be64(&rec.body, (uint64_t)pk_records_now(env->rs));
    if (pk_ok(r)) r = pk_records_save(env->rs, &rec, 0);
    pk_record_clear(&rec);
    return r;
}

pk_result pk_ns_ensure(pk_env *env, const char *ns, pk_key *k)
{
    pk_secrets *s;
    bool found = false;
    ensure_job j;
    pk_result r;
    PK_GUARD(pk_secrets_of(env, &s));
    PK_GUARD(pk_chain_get(env, s, ns, k->id, 1, NULL, 0, false, &found));
    if (found) return PK_OK;
    memset(&j, 0, sizeof(j));
    j.ns = ns;
    j.k = k;
    j.env = env;
    r = pk_records_write_tx(env->rs, ensure_tx, &j);
    if (pk_ok(r)) {
        pthread_mutex_lock(&s->lock);
        pk_chain_put_inlock(s, &j.made);
        pthread_mutex_unlock(&s->lock);
    }
    pk_nskey_clear(&j.made);
    return r;
}
