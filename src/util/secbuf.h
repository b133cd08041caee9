/*
 * Secret memory: key bytes, plaintexts, secret values and PINs live only
 * here. The memory is locked (best effort: mlock may be refused by
 * RLIMIT_MEMLOCK), excluded from core dumps, and wiped on free and on
 * every growth.
 */
#ifndef PK_UTIL_SECBUF_H
#define PK_UTIL_SECBUF_H

#include <stddef.h>
#include <stdint.h>

#include "util/result.h"

typedef struct pk_secbuf {
    uint8_t *data;
    size_t len;
    size_t cap;
} pk_secbuf;

#define PK_SECBUF_INIT {NULL, 0, 0}

/* Allocate cap zeroed bytes (len = 0). A zero-initialised pk_secbuf is empty. */
PK_MUST_USE pk_result pk_secbuf_alloc(pk_secbuf *b, size_t cap);
/* Grow so that `extra` more bytes fit; the old copy is wiped. */
PK_MUST_USE pk_result pk_secbuf_reserve(pk_secbuf *b, size_t extra);
PK_MUST_USE pk_result pk_secbuf_append(pk_secbuf *b, const void *p, size_t n);
PK_MUST_USE pk_result pk_secbuf_set(pk_secbuf *b, const void *p, size_t n);
/* NUL-terminate (not counted in len). */
PK_MUST_USE pk_result pk_secbuf_cstr(pk_secbuf *b);
/* Wipe and release. Safe on an empty buffer and on NULL. */
void pk_secbuf_free(pk_secbuf *b);

/* Raw secure allocations for structures that hold secrets. Zeroed. */
void *pk_secmem_alloc(size_t n);
/* Wipes the whole allocation before releasing it. NULL is ignored. */
void pk_secmem_free(void *p);

#endif
