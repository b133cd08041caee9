/* Memory wiping and constant-time comparison (OpenSSL-backed). */
#ifndef PK_CRYPTO_WIPE_H
#define PK_CRYPTO_WIPE_H

#include <stdbool.h>
#include <stddef.h>

/* Zero memory in a way the compiler cannot elide. */
void pk_wipe(void *p, size_t n);
/* Constant-time equality for MACs and tags. */
bool pk_ct_equal(const void *a, const void *b, size_t n);

#endif
