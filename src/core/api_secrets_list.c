/*
 * Public SecretStore API: list (kms:DescribeKey per secret; metadata only,
 * values never shown). See api_secrets.c for the model.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/op.h"
#include "core/remote_fwd.h"
#include "core/secret_ops.h"
#include "crypto/crypto.h"
#include "util/json_out.h"
#include "util/timefmt.h"

/* ---- list ---- */

void pk_secret_item_of(const pk_secret *s, list_item *it)
{
    memcpy(it->id, s->id, sizeof(it->id));
    memcpy(it->ns, s->ns, sizeof(it->ns));
    memcpy(it->cmk, s->cmk, sizeof(it->cmk));
    it->version = s->version;
    it->nsv = s->nsv;
    it->created_ms = s->created_ms;
    it->updated_ms = s->updated_ms;
}


typedef struct list_acc {
    p11kms *h;
    list_item *items;
    size_t n, cap;
    pk_result err;
} list_acc;

static bool list_collect(const pk_record *rec, void *ctx)
{
    list_acc *a = ctx;
    pk_secret s;
    a->err = pk_record_check(a->h, rec);
    if (pk_ok(a->err)) a->err = pk_secret_from_record(rec, &s);
    if (pk_failed(a->err)) return false;
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 64;
        list_item *grown = realloc(a->items, cap * sizeof(*grown));
        if (grown == NULL) {
            pk_secret_clear(&s);
            a->err = pk_fail(P11KMS_ERR_NO_MEMORY, "out of memory");
            return false;
        }
        a->items = grown;
        a->cap = cap;
    }
    pk_secret_item_of(&s, &a->items[a->n++]);
    pk_secret_clear(&s);
    return true;
}

pk_result pk_secret_collect(p11kms *h, const char *ns, list_item **items, size_t *n)
{
    list_acc a = {h, NULL, 0, 0, PK_OK};
    pk_result r;
    pthread_mutex_lock(&h->store_lock);
    r = h->store->ops->list(h->store, "secret", ns, list_collect, &a);
    pthread_mutex_unlock(&h->store_lock);
    if (pk_ok(r)) r = a.err;
    if (pk_failed(r)) {
        free(a.items);
        return r;
    }
    *items = a.items;
    *n = a.n;
    return PK_OK;
}

static void json_time(pk_json_out *j, const char *key, int64_t ms)
{
    char t[PK_TIME_STR_LEN];
    pk_time_rfc3339(ms, t);
    pk_jo_kstr(j, key, t);
}

P11KMS_API p11kms_rc p11kms_secret_list(p11kms *h, const p11kms_caller *c, const char *ns, char **json)
{
    if (h != NULL && h->remote != NULL) return pk_fwd_secret_list(h, c, ns, json);
    pk_op op;
    pk_result r = PK_OK;
    list_item *items = NULL;
    size_t n = 0;
    pk_buf out = {0};
    pk_json_out j;
    /* Decisions per key within this call: lists are usually one or two keys. */
    char (*seen)[PK_UUID_STR_LEN + 1] = NULL;
    bool *allowed = NULL;
    size_t nseen = 0;
    pk_secret_ctx sc;

    *json = NULL;
    PK_TRY(pk_op_begin(&op, h, c, "kms:DescribeKey"));
    pk_op_output_str(&op, json);
    if (ns != NULL) PK_TRY(pk_ns_validate(ns));
    PK_TRY(pk_secret_collect(h, ns, &items, &n));
    seen = calloc(n + 1, sizeof(*seen));
    allowed = calloc(n + 1, sizeof(*allowed));
    PK_CHECK(seen != NULL && allowed != NULL, P11KMS_ERR_NO_MEMORY, "out of memory");
    pk_jo_init(&j, &out);
    pk_jo_arr_begin(&j);
    for (size_t i = 0; i < n; i++) {
        size_t s;
        for (s = 0; s < nseen && strcmp(seen[s], items[i].cmk) != 0; s++) {}
        if (s == nseen) {
            pk_key *k = NULL;
            pk_result a;
            memcpy(seen[nseen], items[i].cmk, PK_UUID_STR_LEN + 1);
            pk_secret_ctx_set(&op, &sc, items[i].ns, NULL, NULL);
            a = pk_secret_authorize(&op, items[i].cmk, "kms:DescribeKey", false, &k);
            pk_key_release(&h->env, k);
            allowed[nseen++] = pk_ok(a);
        }
        if (!allowed[s]) continue;
        pk_jo_obj_begin(&j);
        pk_jo_kstr(&j, "SecretId", items[i].id);
        pk_jo_kstr(&j, "Namespace", items[i].ns);
        pk_jo_kstr(&j, "KeyId", items[i].cmk);
        pk_jo_kint(&j, "Version", items[i].version);
        pk_jo_kint(&j, "NamespaceKeyVersion", items[i].nsv);
        json_time(&j, "CreatedDate", items[i].created_ms);
        json_time(&j, "LastChangedDate", items[i].updated_ms);
        pk_jo_obj_end(&j);
    }
    pk_jo_arr_end(&j);
    pk_error_clear(); /* denied keys are filtered out, not an error */
    op.ctx = NULL;
    op.nctx = 0;
    memset(op.key_id, 0, sizeof(op.key_id));
    op.decided = false;
    PK_TRY(pk_jo_result(&j));
    PK_TRY(pk_str_out(&out, json));
out:
    free(seen);
    free(allowed);
    free(items);
    pk_buf_free(&out);
    return pk_op_finish(&op, r);
}

/* ---- describe ---- */

void pk_secret_info_fill(const pk_secret *s, p11kms_secret_info *info)
{
    snprintf(info->ns, sizeof(info->ns), "%s", s->ns);
    snprintf(info->key_id, sizeof(info->key_id), "%s", s->cmk);
    info->version = s->version;
    info->created_ms = s->created_ms;
    info->updated_ms = s->updated_ms;
}

P11KMS_API p11kms_rc p11kms_secret_describe(p11kms *h, const p11kms_caller *c, const char *id,
                                            p11kms_secret_info *info)
{
    if (h != NULL && h->remote != NULL) return pk_fwd_refuse("p11kms_secret_describe");
    pk_op op;
    pk_result r = PK_OK;
    pk_secret s;
    pk_key *k = NULL;
    pk_secret_ctx sc;

    memset(&s, 0, sizeof(s));
    PK_TRY(pk_op_begin(&op, h, c, "kms:DescribeKey"));
    op.secret_id = id;
    PK_CHECK(info != NULL && info->struct_size >= sizeof(*info), P11KMS_ERR_INVALID_ARGUMENT,
             "p11kms_secret_info: set struct_size = sizeof(p11kms_secret_info)");
    PK_TRY(pk_secret_load(&h->env, id, true, &s));
    pk_secret_ctx_set(&op, &sc, s.ns, id, NULL);
    PK_TRY(pk_secret_authorize(&op, s.cmk, op.action, false, &k));
    pk_secret_info_fill(&s, info);
out:
    pk_key_release(&h->env, k);
    pk_secret_clear(&s);
    return pk_op_finish(&op, r);
}

/* ---- Secrets Manager ARNs ---- */

P11KMS_API p11kms_rc p11kms_secret_arn(p11kms *h, const char *name, char **arn)
{
    static const char b32[] = "abcdefghijklmnopqrstuvwxyz234567";
    static const char domain[] = "p11kms-secret-arn";
    uint8_t d[PK_SHA256_LEN];
    char in[sizeof(domain) + PK_SECRET_ID_MAX], sfx[7], buf[PK_SECRET_ID_MAX + 128];
    uint64_t bits = 0;

    pk_error_clear();
    if (arn == NULL) return pk_fail(P11KMS_ERR_INVALID_ARGUMENT, "no output").code;
    *arn = NULL;
    if (h == NULL || !pk_secret_name_ok(name))
        return pk_fail(P11KMS_ERR_INVALID_ARGUMENT, "a secret ARN is made from a secret name").code;
    /* The suffix is the first 30 bits of SHA-256(domain || name) in base32: stable without storing it. */
    snprintf(in, sizeof(in), "%s%s", domain, name);
    if (pk_failed(pk_sha256(in, strlen(in), d))) return P11KMS_ERR_INTERNAL;
    for (int i = 0; i < 4; i++) bits = (bits << 8) | d[i];
    for (int i = 0; i < 6; i++) sfx[i] = b32[(bits >> (27 - 5 * i)) & 31];
    sfx[6] = '\0';
    snprintf(buf, sizeof(buf), "arn:aws:secretsmanager:%s:%s:secret:%s-%s", h->region, h->account, name, sfx);
    *arn = strdup(buf);
    return *arn ? P11KMS_OK : pk_fail(P11KMS_ERR_NO_MEMORY, "out of memory").code;
}
