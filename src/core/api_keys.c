/* Public key-management API: resolve, authorise, act, audit. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/op.h"
#include "core/remote_fwd.h"
#include "util/codec.h"
#include "util/json_out.h"
#include "util/timefmt.h"

/* Resolve `key` for an operation, load it and check the caller may perform `action`. */
static pk_result load_authorized(pk_op *op, const char *key, const char *action, pk_key **out)
{
    pk_key_ref ref;
    PK_GUARD(pk_key_resolve(&op->h->env, key, false, &ref));
    pk_op_set_key(op, &ref);
    PK_GUARD(pk_key_get(&op->h->env, ref.key_id, out));
    if ((*out)->state == PK_KEY_DELETED) {
        pk_key_release(&op->h->env, *out);
        *out = NULL;
        return pk_fail(P11KMS_ERR_NOT_FOUND, "key %s was deleted", ref.key_id);
    }
    pk_result r = pk_op_authorize(op, *out, action);
    if (pk_failed(r)) {
        pk_key_release(&op->h->env, *out);
        *out = NULL;
    }
    return r;
}

/* What a caller waived, for the audit record: auditors look for exactly these. */
static const char *bypassed(bool lockout_check, bool lint)
{
    if (lockout_check && lint) return "lockout-check lint";
    if (lockout_check) return "lockout-check";
    return lint ? "lint" : NULL;
}

static void json_time(pk_json_out *j, const char *key, int64_t ms)
{
    char t[PK_TIME_STR_LEN];
    pk_time_rfc3339(ms, t);
    pk_jo_kstr(j, key, t);
}

static pk_result describe_json(p11kms *h, const pk_key *k, pk_buf *out)
{
    pk_alias_entry *aliases = NULL;
    size_t naliases = 0;
    pk_json_out j;
    pk_result r = pk_alias_list(&h->env, k->id, &aliases, &naliases);
    if (pk_failed(r)) return r;
    pk_jo_init(&j, out);
    pk_jo_obj_begin(&j);
    pk_jo_kstr(&j, "KeyId", k->id);
    pk_jo_kstr(&j, "Arn", k->arn);
    pk_jo_kstr(&j, "Description", k->description);
    pk_jo_kstr(&j, "KeyState", pk_key_state_name(k->state));
    pk_jo_kbool(&j, "Enabled", k->state == PK_KEY_ENABLED);
    pk_jo_kstr(&j, "KeyManager", k->service ? "P11KMS" : "CUSTOMER");
    pk_jo_kstr(&j, "KeySpec", "SYMMETRIC_DEFAULT");
    pk_jo_kstr(&j, "KeyUsage", "ENCRYPT_DECRYPT");
    json_time(&j, "CreationDate", k->created_ms);
    if (k->state == PK_KEY_PENDING_DELETION) json_time(&j, "DeletionDate", k->deletion_ms);
    pk_jo_kint(&j, "RotationPeriodInDays", k->rotation_days);
    pk_jo_kbool(&j, "KeyRotationEnabled", k->rotation_days > 0);
    if (k->rotation_days > 0) json_time(&j, "NextRotationDate", pk_key_due_ms(k));
    json_time(&j, "LastRotationDate", k->last_rotated_ms);
    /* Nothing rotates or deletes by itself: say which scheduled job does it. */
    if (k->rotation_days > 0 || k->state == PK_KEY_PENDING_DELETION)
        pk_jo_kstr(&j, "ScheduledBy", "p11kms key purge (run it daily: contrib/systemd/p11kms-purge.timer or cron)");
    pk_jo_kint(&j, "CurrentKeyVersion", k->nversions);
    pk_jo_key(&j, "KeyVersions");
    pk_jo_arr_begin(&j);
    for (uint32_t i = 0; i < k->nversions; i++) {
        char label[96];
        pk_key_version_label(k->id, k->versions[i].number, label, sizeof(label));
        pk_jo_obj_begin(&j);
        pk_jo_kint(&j, "Version", k->versions[i].number);
        json_time(&j, "CreationDate", k->versions[i].created_ms);
        pk_jo_kstr(&j, "Label", label);
        pk_jo_obj_end(&j);
    }
    pk_jo_arr_end(&j);
    pk_jo_key(&j, "Aliases");
    pk_jo_arr_begin(&j);
    for (size_t i = 0; i < naliases; i++) pk_jo_str(&j, aliases[i].alias);
    pk_jo_arr_end(&j);
    pk_jo_obj_end(&j);
    free(aliases);
    return pk_jo_result(&j);
}

/* Every size p11kms_key_spec has had; append when a field is added. */
static const size_t key_spec_sizes[] = {sizeof(p11kms_key_spec)};

P11KMS_API p11kms_rc p11kms_key_create(p11kms *h, const p11kms_caller *c, const p11kms_key_spec *caller_spec,
                                       char **key_id)
{
    if (h != NULL && h->remote != NULL) return pk_fwd_key_create(h, c, caller_spec, key_id);
    p11kms_key_spec full, *spec = &full;
    pk_op op;
    pk_result r = PK_OK;
    pk_buf policy = {0};
    pk_key_create_args a;
    char id[PK_UUID_STR_LEN + 1];
    uint8_t uuid[PK_UUID_LEN];
    pk_key_ref ref;

    *key_id = NULL;
    PK_TRY(pk_op_begin(&op, h, c, "kms:CreateKey"));
    pk_op_output_str(&op, key_id);
    PK_TRY(pk_op_preflight(&op));
    PK_CHECK(caller_spec != NULL, P11KMS_ERR_INVALID_ARGUMENT, "no key specification");
    PK_TRY(pk_spec_copy(&full, sizeof(full), caller_spec, key_spec_sizes, 1, "key spec"));
    PK_CHECK(spec->policy_json == NULL || (spec->nadmins == 0 && spec->noperators == 0), P11KMS_ERR_INVALID_ARGUMENT,
             "give either a policy or administrators/operators, not both");
    memset(&a, 0, sizeof(a));
    a.description = spec->description;
    a.rotation_days = spec->rotation_days;
    if (spec->policy_json != NULL) {
        pk_policy *p = NULL;
        char arn_prefix[160];
        op.bypass = bypassed(spec->bypass_lockout_check, spec->bypass_lint);
        PK_TRY(pk_policy_compile(spec->policy_json, strlen(spec->policy_json), &p));
        if (!spec->bypass_lint) {
            r = pk_policy_lint_refuse_errors(p);
            if (pk_failed(r)) pk_policy_free(p);
            PK_TRY(r);
        }
        /* The new key's ARN is not known yet; check the lockout against any key of this store. */
        snprintf(arn_prefix, sizeof(arn_prefix), "arn:aws:kms:%s:%s:key/00000000-0000-4000-8000-000000000000",
                 h->region, h->account);
        bool locked =
            !spec->bypass_lockout_check && pk_policy_would_lock_out(p, c->principal, arn_prefix, pk_clock(h));
        pk_policy_free(p);
        PK_CHECK(!locked, P11KMS_ERR_INVALID_ARGUMENT,
                 "the policy does not allow %s to call kms:PutKeyPolicy, so nobody could change it; fix the "
                 "policy or pass --bypass-lockout-check",
                 c->principal);
        a.policy_json = spec->policy_json;
    } else {
        const char *self[1] = {c->principal};
        const char *const *admins = spec->nadmins ? spec->admins : self;
        PK_TRY(pk_policy_default(admins, spec->nadmins ? spec->nadmins : 1, spec->operators, spec->noperators,
                                 &policy));
        PK_TRY(pk_buf_cstr(&policy));
        a.policy_json = (const char *)policy.data;
    }
    /* The id is chosen here so that the record written before the commit names the key (issue 12). */
    PK_TRY(pk_uuid_new(uuid));
    memset(&ref, 0, sizeof(ref));
    pk_uuid_format(uuid, ref.key_id);
    pk_op_set_key(&op, &ref);
    op.key_version = 1;
    a.uuid = uuid;
    PK_TRY(pk_key_create(&h->env, &a, id));
    *key_id = strdup(id);
    PK_CHECK_ALLOC(*key_id);
out:
    pk_buf_free(&policy);
    return pk_op_finish(&op, r);
}

P11KMS_API p11kms_rc p11kms_key_describe(p11kms *h, const p11kms_caller *c, const char *key, char **json)
{
    if (h != NULL && h->remote != NULL) return pk_fwd_key_describe(h, c, key, json);
    pk_op op;
    pk_result r = PK_OK;
    pk_key *k = NULL;
    pk_buf out = {0};

    *json = NULL;
    PK_TRY(pk_op_begin(&op, h, c, "kms:DescribeKey"));
    pk_op_output_str(&op, json);
    PK_TRY(load_authorized(&op, key, op.action, &k));
    PK_TRY(describe_json(h, k, &out));
    PK_TRY(pk_str_out(&out, json));
out:
    pk_buf_free(&out);
    pk_key_release(&h->env, k);
    return pk_op_finish(&op, r);
}

P11KMS_API p11kms_rc p11kms_key_list(p11kms *h, const p11kms_caller *c, char **json)
{
    if (h != NULL && h->remote != NULL) return pk_fwd_key_list(h, c, json);
    pk_op op;
    pk_result r = PK_OK;
    pk_buf out = {0};
    pk_json_out j;
    pk_key_list l = {0};

    *json = NULL;
    PK_TRY(pk_op_begin(&op, h, c, "kms:ListKeys"));
    pk_op_output_str(&op, json);
    PK_TRY(pk_key_load_all(&h->env, &l));
    pk_jo_init(&j, &out);
    pk_jo_arr_begin(&j);
    for (size_t i = 0; i < l.n; i++) {
        const pk_key *k = l.keys[i];
        if (k->state == PK_KEY_DELETED) continue;
        pk_jo_obj_begin(&j);
        pk_jo_kstr(&j, "KeyId", k->id);
        pk_jo_kstr(&j, "KeyArn", k->arn);
        pk_jo_kstr(&j, "KeyState", pk_key_state_name(k->state));
        pk_jo_kstr(&j, "Description", k->description);
        pk_jo_obj_end(&j);
    }
    pk_jo_arr_end(&j);
    PK_TRY(pk_jo_result(&j));
    PK_TRY(pk_str_out(&out, json));
out:
    pk_key_list_free(&l);
    pk_buf_free(&out);
    return pk_op_finish(&op, r);
}

/* Authorise `action` on `key`, then run fn(h, key_id, arg). */
typedef pk_result (*key_action_fn)(p11kms *h, const char *key_id, void *arg);

/*
 * The HSM enforces the key state where the token allows it: disable and
 * schedule-deletion take the versions' encrypt/decrypt/wrap/unwrap usage
 * away after the change is committed; enable gives it back before.
 */
static pk_result hsm_usage(p11kms *h, const pk_key *k, bool on)
{
    for (uint32_t v = 1; v <= k->nversions; v++) {
        pk_keyid vid;
        bool applied = false;
        pk_key_version_id(k->uuid, v, &vid);
        PK_GUARD(pk_p11_key_set_usage(h->p11, &vid, on, &applied));
    }
    return PK_OK;
}

static int usage_change(const char *action)
{
    if (strcmp(action, "kms:EnableKey") == 0) return 1;
    if (strcmp(action, "kms:DisableKey") == 0 || strcmp(action, "kms:ScheduleKeyDeletion") == 0) return 0;
    return -1;
}

static p11kms_rc managed(p11kms *h, const p11kms_caller *c, const char *key, const char *action, key_action_fn fn,
                         void *arg)
{
    pk_op op;
    pk_result r = PK_OK;
    pk_key *k = NULL;
    int usage = usage_change(action);
    PK_TRY(pk_op_begin(&op, h, c, action));
    PK_TRY(load_authorized(&op, key, action, &k));
    PK_TRY(pk_op_preflight(&op));
    if (usage == 1) PK_TRY(hsm_usage(h, k, true));
    PK_TRY(fn(h, k->id, arg));
    if (usage == 0) PK_TRY(hsm_usage(h, k, false));
out:
    pk_key_release(&h->env, k);
    return pk_op_finish(&op, r);
}

static pk_result do_enable(p11kms *h, const char *id, void *arg) { (void)arg; return pk_key_set_state(&h->env, id, PK_KEY_ENABLED); }
static pk_result do_disable(p11kms *h, const char *id, void *arg) { (void)arg; return pk_key_set_state(&h->env, id, PK_KEY_DISABLED); }
static pk_result do_rotate(p11kms *h, const char *id, void *arg) { return pk_key_rotate(&h->env, id, arg); }
static pk_result do_cancel(p11kms *h, const char *id, void *arg) { (void)arg; return pk_key_cancel_deletion(&h->env, id); }

P11KMS_API p11kms_rc p11kms_key_enable(p11kms *h, const p11kms_caller *c, const char *key)
{
    if (h != NULL && h->remote != NULL) return pk_fwd_key_simple(h, c, "EnableKey", key);
    return managed(h, c, key, "kms:EnableKey", do_enable, NULL);
}

P11KMS_API p11kms_rc p11kms_key_disable(p11kms *h, const p11kms_caller *c, const char *key)
{
    if (h != NULL && h->remote != NULL) return pk_fwd_key_simple(h, c, "DisableKey", key);
    return managed(h, c, key, "kms:DisableKey", do_disable, NULL);
}

P11KMS_API p11kms_rc p11kms_key_rotate(p11kms *h, const p11kms_caller *c, const char *key, unsigned *new_version)
{
    if (h != NULL && h->remote != NULL) return pk_fwd_key_rotate(h, c, key, new_version);
    uint32_t v = 0;
    p11kms_rc rc = managed(h, c, key, "kms:RotateKeyOnDemand", do_rotate, &v);
    if (new_version) *new_version = rc == P11KMS_OK ? v : 0;
    return rc;
}

typedef struct sched_arg {
    unsigned days;
    int64_t when;
} sched_arg;

static pk_result do_schedule(p11kms *h, const char *id, void *arg)
{
    sched_arg *s = arg;
    return pk_key_schedule_deletion(&h->env, id, s->days, &s->when);
}

P11KMS_API p11kms_rc p11kms_key_schedule_deletion(p11kms *h, const p11kms_caller *c, const char *key, unsigned days,
                                                  int64_t *deletion_ms)
{
    if (h != NULL && h->remote != NULL) return pk_fwd_key_schedule_deletion(h, c, key, days, deletion_ms);
    sched_arg s = {days ? days : PK_DELETION_DEFAULT_DAYS, 0};
    p11kms_rc rc = managed(h, c, key, "kms:ScheduleKeyDeletion", do_schedule, &s);
    if (deletion_ms) *deletion_ms = rc == P11KMS_OK ? s.when : 0;
    return rc;
}

P11KMS_API p11kms_rc p11kms_key_cancel_deletion(p11kms *h, const p11kms_caller *c, const char *key)
{
    if (h != NULL && h->remote != NULL) return pk_fwd_key_simple(h, c, "CancelKeyDeletion", key);
    return managed(h, c, key, "kms:CancelKeyDeletion", do_cancel, NULL);
}

P11KMS_API p11kms_rc p11kms_key_purge(p11kms *h, const p11kms_caller *c, char **report_json)
{
    if (h != NULL && h->remote != NULL) return (*report_json = NULL, pk_fwd_refuse("key purge"));
    pk_op op;
    pk_result r = PK_OK;
    pk_purge_report rep = {0};
    pk_buf out = {0};
    pk_json_out j;

    *report_json = NULL;
    PK_TRY(pk_op_begin(&op, h, c, "p11kms:PurgeKeys"));
    pk_op_output_str(&op, report_json);
    /* Purge destroys keys: only a key administrator of the service may run it. */
    PK_TRY(pk_op_authorize_service_admin(&op, "kms:ScheduleKeyDeletion"));
    PK_TRY(pk_op_preflight(&op));
    PK_TRY(pk_key_purge(&h->env, true, &rep));
    pk_jo_init(&j, &out);
    pk_jo_obj_begin(&j);
    pk_jo_key(&j, "destroyed");
    pk_jo_arr_begin(&j);
    for (size_t i = 0; i < rep.ndestroyed; i++) pk_jo_str(&j, rep.destroyed[i]);
    pk_jo_arr_end(&j);
    pk_jo_key(&j, "rotated");
    pk_jo_arr_begin(&j);
    for (size_t i = 0; i < rep.nrotated; i++) pk_jo_str(&j, rep.rotated[i]);
    pk_jo_arr_end(&j);
    pk_jo_obj_end(&j);
    PK_TRY(pk_jo_result(&j));
    PK_TRY(pk_str_out(&out, report_json));
out:
    pk_purge_report_free(&rep);
    pk_buf_free(&out);
    return pk_op_finish(&op, r);
}

P11KMS_API p11kms_rc p11kms_key_get_policy(p11kms *h, const p11kms_caller *c, const char *key, char **policy_json)
{
    if (h != NULL && h->remote != NULL) return pk_fwd_key_get_policy(h, c, key, policy_json);
    pk_op op;
    pk_result r = PK_OK;
    pk_key *k = NULL;

    *policy_json = NULL;
    PK_TRY(pk_op_begin(&op, h, c, "kms:GetKeyPolicy"));
    pk_op_output_str(&op, policy_json);
    PK_TRY(load_authorized(&op, key, op.action, &k));
    *policy_json = strdup(k->policy_json);
    PK_CHECK_ALLOC(*policy_json);
out:
    pk_key_release(&h->env, k);
    return pk_op_finish(&op, r);
}

typedef struct put_arg {
    const char *json;
    const char *principal;
    unsigned flags; /* P11KMS_POLICY_BYPASS_* */
    const char *arn;
} put_arg;

static pk_result do_put_policy(p11kms *h, const char *id, void *arg)
{
    put_arg *p = arg;
    pk_policy *pol = NULL;
    bool locked;
    PK_GUARD(pk_policy_compile(p->json, strlen(p->json), &pol));
    pk_result lint = (p->flags & P11KMS_POLICY_BYPASS_LINT) ? PK_OK : pk_policy_lint_refuse_errors(pol);
    locked = !(p->flags & P11KMS_POLICY_BYPASS_LOCKOUT_CHECK) &&
             pk_policy_would_lock_out(pol, p->principal, p->arn, pk_clock(h));
    pk_policy_free(pol);
    PK_GUARD(lint);
    PK_ENSURE(!locked, P11KMS_ERR_INVALID_ARGUMENT,
              "the new policy would lock %s out of kms:PutKeyPolicy on key %s; fix the policy or pass "
              "--bypass-lockout-check",
              p->principal, id);
    return pk_key_put_policy(&h->env, id, p->json);
}

P11KMS_API p11kms_rc p11kms_key_put_policy(p11kms *h, const p11kms_caller *c, const char *key,
                                           const char *policy_json, unsigned flags)
{
    if (h != NULL && h->remote != NULL) return pk_fwd_key_put_policy(h, c, key, policy_json, flags);
    pk_op op;
    pk_result r = PK_OK;
    pk_key *k = NULL;
    put_arg p;

    PK_TRY(pk_op_begin(&op, h, c, "kms:PutKeyPolicy"));
    PK_CHECK(policy_json != NULL, P11KMS_ERR_INVALID_ARGUMENT, "no policy given");
    PK_TRY(load_authorized(&op, key, op.action, &k));
    p.json = policy_json;
    p.principal = c->principal;
    p.flags = flags;
    p.arn = k->arn;
    op.bypass = bypassed(flags & P11KMS_POLICY_BYPASS_LOCKOUT_CHECK, flags & P11KMS_POLICY_BYPASS_LINT);
    PK_TRY(pk_op_preflight(&op));
    PK_TRY(do_put_policy(h, k->id, &p));
out:
    pk_key_release(&h->env, k);
    return pk_op_finish(&op, r);
}

P11KMS_API p11kms_rc p11kms_alias_create(p11kms *h, const p11kms_caller *c, const char *alias, const char *key)
{
    if (h != NULL && h->remote != NULL) return pk_fwd_alias_set(h, c, "CreateAlias", alias, key);
    pk_op op;
    pk_result r = PK_OK;
    pk_key *k = NULL;

    PK_TRY(pk_op_begin(&op, h, c, "kms:CreateAlias"));
    PK_CHECK(alias != NULL, P11KMS_ERR_INVALID_ARGUMENT, "no alias given");
    snprintf(op.alias, sizeof(op.alias), "%s", alias);
    PK_TRY(pk_alias_validate(alias, false));
    PK_TRY(load_authorized(&op, key, op.action, &k));
    snprintf(op.alias, sizeof(op.alias), "%s", alias);
    PK_TRY(pk_op_preflight(&op));
    PK_TRY(pk_alias_create(&h->env, alias, k->id, false));
out:
    pk_key_release(&h->env, k);
    return pk_op_finish(&op, r);
}

P11KMS_API p11kms_rc p11kms_alias_delete(p11kms *h, const p11kms_caller *c, const char *alias)
{
    if (h != NULL && h->remote != NULL) return pk_fwd_alias_delete(h, c, alias);
    pk_op op;
    pk_result r = PK_OK;
    pk_key *k = NULL;
    char key_id[PK_UUID_STR_LEN + 1];

    PK_TRY(pk_op_begin(&op, h, c, "kms:DeleteAlias"));
    PK_CHECK(alias != NULL, P11KMS_ERR_INVALID_ARGUMENT, "no alias given");
    PK_TRY(pk_alias_validate(alias, false));
    /* Authorised against the key the alias points to (AWS: the key policy of that key). */
    PK_TRY(load_authorized(&op, alias, op.action, &k));
    PK_TRY(pk_op_preflight(&op));
    PK_TRY(pk_alias_delete(&h->env, alias, key_id));
out:
    pk_key_release(&h->env, k);
    return pk_op_finish(&op, r);
}

P11KMS_API p11kms_rc p11kms_alias_list(p11kms *h, const p11kms_caller *c, const char *key, char **json)
{
    if (h != NULL && h->remote != NULL) return pk_fwd_alias_list(h, c, key, json);
    pk_op op;
    pk_result r = PK_OK;
    pk_alias_entry *a = NULL;
    size_t n = 0;
    pk_buf out = {0};
    pk_json_out j;
    pk_key_ref ref;

    *json = NULL;
    PK_TRY(pk_op_begin(&op, h, c, "kms:ListAliases"));
    pk_op_output_str(&op, json);
    if (key != NULL) {
        PK_TRY(pk_key_resolve(&h->env, key, false, &ref));
        pk_op_set_key(&op, &ref);
    }
    PK_TRY(pk_alias_list(&h->env, key ? ref.key_id : NULL, &a, &n));
    pk_jo_init(&j, &out);
    pk_jo_arr_begin(&j);
    for (size_t i = 0; i < n; i++) {
        pk_jo_obj_begin(&j);
        pk_jo_kstr(&j, "AliasName", a[i].alias);
        pk_jo_kstr(&j, "TargetKeyId", a[i].key_id);
        pk_jo_obj_end(&j);
    }
    pk_jo_arr_end(&j);
    PK_TRY(pk_jo_result(&j));
    PK_TRY(pk_str_out(&out, json));
out:
    free(a);
    pk_buf_free(&out);
    return pk_op_finish(&op, r);
}
