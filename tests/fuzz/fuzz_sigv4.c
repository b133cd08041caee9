/*
 * SigV4 (src/auth/sigv4.c): the Authorization header parser and the
 * canonical request and string to sign. The input is a request in the
 * layout of the AWS signing test suite (tests/vectors/sigv4/ * /
 * header-signed-request.txt): request line, "Name:value" lines, an empty
 * line, the body.
 */
#include "config.h"

#include "auth/sigv4.h"
#include "fuzz/fuzz.h"

#define MAX_HEADERS 32

static void sign(const p11kms_sigv4_request *req)
{
    pk_sigv4_auth a;
    pk_buf canon = {0}, sts = {0};
    const char *value, *date;
    bool dup = false;
    int64_t ms;

    value = pk_sigv4_header(req, "authorization", &dup);
    date = pk_sigv4_header(req, "x-amz-date", &dup);
    if (date != NULL) (void)pk_sigv4_parse_amz_date(date, &ms);
    if (value == NULL || pk_failed(pk_sigv4_parse_authorization(value, &a))) goto out;
    (void)pk_sigv4_signs(&a, "host");
    for (int normalize = 0; normalize < 2; normalize++) {
        canon.len = 0;
        sts.len = 0;
        if (pk_failed(pk_sigv4_canonical_request(req, &a, normalize, &canon))) continue;
        if (pk_failed(pk_sigv4_string_to_sign(&a, date != NULL ? date : "20150830T123600Z", &canon, &sts))) continue;
    }
out:
    pk_error_clear();
    pk_buf_free(&canon);
    pk_buf_free(&sts);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    p11kms_http_header headers[MAX_HEADERS];
    p11kms_sigv4_request req = {.struct_size = sizeof(req), .service = "service", .query = ""};
    char *text = fz_strndup(data, size), *line, *next, *sp, *q, *body;

    body = strstr(text, "\n\n");
    if (body != NULL) {
        body[1] = '\0';
        body += 2;
        req.body = (const uint8_t *)body;
        req.body_len = size - (size_t)(body - text);
    }
    next = strchr(text, '\n');
    if (next != NULL) *next++ = '\0';
    /* "METHOD PATH[?QUERY] HTTP/1.1" */
    sp = strchr(text, ' ');
    if (sp == NULL) goto out;
    *sp = '\0';
    req.method = text;
    req.path = sp + 1;
    sp = strrchr(req.path, ' ');
    if (sp != NULL) *sp = '\0';
    q = strchr(req.path, '?');
    if (q != NULL) {
        *q = '\0';
        req.query = q + 1;
    }
    for (line = next; line != NULL && *line != '\0' && req.nheaders < MAX_HEADERS; line = next) {
        char *colon;
        next = strchr(line, '\n');
        if (next != NULL) *next++ = '\0';
        colon = strchr(line, ':');
        if (colon == NULL) continue;
        *colon = '\0';
        headers[req.nheaders++] = (p11kms_http_header){line, colon + 1};
    }
    req.headers = headers;
    sign(&req);
out:
    free(text);
    return 0;
}
