/*
 * Key life cycle: create, enable/disable, rotate, schedule and cancel
 * deletion, policy replacement, purge. Every change is a write
 * transaction on the key record (re-read inside the transaction, so
 * concurrent processes never lose an update).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keys/keys.h"

#define DAY_MS (86400LL * 1000)

static pk_result make_version_object(pk_env *env, const pk_key *k, uint32_t version)
{
    pk_keyid vid;
    char label[96];
    pk_key_version_id(k->uuid, version, &vid);
    pk_key_version_label(k->id, version, label, sizeof(label));
    return pk_p11_generate_key(env->p11, PK_KEY_AES_CMK, &vid, label);
}

pk_result pk_key_add_version_tx(pk_env *env, pk_key *k)
{
    pk_key_version *v;
    uint32_t next = k->nversions + 1;
    int64_t now = pk_records_now(env->rs);

    PK_ENSURE(next <= PK_KEY_MAX_VERSIONS, P11KMS_ERR_LIMIT, "key %s has reached %d versions", k->id,
              PK_KEY_MAX_VERSIONS);
    v = realloc(k->versions, next * sizeof(*v));
    PK_ENSURE_ALLOC(v);
    k->versions = v;
    PK_GUARD(make_version_object(env, k, next));
    k->versions[next - 1].number = next;
    k->versions[next - 1].created_ms = now;
    k->nversions = next;
    k->nonce_reserved = 0;
    k->last_rotated_ms = now;
    return PK_OK;
}

typedef struct create_job {
    pk_env *env;
    pk_key *k;
} create_job;

static pk_result create_tx(void *ctx)
{
    create_job *j = ctx;
    pk_env *env = j->env;
    pk_record rec;
    pk_result r;

    PK_GUARD(make_version_object(env, j->k, 1));
    r = pk_key_to_record(j->k, &rec);
    if (pk_ok(r)) r = pk_records_save(env->rs, &rec, 0);
    pk_record_clear(&rec);
    if (pk_failed(r)) {
        /* Do not leave an orphan token object behind a failed insert. */
        pk_keyid vid;
        pk_key_version_id(j->k->uuid, 1, &vid);
        PK_IGNORE(pk_p11_destroy_key(env->p11, &vid));
    }
    return r;
}

pk_result pk_key_create(pk_env *env, const pk_key_create_args *a, char out_id[PK_UUID_STR_LEN + 1])
{
    pk_result r = PK_OK;
    pk_key *k = calloc(1, sizeof(*k));
    create_job j;
    int64_t now = pk_records_now(env->rs);

    PK_ENSURE_ALLOC(k);
    pthread_mutex_init(&k->nonce_lock, NULL);
    PK_CHECK(a->description == NULL || strlen(a->description) <= PK_KEY_DESCRIPTION_MAX, P11KMS_ERR_INVALID_ARGUMENT,
             "description is longer than %d bytes", PK_KEY_DESCRIPTION_MAX);
    PK_CHECK(a->rotation_days == 0 ||
                 (a->rotation_days >= PK_ROTATION_MIN_DAYS && a->rotation_days <= PK_ROTATION_MAX_DAYS),
             P11KMS_ERR_INVALID_ARGUMENT, "rotation period must be %d to %d days (or 0 for off)", PK_ROTATION_MIN_DAYS,
             PK_ROTATION_MAX_DAYS);
    PK_CHECK(a->policy_json != NULL, P11KMS_ERR_INTERNAL, "no policy for the new key");
    if (a->uuid != NULL)
        memcpy(k->uuid, a->uuid, PK_UUID_LEN);
    else
        PK_TRY(pk_uuid_new(k->uuid));
    pk_uuid_format(k->uuid, k->id);
    k->description = strdup(a->description ? a->description : "");
    k->policy_json = strdup(a->policy_json);
    k->versions = calloc(1, sizeof(*k->versions));
    PK_CHECK(k->description != NULL && k->policy_json != NULL && k->versions != NULL, P11KMS_ERR_NO_MEMORY,
             "out of memory");
    /* Refuse a policy that does not compile before anything is created. */
    PK_TRY(pk_policy_compile(k->policy_json, strlen(k->policy_json), &k->policy));
    k->state = PK_KEY_ENABLED;
    k->service = a->service;
    k->created_ms = k->last_rotated_ms = now;
    k->rotation_days = a->rotation_days;
    k->nversions = 1;
    k->versions[0].number = 1;
    k->versions[0].created_ms = now;
    j.k = k;
    j.env = env;
    r = pk_records_write_tx(env->rs, create_tx, &j);
    if (pk_failed(r)) {
        /* The transaction rolled back (store or audit trail): do not leave the token object behind. */
        pk_keyid vid;
        pk_key_version_id(k->uuid, 1, &vid);
        PK_IGNORE(pk_p11_destroy_key(env->p11, &vid));
        goto out;
    }
    memcpy(out_id, k->id, PK_UUID_STR_LEN + 1);
out:
    pk_key_free(k);
    return r;
}

/* A change applied to a freshly loaded key inside a write transaction. */
typedef pk_result (*key_change_fn)(pk_env *env, pk_key *k, void *arg);

typedef struct change_job {
    pk_env *env;
    const char *key_id;
    key_change_fn fn;
    void *arg;
} change_job;

static pk_result change_tx(void *ctx)
{
    change_job *j = ctx;
    pk_env *env = j->env;
    pk_key *k = NULL;
    pk_result r = PK_OK;

    PK_TRY(pk_key_load_tx(env, j->key_id, &k));
    PK_CHECK(k->state != PK_KEY_DELETED, P11KMS_ERR_NOT_FOUND, "key %s was deleted", k->id);
    PK_TRY(j->fn(env, k, j->arg));
    PK_TRY(pk_key_save_tx(env, k));
out:
    pk_key_release(env, k);
    return r;
}

static pk_result change_key(pk_env *env, const char *key_id, key_change_fn fn, void *arg)
{
    change_job j = {env, key_id, fn, arg};
    pk_result r = pk_records_write_tx(env->rs, change_tx, &j);
    pk_key_forget(env, key_id);
    return r;
}

static pk_result do_set_state(pk_env *env, pk_key *k, void *arg)
{
    pk_key_state want = *(pk_key_state *)arg;
    (void)env;
    PK_ENSURE(k->state != PK_KEY_PENDING_DELETION, P11KMS_ERR_INVALID_STATE,
              "key %s is pending deletion; cancel the deletion first", k->id);
    PK_ENSURE(!(k->service && want == PK_KEY_DISABLED), P11KMS_ERR_INVALID_STATE,
              "key %s is the p11kms service key and cannot be disabled", k->id);
    k->state = want;
    return PK_OK;
}

pk_result pk_key_set_state(pk_env *env, const char *key_id, pk_key_state want)
{
    PK_ENSURE(want == PK_KEY_ENABLED || want == PK_KEY_DISABLED, P11KMS_ERR_INTERNAL, "bad target state");
    return change_key(env, key_id, do_set_state, &want);
}

static pk_result do_rotate(pk_env *env, pk_key *k, void *arg)
{
    PK_ENSURE(k->state == PK_KEY_ENABLED, P11KMS_ERR_INVALID_STATE, "key %s must be Enabled to rotate (it is %s)",
              k->id, pk_key_state_name(k->state));
    PK_GUARD(pk_key_add_version_tx(env, k));
    *(uint32_t *)arg = k->nversions;
    return PK_OK;
}

pk_result pk_key_rotate(pk_env *env, const char *key_id, uint32_t *new_version)
{
    return change_key(env, key_id, do_rotate, new_version);
}

typedef struct deletion_arg {
    uint32_t days;
    int64_t when;
} deletion_arg;

static pk_result do_schedule(pk_env *env, pk_key *k, void *arg)
{
    deletion_arg *d = arg;
    (void)env;
    PK_ENSURE(k->state != PK_KEY_PENDING_DELETION, P11KMS_ERR_INVALID_STATE, "key %s is already pending deletion",
              k->id);
    PK_ENSURE(!k->service, P11KMS_ERR_INVALID_STATE, "key %s is the p11kms service key and cannot be deleted", k->id);
    k->state = PK_KEY_PENDING_DELETION;
    k->deletion_ms = pk_records_now(env->rs) + (int64_t)d->days * DAY_MS;
    d->when = k->deletion_ms;
    return PK_OK;
}

pk_result pk_key_schedule_deletion(pk_env *env, const char *key_id, uint32_t days, int64_t *when_ms)
{
    deletion_arg d = {days, 0};
    PK_ENSURE(days >= PK_DELETION_MIN_DAYS && days <= PK_DELETION_MAX_DAYS, P11KMS_ERR_INVALID_ARGUMENT,
              "the deletion waiting period must be %d to %d days", PK_DELETION_MIN_DAYS, PK_DELETION_MAX_DAYS);
    PK_GUARD(change_key(env, key_id, do_schedule, &d));
    *when_ms = d.when;
    return PK_OK;
}

static pk_result do_cancel(pk_env *env, pk_key *k, void *arg)
{
    (void)env;
    (void)arg;
    PK_ENSURE(k->state == PK_KEY_PENDING_DELETION, P11KMS_ERR_INVALID_STATE, "key %s is not pending deletion", k->id);
    /* As in AWS KMS, a cancelled deletion leaves the key disabled. */
    k->state = PK_KEY_DISABLED;
    k->deletion_ms = 0;
    return PK_OK;
}

pk_result pk_key_cancel_deletion(pk_env *env, const char *key_id)
{
    return change_key(env, key_id, do_cancel, NULL);
}

static pk_result do_put_policy(pk_env *env, pk_key *k, void *arg)
{
    const char *json = arg;
    pk_policy *p = NULL;
    char *copy;
    (void)env;
    PK_GUARD(pk_policy_compile(json, strlen(json), &p));
    copy = strdup(json);
    if (copy == NULL) {
        pk_policy_free(p);
        return pk_fail(P11KMS_ERR_NO_MEMORY, "out of memory");
    }
    free(k->policy_json);
    pk_policy_free(k->policy);
    k->policy_json = copy;
    k->policy = p;
    return PK_OK;
}

pk_result pk_key_put_policy(pk_env *env, const char *key_id, const char *policy_json)
{
    return change_key(env, key_id, do_put_policy, (void *)policy_json);
}

/* ---- purge ---- */

typedef struct due_list {
    char (*ids)[PK_UUID_STR_LEN + 1];
    size_t n, cap;
    pk_result err;
} due_list;

static bool collect_due(const pk_record *rec, void *ctx)
{
    due_list *d = ctx;
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 16;
        void *p = realloc(d->ids, cap * sizeof(*d->ids));
        if (p == NULL) {
            d->err = pk_fail(P11KMS_ERR_NO_MEMORY, "out of memory");
            return false;
        }
        d->ids = p;
        d->cap = cap;
    }
    if (strlen(rec->id) != PK_UUID_STR_LEN) {
        d->err = pk_fail(P11KMS_ERR_INTEGRITY, "store record key/%s has a bad id", rec->id);
        return false;
    }
    memcpy(d->ids[d->n++], rec->id, PK_UUID_STR_LEN + 1);
    return true;
}

static pk_result report_add(char (**list)[PK_UUID_STR_LEN + 1], size_t *n, const char *id)
{
    void *p = realloc(*list, (*n + 1) * sizeof(**list));
    PK_ENSURE_ALLOC(p);
    *list = p;
    snprintf((*list)[(*n)++], PK_UUID_STR_LEN + 1, "%s", id);
    return PK_OK;
}

static pk_result delete_aliases_of(pk_env *env, const char *key_id)
{
    pk_alias_entry *a = NULL;
    size_t n = 0;
    pk_result r = pk_alias_list_tx(env, key_id, &a, &n);
    for (size_t i = 0; pk_ok(r) && i < n; i++) r = env->rs->store->ops->del(env->rs->store, "alias", a[i].alias);
    free(a);
    return r;
}

typedef struct purge_job {
    pk_env *env;
    bool rotate;
    pk_purge_report *report;
} purge_job;

/* Destroy the versions' token objects, then mark the metadata deleted (kept for audit). */
static pk_result destroy_key_tx(pk_env *env, pk_key *k)
{
    for (uint32_t v = 1; v <= k->nversions; v++) {
        pk_keyid vid;
        pk_key_version_id(k->uuid, v, &vid);
        PK_GUARD(pk_p11_destroy_key(env->p11, &vid));
    }
    PK_GUARD(delete_aliases_of(env, k->id));
    k->state = PK_KEY_DELETED;
    return PK_OK;
}

static pk_result purge_tx(void *ctx)
{
    purge_job *j = ctx;
    pk_env *env = j->env;
    due_list due = {NULL, 0, 0, PK_OK};
    int64_t now = pk_records_now(env->rs);
    pk_result r = PK_OK;

    PK_TRY(env->rs->store->ops->list_due(env->rs->store, "key", now, collect_due, &due));
    PK_TRY(due.err);
    for (size_t i = 0; i < due.n; i++) {
        pk_key *k = NULL;
        bool changed = false;
        PK_TRY(pk_key_load_tx(env, due.ids[i], &k));
        if (k->state == PK_KEY_PENDING_DELETION && k->deletion_ms <= now) {
            r = destroy_key_tx(env, k);
            if (pk_ok(r)) r = report_add(&j->report->destroyed, &j->report->ndestroyed, k->id);
            changed = true;
        } else if (j->rotate && k->state != PK_KEY_PENDING_DELETION && pk_key_due_ms(k) > 0 &&
                   pk_key_due_ms(k) <= now) {
            /* A disabled key still rotates on schedule, as in AWS KMS. */
            r = pk_key_add_version_tx(env, k);
            if (pk_ok(r)) r = report_add(&j->report->rotated, &j->report->nrotated, k->id);
            changed = true;
        }
        if (pk_ok(r) && changed) r = pk_key_save_tx(env, k);
        pk_key_release(env, k);
        PK_TRY(r);
    }
out:
    free(due.ids);
    return r;
}

pk_result pk_key_purge(pk_env *env, bool rotate, pk_purge_report *report)
{
    purge_job j = {env, rotate, report};
    pk_result r;
    memset(report, 0, sizeof(*report));
    j.env = env;
    r = pk_records_write_tx(env->rs, purge_tx, &j);
    for (size_t i = 0; pk_ok(r) && i < report->ndestroyed; i++) pk_key_forget(env, report->destroyed[i]);
    for (size_t i = 0; pk_ok(r) && i < report->nrotated; i++) pk_key_forget(env, report->rotated[i]);
    if (pk_failed(r)) {
        pk_purge_report_free(report);
        memset(report, 0, sizeof(*report));
    }
    return r;
}

void pk_purge_report_free(pk_purge_report *r)
{
    free(r->destroyed);
    free(r->rotated);
    r->destroyed = r->rotated = NULL;
    r->ndestroyed = r->nrotated = 0;
}
