/* OpenSSL adapters: randomness, hashing, wiping and the key-wrap known answer. */
#include "config.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/core_names.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdlib.h>

#include "crypto/crypto.h"

/* OpenSSL returns 1 on success. */
#define PK_OSSL_ENSURE(call, what) \
    PK_ENSURE((call) == 1, P11KMS_ERR_INTERNAL, "OpenSSL %s failed", (what))

pk_result pk_random(void *out, size_t n)
{
    PK_ENSURE(n <= INT32_MAX, P11KMS_ERR_LIMIT, "random request too large");
    PK_OSSL_ENSURE(RAND_bytes(out, (int)n), "RAND_bytes");
    return PK_OK;
}

pk_result pk_sha256(const void *p, size_t n, uint8_t out[PK_SHA256_LEN])
{
    unsigned int len = 0;
    PK_OSSL_ENSURE(EVP_Digest(p, n, out, &len, EVP_sha256(), NULL), "EVP_Digest");
    return PK_OK;
}

struct pk_sha256_ctx {
    EVP_MD_CTX *md;
    EVP_MD *alg; /* fetched once: EVP_sha256() would be looked up in the provider on every init */
};

pk_result pk_sha256_begin(pk_sha256_ctx **ctx)
{
    pk_sha256_ctx *c = calloc(1, sizeof(*c));
    PK_ENSURE_ALLOC(c);
    c->md = EVP_MD_CTX_new();
    c->alg = EVP_MD_fetch(NULL, "SHA256", NULL);
    if (c->md == NULL || c->alg == NULL || EVP_DigestInit_ex(c->md, c->alg, NULL) != 1) {
        pk_sha256_free(c);
        return pk_fail(P11KMS_ERR_INTERNAL, "OpenSSL EVP_DigestInit_ex failed");
    }
    *ctx = c;
    return PK_OK;
}

pk_result pk_sha256_update(pk_sha256_ctx *ctx, const void *p, size_t n)
{
    PK_OSSL_ENSURE(EVP_DigestUpdate(ctx->md, p, n), "EVP_DigestUpdate");
    return PK_OK;
}

pk_result pk_sha256_finish(pk_sha256_ctx *ctx, uint8_t out[PK_SHA256_LEN])
{
    unsigned int len = 0;
    PK_OSSL_ENSURE(EVP_DigestFinal_ex(ctx->md, out, &len), "EVP_DigestFinal_ex");
    return PK_OK;
}

pk_result pk_sha256_digest(pk_sha256_ctx *ctx, const void *p, size_t n, uint8_t out[PK_SHA256_LEN])
{
    unsigned int len = 0;
    PK_OSSL_ENSURE(EVP_DigestInit_ex(ctx->md, ctx->alg, NULL), "EVP_DigestInit_ex");
    PK_OSSL_ENSURE(EVP_DigestUpdate(ctx->md, p, n), "EVP_DigestUpdate");
    PK_OSSL_ENSURE(EVP_DigestFinal_ex(ctx->md, out, &len), "EVP_DigestFinal_ex");
    return PK_OK;
}

void pk_sha256_free(pk_sha256_ctx *ctx)
{
    if (ctx == NULL) return;
    EVP_MD_CTX_free(ctx->md);
    EVP_MD_free(ctx->alg);
    free(ctx);
}

pk_result pk_kwp_wrap_kat(const uint8_t kek[32], const uint8_t *key, size_t key_len, uint8_t *out,
                          size_t *out_len)
{
    pk_result r = PK_OK;
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int n1 = 0, n2 = 0;

    PK_ENSURE_ALLOC(c);
    /* OpenSSL refuses wrap modes unless this flag says the caller knows. */
    EVP_CIPHER_CTX_set_flags(c, EVP_CIPHER_CTX_FLAG_WRAP_ALLOW);
    PK_CHECK(EVP_EncryptInit_ex(c, EVP_aes_256_wrap_pad(), NULL, kek, NULL) == 1, P11KMS_ERR_INTERNAL,
             "OpenSSL aes-256-wrap-pad init failed");
    PK_CHECK(EVP_EncryptUpdate(c, out, &n1, key, (int)key_len) == 1, P11KMS_ERR_INTERNAL,
             "OpenSSL aes-256-wrap-pad failed");
    PK_CHECK(EVP_EncryptFinal_ex(c, out + n1, &n2) == 1, P11KMS_ERR_INTERNAL,
             "OpenSSL aes-256-wrap-pad final failed");
    *out_len = (size_t)n1 + (size_t)n2;
out:
    EVP_CIPHER_CTX_free(c);
    return r;
}

/* The HMAC implementation, fetched once: a fetch per call is a provider lookup under a lock. */
static EVP_MAC *hmac_alg;
static pthread_once_t hmac_once = PTHREAD_ONCE_INIT;

static void hmac_fetch(void) { hmac_alg = EVP_MAC_fetch(NULL, "HMAC", NULL); }

pk_result pk_hmac_sha256(const uint8_t *key, size_t key_len, const void *data, size_t n,
                         uint8_t out[PK_HMAC_SHA256_LEN])
{
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
                           OSSL_PARAM_construct_end()};
    EVP_MAC_CTX *ctx;
    size_t len = 0;
    int ok;

    pthread_once(&hmac_once, hmac_fetch);
    PK_ENSURE(hmac_alg != NULL, P11KMS_ERR_INTERNAL, "OpenSSL has no HMAC implementation");
    ctx = EVP_MAC_CTX_new(hmac_alg);
    PK_ENSURE_ALLOC(ctx);
    ok = EVP_MAC_init(ctx, key, key_len, params) == 1 && EVP_MAC_update(ctx, data, n) == 1 &&
         EVP_MAC_final(ctx, out, &len, PK_HMAC_SHA256_LEN) == 1 && len == PK_HMAC_SHA256_LEN;
    EVP_MAC_CTX_free(ctx); /* frees (and cleanses) the keyed state */
    PK_ENSURE(ok, P11KMS_ERR_INTERNAL, "OpenSSL HMAC-SHA256 failed");
    return PK_OK;
}
