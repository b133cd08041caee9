/*
 * Read-only JSON documents. This folder is the only user of jansson; other
 * code sees opaque pk_jv values. Do not parse secret values with it: jansson's
 * heap is not wiped (secret maps have their own parser in src/secrets/).
 */
#ifndef PK_JSON_JSON_IN_H
#define PK_JSON_JSON_IN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/result.h"

typedef struct pk_jv pk_jv;

typedef enum pk_jv_type {
    PK_JV_OBJECT,
    PK_JV_ARRAY,
    PK_JV_STRING,
    PK_JV_INTEGER,
    PK_JV_REAL,
    PK_JV_TRUE,
    PK_JV_FALSE,
    PK_JV_NULL
} pk_jv_type;

/*
 * Parse one JSON document. Duplicate object keys are rejected. On failure the
 * detail names line and column; the code is `err_code`.
 */
PK_MUST_USE pk_result pk_json_parse(const char *text, size_t len, p11kms_rc err_code, pk_jv **out);
void pk_json_free(pk_jv *doc);

pk_jv_type pk_jv_typeof(const pk_jv *v);
const char *pk_jv_type_name(const pk_jv *v);
/* Member of an object, or NULL (also when v is not an object). */
const pk_jv *pk_jv_get(const pk_jv *obj, const char *key);
/* Element count of an array or member count of an object; 0 otherwise. */
size_t pk_jv_size(const pk_jv *v);
const pk_jv *pk_jv_at(const pk_jv *arr, size_t i);
/* Iterate an object in document order: start with *iter = NULL. */
bool pk_jv_next(const pk_jv *obj, void **iter, const char **key, const pk_jv **val);
/* String value (NUL-terminated) or NULL when not a string. */
const char *pk_jv_str(const pk_jv *v);
size_t pk_jv_strlen(const pk_jv *v);
int64_t pk_jv_int(const pk_jv *v);
/* Integer or real as double. */
double pk_jv_number(const pk_jv *v);
/* Serialise compactly with sorted keys (canonical form); caller frees with free(). */
char *pk_jv_dump(const pk_jv *v);

#endif
