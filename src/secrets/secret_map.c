/*
 * Secret maps: string -> string, kept in locked memory and wiped on free.
 *
 * The canonical encoding (secrets.h) is what gets encrypted. The JSON
 * reader here is deliberately small and strict (RFC 8259 flat object of
 * strings, no duplicates) so that secret values never pass through
 * jansson, whose allocations are not wiped.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "crypto/wipe.h"
#include "secrets/secrets.h"

#define MAP_MAGIC "PKSM"
#define MAP_FORMAT 1

typedef struct pair {
    char *key;   /* secure memory, NUL-terminated */
    size_t klen;
    char *val;
    size_t vlen;
} pair;

struct p11kms_secret_map {
    pair p[PK_SECRET_MAX_PAIRS + 1];
    size_t n;
};

/* ---- cursor helpers shared by the record codecs ---- */

uint32_t pk_cur_u32(pk_cur *c)
{
    uint32_t v;
    if (c->bad || c->n < 4) {
        c->bad = true;
        return 0;
    }
    v = pk_load_be32(c->p);
    c->p += 4;
    c->n -= 4;
    return v;
}

uint64_t pk_cur_u64(pk_cur *c)
{
    uint64_t v;
    if (c->bad || c->n < 8) {
        c->bad = true;
        return 0;
    }
    v = pk_load_be64(c->p);
    c->p += 8;
    c->n -= 8;
    return v;
}

pk_bytes pk_cur_lp(pk_cur *c)
{
    uint32_t len = pk_cur_u32(c);
    pk_bytes b = {NULL, 0};
    if (c->bad || len > c->n) {
        c->bad = true;
        return b;
    }
    b = pk_bytes_of(c->p, len);
    c->p += len;
    c->n -= len;
    return b;
}

void pk_cur_str(pk_cur *c, char *out, size_t size)
{
    pk_bytes b = pk_cur_lp(c);
    if (c->bad || b.len >= size || (b.len && memchr(b.ptr, 0, b.len) != NULL)) {
        c->bad = true;
        out[0] = '\0';
        return;
    }
    if (b.len) memcpy(out, b.ptr, b.len);
    out[b.len] = '\0';
}

/* ---- UTF-8 ---- */

bool pk_utf8_valid(const uint8_t *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = p[i];
        size_t k;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF) k = 1, cp = c & 0x1F;
        else if (c >= 0xE0 && c <= 0xEF) k = 2, cp = c & 0x0F;
        else if (c >= 0xF0 && c <= 0xF4) k = 3, cp = c & 0x07;
        else return false;
        for (size_t j = 1; j <= k; j++) {
            if (i + j >= n || (p[i + j] & 0xC0) != 0x80) return false;
            cp = (cp << 6) | (p[i + j] & 0x3F);
        }
        /* Overlong forms, surrogates and code points past U+10FFFF. */
        if ((k == 2 && cp < 0x800) || (k == 3 && (cp < 0x10000 || cp > 0x10FFFF)) || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += k + 1;
    }
    return true;
}

/* ---- the map ---- */

pk_result pk_map_new(p11kms_secret_map **out)
{
    *out = pk_secmem_alloc(sizeof(**out));
    PK_ENSURE_ALLOC(*out);
    return PK_OK;
}

void pk_map_free(p11kms_secret_map *m)
{
    if (m == NULL) return;
    for (size_t i = 0; i < m->n; i++) {
        pk_secmem_free(m->p[i].key);
        pk_secmem_free(m->p[i].val);
    }
    pk_secmem_free(m);
}

static int keycmp(const char *a, size_t alen, const char *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    if (c != 0) return c;
    return alen < blen ? -1 : alen > blen;
}

/* Index of key, or -(insertion point) - 1. */
static long find(const p11kms_secret_map *m, const char *key, size_t klen)
{
    size_t lo = 0, hi = m->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = keycmp(m->p[mid].key, m->p[mid].klen, key, klen);
        if (c == 0) return (long)mid;
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return -(long)lo - 1;
}

static char *sec_strndup(const char *s, size_t n)
{
    char *d = pk_secmem_alloc(n + 1);
    if (d != NULL && n) memcpy(d, s, n);
    return d;
}

pk_result pk_map_set(p11kms_secret_map *m, const char *key, size_t klen, const char *val, size_t vlen)
{
    long at;
    char *k, *v;
    PK_ENSURE(klen > 0, P11KMS_ERR_INVALID_ARGUMENT, "secret map keys must not be empty");
    PK_ENSURE(klen <= PK_SECRET_KEY_MAX, P11KMS_ERR_INVALID_ARGUMENT, "secret map key longer than %d bytes",
              PK_SECRET_KEY_MAX);
    PK_ENSURE(memchr(key, 0, klen) == NULL && pk_utf8_valid((const uint8_t *)key, klen), P11KMS_ERR_INVALID_ARGUMENT,
              "secret map keys must be UTF-8 without NUL");
    /* The value is never named in a message. */
    PK_ENSURE(vlen <= PK_SECRET_MAX_BYTES, P11KMS_ERR_LIMIT, "secret map is larger than %d bytes", PK_SECRET_MAX_BYTES);
    PK_ENSURE(memchr(val, 0, vlen) == NULL && pk_utf8_valid((const uint8_t *)val, vlen), P11KMS_ERR_INVALID_ARGUMENT,
              "the value of secret map key '%.*s' is not UTF-8 text", (int)klen, key);
    at = find(m, key, klen);
    v = sec_strndup(val, vlen);
    PK_ENSURE_ALLOC(v);
    if (at >= 0) {
        pk_secmem_free(m->p[at].val);
        m->p[at].val = v;
        m->p[at].vlen = vlen;
        return PK_OK;
    }
    if (m->n >= PK_SECRET_MAX_PAIRS) {
        pk_secmem_free(v);
        return pk_fail(P11KMS_ERR_LIMIT, "a secret map holds at most %d pairs", PK_SECRET_MAX_PAIRS);
    }
    k = sec_strndup(key, klen);
    if (k == NULL) {
        pk_secmem_free(v);
        return pk_fail(P11KMS_ERR_NO_MEMORY, "out of memory");
    }
    at = -at - 1;
    memmove(&m->p[at + 1], &m->p[at], (m->n - (size_t)at) * sizeof(pair));
    m->p[at] = (pair){k, klen, v, vlen};
    m->n++;
    return PK_OK;
}

bool pk_map_remove(p11kms_secret_map *m, const char *key)
{
    long at = find(m, key, strlen(key));
    if (at < 0) return false;
    pk_secmem_free(m->p[at].key);
    pk_secmem_free(m->p[at].val);
    memmove(&m->p[at], &m->p[at + 1], (m->n - (size_t)at - 1) * sizeof(pair));
    m->n--;
    return true;
}

size_t pk_map_count(const p11kms_secret_map *m) { return m ? m->n : 0; }
const char *pk_map_key(const p11kms_secret_map *m, size_t i) { return m && i < m->n ? m->p[i].key : NULL; }
const char *pk_map_value(const p11kms_secret_map *m, size_t i) { return m && i < m->n ? m->p[i].val : NULL; }

const char *pk_map_get(const p11kms_secret_map *m, const char *key)
{
    long at;
    if (m == NULL || key == NULL) return NULL;
    at = find(m, key, strlen(key));
    return at >= 0 ? m->p[at].val : NULL;
}

pk_result pk_map_check(const p11kms_secret_map *m)
{
    size_t total = 0;
    PK_ENSURE(m != NULL, P11KMS_ERR_INVALID_ARGUMENT, "no secret map given");
    PK_ENSURE(m->n >= 1, P11KMS_ERR_INVALID_ARGUMENT, "a secret map needs at least one key");
    for (size_t i = 0; i < m->n; i++) total += m->p[i].klen + m->p[i].vlen;
    PK_ENSURE(total <= PK_SECRET_MAX_BYTES, P11KMS_ERR_LIMIT, "secret map is larger than %d bytes (keys and values)",
              PK_SECRET_MAX_BYTES);
    return PK_OK;
}

pk_result pk_map_encode(const p11kms_secret_map *m, pk_secbuf *out)
{
    size_t need = 9;
    uint8_t be[4];
    PK_GUARD(pk_map_check(m));
    for (size_t i = 0; i < m->n; i++) need += 8 + m->p[i].klen + m->p[i].vlen;
    PK_GUARD(pk_secbuf_reserve(out, need));
    PK_GUARD(pk_secbuf_append(out, MAP_MAGIC, 4));
    PK_GUARD(pk_secbuf_append(out, &(uint8_t){MAP_FORMAT}, 1));
    pk_store_be32(be, (uint32_t)m->n);
    PK_GUARD(pk_secbuf_append(out, be, 4));
    for (size_t i = 0; i < m->n; i++) {
        pk_store_be32(be, (uint32_t)m->p[i].klen);
        PK_GUARD(pk_secbuf_append(out, be, 4));
        PK_GUARD(pk_secbuf_append(out, m->p[i].key, m->p[i].klen));
        pk_store_be32(be, (uint32_t)m->p[i].vlen);
        PK_GUARD(pk_secbuf_append(out, be, 4));
        PK_GUARD(pk_secbuf_append(out, m->p[i].val, m->p[i].vlen));
    }
    return PK_OK;
}

pk_result pk_map_decode(pk_bytes enc, p11kms_secret_map **out)
{
    p11kms_secret_map *m = NULL;
    pk_result r = PK_OK;
    pk_cur c;
    uint32_t n;

    *out = NULL;
    PK_CHECK(enc.len >= 9 && memcmp(enc.ptr, MAP_MAGIC, 4) == 0 && enc.ptr[4] == MAP_FORMAT, P11KMS_ERR_INTEGRITY,
             "decrypted secret has an unknown format");
    c = pk_cur_of(enc.ptr + 5, enc.len - 5);
    n = pk_cur_u32(&c);
    PK_CHECK(!c.bad && n >= 1 && n <= PK_SECRET_MAX_PAIRS, P11KMS_ERR_INTEGRITY, "decrypted secret is malformed");
    PK_TRY(pk_map_new(&m));
    for (uint32_t i = 0; i < n; i++) {
        pk_bytes k = pk_cur_lp(&c), v = pk_cur_lp(&c);
        PK_CHECK(!c.bad, P11KMS_ERR_INTEGRITY, "decrypted secret is malformed");
        /* Canonical: strictly ascending keys, so set() appends at the end. */
        PK_CHECK(m->n == 0 || keycmp(m->p[m->n - 1].key, m->p[m->n - 1].klen, (const char *)k.ptr, k.len) < 0,
                 P11KMS_ERR_INTEGRITY, "decrypted secret is not canonical");
        PK_TRY(pk_map_set(m, (const char *)k.ptr, k.len, (const char *)v.ptr, v.len));
    }
    PK_CHECK(c.n == 0, P11KMS_ERR_INTEGRITY, "decrypted secret has trailing bytes");
    *out = m;
    m = NULL;
out:
    pk_map_free(m);
    return r;
}

/* ---- strict flat JSON ---- */

typedef struct jp {
    const uint8_t *p;
    size_t n, i;
} jp;

static void ws(jp *j)
{
    while (j->i < j->n && (j->p[j->i] == ' ' || j->p[j->i] == '\t' || j->p[j->i] == '\n' || j->p[j->i] == '\r'))
        j->i++;
}

static int hexval(uint8_t c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static bool hex4(jp *j, uint32_t *out)
{
    uint32_t v = 0;
    if (j->i + 4 > j->n) return false;
    for (int k = 0; k < 4; k++) {
        int h = hexval(j->p[j->i++]);
        if (h < 0) return false;
        v = (v << 4) | (uint32_t)h;
    }
    *out = v;
    return true;
}

static size_t put_utf8(uint8_t *o, uint32_t cp)
{
    if (cp < 0x80) { o[0] = (uint8_t)cp; return 1; }
    if (cp < 0x800) { o[0] = (uint8_t)(0xC0 | (cp >> 6)); o[1] = (uint8_t)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        o[0] = (uint8_t)(0xE0 | (cp >> 12)); o[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (uint8_t)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (uint8_t)(0xF0 | (cp >> 18)); o[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F)); o[3] = (uint8_t)(0x80 | (cp & 0x3F));
    return 4;
}

/* A JSON string into the secure buffer (appended); never echoes content in errors. */
static pk_result jstring(jp *j, pk_secbuf *out, const char *what)
{
    PK_ENSURE(j->i < j->n && j->p[j->i] == '"', P11KMS_ERR_INVALID_ARGUMENT,
              "secret JSON: expected a string %s at offset %zu", what, j->i);
    j->i++;
    for (;;) {
        uint8_t c, u[4];
        size_t ulen;
        uint32_t cp;
        PK_ENSURE(j->i < j->n, P11KMS_ERR_INVALID_ARGUMENT, "secret JSON: unterminated string");
        c = j->p[j->i++];
        if (c == '"') return PK_OK;
        PK_ENSURE(c >= 0x20, P11KMS_ERR_INVALID_ARGUMENT, "secret JSON: control character in a string at offset %zu",
                  j->i - 1);
        if (c != '\\') {
            PK_GUARD(pk_secbuf_append(out, &c, 1));
            continue;
        }
        PK_ENSURE(j->i < j->n, P11KMS_ERR_INVALID_ARGUMENT, "secret JSON: unterminated string");
        c = j->p[j->i++];
        switch (c) {
        case '"': case '\\': case '/': u[0] = c; ulen = 1; break;
        case 'b': u[0] = '\b'; ulen = 1; break;
        case 'f': u[0] = '\f'; ulen = 1; break;
        case 'n': u[0] = '\n'; ulen = 1; break;
        case 'r': u[0] = '\r'; ulen = 1; break;
        case 't': u[0] = '\t'; ulen = 1; break;
        case 'u':
            PK_ENSURE(hex4(j, &cp), P11KMS_ERR_INVALID_ARGUMENT, "secret JSON: bad \\u escape at offset %zu", j->i);
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                uint32_t lo;
                PK_ENSURE(j->i + 2 <= j->n && j->p[j->i] == '\\' && j->p[j->i + 1] == 'u', P11KMS_ERR_INVALID_ARGUMENT,
                          "secret JSON: unpaired surrogate at offset %zu", j->i);
                j->i += 2;
                PK_ENSURE(hex4(j, &lo) && lo >= 0xDC00 && lo <= 0xDFFF, P11KMS_ERR_INVALID_ARGUMENT,
                          "secret JSON: unpaired surrogate at offset %zu", j->i);
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else {
                PK_ENSURE(!(cp >= 0xDC00 && cp <= 0xDFFF), P11KMS_ERR_INVALID_ARGUMENT,
                          "secret JSON: unpaired surrogate at offset %zu", j->i);
            }
            PK_ENSURE(cp != 0, P11KMS_ERR_INVALID_ARGUMENT, "secret JSON: NUL characters are not allowed");
            ulen = put_utf8(u, cp);
            break;
        default:
            return pk_fail(P11KMS_ERR_INVALID_ARGUMENT, "secret JSON: bad escape at offset %zu", j->i - 1);
        }
        PK_GUARD(pk_secbuf_append(out, u, ulen));
    }
}

pk_result pk_map_from_json(const char *text, size_t len, p11kms_secret_map **out)
{
    pk_result r = PK_OK;
    p11kms_secret_map *m = NULL;
    pk_secbuf k = PK_SECBUF_INIT, v = PK_SECBUF_INIT;
    jp j = {(const uint8_t *)text, len, 0};

    *out = NULL;
    PK_CHECK(text != NULL, P11KMS_ERR_INVALID_ARGUMENT, "no secret JSON given");
    PK_CHECK(len <= 4 * PK_SECRET_MAX_BYTES, P11KMS_ERR_LIMIT, "secret JSON is larger than %d bytes",
             4 * PK_SECRET_MAX_BYTES);
    PK_CHECK(pk_utf8_valid(j.p, len), P11KMS_ERR_INVALID_ARGUMENT, "secret JSON is not UTF-8");
    PK_TRY(pk_map_new(&m));
    PK_TRY(pk_secbuf_alloc(&k, 64));
    PK_TRY(pk_secbuf_alloc(&v, 256));
    ws(&j);
    PK_CHECK(j.i < j.n && j.p[j.i] == '{', P11KMS_ERR_INVALID_ARGUMENT, "secret JSON must be an object of strings");
    j.i++;
    ws(&j);
    if (j.i < j.n && j.p[j.i] == '}') {
        j.i++;
    } else {
        for (;;) {
            k.len = v.len = 0;
            ws(&j);
            PK_TRY(jstring(&j, &k, "key"));
            ws(&j);
            PK_CHECK(j.i < j.n && j.p[j.i] == ':', P11KMS_ERR_INVALID_ARGUMENT, "secret JSON: expected ':' at offset %zu",
                     j.i);
            j.i++;
            ws(&j);
            PK_CHECK(j.i < j.n && j.p[j.i] == '"', P11KMS_ERR_INVALID_ARGUMENT,
                     "secret JSON: the value of '%.*s' must be a string", (int)(k.len > 64 ? 64 : k.len),
                     (const char *)k.data);
            PK_TRY(jstring(&j, &v, "value"));
            {
                bool dup = k.len > 0 && memchr(k.data, 0, k.len) == NULL && find(m, (const char *)k.data, k.len) >= 0;
                PK_CHECK(!dup, P11KMS_ERR_INVALID_ARGUMENT, "secret JSON: key '%.*s' is given twice",
                         (int)(k.len > 64 ? 64 : k.len), (const char *)k.data);
            }
            PK_TRY(pk_map_set(m, k.len ? (const char *)k.data : "", k.len, v.len ? (const char *)v.data : "", v.len));
            ws(&j);
            PK_CHECK(j.i < j.n && (j.p[j.i] == ',' || j.p[j.i] == '}'), P11KMS_ERR_INVALID_ARGUMENT,
                     "secret JSON: expected ',' or '}' at offset %zu", j.i);
            if (j.p[j.i++] == '}') break;
        }
    }
    ws(&j);
    PK_CHECK(j.i == j.n, P11KMS_ERR_INVALID_ARGUMENT, "secret JSON: trailing characters at offset %zu", j.i);
    PK_TRY(pk_map_check(m));
    *out = m;
    m = NULL;
out:
    pk_secbuf_free(&k);
    pk_secbuf_free(&v);
    pk_map_free(m);
    return r;
}

static pk_result json_str(pk_secbuf *o, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    PK_GUARD(pk_secbuf_append(o, "\"", 1));
    for (size_t i = 0; i < n; i++) {
        uint8_t c = (uint8_t)s[i];
        char e[6];
        if (c == '"' || c == '\\') {
            e[0] = '\\';
            e[1] = (char)c;
            PK_GUARD(pk_secbuf_append(o, e, 2));
        } else if (c < 0x20) {
            memcpy(e, "\\u00", 4);
            e[4] = hex[c >> 4];
            e[5] = hex[c & 15];
            PK_GUARD(pk_secbuf_append(o, e, 6));
        } else {
            PK_GUARD(pk_secbuf_append(o, &c, 1));
        }
    }
    return pk_secbuf_append(o, "\"", 1);
}

pk_result pk_map_to_json(const p11kms_secret_map *m, pk_secbuf *out)
{
    PK_GUARD(pk_secbuf_append(out, "{", 1));
    for (size_t i = 0; m != NULL && i < m->n; i++) {
        if (i) PK_GUARD(pk_secbuf_append(out, ",", 1));
        PK_GUARD(json_str(out, m->p[i].key, m->p[i].klen));
        PK_GUARD(pk_secbuf_append(out, ":", 1));
        PK_GUARD(json_str(out, m->p[i].val, m->p[i].vlen));
    }
    PK_GUARD(pk_secbuf_append(out, "}", 1));
    return pk_secbuf_cstr(out);
}
