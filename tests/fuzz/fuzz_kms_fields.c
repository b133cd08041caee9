/*
 * The KMS JSON request fields (src/daemon/kms_fields.c): the request body is
 * parsed as p11kmsd parses it, then every field reader runs on the names
 * and limits the operations use. A failed field answers with an AWS error
 * body; each field starts afresh so that later readers run too.
 * fuzz-sources: src/daemon/kms_fields.c src/daemon/codec.c
 */
#include "config.h"

#include "daemon/kms_impl.h"
#include "fuzz/fuzz.h"

void d_log(const char *fmt, ...)
{
    (void)fmt;
}

static void reset(op_ctx *o)
{
    d_wipe_free(o->job->resp.body, o->job->resp.body_len);
    memset(&o->job->resp, 0, sizeof(o->job->resp));
    o->done = false;
}

static void blob(op_ctx *o, const char *name, size_t max)
{
    size_t len = 0;
    uint8_t *b = k_field_blob(o, name, false, max, &len);
    char id[37];
    if (b != NULL) {
        if (len < 1 || len > max) abort();
        k_blob_key_id(b, len, id);
        d_wipe_free(b, len);
    }
    reset(o);
}

static void fields(op_ctx *o)
{
    p11kms_kv kv[MAX_CONTEXT];
    const char *s;
    long n;

    s = k_field_str(o, "KeyId", true, 2048);
    if (s != NULL && (strlen(s) < 1 || strlen(s) > 2048)) abort();
    reset(o);
    blob(o, "Plaintext", MAX_PLAINTEXT);
    blob(o, "CiphertextBlob", MAX_CIPHERTEXT);
    if (k_field_context(o, "EncryptionContext", kv) > MAX_CONTEXT) abort();
    reset(o);
    (void)k_field_context(o, "DestinationEncryptionContext", kv);
    reset(o);
    if (k_field_int(o, "NumberOfBytes", 1, MAX_DATA_KEY, &n) && (n < 1 || n > MAX_DATA_KEY)) abort();
    reset(o);
    (void)k_field_int(o, "PendingWindowInDays", 7, 30, &n);
    reset(o);
    (void)k_field_bool(o, "BypassPolicyLockoutSafetyCheck");
    reset(o);
    k_check_algorithm(o, "EncryptionAlgorithm");
    reset(o);
    (void)k_epoch_of(k_field_str(o, "ValidTo", false, 64));
    reset(o);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    d_job job;
    op_ctx o;
    pk_jv *doc = NULL;
    char *body = fz_strndup(data, size); /* as http.c hands it over: NUL-terminated */

    memset(&job, 0, sizeof(job));
    memset(&o, 0, sizeof(o));
    o.job = &job;
    pk_jo_init(&o.j, &o.out);
    if (pk_ok(pk_json_parse(body, size, P11KMS_ERR_INVALID_ARGUMENT, &doc)) && pk_jv_typeof(doc) == PK_JV_OBJECT) {
        o.in = doc;
        fields(&o);
    }
    pk_error_clear();
    pk_json_free(doc);
    pk_buf_free(&o.out);
    d_wipe_free(job.resp.body, job.resp.body_len);
    free(body);
    return 0;
}
