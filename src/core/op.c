/* Callers, returned buffers, authorisation and the end of every operation. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit/audit.h"
#include "core/op.h"
#include "crypto/wipe.h"

#define PRINCIPAL_MAX 512

P11KMS_API p11kms_rc p11kms_caller_new(const char *principal_arn, p11kms_caller **out)
{
    p11kms_caller *c;
    pk_error_clear();
    *out = NULL;
    if (principal_arn == NULL || *principal_arn == '\0')
        return pk_fail(P11KMS_ERR_INVALID_ARGUMENT, "no principal: every operation needs the caller's ARN").code;
    if (strlen(principal_arn) > PRINCIPAL_MAX)
        return pk_fail(P11KMS_ERR_INVALID_ARGUMENT, "principal is longer than %d bytes", PRINCIPAL_MAX).code;
    if (!pk_principal_arn_valid(principal_arn))
        return pk_fail(P11KMS_ERR_INVALID_ARGUMENT,
                       "principal must be an IAM-style ARN (arn:aws:iam::ACCOUNT:...), e.g. "
                       "arn:aws:iam::111122223333:role/flink-operator")
            .code;
    c = calloc(1, sizeof(*c));
    if (c == NULL || (c->principal = strdup(principal_arn)) == NULL) {
        free(c);
        return pk_fail(P11KMS_ERR_NO_MEMORY, "out of memory").code;
    }
    *out = c;
    return P11KMS_OK;
}

P11KMS_API p11kms_rc p11kms_caller_set_source_ip(p11kms_caller *c, const char *ip)
{
    char *copy = ip ? strdup(ip) : NULL;
    pk_error_clear();
    if (ip != NULL && copy == NULL) return pk_fail(P11KMS_ERR_NO_MEMORY, "out of memory").code;
    free(c->source_ip);
    c->source_ip = copy;
    return P11KMS_OK;
}

#define AUTH_ID_MAX 512

const char *pk_auth_method_name(p11kms_auth_method m)
{
    switch (m) {
    case P11KMS_AUTH_PEER_UID: return "peer-uid";
    case P11KMS_AUTH_SIGV4: return "sigv4";
    case P11KMS_AUTH_CERTIFICATE: return "certificate";
    case P11KMS_AUTH_NONE:
    default: return NULL;
    }
}

static pk_result dup_opt(const char *s, const char *what, char **out)
{
    *out = NULL;
    if (s == NULL) return PK_OK;
    PK_ENSURE(strlen(s) <= AUTH_ID_MAX, P11KMS_ERR_INVALID_ARGUMENT, "%s is longer than %d bytes", what, AUTH_ID_MAX);
    *out = strdup(s);
    PK_ENSURE_ALLOC(*out);
    return PK_OK;
}

P11KMS_API p11kms_rc p11kms_caller_set_auth(p11kms_caller *c, p11kms_auth_method method, const char *identity,
                                            const char *request_id)
{
    char *id = NULL, *rid = NULL;
    pk_result r;
    pk_error_clear();
    if (c == NULL) return pk_fail(P11KMS_ERR_INVALID_ARGUMENT, "no caller").code;
    if (method != P11KMS_AUTH_NONE && pk_auth_method_name(method) == NULL)
        return pk_fail(P11KMS_ERR_INVALID_ARGUMENT, "unknown authentication method %d", (int)method).code;
    r = dup_opt(identity, "authenticated identity", &id);
    if (pk_ok(r)) r = dup_opt(request_id, "request id", &rid);
    if (pk_failed(r)) {
        free(id);
        return r.code;
    }
    free(c->auth_id);
    free(c->auth_request_id);
    c->auth = method;
    c->auth_id = id;
    c->auth_request_id = rid;
    return P11KMS_OK;
}

P11KMS_API const char *p11kms_caller_principal(const p11kms_caller *c)
{
    return c != NULL && c->principal != NULL ? c->principal : "";
}

P11KMS_API void p11kms_caller_free(p11kms_caller *c)
{
    if (c == NULL) return;
    free(c->principal);
    free(c->source_ip);
    free(c->auth_id);
    free(c->auth_request_id);
    free(c);
}

P11KMS_API const uint8_t *p11kms_buf_data(const p11kms_buf *b) { return b->data; }
P11KMS_API size_t p11kms_buf_len(const p11kms_buf *b) { return b->len; }

P11KMS_API void p11kms_buf_free(p11kms_buf *b)
{
    if (b == NULL) return;
    if (b->secret) {
        pk_secmem_free(b->data); /* wipes */
    } else {
        pk_wipe(b->data, b->len);
        free(b->data);
    }
    free(b);
}

P11KMS_API void p11kms_free(char *s)
{
    /* The header promises every returned buffer is wiped: ids and JSON can name what callers keep private. */
    if (s == NULL) return;
    pk_wipe(s, strlen(s));
    free(s);
}

pk_result pk_buf_out(pk_buf *src, p11kms_buf **out)
{
    p11kms_buf *b = calloc(1, sizeof(*b));
    PK_ENSURE_ALLOC(b);
    /* Hand the caller the buffer itself: no second allocation or copy. */
    b->data = src->data;
    b->len = src->len;
    src->data = NULL;
    src->len = src->cap = 0;
    *out = b;
    return PK_OK;
}

pk_result pk_secbuf_out(pk_secbuf *src, p11kms_buf **out)
{
    p11kms_buf *b = calloc(1, sizeof(*b));
    if (b == NULL) {
        pk_secbuf_free(src);
        return pk_fail(P11KMS_ERR_NO_MEMORY, "out of memory");
    }
    b->data = src->data;
    b->len = src->len;
    b->secret = true;
    src->data = NULL;
    src->len = src->cap = 0;
    *out = b;
    return PK_OK;
}

pk_result pk_str_out(pk_buf *json, char **out)
{
    PK_GUARD(pk_buf_cstr(json));
    *out = (char *)json->data;
    json->data = NULL;
    json->len = json->cap = 0;
    return PK_OK;
}

pk_result pk_op_begin(pk_op *op, p11kms *h, const p11kms_caller *c, const char *action)
{
    pk_error_clear();
    memset(op, 0, sizeof(*op));
    op->h = h;
    op->caller = c;
    op->action = action;
    PK_ENSURE(h != NULL, P11KMS_ERR_INVALID_ARGUMENT, "no p11kms handle");
    PK_ENSURE(c != NULL && c->principal != NULL, P11KMS_ERR_INVALID_ARGUMENT,
              "no principal: every operation needs the caller's ARN");
    return PK_OK;
}

void pk_op_set_key(pk_op *op, const pk_key_ref *ref)
{
    memcpy(op->key_id, ref->key_id, sizeof(op->key_id));
    memcpy(op->alias, ref->alias, sizeof(op->alias));
}

pk_result pk_op_authorize(pk_op *op, const pk_key *k, const char *action)
{
    pk_policy_kv extra[2];
    size_t nextra = 0;
    pk_policy_request req;
    pk_policy_result res;
    char sids[256] = "";

    if (op->alias[0] != '\0') extra[nextra++] = (pk_policy_kv){"kms:RequestAlias", op->alias};
    if (op->caller->source_ip != NULL) extra[nextra++] = (pk_policy_kv){"aws:SourceIp", op->caller->source_ip};
    memset(&req, 0, sizeof(req));
    req.principal = op->caller->principal;
    req.action = action;
    req.resource = k->arn;
    req.context = op->ctx;
    req.context_len = op->nctx;
    req.extra = extra;
    req.extra_len = nextra;
    req.now_ms = pk_clock(op->h);
    PK_GUARD(pk_policy_eval(k->policy, &req, &res));
    op->decided = true;
    op->decision = res.decision;
    op->nsids = res.nsids;
    for (size_t i = 0; i < res.nsids; i++) {
        snprintf(op->sid_text[i], sizeof(op->sid_text[i]), "%s", res.sids[i]);
        op->sids[i] = op->sid_text[i];
    }
    if (res.decision == PK_DECISION_ALLOWED) return PK_OK;
    for (size_t i = 0; i < res.nsids; i++) {
        size_t used = strlen(sids);
        snprintf(sids + used, sizeof(sids) - used, "%s%s", i ? ", " : " by ", res.sids[i]);
    }
    return pk_fail(P11KMS_ERR_ACCESS_DENIED, "%s is not authorized to perform %s on key %s (%s%s)",
                   op->caller->principal, action, k->id, pk_decision_name(res.decision), sids);
}

pk_result pk_op_authorize_service_admin(pk_op *op, const char *action)
{
    pk_key_ref ref;
    pk_key *k = NULL;
    pk_result r;
    PK_GUARD(pk_key_resolve(&op->h->env, PK_SERVICE_ALIAS, false, &ref));
    pk_op_set_key(op, &ref);
    PK_GUARD(pk_key_get(&op->h->env, ref.key_id, &k));
    r = k->state == PK_KEY_DELETED ? pk_fail(P11KMS_ERR_NOT_FOUND, "key %s was deleted", ref.key_id)
                                   : pk_op_authorize(op, k, action);
    pk_key_release(&op->h->env, k);
    return r;
}

pk_result pk_op_context(pk_op *op, const p11kms_kv *ctx, size_t n, pk_buf *aad)
{
    pk_result r = pk_context_encode(pk_kv_of(ctx), n, aad);
    if (pk_failed(r)) {
        op->ctx_invalid = true;
        return r;
    }
    op->ctx = pk_kv_of(ctx);
    op->nctx = n;
    return PK_OK;
}

pk_result pk_key_usable(const pk_key *k)
{
    switch (k->state) {
    case PK_KEY_ENABLED:
        return PK_OK;
    case PK_KEY_DISABLED:
        return pk_fail(P11KMS_ERR_DISABLED, "key %s is disabled", k->id);
    case PK_KEY_PENDING_DELETION:
        return pk_fail(P11KMS_ERR_INVALID_STATE, "key %s is pending deletion", k->id);
    case PK_KEY_DELETED:
    default:
        return pk_fail(P11KMS_ERR_NOT_FOUND, "key %s was deleted", k->id);
    }
}

void pk_op_output_buf(pk_op *op, p11kms_buf **out)
{
    for (size_t i = 0; i < PK_ARRAY_LEN(op->out_bufs); i++) {
        if (op->out_bufs[i] == NULL) {
            op->out_bufs[i] = out;
            return;
        }
    }
}

void pk_op_output_str(pk_op *op, char **out)
{
    for (size_t i = 0; i < PK_ARRAY_LEN(op->out_strs); i++) {
        if (op->out_strs[i] == NULL) {
            op->out_strs[i] = out;
            return;
        }
    }
}

/* The mutating operation this thread is running, for pk_op_precommit. */
static __thread pk_op *tl_mutating;

pk_result pk_op_preflight(pk_op *op)
{
    if (op->h->audit == NULL) return PK_OK;
    PK_GUARD(pk_audit_check(op->h->audit));
    op->mutating = true;
    tl_mutating = op;
    return PK_OK;
}

static pk_result op_record(pk_op *op, pk_result r, bool pending);

pk_result pk_op_precommit(p11kms *h)
{
    pk_op *op = tl_mutating;
    pk_result r;
    if (op == NULL || op->h != h || !op->mutating || op->recorded) return PK_OK;
    r = op_record(op, PK_OK, true);
    if (pk_ok(r)) op->recorded = true;
    return r;
}

static pk_audit_decision audit_decision(const pk_op *op)
{
    if (!op->decided) return PK_AUDIT_DECISION_NA;
    switch (op->decision) {
    case PK_DECISION_ALLOWED: return PK_AUDIT_DECISION_ALLOWED;
    case PK_DECISION_EXPLICIT_DENY: return PK_AUDIT_DECISION_EXPLICIT_DENY;
    case PK_DECISION_IMPLICIT_DENY:
    default: return PK_AUDIT_DECISION_IMPLICIT_DENY;
    }
}

static void withhold(pk_op *op)
{
    for (size_t i = 0; i < PK_ARRAY_LEN(op->out_bufs); i++) {
        if (op->out_bufs[i] != NULL) {
            p11kms_buf_free(*op->out_bufs[i]);
            *op->out_bufs[i] = NULL;
        }
    }
    for (size_t i = 0; i < PK_ARRAY_LEN(op->out_strs); i++) {
        if (op->out_strs[i] != NULL) {
            free(*op->out_strs[i]);
            *op->out_strs[i] = NULL;
        }
    }
}

/* Build and write the operation's record with result r (or "pending"); the outcome reuses the pending record's id. */
static pk_result op_record(pk_op *op, pk_result r, bool pending)
{
    pk_audit_event ev;
    pk_audit_kv details[5 + PK_OP_EXTRA_MAX];
    char version[16], recovered[64];
    unsigned long fault;
    bool reinit;

    memset(&ev, 0, sizeof(ev));
    ev.principal = op->caller ? op->caller->principal : NULL;
    ev.action = op->action;
    ev.key_id = op->key_id[0] ? op->key_id : NULL;
    if (op->key_version) {
        snprintf(version, sizeof(version), "%u", op->key_version);
        ev.key_version = version;
    }
    ev.alias = op->alias[0] ? op->alias : NULL;
    ev.secret_id = op->secret_id;
    ev.connection = op->connection;
    /* Context pairs are public by design (AWS logs them too). */
    ev.context = op->ctx;
    ev.n_context = op->nctx;
    ev.decision = audit_decision(op);
    ev.sids = op->sids;
    ev.n_sids = op->nsids;
    ev.result = r.code;
    ev.pending = pending;
    if (op->recorded) ev.request_id = op->request_id;
    ev.details = details;
    if (op->src_key_id[0]) details[ev.n_details++] = (pk_audit_kv){"source_key_id", op->src_key_id};
    if (op->ctx_invalid) details[ev.n_details++] = (pk_audit_kv){"context_invalid", "true"};
    if (op->bypass != NULL) details[ev.n_details++] = (pk_audit_kv){"bypassed", op->bypass};
    if (op->access_key_id != NULL) details[ev.n_details++] = (pk_audit_kv){"access_key_id", op->access_key_id};
    for (size_t i = 0; i < op->nextra && i < PK_OP_EXTRA_MAX; i++) details[ev.n_details++] = op->extra[i];
    if (pk_p11_take_recovery(&fault, &reinit)) {
        /* The token failed and the connection was rebuilt (or that was tried) while this operation ran (issue 17). */
        snprintf(recovered, sizeof(recovered), "%s%s", pk_p11_rv_name(fault), reinit ? "; module re-initialised" : "");
        details[ev.n_details++] = (pk_audit_kv){"token_reconnect", recovered};
    }
    if (op->caller != NULL) {
        ev.auth_method = pk_auth_method_name(op->caller->auth);
        ev.auth_id = op->caller->auth_id;
        ev.auth_request_id = op->caller->auth_request_id;
    }
    return pk_audit_write(op->h->audit, &ev, op->request_id);
}

p11kms_rc pk_op_finish(pk_op *op, pk_result r)
{
    pk_result ar;
    char detail[512];
    char origin[96];

    if (tl_mutating == op) tl_mutating = NULL;
    if (op->h == NULL || op->h->audit == NULL) return pk_error_report(r.code);
    /* Keep the operation's own error detail and origin: they are what the caller must see. */
    snprintf(detail, sizeof(detail), "%s", p11kms_last_error());
    snprintf(origin, sizeof(origin), "%s", pk_error_origin());
    ar = op_record(op, r, false);
    if (pk_failed(ar)) {
        withhold(op);
        return pk_error_report(ar.code);
    }
    if (pk_failed(r)) {
        pk_fail(r.code, "%s", detail);
        pk_error_set_origin(origin);
    }
    return pk_error_report(r.code);
}

pk_result pk_spec_copy(void *dst, size_t dst_size, const void *src, const size_t *known, size_t nknown,
                       const char *what)
{
    size_t n;
    memcpy(&n, src, sizeof(n));
    for (size_t i = 0; i < nknown; i++) {
        if (n == known[i] && n <= dst_size && n >= sizeof(n)) {
            memset(dst, 0, dst_size);
            memcpy(dst, src, n);
            return PK_OK;
        }
    }
    return pk_fail(P11KMS_ERR_INVALID_ARGUMENT, "%s: struct_size %zu is not one this library knows (set it to sizeof)",
                   what, n);
}

pk_result pk_jo_take(pk_json_out *j, char **out)
{
    pk_result r = pk_jo_result(j);
    if (pk_ok(r)) r = pk_buf_append(j->buf, "", 1);
    if (pk_failed(r)) {
        pk_buf_free(j->buf);
        return r;
    }
    *out = (char *)j->buf->data;
    memset(j->buf, 0, sizeof(*j->buf));
    return PK_OK;
}
