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
    pk_env *env;
    const char *alias;
    const char *key_id;
    char *key_id_out;
} alias_job;

static pk_result create_tx(void *ctx)
{
    alias_job *j = ctx;
    pk_env *env = j->env;
    pk_record rec;
    pk_key *k = NULL;
    pk_json_out jo;
    bool found = false;
    pk_result r = PK_OK;

    memset(&rec, 0, sizeof(rec));
    PK_TRY(pk_key_load_tx(env, j->key_id, &k));
    PK_CHECK(k->state != PK_KEY_DELETED, P11KMS_ERR_NOT_FOUND, "key %s was deleted", k->id);
    PK_CHECK(k->state != PK_KEY_PENDING_DELETION, P11KMS_ERR_INVALID_STATE, "key %s is pending deletion", k->id);
    PK_TRY(env->rs->store->ops->get(env->rs->store, "alias", j->alias, &rec, &found));
    PK_CHECK(!found, P11KMS_ERR_ALREADY_EXISTS, "alias %s already exists", j->alias);
    pk_record_clear(&rec);
    snprintf(rec.kind, sizeof(rec.kind), "alias");
    snprintf(rec.id, sizeof(rec.id), "%s", j->alias);
    snprintf(rec.ref, sizeof(rec.ref), "%s", j->key_id);
    pk_jo_init(&jo, &rec.body);
    pk_jo_obj_begin(&jo);
    pk_jo_kint(&jo, "created_ms", pk_records_now(env->rs));
    pk_jo_obj_end(&jo);
    PK_TRY(pk_jo_result(&jo));
    PK_TRY(pk_records_save(env->rs, &rec, 0));
out:
    pk_record_clear(&rec);
    pk_key_release(env, k);
    return r;
}

pk_result pk_alias_create(pk_env *env, const char *alias, const char *key_id, bool reserved_ok)
{
    alias_job j = {env, alias, key_id, NULL};
    PK_GUARD(pk_alias_validate(alias, reserved_ok));
    return pk_records_write_tx(env->rs, create_tx, &j);
}

static pk_result delete_tx(void *ctx)
{
    alias_job *j = ctx;
    pk_env *env = j->env;
    pk_record rec = {0};
    bool found = false;
    pk_result r = pk_records_load(env->rs, "alias", j->alias, &rec, &found);
    if (pk_ok(r) && !found) r = pk_fail(P11KMS_ERR_NOT_FOUND, "alias %s not found", j->alias);
    if (pk_ok(r)) {
        if (!pk_strlcpy(j->key_id_out, PK_UUID_STR_LEN + 1, rec.ref))
            r = pk_fail(P11KMS_ERR_INTEGRITY, "store record alias/%s names no key", j->alias);
        if (pk_ok(r)) r = env->rs->store->ops->del(env->rs->store, "alias", j->alias);
    }
    pk_record_clear(&rec);
    return r;
}

pk_result pk_alias_delete(pk_env *env, const char *alias, char key_id_out[PK_UUID_STR_LEN + 1])
{
    alias_job j = {env, alias, NULL, key_id_out};
    pk_result r;
    PK_GUARD(pk_alias_validate(alias, false));
    r = pk_records_write_tx(env->rs, delete_tx, &j);
    pk_alias_forget_all(env);
    return r;
}

typedef struct list_ctx {
    pk_env *env;
    pk_alias_entry *items;
    size_t n, cap;
    pk_result err;
} list_ctx;

static bool collect(const pk_record *rec, void *ctx)
{
    list_ctx *l = ctx;
    pk_jv *doc = NULL;
    pk_alias_entry *e;

    l->err = pk_records_check(l->env->rs, rec);
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

pk_result pk_alias_list_tx(pk_env *env, const char *key_id, pk_alias_entry **out, size_t *n)
{
    list_ctx l = {env, NULL, 0, 0, PK_OK};
    pk_result r = env->rs->store->ops->list(env->rs->store, "alias", key_id, collect, &l);
    if (pk_ok(r)) r = l.err;
    if (pk_failed(r)) {
        free(l.items);
        return r;
    }
    *out = l.items;
    *n = l.n;
    return PK_OK;
}

pk_result pk_alias_list(pk_env *env, const char *key_id, pk_alias_entry **out, size_t *n)
{
    pk_result r;
    pk_records_lock(env->rs);
    r = pk_alias_list_tx(env, key_id, out, n);
    pk_records_unlock(env->rs);
    return r;
}
