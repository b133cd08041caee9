/*
 * Rendering of configuration templates: ${secret:ID:FIELD},
 * ${connection:NAME:OPTION} and ${kms:BASE64} replaced by their values.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "secrets/secrets.h"
#include "util/codec.h"

/* Resolve one placeholder body ("secret:ID:FIELD", ...) and append its value to out. */
static pk_result placeholder(p11kms *h, const p11kms_caller *c, const char *body, size_t n, pk_secbuf *out)
{
    char kind[16], a[PK_CONN_NAME_MAX + 1];
    const char *colon = memchr(body, ':', n), *rest, *field;
    size_t klen, rlen, alen;
    pk_result r = PK_OK;
    p11kms_secret_map *m = NULL;
    p11kms_buf *pt = NULL;
    uint8_t *blob = NULL;
    const char *v;
    char *fname = NULL;

    PK_ENSURE(colon != NULL && (size_t)(colon - body) < sizeof(kind), P11KMS_ERR_INVALID_ARGUMENT,
              "unknown placeholder '${%.*s}': use ${secret:ID:FIELD}, ${connection:NAME:OPTION} or ${kms:BLOB}",
              (int)(n > 60 ? 60 : n), body);
    klen = (size_t)(colon - body);
    memcpy(kind, body, klen);
    kind[klen] = '\0';
    rest = colon + 1;
    rlen = n - klen - 1;
    if (strcmp(kind, "kms") == 0) {
        size_t blen = 0;
        char *text = strndup(rest, rlen);
        PK_CHECK_ALLOC(text);
        blob = malloc(rlen / 4 * 3 + 3);
        r = blob ? pk_base64_decode(text, rlen, blob, &blen) : pk_fail(P11KMS_ERR_NO_MEMORY, "out of memory");
        free(text);
        if (pk_failed(r)) r = pk_fail(P11KMS_ERR_CIPHERTEXT_INVALID, "ciphertext invalid or context mismatch");
        PK_TRY(r);
        PK_TRY(((pk_result){p11kms_decrypt(h, c, NULL, 0, blob, blen, &pt, NULL)}));
        PK_TRY(pk_secbuf_append(out, p11kms_buf_data(pt), p11kms_buf_len(pt)));
        goto out;
    }
    field = memchr(rest, ':', rlen);
    PK_CHECK(field != NULL && (strcmp(kind, "secret") == 0 || strcmp(kind, "connection") == 0) &&
                 (size_t)(field - rest) < sizeof(a),
             P11KMS_ERR_INVALID_ARGUMENT,
             "unknown placeholder '${%.*s}': use ${secret:ID:FIELD}, ${connection:NAME:OPTION} or ${kms:BLOB}",
             (int)(n > 60 ? 60 : n), body);
    alen = (size_t)(field - rest);
    memcpy(a, rest, alen);
    a[alen] = '\0';
    fname = strndup(field + 1, rlen - alen - 1);
    PK_CHECK_ALLOC(fname);
    if (strcmp(kind, "secret") == 0) {
        PK_TRY(((pk_result){p11kms_secret_get(h, c, a, &m)}));
        v = pk_map_get(m, fname);
        PK_CHECK(v != NULL, P11KMS_ERR_NOT_FOUND, "secret %s has no field '%s'", a, fname);
    } else {
        PK_TRY(((pk_result){p11kms_connection_resolve(h, c, a, &m)}));
        v = pk_map_get(m, fname);
        PK_CHECK(v != NULL, P11KMS_ERR_NOT_FOUND, "connection %s has no option '%s'", a, fname);
    }
    PK_TRY(pk_secbuf_append(out, v, strlen(v)));
out:
    free(fname);
    free(blob);
    p11kms_buf_free(pt);
    pk_map_free(m);
    return r;
}

P11KMS_API p11kms_rc p11kms_render(p11kms *h, const p11kms_caller *c, const char *text, size_t len,
                                   p11kms_buf **outp)
{
    pk_op op;
    pk_result r = PK_OK;
    pk_secbuf out = PK_SECBUF_INIT;
    size_t i = 0, line = 1;

    *outp = NULL;
    PK_TRY(pk_op_begin(&op, h, c, "p11kms:Render"));
    pk_op_output_buf(&op, outp);
    PK_CHECK(text != NULL || len == 0, P11KMS_ERR_INVALID_ARGUMENT, "no template given");
    PK_TRY(pk_secbuf_alloc(&out, len + 64));
    while (text != NULL && i < len) {
        const char *end;
        if (text[i] == '\n') line++;
        if (text[i] == '$' && i + 2 < len && text[i + 1] == '$' && text[i + 2] == '{') {
            PK_TRY(pk_secbuf_append(&out, "${", 2)); /* $${ is a literal ${ */
            i += 3;
            continue;
        }
        if (text[i] != '$' || i + 1 >= len || text[i + 1] != '{') {
            PK_TRY(pk_secbuf_append(&out, &text[i], 1));
            i++;
            continue;
        }
        end = memchr(text + i + 2, '}', len - i - 2);
        PK_CHECK(end != NULL && memchr(text + i + 2, '\n', (size_t)(end - text - i - 2)) == NULL,
                 P11KMS_ERR_INVALID_ARGUMENT, "render: line %zu: unterminated placeholder '${'", line);
        r = placeholder(h, c, text + i + 2, (size_t)(end - text - i - 2), &out);
        if (pk_failed(r)) {
            r = pk_annotate(r, "render: line %zu: ", line);
            goto out;
        }
        i = (size_t)(end - text) + 1;
    }
    PK_TRY(pk_secbuf_cstr(&out));
    PK_TRY(pk_secbuf_out(&out, outp));
out:
    pk_secbuf_free(&out); /* wipes a partial render */
    return pk_op_finish(&op, r);
}
