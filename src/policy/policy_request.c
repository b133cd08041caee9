/*
 * Requests written as JSON: the CLI's --batch lines and the test vectors
 * share this reader, so both mean the same thing by the same fields.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "json/json_in.h"
#include "policy/policy_impl.h"

static const char *const request_fields[] = {
    "principal", "action", "resource", "context", "request_context", "time",
};

static bool listed(const char *key, const char *const *list, size_t n)
{
    for (size_t i = 0; list != NULL && (n == SIZE_MAX ? list[i] != NULL : i < n); i++) {
        if (strcmp(key, list[i]) == 0) return true;
    }
    return false;
}

static pk_result str_field(const pk_jv *obj, const char *name, bool nullable, const char **out)
{
    const pk_jv *v = pk_jv_get(obj, name);
    if (v == NULL) return PK_OK;
    if (nullable && pk_jv_typeof(v) == PK_JV_NULL) {
        *out = NULL;
        return PK_OK;
    }
    PK_ENSURE(pk_jv_typeof(v) == PK_JV_STRING, P11KMS_ERR_INVALID_ARGUMENT, "%s: must be a string", name);
    *out = pk_jv_str(v);
    return PK_OK;
}

static pk_result time_field(const pk_jv *obj, int64_t *now_ms)
{
    const pk_jv *v = pk_jv_get(obj, "time");
    const char *s;

    if (v == NULL) return PK_OK;
    if (pk_jv_typeof(v) == PK_JV_INTEGER) {
        *now_ms = pk_jv_int(v) * 1000;
        return PK_OK;
    }
    s = pk_jv_str(v);
    PK_ENSURE(s != NULL && pol_parse_date(s, pk_jv_strlen(v), now_ms), P11KMS_ERR_INVALID_ARGUMENT,
              "time: must be an ISO 8601 date or epoch seconds");
    return PK_OK;
}

/* Number of kv entries an object of strings (or arrays of strings) yields. */
static pk_result count_kv(const pk_jv *obj, const char *name, bool arrays, size_t *n)
{
    void *it = NULL;
    const char *key;
    const pk_jv *val;

    if (obj == NULL) return PK_OK;
    PK_ENSURE(pk_jv_typeof(obj) == PK_JV_OBJECT, P11KMS_ERR_INVALID_ARGUMENT, "%s: must be an object", name);
    while (pk_jv_next(obj, &it, &key, &val)) {
        if (pk_jv_typeof(val) == PK_JV_STRING) {
            (*n)++;
            continue;
        }
        PK_ENSURE(arrays && pk_jv_typeof(val) == PK_JV_ARRAY, P11KMS_ERR_INVALID_ARGUMENT,
                  "%s.%s: must be a string%s", name, key, arrays ? " or an array of strings" : "");
        for (size_t i = 0; i < pk_jv_size(val); i++) {
            PK_ENSURE(pk_jv_typeof(pk_jv_at(val, i)) == PK_JV_STRING, P11KMS_ERR_INVALID_ARGUMENT,
                      "%s.%s[%zu]: must be a string", name, key, i);
            (*n)++;
        }
    }
    return PK_OK;
}

static void fill_kv(const pk_jv *obj, pk_policy_kv *kv, size_t *k)
{
    void *it = NULL;
    const char *key;
    const pk_jv *val;

    while (obj != NULL && pk_jv_next(obj, &it, &key, &val)) {
        if (pk_jv_typeof(val) == PK_JV_STRING) {
            kv[*k].key = key;
            kv[(*k)++].value = pk_jv_str(val);
            continue;
        }
        for (size_t i = 0; i < pk_jv_size(val); i++) {
            kv[*k].key = key;
            kv[(*k)++].value = pk_jv_str(pk_jv_at(val, i));
        }
    }
}

pk_result pk_policy_request_from_json(const pk_jv *obj, const char *const *ignore, pk_policy_request_doc *doc)
{
    void *it = NULL;
    const char *key;
    const pk_jv *val, *ctx, *extra;
    size_t nctx = 0, nextra = 0, k = 0;

    PK_ENSURE(obj != NULL && pk_jv_typeof(obj) == PK_JV_OBJECT, P11KMS_ERR_INVALID_ARGUMENT,
              "a request must be a JSON object");
    while (pk_jv_next(obj, &it, &key, &val)) {
        PK_ENSURE(listed(key, request_fields, PK_ARRAY_LEN(request_fields)) || listed(key, ignore, SIZE_MAX),
                  P11KMS_ERR_INVALID_ARGUMENT, "%s: unknown request field", key);
    }
    PK_GUARD(str_field(obj, "principal", false, &doc->req.principal));
    PK_GUARD(str_field(obj, "action", false, &doc->req.action));
    PK_GUARD(str_field(obj, "resource", true, &doc->req.resource));
    PK_GUARD(time_field(obj, &doc->req.now_ms));
    ctx = pk_jv_get(obj, "context");
    extra = pk_jv_get(obj, "request_context");
    PK_GUARD(count_kv(ctx, "context", false, &nctx));
    PK_GUARD(count_kv(extra, "request_context", true, &nextra));
    if (ctx == NULL && extra == NULL) return PK_OK;
    free(doc->kv);
    doc->kv = calloc(nctx + nextra + 1, sizeof(*doc->kv));
    PK_ENSURE_ALLOC(doc->kv);
    fill_kv(ctx, doc->kv, &k);
    fill_kv(extra, doc->kv, &k);
    doc->req.context = doc->kv;
    doc->req.context_len = nctx;
    doc->req.extra = doc->kv + nctx;
    doc->req.extra_len = nextra;
    return PK_OK;
}

pk_result pk_policy_request_parse(const char *text, size_t len, const char *const *ignore,
                                  pk_policy_request_doc *doc)
{
    pk_jv *json = NULL;

    PK_GUARD(pk_json_parse(text, len, P11KMS_ERR_INVALID_ARGUMENT, &json));
    pk_json_free(doc->json);
    doc->json = json;
    return pk_policy_request_from_json(json, ignore, doc);
}

void pk_policy_request_doc_free(pk_policy_request_doc *doc)
{
    if (doc == NULL) return;
    free(doc->kv);
    pk_json_free(doc->json);
    memset(doc, 0, sizeof(*doc));
}
