/*
 * The ciphertext blob framing and the encryption-context encoding
 * (src/keys/blob.c). The input is the blob; when it holds a NUL byte, what
 * follows is an encryption context, one "key=value" per line.
 */
#include "config.h"

#include "fuzz/fuzz.h"
#include "keys/keys.h"

static bool inside(const uint8_t *p, size_t n, const uint8_t *in, size_t size)
{
    return n == 0 || (p >= in && p + n <= in + size);
}

static void context(const uint8_t *data, size_t size)
{
    pk_ctx_kv kv[80];
    pk_buf out = {0};
    size_t n = 0;
    char *text = fz_strndup(data, size), *line, *save = NULL;

    for (line = strtok_r(text, "\n", &save); line != NULL && n < 80; line = strtok_r(NULL, "\n", &save)) {
        char *eq = strchr(line, '=');
        if (eq == NULL) continue;
        *eq = '\0';
        kv[n++] = (pk_ctx_kv){line, eq + 1};
    }
    if (pk_failed(pk_context_encode(kv, n, &out))) pk_error_clear();
    pk_buf_free(&out);
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *blob;
    size_t blob_len;
    pk_blob b;

    fz_split(&data, &size, &blob, &blob_len, 0);
    if (pk_ok(pk_blob_parse(pk_bytes_of(blob, blob_len), &b)) &&
        (!inside(b.header.ptr, b.header.len, blob, blob_len) || !inside(b.ct.ptr, b.ct.len, blob, blob_len) ||
         !inside(b.iv, PK_GCM_IV_LEN, blob, blob_len)))
        abort();
    pk_error_clear();
    if (blob_len < size + blob_len) context(data, size);
    return 0;
}
