/*
 * A streaming JSON writer over pk_buf. It handles commas and escaping, so
 * output is well-formed by construction. Used for CLI --json output and
 * audit records; parsing JSON is src/json/'s job.
 */
#ifndef PK_UTIL_JSON_OUT_H
#define PK_UTIL_JSON_OUT_H

#include <stdbool.h>
#include <stdint.h>

#include "util/bytes.h"
#include "util/result.h"

#define PK_JSON_MAX_DEPTH 16

typedef struct pk_json_out {
    pk_buf *buf;
    int depth;
    bool need_comma[PK_JSON_MAX_DEPTH];
    pk_result err; /* first error; later calls are no-ops */
} pk_json_out;

void pk_jo_init(pk_json_out *j, pk_buf *buf);
void pk_jo_obj_begin(pk_json_out *j);
void pk_jo_obj_end(pk_json_out *j);
void pk_jo_arr_begin(pk_json_out *j);
void pk_jo_arr_end(pk_json_out *j);
void pk_jo_key(pk_json_out *j, const char *key);
void pk_jo_str(pk_json_out *j, const char *s);
void pk_jo_strn(pk_json_out *j, const char *s, size_t n);
void pk_jo_int(pk_json_out *j, int64_t v);
void pk_jo_uint(pk_json_out *j, uint64_t v);
void pk_jo_double(pk_json_out *j, double v);
void pk_jo_bool(pk_json_out *j, bool v);
void pk_jo_null(pk_json_out *j);
/* Already-serialised JSON value. */
void pk_jo_raw(pk_json_out *j, const char *json);
/* Key/value shorthands. */
void pk_jo_kstr(pk_json_out *j, const char *key, const char *s);
void pk_jo_kint(pk_json_out *j, const char *key, int64_t v);
void pk_jo_kbool(pk_json_out *j, const char *key, bool v);
/* First error seen, or PK_OK. */
PK_MUST_USE pk_result pk_jo_result(const pk_json_out *j);

/* Escape a string as a JSON string literal (with quotes) into an arbitrary sink. */
PK_MUST_USE pk_result pk_json_escape(pk_buf *b, const char *s, size_t n);

#endif
