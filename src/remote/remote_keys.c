/*
 * Key and alias commands over TrentService. The answers are rebuilt into
 * the documents p11kms_key_describe / _list / p11kms_alias_list return, so
 * the command prints the same as in-process; AWS epoch seconds become the
 * library's RFC 3339 times (whole seconds: the protocol carries no more).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "remote/remote_impl.h"
#include "util/timefmt.h"

#define SCHEDULED_BY "p11kms key purge (run it daily: contrib/systemd/p11kms-purge.timer or cron)"

static pk_result key_call(pk_remote *r, const char *op, const char *key, pk_jv **resp)
{
    return pk_remote_call1(r, PK_REMOTE_KMS, op, "KeyId", key, resp);
}

/* A finished document as a malloc'd string (p11kms_free wipes and frees it). */
static pk_result finish(pk_json_out *j, pk_buf *b, char **out)
{
    PK_GUARD(pk_jo_result(j));
    PK_GUARD(pk_buf_cstr(b));
    *out = (char *)b->data;
    b->data = NULL;
    return PK_OK;
}

static void json_time(pk_json_out *j, const char *key, int64_t ms)
{
    char t[PK_TIME_STR_LEN];
    pk_time_rfc3339(ms, t);
    pk_jo_kstr(j, key, t);
}

pk_result pk_remote_key_create(pk_remote *r, const char *description, const char *policy, bool bypass_lockout,
                               unsigned rotation_days, char **key_id)
{
    pk_remote_req q;
    pk_jv *resp = NULL;
    const char *id;
    pk_result res;

    pk_remote_begin(&q);
    if (description != NULL) pk_jo_kstr(&q.j, "Description", description);
    if (policy != NULL) pk_jo_kstr(&q.j, "Policy", policy);
    if (bypass_lockout) pk_jo_kbool(&q.j, "BypassPolicyLockoutSafetyCheck", true);
    PK_GUARD(pk_remote_send(r, PK_REMOTE_KMS, "CreateKey", &q, &resp));
    id = pk_jv_str(pk_jv_get(pk_jv_get(resp, "KeyMetadata"), "KeyId"));
    res = id ? PK_OK : pk_fail(P11KMS_ERR_INTERNAL, "p11kmsd's CreateKey answer has no KeyId");
    if (pk_ok(res)) *key_id = strdup(id);
    if (pk_ok(res) && *key_id == NULL) res = pk_fail(P11KMS_ERR_NO_MEMORY, "out of memory");
    pk_json_free(resp);
    if (pk_ok(res) && rotation_days > 0) {
        res = pk_remote_key_set_rotation(r, *key_id, rotation_days);
        if (pk_failed(res)) res = pk_annotate(res, "key %s was created without rotation: ", *key_id);
    }
    return res;
}

/* One page of a listing after `marker` (NULL: the first). */
static pk_result list_page(pk_remote *r, const char *op, const char *key, const char *marker, pk_jv **resp)
{
    pk_remote_req q;
    pk_remote_begin(&q);
    if (key != NULL) pk_jo_kstr(&q.j, "KeyId", key);
    pk_jo_kint(&q.j, "Limit", 1000);
    if (marker != NULL) pk_jo_kstr(&q.j, "Marker", marker);
    return pk_remote_send(r, PK_REMOTE_KMS, op, &q, resp);
}

pk_result pk_remote_key_describe(pk_remote *r, const char *key, char **json)
{
    pk_jv *d = NULL, *rot = NULL, *rs = NULL, *al = NULL;
    pk_buf out = {0};
    pk_json_out j;
    pk_result res;
    const pk_jv *m, *rotations, *aliases;
    const char *id, *state, *manager;
    int64_t created;
    size_t nrot;
    bool rotating;

    *json = NULL;
    PK_GUARD(key_call(r, "DescribeKey", key, &d));
    m = pk_jv_get(d, "KeyMetadata");
    id = pk_jv_str(pk_jv_get(m, "KeyId"));
    res = id ? key_call(r, "GetKeyRotationStatus", id, &rs) : pk_fail(P11KMS_ERR_INTERNAL, "DescribeKey: no KeyId");
    if (pk_ok(res)) res = key_call(r, "ListKeyRotations", id, &rot);
    /* A key has a few aliases: one page of 1000 holds them. */
    if (pk_ok(res)) res = list_page(r, "ListAliases", id, NULL, &al);
    if (pk_failed(res)) goto out;
    state = pk_jv_str(pk_jv_get(m, "KeyState"));
    manager = pk_jv_str(pk_jv_get(m, "KeyManager"));
    created = pk_remote_epoch_ms(pk_jv_get(m, "CreationDate"));
    rotating = pk_jv_typeof(pk_jv_get(rs, "KeyRotationEnabled")) == PK_JV_TRUE;
    rotations = pk_jv_get(rot, "Rotations");
    nrot = pk_jv_size(rotations);
    aliases = pk_jv_get(al, "Aliases");
    pk_jo_init(&j, &out);
    pk_jo_obj_begin(&j);
    pk_jo_kstr(&j, "KeyId", id);
    pk_jo_kstr(&j, "Arn", pk_jv_str(pk_jv_get(m, "Arn")));
    pk_jo_kstr(&j, "Description", pk_jv_str(pk_jv_get(m, "Description")) ?: "");
    pk_jo_kstr(&j, "KeyState", state ?: "");
    pk_jo_kbool(&j, "Enabled", pk_jv_typeof(pk_jv_get(m, "Enabled")) == PK_JV_TRUE);
    /* The daemon says AWS for keys it manages itself, as AWS does for its own keys. */
    pk_jo_kstr(&j, "KeyManager", manager && strcmp(manager, "CUSTOMER") == 0 ? "CUSTOMER" : "P11KMS");
    pk_jo_kstr(&j, "KeySpec", "SYMMETRIC_DEFAULT");
    pk_jo_kstr(&j, "KeyUsage", "ENCRYPT_DECRYPT");
    json_time(&j, "CreationDate", created);
    if (state && strcmp(state, "PendingDeletion") == 0)
        json_time(&j, "DeletionDate", pk_remote_epoch_ms(pk_jv_get(m, "DeletionDate")));
    pk_jo_kint(&j, "RotationPeriodInDays", rotating ? pk_jv_int(pk_jv_get(rs, "RotationPeriodInDays")) : 0);
    pk_jo_kbool(&j, "KeyRotationEnabled", rotating);
    if (rotating) json_time(&j, "NextRotationDate", pk_remote_epoch_ms(pk_jv_get(rs, "NextRotationDate")));
    /* Turning rotation on restarts its period: then the last rotation is the next one less a period. */
    json_time(&j, "LastRotationDate",
              rotating ? pk_remote_epoch_ms(pk_jv_get(rs, "NextRotationDate")) -
                             pk_jv_int(pk_jv_get(rs, "RotationPeriodInDays")) * 86400000
              : nrot   ? pk_remote_epoch_ms(pk_jv_get(pk_jv_at(rotations, nrot - 1), "RotationDate"))
                       : created);
    if (rotating || (state && strcmp(state, "PendingDeletion") == 0)) pk_jo_kstr(&j, "ScheduledBy", SCHEDULED_BY);
    pk_jo_kint(&j, "CurrentKeyVersion", (int64_t)nrot + 1);
    pk_jo_key(&j, "KeyVersions");
    pk_jo_arr_begin(&j);
    for (size_t i = 0; i <= nrot; i++) {
        char label[96];
        snprintf(label, sizeof(label), "p11kms:cmk:%s:v%zu", id, i + 1);
        pk_jo_obj_begin(&j);
        pk_jo_kint(&j, "Version", (int64_t)i + 1);
        json_time(&j, "CreationDate",
                  i == 0 ? created : pk_remote_epoch_ms(pk_jv_get(pk_jv_at(rotations, i - 1), "RotationDate")));
        pk_jo_kstr(&j, "Label", label);
        pk_jo_obj_end(&j);
    }
    pk_jo_arr_end(&j);
    pk_jo_key(&j, "Aliases");
    pk_jo_arr_begin(&j);
    for (size_t i = 0; i < pk_jv_size(aliases); i++)
        pk_jo_str(&j, pk_jv_str(pk_jv_get(pk_jv_at(aliases, i), "AliasName")));
    pk_jo_arr_end(&j);
    pk_jo_obj_end(&j);
    res = finish(&j, &out, json);
out:
    pk_buf_free(&out);
    pk_json_free(d);
    pk_json_free(rs);
    pk_json_free(rot);
    pk_json_free(al);
    return res;
}

typedef void (*item_fn)(pk_remote *r, pk_json_out *j, const pk_jv *item);

/* Every page of op's `member` array, each item written by fn into one JSON array. */
static pk_result list_all(pk_remote *r, const char *op, const char *key, const char *member, item_fn fn, char **json)
{
    pk_buf out = {0};
    pk_json_out j;
    pk_jv *page = NULL;
    char *marker = NULL;
    pk_result res = PK_OK;

    *json = NULL;
    pk_jo_init(&j, &out);
    pk_jo_arr_begin(&j);
    for (int pages = 0; pages < 100000; pages++) {
        const pk_jv *items, *next;
        res = list_page(r, op, key, marker, &page);
        if (pk_failed(res)) break;
        items = pk_jv_get(page, member);
        for (size_t i = 0; i < pk_jv_size(items); i++) fn(r, &j, pk_jv_at(items, i));
        next = pk_jv_get(page, "NextMarker");
        free(marker);
        marker = NULL;
        if (pk_jv_typeof(pk_jv_get(page, "Truncated")) != PK_JV_TRUE || pk_jv_str(next) == NULL) break;
        marker = strdup(pk_jv_str(next));
        pk_json_free(page);
        page = NULL;
        if (marker == NULL) {
            res = pk_fail(P11KMS_ERR_NO_MEMORY, "out of memory");
            break;
        }
    }
    pk_jo_arr_end(&j);
    if (pk_ok(res)) res = finish(&j, &out, json);
    free(marker);
    pk_json_free(page);
    pk_buf_free(&out);
    return res;
}

/* ListKeys names keys only: their state and description come from DescribeKey. */
static void key_item(pk_remote *r, pk_json_out *j, const pk_jv *item)
{
    const char *id = pk_jv_str(pk_jv_get(item, "KeyId"));
    pk_jv *d = NULL;
    const pk_jv *m = NULL;
    if (id != NULL && pk_ok(key_call(r, "DescribeKey", id, &d))) m = pk_jv_get(d, "KeyMetadata");
    pk_jo_obj_begin(j);
    pk_jo_kstr(j, "KeyId", id);
    pk_jo_kstr(j, "KeyArn", pk_jv_str(pk_jv_get(item, "KeyArn")));
    /* A key this caller may list but not describe. */
    pk_jo_kstr(j, "KeyState", m ? pk_jv_str(pk_jv_get(m, "KeyState")) : "Unknown");
    pk_jo_kstr(j, "Description", m ? pk_jv_str(pk_jv_get(m, "Description")) : "");
    pk_jo_obj_end(j);
    pk_json_free(d);
}

pk_result pk_remote_key_list(pk_remote *r, char **json)
{
    return list_all(r, "ListKeys", NULL, "Keys", key_item, json);
}

static void alias_item(pk_remote *r, pk_json_out *j, const pk_jv *item)
{
    (void)r;
    pk_jo_obj_begin(j);
    pk_jo_kstr(j, "AliasName", pk_jv_str(pk_jv_get(item, "AliasName")));
    pk_jo_kstr(j, "TargetKeyId", pk_jv_str(pk_jv_get(item, "TargetKeyId")));
    pk_jo_obj_end(j);
}

pk_result pk_remote_alias_list(pk_remote *r, const char *key, char **json)
{
    return list_all(r, "ListAliases", key, "Aliases", alias_item, json);
}

pk_result pk_remote_key_simple(pk_remote *r, const char *target, const char *key)
{
    return pk_remote_call1(r, PK_REMOTE_KMS, target, "KeyId", key, NULL);
}

pk_result pk_remote_key_rotate(pk_remote *r, const char *key, unsigned *version)
{
    pk_jv *resp = NULL, *rot = NULL;
    pk_result res;
    *version = 0;
    PK_GUARD(key_call(r, "RotateKeyOnDemand", key, &resp));
    /* The new version is one more than the rotations before it. */
    res = key_call(r, "ListKeyRotations", pk_remote_key_of_arn(pk_jv_str(pk_jv_get(resp, "KeyId"))) ?: key, &rot);
    if (pk_ok(res)) *version = (unsigned)pk_jv_size(pk_jv_get(rot, "Rotations")) + 1;
    pk_json_free(resp);
    pk_json_free(rot);
    return res;
}

pk_result pk_remote_key_schedule_deletion(pk_remote *r, const char *key, unsigned days, int64_t *ms)
{
    pk_remote_req q;
    pk_jv *resp = NULL;
    *ms = 0;
    pk_remote_begin(&q);
    pk_jo_kstr(&q.j, "KeyId", key);
    if (days != 0) pk_jo_kint(&q.j, "PendingWindowInDays", days);
    PK_GUARD(pk_remote_send(r, PK_REMOTE_KMS, "ScheduleKeyDeletion", &q, &resp));
    *ms = pk_remote_epoch_ms(pk_jv_get(resp, "DeletionDate"));
    pk_json_free(resp);
    return PK_OK;
}

pk_result pk_remote_key_set_rotation(pk_remote *r, const char *key, unsigned days)
{
    pk_remote_req q;
    pk_remote_begin(&q);
    pk_jo_kstr(&q.j, "KeyId", key);
    if (days != 0) pk_jo_kint(&q.j, "RotationPeriodInDays", days);
    return pk_remote_send_only(r, PK_REMOTE_KMS, days ? "EnableKeyRotation" : "DisableKeyRotation", &q);
}

pk_result pk_remote_key_get_policy(pk_remote *r, const char *key, char **policy)
{
    pk_jv *resp = NULL;
    const char *p;
    *policy = NULL;
    PK_GUARD(key_call(r, "GetKeyPolicy", key, &resp));
    p = pk_jv_str(pk_jv_get(resp, "Policy"));
    *policy = p ? strdup(p) : NULL;
    pk_json_free(resp);
    PK_ENSURE(*policy != NULL, P11KMS_ERR_INTERNAL, "p11kmsd's GetKeyPolicy answer has no Policy");
    return PK_OK;
}

pk_result pk_remote_key_put_policy(pk_remote *r, const char *key, const char *policy, bool bypass_lockout)
{
    pk_remote_req q;
    pk_remote_begin(&q);
    pk_jo_kstr(&q.j, "KeyId", key);
    pk_jo_kstr(&q.j, "PolicyName", "default");
    pk_jo_kstr(&q.j, "Policy", policy);
    if (bypass_lockout) pk_jo_kbool(&q.j, "BypassPolicyLockoutSafetyCheck", true);
    return pk_remote_send_only(r, PK_REMOTE_KMS, "PutKeyPolicy", &q);
}

pk_result pk_remote_alias_set(pk_remote *r, const char *target, const char *alias, const char *key)
{
    pk_remote_req q;
    pk_remote_begin(&q);
    pk_jo_kstr(&q.j, "AliasName", alias);
    pk_jo_kstr(&q.j, "TargetKeyId", key);
    return pk_remote_send_only(r, PK_REMOTE_KMS, target, &q);
}

pk_result pk_remote_alias_delete(pk_remote *r, const char *alias)
{
    return pk_remote_call1(r, PK_REMOTE_KMS, "DeleteAlias", "AliasName", alias, NULL);
}
