/*
 * Public cryptographic API: encrypt, decrypt, data keys, re-encrypt.
 * Order of checks follows AWS KMS: resolve, authorise, then key state,
 * then the HSM. Plaintexts live only in locked memory.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "core/op.h"
#include "core/remote_fwd.h"
#include "crypto/crypto.h"
#include "util/codec.h"

#define AES_128_BYTES 16
#define AES_256_BYTES 32

/* Resolve, load and authorise a key for use; the context goes into the request. */
static pk_result use_key(pk_op *op, const char *key, const char *action, pk_key **out)
{
    pk_key_ref ref;
    pk_result r;
    PK_GUARD(pk_key_resolve(&op->h->env, key, false, &ref));
    pk_op_set_key(op, &ref);
    PK_GUARD(pk_key_get(&op->h->env, ref.key_id, out));
    r = pk_op_authorize(op, *out, action);
    if (pk_ok(r)) r = pk_key_usable(*out);
    if (pk_failed(r)) {
        pk_key_release(&op->h->env, *out);
        *out = NULL;
    }
    return r;
}

/* Find the key a blob names. An unknown key is a bad blob, not "not found": no oracle. */
static pk_result blob_key(pk_op *op, const pk_blob *b, const char *action, pk_key **out)
{
    pk_key_ref ref;
    pk_result r;
    memset(&ref, 0, sizeof(ref));
    pk_uuid_format(b->key_uuid, ref.key_id);
    pk_op_set_key(op, &ref);
    op->key_version = b->key_version;
    r = pk_key_get(&op->h->env, ref.key_id, out);
    if (r.code == P11KMS_ERR_NOT_FOUND) return pk_fail(P11KMS_ERR_CIPHERTEXT_INVALID, "ciphertext invalid or context mismatch");
    PK_GUARD(r);
    r = pk_op_authorize(op, *out, action);
    if (pk_ok(r)) r = pk_key_usable(*out);
    if (pk_failed(r)) {
        pk_key_release(&op->h->env, *out);
        *out = NULL;
    }
    return r;
}

/* Version that pk_key_encrypt used: the first bytes of the header. */
static uint32_t blob_version(const pk_buf *blob)
{
    return pk_load_be32(blob->data + 2 + PK_UUID_LEN);
}

P11KMS_API p11kms_rc p11kms_encrypt(p11kms *h, const p11kms_caller *c, const char *key, const p11kms_kv *ctx,
                                    size_t nctx, const uint8_t *pt, size_t pt_len, p11kms_buf **blob)
{
    if (h != NULL && h->remote != NULL) return pk_fwd_encrypt(h, c, key, ctx, nctx, pt, pt_len, blob);
    pk_op op;
    pk_result r = PK_OK;
    pk_key *k = NULL;
    pk_buf aad = {0}, out = {0};

    *blob = NULL;
    PK_TRY(pk_op_begin(&op, h, c, "kms:Encrypt"));
    pk_op_output_buf(&op, blob);
    PK_TRY(pk_op_context(&op, ctx, nctx, &aad));
    PK_CHECK(pt != NULL && pt_len >= 1 && pt_len <= PK_PLAINTEXT_MAX, P11KMS_ERR_INVALID_ARGUMENT,
             "plaintext must be 1 to %d bytes (got %zu)", PK_PLAINTEXT_MAX, pt ? pt_len : 0);
    PK_TRY(use_key(&op, key, op.action, &k));
    PK_TRY(pk_key_encrypt(&h->env, k, pk_bytes_of(aad.data, aad.len), pk_bytes_of(pt, pt_len), &out));
    op.key_version = blob_version(&out);
    PK_TRY(pk_buf_out(&out, blob));
out:
    pk_buf_free(&aad);
    pk_buf_free(&out);
    pk_key_release(&h->env, k);
    return pk_op_finish(&op, r);
}

/* Decrypt a blob under its own key with `action` authorised; pt receives the plaintext. */
static pk_result decrypt_blob(pk_op *op, const char *action, const uint8_t *blob, size_t blob_len, pk_bytes aad,
                              pk_secbuf *pt)
{
    pk_blob b;
    pk_key *k = NULL;
    pk_result r;
    PK_GUARD(pk_blob_parse(pk_bytes_of(blob, blob_len), &b));
    PK_GUARD(blob_key(op, &b, action, &k));
    r = pk_key_decrypt(&op->h->env, k, &b, aad, pt);
    pk_key_release(&op->h->env, k);
    return r;
}

P11KMS_API p11kms_rc p11kms_decrypt(p11kms *h, const p11kms_caller *c, const p11kms_kv *ctx, size_t nctx,
                                    const uint8_t *blob, size_t blob_len, p11kms_buf **pt, char **key_id)
{
    if (h != NULL && h->remote != NULL) return pk_fwd_decrypt(h, c, ctx, nctx, blob, blob_len, pt, key_id);
    pk_op op;
    pk_result r = PK_OK;
    pk_buf aad = {0};
    pk_secbuf plain = PK_SECBUF_INIT;

    *pt = NULL;
    if (key_id) *key_id = NULL;
    PK_TRY(pk_op_begin(&op, h, c, "kms:Decrypt"));
    pk_op_output_buf(&op, pt);
    if (key_id) pk_op_output_str(&op, key_id);
    PK_TRY(pk_op_context(&op, ctx, nctx, &aad));
    PK_CHECK(blob != NULL, P11KMS_ERR_INVALID_ARGUMENT, "no ciphertext given");
    PK_TRY(decrypt_blob(&op, op.action, blob, blob_len, pk_bytes_of(aad.data, aad.len), &plain));
    if (key_id) {
        *key_id = strdup(op.key_id);
        PK_CHECK_ALLOC(*key_id);
    }
    PK_TRY(pk_secbuf_out(&plain, pt));
out:
    if (pk_failed(r) && key_id) {
        free(*key_id);
        *key_id = NULL;
    }
    pk_secbuf_free(&plain);
    pk_buf_free(&aad);
    return pk_op_finish(&op, r);
}

P11KMS_API p11kms_rc p11kms_generate_data_key(p11kms *h, const p11kms_caller *c, const char *key,
                                              const p11kms_kv *ctx, size_t nctx, size_t bytes, p11kms_buf **pt,
                                              p11kms_buf **blob)
{
    if (h != NULL && h->remote != NULL) return pk_fwd_generate_data_key(h, c, key, ctx, nctx, bytes, pt, blob);
    pk_op op;
    pk_result r = PK_OK;
    pk_key *k = NULL;
    pk_buf aad = {0}, out = {0};
    pk_secbuf dk = PK_SECBUF_INIT;

    if (pt) *pt = NULL;
    *blob = NULL;
    PK_TRY(pk_op_begin(&op, h, c, pt ? "kms:GenerateDataKey" : "kms:GenerateDataKeyWithoutPlaintext"));
    pk_op_output_buf(&op, blob);
    if (pt) pk_op_output_buf(&op, pt);
    PK_TRY(pk_op_context(&op, ctx, nctx, &aad));
    PK_CHECK(bytes >= 1 && bytes <= PK_DATAKEY_MAX, P11KMS_ERR_INVALID_ARGUMENT,
             "data key size must be 1 to %d bytes (AES_128 = 16, AES_256 = 32)", PK_DATAKEY_MAX);
    PK_TRY(use_key(&op, key, op.action, &k));
    /* The data key comes from the HSM's RNG, straight into locked memory. */
    PK_TRY(pk_secbuf_alloc(&dk, bytes));
    PK_TRY(pk_p11_random(h->p11, dk.data, bytes));
    dk.len = bytes;
    PK_TRY(pk_key_encrypt(&h->env, k, pk_bytes_of(aad.data, aad.len), pk_bytes_of(dk.data, dk.len), &out));
    op.key_version = blob_version(&out);
    PK_TRY(pk_buf_out(&out, blob));
    if (pt) PK_TRY(pk_secbuf_out(&dk, pt));
out:
    if (pk_failed(r)) {
        p11kms_buf_free(*blob);
        *blob = NULL;
    }
    pk_secbuf_free(&dk);
    pk_buf_free(&aad);
    pk_buf_free(&out);
    pk_key_release(&h->env, k);
    return pk_op_finish(&op, r);
}

P11KMS_API p11kms_rc p11kms_reencrypt(p11kms *h, const p11kms_caller *c, const uint8_t *blob, size_t blob_len,
                                      const p11kms_kv *src_ctx, size_t nsrc, const char *dst_key,
                                      const p11kms_kv *dst_ctx, size_t ndst, p11kms_buf **outp)
{
    if (h != NULL && h->remote != NULL)
        return pk_fwd_reencrypt(h, c, blob, blob_len, src_ctx, nsrc, dst_key, dst_ctx, ndst, outp);
    pk_op op;
    pk_result r = PK_OK;
    pk_key *dst = NULL;
    pk_buf src_aad = {0}, dst_aad = {0}, out = {0};
    pk_secbuf plain = PK_SECBUF_INIT;

    *outp = NULL;
    PK_TRY(pk_op_begin(&op, h, c, "kms:ReEncrypt"));
    pk_op_output_buf(&op, outp);
    PK_TRY(pk_op_context(&op, src_ctx, nsrc, &src_aad));
    PK_CHECK(blob != NULL, P11KMS_ERR_INVALID_ARGUMENT, "no ciphertext given");
    r = pk_context_encode(pk_kv_of(dst_ctx), ndst, &dst_aad);
    op.ctx_invalid = pk_failed(r);
    PK_TRY(r);
    /* ReEncryptFrom on the source key (with the source context), ReEncryptTo on the destination. */
    PK_TRY(decrypt_blob(&op, "kms:ReEncryptFrom", blob, blob_len, pk_bytes_of(src_aad.data, src_aad.len), &plain));
    memcpy(op.src_key_id, op.key_id, sizeof(op.src_key_id));
    op.ctx = pk_kv_of(dst_ctx);
    op.nctx = ndst;
    PK_TRY(use_key(&op, dst_key, "kms:ReEncryptTo", &dst));
    PK_TRY(pk_key_encrypt(&h->env, dst, pk_bytes_of(dst_aad.data, dst_aad.len), pk_bytes_of(plain.data, plain.len), &out));
    op.key_version = blob_version(&out);
    PK_TRY(pk_buf_out(&out, outp));
out:
    pk_secbuf_free(&plain);
    pk_buf_free(&src_aad);
    pk_buf_free(&dst_aad);
    pk_buf_free(&out);
    pk_key_release(&h->env, dst);
    return pk_op_finish(&op, r);
}

/* Header layout of docs/FORMAT.md version 1: version, flags, key id, key version. */
#define BLOB_MIN_LEN 51
P11KMS_API p11kms_rc p11kms_blob_info(const uint8_t *blob, size_t len, char key_id[37], uint32_t *key_version)
{
    pk_error_clear();
    if (key_id != NULL) key_id[0] = '\0';
    if (key_version != NULL) *key_version = 0;
    if (blob == NULL || key_id == NULL || key_version == NULL)
        return pk_fail(P11KMS_ERR_INVALID_ARGUMENT, "blob info: NULL argument").code;
    if (len < BLOB_MIN_LEN || blob[0] != 0x01)
        return pk_fail(P11KMS_ERR_CIPHERTEXT_INVALID, "ciphertext is not a p11kms blob").code;
    pk_uuid_format(blob + 2, key_id);
    *key_version = pk_load_be32(blob + 2 + PK_UUID_LEN);
    return P11KMS_OK;
}
