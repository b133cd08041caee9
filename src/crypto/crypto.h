/*
 * Host-side crypto helpers. This folder is the only user of OpenSSL.
 * Nothing here ever touches a CMK: keys live in the HSM (src/p11/).
 */
#ifndef PK_CRYPTO_CRYPTO_H
#define PK_CRYPTO_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#include "crypto/wipe.h"
#include "util/bytes.h"
#include "util/result.h"

#define PK_SHA256_LEN 32

/* Random bytes from OpenSSL's DRBG (GCM IVs, request ids, UUIDs). */
PK_MUST_USE pk_result pk_random(void *out, size_t n);
PK_MUST_USE pk_result pk_sha256(const void *p, size_t n, uint8_t out[PK_SHA256_LEN]);

/* Incremental SHA-256 for hashing several parts without concatenating them. */
typedef struct pk_sha256_ctx pk_sha256_ctx;
PK_MUST_USE pk_result pk_sha256_begin(pk_sha256_ctx **ctx);
PK_MUST_USE pk_result pk_sha256_update(pk_sha256_ctx *ctx, const void *p, size_t n);
PK_MUST_USE pk_result pk_sha256_finish(pk_sha256_ctx *ctx, uint8_t out[PK_SHA256_LEN]);
void pk_sha256_free(pk_sha256_ctx *ctx);
/*
 * Hash one buffer with a context made by pk_sha256_begin, reusing it (and
 * the algorithm it fetched once) instead of looking the algorithm up on
 * every call: for hot paths that hash many short lines.
 */
PK_MUST_USE pk_result pk_sha256_digest(pk_sha256_ctx *ctx, const void *p, size_t n, uint8_t out[PK_SHA256_LEN]);

/*
 * HMAC-SHA256 (RFC 2104) in software with OpenSSL's EVP_MAC. Only for keys
 * derived outside the token by design: the SigV4 signing-key chain after
 * its first step, which runs in the HSM (docs/AUTH.md). The caller wipes
 * key and out.
 */
#define PK_HMAC_SHA256_LEN 32
PK_MUST_USE pk_result pk_hmac_sha256(const uint8_t *key, size_t key_len, const void *data, size_t n,
                                     uint8_t out[PK_HMAC_SHA256_LEN]);

/*
 * RFC 5649 AES-256 key wrap with padding, in software. Used only to check a
 * token's key-wrap mechanism against a known answer built from public test
 * values at probe time; never with real keys.
 */
PK_MUST_USE pk_result pk_kwp_wrap_kat(const uint8_t kek[32], const uint8_t *key, size_t key_len,
                                      uint8_t *out, size_t *out_len);

#endif
