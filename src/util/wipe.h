/*
 * Memory wiping and constant-time comparison. They live in util/, which
 * stands on nothing, as libsodium keeps sodium_memzero and sodium_memcmp
 * beside its allocator: the secure buffers below every layer need them,
 * and no outside library is required to write them.
 */
#ifndef PK_UTIL_WIPE_H
#define PK_UTIL_WIPE_H

#include <stdbool.h>
#include <stddef.h>

/* Zero memory in a way the compiler cannot elide. */
void pk_wipe(void *p, size_t n);
/* Constant-time equality for MACs and tags: the time depends on n only. */
bool pk_ct_equal(const void *a, const void *b, size_t n);

#endif
