/*
 * Compliance reports: the keys as the store knows them next to the live
 * PKCS#11 attributes of their token objects, and every key's policy run
 * through the linter. Metadata only; no key material can appear.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/access.h"
#include "core/op.h"
#include "core/remote_fwd.h"
#include "util/codec.h"
#include "util/json_out.h"
#include "util/timefmt.h"

#define DAY_MS (86400LL * 1000)

static void finding(pk_json_out *f, const char *kind, const char *key_id, const char *msg)
{
    pk_jo_obj_begin(f);
    pk_jo_kstr(f, "kind", kind);
    if (key_id) pk_jo_kstr(f, "key", key_id);
    pk_jo_kstr(f, "message", msg);
    pk_jo_obj_end(f);
}

static bool is_known_object(const pk_key_list *l, const pk_p11_object *o)
{
    static const char *const system_ids[] = {PK_STORE_MAC_KEY_ID, "p11kms/sys/audit-mac"};
    for (size_t i = 0; i < PK_ARRAY_LEN(system_ids); i++)
        if (o->id.len == strlen(system_ids[i]) && memcmp(o->id.bytes, system_ids[i], o->id.len) == 0) return true;
    for (size_t i = 0; i < l->n; i++) {
        const pk_key *k = l->keys[i];
        if (k->state == PK_KEY_DELETED) continue;
        for (uint32_t v = 1; v <= k->nversions; v++) {
            pk_keyid vid;
            pk_key_version_id(k->uuid, v, &vid);
            if (vid.len == o->id.len && memcmp(vid.bytes, o->id.bytes, vid.len) == 0) return true;
        }
    }
    return false;
}

/* The attributes a CMK version must have; anything weaker is a finding. */
static const char *weakness(const pk_key_attrs *a)
{
    if (!a->sensitive) return "CKA_SENSITIVE is false";
    if (a->extractable) return "CKA_EXTRACTABLE is true";
    if (!a->never_extractable) return "CKA_NEVER_EXTRACTABLE is false";
    if (!a->always_sensitive) return "CKA_ALWAYS_SENSITIVE is false";
    if (!a->local) return "CKA_LOCAL is false (the key was imported, not generated in the token)";
    return NULL;
}

static void attrs_json(pk_json_out *j, const pk_key_attrs *a)
{
    pk_jo_kbool(j, "CKA_SENSITIVE", a->sensitive);
    pk_jo_kbool(j, "CKA_EXTRACTABLE", a->extractable);
    pk_jo_kbool(j, "CKA_NEVER_EXTRACTABLE", a->never_extractable);
    pk_jo_kbool(j, "CKA_ALWAYS_SENSITIVE", a->always_sensitive);
    pk_jo_kbool(j, "CKA_LOCAL", a->local);
}

static pk_result report_key(p11kms *h, const pk_key *k, int64_t now, pk_json_out *j, pk_json_out *f)
{
    char t[PK_TIME_STR_LEN], msg[256];
    pk_jo_obj_begin(j);
    pk_jo_kstr(j, "KeyId", k->id);
    pk_jo_kstr(j, "KeyState", pk_key_state_name(k->state));
    pk_jo_kbool(j, "ServiceKey", k->service);
    pk_jo_kint(j, "CurrentKeyVersion", k->nversions);
    pk_jo_kint(j, "RotationPeriodInDays", k->rotation_days);
    pk_time_rfc3339(k->last_rotated_ms, t);
    pk_jo_kstr(j, "LastRotationDate", t);
    if (k->state == PK_KEY_PENDING_DELETION) {
        pk_time_rfc3339(k->deletion_ms, t);
        pk_jo_kstr(j, "DeletionDate", t);
    }
    bool overdue = k->rotation_days > 0 && k->state != PK_KEY_DELETED && k->state != PK_KEY_PENDING_DELETION &&
                   k->last_rotated_ms + (int64_t)k->rotation_days * DAY_MS < now;
    pk_jo_kbool(j, "RotationOverdue", overdue);
    if (overdue) {
        snprintf(msg, sizeof(msg), "key %s was last rotated %lld days ago; its rotation period is %u days", k->id,
                 (long long)((now - k->last_rotated_ms) / DAY_MS), k->rotation_days);
        finding(f, "RotationOverdue", k->id, msg);
    }
    pk_jo_key(j, "Versions");
    pk_jo_arr_begin(j);
    for (uint32_t v = 1; k->state != PK_KEY_DELETED && v <= k->nversions; v++) {
        pk_keyid vid;
        pk_key_attrs a;
        pk_result r;
        const char *weak;
        pk_key_version_id(k->uuid, v, &vid);
        r = pk_p11_key_attrs(h->p11, &vid, &a);
        pk_jo_obj_begin(j);
        pk_jo_kint(j, "Version", v);
        if (r.code == P11KMS_ERR_NOT_FOUND) {
            pk_jo_kbool(j, "Present", false);
            snprintf(msg, sizeof(msg), "key %s version %u has no object in the token", k->id, v);
            finding(f, "MissingKeyObject", k->id, msg);
        } else {
            PK_GUARD(r);
            pk_jo_kbool(j, "Present", true);
            pk_jo_kstr(j, "Label", a.label);
            attrs_json(j, &a);
            if ((weak = weakness(&a)) != NULL) {
                snprintf(msg, sizeof(msg), "key %s version %u: %s", k->id, v, weak);
                finding(f, "WeakKeyObject", k->id, msg);
            }
        }
        pk_jo_obj_end(j);
    }
    pk_jo_arr_end(j);
    pk_jo_obj_end(j);
    return PK_OK;
}

static pk_result unknown_objects(p11kms *h, const pk_key_list *l, pk_json_out *j, pk_json_out *f)
{
    pk_p11_object *objs = NULL;
    size_t n = 0;
    pk_result r = pk_p11_list_objects(h->p11, "p11kms:", &objs, &n);
    for (size_t i = 0; pk_ok(r) && i < n; i++) {
        char hex[2 * PK_KEYID_MAX + 1], msg[300];
        pk_key_attrs a;
        if (is_known_object(l, &objs[i]) || pk_access_key_owns_object(h, &objs[i])) continue;
        pk_hex_encode(objs[i].id.bytes, objs[i].id.len, hex);
        pk_jo_obj_begin(j);
        pk_jo_kstr(j, "Label", objs[i].label);
        pk_jo_kstr(j, "Id", hex);
        if (pk_ok(pk_p11_key_attrs(h->p11, &objs[i].id, &a))) attrs_json(j, &a);
        pk_jo_obj_end(j);
        snprintf(msg, sizeof(msg), "token object '%.80s' (CKA_ID %.96s) carries a p11kms label but the store does not know it",
                 objs[i].label, hex);
        finding(f, "UnknownTokenObject", NULL, msg);
    }
    free(objs);
    return r;
}

P11KMS_API p11kms_rc p11kms_report_keys(p11kms *h, const p11kms_caller *c, char **json, size_t *nfindings)
{
    if (h != NULL && h->remote != NULL) return (*json = NULL, *nfindings = 0, pk_fwd_refuse("report keys"));
    pk_op op;
    pk_result r = PK_OK;
    pk_key_list l = {0};
    pk_buf out = {0}, fb = {0};
    pk_json_out j, f;
    int64_t now;

    *json = NULL;
    *nfindings = 0;
    PK_TRY(pk_op_begin(&op, h, c, "p11kms:ReportKeys"));
    pk_op_output_str(&op, json);
    now = pk_clock(h);
    PK_TRY(pk_key_load_all(&h->env, &l));
    pk_jo_init(&j, &out);
    pk_jo_init(&f, &fb);
    pk_jo_arr_begin(&f);
    pk_jo_obj_begin(&j);
    pk_jo_kstr(&j, "token", pk_p11_get_info(h->p11)->label);
    pk_jo_key(&j, "keys");
    pk_jo_arr_begin(&j);
    for (size_t i = 0; i < l.n; i++) PK_TRY(report_key(h, l.keys[i], now, &j, &f));
    pk_jo_arr_end(&j);
    pk_jo_key(&j, "unknown_objects");
    pk_jo_arr_begin(&j);
    PK_TRY(unknown_objects(h, &l, &j, &f));
    pk_jo_arr_end(&j);
    pk_jo_arr_end(&f);
    PK_TRY(pk_jo_result(&f));
    PK_TRY(pk_buf_cstr(&fb));
    pk_jo_key(&j, "findings");
    pk_jo_raw(&j, (const char *)fb.data);
    pk_jo_obj_end(&j);
    PK_TRY(pk_jo_result(&j));
    for (const char *p = (const char *)fb.data; (p = strstr(p, "\"kind\":")) != NULL; p++) (*nfindings)++;
    PK_TRY(pk_str_out(&out, json));
out:
    pk_key_list_free(&l);
    pk_buf_free(&out);
    pk_buf_free(&fb);
    return pk_op_finish(&op, r);
}

P11KMS_API p11kms_rc p11kms_report_policies(p11kms *h, const p11kms_caller *c, char **json, size_t *nfindings)
{
    if (h != NULL && h->remote != NULL) return (*json = NULL, *nfindings = 0, pk_fwd_refuse("report policies"));
    pk_op op;
    pk_result r = PK_OK;
    pk_key_list l = {0};
    pk_buf out = {0};
    pk_json_out j;

    *json = NULL;
    *nfindings = 0;
    PK_TRY(pk_op_begin(&op, h, c, "p11kms:ReportPolicies"));
    pk_op_output_str(&op, json);
    PK_TRY(pk_key_load_all(&h->env, &l));
    pk_jo_init(&j, &out);
    pk_jo_obj_begin(&j);
    pk_jo_key(&j, "keys");
    pk_jo_arr_begin(&j);
    for (size_t i = 0; i < l.n; i++) {
        pk_lint_report rep = {0};
        const pk_key *k = l.keys[i];
        if (k->state == PK_KEY_DELETED) continue;
        PK_TRY(pk_policy_lint(k->policy, &rep));
        pk_jo_obj_begin(&j);
        pk_jo_kstr(&j, "KeyId", k->id);
        pk_jo_kbool(&j, "ServiceKey", k->service);
        pk_jo_key(&j, "findings");
        pk_jo_arr_begin(&j);
        for (size_t x = 0; x < rep.n; x++) {
            pk_jo_obj_begin(&j);
            pk_jo_kstr(&j, "kind", pk_lint_kind_name(rep.items[x].kind));
            if (rep.items[x].statement >= 0) pk_jo_kint(&j, "statement", rep.items[x].statement);
            if (rep.items[x].sid) pk_jo_kstr(&j, "sid", rep.items[x].sid);
            pk_jo_kstr(&j, "message", rep.items[x].message);
            pk_jo_obj_end(&j);
        }
        pk_jo_arr_end(&j);
        pk_jo_obj_end(&j);
        *nfindings += rep.n;
        pk_lint_report_free(&rep);
    }
    pk_jo_arr_end(&j);
    pk_jo_obj_end(&j);
    PK_TRY(pk_jo_result(&j));
    PK_TRY(pk_str_out(&out, json));
out:
    pk_key_list_free(&l);
    pk_buf_free(&out);
    return pk_op_finish(&op, r);
}
