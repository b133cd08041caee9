/* Text codecs: strict base64 (RFC 4648), hex, UUIDs. */
#ifndef PK_UTIL_CODEC_H
#define PK_UTIL_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "util/bytes.h"
#include "util/result.h"

#define PK_UUID_LEN 16
#define PK_UUID_STR_LEN 36

static inline size_t pk_base64_len(size_t n) { return ((n + 2) / 3) * 4; }
/* Writes pk_base64_len(n) characters and a NUL into out. */
void pk_base64_encode(const uint8_t *in, size_t n, char *out);
/*
 * Strict decoding: padding required, no whitespace except a trailing
 * newline run, no characters outside the alphabet. out needs (len/4)*3 bytes.
 */
PK_MUST_USE pk_result pk_base64_decode(const char *in, size_t len, uint8_t *out, size_t *out_len);

void pk_hex_encode(const uint8_t *in, size_t n, char *out); /* 2n chars + NUL */
PK_MUST_USE pk_result pk_hex_decode(const char *in, uint8_t *out, size_t out_len);

/* RFC 4122 version-4 UUID. */
PK_MUST_USE pk_result pk_uuid_new(uint8_t out[PK_UUID_LEN]);
void pk_uuid_format(const uint8_t id[PK_UUID_LEN], char out[PK_UUID_STR_LEN + 1]);
/* Accepts the canonical lower- or upper-case 8-4-4-4-12 form only. */
bool pk_uuid_parse(const char *s, uint8_t out[PK_UUID_LEN]);

#endif
