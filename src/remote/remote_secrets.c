/*
 * Secrets over secretsmanager.* and connections and render over
 * P11kmsService.* (SM-CONTRACT.md). A secret's Name is its p11kms id; a new
 * secret in namespace NS is named NS/UUID (UUID in "default"), since the
 * daemon takes the namespace from the name. Secret values arrive in the
 * answer's JSON (jansson's heap, as in the daemon) and are handed on in
 * locked memory.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "remote/remote_impl.h"
#include "util/codec.h"
#include "util/timefmt.h"

/* An answer value written back as JSON, members in the daemon's order. */
static void write_jv(pk_json_out *j, const pk_jv *v, int depth)
{
    void *it = NULL;
    const char *k;
    const pk_jv *m;
    switch (depth > 12 ? PK_JV_NULL : pk_jv_typeof(v)) {
    case PK_JV_OBJECT:
        pk_jo_obj_begin(j);
        while (pk_jv_next(v, &it, &k, &m)) {
            pk_jo_key(j, k);
            write_jv(j, m, depth + 1);
        }
        pk_jo_obj_end(j);
        break;
    case PK_JV_ARRAY:
        pk_jo_arr_begin(j);
        for (size_t i = 0; i < pk_jv_size(v); i++) write_jv(j, pk_jv_at(v, i), depth + 1);
        pk_jo_arr_end(j);
        break;
    case PK_JV_STRING: pk_jo_strn(j, pk_jv_str(v), pk_jv_strlen(v)); break;
    case PK_JV_INTEGER: pk_jo_int(j, pk_jv_int(v)); break;
    case PK_JV_REAL: pk_jo_double(j, pk_jv_number(v)); break;
    case PK_JV_TRUE: pk_jo_bool(j, true); break;
    case PK_JV_FALSE: pk_jo_bool(j, false); break;
    case PK_JV_NULL:
    default: pk_jo_null(j); break;
    }
}

static pk_result dump(const pk_jv *v, char **out)
{
    pk_buf b = {0};
    pk_json_out j;
    *out = NULL;
    pk_jo_init(&j, &b);
    write_jv(&j, v, 0);
    if (pk_ok(pk_jo_result(&j)) && pk_ok(pk_buf_cstr(&b))) {
        *out = (char *)b.data;
        return PK_OK;
    }
    pk_buf_free(&b);
    return pk_fail(P11KMS_ERR_NO_MEMORY, "out of memory");
}

pk_result pk_remote_secret_put(pk_remote *r, const char *ns, const char *key, const char *map_json, char **id)
{
    uint8_t uuid[PK_UUID_LEN];
    char u[PK_UUID_STR_LEN + 1], name[PK_UUID_STR_LEN + 160];
    pk_remote_req q;
    pk_jv *resp = NULL;

    *id = NULL;
    PK_GUARD(pk_uuid_new(uuid));
    pk_uuid_format(uuid, u);
    if (ns == NULL || strcmp(ns, "default") == 0) snprintf(name, sizeof(name), "%s", u);
    else snprintf(name, sizeof(name), "%.128s/%s", ns, u);
    pk_remote_begin(&q);
    pk_jo_kstr(&q.j, "Name", name);
    if (key != NULL) pk_jo_kstr(&q.j, "KmsKeyId", key);
    pk_jo_kstr(&q.j, "SecretString", map_json);
    PK_GUARD(pk_remote_send(r, PK_REMOTE_SM, "CreateSecret", &q, &resp));
    pk_json_free(resp);
    *id = strdup(name);
    PK_ENSURE_ALLOC(*id);
    return PK_OK;
}

pk_result pk_remote_secret_get(pk_remote *r, const char *id, pk_secbuf *map_json)
{
    pk_jv *resp = NULL;
    const pk_jv *s;
    pk_result res;
    PK_GUARD(pk_remote_call1(r, PK_REMOTE_SM, "GetSecretValue", "SecretId", id, &resp));
    s = pk_jv_get(resp, "SecretString");
    res = pk_jv_str(s) ? pk_secbuf_set(map_json, pk_jv_str(s), pk_jv_strlen(s))
                       : pk_fail(P11KMS_ERR_INTERNAL, "p11kmsd's GetSecretValue answer has no SecretString");
    if (pk_ok(res)) res = pk_secbuf_cstr(map_json);
    pk_json_free(resp);
    return res;
}

pk_result pk_remote_secret_update(pk_remote *r, const char *id, const char *map_json)
{
    pk_remote_req q;
    pk_remote_begin(&q);
    pk_jo_kstr(&q.j, "SecretId", id);
    pk_jo_kstr(&q.j, "SecretString", map_json);
    return pk_remote_send_only(r, PK_REMOTE_SM, "PutSecretValue", &q);
}

pk_result pk_remote_secret_remove(pk_remote *r, const char *id)
{
    pk_remote_req q;
    pk_remote_begin(&q);
    pk_jo_kstr(&q.j, "SecretId", id);
    pk_jo_kbool(&q.j, "ForceDeleteWithoutRecovery", true);
    return pk_remote_send_only(r, PK_REMOTE_SM, "DeleteSecret", &q);
}

static void json_time(pk_json_out *j, const char *key, int64_t ms)
{
    char t[PK_TIME_STR_LEN];
    pk_time_rfc3339(ms, t);
    pk_jo_kstr(j, key, t);
}

/* The namespace of a name: before its first '/', else "default" (SM-CONTRACT.md). */
static void ns_of(const char *name, char *out, size_t size)
{
    const char *slash = strchr(name, '/');
    if (slash == NULL) snprintf(out, size, "default");
    else snprintf(out, size, "%.*s", (int)(slash - name), name);
}

/*
 * The secret's version: p11kmsd's VersionId is VERSION(8 hex)-0000-4000-8000-CREATED
 * (src/daemon/sm.c), and ListSecrets names the current one in SecretVersionsToStages.
 */
static int64_t version_of(const pk_jv *e)
{
    void *it = NULL;
    const char *vid = NULL;
    const pk_jv *stages;
    char *end = NULL;
    unsigned long v;
    if (!pk_jv_next(pk_jv_get(e, "SecretVersionsToStages"), &it, &vid, &stages) || strlen(vid) != 36) return 0;
    v = strtoul(vid, &end, 16);
    return end == vid + 8 ? (int64_t)v : 0;
}

/*
 * One ListSecrets entry as p11kms_secret_list writes it. NamespaceKeyVersion
 * has no Secrets Manager field: it is left out rather than guessed.
 */
static void secret_item(pk_json_out *j, const pk_jv *e, const char *want_ns)
{
    const char *name = pk_jv_str(pk_jv_get(e, "Name"));
    const char *key = pk_jv_str(pk_jv_get(e, "KmsKeyId"));
    char ns[160];
    if (name == NULL) return;
    ns_of(name, ns, sizeof(ns));
    if (want_ns != NULL && strcmp(ns, want_ns) != 0) return;
    pk_jo_obj_begin(j);
    pk_jo_kstr(j, "SecretId", name);
    pk_jo_kstr(j, "Namespace", ns);
    pk_jo_kstr(j, "KeyId", key ? pk_remote_key_of_arn(key) : "");
    pk_jo_kint(j, "Version", version_of(e));
    json_time(j, "CreatedDate", pk_remote_epoch_ms(pk_jv_get(e, "CreatedDate")));
    json_time(j, "LastChangedDate", pk_remote_epoch_ms(pk_jv_get(e, "LastChangedDate")));
    pk_jo_obj_end(j);
}

pk_result pk_remote_secret_list(pk_remote *r, const char *ns, char **json)
{
    pk_buf out = {0};
    pk_json_out j;
    pk_jv *page = NULL;
    char *token = NULL;
    pk_result res = PK_OK;

    *json = NULL;
    pk_jo_init(&j, &out);
    pk_jo_arr_begin(&j);
    for (int pages = 0; pages < 100000 && pk_ok(res); pages++) {
        pk_remote_req q;
        const pk_jv *items, *next;
        pk_remote_begin(&q);
        pk_jo_kint(&q.j, "MaxResults", 100);
        if (token != NULL) pk_jo_kstr(&q.j, "NextToken", token);
        res = pk_remote_send(r, PK_REMOTE_SM, "ListSecrets", &q, &page);
        if (pk_failed(res)) break;
        items = pk_jv_get(page, "SecretList");
        for (size_t i = 0; i < pk_jv_size(items); i++) secret_item(&j, pk_jv_at(items, i), ns);
        next = pk_jv_get(page, "NextToken");
        free(token);
        token = NULL;
        if (pk_jv_str(next) != NULL && (token = strdup(pk_jv_str(next))) == NULL)
            res = pk_fail(P11KMS_ERR_NO_MEMORY, "out of memory"); /* not a short list */
        pk_json_free(page);
        page = NULL;
        if (token == NULL) break;
    }
    pk_jo_arr_end(&j);
    if (pk_ok(res)) res = pk_jo_result(&j);
    if (pk_ok(res)) res = pk_buf_cstr(&out);
    if (pk_ok(res)) {
        *json = (char *)out.data;
        out.data = NULL;
    }
    free(token);
    pk_buf_free(&out);
    return res;
}

pk_result pk_remote_connection_create(pk_remote *r, const char *name, const char *type, const char *comment,
                                      const char *ns, const char *key, const char *options_json)
{
    pk_remote_req q;
    pk_remote_begin(&q);
    pk_jo_kstr(&q.j, "Name", name);
    if (type != NULL) pk_jo_kstr(&q.j, "Type", type);
    if (comment != NULL) pk_jo_kstr(&q.j, "Comment", comment);
    if (ns != NULL) pk_jo_kstr(&q.j, "Namespace", ns);
    if (key != NULL) pk_jo_kstr(&q.j, "KeyId", key);
    pk_jo_key(&q.j, "Options");
    pk_jo_raw(&q.j, options_json ? options_json : "{}");
    return pk_remote_send_only(r, PK_REMOTE_P11KMS, "CreateConnection", &q);
}

pk_result pk_remote_connection_alter(pk_remote *r, const char *name, const char *set_json, const char *const *reset,
                                     size_t nreset, const char *comment)
{
    pk_remote_req q;
    pk_remote_begin(&q);
    pk_jo_kstr(&q.j, "Name", name);
    if (set_json != NULL) {
        pk_jo_key(&q.j, "Set");
        pk_jo_raw(&q.j, set_json);
    }
    if (nreset > 0) {
        pk_jo_key(&q.j, "Reset");
        pk_jo_arr_begin(&q.j);
        for (size_t i = 0; i < nreset; i++) pk_jo_str(&q.j, reset[i]);
        pk_jo_arr_end(&q.j);
    }
    if (comment != NULL) pk_jo_kstr(&q.j, "Comment", comment);
    return pk_remote_send_only(r, PK_REMOTE_P11KMS, "AlterConnection", &q);
}

pk_result pk_remote_connection_drop(pk_remote *r, const char *name)
{
    return pk_remote_call1(r, PK_REMOTE_P11KMS, "DropConnection", "Name", name, NULL);
}

/* DescribeConnection / ListConnections answer the library's own document: passed on as it came. */
pk_result pk_remote_connection_doc(pk_remote *r, const char *op, const char *field, const char *value, char **json)
{
    pk_remote_req q;
    pk_jv *resp = NULL;
    pk_result res;
    *json = NULL;
    pk_remote_begin(&q);
    if (value != NULL) pk_jo_kstr(&q.j, field, value);
    PK_GUARD(pk_remote_send(r, PK_REMOTE_P11KMS, op, &q, &resp));
    res = dump(resp, json);
    pk_json_free(resp);
    return res;
}

pk_result pk_remote_connection_show_create(pk_remote *r, const char *name, char **sql)
{
    pk_jv *resp = NULL;
    const char *s;
    *sql = NULL;
    PK_GUARD(pk_remote_call1(r, PK_REMOTE_P11KMS, "ShowCreateConnection", "Name", name, &resp));
    s = pk_jv_str(pk_jv_get(resp, "Statement"));
    *sql = s ? strdup(s) : NULL;
    pk_json_free(resp);
    PK_ENSURE(*sql != NULL, P11KMS_ERR_INTERNAL, "p11kmsd's ShowCreateConnection answer has no Statement");
    return PK_OK;
}

pk_result pk_remote_connection_resolve(pk_remote *r, const char *name, pk_remote_pair_fn fn, void *ctx)
{
    pk_jv *resp = NULL;
    const pk_jv *opts, *v;
    const char *k;
    void *it = NULL;
    pk_result res = PK_OK;
    PK_GUARD(pk_remote_call1(r, PK_REMOTE_P11KMS, "ResolveConnection", "Name", name, &resp));
    opts = pk_jv_get(resp, "Options");
    if (pk_jv_typeof(opts) != PK_JV_OBJECT)
        res = pk_fail(P11KMS_ERR_INTERNAL, "p11kmsd's ResolveConnection answer has no Options");
    while (pk_ok(res) && pk_jv_next(opts, &it, &k, &v))
        res = pk_jv_str(v) ? fn(ctx, k, pk_jv_str(v))
                           : pk_fail(P11KMS_ERR_INTERNAL, "p11kmsd's ResolveConnection option %s is not a string", k);
    pk_json_free(resp);
    return res;
}

pk_result pk_remote_render(pk_remote *r, const char *text, size_t len, pk_secbuf *out)
{
    pk_remote_req q;
    pk_jv *resp = NULL;
    const pk_jv *o;
    pk_result res;
    pk_remote_begin(&q);
    pk_jo_key(&q.j, "Template");
    pk_jo_strn(&q.j, text, len);
    PK_GUARD(pk_remote_send(r, PK_REMOTE_P11KMS, "Render", &q, &resp));
    o = pk_jv_get(resp, "Output");
    res = pk_jv_str(o) ? pk_secbuf_set(out, pk_jv_str(o), pk_jv_strlen(o))
                       : pk_fail(P11KMS_ERR_INTERNAL, "p11kmsd's Render answer has no Output");
    pk_json_free(resp);
    return res;
}
