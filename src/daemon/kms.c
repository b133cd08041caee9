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

#include "daemon/daemon.h"
#include "json/json_in.h"
#include "util/json_out.h"

#define MAX_PLAINTEXT 4096
#define MAX_CIPHERTEXT 6144
#define MAX_DATA_KEY 1024
#define MAX_CONTEXT 64
#define BLOB_KEY_OFFSET 2
#define SERVICE_ALIAS "alias/p11kms/default"

/* Per-principal token buckets (rate_limit requests/s, rate_burst deep). */
typedef struct bucket {
    char *principal;
    double tokens;
    int64_t last_ms;
} bucket;

struct d_kms {
    p11kms *h;
    d_settings s;
    pthread_mutex_t mu;
    bucket *buckets;
    size_t nbuckets;
};

/* What one operation sees. */
typedef struct op_ctx {
    d_kms *k;
    d_job *job;
    const pk_jv *in;
    p11kms_caller *caller;
    const char *principal;
    pk_buf out;
    pk_json_out j;
    int status;
    bool done; /* an error response was set */
} op_ctx;

/* ---- responses ---------------------------------------------------------- */

static void set_body(d_response *r, pk_buf *b)
{
    r->body = b->data;
    r->body_len = b->len;
    memset(b, 0, sizeof(*b));
}

void d_respond_error(d_response *r, int status, const char *type, const char *fmt, ...)
{
    char msg[512];
    pk_buf b = {0};
    pk_json_out j;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    d_wipe_free(r->body, r->body_len);
    pk_jo_init(&j, &b);
    pk_jo_obj_begin(&j);
    pk_jo_kstr(&j, "__type", type);
    pk_jo_kstr(&j, "message", msg);
    pk_jo_obj_end(&j);
    r->status = status;
    r->error_type = type;
    r->content_type = "application/x-amz-json-1.1";
    set_body(r, &b);
}

static void fail(op_ctx *o, int status, const char *type, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void fail(op_ctx *o, int status, const char *type, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    if (o->done) return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    d_respond_error(&o->job->resp, status, type, "%s", msg);
    o->done = true;
}

/* The library's result codes as AWS errors. The detail never carries secrets (p11kms.h). */
static void fail_rc(op_ctx *o, p11kms_rc rc)
{
    const char *d = p11kms_last_error();
    const char *msg = d && *d ? d : p11kms_strerror(rc);
    switch ((int)rc) {
    case P11KMS_ERR_NOT_FOUND: fail(o, 404, "NotFoundException", "%s", msg); return;
    case P11KMS_ERR_DISABLED: fail(o, 409, "DisabledException", "%s", msg); return;
    case P11KMS_ERR_INVALID_STATE: fail(o, 409, "KMSInvalidStateException", "%s", msg); return;
    case P11KMS_ERR_CIPHERTEXT_INVALID: fail(o, 400, "InvalidCiphertextException", "%s", msg); return;
    case P11KMS_ERR_ACCESS_DENIED: fail(o, 400, "AccessDeniedException", "%s", msg); return;
    case P11KMS_ERR_POLICY_INVALID: fail(o, 400, "MalformedPolicyDocumentException", "%s", msg); return;
    case P11KMS_ERR_ALREADY_EXISTS: fail(o, 409, "AlreadyExistsException", "%s", msg); return;
    case P11KMS_ERR_LIMIT: fail(o, 400, "LimitExceededException", "%s", msg); return;
    case P11KMS_ERR_INVALID_ARGUMENT: fail(o, 400, "ValidationException", "%s", msg); return;
    case P11KMS_ERR_TOKEN:
    case P11KMS_ERR_LOGIN: fail(o, 503, "DependencyTimeoutException", "%s", msg); return;
    case P11KMS_ERR_SIGNATURE_INVALID: fail(o, 400, "InvalidSignatureException", "%s", msg); return;
    case P11KMS_ERR_UNRECOGNIZED_CLIENT: fail(o, 400, "UnrecognizedClientException", "%s", msg); return;
    case P11KMS_ERR_INCOMPLETE_SIGNATURE: fail(o, 400, "IncompleteSignature", "%s", msg); return;
    case P11KMS_ERR_REQUEST_EXPIRED: fail(o, 400, "RequestExpired", "%s", msg); return;
    default: fail(o, 500, "KMSInternalException", "%s", msg); return;
    }
}

/* ---- request fields ----------------------------------------------------- */

/* A string member: NULL when absent; a wrong type or length fails the request. */
static const char *field_str(op_ctx *o, const char *name, bool required, size_t max)
{
    const pk_jv *v = pk_jv_get(o->in, name);
    if (o->done) return NULL;
    if (v == NULL || pk_jv_typeof(v) == PK_JV_NULL) {
        if (required)
            fail(o, 400, "ValidationException",
                 "1 validation error detected: Value null at '%s' failed to satisfy constraint: Member must not be null",
                 name);
        return NULL;
    }
    if (pk_jv_typeof(v) != PK_JV_STRING) {
        fail(o, 400, "SerializationException", "%s must be a string", name);
        return NULL;
    }
    if (pk_jv_strlen(v) < 1 || pk_jv_strlen(v) > max || strlen(pk_jv_str(v)) != pk_jv_strlen(v)) {
        fail(o, 400, "ValidationException",
             "1 validation error detected: Value at '%s' failed to satisfy constraint: Member must have length "
             "between 1 and %zu",
             name, max);
        return NULL;
    }
    return pk_jv_str(v);
}

static bool field_int(op_ctx *o, const char *name, long min, long max, long *out)
{
    const pk_jv *v = pk_jv_get(o->in, name);
    if (o->done || v == NULL) return false;
    if (pk_jv_typeof(v) != PK_JV_INTEGER) {
        fail(o, 400, "SerializationException", "%s must be an integer", name);
        return false;
    }
    if (pk_jv_int(v) < min || pk_jv_int(v) > max) {
        fail(o, 400, "ValidationException",
             "1 validation error detected: Value '%lld' at '%s' failed to satisfy constraint: Member must have "
             "value between %ld and %ld",
             (long long)pk_jv_int(v), name, min, max);
        return false;
    }
    *out = (long)pk_jv_int(v);
    return true;
}

static bool field_bool(op_ctx *o, const char *name)
{
    const pk_jv *v = pk_jv_get(o->in, name);
    if (o->done || v == NULL) return false;
    if (pk_jv_typeof(v) != PK_JV_TRUE && pk_jv_typeof(v) != PK_JV_FALSE) {
        fail(o, 400, "SerializationException", "%s must be a boolean", name);
        return false;
    }
    return pk_jv_typeof(v) == PK_JV_TRUE;
}

/* A base64 blob member of min..max decoded bytes. Decoded bytes are wiped by the caller. */
static uint8_t *field_blob(op_ctx *o, const char *name, bool required, size_t max, size_t *len)
{
    const char *s = field_str(o, name, required, ((max + 2) / 3) * 4);
    uint8_t *b;
    *len = 0;
    if (s == NULL) {
        if (!o->done && required) fail(o, 400, "ValidationException", "%s is empty", name);
        return NULL;
    }
    b = d_b64_decode(s, strlen(s), len);
    if (b == NULL) {
        fail(o, 400, "SerializationException", "%s is not valid base64", name);
        return NULL;
    }
    if (*len < 1 || *len > max) {
        d_wipe_free(b, *len);
        fail(o, 400, "ValidationException",
             "1 validation error detected: Value at '%s' failed to satisfy constraint: Member must have length "
             "between 1 and %zu",
             name, max);
        return NULL;
    }
    return b;
}

static size_t field_context(op_ctx *o, const char *name, p11kms_kv *kv)
{
    const pk_jv *v = pk_jv_get(o->in, name), *val;
    void *it = NULL;
    const char *key;
    size_t n = 0;
    if (o->done || v == NULL || pk_jv_typeof(v) == PK_JV_NULL) return 0;
    if (pk_jv_typeof(v) != PK_JV_OBJECT) {
        fail(o, 400, "SerializationException", "%s must be a map of strings", name);
        return 0;
    }
    while (pk_jv_next(v, &it, &key, &val)) {
        if (pk_jv_typeof(val) != PK_JV_STRING) {
            fail(o, 400, "SerializationException", "%s must be a map of strings", name);
            return 0;
        }
        if (n == MAX_CONTEXT) {
            fail(o, 400, "ValidationException", "%s has more than %d pairs", name, MAX_CONTEXT);
            return 0;
        }
        kv[n].key = key;
        kv[n++].value = pk_jv_str(val);
    }
    return n;
}

static void check_algorithm(op_ctx *o, const char *name)
{
    const char *a = field_str(o, name, false, 64);
    if (a != NULL && strcmp(a, "SYMMETRIC_DEFAULT") != 0)
        fail(o, 400, "ValidationException", "%s must be SYMMETRIC_DEFAULT", name);
}

/* ---- ARNs ----------------------------------------------------------------- */

static void out_arn(op_ctx *o, const char *field, const char *key_id)
{
    char *arn = NULL;
    p11kms_rc rc = p11kms_key_arn(o->k->h, key_id, &arn);
    if (rc != P11KMS_OK) {
        fail_rc(o, rc);
        return;
    }
    pk_jo_kstr(&o->j, field, arn);
    p11kms_free(arn);
}

/* The key a blob names (docs/FORMAT.md: bytes 2..17 are the key's UUID). */
static void blob_key_id(const uint8_t *b, size_t len, char out[37])
{
    const uint8_t *u = b + BLOB_KEY_OFFSET;
    out[0] = '\0';
    if (len < BLOB_KEY_OFFSET + 16) return;
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0], u[1], u[2], u[3],
             u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15]);
}

static void out_blob(op_ctx *o, const char *field, const uint8_t *b, size_t n)
{
    char *s = d_b64_encode(b, n);
    if (s == NULL) {
        fail(o, 500, "KMSInternalException", "out of memory");
        return;
    }
    pk_jo_kstr(&o->j, field, s);
    d_wipe_free(s, strlen(s));
}

/* Epoch seconds from the library's RFC 3339 UTC times (YYYY-MM-DDTHH:MM:SS[.mmm]Z). */
static int64_t epoch_of(const char *t)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    if (t == NULL || strptime(t, "%Y-%m-%dT%H:%M:%S", &tm) == NULL) return 0;
    return (int64_t)timegm(&tm);
}

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
    pk_jo_kint(&o->j, "CreationDate", epoch_of(pk_jv_str(pk_jv_get(d, "CreationDate"))));
    pk_jo_kbool(&o->j, "Enabled", pk_jv_typeof(pk_jv_get(d, "Enabled")) == PK_JV_TRUE);
    pk_jo_kstr(&o->j, "Description", pk_jv_str(pk_jv_get(d, "Description")) ? pk_jv_str(pk_jv_get(d, "Description")) : "");
    pk_jo_kstr(&o->j, "KeyUsage", "ENCRYPT_DECRYPT");
    pk_jo_kstr(&o->j, "KeyState", state ? state : "Enabled");
    if (pk_jv_get(d, "DeletionDate"))
        pk_jo_kint(&o->j, "DeletionDate", epoch_of(pk_jv_str(pk_jv_get(d, "DeletionDate"))));
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
static bool describe(op_ctx *o, const char *key, pk_jv **doc)
{
    char *json = NULL;
    p11kms_rc rc = p11kms_key_describe(o->k->h, o->caller, key, &json);
    *doc = NULL;
    if (rc != P11KMS_OK) {
        fail_rc(o, rc);
        return false;
    }
    if (pk_failed(pk_json_parse(json, strlen(json), P11KMS_ERR_INTERNAL, doc))) {
        p11kms_free(json);
        fail(o, 500, "KMSInternalException", "cannot read the key's description");
        return false;
    }
    p11kms_free(json);
    return true;
}

static void op_describe_key(op_ctx *o)
{
    const char *key = field_str(o, "KeyId", true, 2048);
    pk_jv *d = NULL;
    if (key == NULL || !describe(o, key, &d)) return;
    key_metadata(o, d);
    pk_json_free(d);
}

static void op_create_key(op_ctx *o)
{
    p11kms_key_spec spec;
    const char *policy = field_str(o, "Policy", false, 32768);
    const char *desc = field_str(o, "Description", false, 8192);
    const char *usage = field_str(o, "KeyUsage", false, 64);
    const char *kspec = field_str(o, "KeySpec", false, 64);
    const char *cmkspec = field_str(o, "CustomerMasterKeySpec", false, 64);
    const char *origin = field_str(o, "Origin", false, 64);
    bool bypass = field_bool(o, "BypassPolicyLockoutSafetyCheck");
    char *id = NULL;
    pk_jv *d = NULL;
    p11kms_rc rc;

    if (o->done) return;
    if ((usage && strcmp(usage, "ENCRYPT_DECRYPT") != 0) || (kspec && strcmp(kspec, "SYMMETRIC_DEFAULT") != 0) ||
        (cmkspec && strcmp(cmkspec, "SYMMETRIC_DEFAULT") != 0) || (origin && strcmp(origin, "AWS_KMS") != 0)) {
        fail(o, 400, "UnsupportedOperationException",
             "p11kmsd makes only symmetric ENCRYPT_DECRYPT keys (KeySpec SYMMETRIC_DEFAULT, Origin AWS_KMS)");
        return;
    }
    memset(&spec, 0, sizeof(spec));
    spec.description = desc;
    spec.policy_json = policy;
    spec.bypass_lockout_check = bypass;
    /* Without Policy there is no IAM here: the library makes the caller the key's administrator,
     * as `p11kms key create` does. This also holds for SigV4 callers, whose ARN only the library knows. */
    rc = p11kms_key_create(o->k->h, o->caller, &spec, &id);
    if (rc != P11KMS_OK) {
        fail_rc(o, rc);
        return;
    }
    if (describe(o, id, &d)) {
        key_metadata(o, d);
        pk_json_free(d);
    } else { /* the new policy may not let the creator describe: answer from what is known */
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
    const char *m = field_str(o, "Marker", false, 1024);
    long l = 100;
    char *end = NULL;
    field_int(o, "Limit", 1, 1000, &l);
    *limit = (size_t)l;
    *start = 0;
    if (m != NULL) {
        *start = strtoul(m, &end, 10);
        if (*end != '\0') fail(o, 400, "InvalidMarkerException", "Marker is not one this service returned");
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
        fail_rc(o, rc);
        return false;
    }
    if (pk_failed(pk_json_parse(json, strlen(json), P11KMS_ERR_INTERNAL, doc))) {
        fail(o, 500, "KMSInternalException", "cannot read the library's list");
        p11kms_free(json);
        return false;
    }
    p11kms_free(json);
    return true;
}

static void op_list_keys(op_ctx *o)
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
        out_arn(o, "KeyArn", pk_jv_str(pk_jv_get(e, "KeyId")));
        pk_jo_obj_end(&o->j);
    }
    pk_jo_arr_end(&o->j);
    end_page(o, i, total);
    pk_json_free(doc);
}

static void op_list_aliases(op_ctx *o)
{
    const char *key = field_str(o, "KeyId", false, 2048);
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
        fail(o, 500, "KMSInternalException", "cannot form alias ARNs");
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
    const char *key = field_str(o, "KeyId", true, 2048);
    p11kms_rc rc;
    pk_jv *d = NULL;
    if (key == NULL) return;
    rc = fn(o->k->h, o->caller, key);
    if (rc != P11KMS_OK) {
        fail_rc(o, rc);
        return;
    }
    if (!echo_key) return;
    /* The answer names the key by ARN: DescribeKey may be denied, so resolve bare ids only. */
    if (strncmp(key, "alias/", 6) != 0) out_arn(o, "KeyId", key);
    else if (describe(o, key, &d)) pk_jo_kstr(&o->j, "KeyId", pk_jv_str(pk_jv_get(d, "Arn")));
    pk_json_free(d);
}

static void op_enable_key(op_ctx *o) { simple_key_op(o, p11kms_key_enable, false); }
static void op_disable_key(op_ctx *o) { simple_key_op(o, p11kms_key_disable, false); }
static void op_cancel_deletion(op_ctx *o) { simple_key_op(o, p11kms_key_cancel_deletion, true); }

static void op_schedule_deletion(op_ctx *o)
{
    const char *key = field_str(o, "KeyId", true, 2048);
    long days = 30;
    int64_t when = 0;
    p11kms_rc rc;
    field_int(o, "PendingWindowInDays", 7, 30, &days);
    if (o->done) return;
    rc = p11kms_key_schedule_deletion(o->k->h, o->caller, key, (unsigned)days, &when);
    if (rc != P11KMS_OK) {
        fail_rc(o, rc);
        return;
    }
    out_arn(o, "KeyId", key);
    pk_jo_kint(&o->j, "DeletionDate", when / 1000);
    pk_jo_kstr(&o->j, "KeyState", "PendingDeletion");
    pk_jo_kint(&o->j, "PendingWindowInDays", days);
}

static void op_set_rotation(op_ctx *o, bool enable)
{
    const char *key = field_str(o, "KeyId", true, 2048);
    long days = 365;
    p11kms_rc rc;
    if (enable) field_int(o, "RotationPeriodInDays", 90, 2560, &days);
    if (o->done) return;
    rc = p11kms_key_set_rotation(o->k->h, o->caller, key, enable ? (unsigned)days : 0);
    if (rc != P11KMS_OK) fail_rc(o, rc);
}

static void op_enable_rotation(op_ctx *o) { op_set_rotation(o, true); }
static void op_disable_rotation(op_ctx *o) { op_set_rotation(o, false); }

static void op_rotation_status(op_ctx *o)
{
    const char *key = field_str(o, "KeyId", true, 2048);
    pk_jv *d = NULL;
    if (key == NULL || !describe(o, key, &d)) return;
    pk_jo_kstr(&o->j, "KeyId", pk_jv_str(pk_jv_get(d, "Arn")));
    pk_jo_kbool(&o->j, "KeyRotationEnabled", pk_jv_typeof(pk_jv_get(d, "KeyRotationEnabled")) == PK_JV_TRUE);
    if (pk_jv_typeof(pk_jv_get(d, "KeyRotationEnabled")) == PK_JV_TRUE) {
        pk_jo_kint(&o->j, "RotationPeriodInDays", pk_jv_int(pk_jv_get(d, "RotationPeriodInDays")));
        pk_jo_kint(&o->j, "NextRotationDate", epoch_of(pk_jv_str(pk_jv_get(d, "NextRotationDate"))));
    }
    pk_json_free(d);
}

static void op_rotate_now(op_ctx *o)
{
    const char *key = field_str(o, "KeyId", true, 2048);
    unsigned version = 0;
    p11kms_rc rc;
    if (key == NULL) return;
    rc = p11kms_key_rotate(o->k->h, o->caller, key, &version);
    if (rc != P11KMS_OK) {
        fail_rc(o, rc);
        return;
    }
    out_arn(o, "KeyId", key);
}

static bool policy_name_ok(op_ctx *o, bool required)
{
    const char *n = field_str(o, "PolicyName", required, 128);
    if (n != NULL && strcmp(n, "default") != 0) fail(o, 404, "NotFoundException", "the only policy name is default");
    return !o->done;
}

static void op_get_policy(op_ctx *o)
{
    const char *key = field_str(o, "KeyId", true, 2048);
    char *policy = NULL;
    p11kms_rc rc;
    if (!policy_name_ok(o, false) || key == NULL) return;
    rc = p11kms_key_get_policy(o->k->h, o->caller, key, &policy);
    if (rc != P11KMS_OK) {
        fail_rc(o, rc);
        return;
    }
    pk_jo_kstr(&o->j, "Policy", policy);
    pk_jo_kstr(&o->j, "PolicyName", "default");
    p11kms_free(policy);
}

static void op_put_policy(op_ctx *o)
{
    const char *key = field_str(o, "KeyId", true, 2048);
    const char *policy = field_str(o, "Policy", true, 32768);
    bool bypass = field_bool(o, "BypassPolicyLockoutSafetyCheck");
    p11kms_rc rc;
    if (!policy_name_ok(o, false) || o->done) return;
    rc = p11kms_key_put_policy(o->k->h, o->caller, key, policy, bypass ? P11KMS_POLICY_BYPASS_LOCKOUT_CHECK : 0);
    if (rc != P11KMS_OK) fail_rc(o, rc);
}

static const char *alias_name(op_ctx *o)
{
    const char *a = field_str(o, "AliasName", true, 256);
    if (a != NULL && strncmp(a, "alias/", 6) != 0)
        fail(o, 400, "ValidationException", "AliasName must begin with alias/");
    return o->done ? NULL : a;
}

static void op_create_alias(op_ctx *o)
{
    const char *a = alias_name(o), *key = field_str(o, "TargetKeyId", true, 2048);
    p11kms_rc rc;
    if (o->done) return;
    rc = p11kms_alias_create(o->k->h, o->caller, a, key);
    if (rc != P11KMS_OK) fail_rc(o, rc);
}

static void op_update_alias(op_ctx *o)
{
    const char *a = alias_name(o), *key = field_str(o, "TargetKeyId", true, 2048);
    p11kms_rc rc;
    if (o->done) return;
    rc = p11kms_alias_update(o->k->h, o->caller, a, key);
    if (rc != P11KMS_OK) fail_rc(o, rc);
}

static void op_delete_alias(op_ctx *o)
{
    const char *a = alias_name(o);
    p11kms_rc rc;
    if (o->done) return;
    rc = p11kms_alias_delete(o->k->h, o->caller, a);
    if (rc != P11KMS_OK) fail_rc(o, rc);
}

static void op_encrypt(op_ctx *o)
{
    p11kms_kv ctx[MAX_CONTEXT];
    const char *key = field_str(o, "KeyId", true, 2048);
    size_t n = 0, nctx = field_context(o, "EncryptionContext", ctx);
    uint8_t *pt = field_blob(o, "Plaintext", true, MAX_PLAINTEXT, &n);
    p11kms_buf *blob = NULL;
    char kid[37];
    p11kms_rc rc;
    check_algorithm(o, "EncryptionAlgorithm");
    if (o->done) goto out;
    rc = p11kms_encrypt(o->k->h, o->caller, key, ctx, nctx, pt, n, &blob);
    if (rc != P11KMS_OK) {
        fail_rc(o, rc);
        goto out;
    }
    out_blob(o, "CiphertextBlob", p11kms_buf_data(blob), p11kms_buf_len(blob));
    blob_key_id(p11kms_buf_data(blob), p11kms_buf_len(blob), kid);
    out_arn(o, "KeyId", kid);
    pk_jo_kstr(&o->j, "EncryptionAlgorithm", "SYMMETRIC_DEFAULT");
out:
    p11kms_buf_free(blob);
    d_wipe_free(pt, n);
}

/* A KeyId given with Decrypt must name the blob's key (AWS: IncorrectKeyException). */
static bool key_matches(op_ctx *o, const char *given, const char *kid)
{
    char *a = NULL, *b = NULL;
    bool same = true;
    if (given == NULL || strncmp(given, "alias/", 6) == 0 || strstr(given, ":alias/") != NULL) return true;
    if (p11kms_key_arn(o->k->h, given, &a) == P11KMS_OK && p11kms_key_arn(o->k->h, kid, &b) == P11KMS_OK)
        same = strcasecmp(a, b) == 0;
    p11kms_free(a);
    p11kms_free(b);
    if (!same) fail(o, 400, "IncorrectKeyException", "the ciphertext was not encrypted under the KeyId given");
    return same;
}

static void op_decrypt(op_ctx *o)
{
    p11kms_kv ctx[MAX_CONTEXT];
    size_t n = 0, nctx = field_context(o, "EncryptionContext", ctx);
    uint8_t *blob = field_blob(o, "CiphertextBlob", true, MAX_CIPHERTEXT, &n);
    const char *given = field_str(o, "KeyId", false, 2048);
    p11kms_buf *pt = NULL;
    char *key_id = NULL, kid[37];
    p11kms_rc rc;
    check_algorithm(o, "EncryptionAlgorithm");
    if (o->done) goto out;
    blob_key_id(blob, n, kid);
    if (!key_matches(o, given, kid)) goto out;
    rc = p11kms_decrypt(o->k->h, o->caller, ctx, nctx, blob, n, &pt, &key_id);
    if (rc != P11KMS_OK) {
        fail_rc(o, rc);
        goto out;
    }
    out_arn(o, "KeyId", key_id);
    out_blob(o, "Plaintext", p11kms_buf_data(pt), p11kms_buf_len(pt));
    pk_jo_kstr(&o->j, "EncryptionAlgorithm", "SYMMETRIC_DEFAULT");
out:
    p11kms_buf_free(pt);
    p11kms_free(key_id);
    d_wipe_free(blob, n);
}

static void op_reencrypt(op_ctx *o)
{
    p11kms_kv sctx[MAX_CONTEXT], dctx[MAX_CONTEXT];
    size_t n = 0, ns = field_context(o, "SourceEncryptionContext", sctx);
    size_t nd = field_context(o, "DestinationEncryptionContext", dctx);
    uint8_t *blob = field_blob(o, "CiphertextBlob", true, MAX_CIPHERTEXT, &n);
    const char *dst = field_str(o, "DestinationKeyId", true, 2048);
    const char *src = field_str(o, "SourceKeyId", false, 2048);
    p11kms_buf *out = NULL;
    char skid[37], dkid[37];
    p11kms_rc rc;
    check_algorithm(o, "SourceEncryptionAlgorithm");
    check_algorithm(o, "DestinationEncryptionAlgorithm");
    if (o->done) goto out;
    blob_key_id(blob, n, skid);
    if (!key_matches(o, src, skid)) goto out;
    rc = p11kms_reencrypt(o->k->h, o->caller, blob, n, sctx, ns, dst, dctx, nd, &out);
    if (rc != P11KMS_OK) {
        fail_rc(o, rc);
        goto out;
    }
    out_blob(o, "CiphertextBlob", p11kms_buf_data(out), p11kms_buf_len(out));
    out_arn(o, "SourceKeyId", skid);
    blob_key_id(p11kms_buf_data(out), p11kms_buf_len(out), dkid);
    out_arn(o, "KeyId", dkid);
    pk_jo_kstr(&o->j, "SourceEncryptionAlgorithm", "SYMMETRIC_DEFAULT");
    pk_jo_kstr(&o->j, "DestinationEncryptionAlgorithm", "SYMMETRIC_DEFAULT");
out:
    p11kms_buf_free(out);
    d_wipe_free(blob, n);
}

static void data_key(op_ctx *o, bool with_plaintext)
{
    p11kms_kv ctx[MAX_CONTEXT];
    const char *key = field_str(o, "KeyId", true, 2048);
    const char *spec = field_str(o, "KeySpec", false, 16);
    size_t nctx = field_context(o, "EncryptionContext", ctx);
    long bytes = 0;
    p11kms_buf *pt = NULL, *blob = NULL;
    char kid[37];
    p11kms_rc rc;
    bool have_n = field_int(o, "NumberOfBytes", 1, MAX_DATA_KEY, &bytes);
    if (o->done) return;
    if ((spec == NULL) == !have_n) {
        fail(o, 400, "ValidationException", "give either KeySpec or NumberOfBytes");
        return;
    }
    if (spec != NULL) {
        if (strcmp(spec, "AES_256") == 0) bytes = 32;
        else if (strcmp(spec, "AES_128") == 0) bytes = 16;
        else {
            fail(o, 400, "ValidationException", "KeySpec must be AES_256 or AES_128");
            return;
        }
    }
    rc = p11kms_generate_data_key(o->k->h, o->caller, key, ctx, nctx, (size_t)bytes, with_plaintext ? &pt : NULL,
                                  &blob);
    if (rc != P11KMS_OK) {
        fail_rc(o, rc);
        return;
    }
    out_blob(o, "CiphertextBlob", p11kms_buf_data(blob), p11kms_buf_len(blob));
    if (with_plaintext) out_blob(o, "Plaintext", p11kms_buf_data(pt), p11kms_buf_len(pt));
    blob_key_id(p11kms_buf_data(blob), p11kms_buf_len(blob), kid);
    out_arn(o, "KeyId", kid);
    p11kms_buf_free(pt);
    p11kms_buf_free(blob);
}

static void op_generate_data_key(op_ctx *o) { data_key(o, true); }
static void op_generate_data_key_wp(op_ctx *o) { data_key(o, false); }

/*
 * The public API has no bare RNG call: a data key of the service key is
 * the token's RNG output, authorised like any GenerateDataKey on it.
 */
static void op_generate_random(op_ctx *o)
{
    long bytes = 0;
    p11kms_buf *pt = NULL, *blob = NULL;
    p11kms_rc rc;
    if (!field_int(o, "NumberOfBytes", 1, MAX_DATA_KEY, &bytes)) {
        if (!o->done) fail(o, 400, "ValidationException", "NumberOfBytes is required (1 to 1024)");
        return;
    }
    rc = p11kms_generate_data_key(o->k->h, o->caller, SERVICE_ALIAS, NULL, 0, (size_t)bytes, &pt, &blob);
    if (rc != P11KMS_OK) {
        fail_rc(o, rc);
        return;
    }
    out_blob(o, "Plaintext", p11kms_buf_data(pt), p11kms_buf_len(pt));
    p11kms_buf_free(pt);
    p11kms_buf_free(blob);
}

static const struct {
    const char *name;
    void (*fn)(op_ctx *o);
} ops[] = {
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

static void health(op_ctx *o)
{
    char *json = NULL;
    pk_jv *doc = NULL;
    p11kms_caller *probe = NULL;
    const char *token = "ok";
    char detail[256] = "";
    /* DescribeKey of the service key as nobody: a denial proves the token and store answer. */
    p11kms_rc rc = p11kms_caller_new("arn:aws:iam::000000000000:role/p11kmsd-health", &probe);
    if (rc == P11KMS_OK) rc = p11kms_key_describe(o->k->h, probe, SERVICE_ALIAS, &json);
    if (rc != P11KMS_OK && rc != P11KMS_ERR_ACCESS_DENIED) {
        /* Unauthenticated callers get the fixed message; the detail goes to the log only. */
        snprintf(detail, sizeof(detail), "%s", p11kms_last_error());
        d_log("health: %s", detail);
        token = p11kms_strerror(rc);
    }
    pk_jo_kstr(&o->j, "version", p11kms_version());
    pk_jo_kstr(&o->j, "token", token);
    pk_jo_kstr(&o->j, "service_key", service_key_id(o, probe, json, &doc));
    o->status = strcmp(token, "ok") == 0 ? 200 : 503;
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
        if (rc != P11KMS_OK) fail_rc(o, rc);
        return rc == P11KMS_OK;
    }
    if (job->peer.is_unix) {
        fail(o, 400, "AccessDeniedException", "uid %u (gid %u) is not mapped to a principal (principal.uid.%u)",
             (unsigned)job->peer.uid, (unsigned)job->peer.gid, (unsigned)job->peer.uid);
        return false;
    }
    if (req_header(&job->req, "Authorization") == NULL) {
        fail(o, 400, "MissingAuthenticationTokenException", "Request is missing Authentication Token");
        return false;
    }
    {
        p11kms_sigv4_request sr = {sizeof(sr), job->req.method, job->req.path, "", job->req.headers,
                                   job->req.nheaders, job->req.body, job->req.body_len, "kms", 0};
        char *q = strchr(job->req.path, '?');
        if (q != NULL) {
            *q = '\0';
            sr.query = q + 1;
        }
        rc = p11kms_sigv4_verify(o->k->h, &sr, &o->caller, &akid);
        if (q != NULL) *q = '?';
    }
    if (rc != P11KMS_OK) {
        fail_rc(o, rc);
        return false;
    }
    job->auth = P11KMS_AUTH_SIGV4;
    snprintf(job->auth_id, sizeof(job->auth_id), "%s", akid ? akid : "");
    snprintf(job->principal, sizeof(job->principal), "sigv4:%s", akid ? akid : "");
    p11kms_free(akid);
    rc = p11kms_caller_set_auth(o->caller, P11KMS_AUTH_SIGV4, job->auth_id, job->request_id);
    if (rc != P11KMS_OK) fail_rc(o, rc);
    return rc == P11KMS_OK;
}

static void run_op(op_ctx *o, const char *target)
{
    const char *ct = req_header(&o->job->req, "Content-Type");
    pk_jv *doc = NULL;
    size_t i;
    if (ct == NULL || strncasecmp(ct, "application/x-amz-json-1.1", 26) != 0) {
        fail(o, 400, "SerializationException", "Content-Type must be application/x-amz-json-1.1");
        return;
    }
    for (i = 0; i < PK_ARRAY_LEN(ops) && strcmp(ops[i].name, target) != 0; i++) {}
    if (i == PK_ARRAY_LEN(ops)) {
        fail(o, 400, "UnsupportedOperationException", "%s is not supported by p11kmsd", target);
        return;
    }
    if (!authenticate(o)) return;
    if (!rate_ok(o->k, o->job->principal)) {
        fail(o, 400, "ThrottlingException", "Rate exceeded");
        return;
    }
    if (o->job->peer.is_tls && p11kms_caller_set_source_ip(o->caller, o->job->peer.addr) != P11KMS_OK) {
        fail(o, 500, "KMSInternalException", "cannot record the source address");
        return;
    }
    if (pk_failed(pk_json_parse((const char *)o->job->req.body, o->job->req.body_len, P11KMS_ERR_INVALID_ARGUMENT,
                                &doc)) ||
        pk_jv_typeof(doc) != PK_JV_OBJECT) {
        pk_json_free(doc);
        fail(o, 400, "SerializationException", "the request body is not a JSON object");
        return;
    }
    o->in = doc;
    o->principal = o->job->principal;
    ops[i].fn(o);
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
    pk_jo_init(&o.j, &o.out);
    pk_jo_obj_begin(&o.j);
    if (strcmp(r->method, "GET") == 0 && strcmp(r->path, "/health") == 0) {
        snprintf(job->op, sizeof(job->op), "health");
        health(&o);
    } else if (strcmp(r->method, "POST") != 0 || (strcmp(r->path, "/") != 0 && strncmp(r->path, "/?", 2) != 0)) {
        fail(&o, 404, "UnknownOperationException", "p11kmsd answers POST / (and GET /health)");
    } else if (target == NULL || strncmp(target, "TrentService.", 13) != 0) {
        fail(&o, 400, "UnknownOperationException", "X-Amz-Target must be TrentService.<Operation>");
    } else {
        snprintf(job->op, sizeof(job->op), "%s", target + 13);
        run_op(&o, target + 13);
    }
    pk_jo_obj_end(&o.j);
    if (!o.done && pk_failed(pk_jo_result(&o.j))) fail(&o, 500, "KMSInternalException", "cannot write the response");
    /* An operation without output answers 200 with an empty body (aws-json protocol). */
    if (!o.done && o.out.len == 2 && strcmp(job->op, "health") != 0) o.out.len = 0;
    if (!o.done) {
        job->resp.status = o.status;
        job->resp.content_type = strcmp(job->op, "health") == 0 ? "application/json" : "application/x-amz-json-1.1";
        set_body(&job->resp, &o.out);
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
