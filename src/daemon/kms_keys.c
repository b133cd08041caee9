/* Key management operations: CreateKey .. ListAliases. */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "daemon/kms_impl.h"

/* ---- operations ----------------------------------------------------------- */

static void key_metadata(op_ctx *o, const pk_jv *d)
{
    const char *arn = pk_jv_str(pk_jv_get(d, "Arn"));
    const char *state = pk_jv_str(pk_jv_get(d, "KeyState"));
    const char *acct = "";
    char acct_buf[16] = "";
    if (arn != NULL && strncmp(arn, "arn:", 4) == 0) {
        /* arn:aws:kms:REGION:ACCOUNT:key/ID */
        const char *p = arn;
        for (int i = 0; i < 4 && p; i++) p = strchr(p, ':') ? strchr(p, ':') + 1 : NULL;
        if (p && strchr(p, ':') && (size_t)(strchr(p, ':') - p) < sizeof(acct_buf)) {
            memcpy(acct_buf, p, (size_t)(strchr(p, ':') - p));
            acct = acct_buf;
        }
    }
    pk_jo_key(&o->j, "KeyMetadata");
    pk_jo_obj_begin(&o->j);
    pk_jo_kstr(&o->j, "AWSAccountId", acct);
    pk_jo_kstr(&o->j, "KeyId", pk_jv_str(pk_jv_get(d, "KeyId")));
    pk_jo_kstr(&o->j, "Arn", arn);
    pk_jo_kint(&o->j, "CreationDate", k_epoch_of(pk_jv_str(pk_jv_get(d, "CreationDate"))));
    pk_jo_kbool(&o->j, "Enabled", pk_jv_typeof(pk_jv_get(d, "Enabled")) == PK_JV_TRUE);
    pk_jo_kstr(&o->j, "Description", pk_jv_str(pk_jv_get(d, "Description")) ? pk_jv_str(pk_jv_get(d, "Description")) : "");
    pk_jo_kstr(&o->j, "KeyUsage", "ENCRYPT_DECRYPT");
    pk_jo_kstr(&o->j, "KeyState", state ? state : "Enabled");
    if (pk_jv_get(d, "DeletionDate"))
        pk_jo_kint(&o->j, "DeletionDate", k_epoch_of(pk_jv_str(pk_jv_get(d, "DeletionDate"))));
    pk_jo_kstr(&o->j, "Origin", "AWS_KMS");
    pk_jo_kstr(&o->j, "KeyManager",
               pk_jv_str(pk_jv_get(d, "KeyManager")) && strcmp(pk_jv_str(pk_jv_get(d, "KeyManager")), "CUSTOMER") == 0
                   ? "CUSTOMER"
                   : "AWS");
    pk_jo_kstr(&o->j, "CustomerMasterKeySpec", "SYMMETRIC_DEFAULT");
    pk_jo_kstr(&o->j, "KeySpec", "SYMMETRIC_DEFAULT");
    pk_jo_key(&o->j, "EncryptionAlgorithms");
    pk_jo_arr_begin(&o->j);
    pk_jo_str(&o->j, "SYMMETRIC_DEFAULT");
    pk_jo_arr_end(&o->j);
    pk_jo_kbool(&o->j, "MultiRegion", false);
    pk_jo_obj_end(&o->j);
}

/* Describe KEY as the library sees it; *doc is freed with pk_json_free. */
bool k_describe(op_ctx *o, const char *key, pk_jv **doc)
{
    char *json = NULL;
    p11kms_rc rc = p11kms_key_describe(o->k->h, o->caller, key, &json);
    *doc = NULL;
    if (rc != P11KMS_OK) {
        k_fail_rc(o, rc);
        return false;
    }
    if (pk_failed(pk_json_parse(json, strlen(json), P11KMS_ERR_INTERNAL, doc))) {
        p11kms_free(json);
        k_fail(o, 500, "KMSInternalException", "cannot read the key's description");
        return false;
    }
    p11kms_free(json);
    return true;
}

void op_describe_key(op_ctx *o)
{
    const char *key = k_field_str(o, "KeyId", true, 2048);
    pk_jv *d = NULL;
    if (key == NULL || !k_describe(o, key, &d)) return;
    key_metadata(o, d);
    pk_json_free(d);
}

void op_create_key(op_ctx *o)
{
    p11kms_key_spec spec;
    const char *policy = k_field_str(o, "Policy", false, 32768);
    const char *desc = k_field_str(o, "Description", false, 8192);
    const char *usage = k_field_str(o, "KeyUsage", false, 64);
    const char *kspec = k_field_str(o, "KeySpec", false, 64);
    const char *cmkspec = k_field_str(o, "CustomerMasterKeySpec", false, 64);
    const char *origin = k_field_str(o, "Origin", false, 64);
    bool bypass = k_field_bool(o, "BypassPolicyLockoutSafetyCheck");
    char *id = NULL;
    pk_jv *d = NULL;
    p11kms_rc rc;

    if (o->done) return;
    if ((usage && strcmp(usage, "ENCRYPT_DECRYPT") != 0) || (kspec && strcmp(kspec, "SYMMETRIC_DEFAULT") != 0) ||
        (cmkspec && strcmp(cmkspec, "SYMMETRIC_DEFAULT") != 0) || (origin && strcmp(origin, "AWS_KMS") != 0)) {
        k_fail(o, 400, "UnsupportedOperationException",
             "p11kmsd makes only symmetric ENCRYPT_DECRYPT keys (KeySpec SYMMETRIC_DEFAULT, Origin AWS_KMS)");
        return;
    }
    memset(&spec, 0, sizeof(spec));
    spec.struct_size = sizeof(spec);
    spec.description = desc;
    spec.policy_json = policy;
    spec.bypass_lockout_check = bypass;
    /* Without Policy there is no IAM here: the library makes the caller the key's administrator,
     * as `p11kms key create` does. This also holds for SigV4 callers, whose ARN only the library knows. */
    rc = p11kms_key_create(o->k->h, o->caller, &spec, &id);
    if (rc != P11KMS_OK) {
        k_fail_rc(o, rc);
        return;
    }
    if (k_describe(o, id, &d)) {
        key_metadata(o, d);
        pk_json_free(d);
    } else { /* the new policy may not let the creator k_describe: answer from what is known */
        char *arn = NULL;
        o->done = false;
        d_wipe_free(o->job->resp.body, o->job->resp.body_len);
        memset(&o->job->resp, 0, sizeof(o->job->resp));
        pk_jo_key(&o->j, "KeyMetadata");
        pk_jo_obj_begin(&o->j);
        pk_jo_kstr(&o->j, "KeyId", id);
        if (p11kms_key_arn(o->k->h, id, &arn) == P11KMS_OK) pk_jo_kstr(&o->j, "Arn", arn);
        p11kms_free(arn);
        pk_jo_kint(&o->j, "CreationDate", (int64_t)time(NULL));
        pk_jo_kbool(&o->j, "Enabled", true);
        pk_jo_kstr(&o->j, "KeyState", "Enabled");
        pk_jo_kstr(&o->j, "KeyUsage", "ENCRYPT_DECRYPT");
        pk_jo_kstr(&o->j, "KeySpec", "SYMMETRIC_DEFAULT");
        pk_jo_obj_end(&o->j);
    }
    p11kms_free(id);
}

/* Limit 1..1000 and an opaque Marker (the index of the next item). */
static bool page(op_ctx *o, size_t *start, size_t *limit)
{
    const char *m = k_field_str(o, "Marker", false, 1024);
    long l = 100;
    char *end = NULL;
    k_field_int(o, "Limit", 1, 1000, &l);
    *limit = (size_t)l;
    *start = 0;
    if (m != NULL) {
        *start = strtoul(m, &end, 10);
        if (*end != '\0') k_fail(o, 400, "InvalidMarkerException", "Marker is not one this service returned");
    }
    return !o->done;
}

static void end_page(op_ctx *o, size_t next, size_t total)
{
    pk_jo_kbool(&o->j, "Truncated", next < total);
    if (next < total) {
        char m[24];
        snprintf(m, sizeof(m), "%zu", next);
        pk_jo_kstr(&o->j, "NextMarker", m);
    }
}

static bool list_json(op_ctx *o, p11kms_rc rc, char *json, pk_jv **doc)
{
    *doc = NULL;
    if (rc == P11KMS_OK && json == NULL) rc = P11KMS_ERR_INTERNAL;
    if (rc != P11KMS_OK) {
        k_fail_rc(o, rc);
        return false;
    }
    if (pk_failed(pk_json_parse(json, strlen(json), P11KMS_ERR_INTERNAL, doc))) {
        k_fail(o, 500, "KMSInternalException", "cannot read the library's list");
        p11kms_free(json);
        return false;
    }
    p11kms_free(json);
    return true;
}

void op_list_keys(op_ctx *o)
{
    size_t start, limit, i, total;
    char *json = NULL;
    pk_jv *doc;
    p11kms_rc rc;
    if (!page(o, &start, &limit)) return;
    rc = p11kms_key_list(o->k->h, o->caller, &json);
    if (!list_json(o, rc, json, &doc)) return;
    total = pk_jv_size(doc);
    pk_jo_key(&o->j, "Keys");
    pk_jo_arr_begin(&o->j);
    for (i = start; i < total && i < start + limit; i++) {
        const pk_jv *e = pk_jv_at(doc, i);
        pk_jo_obj_begin(&o->j);
        pk_jo_kstr(&o->j, "KeyId", pk_jv_str(pk_jv_get(e, "KeyId")));
        k_out_arn(o, "KeyArn", pk_jv_str(pk_jv_get(e, "KeyId")));
        pk_jo_obj_end(&o->j);
    }
    pk_jo_arr_end(&o->j);
    end_page(o, i, total);
    pk_json_free(doc);
}

void op_list_aliases(op_ctx *o)
{
    const char *key = k_field_str(o, "KeyId", false, 2048);
    size_t start, limit, i, total;
    char *json = NULL, *prefix = NULL, *slash;
    pk_jv *doc;
    p11kms_rc rc;
    if (!page(o, &start, &limit)) return;
    rc = p11kms_alias_list(o->k->h, o->caller, key, &json);
    if (!list_json(o, rc, json, &doc)) return;
    /* alias ARNs share the key ARNs' arn:aws:kms:REGION:ACCOUNT: prefix */
    if (p11kms_key_arn(o->k->h, "00000000-0000-0000-0000-000000000000", &prefix) != P11KMS_OK ||
        (slash = strstr(prefix, ":key/")) == NULL) {
        p11kms_free(prefix);
        pk_json_free(doc);
        k_fail(o, 500, "KMSInternalException", "cannot form alias ARNs");
        return;
    }
    slash[1] = '\0';
    total = pk_jv_size(doc);
    pk_jo_key(&o->j, "Aliases");
    pk_jo_arr_begin(&o->j);
    for (i = start; i < total && i < start + limit; i++) {
        const pk_jv *e = pk_jv_at(doc, i);
        char arn[512];
        snprintf(arn, sizeof(arn), "%s%s", prefix, pk_jv_str(pk_jv_get(e, "AliasName")));
        pk_jo_obj_begin(&o->j);
        pk_jo_kstr(&o->j, "AliasName", pk_jv_str(pk_jv_get(e, "AliasName")));
        pk_jo_kstr(&o->j, "AliasArn", arn);
        pk_jo_kstr(&o->j, "TargetKeyId", pk_jv_str(pk_jv_get(e, "TargetKeyId")));
        pk_jo_obj_end(&o->j);
    }
    pk_jo_arr_end(&o->j);
    end_page(o, i, total);
    p11kms_free(prefix);
    pk_json_free(doc);
}

typedef p11kms_rc (*key_fn)(p11kms *h, const p11kms_caller *c, const char *key);

static void simple_key_op(op_ctx *o, key_fn fn, bool echo_key)
{
    const char *key = k_field_str(o, "KeyId", true, 2048);
    p11kms_rc rc;
    pk_jv *d = NULL;
    if (key == NULL) return;
    rc = fn(o->k->h, o->caller, key);
    if (rc != P11KMS_OK) {
        k_fail_rc(o, rc);
        return;
    }
    if (!echo_key) return;
    /* The answer names the key by ARN: DescribeKey may be denied, so resolve bare ids only. */
    if (strncmp(key, "alias/", 6) != 0) k_out_arn(o, "KeyId", key);
    else if (k_describe(o, key, &d)) pk_jo_kstr(&o->j, "KeyId", pk_jv_str(pk_jv_get(d, "Arn")));
    pk_json_free(d);
}

void op_enable_key(op_ctx *o) { simple_key_op(o, p11kms_key_enable, false); }
void op_disable_key(op_ctx *o) { simple_key_op(o, p11kms_key_disable, false); }
void op_cancel_deletion(op_ctx *o) { simple_key_op(o, p11kms_key_cancel_deletion, true); }

void op_schedule_deletion(op_ctx *o)
{
    const char *key = k_field_str(o, "KeyId", true, 2048);
    long days = 30;
    int64_t when = 0;
    p11kms_rc rc;
    k_field_int(o, "PendingWindowInDays", 7, 30, &days);
    if (o->done) return;
    rc = p11kms_key_schedule_deletion(o->k->h, o->caller, key, (unsigned)days, &when);
    if (rc != P11KMS_OK) {
        k_fail_rc(o, rc);
        return;
    }
    k_out_arn(o, "KeyId", key);
    pk_jo_kint(&o->j, "DeletionDate", when / 1000);
    pk_jo_kstr(&o->j, "KeyState", "PendingDeletion");
    pk_jo_kint(&o->j, "PendingWindowInDays", days);
}

static void op_set_rotation(op_ctx *o, bool enable)
{
    const char *key = k_field_str(o, "KeyId", true, 2048);
    long days = 365;
    p11kms_rc rc;
    if (enable) k_field_int(o, "RotationPeriodInDays", 90, 2560, &days);
    if (o->done) return;
    rc = p11kms_key_set_rotation(o->k->h, o->caller, key, enable ? (unsigned)days : 0);
    if (rc != P11KMS_OK) k_fail_rc(o, rc);
}

void op_enable_rotation(op_ctx *o) { op_set_rotation(o, true); }
void op_disable_rotation(op_ctx *o) { op_set_rotation(o, false); }

void op_rotation_status(op_ctx *o)
{
    const char *key = k_field_str(o, "KeyId", true, 2048);
    pk_jv *d = NULL;
    if (key == NULL || !k_describe(o, key, &d)) return;
    pk_jo_kstr(&o->j, "KeyId", pk_jv_str(pk_jv_get(d, "Arn")));
    pk_jo_kbool(&o->j, "KeyRotationEnabled", pk_jv_typeof(pk_jv_get(d, "KeyRotationEnabled")) == PK_JV_TRUE);
    if (pk_jv_typeof(pk_jv_get(d, "KeyRotationEnabled")) == PK_JV_TRUE) {
        pk_jo_kint(&o->j, "RotationPeriodInDays", pk_jv_int(pk_jv_get(d, "RotationPeriodInDays")));
        pk_jo_kint(&o->j, "NextRotationDate", k_epoch_of(pk_jv_str(pk_jv_get(d, "NextRotationDate"))));
    }
    pk_json_free(d);
}

/* Versions 2.. of the key are its rotations (AWS ListKeyRotations; one page: a key has few versions). */
void op_list_rotations(op_ctx *o)
{
    const char *key = k_field_str(o, "KeyId", true, 2048);
    long limit = 1000;
    pk_jv *d = NULL;
    const pk_jv *versions;
    k_field_int(o, "Limit", 1, 1000, &limit);
    if (key == NULL || o->done || !k_describe(o, key, &d)) return;
    versions = pk_jv_get(d, "KeyVersions");
    pk_jo_key(&o->j, "Rotations");
    pk_jo_arr_begin(&o->j);
    for (size_t i = 1; i < pk_jv_size(versions); i++) {
        pk_jo_obj_begin(&o->j);
        pk_jo_kstr(&o->j, "KeyId", pk_jv_str(pk_jv_get(d, "Arn")));
        pk_jo_kint(&o->j, "RotationDate", k_epoch_of(pk_jv_str(pk_jv_get(pk_jv_at(versions, i), "CreationDate"))));
        pk_jo_kstr(&o->j, "RotationType", "ON_DEMAND");
        pk_jo_obj_end(&o->j);
    }
    pk_jo_arr_end(&o->j);
    pk_jo_kbool(&o->j, "Truncated", false);
    pk_json_free(d);
}

void op_rotate_now(op_ctx *o)
{
    const char *key = k_field_str(o, "KeyId", true, 2048);
    unsigned version = 0;
    p11kms_rc rc;
    if (key == NULL) return;
    rc = p11kms_key_rotate(o->k->h, o->caller, key, &version);
    if (rc != P11KMS_OK) {
        k_fail_rc(o, rc);
        return;
    }
    k_out_arn(o, "KeyId", key);
}

static bool policy_name_ok(op_ctx *o, bool required)
{
    const char *n = k_field_str(o, "PolicyName", required, 128);
    if (n != NULL && strcmp(n, "default") != 0) k_fail(o, 404, "NotFoundException", "the only policy name is default");
    return !o->done;
}

void op_get_policy(op_ctx *o)
{
    const char *key = k_field_str(o, "KeyId", true, 2048);
    char *policy = NULL;
    p11kms_rc rc;
    if (!policy_name_ok(o, false) || key == NULL) return;
    rc = p11kms_key_get_policy(o->k->h, o->caller, key, &policy);
    if (rc != P11KMS_OK) {
        k_fail_rc(o, rc);
        return;
    }
    pk_jo_kstr(&o->j, "Policy", policy);
    pk_jo_kstr(&o->j, "PolicyName", "default");
    p11kms_free(policy);
}

void op_put_policy(op_ctx *o)
{
    const char *key = k_field_str(o, "KeyId", true, 2048);
    const char *policy = k_field_str(o, "Policy", true, 32768);
    bool bypass = k_field_bool(o, "BypassPolicyLockoutSafetyCheck");
    p11kms_rc rc;
    if (!policy_name_ok(o, false) || o->done) return;
    rc = p11kms_key_put_policy(o->k->h, o->caller, key, policy, bypass ? P11KMS_POLICY_BYPASS_LOCKOUT_CHECK : 0);
    if (rc != P11KMS_OK) k_fail_rc(o, rc);
}

static const char *alias_name(op_ctx *o)
{
    const char *a = k_field_str(o, "AliasName", true, 256);
    if (a != NULL && strncmp(a, "alias/", 6) != 0)
        k_fail(o, 400, "ValidationException", "AliasName must begin with alias/");
    return o->done ? NULL : a;
}

void op_create_alias(op_ctx *o)
{
    const char *a = alias_name(o), *key = k_field_str(o, "TargetKeyId", true, 2048);
    p11kms_rc rc;
    if (o->done) return;
    rc = p11kms_alias_create(o->k->h, o->caller, a, key);
    if (rc != P11KMS_OK) k_fail_rc(o, rc);
}

void op_update_alias(op_ctx *o)
{
    const char *a = alias_name(o), *key = k_field_str(o, "TargetKeyId", true, 2048);
    p11kms_rc rc;
    if (o->done) return;
    rc = p11kms_alias_update(o->k->h, o->caller, a, key);
    if (rc != P11KMS_OK) k_fail_rc(o, rc);
}

void op_delete_alias(op_ctx *o)
{
    const char *a = alias_name(o);
    p11kms_rc rc;
    if (o->done) return;
    rc = p11kms_alias_delete(o->k->h, o->caller, a);
    if (rc != P11KMS_OK) k_fail_rc(o, rc);
}

