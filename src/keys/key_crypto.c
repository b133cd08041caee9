/* Encrypt and decrypt with a CMK version, inside the HSM. */
#include "config.h"

#include <string.h>

#include "crypto/crypto.h"
#include "keys/keys.h"

/* Header || canonical context: on the stack when small (the hot path). */
typedef struct aad_buf {
    uint8_t small[512];
    pk_buf big;
    pk_bytes view;
} aad_buf;

static pk_result aad_build(aad_buf *a, pk_bytes header, pk_bytes ctx)
{
    size_t n = header.len + ctx.len;
    memset(&a->big, 0, sizeof(a->big));
    if (n <= sizeof(a->small)) {
        memcpy(a->small, header.ptr, header.len);
        if (ctx.len) memcpy(a->small + header.len, ctx.ptr, ctx.len);
        a->view = pk_bytes_of(a->small, n);
        return PK_OK;
    }
    PK_GUARD(pk_buf_append(&a->big, header.ptr, header.len));
    PK_GUARD(pk_buf_append(&a->big, ctx.ptr, ctx.len));
    a->view = pk_bytes_of(a->big.data, a->big.len);
    return PK_OK;
}

pk_result pk_key_encrypt(pk_env *env, pk_key *k, pk_bytes ctx_aad, pk_bytes pt, pk_buf *blob)
{
    pk_result r = PK_OK;
    uint8_t iv[PK_GCM_IV_LEN];
    uint32_t version;
    pk_keyid vid;
    aad_buf aad;

    memset(&aad.big, 0, sizeof(aad.big));
    PK_TRY(pk_key_take_nonce(env, k, &version, iv));
    blob->len = 0;
    PK_TRY(pk_buf_reserve(blob, PK_BLOB_HEADER_LEN + pt.len + PK_GCM_TAG_LEN));
    pk_blob_header(blob->data, k->uuid, version, iv);
    PK_TRY(aad_build(&aad, pk_bytes_of(blob->data, PK_BLOB_HEADER_LEN), ctx_aad));
    pk_key_version_id(k->uuid, version, &vid);
    PK_TRY(pk_p11_gcm_encrypt(env->p11, &vid, NULL, iv, aad.view, pt, blob->data + PK_BLOB_HEADER_LEN));
    blob->len = PK_BLOB_HEADER_LEN + pt.len + PK_GCM_TAG_LEN;
out:
    pk_buf_free(&aad.big);
    return r;
}

pk_result pk_key_decrypt(pk_env *env, pk_key *k, const pk_blob *b, pk_bytes ctx_aad, pk_secbuf *pt)
{
    pk_result r = PK_OK;
    pk_keyid vid;
    aad_buf aad;

    memset(&aad.big, 0, sizeof(aad.big));
    /* A version this key never had: the same answer as any other bad blob. */
    PK_CHECK(b->key_version >= 1 && b->key_version <= k->nversions, P11KMS_ERR_CIPHERTEXT_INVALID,
             "ciphertext invalid or context mismatch");
    PK_TRY(aad_build(&aad, b->header, ctx_aad));
    pk_key_version_id(k->uuid, b->key_version, &vid);
    r = pk_p11_gcm_decrypt(env->p11, &vid, NULL, b->iv, aad.view, b->ct, pt);
    /* A destroyed version object is the same as an undecryptable blob to the caller. */
    if (r.code == P11KMS_ERR_NOT_FOUND) r = pk_fail(P11KMS_ERR_CIPHERTEXT_INVALID, "ciphertext invalid or context mismatch");
out:
    pk_buf_free(&aad.big);
    return r;
}
