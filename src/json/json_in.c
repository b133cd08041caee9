/* jansson adapter: the only file that includes jansson.h. */
#include "config.h"

#include <jansson.h>

#include "json/json_in.h"

/* pk_jv is json_t under another name, so no wrapper allocations are needed. */
#define J(v) ((json_t *)(v))
#define V(j) ((const pk_jv *)(j))

pk_result pk_json_parse(const char *text, size_t len, p11kms_rc err_code, pk_jv **out)
{
    json_error_t e;
    json_t *doc = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &e);
    PK_ENSURE(doc != NULL, err_code, "invalid JSON at line %d column %d: %s", e.line, e.column, e.text);
    *out = (pk_jv *)doc;
    return PK_OK;
}

void pk_json_free(pk_jv *doc)
{
    if (doc != NULL) json_decref(J(doc));
}

pk_jv_type pk_jv_typeof(const pk_jv *v)
{
    switch (json_typeof(J(v))) {
    case JSON_OBJECT: return PK_JV_OBJECT;
    case JSON_ARRAY: return PK_JV_ARRAY;
    case JSON_STRING: return PK_JV_STRING;
    case JSON_INTEGER: return PK_JV_INTEGER;
    case JSON_REAL: return PK_JV_REAL;
    case JSON_TRUE: return PK_JV_TRUE;
    case JSON_FALSE: return PK_JV_FALSE;
    case JSON_NULL:
    default: return PK_JV_NULL;
    }
}

const char *pk_jv_type_name(const pk_jv *v)
{
    switch (pk_jv_typeof(v)) {
    case PK_JV_OBJECT: return "object";
    case PK_JV_ARRAY: return "array";
    case PK_JV_STRING: return "string";
    case PK_JV_INTEGER:
    case PK_JV_REAL: return "number";
    case PK_JV_TRUE:
    case PK_JV_FALSE: return "boolean";
    case PK_JV_NULL:
    default: return "null";
    }
}

const pk_jv *pk_jv_get(const pk_jv *obj, const char *key)
{
    if (obj == NULL || !json_is_object(J(obj))) return NULL;
    return V(json_object_get(J(obj), key));
}

size_t pk_jv_size(const pk_jv *v)
{
    if (v == NULL) return 0;
    if (json_is_array(J(v))) return json_array_size(J(v));
    if (json_is_object(J(v))) return json_object_size(J(v));
    return 0;
}

const pk_jv *pk_jv_at(const pk_jv *arr, size_t i)
{
    if (arr == NULL || !json_is_array(J(arr))) return NULL;
    return V(json_array_get(J(arr), i));
}

bool pk_jv_next(const pk_jv *obj, void **iter, const char **key, const pk_jv **val)
{
    void *it;
    if (obj == NULL || !json_is_object(J(obj))) return false;
    it = *iter == NULL ? json_object_iter(J(obj)) : json_object_iter_next(J(obj), *iter);
    if (it == NULL) return false;
    *iter = it;
    *key = json_object_iter_key(it);
    *val = V(json_object_iter_value(it));
    return true;
}

const char *pk_jv_str(const pk_jv *v)
{
    return v != NULL && json_is_string(J(v)) ? json_string_value(J(v)) : NULL;
}

size_t pk_jv_strlen(const pk_jv *v)
{
    return v != NULL && json_is_string(J(v)) ? json_string_length(J(v)) : 0;
}

int64_t pk_jv_int(const pk_jv *v)
{
    return v != NULL && json_is_integer(J(v)) ? (int64_t)json_integer_value(J(v)) : 0;
}

double pk_jv_number(const pk_jv *v)
{
    return v != NULL ? json_number_value(J(v)) : 0.0;
}

char *pk_jv_dump(const pk_jv *v)
{
    return json_dumps(J(v), JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
}
