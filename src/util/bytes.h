/* Non-owning byte views and a growable (non-secret) byte buffer. */
#ifndef PK_UTIL_BYTES_H
#define PK_UTIL_BYTES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/result.h"

/* A view of bytes someone else owns. Never freed through the view. */
typedef struct pk_bytes {
    const uint8_t *ptr;
    size_t len;
} pk_bytes;

static inline pk_bytes pk_bytes_of(const void *p, size_t n) { return (pk_bytes){(const uint8_t *)p, n}; }

/*
 * Growable heap buffer for public data (ciphertexts, JSON, SQL values).
 * wipe: the text may hold a secret on its way through (a request or answer
 * body with base64 plaintext): growing and freeing wipe the old region, so
 * realloc leaves no copy behind. Secrets at rest go in pk_secbuf instead.
 */
typedef struct pk_buf {
    uint8_t *data;
    size_t len;
    size_t cap;
    bool wipe;
} pk_buf;

PK_MUST_USE pk_result pk_buf_reserve(pk_buf *b, size_t extra);
PK_MUST_USE pk_result pk_buf_append(pk_buf *b, const void *p, size_t n);
PK_MUST_USE pk_result pk_buf_append_str(pk_buf *b, const char *s);
PK_MUST_USE pk_result pk_buf_printf(pk_buf *b, const char *fmt, ...) PK_PRINTF(2, 3);
PK_MUST_USE pk_result pk_buf_append_u8(pk_buf *b, uint8_t v);
PK_MUST_USE pk_result pk_buf_append_be32(pk_buf *b, uint32_t v);
PK_MUST_USE pk_result pk_buf_append_be64(pk_buf *b, uint64_t v);
/* Length-prefixed (be32) field: unambiguous concatenation for MACs and AAD. */
PK_MUST_USE pk_result pk_buf_append_lp(pk_buf *b, const void *p, size_t n);
PK_MUST_USE pk_result pk_buf_append_lpstr(pk_buf *b, const char *s);
/* NUL-terminate without counting the NUL in len. */
PK_MUST_USE pk_result pk_buf_cstr(pk_buf *b);
void pk_buf_reset(pk_buf *b);
void pk_buf_free(pk_buf *b);

/* Copy a string; false (and an empty dst) when it does not fit. */
bool pk_strlcpy(char *dst, size_t size, const char *src);

static inline void pk_store_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}
static inline uint32_t pk_load_be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static inline void pk_store_be64(uint8_t *p, uint64_t v)
{
    pk_store_be32(p, (uint32_t)(v >> 32));
    pk_store_be32(p + 4, (uint32_t)v);
}
static inline uint64_t pk_load_be64(const uint8_t *p)
{
    return ((uint64_t)pk_load_be32(p) << 32) | pk_load_be32(p + 4);
}

#endif
