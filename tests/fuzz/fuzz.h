/*
 * Helpers shared by the libFuzzer targets (scripts/fuzz.sh builds them with
 * clang -fsanitize=fuzzer,address,undefined). Each target is one file; a
 * "fuzz-sources:" line names extra project files it compiles in, and a
 * "fuzz-libs:" line extra libraries.
 */
#ifndef P11KMS_FUZZ_H
#define P11KMS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A NUL-terminated heap copy of data[0..n) (the parsers under test read C strings). */
static inline char *fz_strndup(const uint8_t *data, size_t n)
{
    char *s = malloc(n + 1);
    if (s == NULL) abort();
    if (n > 0) memcpy(s, data, n);
    s[n] = '\0';
    return s;
}

/* Split off the part before the first `sep` byte: *head gets it, the rest stays in data/size. */
static inline void fz_split(const uint8_t **data, size_t *size, const uint8_t **head, size_t *head_len, uint8_t sep)
{
    const uint8_t *p = memchr(*data, sep, *size);
    size_t n = p != NULL ? (size_t)(p - *data) : *size;
    *head = *data;
    *head_len = n;
    *data += p != NULL ? n + 1 : n;
    *size -= p != NULL ? n + 1 : n;
}

#endif
