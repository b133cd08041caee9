/*
 * Rendering of configuration templates (docs/SECRETS.md, "Rendering"):
 * ${secret:ID:FIELD}, ${connection:NAME:OPTION} and ${kms:BASE64}, each
 * with an optional output filter: |yaml, |json, |properties, |shell, |raw.
 *
 * Three passes. Parse: every placeholder, filter and limit is checked
 * before anything is decrypted. Resolve: each distinct secret, connection
 * and kms blob is read once, by its own public operation (so one audit
 * record each, however often the template names it), and kept in locked
 * memory until the render ends. Write: the output, in locked memory; a
 * value without a filter that could change the structure of the output
 * (a control character, bytes that are not UTF-8) is refused, not written.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "core/remote_fwd.h"
#include "core/secret_ops.h"
#include "util/codec.h"
#include "util/json_out.h"

#define LABEL_BODY_MAX 64 /* bytes of a placeholder shown in a message */
#define USE_FILTER "use |yaml, |json, |properties, |shell or |raw"

typedef enum filter { FILTER_CHECKED, FILTER_RAW, FILTER_YAML, FILTER_JSON, FILTER_PROPERTIES, FILTER_SHELL } filter;
typedef enum src_kind { SRC_SECRET, SRC_CONNECTION, SRC_KMS } src_kind;

static const struct {
    const char *name;
    filter f;
} filter_names[] = {
    {"raw", FILTER_RAW}, {"yaml", FILTER_YAML}, {"json", FILTER_JSON},
    {"properties", FILTER_PROPERTIES}, {"shell", FILTER_SHELL},
};

/* One distinct secret, connection or kms blob: resolved once per render. */
typedef struct source {
    src_kind kind;
    const char *name; /* into the template: secret id, connection name or base64 blob */
    size_t nlen;
    size_t line;      /* of its first use, for messages */
    p11kms_secret_map *map; /* secret or connection (locked memory) */
    p11kms_buf *pt;         /* kms plaintext (locked memory) */
} source;

/* One placeholder; every pointer is into the template. */
typedef struct placeholder {
    const char *body; /* between "${" and "}", filter included */
    size_t blen;
    size_t line;
    src_kind kind;
    const char *name;
    size_t nlen;
    const char *field; /* secret field or connection option (not for kms) */
    size_t flen;
    filter f;
    size_t src;
} placeholder;

typedef struct render_job {
    placeholder *phs;
    size_t nph;
    source *srcs;
    size_t nsrc;
} render_job;

/* ---- the template, piece by piece ---- */

typedef enum piece_type { PIECE_END, PIECE_TEXT, PIECE_ESCAPE, PIECE_PLACEHOLDER } piece_type;

typedef struct scanner {
    const char *text;
    size_t len, i, line;
} scanner;

typedef struct piece {
    piece_type type;
    const char *p; /* text run or placeholder body */
    size_t n;
    size_t line;   /* where the piece starts */
} piece;

/*
 * The next piece: a run of text, "$${" (a literal "${"), or a placeholder
 * body. Parse and write both walk the template with this one function, so
 * they cannot disagree on where placeholders are.
 */
static pk_result scan_next(scanner *s, piece *pc)
{
    const char *t = s->text;
    size_t i = s->i, j;

    pc->line = s->line;
    pc->type = PIECE_END;
    if (i >= s->len) return PK_OK;
    if (t[i] == '$' && i + 2 < s->len && t[i + 1] == '$' && t[i + 2] == '{') {
        pc->type = PIECE_ESCAPE;
        pc->p = "${";
        pc->n = 2;
        s->i = i + 3;
        return PK_OK;
    }
    if (t[i] == '$' && i + 1 < s->len && t[i + 1] == '{') {
        const char *body = t + i + 2, *end = memchr(body, '}', s->len - i - 2);
        PK_ENSURE(end != NULL && memchr(body, '\n', (size_t)(end - body)) == NULL, P11KMS_ERR_INVALID_ARGUMENT,
                  "render: line %zu: unterminated placeholder '${'", s->line);
        pc->type = PIECE_PLACEHOLDER;
        pc->p = body;
        pc->n = (size_t)(end - body);
        s->i = (size_t)(end - t) + 1;
        return PK_OK;
    }
    for (j = i + 1; j < s->len && t[j] != '$'; j++) {}
    for (size_t k = i; k < j; k++) s->line += t[k] == '\n';
    pc->type = PIECE_TEXT;
    pc->p = t + i;
    pc->n = j - i;
    s->i = j;
    return PK_OK;
}

/* "${body}" for a message: printable ASCII only, cut after LABEL_BODY_MAX bytes. */
static void label_of(const char *body, size_t n, char out[LABEL_BODY_MAX + 8])
{
    size_t k = 0;
    out[k++] = '$';
    out[k++] = '{';
    for (size_t i = 0; i < n && i < LABEL_BODY_MAX; i++)
        out[k++] = body[i] >= 0x20 && body[i] < 0x7f ? body[i] : '?';
    if (n > LABEL_BODY_MAX) {
        memcpy(out + k, "...", 3);
        k += 3;
    }
    out[k++] = '}';
    out[k] = '\0';
}

#define UNKNOWN_PLACEHOLDER(line, lbl)                                                                         \
    pk_fail(P11KMS_ERR_INVALID_ARGUMENT,                                                                       \
            "render: line %zu: unknown placeholder '%s': use ${secret:ID:FIELD}, ${connection:NAME:OPTION} or " \
            "${kms:BLOB}",                                                                                     \
            (line), (lbl))

/* The filter after the last '|' (none: FILTER_CHECKED); *n becomes the length without it. */
static pk_result parse_filter(const char *body, size_t *n, size_t line, filter *f)
{
    char lbl[LABEL_BODY_MAX + 8], name[LABEL_BODY_MAX + 8];
    size_t bar = *n;

    *f = FILTER_CHECKED;
    while (bar > 0 && body[bar - 1] != '|') bar--;
    if (bar == 0) return PK_OK;
    for (size_t i = 0; i < PK_ARRAY_LEN(filter_names); i++) {
        if (strlen(filter_names[i].name) == *n - bar && memcmp(filter_names[i].name, body + bar, *n - bar) == 0) {
            *f = filter_names[i].f;
            *n = bar - 1;
            return PK_OK;
        }
    }
    label_of(body, *n, lbl);
    label_of(body + bar, *n - bar, name);
    name[strlen(name) - 1] = '\0'; /* the filter's name alone: drop the label's "${" and "}" */
    return pk_fail(P11KMS_ERR_INVALID_ARGUMENT, "render: line %zu: unknown filter '%s' in %s: " USE_FILTER, line,
                   name + 2, lbl);
}

/* secret:ID:FIELD, connection:NAME:OPTION or kms:BLOB, then |FILTER. */
static pk_result parse_placeholder(const piece *pc, placeholder *p)
{
    char lbl[LABEL_BODY_MAX + 8];
    size_t n = pc->n, klen, rlen;
    const char *colon, *rest, *field;

    memset(p, 0, sizeof(*p));
    p->body = pc->p;
    p->blen = pc->n;
    p->line = pc->line;
    label_of(pc->p, pc->n, lbl);
    PK_GUARD(parse_filter(pc->p, &n, pc->line, &p->f));
    colon = memchr(pc->p, ':', n);
    if (colon == NULL) return UNKNOWN_PLACEHOLDER(pc->line, lbl);
    klen = (size_t)(colon - pc->p);
    rest = colon + 1;
    rlen = n - klen - 1;
    if (klen == 3 && memcmp(pc->p, "kms", 3) == 0) {
        p->kind = SRC_KMS;
        p->name = rest;
        p->nlen = rlen;
        return PK_OK;
    }
    if (klen == 6 && memcmp(pc->p, "secret", 6) == 0) p->kind = SRC_SECRET;
    else if (klen == 10 && memcmp(pc->p, "connection", 10) == 0) p->kind = SRC_CONNECTION;
    else return UNKNOWN_PLACEHOLDER(pc->line, lbl);
    field = memchr(rest, ':', rlen);
    if (field == NULL || (size_t)(field - rest) > PK_CONN_NAME_MAX) return UNKNOWN_PLACEHOLDER(pc->line, lbl);
    p->name = rest;
    p->nlen = (size_t)(field - rest);
    p->field = field + 1;
    p->flen = rlen - p->nlen - 1;
    return PK_OK;
}

/* The source a placeholder reads: an earlier one with the same kind and name, or a new one. */
static void attach_source(render_job *j, placeholder *p)
{
    size_t i;
    for (i = 0; i < j->nsrc; i++) {
        const source *s = &j->srcs[i];
        if (s->kind == p->kind && s->nlen == p->nlen && memcmp(s->name, p->name, p->nlen) == 0) break;
    }
    if (i == j->nsrc) {
        j->srcs[i].kind = p->kind;
        j->srcs[i].name = p->name;
        j->srcs[i].nlen = p->nlen;
        j->srcs[i].line = p->line;
        j->nsrc++;
    }
    p->src = i;
}

static pk_result parse_template(const char *text, size_t len, render_job *j)
{
    scanner s = {text, len, 0, 1};
    piece pc;

    j->phs = calloc(P11KMS_RENDER_MAX_PLACEHOLDERS, sizeof(*j->phs));
    j->srcs = calloc(P11KMS_RENDER_MAX_PLACEHOLDERS, sizeof(*j->srcs));
    PK_ENSURE_ALLOC(j->phs);
    PK_ENSURE_ALLOC(j->srcs);
    for (;;) {
        PK_GUARD(scan_next(&s, &pc));
        if (pc.type == PIECE_END) return PK_OK;
        if (pc.type != PIECE_PLACEHOLDER) continue;
        PK_ENSURE(j->nph < P11KMS_RENDER_MAX_PLACEHOLDERS, P11KMS_ERR_INVALID_ARGUMENT,
                  "render: line %zu: more than %d placeholders; the limit is %d per template", pc.line,
                  P11KMS_RENDER_MAX_PLACEHOLDERS, P11KMS_RENDER_MAX_PLACEHOLDERS);
        PK_GUARD(parse_placeholder(&pc, &j->phs[j->nph]));
        attach_source(j, &j->phs[j->nph]);
        j->nph++;
    }
}

static void job_clear(render_job *j)
{
    for (size_t i = 0; i < j->nsrc; i++) {
        pk_map_free(j->srcs[i].map); /* wipes the values */
        p11kms_buf_free(j->srcs[i].pt);
    }
    free(j->srcs);
    free(j->phs);
    memset(j, 0, sizeof(*j));
}

/* ---- resolve: one public operation (and audit record) per source ---- */

static pk_result kms_plaintext(p11kms *h, const p11kms_caller *c, source *s)
{
    pk_result r = PK_OK;
    size_t blen = 0;
    char *text = strndup(s->name, s->nlen);
    uint8_t *blob = malloc(s->nlen / 4 * 3 + 3);

    PK_CHECK(text != NULL && blob != NULL, P11KMS_ERR_NO_MEMORY, "out of memory");
    r = pk_base64_decode(text, s->nlen, blob, &blen);
    PK_CHECK(pk_ok(r), P11KMS_ERR_CIPHERTEXT_INVALID, "ciphertext invalid or context mismatch");
    r = (pk_result){p11kms_decrypt(h, c, NULL, 0, blob, blen, &s->pt, NULL)};
out:
    free(text);
    free(blob);
    return r;
}

static pk_result resolve_source(p11kms *h, const p11kms_caller *c, source *s)
{
    char name[PK_CONN_NAME_MAX + 1];

    if (s->kind == SRC_KMS) return kms_plaintext(h, c, s);
    PK_ENSURE(s->nlen < sizeof(name), P11KMS_ERR_INTERNAL, "internal error: placeholder name too long");
    memcpy(name, s->name, s->nlen); /* parse_placeholder bounds it */
    name[s->nlen] = '\0';
    switch (s->kind) {
    case SRC_SECRET: return (pk_result){p11kms_secret_get(h, c, name, &s->map)};
    case SRC_CONNECTION: return (pk_result){p11kms_connection_resolve(h, c, name, &s->map)};
    default: return pk_fail(P11KMS_ERR_INTERNAL, "internal error: placeholder kind %d", (int)s->kind);
    }
}

static pk_result resolve_all(p11kms *h, const p11kms_caller *c, render_job *j)
{
    for (size_t i = 0; i < j->nsrc; i++) {
        pk_result r = resolve_source(h, c, &j->srcs[i]);
        if (pk_failed(r)) return pk_annotate(r, "render: line %zu: ", j->srcs[i].line);
    }
    return PK_OK;
}

/* ---- write: each value through its filter ---- */

/* One code point of text already checked with pk_utf8_valid; returns its length in bytes. */
static size_t utf8_next(const uint8_t *p, uint32_t *cp)
{
    if (p[0] < 0x80) {
        *cp = p[0];
        return 1;
    }
    if (p[0] < 0xE0) {
        *cp = (uint32_t)(p[0] & 0x1F) << 6 | (p[1] & 0x3F);
        return 2;
    }
    if (p[0] < 0xF0) {
        *cp = (uint32_t)(p[0] & 0x0F) << 12 | (uint32_t)(p[1] & 0x3F) << 6 | (p[2] & 0x3F);
        return 3;
    }
    *cp = (uint32_t)(p[0] & 0x07) << 18 | (uint32_t)(p[1] & 0x3F) << 12 | (uint32_t)(p[2] & 0x3F) << 6 | (p[3] & 0x3F);
    return 4;
}

/*
 * Characters that end a line or are not text in some format: C0 controls
 * (newline, CR, tab, NUL, ...), DEL, C1 controls (U+0085 is a YAML 1.1 line
 * break) and the line and paragraph separators U+2028, U+2029.
 */
static bool is_control(uint32_t cp)
{
    return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) || cp == 0x2028 || cp == 0x2029;
}

static bool has_control(const uint8_t *v, size_t n)
{
    uint32_t cp;
    for (size_t i = 0; i < n;) {
        i += utf8_next(v + i, &cp);
        if (is_control(cp)) return true;
    }
    return false;
}

/* prefix and v in `digits` hex digits, straight into locked memory (no formatted copy on the stack). */
static pk_result put_hex(pk_secbuf *out, const char *prefix, uint32_t v, int digits)
{
    static const char hexd[] = "0123456789ABCDEF";
    PK_GUARD(pk_secbuf_append(out, prefix, strlen(prefix)));
    for (int sh = 4 * (digits - 1); sh >= 0; sh -= 4) PK_GUARD(pk_secbuf_append(out, &hexd[(v >> sh) & 15], 1));
    return PK_OK;
}

/*
 * A YAML double-quoted scalar (YAML 1.2 section 7.3.1, also valid 1.1):
 * valid in block and flow context and on one line. Escaped: '"', '\',
 * controls, and what is not c-printable (U+FEFF, U+FFFE, U+FFFF).
 */
static pk_result yaml_quote(pk_secbuf *out, const uint8_t *v, size_t n)
{
    uint32_t cp;
    size_t k;

    PK_GUARD(pk_secbuf_append(out, "\"", 1));
    for (size_t i = 0; i < n; i += k) {
        k = utf8_next(v + i, &cp);
        if (cp == '"') PK_GUARD(pk_secbuf_append(out, "\\\"", 2));
        else if (cp == '\\') PK_GUARD(pk_secbuf_append(out, "\\\\", 2));
        else if (cp == '\n') PK_GUARD(pk_secbuf_append(out, "\\n", 2));
        else if (cp == '\t') PK_GUARD(pk_secbuf_append(out, "\\t", 2));
        else if (cp == '\r') PK_GUARD(pk_secbuf_append(out, "\\r", 2));
        else if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f)) PK_GUARD(put_hex(out, "\\x", cp, 2));
        else if (cp == 0x2028 || cp == 0x2029 || cp == 0xFEFF || cp == 0xFFFE || cp == 0xFFFF)
            PK_GUARD(put_hex(out, "\\u", cp, 4));
        else PK_GUARD(pk_secbuf_append(out, v + i, k));
    }
    return pk_secbuf_append(out, "\"", 1);
}

/*
 * A JSON string literal through the one escaper, pk_json_escape, into
 * locked memory. It writes at most 6 bytes per input byte ("\u00XX") plus
 * the quotes, so with 6n + 3 bytes reserved it never reallocates.
 */
static pk_result json_quote(pk_secbuf *out, const uint8_t *v, size_t n)
{
    pk_result r;
    pk_buf b = {.cap = 6 * n + 3};

    b.data = pk_secmem_alloc(b.cap);
    PK_ENSURE_ALLOC(b.data);
    r = pk_json_escape(&b, (const char *)v, n);
    if (pk_ok(r)) r = pk_secbuf_append(out, b.data, b.len);
    pk_secmem_free(b.data); /* wipes */
    return r;
}

/*
 * A value for a Java .properties file (java.util.Properties.load): '\',
 * '=', ':', '#', '!' and leading spaces escaped with '\', controls as \t,
 * \n, \r, \f or \uXXXX, and everything outside ASCII as \uXXXX (UTF-16
 * surrogate pairs past U+FFFF), so the file reads the same as ISO 8859-1
 * (load(InputStream)) or UTF-8 (load(Reader)).
 */
static pk_result properties_escape(pk_secbuf *out, const uint8_t *v, size_t n)
{
    bool leading = true;
    uint32_t cp;
    size_t k;

    for (size_t i = 0; i < n; i += k) {
        char e[3] = {'\\', 0, 0};
        k = utf8_next(v + i, &cp);
        leading = leading && cp == ' ';
        if (cp == '\\' || cp == '=' || cp == ':' || cp == '#' || cp == '!' || (cp == ' ' && leading)) e[1] = (char)cp;
        else if (cp == '\t') e[1] = 't';
        else if (cp == '\n') e[1] = 'n';
        else if (cp == '\r') e[1] = 'r';
        else if (cp == '\f') e[1] = 'f';
        if (e[1] != 0) PK_GUARD(pk_secbuf_append(out, e, 2));
        else if (cp > 0xFFFF) {
            PK_GUARD(put_hex(out, "\\u", 0xD800 + ((cp - 0x10000) >> 10), 4));
            PK_GUARD(put_hex(out, "\\u", 0xDC00 + ((cp - 0x10000) & 0x3FF), 4));
        } else if (cp < 0x20 || cp >= 0x7f) PK_GUARD(put_hex(out, "\\u", cp, 4));
        else PK_GUARD(pk_secbuf_append(out, v + i, 1));
    }
    return PK_OK;
}

/* POSIX sh single quotes: nothing inside is special; a ' is written '\''. */
static pk_result shell_quote(pk_secbuf *out, const uint8_t *v, size_t n)
{
    PK_GUARD(pk_secbuf_append(out, "'", 1));
    for (size_t i = 0; i < n; i++) {
        if (v[i] == '\'') PK_GUARD(pk_secbuf_append(out, "'\\''", 4));
        else PK_GUARD(pk_secbuf_append(out, v + i, 1));
    }
    return pk_secbuf_append(out, "'", 1);
}

static const char *filter_name(filter f)
{
    for (size_t i = 0; i < PK_ARRAY_LEN(filter_names); i++)
        if (filter_names[i].f == f) return filter_names[i].name;
    return "none";
}

/* Refuse a value its filter cannot carry; messages name the placeholder, never the value. */
static pk_result check_value(const placeholder *p, const uint8_t *v, size_t n)
{
    char lbl[LABEL_BODY_MAX + 8];
    bool utf8 = pk_utf8_valid(v, n);

    label_of(p->body, p->blen, lbl);
    switch (p->f) {
    case FILTER_RAW: return PK_OK;
    case FILTER_SHELL:
        PK_ENSURE(memchr(v, 0, n) == NULL, P11KMS_ERR_INVALID_ARGUMENT,
                  "render: line %zu: %s holds a NUL byte, which a shell string cannot hold; use |raw", p->line, lbl);
        return PK_OK;
    case FILTER_CHECKED:
        PK_ENSURE(utf8, P11KMS_ERR_INVALID_ARGUMENT, "render: line %zu: %s is not UTF-8 text; use |shell or |raw",
                  p->line, lbl);
        PK_ENSURE(!has_control(v, n), P11KMS_ERR_INVALID_ARGUMENT, "render: line %zu: %s holds a control character; " USE_FILTER,
                  p->line, lbl);
        return PK_OK;
    case FILTER_YAML:
    case FILTER_JSON:
    case FILTER_PROPERTIES:
        PK_ENSURE(utf8, P11KMS_ERR_INVALID_ARGUMENT,
                  "render: line %zu: %s is not UTF-8 text, which |%s cannot represent; use |shell or |raw", p->line,
                  lbl, filter_name(p->f));
        return PK_OK;
    default: return pk_fail(P11KMS_ERR_INTERNAL, "internal error: filter %d", (int)p->f);
    }
}

static pk_result write_value(pk_secbuf *out, const placeholder *p, const uint8_t *v, size_t n)
{
    PK_GUARD(check_value(p, v, n));
    switch (p->f) {
    case FILTER_CHECKED:
    case FILTER_RAW: return pk_secbuf_append(out, v, n);
    case FILTER_YAML: return yaml_quote(out, v, n);
    case FILTER_JSON: return json_quote(out, v, n);
    case FILTER_PROPERTIES: return properties_escape(out, v, n);
    case FILTER_SHELL: return shell_quote(out, v, n);
    default: return pk_fail(P11KMS_ERR_INTERNAL, "internal error: filter %d", (int)p->f);
    }
}

static pk_result write_placeholder(pk_secbuf *out, const placeholder *p, const source *s)
{
    pk_result r = PK_OK;
    char *field = NULL;
    const char *v;

    if (s->kind == SRC_KMS) return write_value(out, p, p11kms_buf_data(s->pt), p11kms_buf_len(s->pt));
    field = strndup(p->field, p->flen);
    PK_CHECK_ALLOC(field);
    v = pk_map_get(s->map, field);
    if (v == NULL && s->kind == SRC_SECRET)
        r = pk_fail(P11KMS_ERR_NOT_FOUND, "render: line %zu: secret %.*s has no field '%s'", p->line, (int)p->nlen,
                    p->name, field);
    else if (v == NULL)
        r = pk_fail(P11KMS_ERR_NOT_FOUND, "render: line %zu: connection %.*s has no option '%s'", p->line,
                    (int)p->nlen, p->name, field);
    else
        r = write_value(out, p, (const uint8_t *)v, strlen(v));
out:
    free(field);
    return r;
}

static pk_result write_output(const char *text, size_t len, const render_job *j, pk_secbuf *out)
{
    scanner s = {text, len, 0, 1};
    piece pc;
    size_t k = 0;

    for (;;) {
        PK_GUARD(scan_next(&s, &pc));
        if (pc.type == PIECE_END) return PK_OK;
        if (pc.type != PIECE_PLACEHOLDER) PK_GUARD(pk_secbuf_append(out, pc.p, pc.n));
        else {
            PK_GUARD(write_placeholder(out, &j->phs[k], &j->srcs[j->phs[k].src]));
            k++;
        }
    }
}

P11KMS_API p11kms_rc p11kms_render(p11kms *h, const p11kms_caller *c, const char *text, size_t len,
                                   p11kms_buf **outp)
{
    if (h != NULL && h->remote != NULL) return pk_fwd_render(h, c, text, len, outp);
    pk_op op;
    pk_result r = PK_OK;
    pk_secbuf out = PK_SECBUF_INIT;
    render_job j;

    *outp = NULL;
    memset(&j, 0, sizeof(j));
    PK_TRY(pk_op_begin(&op, h, c, "p11kms:Render"));
    pk_op_output_buf(&op, outp);
    PK_CHECK(text != NULL || len == 0, P11KMS_ERR_INVALID_ARGUMENT, "no template given");
    PK_CHECK(len <= P11KMS_RENDER_MAX_TEMPLATE_BYTES, P11KMS_ERR_INVALID_ARGUMENT,
             "render: template larger than the limit of %d bytes (1 MiB)", P11KMS_RENDER_MAX_TEMPLATE_BYTES);
    PK_TRY(parse_template(text, len, &j));
    PK_TRY(resolve_all(h, c, &j));
    PK_TRY(pk_secbuf_alloc(&out, len + 64));
    PK_TRY(write_output(text, len, &j, &out));
    PK_TRY(pk_secbuf_cstr(&out));
    PK_TRY(pk_secbuf_out(&out, outp));
out:
    job_clear(&j);            /* wipes every value read */
    pk_secbuf_free(&out);     /* and a partial render */
    return pk_op_finish(&op, r);
}
