/* secretsmanager.ListSecrets: metadata only (p11kms_secret_list), sorted by Name, name-prefix filters, paging. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/sm_impl.h"

#define MAX_FILTER_VALUES 10

typedef struct filters {
    const char *prefix[MAX_FILTER_VALUES];
    size_t n;
} filters;

static int by_id(const void *a, const void *b)
{
    const char *x = pk_jv_str(pk_jv_get(*(const pk_jv *const *)a, "SecretId"));
    const char *y = pk_jv_str(pk_jv_get(*(const pk_jv *const *)b, "SecretId"));
    return strcmp(x ? x : "", y ? y : "");
}

/* Filters: [{"Key":"name","Values":[PREFIX,...]}]; other keys are refused. */
static bool read_filters(op_ctx *o, filters *f)
{
    const pk_jv *a = pk_jv_get(o->in, "Filters");
    f->n = 0;
    if (a == NULL || pk_jv_typeof(a) == PK_JV_NULL) return true;
    if (pk_jv_typeof(a) != PK_JV_ARRAY) {
        k_fail(o, 400, "InvalidParameterException", "Filters must be a list");
        return false;
    }
    for (size_t i = 0; i < pk_jv_size(a); i++) {
        const pk_jv *e = pk_jv_at(a, i), *vals = pk_jv_get(e, "Values");
        const char *key = pk_jv_str(pk_jv_get(e, "Key"));
        if (key == NULL || strcmp(key, "name") != 0) {
            k_fail(o, 400, "InvalidParameterException", "p11kmsd supports only the name filter");
            return false;
        }
        if (vals == NULL || pk_jv_typeof(vals) != PK_JV_ARRAY) {
            k_fail(o, 400, "InvalidParameterException", "a filter needs a list of Values");
            return false;
        }
        for (size_t v = 0; v < pk_jv_size(vals); v++) {
            const char *s = pk_jv_str(pk_jv_at(vals, v));
            if (s == NULL || f->n == MAX_FILTER_VALUES) {
                k_fail(o, 400, "InvalidParameterException", "filter values are 1 to %d strings", MAX_FILTER_VALUES);
                return false;
            }
            f->prefix[f->n++] = s;
        }
    }
    return true;
}

static bool matches(const filters *f, const char *name)
{
    if (f->n == 0) return true;
    for (size_t i = 0; i < f->n; i++)
        if (strncmp(name, f->prefix[i], strlen(f->prefix[i])) == 0) return true;
    return false;
}

static void out_entry(op_ctx *o, const pk_jv *e, const char *name)
{
    char vid[37];
    int64_t created = k_epoch_of(pk_jv_str(pk_jv_get(e, "CreatedDate")));
    uint32_t version = (uint32_t)pk_jv_int(pk_jv_get(e, "Version"));
    const char *key = pk_jv_str(pk_jv_get(e, "KeyId"));
    pk_jo_obj_begin(&o->j);
    sm_out_meta(o, name, key ? key : "", version, created, k_epoch_of(pk_jv_str(pk_jv_get(e, "LastChangedDate"))));
    sm_version_id(version, created, vid);
    sm_out_stages(o, "SecretVersionsToStages", vid);
    pk_jo_obj_end(&o->j);
}

/* Sorted, filtered entries from after (NextToken: the last Name returned), at most max. */
static void out_page(op_ctx *o, const pk_jv **v, size_t n, const filters *f, const char *after, long max)
{
    long shown = 0;
    const char *last = NULL;
    bool more = false;
    pk_jo_key(&o->j, "SecretList");
    pk_jo_arr_begin(&o->j);
    for (size_t i = 0; i < n && !more; i++) {
        const char *name = pk_jv_str(pk_jv_get(v[i], "SecretId"));
        if (name == NULL || !matches(f, name) || (after != NULL && strcmp(name, after) <= 0)) continue;
        if (shown == max) {
            more = true;
            break;
        }
        out_entry(o, v[i], name);
        last = name;
        shown++;
    }
    pk_jo_arr_end(&o->j);
    if (more) pk_jo_kstr(&o->j, "NextToken", last);
}

void sm_list_secrets(op_ctx *o)
{
    long max = 100;
    const char *after;
    char *json = NULL;
    pk_jv *doc = NULL;
    const pk_jv **v = NULL;
    size_t n;
    filters f;
    p11kms_rc rc;
    const pk_jv *mr = pk_jv_get(o->in, "MaxResults");
    if (mr != NULL && (pk_jv_typeof(mr) != PK_JV_INTEGER || pk_jv_int(mr) < 1 || pk_jv_int(mr) > 100)) {
        k_fail(o, 400, "InvalidParameterException", "MaxResults must be an integer from 1 to 100");
        return;
    }
    if (mr != NULL) max = (long)pk_jv_int(mr);
    after = sm_str(o, "NextToken", false, 4096);
    if (o->done || !read_filters(o, &f)) return;
    rc = p11kms_secret_list(o->k->h, o->caller, NULL, &json);
    if (rc != P11KMS_OK) {
        sm_fail_rc(o, rc);
        return;
    }
    if (pk_failed(pk_json_parse(json, strlen(json), P11KMS_ERR_INTERNAL, &doc)) || pk_jv_typeof(doc) != PK_JV_ARRAY) {
        k_fail(o, 500, "InternalServiceError", "cannot read the secret list");
    } else {
        n = pk_jv_size(doc);
        v = calloc(n + 1, sizeof(*v));
        if (v == NULL) {
            k_fail(o, 500, "InternalServiceError", "out of memory");
        } else {
            for (size_t i = 0; i < n; i++) v[i] = pk_jv_at(doc, i);
            qsort(v, n, sizeof(*v), by_id);
            out_page(o, v, n, &f, after, max);
        }
    }
    free(v);
    pk_json_free(doc);
    p11kms_free(json);
}
