/*
 * Rendering of configuration templates (docs/SECRETS.md, "Rendering"):
 * ${secret:ID:FIELD}, ${connection:NAME:OPTION} and ${kms:BASE64}.
 *
 * Three passes. Parse: every placeholder and limit is checked before
 * anything is decrypted. Resolve: each distinct secret, connection and kms
 * blob is read once, by its own public operation (so one audit record
 * each, however often the template names it), and kept in locked memory
 * until the render ends. Write: the output, in locked memory.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "secrets/secrets.h"
#include "util/codec.h"

#define LABEL_BODY_MAX 64 /* bytes of a placeholder shown in a message */

typedef enum src_kind { SRC_SECRET, SRC_CONNECTION, SRC_KMS } src_kind;

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
    const char *body; /* between "${" and "}" */
    size_t blen;
    size_t line;
    src_kind kind;
    const char *name;
    size_t nlen;
    const char *field; /* secret field or connection option (not for kms) */
    size_t flen;
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

/* secret:ID:FIELD, connection:NAME:OPTION or kms:BLOB. */
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

/* ---- write ---- */

static pk_result write_placeholder(pk_secbuf *out, const placeholder *p, const source *s)
{
    pk_result r = PK_OK;
    char *field = NULL;
    const char *v;

    if (s->kind == SRC_KMS) return pk_secbuf_append(out, p11kms_buf_data(s->pt), p11kms_buf_len(s->pt));
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
        r = pk_secbuf_append(out, v, strlen(v));
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
