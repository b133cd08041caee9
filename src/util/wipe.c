/* Wiping and constant-time compare without an outside library (util/wipe.h). */
#include "config.h"

#include <string.h>

#include "util/wipe.h"

void pk_wipe(void *p, size_t n)
{
    /* explicit_bzero (glibc 2.25) is a store the optimiser must keep, like OPENSSL_cleanse. */
    if (p != NULL && n != 0) explicit_bzero(p, n);
}

bool pk_ct_equal(const void *a, const void *b, size_t n)
{
    /* Accumulate every byte's difference; volatile keeps the compiler from
     * turning the loop into an early-exit memcmp. */
    const volatile unsigned char *x = a;
    const volatile unsigned char *y = b;
    unsigned char d = 0;
    for (size_t i = 0; i < n; i++) d |= (unsigned char)(x[i] ^ y[i]);
    return d == 0;
}
