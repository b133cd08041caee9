/*
 * Access keys for SigV4 (docs/AUTH.md): create, list, enable/disable,
 * delete. Only the service administrators manage them, i.e. whoever the
 * service key's policy allows kms:PutKeyPolicy (the same people who decide
 * who may use the service key); every change is audited.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/access.h"
#include "core/op.h"
#include "core/remote_fwd.h"
#include "crypto/wipe.h"
#include "json/json_in.h"
#include "util/json_out.h"
#include "util/timefmt.h"

#define ACCESS_ADMIN_ACTION "kms:PutKeyPolicy"

void pk_access_key_token_id(const char *akid, pk_keyid *out)
{
    size_t n = strlen(akid);
    if (n > sizeof(out->bytes) - 1) n = sizeof(out->bytes) - 1;
    out->bytes[0] = 'A';
    memcpy(out->bytes + 1, akid, n);
    out->len = n + 1;
}

static pk_result akid_valid(const char *akid)
{
    size_t n = akid ? strlen(akid) : 0;
    /* Ours are AKIA + 16; shorter ones exist only as imported test keys (the AWS suite's AKIDEXAMPLE). */
    PK_ENSURE(n >= 1 && n <= PK_ACCESS_KEY_ID_MAX, P11KMS_ERR_INVALID_ARGUMENT,
              "an access key id is 1 to %d upper-case letters and digits", PK_ACCESS_KEY_ID_MAX);
    for (size_t i = 0; i < n; i++)
        PK_ENSURE((akid[i] >= 'A' && akid[i] <= 'Z') || (akid[i] >= '0' && akid[i] <= '9'),
                  P11KMS_ERR_INVALID_ARGUMENT, "an access key id is 1 to %d upper-case letters and digits",
                  PK_ACCESS_KEY_ID_MAX);
    return PK_OK;
}

static pk_result parse_record(const pk_record *rec, pk_access_key *out)
{
    pk_jv *doc = NULL;
    const char *status, *label;
    pk_result r = PK_OK;

    memset(out, 0, sizeof(*out));
    PK_TRY(pk_json_parse((const char *)rec->body.data, rec->body.len, P11KMS_ERR_INTEGRITY, &doc));
    status = pk_jv_str(pk_jv_get(doc, "status"));
    label = pk_jv_str(pk_jv_get(doc, "label"));
    PK_CHECK(status != NULL && label != NULL && pk_strlcpy(out->id, sizeof(out->id), rec->id) &&
                 pk_strlcpy(out->principal, sizeof(out->principal), rec->ref) &&
                 pk_strlcpy(out->label, sizeof(out->label), label),
             P11KMS_ERR_INTEGRITY, "store record access/%s is malformed", rec->id);
    out->active = strcmp(status, "Active") == 0;
    out->created_ms = pk_jv_int(pk_jv_get(doc, "created_ms"));
out:
    pk_json_free(doc);
    return r;
}

static pk_result record_body(const pk_access_key *k, pk_buf *body)
{
    pk_json_out j;
    pk_jo_init(&j, body);
    pk_jo_obj_begin(&j);
    pk_jo_kstr(&j, "status", k->active ? "Active" : "Inactive");
    pk_jo_kint(&j, "created_ms", k->created_ms);
    pk_jo_kstr(&j, "label", k->label);
    pk_jo_obj_end(&j);
    return pk_jo_result(&j);
}

static pk_result load_inlock(p11kms *h, const char *akid, pk_access_key *out, uint64_t *rev, bool *found)
{
    pk_record rec;
    pk_result r;
    memset(&rec, 0, sizeof(rec));
    r = pk_record_load(h, PK_ACCESS_KIND, akid, &rec, found);
    if (pk_ok(r) && *found) r = parse_record(&rec, out);
    if (rev) *rev = rec.rev;
    pk_record_clear(&rec);
    return r;
}

pk_result pk_access_key_load(p11kms *h, const char *akid, pk_access_key *out, bool *found)
{
    pk_result r;
    pthread_mutex_lock(&h->store_lock);
    r = load_inlock(h, akid, out, NULL, found);
    pthread_mutex_unlock(&h->store_lock);
    return r;
}

bool pk_access_key_owns_object(p11kms *h, const pk_p11_object *o)
{
    const size_t plen = strlen(PK_ACCESS_LABEL_PREFIX);
    const char *akid = o->label + plen;
    pk_access_key k;
    pk_keyid tid;
    bool found = false;
    if (strncmp(o->label, PK_ACCESS_LABEL_PREFIX, plen) != 0 || pk_failed(akid_valid(akid))) return false;
    pk_access_key_token_id(akid, &tid);
    if (tid.len != o->id.len || memcmp(tid.bytes, o->id.bytes, tid.len) != 0) return false;
    return pk_ok(pk_access_key_load(h, akid, &k, &found)) && found && strcmp(k.label, o->label) == 0;
}

/* ---- create ---- */

typedef struct create_job {
    pk_access_key key;
    pk_bytes value; /* "AWS4" + secret */
} create_job;

static pk_result save_new(p11kms *h, const pk_access_key *k)
{
    pk_record rec;
    pk_result r = PK_OK;
    memset(&rec, 0, sizeof(rec));
    snprintf(rec.kind, sizeof(rec.kind), "%s", PK_ACCESS_KIND);
    snprintf(rec.id, sizeof(rec.id), "%s", k->id);
    snprintf(rec.ref, sizeof(rec.ref), "%s", k->principal);
    PK_TRY(record_body(k, &rec.body));
    PK_TRY(pk_record_save(h, &rec, 0));
out:
    pk_record_clear(&rec);
    return r;
}

static pk_result create_tx(p11kms *h, void *ctx)
{
    create_job *j = ctx;
    uint64_t n = 0;
    bool found = false;
    pk_access_key old;
    pk_keyid tid;
    pk_result r;

    PK_GUARD(h->store->ops->count(h->store, PK_ACCESS_KIND, j->key.principal, &n));
    PK_ENSURE(n < PK_ACCESS_PER_PRINCIPAL, P11KMS_ERR_LIMIT,
              "%s already has %d access keys; delete one before creating another", j->key.principal,
              PK_ACCESS_PER_PRINCIPAL);
    PK_GUARD(load_inlock(h, j->key.id, &old, NULL, &found));
    PK_ENSURE(!found, P11KMS_ERR_ALREADY_EXISTS, "access key %s already exists", j->key.id);
    pk_access_key_token_id(j->key.id, &tid);
    PK_GUARD(pk_p11_secret_create(h->p11, &tid, j->key.label, j->value));
    r = save_new(h, &j->key);
    /* The transaction rolls back: leave no object the store does not name. */
    if (pk_failed(r)) PK_IGNORE(pk_p11_destroy_key(h->p11, &tid));
    return r;
}

/* Uniform characters from an alphabet of 32 or 64 (a power of two: no modulo bias), from the HSM's RNG. */
static pk_result random_chars(p11kms *h, const char *alphabet, size_t alen, char *out, size_t n)
{
    uint8_t rnd[64];
    PK_ENSURE(n <= sizeof(rnd), P11KMS_ERR_INTERNAL, "too many random characters");
    PK_GUARD(pk_p11_random(h->p11, rnd, n));
    for (size_t i = 0; i < n; i++) out[i] = alphabet[rnd[i] & (alen - 1)];
    pk_wipe(rnd, sizeof(rnd));
    return PK_OK;
}

static void drop_orphan(p11kms *h, const char *akid)
{
    pk_access_key k;
    pk_keyid tid;
    bool found = true;
    char detail[512];
    snprintf(detail, sizeof(detail), "%s", p11kms_last_error()); /* the caller must see the first failure */
    if (pk_ok(pk_access_key_load(h, akid, &k, &found)) && !found) {
        pk_access_key_token_id(akid, &tid);
        PK_IGNORE(pk_p11_destroy_key(h->p11, &tid));
    }
    pk_fail(P11KMS_ERR_INTERNAL, "%s", detail);
}

static pk_result store_key(p11kms *h, const char *principal, const char *akid, const char *secret, size_t slen)
{
    create_job j;
    pk_secbuf value = {0};
    pk_result r = PK_OK;

    memset(&j, 0, sizeof(j));
    PK_TRY(akid_valid(akid));
    PK_CHECK(pk_strlcpy(j.key.principal, sizeof(j.key.principal), principal), P11KMS_ERR_INVALID_ARGUMENT,
             "principal is longer than %zu bytes", sizeof(j.key.principal) - 1);
    snprintf(j.key.id, sizeof(j.key.id), "%s", akid);
    snprintf(j.key.label, sizeof(j.key.label), PK_ACCESS_LABEL_PREFIX "%s", akid);
    j.key.active = true;
    j.key.created_ms = pk_clock(h);
    PK_TRY(pk_secbuf_append(&value, "AWS4", 4));
    PK_TRY(pk_secbuf_append(&value, secret, slen));
    j.value = pk_bytes_of(value.data, value.len);
    r = pk_with_write_tx(h, create_tx, &j);
    /* Rolled back after the object was made (e.g. the audit trail refused the record): remove the object. */
    if (pk_failed(r)) drop_orphan(h, akid);
out:
    pk_secbuf_free(&value);
    return r;
}

pk_result pk_access_key_import(p11kms *h, const char *principal, const char *akid, const char *secret)
{
    PK_ENSURE(secret != NULL && *secret != '\0' && strlen(secret) <= 128, P11KMS_ERR_INVALID_ARGUMENT,
              "bad secret");
    return store_key(h, principal, akid, secret, strlen(secret));
}

static pk_result principal_valid(const char *principal)
{
    PK_ENSURE(principal != NULL && *principal != '\0', P11KMS_ERR_INVALID_ARGUMENT,
              "no principal: an access key belongs to a principal ARN");
    PK_ENSURE(pk_principal_arn_valid(principal), P11KMS_ERR_INVALID_ARGUMENT,
              "principal must be an IAM-style ARN (arn:aws:iam::ACCOUNT:...), e.g. "
              "arn:aws:iam::111122223333:role/flink-operator");
    return PK_OK;
}

P11KMS_API p11kms_rc p11kms_access_key_create(p11kms *h, const p11kms_caller *c, const char *principal,
                                              char **access_key_id, p11kms_buf **secret)
{
    if (h != NULL && h->remote != NULL)
        return (*access_key_id = NULL, *secret = NULL, pk_fwd_refuse("access-key create"));
    static const char b32[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    pk_op op;
    pk_result r = PK_OK;
    char akid[PK_ACCESS_KEY_ID_LEN + 1] = "AKIA";
    pk_secbuf sec = {0};

    *access_key_id = NULL;
    *secret = NULL;
    PK_TRY(pk_op_begin(&op, h, c, "p11kms:CreateAccessKey"));
    pk_op_output_str(&op, access_key_id);
    pk_op_output_buf(&op, secret);
    PK_TRY(principal_valid(principal));
    PK_TRY(pk_op_authorize_service_admin(&op, ACCESS_ADMIN_ACTION));
    PK_TRY(random_chars(h, b32, 32, akid + 4, PK_ACCESS_KEY_ID_LEN - 4));
    op.access_key_id = akid; /* the record names the access key (never its secret) */
    PK_TRY(pk_op_preflight(&op));
    PK_TRY(pk_secbuf_alloc(&sec, PK_ACCESS_SECRET_LEN + 1));
    PK_TRY(random_chars(h, b64, 64, (char *)sec.data, PK_ACCESS_SECRET_LEN));
    sec.len = PK_ACCESS_SECRET_LEN;
    PK_TRY(store_key(h, principal, akid, (const char *)sec.data, sec.len));
    PK_TRY(pk_secbuf_cstr(&sec));
    *access_key_id = strdup(akid);
    PK_CHECK_ALLOC(*access_key_id);
    PK_TRY(pk_secbuf_out(&sec, secret));
out:
    pk_secbuf_free(&sec);
    return pk_op_finish(&op, r);
}

/* ---- list ---- */

typedef struct list_ctx {
    p11kms *h;
    pk_json_out *j;
    pk_result err;
} list_ctx;

static bool list_one(const pk_record *rec, void *ctx)
{
    list_ctx *l = ctx;
    pk_access_key k;
    char t[PK_TIME_STR_LEN];
    l->err = pk_record_check(l->h, rec);
    if (pk_ok(l->err)) l->err = parse_record(rec, &k);
    if (pk_failed(l->err)) return false;
    pk_time_rfc3339(k.created_ms, t);
    pk_jo_obj_begin(l->j);
    pk_jo_kstr(l->j, "AccessKeyId", k.id);
    pk_jo_kstr(l->j, "Principal", k.principal);
    pk_jo_kstr(l->j, "Status", k.active ? "Active" : "Inactive");
    pk_jo_kstr(l->j, "CreateDate", t);
    pk_jo_obj_end(l->j);
    return true;
}

P11KMS_API p11kms_rc p11kms_access_key_list(p11kms *h, const p11kms_caller *c, const char *principal, char **json)
{
    if (h != NULL && h->remote != NULL) return (*json = NULL, pk_fwd_refuse("access-key list"));
    pk_op op;
    pk_result r = PK_OK;
    pk_buf out = {0};
    pk_json_out j;
    list_ctx l;

    *json = NULL;
    PK_TRY(pk_op_begin(&op, h, c, "p11kms:ListAccessKeys"));
    pk_op_output_str(&op, json);
    if (principal != NULL) PK_TRY(principal_valid(principal));
    PK_TRY(pk_op_authorize_service_admin(&op, ACCESS_ADMIN_ACTION));
    pk_jo_init(&j, &out);
    pk_jo_arr_begin(&j);
    l = (list_ctx){h, &j, PK_OK};
    pthread_mutex_lock(&h->store_lock);
    r = h->store->ops->list(h->store, PK_ACCESS_KIND, principal, list_one, &l);
    pthread_mutex_unlock(&h->store_lock);
    PK_TRY(r);
    PK_TRY(l.err);
    pk_jo_arr_end(&j);
    PK_TRY(pk_jo_result(&j));
    PK_TRY(pk_str_out(&out, json));
out:
    pk_buf_free(&out);
    return pk_op_finish(&op, r);
}

/* ---- enable, disable, delete ---- */

typedef struct change_job {
    const char *akid;
    int enabled; /* -1: delete */
} change_job;

static pk_result change_tx(p11kms *h, void *ctx)
{
    change_job *j = ctx;
    pk_access_key k;
    pk_record rec;
    uint64_t rev = 0;
    bool found = false;
    pk_result r = PK_OK;

    PK_GUARD(load_inlock(h, j->akid, &k, &rev, &found));
    PK_ENSURE(found, P11KMS_ERR_NOT_FOUND, "access key %s not found", j->akid);
    if (j->enabled < 0) return h->store->ops->del(h->store, PK_ACCESS_KIND, j->akid);
    k.active = j->enabled != 0;
    memset(&rec, 0, sizeof(rec));
    snprintf(rec.kind, sizeof(rec.kind), "%s", PK_ACCESS_KIND);
    snprintf(rec.id, sizeof(rec.id), "%s", k.id);
    snprintf(rec.ref, sizeof(rec.ref), "%s", k.principal);
    PK_TRY(record_body(&k, &rec.body));
    PK_TRY(pk_record_save(h, &rec, rev));
out:
    pk_record_clear(&rec);
    return r;
}

static p11kms_rc change(p11kms *h, const p11kms_caller *c, const char *action, const char *akid, int enabled)
{
    pk_op op;
    pk_result r = PK_OK;
    change_job j = {akid, enabled};
    pk_keyid tid;

    PK_TRY(pk_op_begin(&op, h, c, action));
    PK_TRY(akid_valid(akid));
    op.access_key_id = akid;
    PK_TRY(pk_op_authorize_service_admin(&op, ACCESS_ADMIN_ACTION));
    PK_TRY(pk_op_preflight(&op));
    r = pk_with_write_tx(h, change_tx, &j);
    pk_sigv4_cache_clear(h);
    PK_TRY(r);
    /* After the commit: a crash in between leaves an object no record names, never a record without its object. */
    pk_access_key_token_id(akid, &tid);
    if (enabled < 0) PK_TRY(pk_p11_destroy_key(h->p11, &tid));
out:
    return pk_op_finish(&op, r);
}

P11KMS_API p11kms_rc p11kms_access_key_set_enabled(p11kms *h, const p11kms_caller *c, const char *access_key_id,
                                                   int enabled)
{
    if (h != NULL && h->remote != NULL) return pk_fwd_refuse("access-key enable/disable");
    return change(h, c, enabled ? "p11kms:EnableAccessKey" : "p11kms:DisableAccessKey", access_key_id,
                  enabled ? 1 : 0);
}

P11KMS_API p11kms_rc p11kms_access_key_delete(p11kms *h, const p11kms_caller *c, const char *access_key_id)
{
    if (h != NULL && h->remote != NULL) return pk_fwd_refuse("access-key delete");
    return change(h, c, "p11kms:DeleteAccessKey", access_key_id, -1);
}
