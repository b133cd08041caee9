/*
 * Offline key-policy evaluation and lint (p11kms policy eval | lint):
 * no handle, token or store. The caller passes the request time, so the
 * result depends on nothing but the arguments.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "policy/policy.h"
#include "core/op.h"
#include "util/json_out.h"

struct p11kms_policy {
    pk_policy *p;
};

P11KMS_API p11kms_rc p11kms_policy_compile(const char *json, size_t len, p11kms_policy **out)
{
    pk_result r = PK_OK;
    p11kms_policy *pol = NULL;

    pk_error_clear();
    *out = NULL;
    PK_CHECK(json != NULL, P11KMS_ERR_INVALID_ARGUMENT, "no policy document");
    pol = calloc(1, sizeof(*pol));
    PK_CHECK_ALLOC(pol);
    PK_TRY(pk_policy_compile(json, len, &pol->p));
    *out = pol;
    pol = NULL;
out:
    free(pol);
    return r.code;
}

P11KMS_API void p11kms_policy_free(p11kms_policy *pol)
{
    if (pol == NULL) return;
    pk_policy_free(pol->p);
    free(pol);
}

/* Every size p11kms_policy_request has had; append when a field is added. */
static const size_t request_sizes[] = {sizeof(p11kms_policy_request)};

/* The public pairs as the engine's pairs (copied, not punned). */
static pk_result kv_copy(const p11kms_kv *in, size_t n, pk_policy_kv **out)
{
    *out = NULL;
    if (n == 0) return PK_OK;
    if (in == NULL) return pk_fail(P11KMS_ERR_INVALID_ARGUMENT, "policy request: pairs missing");
    *out = calloc(n, sizeof(**out));
    if (*out == NULL) return pk_fail(P11KMS_ERR_NO_MEMORY, "out of memory");
    for (size_t i = 0; i < n; i++) {
        if (in[i].key == NULL || in[i].value == NULL)
            return pk_fail(P11KMS_ERR_INVALID_ARGUMENT, "policy request: pair %zu has no key or value", i);
        (*out)[i].key = in[i].key;
        (*out)[i].value = in[i].value;
    }
    return PK_OK;
}

static pk_result result_json(const pk_policy_result *res, char **out)
{
    pk_buf b = {0};
    pk_json_out j;
    pk_jo_init(&j, &b);
    pk_jo_obj_begin(&j);
    pk_jo_kstr(&j, "decision", pk_decision_name(res->decision));
    pk_jo_key(&j, "matched");
    pk_jo_arr_begin(&j);
    for (size_t i = 0; i < res->nsids; i++) pk_jo_str(&j, res->sids[i]);
    pk_jo_arr_end(&j);
    if (res->sids_truncated) pk_jo_kbool(&j, "truncated", true);
    pk_jo_obj_end(&j);
    return pk_jo_take(&j, out);
}

/* Copy a caller's request by its struct_size (the spec-struct rule of the header). */
static pk_result request_copy(const p11kms_policy_request *in, p11kms_policy_request *full)
{
    size_t n;
    memcpy(&n, in, sizeof(n));
    for (size_t i = 0; i < sizeof(request_sizes) / sizeof(request_sizes[0]); i++) {
        if (n == request_sizes[i]) {
            memset(full, 0, sizeof(*full));
            memcpy(full, in, n);
            return PK_OK;
        }
    }
    return pk_fail(P11KMS_ERR_INVALID_ARGUMENT,
                   "policy request: struct_size %zu is not one this library knows (set it to sizeof)", n);
}

P11KMS_API p11kms_rc p11kms_policy_eval(const p11kms_policy *pol, const p11kms_policy_request *req,
                                        const char *request_json, size_t request_json_len, char **result)
{
    pk_result r = PK_OK;
    p11kms_policy_request q;
    pk_policy_kv *ctx = NULL, *extra = NULL;
    pk_policy_request_doc doc = {0};
    pk_policy_result res;

    pk_error_clear();
    *result = NULL;
    PK_CHECK(pol != NULL && req != NULL, P11KMS_ERR_INVALID_ARGUMENT, "policy eval: no policy or request");
    PK_TRY(request_copy(req, &q));
    PK_TRY(kv_copy(q.context, q.ncontext, &ctx));
    PK_TRY(kv_copy(q.request_context, q.nrequest_context, &extra));
    doc.req.principal = q.principal;
    doc.req.action = q.action;
    doc.req.resource = q.resource;
    doc.req.context = ctx;
    doc.req.context_len = q.ncontext;
    doc.req.extra = extra;
    doc.req.extra_len = q.nrequest_context;
    doc.req.now_ms = q.time_ms;
    /* A JSON request (one --batch line) overrides the fields it names. */
    if (request_json != NULL) PK_TRY(pk_policy_request_parse(request_json, request_json_len, NULL, &doc));
    PK_CHECK(doc.req.principal != NULL && doc.req.action != NULL, P11KMS_ERR_INVALID_ARGUMENT,
             "principal and action are required");
    PK_TRY(pk_policy_eval(pol->p, &doc.req, &res));
    PK_TRY(result_json(&res, result));
out:
    pk_policy_request_doc_free(&doc);
    free(ctx);
    free(extra);
    return r.code;
}

P11KMS_API p11kms_rc p11kms_policy_lint(const p11kms_policy *pol, char **findings)
{
    pk_result r = PK_OK;
    pk_lint_report rep = {0};
    pk_buf b = {0};
    pk_json_out j;

    pk_error_clear();
    *findings = NULL;
    PK_CHECK(pol != NULL, P11KMS_ERR_INVALID_ARGUMENT, "policy lint: no policy");
    PK_TRY(pk_policy_lint(pol->p, &rep));
    pk_jo_init(&j, &b);
    pk_jo_arr_begin(&j);
    for (size_t i = 0; i < rep.n; i++) {
        const pk_lint_finding *f = &rep.items[i];
        pk_jo_obj_begin(&j);
        pk_jo_kstr(&j, "kind", pk_lint_kind_name(f->kind));
        pk_jo_key(&j, "statement");
        if (f->statement >= 0)
            pk_jo_int(&j, f->statement);
        else
            pk_jo_null(&j);
        pk_jo_kstr(&j, "sid", f->sid);
        pk_jo_kstr(&j, "message", f->message);
        pk_jo_kbool(&j, "error", pk_lint_kind_is_error(f->kind));
        pk_jo_obj_end(&j);
    }
    pk_jo_arr_end(&j);
    PK_TRY(pk_jo_take(&j, findings));
out:
    pk_lint_report_free(&rep);
    return r.code;
}

P11KMS_API p11kms_rc p11kms_policy_parse_time(const char *s, int64_t *ms)
{
    pk_error_clear();
    *ms = 0;
    if (s == NULL || !pk_policy_parse_time(s, ms))
        return pk_fail(P11KMS_ERR_INVALID_ARGUMENT, "'%s' is not an ISO 8601 date or epoch seconds", s ? s : "")
            .code;
    return P11KMS_OK;
}
