#include "config.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "util/json_out.h"

void pk_jo_init(pk_json_out *j, pk_buf *buf)
{
    memset(j, 0, sizeof(*j));
    j->buf = buf;
    j->err = PK_OK;
}

static bool jo_live(pk_json_out *j) { return pk_ok(j->err); }

static void jo_put(pk_json_out *j, const char *s, size_t n)
{
    if (jo_live(j)) j->err = pk_buf_append(j->buf, s, n);
}

/* A value at the current level: emit a separating comma when needed. */
static void jo_value_prefix(pk_json_out *j)
{
    if (!jo_live(j)) return;
    if (j->need_comma[j->depth]) jo_put(j, ",", 1);
    j->need_comma[j->depth] = true;
}

static void jo_open(pk_json_out *j, char c)
{
    jo_value_prefix(j);
    if (!jo_live(j)) return;
    if (j->depth + 1 >= PK_JSON_MAX_DEPTH) {
        j->err = pk_fail(P11KMS_ERR_INTERNAL, "JSON output nested too deeply");
        return;
    }
    jo_put(j, &c, 1);
    j->depth++;
    j->need_comma[j->depth] = false;
}

static void jo_close(pk_json_out *j, char c)
{
    if (!jo_live(j)) return;
    jo_put(j, &c, 1);
    if (j->depth > 0) j->depth--;
}

void pk_jo_obj_begin(pk_json_out *j) { jo_open(j, '{'); }
void pk_jo_obj_end(pk_json_out *j) { jo_close(j, '}'); }
void pk_jo_arr_begin(pk_json_out *j) { jo_open(j, '['); }
void pk_jo_arr_end(pk_json_out *j) { jo_close(j, ']'); }

/* Length of the valid UTF-8 sequence at s, within avail bytes (RFC 3629), or 0. */
static size_t utf8_seq(const unsigned char *s, size_t avail)
{
    size_t n;
    uint32_t cp;
    if (s[0] < 0x80) return 1;
    if (s[0] >= 0xc2 && s[0] <= 0xdf) n = 2, cp = s[0] & 0x1fu;
    else if (s[0] >= 0xe0 && s[0] <= 0xef) n = 3, cp = s[0] & 0x0fu;
    else if (s[0] >= 0xf0 && s[0] <= 0xf4) n = 4, cp = s[0] & 0x07u;
    else return 0;
    if (n > avail) return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3fu);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

/*
 * Runs of plain characters are copied at once (the audit trail formats
 * every record with this); bytes that are not UTF-8 become U+FFFD, so the
 * output is always JSON that a strict parser reads back.
 */
pk_result pk_json_escape(pk_buf *b, const char *s, size_t n)
{
    static const char hexd[] = "0123456789abcdef";
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, run = 0, k;
    char esc[6];

    PK_GUARD(pk_buf_reserve(b, n + 2));
    PK_GUARD(pk_buf_append(b, "\"", 1));
    while (i < n) {
        unsigned char c = u[i];
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
            i++;
            continue;
        }
        if (i > run) PK_GUARD(pk_buf_append(b, u + run, i - run));
        if (c >= 0x80) {
            k = utf8_seq(u + i, n - i);
            PK_GUARD(k != 0 ? pk_buf_append(b, u + i, k) : pk_buf_append(b, "\xef\xbf\xbd", 3));
            i += k != 0 ? k : 1;
        } else {
            switch (c) {
            case '"': PK_GUARD(pk_buf_append(b, "\\\"", 2)); break;
            case '\\': PK_GUARD(pk_buf_append(b, "\\\\", 2)); break;
            case '\n': PK_GUARD(pk_buf_append(b, "\\n", 2)); break;
            case '\r': PK_GUARD(pk_buf_append(b, "\\r", 2)); break;
            case '\t': PK_GUARD(pk_buf_append(b, "\\t", 2)); break;
            default:
                memcpy(esc, "\\u00", 4);
                esc[4] = hexd[c >> 4];
                esc[5] = hexd[c & 15];
                PK_GUARD(pk_buf_append(b, esc, 6));
            }
            i++;
        }
        run = i;
    }
    if (i > run) PK_GUARD(pk_buf_append(b, u + run, i - run));
    return pk_buf_append(b, "\"", 1);
}

void pk_jo_key(pk_json_out *j, const char *key)
{
    jo_value_prefix(j);
    if (jo_live(j)) j->err = pk_json_escape(j->buf, key, strlen(key));
    jo_put(j, ":", 1);
    /* The value that follows must not get another comma. */
    j->need_comma[j->depth] = false;
}

/* After a value at object level, the next key needs a comma. */
static void jo_after_value(pk_json_out *j) { j->need_comma[j->depth] = true; }

void pk_jo_strn(pk_json_out *j, const char *s, size_t n)
{
    jo_value_prefix(j);
    if (jo_live(j)) j->err = pk_json_escape(j->buf, s, n);
    jo_after_value(j);
}

void pk_jo_str(pk_json_out *j, const char *s)
{
    if (s == NULL) {
        pk_jo_null(j);
        return;
    }
    pk_jo_strn(j, s, strlen(s));
}

static void jo_scalar(pk_json_out *j, const char *text)
{
    jo_value_prefix(j);
    jo_put(j, text, strlen(text));
    jo_after_value(j);
}

void pk_jo_int(pk_json_out *j, int64_t v)
{
    char t[32];
    snprintf(t, sizeof(t), "%" PRId64, v);
    jo_scalar(j, t);
}

void pk_jo_uint(pk_json_out *j, uint64_t v)
{
    char t[32];
    snprintf(t, sizeof(t), "%" PRIu64, v);
    jo_scalar(j, t);
}

void pk_jo_double(pk_json_out *j, double v)
{
    char t[64];
    if (!isfinite(v)) v = 0.0; /* JSON has no NaN or infinity */
    snprintf(t, sizeof(t), "%.3f", v);
    jo_scalar(j, t);
}

void pk_jo_bool(pk_json_out *j, bool v) { jo_scalar(j, v ? "true" : "false"); }
void pk_jo_null(pk_json_out *j) { jo_scalar(j, "null"); }
void pk_jo_raw(pk_json_out *j, const char *json) { jo_scalar(j, json); }

void pk_jo_kstr(pk_json_out *j, const char *key, const char *s)
{
    pk_jo_key(j, key);
    pk_jo_str(j, s);
}

void pk_jo_kint(pk_json_out *j, const char *key, int64_t v)
{
    pk_jo_key(j, key);
    pk_jo_int(j, v);
}

void pk_jo_kbool(pk_json_out *j, const char *key, bool v)
{
    pk_jo_key(j, key);
    pk_jo_bool(j, v);
}

pk_result pk_jo_result(const pk_json_out *j) { return j->err; }
