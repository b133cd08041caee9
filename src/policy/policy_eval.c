/*
 * Statement matching and the decision (IAM policy evaluation logic, as
 * for a resource-based policy deciding alone):
 *   1. any matching Deny statement -> ExplicitlyDenied;
 *   2. otherwise any matching Allow statement -> Allowed;
 *   3. otherwise ImplicitlyDenied.
 * A statement matches when its Principal, Action and Resource elements
 * (or their Not* forms) match and all of its conditions hold.
 */
#include "config.h"

#include <string.h>
#include <strings.h>

#include "policy/policy_impl.h"

const char *pk_decision_name(pk_decision d)
{
    switch (d) {
    case PK_DECISION_ALLOWED: return "Allowed";
    case PK_DECISION_EXPLICIT_DENY: return "ExplicitlyDenied";
    case PK_DECISION_IMPLICIT_DENY: return "ImplicitlyDenied";
    default: return "ImplicitlyDenied";
    }
}

void pol_req_init(pol_req *r, const pk_policy_request *req)
{
    pol_arn parn;

    memset(r, 0, sizeof(*r));
    r->req = req;
    r->principal_len = strlen(req->principal);
    r->action_len = strlen(req->action);
    r->action_index = pol_action_index(req->action, r->action_len);
    r->resource = req->resource != NULL ? req->resource : "";
    r->resource_len = strlen(r->resource);
    r->resource_is_arn = pol_arn_split(r->resource, r->resource_len, &r->resource_arn);
    /* kms:CallerAccount is the account field of the caller's ARN. */
    if (pol_arn_split(req->principal, r->principal_len, &parn) && parn.len[4] > 0) {
        r->account = parn.part[4];
        r->account_len = parn.len[4];
    }
    r->now_ms = req->now_ms >= 0 ? req->now_ms - req->now_ms % 1000 : req->now_ms;
}

static bool action_matches(const pol_stmt *s, const pol_req *r)
{
    if (r->action_index >= 0) return (s->action_mask >> r->action_index) & 1u;
    for (size_t i = 0; i < s->nactions; i++) {
        if (pol_glob(s->actions[i], s->action_lens[i], r->req->action, r->action_len, true)) return true;
    }
    return false;
}

static bool principal_matches(const pol_stmt *s, const pol_req *r)
{
    if (s->principal_any) return true;
    for (size_t i = 0; i < s->nprincipals; i++) {
        if (strcmp(s->principals[i], r->req->principal) == 0) return true;
    }
    return false;
}

static bool resource_matches(const pol_stmt *s, const pol_req *r)
{
    for (size_t i = 0; i < s->nresources; i++) {
        const pol_resource *res = &s->resources[i];
        if (res->any) return true;
        if (!res->never && r->resource_is_arn && pol_arn_match(&res->arn, &r->resource_arn)) return true;
    }
    return false;
}

bool pol_stmt_targets(const pol_stmt *s, const pol_req *r)
{
    if (action_matches(s, r) == s->not_action) return false;
    if (principal_matches(s, r) == s->not_principal) return false;
    return resource_matches(s, r) != s->not_resource;
}

static const char *const derived_keys[] = {
    "kms:EncryptionContextKeys", "kms:CallerAccount", "aws:PrincipalArn", "aws:CurrentTime", "aws:EpochTime",
};

static pk_result check_request(const pk_policy_request *req)
{
    PK_ENSURE(req->principal != NULL && req->principal[0] != '\0', P11KMS_ERR_INVALID_ARGUMENT,
              "policy request: principal is required");
    PK_ENSURE(req->action != NULL && req->action[0] != '\0', P11KMS_ERR_INVALID_ARGUMENT,
              "policy request: action is required");
    PK_ENSURE(req->context_len == 0 || req->context != NULL, P11KMS_ERR_INVALID_ARGUMENT,
              "policy request: context is NULL");
    PK_ENSURE(req->extra_len == 0 || req->extra != NULL, P11KMS_ERR_INVALID_ARGUMENT,
              "policy request: extra is NULL");
    for (size_t i = 0; i < req->context_len; i++) {
        PK_ENSURE(req->context[i].key != NULL && req->context[i].value != NULL, P11KMS_ERR_INVALID_ARGUMENT,
                  "policy request: encryption context entry %zu is NULL", i);
    }
    for (size_t i = 0; i < req->extra_len; i++) {
        const char *k = req->extra[i].key;
        PK_ENSURE(k != NULL && req->extra[i].value != NULL, P11KMS_ERR_INVALID_ARGUMENT,
                  "policy request: request key %zu is NULL", i);
        PK_ENSURE(strncasecmp(k, "kms:EncryptionContext:", 22) != 0, P11KMS_ERR_INVALID_ARGUMENT,
                  "policy request: %s comes from the encryption context, not request keys", k);
        for (size_t j = 0; j < PK_ARRAY_LEN(derived_keys); j++) {
            PK_ENSURE(strcasecmp(k, derived_keys[j]) != 0, P11KMS_ERR_INVALID_ARGUMENT,
                      "policy request: %s is derived from the request and cannot be given", k);
        }
    }
    return PK_OK;
}

static void add_sid(const char **sids, size_t *n, bool *truncated, const char *label)
{
    if (*n < PK_POLICY_MAX_SIDS) {
        sids[(*n)++] = label;
    } else {
        *truncated = true;
    }
}

pk_result pk_policy_eval(const pk_policy *p, const pk_policy_request *req, pk_policy_result *out)
{
    const char *allow[PK_POLICY_MAX_SIDS];
    size_t nallow = 0;
    bool allow_trunc = false;
    pol_req r;

    PK_ENSURE(p != NULL && req != NULL && out != NULL, P11KMS_ERR_INVALID_ARGUMENT, "policy eval: NULL argument");
    PK_GUARD(check_request(req));
    memset(out, 0, sizeof(*out));
    pol_req_init(&r, req);
    for (size_t i = 0; i < p->nstmts; i++) {
        const pol_stmt *s = &p->stmts[i];
        bool holds = true;
        if (!pol_stmt_targets(s, &r)) continue;
        for (size_t k = 0; k < s->nconds && holds; k++) holds = pol_cond_eval(&s->conds[k], &r);
        if (!holds) continue;
        if (s->deny) {
            add_sid(out->sids, &out->nsids, &out->sids_truncated, s->label);
        } else {
            add_sid(allow, &nallow, &allow_trunc, s->label);
        }
    }
    if (out->nsids > 0 || out->sids_truncated) {
        out->decision = PK_DECISION_EXPLICIT_DENY;
    } else if (nallow > 0) {
        out->decision = PK_DECISION_ALLOWED;
        memcpy(out->sids, allow, nallow * sizeof(allow[0]));
        out->nsids = nallow;
        out->sids_truncated = allow_trunc;
    } else {
        out->decision = PK_DECISION_IMPLICIT_DENY;
    }
    return PK_OK;
}
