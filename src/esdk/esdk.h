/*
 * The AWS Encryption SDK message format, version 2, framed
 * (awslabs/aws-encryption-sdk-specification, data-format/ and
 * framework/algorithm-suites.md), for suites 0x0478 (AES-256-GCM,
 * HKDF-SHA512, key commitment) and 0x0578 (the same plus ECDSA P-384).
 *
 * This layer works with a raw 32-byte data key: where it comes from (the
 * HSM through GenerateDataKey / Decrypt) is src/core/api_file.c's job.
 * Data keys and derived keys live in locked memory and are wiped on every
 * path. Plaintext is released frame by frame, only after the frame's tag
 * has verified. Encryption and decryption can spread the frames of a batch
 * over several threads; the bytes written are the same for any count.
 */
#ifndef PK_ESDK_ESDK_H
#define PK_ESDK_ESDK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "p11kms/p11kms.h"
#include "util/bytes.h"
#include "util/result.h"
#include "util/secbuf.h"

#define PK_ESDK_SUITE_COMMIT 0x0478
#define PK_ESDK_SUITE_COMMIT_SIG 0x0578
#define PK_ESDK_FRAME_DEFAULT 4096u
#define PK_ESDK_FRAME_MAX (64u << 20) /* bounds the memory one frame needs */
#define PK_ESDK_KEY_LEN 32
#define PK_ESDK_MSG_ID_LEN 32
#define PK_ESDK_HEADER_MAX (1u << 20)
#define PK_ESDK_THREADS_MAX 64
#define PK_ESDK_PUBKEY_CTX "aws-crypto-public-key"

/* One encrypted data key (views into memory someone else owns). */
typedef struct pk_esdk_edk {
    pk_bytes provider_id;
    pk_bytes provider_info;
    pk_bytes ciphertext;
} pk_esdk_edk;

/* A parsed header. The context strings and EDK list are owned (pk_esdk_header_clear). */
typedef struct pk_esdk_header {
    uint16_t suite;
    uint8_t msg_id[PK_ESDK_MSG_ID_LEN];
    p11kms_kv *ctx; /* sorted by key bytes */
    size_t nctx;
    pk_esdk_edk *edk; /* views into body */
    size_t nedk;
    uint32_t frame_len;
    uint8_t commit[32];
    uint8_t tag[16];
    pk_buf body; /* the serialized header body (everything before the tag) */
} pk_esdk_header;

void pk_esdk_header_clear(pk_esdk_header *hd);
/* The suite's name and whether it signs; false for a suite this code does not handle. */
bool pk_esdk_suite_known(uint16_t suite, bool *signs);

/* Serialize an encryption context (sorted, no duplicate keys) as in the AAD field. */
PK_MUST_USE pk_result pk_esdk_ctx_serialize(const p11kms_kv *ctx, size_t n, pk_buf *out);
/* Serialize a header body from its fields (hd->body is replaced). */
PK_MUST_USE pk_result pk_esdk_header_build(pk_esdk_header *hd, const pk_esdk_edk *edk, size_t nedk);
/*
 * Parse a header with its tag from the first n bytes. *used = 0 when more
 * bytes are needed (and eof false); a malformed header fails with
 * P11KMS_ERR_CIPHERTEXT_INVALID and a message naming what is wrong.
 */
PK_MUST_USE pk_result pk_esdk_header_parse(const uint8_t *p, size_t n, bool eof, pk_esdk_header *hd, size_t *used);

/* HKDF-SHA512 derivation: the message key (info = suite || "DERIVEKEY") and the commit key ("COMMITKEY"). */
PK_MUST_USE pk_result pk_esdk_derive(uint16_t suite, const uint8_t data_key[PK_ESDK_KEY_LEN],
                                     const uint8_t msg_id[PK_ESDK_MSG_ID_LEN], pk_secbuf *derived,
                                     uint8_t commit[32]);
/* The header authentication tag over hd->body with the derived key. */
PK_MUST_USE pk_result pk_esdk_header_tag(const pk_secbuf *derived, const pk_buf *body, uint8_t tag[16]);

/* Where output goes. A failure stops the stream. */
typedef pk_result (*pk_esdk_sink)(void *arg, const uint8_t *p, size_t n);

typedef struct pk_esdk_enc pk_esdk_enc;
/*
 * Start a message: derives the keys, writes the header through sink.
 * hd holds suite, msg_id (random unless the caller set it: tests), ctx
 * (which must include aws-crypto-public-key for a signed suite) and
 * frame_len. sign_key is required for signed suites and owned afterwards.
 */
struct pk_ec384;
PK_MUST_USE pk_result pk_esdk_enc_new(pk_esdk_header *hd, const pk_esdk_edk *edk, size_t nedk,
                                      const uint8_t data_key[PK_ESDK_KEY_LEN], struct pk_ec384 *sign_key,
                                      unsigned threads, pk_esdk_sink sink, void *arg, pk_esdk_enc **out);
PK_MUST_USE pk_result pk_esdk_enc_update(pk_esdk_enc *e, const uint8_t *p, size_t n);
PK_MUST_USE pk_result pk_esdk_enc_final(pk_esdk_enc *e);
uint64_t pk_esdk_enc_frames(const pk_esdk_enc *e);
void pk_esdk_enc_free(pk_esdk_enc *e);

/*
 * Asked once the header is parsed: put the 32-byte data key into key (or
 * fail; the failure is the decryption's).
 */
typedef pk_result (*pk_esdk_keyfn)(void *arg, const pk_esdk_header *hd, pk_secbuf *key);

typedef struct pk_esdk_dec pk_esdk_dec;
/*
 * rewrap: instead of decrypting the body, call rewrap_fn after the header
 * is verified (it writes a new header) and pass the body bytes through
 * unchanged.
 */
PK_MUST_USE pk_result pk_esdk_dec_new(unsigned threads, pk_esdk_keyfn keyfn, void *key_arg, pk_esdk_sink sink,
                                      void *arg, pk_esdk_dec **out);
typedef pk_result (*pk_esdk_rewrapfn)(void *arg, const pk_esdk_header *hd, const pk_secbuf *data_key);
void pk_esdk_dec_set_rewrap(pk_esdk_dec *d, pk_esdk_rewrapfn fn, void *arg);
PK_MUST_USE pk_result pk_esdk_dec_update(pk_esdk_dec *d, const uint8_t *p, size_t n);
/* End of input: fails on a truncated message. */
PK_MUST_USE pk_result pk_esdk_dec_final(pk_esdk_dec *d);
/* The header once parsed (NULL before). */
const pk_esdk_header *pk_esdk_dec_header(const pk_esdk_dec *d);
uint64_t pk_esdk_dec_frames(const pk_esdk_dec *d);
uint64_t pk_esdk_dec_bytes(const pk_esdk_dec *d);
void pk_esdk_dec_free(pk_esdk_dec *d);

#endif
