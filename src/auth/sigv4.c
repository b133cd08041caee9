/*
 * SigV4 canonicalisation (AWS General Reference, "Elements of an AWS API
 * request signature" / "Create a canonical request"). Everything here is
 * public data; the comparison against a key happens in core/api_sigv4.c.
 */
#include "config.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "auth/sigv4.h"
#include "crypto/crypto.h"
#include "util/codec.h"

#define SIGV4_MAX_QUERY_PARAMS 1024

static bool is_space(char c) { return c == ' ' || c == '\t'; }

static const char *skip_space(const char *s)
{
    while (is_space(*s)) s++;
    return s;
}

/* Copy [s, s+n) into out (size) as a string; false when it does not fit or is empty. */
static bool copy_part(char *out, size_t size, const char *s, size_t n)
{
    if (n == 0 || n >= size) return false;
    memcpy(out, s, n);
    out[n] = '\0';
    return true;
}

/* Credential=AKID/DATE/REGION/SERVICE/TERMINATOR */
static pk_result parse_credential(const char *s, size_t n, pk_sigv4_auth *out)
{
    char *parts[5] = {out->akid, out->date, out->region, out->service, out->terminator};
    size_t sizes[5] = {sizeof(out->akid), sizeof(out->date), sizeof(out->region), sizeof(out->service),
                       sizeof(out->terminator)};
    const char *end = s + n;
    for (size_t i = 0; i < 5; i++) {
        const char *slash = i < 4 ? memchr(s, '/', (size_t)(end - s)) : end;
        PK_ENSURE(slash != NULL && copy_part(parts[i], sizes[i], s, (size_t)(slash - s)),
                  P11KMS_ERR_INCOMPLETE_SIGNATURE,
                  "Authorization Credential must be ACCESS_KEY_ID/YYYYMMDD/REGION/SERVICE/aws4_request");
        s = slash + 1;
    }
    PK_ENSURE(strchr(out->terminator, '/') == NULL && strlen(out->date) == 8, P11KMS_ERR_INCOMPLETE_SIGNATURE,
              "Authorization Credential must be ACCESS_KEY_ID/YYYYMMDD/REGION/SERVICE/aws4_request");
    return PK_OK;
}

static pk_result parse_signed_headers(const char *s, size_t n, pk_sigv4_auth *out)
{
    PK_ENSURE(copy_part(out->signed_headers, sizeof(out->signed_headers), s, n), P11KMS_ERR_INCOMPLETE_SIGNATURE,
              "Authorization SignedHeaders is empty or too long");
    for (const char *p = out->signed_headers; *p; p++)
        PK_ENSURE(!isupper((unsigned char)*p) && *p > ' ' && *p != ',', P11KMS_ERR_INCOMPLETE_SIGNATURE,
                  "Authorization SignedHeaders must be lowercase names separated by ';'");
    return PK_OK;
}

static pk_result parse_signature(const char *s, size_t n, pk_sigv4_auth *out)
{
    char hex[2 * PK_SIGV4_SIG_LEN + 1];
    PK_ENSURE(n == 2 * PK_SIGV4_SIG_LEN, P11KMS_ERR_SIGNATURE_INVALID,
              "the request signature is not 64 hexadecimal digits");
    memcpy(hex, s, n);
    hex[n] = '\0';
    for (size_t i = 0; i < n; i++)
        PK_ENSURE(isxdigit((unsigned char)hex[i]) && !isupper((unsigned char)hex[i]), P11KMS_ERR_SIGNATURE_INVALID,
                  "the request signature is not 64 lowercase hexadecimal digits");
    PK_GUARD(pk_hex_decode(hex, out->signature, sizeof(out->signature)));
    return PK_OK;
}

pk_result pk_sigv4_parse_authorization(const char *value, pk_sigv4_auth *out)
{
    const size_t alg_len = strlen(PK_SIGV4_ALGORITHM);
    bool have[3] = {false, false, false};
    const char *s;

    memset(out, 0, sizeof(*out));
    PK_ENSURE(value != NULL, P11KMS_ERR_INCOMPLETE_SIGNATURE, "the request has no Authorization header");
    PK_ENSURE(strncmp(value, PK_SIGV4_ALGORITHM, alg_len) == 0 && is_space(value[alg_len]),
              P11KMS_ERR_INCOMPLETE_SIGNATURE, "Authorization must use the AWS4-HMAC-SHA256 algorithm");
    s = skip_space(value + alg_len);
    while (*s) {
        const char *comma = strchr(s, ',');
        const char *end = comma ? comma : s + strlen(s);
        const char *eq = memchr(s, '=', (size_t)(end - s));
        const char *v;
        size_t klen, vlen;
        PK_ENSURE(eq != NULL, P11KMS_ERR_INCOMPLETE_SIGNATURE, "Authorization component without '='");
        klen = (size_t)(eq - s);
        v = eq + 1;
        vlen = (size_t)(end - v);
        while (vlen > 0 && is_space(v[vlen - 1])) vlen--;
        if (klen == 10 && strncmp(s, "Credential", 10) == 0 && !have[0]) {
            PK_GUARD(parse_credential(v, vlen, out));
            have[0] = true;
        } else if (klen == 13 && strncmp(s, "SignedHeaders", 13) == 0 && !have[1]) {
            PK_GUARD(parse_signed_headers(v, vlen, out));
            have[1] = true;
        } else if (klen == 9 && strncmp(s, "Signature", 9) == 0 && !have[2]) {
            PK_GUARD(parse_signature(v, vlen, out));
            have[2] = true;
        } else {
            return pk_fail(P11KMS_ERR_INCOMPLETE_SIGNATURE, "Authorization has an unknown or repeated component");
        }
        s = comma ? skip_space(comma + 1) : end;
    }
    PK_ENSURE(have[0] && have[1] && have[2], P11KMS_ERR_INCOMPLETE_SIGNATURE,
              "Authorization must carry Credential, SignedHeaders and Signature");
    return PK_OK;
}

bool pk_sigv4_signs(const pk_sigv4_auth *a, const char *name)
{
    size_t n = strlen(name);
    const char *p = a->signed_headers;
    while (*p) {
        const char *semi = strchr(p, ';');
        size_t len = semi ? (size_t)(semi - p) : strlen(p);
        if (len == n && strncmp(p, name, n) == 0) return true;
        if (semi == NULL) break;
        p = semi + 1;
    }
    return false;
}

const char *pk_sigv4_header(const p11kms_sigv4_request *req, const char *name, bool *dup)
{
    const char *found = NULL;
    *dup = false;
    for (size_t i = 0; i < req->nheaders; i++) {
        if (req->headers[i].name == NULL || strcasecmp(req->headers[i].name, name) != 0) continue;
        if (found != NULL) *dup = true;
        found = req->headers[i].value;
    }
    return found;
}

static int digits(const char *s, size_t n)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i])) return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

bool pk_sigv4_parse_amz_date(const char *s, int64_t *ms)
{
    struct tm tm;
    int y, mo, d, h, mi, se;
    time_t t;
    if (s == NULL || strlen(s) != PK_SIGV4_AMZ_DATE_LEN || s[8] != 'T' || s[15] != 'Z') return false;
    y = digits(s, 4), mo = digits(s + 4, 2), d = digits(s + 6, 2);
    h = digits(s + 9, 2), mi = digits(s + 11, 2), se = digits(s + 13, 2);
    if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31 || h < 0 || h > 23 || mi < 0 || mi > 59 || se < 0 ||
        se > 60)
        return false;
    memset(&tm, 0, sizeof(tm));
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = se;
    t = timegm(&tm);
    if (t == (time_t)-1) return false;
    *ms = (int64_t)t * 1000;
    return true;
}

/* RFC 3986 unreserved characters stay; everything else is %XX (uppercase), '/' too unless keep_slash. */
static pk_result uri_encode(pk_buf *b, const char *s, size_t n, bool keep_slash)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || (keep_slash && c == '/')) {
            PK_GUARD(pk_buf_append(b, &s[i], 1));
        } else {
            char e[3] = {'%', hex[c >> 4], hex[c & 15]};
            PK_GUARD(pk_buf_append(b, e, 3));
        }
    }
    return PK_OK;
}

/* Remove "." and ".." segments and empty segments (RFC 3986 5.2.4 as SigV4 applies it), keep a trailing '/'. */
static pk_result normalized_path(const char *path, pk_buf *out)
{
    const char *segs[256];
    size_t lens[256], n = 0, plen = strlen(path);
    const char *p = path, *end = path + plen;
    bool trailing = plen > 0 && path[plen - 1] == '/';
    while (p < end) {
        const char *slash = memchr(p, '/', (size_t)(end - p));
        size_t len = slash ? (size_t)(slash - p) : (size_t)(end - p);
        if (len == 2 && p[0] == '.' && p[1] == '.') {
            if (n > 0) n--;
        } else if (len > 0 && !(len == 1 && p[0] == '.')) {
            PK_ENSURE(n < PK_ARRAY_LEN(segs), P11KMS_ERR_INCOMPLETE_SIGNATURE, "request path has too many segments");
            segs[n] = p;
            lens[n++] = len;
        }
        p += len + 1;
    }
    PK_GUARD(pk_buf_append(out, "/", 1));
    for (size_t i = 0; i < n; i++) {
        PK_GUARD(uri_encode(out, segs[i], lens[i], false));
        if (i + 1 < n || trailing) PK_GUARD(pk_buf_append(out, "/", 1));
    }
    return PK_OK;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Percent-decode then encode again, so "a%20b" and a raw "a b" both become "a%20b". */
static pk_result query_part(pk_buf *b, const char *s, size_t n)
{
    pk_buf raw = {0};
    pk_result r = PK_OK;
    for (size_t i = 0; i < n && pk_ok(r); i++) {
        int hi, lo;
        if (s[i] == '%' && i + 2 < n && (hi = hexval(s[i + 1])) >= 0 && (lo = hexval(s[i + 2])) >= 0) {
            uint8_t c = (uint8_t)(hi << 4 | lo);
            r = pk_buf_append(&raw, &c, 1);
            i += 2;
        } else {
            r = pk_buf_append(&raw, &s[i], 1);
        }
    }
    if (pk_ok(r)) r = uri_encode(b, (const char *)raw.data, raw.len, false);
    pk_buf_free(&raw);
    return r;
}

typedef struct qparam {
    char *enc; /* "key=value", encoded */
    size_t klen;
} qparam;

static int qparam_cmp(const void *x, const void *y)
{
    const qparam *a = x, *b = y;
    size_t n = a->klen < b->klen ? a->klen : b->klen;
    int c = memcmp(a->enc, b->enc, n);
    if (c != 0) return c;
    if (a->klen != b->klen) return a->klen < b->klen ? -1 : 1;
    return strcmp(a->enc + a->klen, b->enc + b->klen);
}

static pk_result encode_param(const char *s, size_t n, qparam *out)
{
    const char *eq = memchr(s, '=', n);
    size_t klen = eq ? (size_t)(eq - s) : n;
    pk_buf b = {0};
    pk_result r = query_part(&b, s, klen);
    out->klen = b.len;
    if (pk_ok(r)) r = pk_buf_append(&b, "=", 1);
    if (pk_ok(r) && eq) r = query_part(&b, eq + 1, n - klen - 1);
    if (pk_ok(r)) r = pk_buf_cstr(&b);
    if (pk_failed(r)) {
        pk_buf_free(&b);
        return r;
    }
    out->enc = (char *)b.data;
    return PK_OK;
}

static pk_result canonical_query(const char *q, pk_buf *out)
{
    qparam *params = NULL;
    size_t n = 0;
    pk_result r = PK_OK;
    const char *p = q ? q : "", *end = p + strlen(p);

    params = calloc(SIGV4_MAX_QUERY_PARAMS, sizeof(*params));
    PK_ENSURE_ALLOC(params);
    while (p < end && pk_ok(r)) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        size_t len = amp ? (size_t)(amp - p) : (size_t)(end - p);
        if (len > 0) {
            if (n == SIGV4_MAX_QUERY_PARAMS)
                r = pk_fail(P11KMS_ERR_INCOMPLETE_SIGNATURE, "request query has too many parameters");
            else
                r = encode_param(p, len, &params[n++]);
        }
        p += len + 1;
    }
    if (pk_ok(r)) qsort(params, n, sizeof(*params), qparam_cmp);
    for (size_t i = 0; i < n && pk_ok(r); i++) {
        if (i > 0) r = pk_buf_append(out, "&", 1);
        if (pk_ok(r)) r = pk_buf_append_str(out, params[i].enc);
    }
    for (size_t i = 0; i < n; i++) free(params[i].enc);
    free(params);
    return r;
}

/* Trim the value and fold each run of spaces into one (SigV4 canonical headers). */
static pk_result header_value(pk_buf *b, const char *v)
{
    bool pending_space = false, any = false;
    for (const char *p = v ? v : ""; *p; p++) {
        if (is_space(*p)) {
            pending_space = any;
            continue;
        }
        if (pending_space) PK_GUARD(pk_buf_append(b, " ", 1));
        pending_space = false;
        any = true;
        PK_GUARD(pk_buf_append(b, p, 1));
    }
    return PK_OK;
}

static pk_result canonical_header(const p11kms_sigv4_request *req, const char *name, size_t n, pk_buf *out)
{
    bool found = false;
    PK_GUARD(pk_buf_append(out, name, n));
    PK_GUARD(pk_buf_append(out, ":", 1));
    for (size_t i = 0; i < req->nheaders; i++) {
        const char *hn = req->headers[i].name;
        if (hn == NULL || strlen(hn) != n || strncasecmp(hn, name, n) != 0) continue;
        if (found) PK_GUARD(pk_buf_append(out, ",", 1));
        PK_GUARD(header_value(out, req->headers[i].value));
        found = true;
    }
    PK_ENSURE(found, P11KMS_ERR_INCOMPLETE_SIGNATURE, "a header named in SignedHeaders is not in the request");
    return pk_buf_append(out, "\n", 1);
}

static pk_result body_hash(const p11kms_sigv4_request *req, char hex[2 * PK_SHA256_LEN + 1])
{
    uint8_t h[PK_SHA256_LEN];
    bool dup;
    const char *claimed = pk_sigv4_header(req, "x-amz-content-sha256", &dup);
    PK_GUARD(pk_sha256(req->body ? (const void *)req->body : "", req->body ? req->body_len : 0, h));
    pk_hex_encode(h, sizeof(h), hex);
    PK_ENSURE(claimed == NULL || (!dup && strcmp(claimed, hex) == 0), P11KMS_ERR_SIGNATURE_INVALID,
              "x-amz-content-sha256 does not match the SHA-256 of the request body");
    return PK_OK;
}

pk_result pk_sigv4_canonical_request(const p11kms_sigv4_request *req, const pk_sigv4_auth *a, bool normalize_path,
                                     pk_buf *out)
{
    char hex[2 * PK_SHA256_LEN + 1];
    const char *p = a->signed_headers;
    const char *path = req->path && *req->path ? req->path : "/";

    PK_ENSURE(req->method != NULL && *req->method != '\0', P11KMS_ERR_INVALID_ARGUMENT, "request without method");
    PK_GUARD(body_hash(req, hex));
    PK_GUARD(pk_buf_append_str(out, req->method));
    PK_GUARD(pk_buf_append(out, "\n", 1));
    if (normalize_path)
        PK_GUARD(normalized_path(path, out));
    else
        PK_GUARD(pk_buf_append_str(out, path));
    PK_GUARD(pk_buf_append(out, "\n", 1));
    PK_GUARD(canonical_query(req->query, out));
    PK_GUARD(pk_buf_append(out, "\n", 1));
    while (*p) {
        const char *semi = strchr(p, ';');
        size_t len = semi ? (size_t)(semi - p) : strlen(p);
        PK_ENSURE(len > 0, P11KMS_ERR_INCOMPLETE_SIGNATURE, "Authorization SignedHeaders has an empty name");
        PK_GUARD(canonical_header(req, p, len, out));
        if (semi == NULL) break;
        p = semi + 1;
    }
    PK_GUARD(pk_buf_append(out, "\n", 1));
    PK_GUARD(pk_buf_append_str(out, a->signed_headers));
    PK_GUARD(pk_buf_append(out, "\n", 1));
    return pk_buf_append_str(out, hex);
}

pk_result pk_sigv4_string_to_sign(const pk_sigv4_auth *a, const char *amz_date, const pk_buf *canonical,
                                  pk_buf *out)
{
    uint8_t h[PK_SHA256_LEN];
    char hex[2 * PK_SHA256_LEN + 1];
    PK_GUARD(pk_sha256(canonical->data ? (const void *)canonical->data : "", canonical->len, h));
    pk_hex_encode(h, sizeof(h), hex);
    PK_GUARD(pk_buf_append_str(out, PK_SIGV4_ALGORITHM "\n"));
    PK_GUARD(pk_buf_append_str(out, amz_date));
    PK_GUARD(pk_buf_append(out, "\n", 1));
    PK_GUARD(pk_buf_append_str(out, a->date));
    PK_GUARD(pk_buf_append(out, "/", 1));
    PK_GUARD(pk_buf_append_str(out, a->region));
    PK_GUARD(pk_buf_append(out, "/", 1));
    PK_GUARD(pk_buf_append_str(out, a->service));
    PK_GUARD(pk_buf_append(out, "/", 1));
    PK_GUARD(pk_buf_append_str(out, a->terminator));
    PK_GUARD(pk_buf_append(out, "\n", 1));
    return pk_buf_append_str(out, hex);
}
