/* OpenSSL adapters for the ESDK message format: HKDF, GCM frames, ECDSA P-384. */
#include "config.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/param_build.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/crypto_esdk.h"

#define OSSL_OK(call) ((call) == 1)
#define ESDK_OSSL_ENSURE(call, what) \
    PK_ENSURE(OSSL_OK(call), P11KMS_ERR_INTERNAL, "OpenSSL %s failed", (what))

pk_result pk_hkdf_sha512(const uint8_t *salt, size_t salt_len, const uint8_t *ikm, size_t ikm_len,
                         const uint8_t *info, size_t info_len, uint8_t *out, size_t out_len)
{
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    EVP_KDF_CTX *kctx = kdf != NULL ? EVP_KDF_CTX_new(kdf) : NULL;
    OSSL_PARAM params[5];
    int ok;

    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA512", 0);
    params[1] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)ikm, ikm_len);
    params[2] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt, salt_len);
    params[3] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)info, info_len);
    params[4] = OSSL_PARAM_construct_end();
    ok = kctx != NULL && EVP_KDF_derive(kctx, out, out_len, params) == 1;
    EVP_KDF_CTX_free(kctx);
    EVP_KDF_free(kdf);
    PK_ENSURE(ok, P11KMS_ERR_INTERNAL, "OpenSSL HKDF-SHA512 failed");
    return PK_OK;
}

static pk_result digest(const char *name, const void *p, size_t n, uint8_t *out)
{
    unsigned int len = 0;
    EVP_MD *md = EVP_MD_fetch(NULL, name, NULL);
    int ok = md != NULL && EVP_Digest(p, n, out, &len, md, NULL) == 1;
    EVP_MD_free(md);
    PK_ENSURE(ok, P11KMS_ERR_INTERNAL, "OpenSSL %s failed", name);
    return PK_OK;
}

pk_result pk_sha384(const void *p, size_t n, uint8_t out[PK_SHA384_LEN]) { return digest("SHA384", p, n, out); }
pk_result pk_sha512(const void *p, size_t n, uint8_t out[PK_SHA512_LEN]) { return digest("SHA512", p, n, out); }

struct pk_gcm {
    EVP_CIPHER_CTX *ctx;
};

pk_result pk_gcm_new(const uint8_t key[32], bool encrypt, pk_gcm **out)
{
    pk_gcm *g = calloc(1, sizeof(*g));
    EVP_CIPHER *c = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
    int ok;
    PK_ENSURE_ALLOC(g);
    g->ctx = EVP_CIPHER_CTX_new();
    ok = c != NULL && g->ctx != NULL && EVP_CipherInit_ex2(g->ctx, c, key, NULL, encrypt ? 1 : 0, NULL) == 1;
    EVP_CIPHER_free(c);
    if (!ok) {
        pk_gcm_free(g);
        return pk_fail(P11KMS_ERR_INTERNAL, "OpenSSL AES-256-GCM init failed");
    }
    *out = g;
    return PK_OK;
}

void pk_gcm_free(pk_gcm *g)
{
    if (g == NULL) return;
    EVP_CIPHER_CTX_free(g->ctx); /* cleanses the key schedule */
    free(g);
}

/* The tag as a parameter: the ctrl interface would translate to one on every frame. */
#define tag_param(t) \
    ((OSSL_PARAM[]){OSSL_PARAM_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG, (t), PK_GCM_TAG_LEN), OSSL_PARAM_END})

pk_result pk_gcm_seal(pk_gcm *g, const uint8_t iv[PK_GCM_IV_LEN], const uint8_t *aad, size_t aad_len,
                      const uint8_t *pt, size_t n, uint8_t *ct, uint8_t tag[PK_GCM_TAG_LEN])
{
    int l = 0;
    uint8_t none[PK_GCM_TAG_LEN]; /* GCM final writes nothing; never hand it NULL + 0 */
    PK_ENSURE(n <= INT32_MAX && aad_len <= INT32_MAX, P11KMS_ERR_LIMIT, "GCM input too large");
    ESDK_OSSL_ENSURE(EVP_CipherInit_ex2(g->ctx, NULL, NULL, iv, 1, NULL), "GCM IV");
    if (aad_len > 0) ESDK_OSSL_ENSURE(EVP_EncryptUpdate(g->ctx, NULL, &l, aad, (int)aad_len), "GCM AAD");
    if (n > 0) ESDK_OSSL_ENSURE(EVP_EncryptUpdate(g->ctx, ct, &l, pt, (int)n), "GCM encrypt");
    ESDK_OSSL_ENSURE(EVP_EncryptFinal_ex(g->ctx, ct != NULL ? ct + n : none, &l), "GCM final");
    ESDK_OSSL_ENSURE(EVP_CIPHER_CTX_get_params(g->ctx, tag_param(tag)), "GCM tag");
    return PK_OK;
}

bool pk_gcm_open(pk_gcm *g, const uint8_t iv[PK_GCM_IV_LEN], const uint8_t *aad, size_t aad_len,
                 const uint8_t *ct, size_t n, const uint8_t tag[PK_GCM_TAG_LEN], uint8_t *pt)
{
    int l = 0;
    uint8_t none[PK_GCM_TAG_LEN];
    bool ok = n <= INT32_MAX && aad_len <= INT32_MAX &&
              OSSL_OK(EVP_CipherInit_ex2(g->ctx, NULL, NULL, iv, 0, NULL)) &&
              (aad_len == 0 || OSSL_OK(EVP_DecryptUpdate(g->ctx, NULL, &l, aad, (int)aad_len))) &&
              (n == 0 || OSSL_OK(EVP_DecryptUpdate(g->ctx, pt, &l, ct, (int)n))) &&
              OSSL_OK(EVP_CIPHER_CTX_set_params(g->ctx, tag_param((uint8_t *)tag))) &&
              OSSL_OK(EVP_DecryptFinal_ex(g->ctx, pt != NULL ? pt + n : none, &l));
    if (!ok && n > 0) OPENSSL_cleanse(pt, n); /* never leave unauthenticated plaintext behind */
    return ok;
}

struct pk_ec384 {
    EVP_PKEY *pkey;
};

static pk_result ec_wrap(EVP_PKEY *pkey, pk_ec384 **out)
{
    pk_ec384 *k = calloc(1, sizeof(*k));
    if (k == NULL) {
        EVP_PKEY_free(pkey);
        return pk_fail(P11KMS_ERR_NO_MEMORY, "out of memory");
    }
    k->pkey = pkey;
    *out = k;
    return PK_OK;
}

pk_result pk_ec384_generate(pk_ec384 **out)
{
    EVP_PKEY *pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
    PK_ENSURE(pkey != NULL, P11KMS_ERR_INTERNAL, "OpenSSL P-384 key generation failed");
    return ec_wrap(pkey, out);
}

pk_result pk_ec384_from_point(const uint8_t *point, size_t len, pk_ec384 **out)
{
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *pctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    EVP_PKEY *pkey = NULL;
    bool ok = bld != NULL && pctx != NULL &&
              OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "P-384", 0) == 1 &&
              OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, len) == 1 &&
              (params = OSSL_PARAM_BLD_to_param(bld)) != NULL && EVP_PKEY_fromdata_init(pctx) == 1 &&
              EVP_PKEY_fromdata(pctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) == 1;
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    EVP_PKEY_CTX_free(pctx);
    if (!ok || len != PK_EC384_POINT_LEN) {
        EVP_PKEY_free(pkey);
        return pk_fail(P11KMS_ERR_CIPHERTEXT_INVALID, "the message's signing public key is not a P-384 point");
    }
    return ec_wrap(pkey, out);
}

pk_result pk_ec384_point(const pk_ec384 *k, uint8_t out[PK_EC384_POINT_LEN])
{
    uint8_t raw[1 + 2 * 48];
    size_t len = 0;
    /* OpenSSL hands out the uncompressed point 04||X||Y; SEC1 compression is 02|03 (Y's parity) || X. */
    ESDK_OSSL_ENSURE(EVP_PKEY_get_octet_string_param(k->pkey, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, raw, sizeof(raw),
                                                     &len), "EC point");
    PK_ENSURE(len == sizeof(raw) && raw[0] == 0x04, P11KMS_ERR_INTERNAL, "unexpected EC point encoding");
    out[0] = (uint8_t)(0x02 | (raw[sizeof(raw) - 1] & 1));
    memcpy(out + 1, raw + 1, 48);
    return PK_OK;
}

void pk_ec384_free(pk_ec384 *k)
{
    if (k == NULL) return;
    EVP_PKEY_free(k->pkey);
    free(k);
}

struct pk_sig {
    EVP_MD_CTX *md;
    bool sign;
};

pk_result pk_sig_begin(pk_ec384 *k, bool sign, pk_sig **out)
{
    pk_sig *s = calloc(1, sizeof(*s));
    int ok;
    PK_ENSURE_ALLOC(s);
    s->sign = sign;
    s->md = EVP_MD_CTX_new();
    ok = s->md != NULL &&
         (sign ? EVP_DigestSignInit_ex(s->md, NULL, "SHA384", NULL, NULL, k->pkey, NULL)
               : EVP_DigestVerifyInit_ex(s->md, NULL, "SHA384", NULL, NULL, k->pkey, NULL)) == 1;
    if (!ok) {
        pk_sig_free(s);
        return pk_fail(P11KMS_ERR_INTERNAL, "OpenSSL ECDSA init failed");
    }
    *out = s;
    return PK_OK;
}

pk_result pk_sig_update(pk_sig *s, const void *p, size_t n)
{
    if (n == 0) return PK_OK;
    ESDK_OSSL_ENSURE(s->sign ? EVP_DigestSignUpdate(s->md, p, n) : EVP_DigestVerifyUpdate(s->md, p, n),
                     "ECDSA update");
    return PK_OK;
}

pk_result pk_sig_sign(pk_sig *s, uint8_t out[PK_EC384_SIG_MAX], size_t *len)
{
    *len = PK_EC384_SIG_MAX;
    ESDK_OSSL_ENSURE(EVP_DigestSignFinal(s->md, out, len), "ECDSA sign");
    return PK_OK;
}

bool pk_sig_verify(pk_sig *s, const uint8_t *sig, size_t len)
{
    return EVP_DigestVerifyFinal(s->md, sig, len) == 1;
}

void pk_sig_free(pk_sig *s)
{
    if (s == NULL) return;
    EVP_MD_CTX_free(s->md);
    free(s);
}
