/*
 * Key operations the AWS KMS protocol needs beyond the command's (issue 12):
 * key ARNs, EnableKeyRotation/DisableKeyRotation and UpdateAlias.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/op.h"
#include "core/remote_fwd.h"

P11KMS_API p11kms_rc p11kms_key_arn(p11kms *h, const char *key_id, char **arn)
{
    char buf[160];
    pk_error_clear();
    if (arn == NULL) return pk_fail(P11KMS_ERR_INVALID_ARGUMENT, "no output").code;
    *arn = NULL;
    if (h == NULL || key_id == NULL || strlen(key_id) != PK_UUID_STR_LEN)
        return pk_fail(P11KMS_ERR_INVALID_ARGUMENT, "a key ARN is made from a key id (a UUID)").code;
    pk_key_arn(&h->env, key_id, buf, sizeof(buf));
    *arn = strdup(buf);
    return *arn ? P11KMS_OK : pk_fail(P11KMS_ERR_NO_MEMORY, "out of memory").code;
}

/* Resolve, load and authorise (as api_keys.c does for every key operation). */
static pk_result authorized_key(pk_op *op, const char *key, const char *action, pk_key **out)
{
    pk_key_ref ref;
    pk_result r;
    PK_GUARD(pk_key_resolve(&op->h->env, key, false, &ref));
    pk_op_set_key(op, &ref);
    PK_GUARD(pk_key_get(&op->h->env, ref.key_id, out));
    r = (*out)->state == PK_KEY_DELETED ? pk_fail(P11KMS_ERR_NOT_FOUND, "key %s was deleted", ref.key_id)
                                        : pk_op_authorize(op, *out, action);
    if (pk_failed(r)) {
        pk_key_release(&op->h->env, *out);
        *out = NULL;
    }
    return r;
}

typedef struct rotation_job {
    const char *key_id;
    uint32_t days;
} rotation_job;

static pk_result rotation_tx(p11kms *h, void *ctx)
{
    rotation_job *j = ctx;
    pk_key *k = NULL;
    pk_result r = PK_OK;
    PK_TRY(pk_key_load_tx(&h->env, j->key_id, &k));
    PK_CHECK(k->state != PK_KEY_DELETED, P11KMS_ERR_NOT_FOUND, "key %s was deleted", k->id);
    /* AWS: rotation settings change only on an Enabled key (DisabledException / KMSInvalidStateException). */
    PK_CHECK(k->state != PK_KEY_DISABLED, P11KMS_ERR_DISABLED, "key %s is disabled", k->id);
    PK_CHECK(k->state == PK_KEY_ENABLED, P11KMS_ERR_INVALID_STATE, "key %s is pending deletion", k->id);
    /* A fresh period counts from now, as AWS does when rotation is (re-)enabled. */
    if (j->days != 0 && k->rotation_days == 0) k->last_rotated_ms = pk_clock(h);
    k->rotation_days = j->days;
    PK_TRY(pk_key_save_tx(&h->env, k));
out:
    pk_key_release(&h->env, k);
    return r;
}

P11KMS_API p11kms_rc p11kms_key_set_rotation(p11kms *h, const p11kms_caller *c, const char *key, unsigned days)
{
    if (h != NULL && h->remote != NULL) return pk_fwd_key_set_rotation(h, c, key, days);
    pk_op op;
    pk_result r = PK_OK;
    pk_key *k = NULL;
    rotation_job j;

    PK_TRY(pk_op_begin(&op, h, c, days ? "kms:EnableKeyRotation" : "kms:DisableKeyRotation"));
    PK_CHECK(days == 0 || (days >= PK_ROTATION_MIN_DAYS && days <= PK_ROTATION_MAX_DAYS),
             P11KMS_ERR_INVALID_ARGUMENT, "the rotation period must be %d to %d days", PK_ROTATION_MIN_DAYS,
             PK_ROTATION_MAX_DAYS);
    PK_TRY(authorized_key(&op, key, op.action, &k));
    PK_TRY(pk_op_preflight(&op));
    j = (rotation_job){k->id, days};
    r = pk_with_write_tx(h, rotation_tx, &j);
    pk_key_forget(&h->env, k->id);
out:
    pk_key_release(&h->env, k);
    return pk_op_finish(&op, r);
}

typedef struct update_job {
    const char *alias;
    const char *old_key;
    const char *new_key;
} update_job;

static pk_result update_tx(p11kms *h, void *ctx)
{
    update_job *j = ctx;
    pk_record rec;
    pk_key *k = NULL;
    bool found = false;
    pk_result r = PK_OK;

    memset(&rec, 0, sizeof(rec));
    PK_TRY(pk_key_load_tx(&h->env, j->new_key, &k));
    PK_CHECK(k->state != PK_KEY_DELETED, P11KMS_ERR_NOT_FOUND, "key %s was deleted", k->id);
    PK_CHECK(k->state != PK_KEY_PENDING_DELETION, P11KMS_ERR_INVALID_STATE, "key %s is pending deletion", k->id);
    PK_TRY(pk_record_load(h, "alias", j->alias, &rec, &found));
    PK_CHECK(found, P11KMS_ERR_NOT_FOUND, "alias %s not found", j->alias);
    /* Another writer moved it since it was authorised: the caller must decide again. */
    PK_CHECK(strcmp(rec.ref, j->old_key) == 0, P11KMS_ERR_STORE, "alias %s changed concurrently; try again",
             j->alias);
    snprintf(rec.ref, sizeof(rec.ref), "%s", j->new_key);
    PK_TRY(pk_record_save(h, &rec, rec.rev));
out:
    pk_record_clear(&rec);
    pk_key_release(&h->env, k);
    return r;
}

P11KMS_API p11kms_rc p11kms_alias_update(p11kms *h, const p11kms_caller *c, const char *alias, const char *key)
{
    if (h != NULL && h->remote != NULL) return pk_fwd_alias_set(h, c, "UpdateAlias", alias, key);
    pk_op op;
    pk_result r = PK_OK;
    pk_key *old = NULL, *nk = NULL;
    char old_id[PK_UUID_STR_LEN + 1];
    update_job j;

    PK_TRY(pk_op_begin(&op, h, c, "kms:UpdateAlias"));
    PK_CHECK(alias != NULL && key != NULL, P11KMS_ERR_INVALID_ARGUMENT, "give an alias and a key");
    PK_TRY(pk_alias_validate(alias, false));
    /* AWS: kms:UpdateAlias on the key the alias names now and on the new key. */
    PK_TRY(authorized_key(&op, alias, op.action, &old));
    memcpy(old_id, old->id, sizeof(old_id));
    PK_TRY(authorized_key(&op, key, op.action, &nk));
    op.src_key_id[0] = '\0';
    memcpy(op.src_key_id, old_id, sizeof(op.src_key_id));
    snprintf(op.alias, sizeof(op.alias), "%s", alias);
    PK_TRY(pk_op_preflight(&op));
    j = (update_job){alias, old_id, nk->id};
    r = pk_with_write_tx(h, update_tx, &j);
    pk_alias_forget_all(&h->env);
out:
    pk_key_release(&h->env, old);
    pk_key_release(&h->env, nk);
    return pk_op_finish(&op, r);
}
