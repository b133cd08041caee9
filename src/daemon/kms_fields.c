/* Answers, AWS errors, request fields with AWS limits, key ARNs. */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "daemon/kms_impl.h"

/* ---- responses ---------------------------------------------------------- */

void k_set_body(d_response *r, pk_buf *b)
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
    k_set_body(r, &b);
}

void k_fail(op_ctx *o, int status, const char *type, const char *fmt, ...)
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
void k_fail_rc(op_ctx *o, p11kms_rc rc)
{
    const char *d = p11kms_last_error();
    const char *msg = d && *d ? d : p11kms_strerror(rc);
    switch ((int)rc) {
    case P11KMS_ERR_NOT_FOUND: k_fail(o, 404, "NotFoundException", "%s", msg); return;
    case P11KMS_ERR_DISABLED: k_fail(o, 409, "DisabledException", "%s", msg); return;
    case P11KMS_ERR_INVALID_STATE: k_fail(o, 409, "KMSInvalidStateException", "%s", msg); return;
    case P11KMS_ERR_CIPHERTEXT_INVALID: k_fail(o, 400, "InvalidCiphertextException", "%s", msg); return;
    case P11KMS_ERR_ACCESS_DENIED: k_fail(o, 400, "AccessDeniedException", "%s", msg); return;
    case P11KMS_ERR_POLICY_INVALID: k_fail(o, 400, "MalformedPolicyDocumentException", "%s", msg); return;
    case P11KMS_ERR_ALREADY_EXISTS: k_fail(o, 409, "AlreadyExistsException", "%s", msg); return;
    case P11KMS_ERR_LIMIT: k_fail(o, 400, "LimitExceededException", "%s", msg); return;
    case P11KMS_ERR_INVALID_ARGUMENT: k_fail(o, 400, "ValidationException", "%s", msg); return;
    case P11KMS_ERR_TOKEN:
    case P11KMS_ERR_LOGIN: k_fail(o, 503, "DependencyTimeoutException", "%s", msg); return;
    case P11KMS_ERR_SIGNATURE_INVALID: k_fail(o, 400, "InvalidSignatureException", "%s", msg); return;
    case P11KMS_ERR_UNRECOGNIZED_CLIENT: k_fail(o, 400, "UnrecognizedClientException", "%s", msg); return;
    case P11KMS_ERR_INCOMPLETE_SIGNATURE: k_fail(o, 400, "IncompleteSignature", "%s", msg); return;
    case P11KMS_ERR_REQUEST_EXPIRED: k_fail(o, 400, "RequestExpired", "%s", msg); return;
    default: k_fail(o, 500, "KMSInternalException", "%s", msg); return;
    }
}

/* ---- request fields ----------------------------------------------------- */

/* A string member: NULL when absent; a wrong type or length fails the request. */
const char *k_field_str(op_ctx *o, const char *name, bool required, size_t max)
{
    const pk_jv *v = pk_jv_get(o->in, name);
    if (o->done) return NULL;
    if (v == NULL || pk_jv_typeof(v) == PK_JV_NULL) {
        if (required)
            k_fail(o, 400, "ValidationException",
                 "1 validation error detected: Value null at '%s' failed to satisfy constraint: Member must not be null",
                 name);
        return NULL;
    }
    if (pk_jv_typeof(v) != PK_JV_STRING) {
        k_fail(o, 400, "SerializationException", "%s must be a string", name);
        return NULL;
    }
    if (pk_jv_strlen(v) < 1 || pk_jv_strlen(v) > max || strlen(pk_jv_str(v)) != pk_jv_strlen(v)) {
        k_fail(o, 400, "ValidationException",
             "1 validation error detected: Value at '%s' failed to satisfy constraint: Member must have length "
             "between 1 and %zu",
             name, max);
        return NULL;
    }
    return pk_jv_str(v);
}

bool k_field_int(op_ctx *o, const char *name, long min, long max, long *out)
{
    const pk_jv *v = pk_jv_get(o->in, name);
    if (o->done || v == NULL) return false;
    if (pk_jv_typeof(v) != PK_JV_INTEGER) {
        k_fail(o, 400, "SerializationException", "%s must be an integer", name);
        return false;
    }
    if (pk_jv_int(v) < min || pk_jv_int(v) > max) {
        k_fail(o, 400, "ValidationException",
             "1 validation error detected: Value '%lld' at '%s' failed to satisfy constraint: Member must have "
             "value between %ld and %ld",
             (long long)pk_jv_int(v), name, min, max);
        return false;
    }
    *out = (long)pk_jv_int(v);
    return true;
}

bool k_field_bool(op_ctx *o, const char *name)
{
    const pk_jv *v = pk_jv_get(o->in, name);
    if (o->done || v == NULL) return false;
    if (pk_jv_typeof(v) != PK_JV_TRUE && pk_jv_typeof(v) != PK_JV_FALSE) {
        k_fail(o, 400, "SerializationException", "%s must be a boolean", name);
        return false;
    }
    return pk_jv_typeof(v) == PK_JV_TRUE;
}

/* A base64 blob member of min..max decoded bytes. Decoded bytes are wiped by the caller. */
uint8_t *k_field_blob(op_ctx *o, const char *name, bool required, size_t max, size_t *len)
{
    const char *s = k_field_str(o, name, required, ((max + 2) / 3) * 4);
    uint8_t *b;
    *len = 0;
    if (s == NULL) {
        if (!o->done && required) k_fail(o, 400, "ValidationException", "%s is empty", name);
        return NULL;
    }
    b = d_b64_decode(s, strlen(s), len);
    if (b == NULL) {
        k_fail(o, 400, "SerializationException", "%s is not valid base64", name);
        return NULL;
    }
    if (*len < 1 || *len > max) {
        d_wipe_free(b, *len);
        k_fail(o, 400, "ValidationException",
             "1 validation error detected: Value at '%s' failed to satisfy constraint: Member must have length "
             "between 1 and %zu",
             name, max);
        return NULL;
    }
    return b;
}

size_t k_field_context(op_ctx *o, const char *name, p11kms_kv *kv)
{
    const pk_jv *v = pk_jv_get(o->in, name), *val;
    void *it = NULL;
    const char *key;
    size_t n = 0;
    if (o->done || v == NULL || pk_jv_typeof(v) == PK_JV_NULL) return 0;
    if (pk_jv_typeof(v) != PK_JV_OBJECT) {
        k_fail(o, 400, "SerializationException", "%s must be a map of strings", name);
        return 0;
    }
    while (pk_jv_next(v, &it, &key, &val)) {
        if (pk_jv_typeof(val) != PK_JV_STRING) {
            k_fail(o, 400, "SerializationException", "%s must be a map of strings", name);
            return 0;
        }
        if (n == MAX_CONTEXT) {
            k_fail(o, 400, "ValidationException", "%s has more than %d pairs", name, MAX_CONTEXT);
            return 0;
        }
        kv[n].key = key;
        kv[n++].value = pk_jv_str(val);
    }
    return n;
}

void k_check_algorithm(op_ctx *o, const char *name)
{
    const char *a = k_field_str(o, name, false, 64);
    if (a != NULL && strcmp(a, "SYMMETRIC_DEFAULT") != 0)
        k_fail(o, 400, "ValidationException", "%s must be SYMMETRIC_DEFAULT", name);
}

/* ---- ARNs ----------------------------------------------------------------- */

void k_out_arn(op_ctx *o, const char *field, const char *key_id)
{
    char *arn = NULL;
    p11kms_rc rc = p11kms_key_arn(o->k->h, key_id, &arn);
    if (rc != P11KMS_OK) {
        k_fail_rc(o, rc);
        return;
    }
    pk_jo_kstr(&o->j, field, arn);
    p11kms_free(arn);
}

/* The key a blob names (docs/FORMAT.md: bytes 2..17 are the key's UUID). */
void k_blob_key_id(const uint8_t *b, size_t len, char out[37])
{
    const uint8_t *u = b + BLOB_KEY_OFFSET;
    out[0] = '\0';
    if (len < BLOB_KEY_OFFSET + 16) return;
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0], u[1], u[2], u[3],
             u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15]);
}

void k_out_blob(op_ctx *o, const char *field, const uint8_t *b, size_t n)
{
    char *s = d_b64_encode(b, n);
    if (s == NULL) {
        k_fail(o, 500, "KMSInternalException", "out of memory");
        return;
    }
    pk_jo_kstr(&o->j, field, s);
    d_wipe_free(s, strlen(s));
}

/* Epoch seconds from the library's RFC 3339 UTC times (YYYY-MM-DDTHH:MM:SS[.mmm]Z). */
int64_t k_epoch_of(const char *t)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    if (t == NULL || strptime(t, "%Y-%m-%dT%H:%M:%S", &tm) == NULL) return 0;
    return (int64_t)timegm(&tm);
}

