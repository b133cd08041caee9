/*
 * "P11kmsService.*": connections and render, which have no AWS API, for
 * `p11kms` with `connect =` (/work/wt/SM-CONTRACT.md, docs/DAEMON.md).
 * JSON 1.1 with the KMS protocol's error names; the library authorises and
 * audits each call with the caller's principal as in-process.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/sm_impl.h"

#define MAX_CONN_NAME 200
#define MAX_OPTIONS 256

/* The whole response body is text the library made (a JSON object or array). */
static void out_raw(op_ctx *o, const char *json)
{
    pk_buf b = {0};
    if (pk_failed(pk_buf_append(&b, json, strlen(json)))) {
        k_fail(o, 500, "KMSInternalException", "out of memory");
        return;
    }
    o->job->resp.status = 200;
    o->job->resp.content_type = "application/x-amz-json-1.1";
    k_set_body(&o->job->resp, &b);
    o->done = true;
}

/* A map member {"k": "v", ...} as a secret map (locked memory); *m NULL when absent. */
static bool field_map(op_ctx *o, const char *name, p11kms_secret_map **m)
{
    const pk_jv *v = pk_jv_get(o->in, name), *val;
    void *it = NULL;
    const char *key;
    size_t n = 0;
    *m = NULL;
    if (o->done) return false;
    if (v == NULL || pk_jv_typeof(v) == PK_JV_NULL) return true;
    if (pk_jv_typeof(v) != PK_JV_OBJECT || p11kms_secret_map_new(m) != P11KMS_OK) {
        k_fail(o, 400, "ValidationException", "%s must be a map of strings", name);
        return false;
    }
    while (pk_jv_next(v, &it, &key, &val)) {
        p11kms_rc rc;
        if (pk_jv_typeof(val) != PK_JV_STRING || ++n > MAX_OPTIONS) {
            k_fail(o, 400, "ValidationException", "%s must be a map of at most %d strings", name, MAX_OPTIONS);
            break;
        }
        rc = p11kms_secret_map_set(*m, key, pk_jv_str(val));
        if (rc != P11KMS_OK) {
            k_fail_rc(o, rc);
            break;
        }
    }
    if (!o->done) return true;
    p11kms_secret_map_free(*m);
    *m = NULL;
    return false;
}

static void op_create_connection(op_ctx *o)
{
    p11kms_connection_spec spec;
    const char *name = k_field_str(o, "Name", true, MAX_CONN_NAME);
    p11kms_secret_map *opts = NULL;
    p11kms_rc rc;
    memset(&spec, 0, sizeof(spec));
    spec.struct_size = sizeof(spec);
    spec.type = k_field_str(o, "Type", false, 256);
    spec.comment = k_field_str(o, "Comment", false, 4096);
    spec.ns = k_field_str(o, "Namespace", false, 128);
    spec.key = k_field_str(o, "KeyId", false, 2048);
    if (!field_map(o, "Options", &opts)) return;
    if (opts == NULL && p11kms_secret_map_new(&opts) != P11KMS_OK) {
        k_fail(o, 500, "KMSInternalException", "out of memory");
        return;
    }
    spec.options = opts;
    rc = p11kms_connection_create(o->k->h, o->caller, name, &spec);
    p11kms_secret_map_free(opts);
    if (rc != P11KMS_OK) k_fail_rc(o, rc);
}

static void op_alter_connection(op_ctx *o)
{
    const char *name = k_field_str(o, "Name", true, MAX_CONN_NAME);
    const char *comment = k_field_str(o, "Comment", false, 4096);
    const pk_jv *reset = pk_jv_get(o->in, "Reset");
    const char *keys[MAX_OPTIONS];
    size_t nreset = 0;
    p11kms_secret_map *set = NULL;
    p11kms_rc rc;
    if (o->done) return;
    if (reset != NULL && pk_jv_typeof(reset) != PK_JV_NULL) {
        if (pk_jv_typeof(reset) != PK_JV_ARRAY || pk_jv_size(reset) > MAX_OPTIONS) {
            k_fail(o, 400, "ValidationException", "Reset must be a list of at most %d option names", MAX_OPTIONS);
            return;
        }
        for (; nreset < pk_jv_size(reset); nreset++)
            if ((keys[nreset] = pk_jv_str(pk_jv_at(reset, nreset))) == NULL) {
                k_fail(o, 400, "ValidationException", "Reset must be a list of option names");
                return;
            }
    }
    if (!field_map(o, "Set", &set)) return;
    rc = p11kms_connection_alter(o->k->h, o->caller, name, set, keys, nreset, comment);
    p11kms_secret_map_free(set);
    if (rc != P11KMS_OK) k_fail_rc(o, rc);
}

static void op_drop_connection(op_ctx *o)
{
    const char *name = k_field_str(o, "Name", true, MAX_CONN_NAME);
    p11kms_rc rc;
    if (o->done) return;
    rc = p11kms_connection_drop(o->k->h, o->caller, name);
    if (rc != P11KMS_OK) k_fail_rc(o, rc);
}

static void op_describe_connection(op_ctx *o)
{
    const char *name = k_field_str(o, "Name", true, MAX_CONN_NAME);
    char *json = NULL;
    p11kms_rc rc;
    if (o->done) return;
    rc = p11kms_connection_describe(o->k->h, o->caller, name, &json);
    if (rc != P11KMS_OK) k_fail_rc(o, rc);
    else out_raw(o, json);
    p11kms_free(json);
}

static void op_show_create_connection(op_ctx *o)
{
    const char *name = k_field_str(o, "Name", true, MAX_CONN_NAME);
    char *sql = NULL;
    p11kms_rc rc;
    if (o->done) return;
    rc = p11kms_connection_show_create(o->k->h, o->caller, name, &sql);
    if (rc != P11KMS_OK) k_fail_rc(o, rc);
    else pk_jo_kstr(&o->j, "Statement", sql);
    p11kms_free(sql);
}

static void op_resolve_connection(op_ctx *o)
{
    const char *name = k_field_str(o, "Name", true, MAX_CONN_NAME);
    p11kms_secret_map *m = NULL;
    p11kms_rc rc;
    if (o->done) return;
    rc = p11kms_connection_resolve(o->k->h, o->caller, name, &m);
    if (rc != P11KMS_OK) {
        k_fail_rc(o, rc);
        return;
    }
    /* The values go only into the response buffer, which is wiped after the write. */
    pk_jo_key(&o->j, "Options");
    pk_jo_obj_begin(&o->j);
    for (size_t i = 0; i < p11kms_secret_map_count(m); i++)
        pk_jo_kstr(&o->j, p11kms_secret_map_key_at(m, i), p11kms_secret_map_value_at(m, i));
    pk_jo_obj_end(&o->j);
    p11kms_secret_map_free(m);
}

static void op_list_connections(op_ctx *o)
{
    const char *like = k_field_str(o, "Like", false, 1024);
    char *json = NULL;
    p11kms_rc rc;
    if (o->done) return;
    rc = p11kms_connection_list(o->k->h, o->caller, like, &json);
    if (rc != P11KMS_OK) k_fail_rc(o, rc);
    else out_raw(o, json);
    p11kms_free(json);
}

static void op_render(op_ctx *o)
{
    const pk_jv *t = pk_jv_get(o->in, "Template");
    p11kms_buf *out = NULL;
    p11kms_rc rc;
    if (t == NULL || pk_jv_typeof(t) != PK_JV_STRING) {
        k_fail(o, 400, "ValidationException", "Template must be a string");
        return;
    }
    if (pk_jv_strlen(t) > P11KMS_RENDER_MAX_TEMPLATE_BYTES) {
        k_fail(o, 400, "ValidationException", "Template is larger than %d bytes", P11KMS_RENDER_MAX_TEMPLATE_BYTES);
        return;
    }
    rc = p11kms_render(o->k->h, o->caller, pk_jv_str(t), pk_jv_strlen(t), &out);
    if (rc != P11KMS_OK) {
        k_fail_rc(o, rc);
        return;
    }
    pk_jo_key(&o->j, "Output");
    pk_jo_strn(&o->j, (const char *)p11kms_buf_data(out), p11kms_buf_len(out));
    p11kms_buf_free(out);
}

const k_op svc_ops[] = {
    {"CreateConnection", op_create_connection},
    {"AlterConnection", op_alter_connection},
    {"DropConnection", op_drop_connection},
    {"DescribeConnection", op_describe_connection},
    {"ShowCreateConnection", op_show_create_connection},
    {"ResolveConnection", op_resolve_connection},
    {"ListConnections", op_list_connections},
    {"Render", op_render},
};
const size_t svc_nops = PK_ARRAY_LEN(svc_ops);
