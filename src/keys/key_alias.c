/*
 * Aliases: "alias/NAME" records whose ref is the key id (so the MAC binds
 * the name to the key, and listing a key's aliases is an index lookup).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json/json_in.h"
#include "keys/keys.h"
#include "util/json_out.h"

typedef struct alias_job {
    const char *alias;
    const char *key_id;
    char *key_id_out;
} alias_job;

static pk_result create_tx(p11kms *h, void *ctx)
{
    alias_job *j = ctx;
    pk_record rec;
    pk_key *k = NULL;
    pk_json_out jo;
    bool found = false;
    pk_result r = PK_OK;

    memset(&rec, 0, sizeof(rec));
    PK_TRY(pk_key_load_tx(h, j->key_id, &k));
    PK_CHECK(k->state != PK_KEY_DELETED, P11KMS_ERR_NOT_FOUND, "key %s was deleted", k->id);
    PK_CHECK(k->state != PK_KEY_PENDING_DELETION, P11KMS_ERR_INVALID_STATE, "key %s is pending deletion", k->id);
    PK_TRY(h->store->ops->get(h->store, "alias", j->alias, &rec, &found));
    PK_CHECK(!found, P11KMS_ERR_ALREADY_EXISTS, "alias %s already exists", j->alias);
    pk_record_clear(&rec);
    snprintf(rec.kind, sizeof(rec.kind), "alias");
    snprintf(rec.id, sizeof(rec.id), "%s", j->alias);
    snprintf(rec.ref, sizeof(rec.ref), "%s", j->key_id);
    pk_jo_init(&jo, &rec.body);
    pk_jo_obj_begin(&jo);
    pk_jo_kint(&jo, "created_ms", pk_clock(h));
    pk_jo_obj_end(&jo);
    PK_TRY(pk_jo_result(&jo));
    PK_TRY(pk_record_save(h, &rec, 0));
out:
    pk_record_clear(&rec);
    pk_key_release(h, k);
    return r;
}

pk_result pk_alias_create(p11kms *h, const char *alias, const char *key_id, bool reserved_ok)
{
    alias_job j = {alias, key_id, NULL};
    PK_GUARD(pk_alias_validate(alias, reserved_ok));
    return pk_with_write_tx(h, create_tx, &j);
}

static pk_result delete_tx(p11kms *h, void *ctx)
{
    alias_job *j = ctx;
    pk_record rec = {0};
    bool found = false;
    pk_result r = pk_record_load(h, "alias", j->alias, &rec, &found);
    if (pk_ok(r) && !found) r = pk_fail(P11KMS_ERR_NOT_FOUND, "alias %s not found", j->alias);
    if (pk_ok(r)) {
        if (!pk_strlcpy(j->key_id_out, PK_UUID_STR_LEN + 1, rec.ref))
            r = pk_fail(P11KMS_ERR_INTEGRITY, "store record alias/%s names no key", j->alias);
        if (pk_ok(r)) r = h->store->ops->del(h->store, "alias", j->alias);
    }
    pk_record_clear(&rec);
    return r;
}

pk_result pk_alias_delete(p11kms *h, const char *alias, char key_id_out[PK_UUID_STR_LEN + 1])
{
    alias_job j = {alias, NULL, key_id_out};
    pk_result r;
    PK_GUARD(pk_alias_validate(alias, false));
    r = pk_with_write_tx(h, delete_tx, &j);
    pk_alias_forget_all(h);
    return r;
}

typedef struct list_ctx {
    p11kms *h;
    pk_alias_entry *items;
    size_t n, cap;
    pk_result err;
} list_ctx;

static bool collect(const pk_record *rec, void *ctx)
{
    list_ctx *l = ctx;
    pk_jv *doc = NULL;
    pk_alias_entry *e;

    l->err = pk_record_check(l->h, rec);
    if (pk_failed(l->err)) return false;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        void *p = realloc(l->items, cap * sizeof(*l->items));
        if (p == NULL) {
            l->err = pk_fail(P11KMS_ERR_NO_MEMORY, "out of memory");
            return false;
        }
        l->items = p;
        l->cap = cap;
    }
    e = &l->items[l->n++];
    memset(e, 0, sizeof(*e));
    if (!pk_strlcpy(e->alias, sizeof(e->alias), rec->id) || !pk_strlcpy(e->key_id, sizeof(e->key_id), rec->ref)) {
        l->err = pk_fail(P11KMS_ERR_INTEGRITY, "store record alias/%s is malformed", rec->id);
        return false;
    }
    if (pk_ok(pk_json_parse((const char *)rec->body.data, rec->body.len, P11KMS_ERR_INTEGRITY, &doc)))
        e->created_ms = pk_jv_int(pk_jv_get(doc, "created_ms"));
    pk_json_free(doc);
    return true;
}

pk_result pk_alias_list_tx(p11kms *h, const char *key_id, pk_alias_entry **out, size_t *n)
{
    list_ctx l = {h, NULL, 0, 0, PK_OK};
    pk_result r = h->store->ops->list(h->store, "alias", key_id, collect, &l);
    if (pk_ok(r)) r = l.err;
    if (pk_failed(r)) {
        free(l.items);
        return r;
    }
    *out = l.items;
    *n = l.n;
    return PK_OK;
}

pk_result pk_alias_list(p11kms *h, const char *key_id, pk_alias_entry **out, size_t *n)
{
    pk_result r;
    pthread_mutex_lock(&h->store_lock);
    r = pk_alias_list_tx(h, key_id, out, n);
    pthread_mutex_unlock(&h->store_lock);
    return r;
}
