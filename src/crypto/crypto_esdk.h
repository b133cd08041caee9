/*
 * OpenSSL primitives for the AWS Encryption SDK message format (src/esdk):
 * HKDF-SHA512, AES-256-GCM with a key scheduled once per message, ECDSA
 * P-384 with SHA-384, SHA-384/512. Only this folder calls OpenSSL.
 */
#ifndef PK_CRYPTO_CRYPTO_ESDK_H
#define PK_CRYPTO_CRYPTO_ESDK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/result.h"

#define PK_GCM_IV_LEN 12
#define PK_GCM_TAG_LEN 16
#define PK_EC384_POINT_LEN 49 /* compressed SEC1 point */
#define PK_EC384_SIG_MAX 104  /* DER ECDSA-P384 signature */
#define PK_SHA384_LEN 48
#define PK_SHA512_LEN 64

/* RFC 5869 HKDF with SHA-512 (extract and expand). */
PK_MUST_USE pk_result pk_hkdf_sha512(const uint8_t *salt, size_t salt_len, const uint8_t *ikm, size_t ikm_len,
                                     const uint8_t *info, size_t info_len, uint8_t *out, size_t out_len);
PK_MUST_USE pk_result pk_sha384(const void *p, size_t n, uint8_t out[PK_SHA384_LEN]);
PK_MUST_USE pk_result pk_sha512(const void *p, size_t n, uint8_t out[PK_SHA512_LEN]);

/*
 * AES-256-GCM under one key, one context per thread: the key schedule is
 * computed once and each frame only sets its IV. The key is copied into
 * OpenSSL's context (cleansed by pk_gcm_free) and not kept here.
 */
typedef struct pk_gcm pk_gcm;
PK_MUST_USE pk_result pk_gcm_new(const uint8_t key[32], bool encrypt, pk_gcm **out);
void pk_gcm_free(pk_gcm *g);
/* ct may equal pt. */
PK_MUST_USE pk_result pk_gcm_seal(pk_gcm *g, const uint8_t iv[PK_GCM_IV_LEN], const uint8_t *aad, size_t aad_len,
                                  const uint8_t *pt, size_t n, uint8_t *ct, uint8_t tag[PK_GCM_TAG_LEN]);
/* false (nothing else recorded) when the tag does not verify; pt is then wiped. */
PK_MUST_USE bool pk_gcm_open(pk_gcm *g, const uint8_t iv[PK_GCM_IV_LEN], const uint8_t *aad, size_t aad_len,
                             const uint8_t *ct, size_t n, const uint8_t tag[PK_GCM_TAG_LEN], uint8_t *pt);

/* ECDSA P-384 keys; a signer or verifier hashes with SHA-384 as data arrives. */
typedef struct pk_ec384 pk_ec384;
PK_MUST_USE pk_result pk_ec384_generate(pk_ec384 **out);
/* A public key from its compressed point; P11KMS_ERR_CIPHERTEXT_INVALID when not on the curve. */
PK_MUST_USE pk_result pk_ec384_from_point(const uint8_t *point, size_t len, pk_ec384 **out);
PK_MUST_USE pk_result pk_ec384_point(const pk_ec384 *k, uint8_t out[PK_EC384_POINT_LEN]);
void pk_ec384_free(pk_ec384 *k);

typedef struct pk_sig pk_sig;
PK_MUST_USE pk_result pk_sig_begin(pk_ec384 *k, bool sign, pk_sig **out);
PK_MUST_USE pk_result pk_sig_update(pk_sig *s, const void *p, size_t n);
PK_MUST_USE pk_result pk_sig_sign(pk_sig *s, uint8_t out[PK_EC384_SIG_MAX], size_t *len);
/* false when the signature does not verify. */
PK_MUST_USE bool pk_sig_verify(pk_sig *s, const uint8_t *sig, size_t len);
void pk_sig_free(pk_sig *s);

#endif
