/* The key record: a compact JSON body inside a MAC'd store record. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json/json_in.h"
#include "keys/keys.h"
#include "util/json_out.h"

#define DAY_MS (86400LL * 1000)

static const char *const state_names[] = {
    [PK_KEY_ENABLED] = "Enabled",
    [PK_KEY_DISABLED] = "Disabled",
    [PK_KEY_PENDING_DELETION] = "PendingDeletion",
    [PK_KEY_DELETED] = "Deleted",
};

const char *pk_key_state_name(pk_key_state s)
{
    return (unsigned)s < PK_ARRAY_LEN(state_names) ? state_names[s] : "Unknown";
}

static bool state_from_name(const char *n, pk_key_state *out)
{
    for (size_t i = 0; n != NULL && i < PK_ARRAY_LEN(state_names); i++) {
        if (strcmp(n, state_names[i]) == 0) {
            *out = (pk_key_state)i;
            return true;
        }
    }
    return false;
}

int64_t pk_key_due_ms(const pk_key *k)
{
    if (k->state == PK_KEY_PENDING_DELETION) return k->deletion_ms;
    if (k->state == PK_KEY_DELETED || k->rotation_days == 0) return 0;
    return k->last_rotated_ms + (int64_t)k->rotation_days * DAY_MS;
}

void pk_key_free(pk_key *k)
{
    if (k == NULL) return;
    free(k->description);
    free(k->versions);
    free(k->policy_json);
    pk_policy_free(k->policy);
    pthread_mutex_destroy(&k->nonce_lock);
    free(k);
}

pk_result pk_key_to_record(const pk_key *k, pk_record *rec)
{
    pk_json_out j;

    memset(rec, 0, sizeof(*rec));
    snprintf(rec->kind, sizeof(rec->kind), "key");
    snprintf(rec->id, sizeof(rec->id), "%s", k->id);
    rec->due_ms = pk_key_due_ms(k);
    pk_jo_init(&j, &rec->body);
    pk_jo_obj_begin(&j);
    pk_jo_kstr(&j, "description", k->description ? k->description : "");
    pk_jo_kstr(&j, "state", pk_key_state_name(k->state));
    pk_jo_kbool(&j, "service", k->service);
    pk_jo_kint(&j, "created_ms", k->created_ms);
    pk_jo_kint(&j, "deletion_ms", k->deletion_ms);
    pk_jo_kint(&j, "last_rotated_ms", k->last_rotated_ms);
    pk_jo_kint(&j, "rotation_days", k->rotation_days);
    pk_jo_key(&j, "nonce_reserved");
    pk_jo_uint(&j, k->nonce_reserved);
    pk_jo_key(&j, "versions");
    pk_jo_arr_begin(&j);
    for (uint32_t i = 0; i < k->nversions; i++) {
        pk_jo_arr_begin(&j);
        pk_jo_int(&j, k->versions[i].number);
        pk_jo_int(&j, k->versions[i].created_ms);
        pk_jo_arr_end(&j);
    }
    pk_jo_arr_end(&j);
    pk_jo_kstr(&j, "policy", k->policy_json);
    pk_jo_obj_end(&j);
    return pk_jo_result(&j);
}

/* Strict field access: a record that parses but lacks a field is corrupt. */
static pk_result field(const pk_jv *o, const char *name, pk_jv_type type, const pk_jv **out, const char *id)
{
    const pk_jv *v = pk_jv_get(o, name);
    bool ok = v != NULL && (pk_jv_typeof(v) == type ||
                            (type == PK_JV_TRUE && pk_jv_typeof(v) == PK_JV_FALSE));
    PK_ENSURE(ok, P11KMS_ERR_INTEGRITY, "store record key/%s is malformed (field %s)", id, name);
    *out = v;
    return PK_OK;
}

static pk_result parse_versions(pk_key *k, const pk_jv *arr)
{
    size_t n = pk_jv_size(arr);
    PK_ENSURE(n >= 1 && n <= PK_KEY_MAX_VERSIONS, P11KMS_ERR_INTEGRITY, "store record key/%s has no versions", k->id);
    k->versions = calloc(n, sizeof(*k->versions));
    PK_ENSURE_ALLOC(k->versions);
    for (size_t i = 0; i < n; i++) {
        const pk_jv *e = pk_jv_at(arr, i);
        PK_ENSURE(pk_jv_typeof(e) == PK_JV_ARRAY && pk_jv_size(e) == 2 &&
                      pk_jv_typeof(pk_jv_at(e, 0)) == PK_JV_INTEGER && pk_jv_int(pk_jv_at(e, 0)) == (int64_t)i + 1,
                  P11KMS_ERR_INTEGRITY, "store record key/%s has a malformed version list", k->id);
        k->versions[i].number = (uint32_t)(i + 1);
        k->versions[i].created_ms = pk_jv_int(pk_jv_at(e, 1));
    }
    k->nversions = (uint32_t)n;
    return PK_OK;
}

static pk_result parse_body(pk_key *k, const pk_jv *o)
{
    const pk_jv *v;
    PK_GUARD(field(o, "description", PK_JV_STRING, &v, k->id));
    k->description = strdup(pk_jv_str(v));
    PK_ENSURE_ALLOC(k->description);
    PK_GUARD(field(o, "state", PK_JV_STRING, &v, k->id));
    PK_ENSURE(state_from_name(pk_jv_str(v), &k->state), P11KMS_ERR_INTEGRITY,
              "store record key/%s has an unknown state", k->id);
    PK_GUARD(field(o, "service", PK_JV_TRUE, &v, k->id));
    k->service = pk_jv_typeof(v) == PK_JV_TRUE;
    PK_GUARD(field(o, "created_ms", PK_JV_INTEGER, &v, k->id));
    k->created_ms = pk_jv_int(v);
    PK_GUARD(field(o, "deletion_ms", PK_JV_INTEGER, &v, k->id));
    k->deletion_ms = pk_jv_int(v);
    PK_GUARD(field(o, "last_rotated_ms", PK_JV_INTEGER, &v, k->id));
    k->last_rotated_ms = pk_jv_int(v);
    PK_GUARD(field(o, "rotation_days", PK_JV_INTEGER, &v, k->id));
    k->rotation_days = (uint32_t)pk_jv_int(v);
    PK_GUARD(field(o, "nonce_reserved", PK_JV_INTEGER, &v, k->id));
    k->nonce_reserved = (uint64_t)pk_jv_int(v);
    PK_GUARD(field(o, "versions", PK_JV_ARRAY, &v, k->id));
    PK_GUARD(parse_versions(k, v));
    PK_GUARD(field(o, "policy", PK_JV_STRING, &v, k->id));
    k->policy_json = strdup(pk_jv_str(v));
    PK_ENSURE_ALLOC(k->policy_json);
    return PK_OK;
}

pk_result pk_key_from_record(const pk_record *rec, pk_key **out)
{
    pk_result r = PK_OK;
    pk_key *k = calloc(1, sizeof(*k));
    pk_jv *doc = NULL;

    PK_ENSURE_ALLOC(k);
    pthread_mutex_init(&k->nonce_lock, NULL);
    PK_CHECK(pk_uuid_parse(rec->id, k->uuid), P11KMS_ERR_INTEGRITY, "store record key/%s has a bad id", rec->id);
    pk_uuid_format(k->uuid, k->id);
    k->rev = rec->rev;
    PK_TRY(pk_json_parse((const char *)rec->body.data, rec->body.len, P11KMS_ERR_INTEGRITY, &doc));
    PK_TRY(parse_body(k, doc));
    /* Policies are compiled once per loaded record, never per request. */
    PK_TRY(pk_policy_compile(k->policy_json, strlen(k->policy_json), &k->policy));
    *out = k;
    k = NULL;
out:
    pk_json_free(doc);
    pk_key_free(k);
    return r;
}
