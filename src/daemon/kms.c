/*
 * The AWS KMS JSON 1.1 operations ("TrentService"), run on a worker thread.
 * Field names, limits, error names and HTTP statuses follow AWS's published
 * KMS model (botocore kms/2014-11-01/service-2.json; /work/shared/WIRE-NOTES.md).
 * Every key in a response is named by its full ARN.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "daemon/kms_impl.h"

static const k_op ops[] = {
    {"CreateKey", op_create_key},
    {"DescribeKey", op_describe_key},
    {"ListKeys", op_list_keys},
    {"EnableKey", op_enable_key},
    {"DisableKey", op_disable_key},
    {"ScheduleKeyDeletion", op_schedule_deletion},
    {"CancelKeyDeletion", op_cancel_deletion},
    {"EnableKeyRotation", op_enable_rotation},
    {"DisableKeyRotation", op_disable_rotation},
    {"GetKeyRotationStatus", op_rotation_status},
    {"RotateKeyOnDemand", op_rotate_now},
    {"ListKeyRotations", op_list_rotations},
    {"GetKeyPolicy", op_get_policy},
    {"PutKeyPolicy", op_put_policy},
    {"CreateAlias", op_create_alias},
    {"DeleteAlias", op_delete_alias},
    {"UpdateAlias", op_update_alias},
    {"ListAliases", op_list_aliases},
    {"Encrypt", op_encrypt},
    {"Decrypt", op_decrypt},
    {"ReEncrypt", op_reencrypt},
    {"GenerateDataKey", op_generate_data_key},
    {"GenerateDataKeyWithoutPlaintext", op_generate_data_key_wp},
    {"GenerateRandom", op_generate_random},
};

/* ---- the request ---------------------------------------------------------- */

static const char *req_header(const d_request *r, const char *name)
{
    for (size_t i = 0; i < r->nheaders; i++)
        if (strcasecmp(r->headers[i].name, name) == 0) return r->headers[i].value;
    return NULL;
}

static bool rate_ok(d_kms *k, const char *principal)
{
    bucket *b = NULL;
    int64_t now = d_now_ms();
    bool ok;
    if (k->s.rate_limit == 0) return true;
    pthread_mutex_lock(&k->mu);
    for (size_t i = 0; i < k->nbuckets && b == NULL; i++)
        if (strcmp(k->buckets[i].principal, principal) == 0) b = &k->buckets[i];
    if (b == NULL) {
        bucket *grown = realloc(k->buckets, (k->nbuckets + 1) * sizeof(*grown));
        char *p = strdup(principal);
        if (grown == NULL || p == NULL) {
            if (grown) k->buckets = grown;
            free(p);
            pthread_mutex_unlock(&k->mu);
            return false;
        }
        k->buckets = grown;
        b = &k->buckets[k->nbuckets++];
        b->principal = p;
        b->tokens = (double)k->s.rate_burst;
        b->last_ms = now;
    }
    b->tokens += (double)(now - b->last_ms) * (double)k->s.rate_limit / 1000.0;
    if (b->tokens > (double)k->s.rate_burst) b->tokens = (double)k->s.rate_burst;
    b->last_ms = now;
    ok = b->tokens >= 1.0;
    if (ok) b->tokens -= 1.0;
    pthread_mutex_unlock(&k->mu);
    return ok;
}

/* The service key's id: from the description, else from the alias list, else its alias. */
static const char *service_key_id(op_ctx *o, const p11kms_caller *probe, const char *described, pk_jv **doc)
{
    char *aliases = NULL;
    const char *id = SERVICE_ALIAS;
    if (described != NULL) {
        if (!pk_failed(pk_json_parse(described, strlen(described), P11KMS_ERR_INTERNAL, doc)))
            return pk_jv_str(pk_jv_get(*doc, "KeyId"));
        return id;
    }
    if (probe == NULL || p11kms_alias_list(o->k->h, probe, NULL, &aliases) != P11KMS_OK) return id;
    if (!pk_failed(pk_json_parse(aliases, strlen(aliases), P11KMS_ERR_INTERNAL, doc)))
        for (size_t i = 0; i < pk_jv_size(*doc); i++) {
            const pk_jv *e = pk_jv_at(*doc, i);
            const char *name = pk_jv_str(pk_jv_get(e, "AliasName"));
            if (name != NULL && strcmp(name, SERVICE_ALIAS) == 0) id = pk_jv_str(pk_jv_get(e, "TargetKeyId"));
        }
    p11kms_free(aliases);
    return id != NULL ? id : SERVICE_ALIAS;
}

/* The token connection's recovery state (issue 17): counts and names only, nothing secret. */
static void health_module(op_ctx *o)
{
    p11kms_token_health th = {.struct_size = sizeof th};
    if (p11kms_token_health_get(o->k->h, &th) != P11KMS_OK) return;
    pk_jo_key(&o->j, "module");
    pk_jo_obj_begin(&o->j);
    pk_jo_kstr(&o->j, "state", th.down ? "reconnecting" : "ok");
    pk_jo_kint(&o->j, "reconnects", (int64_t)th.reconnects);
    pk_jo_kint(&o->j, "reinits", (int64_t)th.reinits);
    pk_jo_kint(&o->j, "faults", (int64_t)th.faults);
    if (th.last_fault[0]) pk_jo_kstr(&o->j, "last_fault", th.last_fault);
    pk_jo_obj_end(&o->j);
    if (th.down) o->status = 503;
}

static void health(op_ctx *o)
{
    char *json = NULL;
    pk_jv *doc = NULL;
    p11kms_caller *probe = NULL;
    const char *token = "ok";
    char detail[256] = "";
    /*
     * DescribeKey of the service key as nobody: a denial proves the store
     * answers. Then the token itself: the store answers with the token gone.
     */
    p11kms_rc rc = p11kms_caller_new("arn:aws:iam::000000000000:role/p11kmsd-health", &probe);
    if (rc == P11KMS_OK) rc = p11kms_key_describe(o->k->h, probe, SERVICE_ALIAS, &json);
    if (rc == P11KMS_OK || rc == P11KMS_ERR_ACCESS_DENIED) rc = p11kms_token_check(o->k->h);
    if (rc != P11KMS_OK) {
        /* Unauthenticated callers get the fixed message; the detail goes to the log only. */
        snprintf(detail, sizeof(detail), "%s", p11kms_last_error());
        d_log("health: %s", detail);
        token = p11kms_strerror(rc);
    }
    pk_jo_kstr(&o->j, "version", p11kms_version());
    pk_jo_kstr(&o->j, "token", token);
    pk_jo_kstr(&o->j, "service_key", service_key_id(o, probe, json, &doc));
    o->status = strcmp(token, "ok") == 0 ? 200 : 503;
    health_module(o);
    pk_json_free(doc);
    p11kms_free(json);
    p11kms_caller_free(probe);
}

/* Who is asking: the transport's proof, else SigV4 over TLS. */
static bool authenticate(op_ctx *o)
{
    d_job *job = o->job;
    char *akid = NULL;
    p11kms_rc rc;
    if (job->principal[0] != '\0') {
        rc = p11kms_caller_new(job->principal, &o->caller);
        if (rc == P11KMS_OK) rc = p11kms_caller_set_auth(o->caller, job->auth, job->auth_id, job->request_id);
        if (rc != P11KMS_OK) k_fail_rc(o, rc);
        return rc == P11KMS_OK;
    }
    if (job->peer.is_unix) {
        k_fail(o, 400, "AccessDeniedException", "uid %u (gid %u) is not mapped to a principal (principal.uid.%u)",
             (unsigned)job->peer.uid, (unsigned)job->peer.gid, (unsigned)job->peer.uid);
        return false;
    }
    if (req_header(&job->req, "Authorization") == NULL) {
        k_fail(o, 400, "MissingAuthenticationTokenException", "Request is missing Authentication Token");
        return false;
    }
    {
        p11kms_sigv4_request sr = {sizeof(sr), job->req.method, job->req.path, "", job->req.headers,
                                   job->req.nheaders, job->req.body, job->req.body_len, o->service, 0,
                                   job->request_id};
        char *q = strchr(job->req.path, '?');
        if (q != NULL) {
            *q = '\0';
            sr.query = q + 1;
        }
        rc = p11kms_sigv4_verify(o->k->h, &sr, &o->caller, &akid);
        if (q != NULL) *q = '?';
    }
    if (rc != P11KMS_OK) {
        k_fail_rc(o, rc);
        return false;
    }
    job->auth = P11KMS_AUTH_SIGV4;
    snprintf(job->auth_id, sizeof(job->auth_id), "%s", akid ? akid : "");
    snprintf(job->principal, sizeof(job->principal), "%s", p11kms_caller_principal(o->caller));
    p11kms_free(akid);
    rc = p11kms_caller_set_auth(o->caller, P11KMS_AUTH_SIGV4, job->auth_id, job->request_id);
    if (rc != P11KMS_OK) k_fail_rc(o, rc);
    return rc == P11KMS_OK;
}

static void run_op(op_ctx *o, const char *target, const k_op *table, size_t nops)
{
    const char *ct = req_header(&o->job->req, "Content-Type");
    pk_jv *doc = NULL;
    size_t i;
    if (ct == NULL || strncasecmp(ct, "application/x-amz-json-1.1", 26) != 0) {
        k_fail(o, 400, "SerializationException", "Content-Type must be application/x-amz-json-1.1");
        return;
    }
    for (i = 0; i < nops && strcmp(table[i].name, target) != 0; i++) {}
    if (i == nops) {
        k_fail(o, 400, "UnsupportedOperationException", "%s is not supported by p11kmsd", target);
        return;
    }
    if (!authenticate(o)) return;
    if (!rate_ok(o->k, o->job->principal)) {
        k_fail(o, 400, "ThrottlingException", "Rate exceeded");
        return;
    }
    if (o->job->peer.is_tls && p11kms_caller_set_source_ip(o->caller, o->job->peer.addr) != P11KMS_OK) {
        k_fail(o, 500, "KMSInternalException", "cannot record the source address");
        return;
    }
    if (pk_failed(pk_json_parse((const char *)o->job->req.body, o->job->req.body_len, P11KMS_ERR_INVALID_ARGUMENT,
                                &doc)) ||
        pk_jv_typeof(doc) != PK_JV_OBJECT) {
        pk_json_free(doc);
        k_fail(o, 400, "SerializationException", "the request body is not a JSON object");
        return;
    }
    o->in = doc;
    o->principal = o->job->principal;
    table[i].fn(o);
    o->in = NULL;
    pk_json_free(doc);
}

void d_kms_run(d_job *job, void *arg)
{
    op_ctx o;
    const d_request *r = &job->req;
    const char *target = req_header(r, "X-Amz-Target");
    memset(&o, 0, sizeof(o));
    o.k = arg;
    o.job = job;
    o.status = 200;
    o.service = "kms";
    o.out.wipe = true; /* an answer may carry plaintext or a secret value */
    pk_jo_init(&o.j, &o.out);
    pk_jo_obj_begin(&o.j);
    if (strcmp(r->method, "GET") == 0 && strcmp(r->path, "/health") == 0) {
        snprintf(job->op, sizeof(job->op), "health");
        health(&o);
    } else if (strcmp(r->method, "POST") != 0 || (strcmp(r->path, "/") != 0 && strncmp(r->path, "/?", 2) != 0)) {
        k_fail(&o, 404, "UnknownOperationException", "p11kmsd answers POST / (and GET /health)");
    } else if (target != NULL && strncmp(target, "secretsmanager.", 15) == 0) {
        /* Secrets Manager (sm.c): signed with the signing name secretsmanager. */
        o.service = "secretsmanager";
        snprintf(job->op, sizeof(job->op), "%s", target);
        run_op(&o, target + 15, sm_ops, sm_nops);
    } else if (target != NULL && strncmp(target, "P11kmsService.", 14) == 0) {
        snprintf(job->op, sizeof(job->op), "%s", target);
        run_op(&o, target + 14, svc_ops, svc_nops);
    } else if (target == NULL || strncmp(target, "TrentService.", 13) != 0) {
        k_fail(&o, 400, "UnknownOperationException", "X-Amz-Target must be TrentService.<Operation>");
    } else {
        snprintf(job->op, sizeof(job->op), "%s", target + 13);
        run_op(&o, target + 13, ops, PK_ARRAY_LEN(ops));
    }
    pk_jo_obj_end(&o.j);
    if (!o.done && pk_failed(pk_jo_result(&o.j))) k_fail(&o, 500, "KMSInternalException", "cannot write the response");
    /* An operation without output answers 200 with an empty body (aws-json protocol). */
    if (!o.done && o.out.len == 2 && strcmp(job->op, "health") != 0) o.out.len = 0;
    if (!o.done) {
        job->resp.status = o.status;
        job->resp.content_type = strcmp(job->op, "health") == 0 ? "application/json" : "application/x-amz-json-1.1";
        k_set_body(&job->resp, &o.out);
    }
    /* The writer's buffer may hold base64 plaintext: wipe what was not handed over. */
    d_wipe_free(o.out.data, o.out.cap);
    p11kms_caller_free(o.caller);
}

d_kms *d_kms_new(p11kms *h, const d_settings *s)
{
    d_kms *k = calloc(1, sizeof(*k));
    if (k == NULL) return NULL;
    k->h = h;
    k->s = *s;
    pthread_mutex_init(&k->mu, NULL);
    return k;
}

void d_kms_free(d_kms *k)
{
    if (k == NULL) return;
    for (size_t i = 0; i < k->nbuckets; i++) free(k->buckets[i].principal);
    free(k->buckets);
    pthread_mutex_destroy(&k->mu);
    free(k);
}
