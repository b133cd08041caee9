/*
 * Ciphertext blob format v1 (docs/FORMAT.md) and the canonical encoding of
 * encryption contexts. The whole header is authenticated as GCM AAD, so a
 * changed version, key id, key version or IV fails the tag check.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "keys/keys.h"

#define CTX_MAX_PAIRS 64
#define CTX_MAX_TOTAL 8192

void pk_blob_header(uint8_t *out, const uint8_t uuid[PK_UUID_LEN], uint32_t version, const uint8_t iv[PK_GCM_IV_LEN])
{
    out[0] = PK_BLOB_VERSION;
    out[1] = 0; /* flags: reserved, must be zero */
    memcpy(out + 2, uuid, PK_UUID_LEN);
    pk_store_be32(out + 2 + PK_UUID_LEN, version);
    memcpy(out + 2 + PK_UUID_LEN + 4, iv, PK_GCM_IV_LEN);
}

pk_result pk_blob_parse(pk_bytes in, pk_blob *out)
{
    /* One message for every framing problem: no oracle on which check failed. */
    const char *msg = "ciphertext invalid or context mismatch";
    PK_ENSURE(in.len >= PK_BLOB_HEADER_LEN + 1 + PK_GCM_TAG_LEN, P11KMS_ERR_CIPHERTEXT_INVALID, "%s", msg);
    PK_ENSURE(in.ptr[0] == PK_BLOB_VERSION && in.ptr[1] == 0, P11KMS_ERR_CIPHERTEXT_INVALID, "%s", msg);
    out->version = in.ptr[0];
    memcpy(out->key_uuid, in.ptr + 2, PK_UUID_LEN);
    out->key_version = pk_load_be32(in.ptr + 2 + PK_UUID_LEN);
    PK_ENSURE(out->key_version >= 1, P11KMS_ERR_CIPHERTEXT_INVALID, "%s", msg);
    out->iv = in.ptr + 2 + PK_UUID_LEN + 4;
    out->header = pk_bytes_of(in.ptr, PK_BLOB_HEADER_LEN);
    out->ct = pk_bytes_of(in.ptr + PK_BLOB_HEADER_LEN, in.len - PK_BLOB_HEADER_LEN);
    return PK_OK;
}

/* RFC 3629 UTF-8 without overlongs or surrogates. */
static bool valid_utf8(const unsigned char *s)
{
    while (*s) {
        unsigned c = *s;
        int n = c < 0x80 ? 0 : (c & 0xe0) == 0xc0 ? 1 : (c & 0xf0) == 0xe0 ? 2 : (c & 0xf8) == 0xf0 ? 3 : -1;
        uint32_t cp;
        if (n < 0 || (n == 1 && c < 0xc2)) return false;
        cp = n == 0 ? c : c & (0x3fu >> n);
        for (int i = 1; i <= n; i++) {
            if ((s[i] & 0xc0) != 0x80) return false;
            cp = (cp << 6) | (s[i] & 0x3f);
        }
        if ((n == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)))
            return false;
        s += n + 1;
    }
    return true;
}

static int cmp_kv(const void *a, const void *b)
{
    const pk_ctx_kv *x = a, *y = b;
    /* strcmp compares as unsigned char: byte order of the UTF-8 encoding. */
    return strcmp(x->key, y->key);
}

pk_result pk_context_encode(const pk_ctx_kv *ctx, size_t n, pk_buf *out)
{
    pk_ctx_kv sorted[CTX_MAX_PAIRS];
    size_t total = 0;

    PK_ENSURE(n <= CTX_MAX_PAIRS, P11KMS_ERR_INVALID_ARGUMENT, "encryption context has more than %d pairs",
              CTX_MAX_PAIRS);
    for (size_t i = 0; i < n; i++) {
        PK_ENSURE(ctx[i].key != NULL && ctx[i].value != NULL && ctx[i].key[0] != '\0', P11KMS_ERR_INVALID_ARGUMENT,
                  "encryption context keys must be non-empty");
        PK_ENSURE(valid_utf8((const unsigned char *)ctx[i].key) && valid_utf8((const unsigned char *)ctx[i].value),
                  P11KMS_ERR_INVALID_ARGUMENT, "encryption context must be valid UTF-8");
        total += strlen(ctx[i].key) + strlen(ctx[i].value);
        sorted[i] = ctx[i];
    }
    PK_ENSURE(total <= CTX_MAX_TOTAL, P11KMS_ERR_INVALID_ARGUMENT, "encryption context is larger than %d bytes",
              CTX_MAX_TOTAL);
    qsort(sorted, n, sizeof(sorted[0]), cmp_kv);
    PK_GUARD(pk_buf_append_be32(out, (uint32_t)n));
    for (size_t i = 0; i < n; i++) {
        PK_ENSURE(i == 0 || strcmp(sorted[i - 1].key, sorted[i].key) != 0, P11KMS_ERR_INVALID_ARGUMENT,
                  "encryption context key '%s' is given twice", sorted[i].key);
        PK_GUARD(pk_buf_append_lpstr(out, sorted[i].key));
        PK_GUARD(pk_buf_append_lpstr(out, sorted[i].value));
    }
    return PK_OK;
}
