/*
 * Secret records: one encrypted map per record, kind "secret", ref = the
 * namespace.
 *
 * Integrity on reads. The GCM AAD covers every field of the record body
 * except the IV and ciphertext, which GCM authenticates itself, so a
 * successful decrypt proves the body is one p11kms wrote for this id. A
 * read therefore costs one PKCS#11 call (the decrypt) instead of two (HMAC
 * + decrypt). When a decrypt fails, the record's store MAC is checked so
 * the error says what happened: P11KMS_ERR_INTEGRITY for a record changed
 * outside p11kms, P11KMS_ERR_CIPHERTEXT_INVALID otherwise. Writes, lists
 * and rewraps always check the MAC (pk_secret_load).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/crypto.h"
#include "secrets/secrets.h"

#define SECRET_FORMAT 1
#define AAD_DOMAIN "p11kms-secret-v1"

/* A secret name (Secrets Manager Name): 1..512 of [A-Za-z0-9/_+=.@-]. */
bool pk_secret_name_ok(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    return n >= 1 && n <= PK_SECRET_ID_MAX &&
           strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/_+=.@-") == n;
}

pk_result pk_secret_id_validate(const char *id)
{
    PK_ENSURE(id != NULL && *id != '\0', P11KMS_ERR_INVALID_ARGUMENT, "no secret id given");
    /* An id that cannot exist is simply not found (no oracle on the format beyond this). */
    PK_ENSURE(pk_secret_name_ok(id), P11KMS_ERR_NOT_FOUND, "secret %.*s not found",
              (int)(strlen(id) > 64 ? 64 : strlen(id)), id);
    return PK_OK;
}

void pk_secret_clear(pk_secret *s)
{
    pk_buf_free(&s->ct);
    memset(s, 0, sizeof(*s));
}

pk_result pk_secret_to_record(const pk_secret *s, pk_record *rec)
{
    pk_buf *b = &rec->body;
    memset(rec, 0, sizeof(*rec));
    snprintf(rec->kind, sizeof(rec->kind), "secret");
    snprintf(rec->id, sizeof(rec->id), "%s", s->id);
    snprintf(rec->ref, sizeof(rec->ref), "%s", s->ns);
    PK_GUARD(pk_buf_reserve(b, 128 + s->ct.len));
    PK_GUARD(pk_buf_append_be32(b, SECRET_FORMAT));
    PK_GUARD(pk_buf_append_lpstr(b, s->id));
    PK_GUARD(pk_buf_append_lpstr(b, s->ns));
    PK_GUARD(pk_buf_append_lpstr(b, s->cmk));
    PK_GUARD(pk_buf_append_be32(b, s->version));
    PK_GUARD(pk_buf_append_be32(b, s->nsv));
    PK_GUARD(pk_buf_append_be64(b, (uint64_t)s->created_ms));
    PK_GUARD(pk_buf_append_be64(b, (uint64_t)s->updated_ms));
    PK_GUARD(pk_buf_append_lp(b, s->iv, sizeof(s->iv)));
    return pk_buf_append_lp(b, s->ct.data, s->ct.len);
}

pk_result pk_secret_from_record(const pk_record *rec, pk_secret *s)
{
    pk_cur c = pk_cur_of(rec->body.data, rec->body.len);
    pk_bytes iv, ct;
    memset(s, 0, sizeof(*s));
    c.bad = pk_cur_u32(&c) != SECRET_FORMAT;
    pk_cur_str(&c, s->id, sizeof(s->id));
    pk_cur_str(&c, s->ns, sizeof(s->ns));
    pk_cur_str(&c, s->cmk, sizeof(s->cmk));
    s->version = pk_cur_u32(&c);
    s->nsv = pk_cur_u32(&c);
    s->created_ms = (int64_t)pk_cur_u64(&c);
    s->updated_ms = (int64_t)pk_cur_u64(&c);
    iv = pk_cur_lp(&c);
    ct = pk_cur_lp(&c);
    PK_ENSURE(!c.bad && c.n == 0 && iv.len == PK_GCM_IV_LEN && ct.len >= PK_GCM_TAG_LEN &&
                  strcmp(s->id, rec->id) == 0 && strcmp(s->ns, rec->ref) == 0 && pk_uuid_parse(s->cmk, s->cmk_uuid),
              P11KMS_ERR_INTEGRITY, "store record secret/%s is malformed", rec->id);
    memcpy(s->iv, iv.ptr, PK_GCM_IV_LEN);
    PK_GUARD(pk_buf_append(&s->ct, ct.ptr, ct.len));
    s->rev = rec->rev;
    return PK_OK;
}

pk_result pk_secret_aad(const pk_secret *s, pk_buf *out)
{
    PK_GUARD(pk_buf_append_lpstr(out, AAD_DOMAIN));
    PK_GUARD(pk_buf_append_lpstr(out, s->id));
    PK_GUARD(pk_buf_append_lpstr(out, s->ns));
    PK_GUARD(pk_buf_append_lpstr(out, s->cmk));
    PK_GUARD(pk_buf_append_be32(out, s->version));
    PK_GUARD(pk_buf_append_be32(out, s->nsv));
    PK_GUARD(pk_buf_append_be64(out, (uint64_t)s->created_ms));
    return pk_buf_append_be64(out, (uint64_t)s->updated_ms);
}

pk_result pk_secret_seal(pk_env *env, pk_secret *s, pk_bytes encoded_map, bool in_tx)
{
    pk_buf aad = {0};
    pk_result r = PK_OK;
    PK_TRY(pk_random(s->iv, sizeof(s->iv)));
    PK_TRY(pk_secret_aad(s, &aad));
    s->ct.len = 0;
    PK_TRY(pk_buf_reserve(&s->ct, encoded_map.len + PK_GCM_TAG_LEN));
    PK_TRY(pk_ns_encrypt(env, s->ns, s->cmk_uuid, s->nsv, s->iv, pk_bytes_of(aad.data, aad.len), encoded_map,
                         s->ct.data, in_tx));
    s->ct.len = encoded_map.len + PK_GCM_TAG_LEN;
out:
    pk_buf_free(&aad);
    return r;
}

pk_result pk_secret_open(pk_env *env, const pk_secret *s, pk_secbuf *encoded_map, bool in_tx)
{
    pk_buf aad = {0};
    pk_result r = pk_secret_aad(s, &aad);
    if (pk_ok(r))
        r = pk_ns_decrypt(env, s->ns, s->cmk_uuid, s->nsv, s->iv, pk_bytes_of(aad.data, aad.len),
                          pk_bytes_of(s->ct.data, s->ct.len), encoded_map, in_tx);
    pk_buf_free(&aad);
    return r;
}

pk_result pk_secret_read(pk_env *env, const char *id, pk_secret *out, pk_record *raw)
{
    bool found = false;
    pk_result r;
    PK_GUARD(pk_secret_id_validate(id));
    pk_records_lock(env->rs);
    r = env->rs->store->ops->get(env->rs->store, "secret", id, raw, &found);
    pk_records_unlock(env->rs);
    PK_GUARD(r);
    PK_ENSURE(found, P11KMS_ERR_NOT_FOUND, "secret %s not found", id);
    r = pk_secret_from_record(raw, out);
    /* A malformed body may be an edit outside p11kms: the MAC says which. */
    if (pk_failed(r)) {
        pk_result m = pk_records_check(env->rs, raw);
        if (pk_failed(m)) return m;
    }
    return r;
}

pk_result pk_secret_load(pk_env *env, const char *id, bool take_lock, pk_secret *out)
{
    pk_record rec = {0};
    bool found = false;
    pk_result r;
    PK_GUARD(pk_secret_id_validate(id));
    if (take_lock) pk_records_lock(env->rs);
    r = pk_records_load(env->rs, "secret", id, &rec, &found);
    if (take_lock) pk_records_unlock(env->rs);
    if (pk_ok(r) && !found) r = pk_fail(P11KMS_ERR_NOT_FOUND, "secret %s not found", id);
    if (pk_ok(r)) r = pk_secret_from_record(&rec, out);
    pk_record_clear(&rec);
    return r;
}

pk_result pk_secret_save_tx(pk_env *env, pk_secret *s)
{
    pk_record rec;
    pk_result r;
    pk_secret_row_forget(env, s->id);
    r = pk_secret_to_record(s, &rec);
    if (pk_ok(r)) r = pk_records_save(env->rs, &rec, s->rev);
    if (pk_ok(r)) s->rev = rec.rev;
    pk_record_clear(&rec);
    return r;
}
