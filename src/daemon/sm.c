/*
 * The AWS Secrets Manager JSON 1.1 operations ("secretsmanager.*") on the
 * SecretStore (/work/wt/SM-CONTRACT.md, docs/DAEMON.md): Name = the secret's
 * id, namespace = the part of Name before its first '/' (else "default"),
 * SecretString = the secret's JSON map. Errors carry AWS's names; no error
 * message ever holds a value.
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "daemon/sm_impl.h"

#define MAX_SECRET_STRING 65536
#define MAX_NAME 512
#define MAX_SECRET_ID 2048
#define NS_DEFAULT "default"
#define NAME_CHARS "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/_+=.@-"

/* ---- errors and fields ---- */

void sm_fail_rc(op_ctx *o, p11kms_rc rc)
{
    const char *d = p11kms_last_error();
    const char *msg = d && *d ? d : p11kms_strerror(rc);
    switch ((int)rc) {
    case P11KMS_ERR_NOT_FOUND: k_fail(o, 400, "ResourceNotFoundException", "%s", msg); return;
    case P11KMS_ERR_ALREADY_EXISTS: k_fail(o, 400, "ResourceExistsException", "%s", msg); return;
    case P11KMS_ERR_INVALID_ARGUMENT:
    case P11KMS_ERR_LIMIT: k_fail(o, 400, "InvalidParameterException", "%s", msg); return;
    case P11KMS_ERR_DISABLED:
    case P11KMS_ERR_INVALID_STATE: k_fail(o, 400, "InvalidRequestException", "%s", msg); return;
    case P11KMS_ERR_CIPHERTEXT_INVALID:
    case P11KMS_ERR_INTEGRITY:
    case P11KMS_ERR_HSM: k_fail(o, 400, "DecryptionFailure", "%s", msg); return;
    case P11KMS_ERR_ACCESS_DENIED:
    case P11KMS_ERR_SIGNATURE_INVALID:
    case P11KMS_ERR_UNRECOGNIZED_CLIENT:
    case P11KMS_ERR_INCOMPLETE_SIGNATURE:
    case P11KMS_ERR_REQUEST_EXPIRED: k_fail_rc(o, rc); return;
    default: k_fail(o, 500, "InternalServiceError", "%s", msg); return;
    }
}

/* A string member of 1..max bytes (InvalidParameterException otherwise); NULL when absent. */
const char *sm_str(op_ctx *o, const char *name, bool required, size_t max)
{
    const pk_jv *v = pk_jv_get(o->in, name);
    if (o->done) return NULL;
    if (v == NULL || pk_jv_typeof(v) == PK_JV_NULL) {
        if (required) k_fail(o, 400, "InvalidParameterException", "%s is required", name);
        return NULL;
    }
    if (pk_jv_typeof(v) != PK_JV_STRING) {
        k_fail(o, 400, "InvalidParameterException", "%s must be a string", name);
        return NULL;
    }
    if (pk_jv_strlen(v) < 1 || pk_jv_strlen(v) > max || strlen(pk_jv_str(v)) != pk_jv_strlen(v)) {
        k_fail(o, 400, "InvalidParameterException", "%s must be 1 to %zu characters long", name, max);
        return NULL;
    }
    return pk_jv_str(v);
}

static bool name_ok(const char *n) { return strspn(n, NAME_CHARS) == strlen(n); }

/* The secret's Name from SecretId (a Name or the full ARN); NULL after an error. */
static const char *secret_name(op_ctx *o, char *buf, size_t size)
{
    const char *id = sm_str(o, "SecretId", true, MAX_SECRET_ID), *tail;
    char *arn = NULL;
    size_t n;
    if (id == NULL) return NULL;
    if (strncmp(id, "arn:", 4) != 0) {
        if (strlen(id) > MAX_NAME || !name_ok(id)) k_fail(o, 400, "ResourceNotFoundException", "secret %.64s not found", id);
        snprintf(buf, size, "%s", id);
        return o->done ? NULL : buf;
    }
    /* arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME-XXXXXX, checked against the ARN the name has. */
    tail = strstr(id, ":secret:");
    n = tail ? strlen(tail + 8) : 0;
    if (n > 7 && n - 7 < size && tail[8 + n - 7] == '-') {
        snprintf(buf, size, "%.*s", (int)(n - 7), tail + 8);
        if (p11kms_secret_arn(o->k->h, buf, &arn) == P11KMS_OK && strcmp(arn, id) == 0) {
            p11kms_free(arn);
            return buf;
        }
        p11kms_free(arn);
    }
    k_fail(o, 400, "ResourceNotFoundException", "secret %.600s not found", id);
    return NULL;
}

/* The secret's map from SecretString (SecretBinary refused); NULL after an error. */
static p11kms_secret_map *secret_value(op_ctx *o, bool required)
{
    const pk_jv *v = pk_jv_get(o->in, "SecretString");
    p11kms_secret_map *m = NULL;
    if (o->done) return NULL;
    if (pk_jv_get(o->in, "SecretBinary") != NULL) {
        k_fail(o, 400, "InvalidParameterException", "p11kms secrets are JSON maps of strings: use SecretString");
        return NULL;
    }
    if (v == NULL || pk_jv_typeof(v) == PK_JV_NULL) {
        if (required) k_fail(o, 400, "InvalidParameterException", "SecretString is required");
        return NULL;
    }
    if (pk_jv_typeof(v) != PK_JV_STRING || pk_jv_strlen(v) < 1 || pk_jv_strlen(v) > MAX_SECRET_STRING) {
        k_fail(o, 400, "InvalidParameterException", "SecretString must be 1 to %d bytes of text", MAX_SECRET_STRING);
        return NULL;
    }
    /* The library's detail may quote the text: say only what is wrong. */
    if (p11kms_secret_map_from_json(pk_jv_str(v), pk_jv_strlen(v), &m) != P11KMS_OK) {
        k_fail(o, 400, "InvalidParameterException",
               "SecretString must be a flat JSON object of strings (p11kms secrets are JSON maps of strings)");
        return NULL;
    }
    return m;
}

/* ---- answers ---- */

/* A UUID-format VersionId, stable for one version of one secret (its creation time tells re-creations apart). */
void sm_version_id(uint32_t version, int64_t created_s, char out[37])
{
    snprintf(out, 37, "%08" PRIx32 "-0000-4000-8000-%012" PRIx64, version, (uint64_t)((uint64_t)created_s & 0xffffffffffffULL));
}

void sm_out_arn_name(op_ctx *o, const char *name)
{
    char *arn = NULL;
    p11kms_rc rc = p11kms_secret_arn(o->k->h, name, &arn);
    if (rc != P11KMS_OK) {
        sm_fail_rc(o, rc);
        return;
    }
    pk_jo_kstr(&o->j, "ARN", arn);
    pk_jo_kstr(&o->j, "Name", name);
    p11kms_free(arn);
}

void sm_out_stages(op_ctx *o, const char *field, const char *vid)
{
    pk_jo_key(&o->j, field);
    pk_jo_obj_begin(&o->j);
    pk_jo_key(&o->j, vid);
    pk_jo_arr_begin(&o->j);
    pk_jo_str(&o->j, "AWSCURRENT");
    pk_jo_arr_end(&o->j);
    pk_jo_obj_end(&o->j);
}

static void out_current(op_ctx *o)
{
    pk_jo_key(&o->j, "VersionStages");
    pk_jo_arr_begin(&o->j);
    pk_jo_str(&o->j, "AWSCURRENT");
    pk_jo_arr_end(&o->j);
}

/* ARN, Name and VersionId of the version just written (read back: the library returns none). */
static void out_written(op_ctx *o, const char *name, bool stages)
{
    p11kms_secret_info info = {sizeof(info), "", "", 0, 0, 0};
    char vid[37];
    p11kms_rc rc = p11kms_secret_describe(o->k->h, o->caller, name, &info);
    sm_out_arn_name(o, name);
    /* A writer that may not describe the key still gets ARN and Name. */
    if (rc != P11KMS_OK) return;
    sm_version_id(info.version, info.created_ms / 1000, vid);
    pk_jo_kstr(&o->j, "VersionId", vid);
    if (stages) out_current(o);
}

/* The namespace a Name puts its secret in: the part before the first '/', else "default". */
static bool namespace_of(op_ctx *o, const char *name, char *ns, size_t size)
{
    const char *slash = strchr(name, '/');
    if (slash == NULL) {
        snprintf(ns, size, "%s", NS_DEFAULT);
        return true;
    }
    if ((size_t)(slash - name) >= size || slash == name) {
        k_fail(o, 400, "InvalidParameterException", "the part of Name before its first '/' must be a namespace of 1 to %zu characters", size - 1);
        return false;
    }
    snprintf(ns, size, "%.*s", (int)(slash - name), name);
    return true;
}

/* ---- operations ---- */

static void op_create_secret(op_ctx *o)
{
    const char *name = sm_str(o, "Name", true, MAX_NAME);
    const char *key = sm_str(o, "KmsKeyId", false, 2048);
    p11kms_secret_map *m;
    char ns[129];
    p11kms_rc rc;
    (void)sm_str(o, "Description", false, 2048);
    (void)sm_str(o, "ClientRequestToken", false, 64);
    if (name != NULL && !name_ok(name))
        k_fail(o, 400, "InvalidParameterException",
               "Invalid name. Must be a valid name containing alphanumeric characters, or any of the following: "
               "-/_+=.@!");
    if (o->done || !namespace_of(o, name, ns, sizeof(ns))) return;
    if (pk_jv_get(o->in, "Tags") != NULL || pk_jv_get(o->in, "AddReplicaRegions") != NULL) {
        k_fail(o, 400, "InvalidParameterException", "p11kmsd does not support Tags or AddReplicaRegions");
        return;
    }
    m = secret_value(o, true);
    if (m == NULL) return;
    rc = p11kms_secret_put_named(o->k->h, o->caller, ns, key, name, m);
    p11kms_secret_map_free(m);
    if (rc != P11KMS_OK) {
        sm_fail_rc(o, rc);
        return;
    }
    out_written(o, name, false);
}

static void op_get_secret_value(op_ctx *o)
{
    char name[MAX_NAME + 1], vid[37];
    const char *want_vid, *want_stage;
    p11kms_secret_info info = {sizeof(info), "", "", 0, 0, 0};
    p11kms_secret_map *m = NULL;
    p11kms_buf *json = NULL;
    p11kms_rc rc;
    if (secret_name(o, name, sizeof(name)) == NULL) return;
    want_vid = sm_str(o, "VersionId", false, 64);
    want_stage = sm_str(o, "VersionStage", false, 256);
    if (o->done) return;
    rc = p11kms_secret_get_info(o->k->h, o->caller, name, &m, &info);
    if (rc == P11KMS_OK) rc = p11kms_secret_map_to_json(m, &json);
    p11kms_secret_map_free(m);
    if (rc != P11KMS_OK) {
        sm_fail_rc(o, rc);
        return;
    }
    sm_version_id(info.version, info.created_ms / 1000, vid);
    if (want_vid != NULL && strcmp(want_vid, vid) != 0)
        k_fail(o, 400, "ResourceNotFoundException",
               "Secrets Manager can't find the specified secret value for VersionId: %s", want_vid);
    else if (want_stage != NULL && strcmp(want_stage, "AWSCURRENT") != 0)
        k_fail(o, 400, "ResourceNotFoundException",
               "Secrets Manager can't find the specified secret value for staging label: %s", want_stage);
    if (!o->done) {
        sm_out_arn_name(o, name);
        pk_jo_kstr(&o->j, "VersionId", vid);
        pk_jo_key(&o->j, "SecretString");
        pk_jo_strn(&o->j, (const char *)p11kms_buf_data(json), p11kms_buf_len(json));
        out_current(o);
        pk_jo_kint(&o->j, "CreatedDate", info.created_ms / 1000);
    }
    p11kms_buf_free(json);
}

/* PutSecretValue and UpdateSecret: replace the map atomically (secret update). */
static void replace_value(op_ctx *o, const char *name, p11kms_secret_map *m, bool stages)
{
    p11kms_rc rc = p11kms_secret_update(o->k->h, o->caller, name, m);
    p11kms_secret_map_free(m);
    if (rc != P11KMS_OK) {
        sm_fail_rc(o, rc);
        return;
    }
    out_written(o, name, stages);
}

static void op_put_secret_value(op_ctx *o)
{
    char name[MAX_NAME + 1];
    p11kms_secret_map *m;
    if (secret_name(o, name, sizeof(name)) == NULL) return;
    (void)sm_str(o, "ClientRequestToken", false, 64);
    if (!o->done && pk_jv_get(o->in, "VersionStages") != NULL) {
        k_fail(o, 400, "InvalidParameterException", "p11kmsd keeps one version per secret: VersionStages is not supported");
        return;
    }
    m = secret_value(o, true);
    if (m != NULL) replace_value(o, name, m, true);
}

static void op_update_secret(op_ctx *o)
{
    char name[MAX_NAME + 1], *arn = NULL;
    const char *key;
    p11kms_secret_info info = {sizeof(info), "", "", 0, 0, 0};
    p11kms_secret_map *m;
    p11kms_rc rc;
    if (secret_name(o, name, sizeof(name)) == NULL) return;
    key = sm_str(o, "KmsKeyId", false, 2048);
    (void)sm_str(o, "Description", false, 2048);
    (void)sm_str(o, "ClientRequestToken", false, 64);
    if (o->done) return;
    if (key != NULL) {
        /* The key of a secret is its namespace key's CMK: a secret cannot move alone. */
        rc = p11kms_secret_describe(o->k->h, o->caller, name, &info);
        if (rc == P11KMS_OK) rc = p11kms_key_arn(o->k->h, info.key_id, &arn);
        if (rc != P11KMS_OK) {
            sm_fail_rc(o, rc);
            return;
        }
        if (strcmp(key, info.key_id) != 0 && strcmp(key, arn) != 0)
            k_fail(o, 400, "InvalidRequestException",
                   "p11kmsd cannot move a secret to another key: KmsKeyId must be the secret's key id or key ARN");
        p11kms_free(arn);
        if (o->done) return;
    }
    m = secret_value(o, false);
    if (o->done) return;
    if (m != NULL) {
        replace_value(o, name, m, false);
        return;
    }
    /* Nothing to write: AWS answers with ARN and Name; the secret must exist and be visible. */
    rc = p11kms_secret_describe(o->k->h, o->caller, name, &info);
    if (rc != P11KMS_OK) sm_fail_rc(o, rc);
    else sm_out_arn_name(o, name);
}

static void op_delete_secret(op_ctx *o)
{
    char name[MAX_NAME + 1];
    const pk_jv *days_v, *force_v;
    bool has_days, force;
    p11kms_rc rc;
    if (secret_name(o, name, sizeof(name)) == NULL) return;
    days_v = pk_jv_get(o->in, "RecoveryWindowInDays");
    force_v = pk_jv_get(o->in, "ForceDeleteWithoutRecovery");
    if (days_v != NULL && (pk_jv_typeof(days_v) != PK_JV_INTEGER || pk_jv_int(days_v) < 7 || pk_jv_int(days_v) > 30)) {
        k_fail(o, 400, "InvalidParameterException", "RecoveryWindowInDays must be an integer from 7 to 30");
        return;
    }
    if (force_v != NULL && pk_jv_typeof(force_v) != PK_JV_TRUE && pk_jv_typeof(force_v) != PK_JV_FALSE) {
        k_fail(o, 400, "InvalidParameterException", "ForceDeleteWithoutRecovery must be a boolean");
        return;
    }
    has_days = days_v != NULL;
    force = force_v != NULL && pk_jv_typeof(force_v) == PK_JV_TRUE;
    if (force && has_days) {
        k_fail(o, 400, "InvalidParameterException",
               "You can't use ForceDeleteWithoutRecovery in conjunction with RecoveryWindowInDays.");
        return;
    }
    /* p11kms keeps no deleted secrets: the removal is immediate whatever the window (docs/DAEMON.md). */
    rc = p11kms_secret_remove(o->k->h, o->caller, name);
    if (rc != P11KMS_OK) {
        sm_fail_rc(o, rc);
        return;
    }
    sm_out_arn_name(o, name);
    pk_jo_kint(&o->j, "DeletionDate", (int64_t)time(NULL));
}

/* The metadata fields DescribeSecret and ListSecrets share. */
void sm_out_meta(op_ctx *o, const char *name, const char *key_id, uint32_t version, int64_t created_s,
                 int64_t changed_s)
{
    char vid[37], *karn = NULL;
    sm_out_arn_name(o, name);
    if (p11kms_key_arn(o->k->h, key_id, &karn) == P11KMS_OK) pk_jo_kstr(&o->j, "KmsKeyId", karn);
    p11kms_free(karn);
    pk_jo_kint(&o->j, "CreatedDate", created_s);
    pk_jo_kint(&o->j, "LastChangedDate", changed_s);
    sm_version_id(version, created_s, vid);
}

static void op_describe_secret(op_ctx *o)
{
    char name[MAX_NAME + 1], vid[37];
    p11kms_secret_info info = {sizeof(info), "", "", 0, 0, 0};
    p11kms_rc rc;
    if (secret_name(o, name, sizeof(name)) == NULL) return;
    rc = p11kms_secret_describe(o->k->h, o->caller, name, &info);
    if (rc != P11KMS_OK) {
        sm_fail_rc(o, rc);
        return;
    }
    sm_out_meta(o, name, info.key_id, info.version, info.created_ms / 1000, info.updated_ms / 1000);
    sm_version_id(info.version, info.created_ms / 1000, vid);
    sm_out_stages(o, "VersionIdsToStages", vid);
}

const k_op sm_ops[] = {
    {"CreateSecret", op_create_secret},
    {"GetSecretValue", op_get_secret_value},
    {"PutSecretValue", op_put_secret_value},
    {"UpdateSecret", op_update_secret},
    {"DeleteSecret", op_delete_secret},
    {"DescribeSecret", op_describe_secret},
    {"ListSecrets", sm_list_secrets},
};
const size_t sm_nops = PK_ARRAY_LEN(sm_ops);
