/*
 * One key/value pair of strings: encryption contexts (keys/), policy
 * request context (policy/) and audit records (audit/) all use it. The
 * public p11kms_kv is converted at the API boundary (core/op.h), where a
 * static assertion checks the two layouts are the same.
 */
#ifndef PK_UTIL_KV_H
#define PK_UTIL_KV_H

typedef struct pk_kv {
    const char *key;
    const char *value;
} pk_kv;

#endif
