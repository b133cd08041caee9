/*
 * Public SecretStore API (Flink FLIP-529): put, get, update, remove here;
 * list in api_secrets_list.c, rewrap in api_secrets_rewrap.c. Each call is
 * one pk_op: resolve, authorise on the protecting CMK with the context
 * {"p11kms:namespace": NS, "p11kms:secret-id": ID}, act, then pk_op_finish
 * (the audit record, which never holds values).
 *
 * Policy actions (docs/SECRETS.md): put/update/remove kms:GenerateDataKey,
 * get kms:Decrypt, list kms:DescribeKey (per secret, values never shown),
 * rewrap kms:ReEncryptFrom + kms:ReEncryptTo.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/op.h"
#include "core/remote_fwd.h"
#include "core/secret_ops.h"
#include "util/json_out.h"
#include "util/timefmt.h"


/* ---- public map wrappers ---- */

P11KMS_API p11kms_rc p11kms_secret_map_new(p11kms_secret_map **out)
{
    pk_error_clear();
    return pk_map_new(out).code;
}

P11KMS_API p11kms_rc p11kms_secret_map_set(p11kms_secret_map *m, const char *key, const char *value)
{
    pk_error_clear();
    if (m == NULL || key == NULL || value == NULL)
        return pk_fail(P11KMS_ERR_INVALID_ARGUMENT, "secret map, key and value are required").code;
    return pk_map_set(m, key, strlen(key), value, strlen(value)).code;
}

P11KMS_API p11kms_rc p11kms_secret_map_remove(p11kms_secret_map *m, const char *key)
{
    pk_error_clear();
    if (m == NULL || key == NULL || !pk_map_remove(m, key))
        return pk_fail(P11KMS_ERR_NOT_FOUND, "key '%s' is not in the secret map", key ? key : "").code;
    return P11KMS_OK;
}

P11KMS_API const char *p11kms_secret_map_get(const p11kms_secret_map *m, const char *key) { return pk_map_get(m, key); }
P11KMS_API size_t p11kms_secret_map_count(const p11kms_secret_map *m) { return pk_map_count(m); }
P11KMS_API const char *p11kms_secret_map_key_at(const p11kms_secret_map *m, size_t i) { return pk_map_key(m, i); }
P11KMS_API const char *p11kms_secret_map_value_at(const p11kms_secret_map *m, size_t i) { return pk_map_value(m, i); }
P11KMS_API void p11kms_secret_map_free(p11kms_secret_map *m) { pk_map_free(m); }

P11KMS_API p11kms_rc p11kms_secret_map_from_json(const char *json, size_t len, p11kms_secret_map **out)
{
    pk_error_clear();
    return pk_map_from_json(json, len, out).code;
}

P11KMS_API p11kms_rc p11kms_secret_map_to_json(const p11kms_secret_map *m, p11kms_buf **out)
{
    pk_secbuf b = PK_SECBUF_INIT;
    pk_result r;
    pk_error_clear();
    *out = NULL;
    r = pk_map_to_json(m, &b);
    if (pk_ok(r)) r = pk_secbuf_out(&b, out);
    pk_secbuf_free(&b);
    return r.code;
}

/* ---- helpers ---- */

/* pk_op_finish, withholding a returned map when the audit record could not be written. */
static p11kms_rc finish_with_map(pk_op *op, pk_result r, p11kms_secret_map **out)
{
    p11kms_rc rc = pk_op_finish(op, r);
    if (rc != P11KMS_OK) {
        pk_map_free(*out);
        *out = NULL;
    }
    return rc;
}

void pk_secret_ctx_set(pk_op *op, pk_secret_ctx *c, const char *ns, const char *id, const char *conn)
{
    size_t n = 0;
    snprintf(c->ns, sizeof(c->ns), "%s", ns ? ns : "");
    snprintf(c->id, sizeof(c->id), "%s", id ? id : "");
    snprintf(c->conn, sizeof(c->conn), "%s", conn ? conn : "");
    if (ns != NULL) c->kv[n++] = (pk_ctx_kv){PK_CTX_NS, c->ns};
    if (id != NULL && *id != '\0') c->kv[n++] = (pk_ctx_kv){PK_CTX_ID, c->id};
    if (conn != NULL) c->kv[n++] = (pk_ctx_kv){PK_CTX_CONN, c->conn};
    op->ctx = c->kv;
    op->nctx = n;
    op->secret_id = (id != NULL && *id != '\0') ? c->id : NULL;
    if (conn != NULL) op->connection = c->conn;
}

pk_result pk_secret_authorize(pk_op *op, const char *key_id, const char *action, bool usable, pk_key **out)
{
    pk_key_ref ref;
    pk_result r;
    memset(&ref, 0, sizeof(ref));
    snprintf(ref.key_id, sizeof(ref.key_id), "%s", key_id);
    pk_op_set_key(op, &ref);
    PK_GUARD(pk_key_get(&op->h->env, key_id, out));
    r = pk_op_authorize(op, *out, action);
    if (pk_ok(r) && usable) r = pk_key_usable(*out);
    if (pk_failed(r)) {
        pk_key_release(&op->h->env, *out);
        *out = NULL;
    }
    return r;
}

pk_result pk_secret_choose_key(pk_op *op, const char *key, const char *ns, pk_key **out)
{
    pk_key_ref ref;
    char dflt[PK_UUID_STR_LEN + 1] = "";
    pk_result r;
    if (key == NULL) PK_GUARD(pk_ns_default_key(&op->h->env, ns, dflt));
    if (key == NULL && dflt[0] != '\0') return pk_secret_authorize(op, dflt, op->action, true, out);
    PK_GUARD(pk_key_resolve(&op->h->env, key ? key : PK_SERVICE_ALIAS, false, &ref));
    pk_op_set_key(op, &ref);
    PK_GUARD(pk_key_get(&op->h->env, ref.key_id, out));
    r = pk_op_authorize(op, *out, op->action);
    if (pk_ok(r)) r = pk_key_usable(*out);
    if (pk_failed(r)) {
        pk_key_release(&op->h->env, *out);
        *out = NULL;
    }
    return r;
}

/* ---- internal operations shared with connections ---- */

pk_result pk_secret_prepare(p11kms *h, const char *ns, pk_key *k, const char *id, pk_secret *s)
{
    memset(s, 0, sizeof(*s));
    snprintf(s->id, sizeof(s->id), "%s", id);
    snprintf(s->ns, sizeof(s->ns), "%s", ns);
    memcpy(s->cmk, k->id, sizeof(s->cmk));
    memcpy(s->cmk_uuid, k->uuid, PK_UUID_LEN);
    s->version = 1;
    s->created_ms = s->updated_ms = pk_clock(h);
    PK_GUARD(pk_ns_ensure(&h->env, ns, k));
    return pk_ns_take_nonce(&h->env, ns, k, &s->nsv);
}

typedef struct put_job {
    pk_secret *s;
    pk_bytes enc;
    bool named; /* a caller-chosen id: refuse a taken one inside the transaction */
} put_job;

static pk_result put_tx(p11kms *h, void *ctx)
{
    put_job *j = ctx;
    if (j->named) {
        pk_secret old;
        pk_result r;
        memset(&old, 0, sizeof(old));
        r = pk_secret_load(&h->env, j->s->id, false, &old);
        pk_secret_clear(&old);
        PK_ENSURE(r.code == P11KMS_ERR_NOT_FOUND, r.code == P11KMS_OK ? P11KMS_ERR_ALREADY_EXISTS : r.code,
                  "secret %s already exists", j->s->id);
        pk_error_clear();
    }
    PK_GUARD(pk_secret_seal(&h->env, j->s, j->enc, true));
    return pk_secret_save_tx(&h->env, j->s);
}

/* Store map as a new secret named name (NULL: a fresh UUID); *id gets the id when id != NULL. */
static p11kms_rc put_common(p11kms *h, const p11kms_caller *c, const char *ns, const char *key, const char *name,
                            const p11kms_secret_map *map, char **id)
{
    if (h != NULL && h->remote != NULL) return pk_fwd_secret_put(h, c, ns, key, map, id);
    pk_op op;
    pk_result r = PK_OK;
    pk_key *k = NULL;
    pk_secbuf enc = PK_SECBUF_INIT;
    pk_secret s;
    uint8_t uuid[PK_UUID_LEN];
    char sid[PK_SECRET_ID_MAX + 1];
    pk_secret_ctx sc;
    put_job j;

    memset(&s, 0, sizeof(s));
    if (id != NULL) *id = NULL;
    PK_TRY(pk_op_begin(&op, h, c, "kms:GenerateDataKey"));
    if (id != NULL) pk_op_output_str(&op, id);
    PK_TRY(pk_op_preflight(&op));
    ns = ns ? ns : PK_NS_DEFAULT;
    PK_TRY(pk_ns_validate(ns));
    if (name != NULL) {
        PK_CHECK(pk_secret_name_ok(name), P11KMS_ERR_INVALID_ARGUMENT,
                 "invalid secret name: use 1 to %d letters, digits or /_+=.@-", PK_SECRET_ID_MAX);
        snprintf(sid, sizeof(sid), "%s", name);
    }
    PK_TRY(pk_map_encode(map, &enc));
    if (name == NULL) {
        PK_TRY(pk_uuid_new(uuid));
        pk_uuid_format(uuid, sid);
    }
    pk_secret_ctx_set(&op, &sc, ns, sid, NULL);
    PK_TRY(pk_secret_choose_key(&op, key, ns, &k));
    PK_TRY(pk_secret_prepare(h, ns, k, sid, &s));
    op.key_version = k->nversions;
    j.s = &s;
    j.enc = pk_bytes_of(enc.data, enc.len);
    j.named = name != NULL;
    PK_TRY(pk_with_write_tx_batched(h, put_tx, &j));
    if (id != NULL) {
        *id = strdup(sid);
        PK_CHECK_ALLOC(*id);
    }
out:
    pk_secret_clear(&s);
    pk_secbuf_free(&enc);
    pk_key_release(&h->env, k);
    return pk_op_finish(&op, r);
}

P11KMS_API p11kms_rc p11kms_secret_put(p11kms *h, const p11kms_caller *c, const char *ns, const char *key,
                                       const p11kms_secret_map *map, char **id)
{
    if (id == NULL) return pk_fail(P11KMS_ERR_INVALID_ARGUMENT, "no id output given").code;
    return put_common(h, c, ns, key, NULL, map, id);
}

P11KMS_API p11kms_rc p11kms_secret_put_named(p11kms *h, const p11kms_caller *c, const char *ns, const char *key,
                                             const char *name, const p11kms_secret_map *map)
{
    if (h != NULL && h->remote != NULL) return pk_fwd_refuse("p11kms_secret_put_named");
    if (name == NULL) return pk_fail(P11KMS_ERR_INVALID_ARGUMENT, "no secret name given").code;
    return put_common(h, c, ns, key, name, map, NULL);
}

/* Decrypt a read record; on failure the store MAC decides between INTEGRITY and CIPHERTEXT_INVALID. */
static pk_result open_checked(p11kms *h, const pk_secret *s, const pk_record *raw, pk_secbuf *enc)
{
    pk_result r = pk_secret_open(&h->env, s, enc, false);
    if (pk_failed(r) && raw != NULL && (r.code == P11KMS_ERR_CIPHERTEXT_INVALID || r.code == P11KMS_ERR_INTEGRITY)) {
        pk_result m = pk_record_check(h, raw);
        if (pk_failed(m)) return m;
    }
    return r;
}

/* The read of pk_secret_get_internal; meta (optional) gets the row's metadata, so the map cache is skipped. */
static pk_result get_with_meta(pk_op *op, pk_secret_ctx *sc, const char *id, pk_secbuf *enc, p11kms_secret_info *meta)
{
    p11kms *h = op->h;
    pk_secrets *st;
    pk_secret s;
    pk_record raw = {0};
    pk_key *k = NULL;
    pk_result r = PK_OK;
    char ns[PK_NS_MAX + 1], cmk[PK_UUID_STR_LEN + 1];
    uint64_t gen = 0, ticket = 0;
    bool cached = false;

    memset(&s, 0, sizeof(s));
    PK_TRY(pk_secret_id_validate(id));
    PK_TRY(pk_secrets_of(&h->env, &st));
    if (meta == NULL && pk_cache_lookup(st, id, pk_clock(h), ns, cmk, enc)) {
        /* A cached map still needs the caller's permission, every time. */
        pk_secret_ctx_set(op, sc, ns, id, sc->conn[0] ? sc->conn : NULL);
        PK_TRY(pk_secret_authorize(op, cmk, "kms:Decrypt", true, &k));
        goto out;
    }
    PK_TRY(pk_store_generation(&h->env, &gen));
    cached = pk_rows_get(pk_secrets_rows(st), id, gen, &s);
    for (;;) {
        if (!cached) {
            ticket = pk_rows_ticket(pk_secrets_rows(st));
            PK_TRY(pk_secret_read(&h->env, id, &s, &raw));
        }
        pk_secret_ctx_set(op, sc, s.ns, id, sc->conn[0] ? sc->conn : NULL);
        PK_TRY(pk_secret_authorize(op, s.cmk, "kms:Decrypt", true, &k));
        if (!cached) break;
        if (pk_ok(pk_secret_open(&h->env, &s, enc, false))) goto decrypted;
        /* Report from what the store holds now (and with its MAC): forget the row and read it again. */
        pk_rows_forget(pk_secrets_rows(st), id);
        pk_key_release(&h->env, k);
        k = NULL;
        pk_secret_clear(&s);
        cached = false;
    }
    PK_TRY(open_checked(h, &s, &raw, enc));
    pk_rows_put(pk_secrets_rows(st), &s, gen, ticket);
decrypted:
    if (meta != NULL) pk_secret_info_fill(&s, meta);
    pk_cache_store(st, id, s.ns, s.cmk, pk_bytes_of(enc->data, enc->len), pk_clock(h));
out:
    pk_key_release(&h->env, k);
    pk_record_clear(&raw);
    pk_secret_clear(&s);
    return r;
}

pk_result pk_secret_get_internal(pk_op *op, pk_secret_ctx *sc, const char *id, pk_secbuf *enc)
{
    return get_with_meta(op, sc, id, enc, NULL);
}

/* p11kms_secret_get, and its metadata when info is not NULL. */
static p11kms_rc get_common(p11kms *h, const p11kms_caller *c, const char *id, p11kms_secret_map **out,
                            p11kms_secret_info *info)
{
    pk_op op;
    pk_result r = PK_OK;
    pk_secbuf enc = PK_SECBUF_INIT;
    pk_secret_ctx sc;

    *out = NULL;
    memset(&sc, 0, sizeof(sc));
    PK_TRY(pk_op_begin(&op, h, c, "kms:Decrypt"));
    op.secret_id = id;
    PK_TRY(get_with_meta(&op, &sc, id, &enc, info));
    PK_TRY(pk_map_decode(pk_bytes_of(enc.data, enc.len), out));
out:
    pk_secbuf_free(&enc);
    return finish_with_map(&op, r, out);
}

P11KMS_API p11kms_rc p11kms_secret_get_info(p11kms *h, const p11kms_caller *c, const char *id,
                                            p11kms_secret_map **out, p11kms_secret_info *info)
{
    if (h != NULL && h->remote != NULL) return (out ? *out = NULL : NULL, pk_fwd_refuse("p11kms_secret_get_info"));
    pk_error_clear();
    if (info == NULL || info->struct_size < sizeof(*info)) {
        *out = NULL;
        return pk_fail(P11KMS_ERR_INVALID_ARGUMENT, "p11kms_secret_info: set struct_size = sizeof(p11kms_secret_info)")
            .code;
    }
    return get_common(h, c, id, out, info);
}

P11KMS_API p11kms_rc p11kms_secret_get(p11kms *h, const p11kms_caller *c, const char *id, p11kms_secret_map **out)
{
    if (h != NULL && h->remote != NULL) return pk_fwd_secret_get(h, c, id, out);
    return get_common(h, c, id, out, NULL);
}

/* ---- update ---- */

typedef struct update_job {
    const char *id;
    pk_bytes enc;
    const char *cmk;
    uint32_t nsv;
    uint32_t version;
} update_job;

static pk_result update_tx(p11kms *h, void *ctx)
{
    update_job *j = ctx;
    pk_secret s;
    pk_result r = PK_OK;
    PK_TRY(pk_secret_load(&h->env, j->id, false, &s));
    PK_CHECK(strcmp(s.cmk, j->cmk) == 0, P11KMS_ERR_STORE, "secret %s changed concurrently; retry", j->id);
    s.version++;
    s.nsv = j->nsv;
    s.updated_ms = pk_clock(h);
    PK_TRY(pk_secret_seal(&h->env, &s, j->enc, true));
    PK_TRY(pk_secret_save_tx(&h->env, &s));
    j->version = s.version;
out:
    pk_secret_clear(&s);
    return r;
}

static pk_result update_internal(pk_op *op, pk_secret_ctx *sc, const char *id, pk_bytes enc)
{
    p11kms *h = op->h;
    pk_secret s;
    pk_key *k = NULL;
    pk_result r = PK_OK;
    pk_secrets *st;
    update_job j;

    memset(&s, 0, sizeof(s));
    PK_TRY(pk_secrets_of(&h->env, &st));
    PK_TRY(pk_secret_load(&h->env, id, true, &s));
    pk_secret_ctx_set(op, sc, s.ns, id, NULL);
    PK_TRY(pk_secret_authorize(op, s.cmk, "kms:GenerateDataKey", true, &k));
    PK_TRY(pk_ns_ensure(&h->env, s.ns, k));
    memset(&j, 0, sizeof(j));
    j.id = id;
    j.enc = enc;
    j.cmk = k->id;
    PK_TRY(pk_ns_take_nonce(&h->env, s.ns, k, &j.nsv));
    op->key_version = k->nversions;
    PK_TRY(pk_with_write_tx_batched(h, update_tx, &j));
    pk_cache_forget(st, id);
out:
    pk_key_release(&h->env, k);
    pk_secret_clear(&s);
    return r;
}

P11KMS_API p11kms_rc p11kms_secret_update(p11kms *h, const p11kms_caller *c, const char *id,
                                          const p11kms_secret_map *map)
{
    if (h != NULL && h->remote != NULL) return pk_fwd_secret_update(h, c, id, map);
    pk_op op;
    pk_result r = PK_OK;
    pk_secbuf enc = PK_SECBUF_INIT;
    pk_secret_ctx sc;

    PK_TRY(pk_op_begin(&op, h, c, "kms:GenerateDataKey"));
    op.secret_id = id;
    PK_TRY(pk_op_preflight(&op));
    PK_TRY(pk_secret_id_validate(id));
    PK_TRY(pk_map_encode(map, &enc));
    PK_TRY(update_internal(&op, &sc, id, pk_bytes_of(enc.data, enc.len)));
out:
    pk_secbuf_free(&enc);
    return pk_op_finish(&op, r);
}

/* ---- remove ---- */

typedef struct remove_job {
    const char *id;
    uint64_t rev;
} remove_job;

static pk_result remove_tx(p11kms *h, void *ctx)
{
    remove_job *j = ctx;
    pk_secret s;
    pk_result r = pk_secret_load(&h->env, j->id, false, &s);
    pk_secret_row_forget(&h->env, j->id);
    if (pk_ok(r)) r = h->store->ops->del(h->store, "secret", j->id);
    pk_secret_clear(&s);
    return r;
}

P11KMS_API p11kms_rc p11kms_secret_remove(p11kms *h, const p11kms_caller *c, const char *id)
{
    if (h != NULL && h->remote != NULL) return pk_fwd_secret_remove(h, c, id);
    pk_op op;
    pk_result r = PK_OK;
    pk_secret s;
    pk_key *k = NULL;
    pk_secrets *st;
    pk_secret_ctx sc;
    remove_job j;

    memset(&s, 0, sizeof(s));
    PK_TRY(pk_op_begin(&op, h, c, "kms:GenerateDataKey"));
    op.secret_id = id;
    PK_TRY(pk_op_preflight(&op));
    PK_TRY(pk_secrets_of(&h->env, &st));
    PK_TRY(pk_secret_load(&h->env, id, true, &s));
    pk_secret_ctx_set(&op, &sc, s.ns, id, NULL);
    /* Removing needs the permission, not a usable key: a disabled key's secrets can still be deleted. */
    PK_TRY(pk_secret_authorize(&op, s.cmk, op.action, false, &k));
    j.id = id;
    j.rev = s.rev;
    PK_TRY(pk_with_write_tx_batched(h, remove_tx, &j));
    pk_cache_forget(st, id);
out:
    pk_key_release(&h->env, k);
    pk_secret_clear(&s);
    return pk_op_finish(&op, r);
}
