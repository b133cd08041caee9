/* Encrypt, Decrypt, ReEncrypt and GenerateDataKey over TrentService. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "remote/remote_impl.h"
#include "util/codec.h"
#include "util/wipe.h"

/* A base64 member into the request; the text is wiped: it may be plaintext. A failure stays in the writer. */
static void put_b64(pk_json_out *j, const char *name, const uint8_t *p, size_t n)
{
    char *b64 = pk_secmem_alloc(pk_base64_len(n) + 1);
    if (b64 == NULL) {
        if (pk_ok(j->err)) j->err = pk_fail(P11KMS_ERR_NO_MEMORY, "out of memory");
        return;
    }
    pk_base64_encode(p, n, b64);
    pk_jo_kstr(j, name, b64);
    pk_secmem_free(b64);
}

/* Send an operation that answers {KeyId, CiphertextBlob}: the blob into out. */
static pk_result send_for_ciphertext(pk_remote *r, const char *op, pk_remote_req *q, pk_buf *out)
{
    pk_jv *resp = NULL;
    pk_result res;
    PK_GUARD(pk_remote_send(r, PK_REMOTE_KMS, op, q, &resp));
    pk_remote_note_arn(r, pk_jv_str(pk_jv_get(resp, "KeyId")));
    res = pk_remote_blob(resp, "CiphertextBlob", out, NULL);
    pk_json_free(resp);
    return res;
}

pk_result pk_remote_encrypt(pk_remote *r, const char *key, const p11kms_kv *ctx, size_t nctx, const uint8_t *pt,
                            size_t n, pk_buf *blob)
{
    pk_remote_req q;
    pk_remote_begin(&q);
    pk_jo_kstr(&q.j, "KeyId", key);
    pk_remote_ctx(&q.j, "EncryptionContext", ctx, nctx);
    put_b64(&q.j, "Plaintext", pt, n);
    return send_for_ciphertext(r, "Encrypt", &q, blob);
}

pk_result pk_remote_decrypt(pk_remote *r, const p11kms_kv *ctx, size_t nctx, const uint8_t *blob, size_t n,
                            pk_secbuf *pt, char **key_id)
{
    pk_remote_req q;
    pk_jv *resp = NULL;
    pk_result res;
    if (key_id) *key_id = NULL;
    /* The daemon would call this a validation error; the library calls it what it is. */
    PK_ENSURE(n > 0, P11KMS_ERR_CIPHERTEXT_INVALID, "%s", pk_rc_message(P11KMS_ERR_CIPHERTEXT_INVALID));
    pk_remote_begin(&q);
    pk_remote_ctx(&q.j, "EncryptionContext", ctx, nctx);
    put_b64(&q.j, "CiphertextBlob", blob, n);
    PK_GUARD(pk_remote_send(r, PK_REMOTE_KMS, "Decrypt", &q, &resp));
    pk_remote_note_arn(r, pk_jv_str(pk_jv_get(resp, "KeyId")));
    res = pk_remote_blob(resp, "Plaintext", NULL, pt);
    /* The library names the key by its id; the daemon by its ARN. */
    if (pk_ok(res) && key_id != NULL) {
        const char *arn = pk_jv_str(pk_jv_get(resp, "KeyId"));
        *key_id = strdup(arn ? pk_remote_key_of_arn(arn) : "");
        if (*key_id == NULL) res = pk_fail(P11KMS_ERR_NO_MEMORY, "out of memory");
    }
    if (pk_failed(res)) pk_secbuf_free(pt);
    pk_json_free(resp);
    return res;
}

pk_result pk_remote_generate_data_key(pk_remote *r, const char *key, const p11kms_kv *ctx, size_t nctx, size_t bytes,
                                      pk_secbuf *pt, pk_buf *blob)
{
    pk_remote_req q;
    pk_jv *resp = NULL;
    pk_result res;
    pk_remote_begin(&q);
    pk_jo_kstr(&q.j, "KeyId", key);
    pk_remote_ctx(&q.j, "EncryptionContext", ctx, nctx);
    pk_jo_kint(&q.j, "NumberOfBytes", (int64_t)bytes);
    PK_GUARD(pk_remote_send(r, PK_REMOTE_KMS, pt ? "GenerateDataKey" : "GenerateDataKeyWithoutPlaintext", &q, &resp));
    pk_remote_note_arn(r, pk_jv_str(pk_jv_get(resp, "KeyId")));
    res = pk_remote_blob(resp, "CiphertextBlob", blob, NULL);
    if (pk_ok(res) && pt != NULL) res = pk_remote_blob(resp, "Plaintext", NULL, pt);
    if (pk_failed(res) && pt != NULL) pk_secbuf_free(pt);
    pk_json_free(resp);
    return res;
}

pk_result pk_remote_reencrypt(pk_remote *r, const uint8_t *blob, size_t n, const p11kms_kv *src, size_t nsrc,
                              const char *dst_key, const p11kms_kv *dst, size_t ndst, pk_buf *out)
{
    pk_remote_req q;
    PK_ENSURE(n > 0, P11KMS_ERR_CIPHERTEXT_INVALID, "%s", pk_rc_message(P11KMS_ERR_CIPHERTEXT_INVALID));
    pk_remote_begin(&q);
    pk_jo_kstr(&q.j, "DestinationKeyId", dst_key);
    pk_remote_ctx(&q.j, "SourceEncryptionContext", src, nsrc);
    pk_remote_ctx(&q.j, "DestinationEncryptionContext", dst, ndst);
    put_b64(&q.j, "CiphertextBlob", blob, n);
    return send_for_ciphertext(r, "ReEncrypt", &q, out);
}
