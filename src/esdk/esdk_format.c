/* ESDK message format v2: header serialization, parsing and key derivation. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "crypto/crypto.h"
#include "crypto/crypto_esdk.h"
#include "esdk/esdk.h"

#define VERSION_2 0x02
#define CONTENT_FRAMED 0x02
#define CONTENT_NONFRAMED 0x01

bool pk_esdk_suite_known(uint16_t suite, bool *signs)
{
    if (signs) *signs = suite == PK_ESDK_SUITE_COMMIT_SIG;
    return suite == PK_ESDK_SUITE_COMMIT || suite == PK_ESDK_SUITE_COMMIT_SIG;
}

void pk_esdk_header_clear(pk_esdk_header *hd)
{
    for (size_t i = 0; i < hd->nctx; i++) {
        free((char *)hd->ctx[i].key);
        free((char *)hd->ctx[i].value);
    }
    free(hd->ctx);
    free(hd->edk);
    pk_buf_free(&hd->body);
    memset(hd, 0, sizeof(*hd));
}

static int kv_cmp(const void *a, const void *b)
{
    return strcmp(((const p11kms_kv *)a)->key, ((const p11kms_kv *)b)->key); /* byte order, as the spec's UTF-8 sort */
}

static pk_result append_be16(pk_buf *b, size_t v)
{
    uint8_t x[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    return pk_buf_append(b, x, 2);
}

static pk_result append_field16(pk_buf *b, const void *p, size_t n, const char *what)
{
    PK_ENSURE(n <= 0xffff, P11KMS_ERR_INVALID_ARGUMENT, "%s is longer than 65535 bytes", what);
    PK_GUARD(append_be16(b, n));
    return pk_buf_append(b, p, n);
}

pk_result pk_esdk_ctx_serialize(const p11kms_kv *ctx, size_t n, pk_buf *out)
{
    p11kms_kv *s;
    pk_result r = PK_OK;
    if (n == 0) return PK_OK;
    PK_ENSURE(n <= 0xffff, P11KMS_ERR_LIMIT, "encryption context has too many pairs");
    s = malloc(n * sizeof(*s));
    PK_ENSURE_ALLOC(s);
    memcpy(s, ctx, n * sizeof(*s));
    qsort(s, n, sizeof(*s), kv_cmp);
    PK_TRY(append_be16(out, n));
    for (size_t i = 0; i < n; i++) {
        PK_CHECK(i == 0 || strcmp(s[i - 1].key, s[i].key) != 0, P11KMS_ERR_INVALID_ARGUMENT,
                 "encryption context key '%s' appears twice", s[i].key);
        PK_TRY(append_field16(out, s[i].key, strlen(s[i].key), "an encryption context key"));
        PK_TRY(append_field16(out, s[i].value, strlen(s[i].value), "an encryption context value"));
    }
out:
    free(s);
    return r;
}

pk_result pk_esdk_header_build(pk_esdk_header *hd, const pk_esdk_edk *edk, size_t nedk)
{
    pk_buf aad = {0};
    pk_buf *b = &hd->body;
    uint8_t fl[4];
    pk_result r = PK_OK;

    pk_buf_reset(b);
    PK_TRY(pk_esdk_ctx_serialize(hd->ctx, hd->nctx, &aad));
    PK_CHECK(nedk >= 1 && nedk <= 0xffff, P11KMS_ERR_INVALID_ARGUMENT, "a message needs 1..65535 encrypted data keys");
    PK_TRY(pk_buf_append_u8(b, VERSION_2));
    PK_TRY(append_be16(b, hd->suite));
    PK_TRY(pk_buf_append(b, hd->msg_id, sizeof(hd->msg_id)));
    PK_TRY(append_field16(b, aad.data, aad.len, "the serialized encryption context"));
    PK_TRY(append_be16(b, nedk));
    for (size_t i = 0; i < nedk; i++) {
        PK_TRY(append_field16(b, edk[i].provider_id.ptr, edk[i].provider_id.len, "a key provider id"));
        PK_TRY(append_field16(b, edk[i].provider_info.ptr, edk[i].provider_info.len, "a key provider info"));
        PK_TRY(append_field16(b, edk[i].ciphertext.ptr, edk[i].ciphertext.len, "an encrypted data key"));
    }
    PK_TRY(pk_buf_append_u8(b, CONTENT_FRAMED));
    pk_store_be32(fl, hd->frame_len);
    PK_TRY(pk_buf_append(b, fl, 4));
    PK_TRY(pk_buf_append(b, hd->commit, sizeof(hd->commit)));
out:
    pk_buf_free(&aad);
    return r;
}

/* A bounds-checked reader: `need` answers whether n more bytes are there. */
typedef struct rd {
    const uint8_t *p;
    size_t n, off;
} rd;

static bool need(const rd *r, size_t k) { return r->n - r->off >= k; }
static uint16_t be16(rd *r)
{
    uint16_t v = (uint16_t)((r->p[r->off] << 8) | r->p[r->off + 1]);
    r->off += 2;
    return v;
}

/* Sentinel result for "not enough bytes yet" (never reported: turned into need-more or truncation). */
#define SHORT() do { short_ = true; goto out; } while (0)
#define NEED(k) do { if (!need(&c, (k))) SHORT(); } while (0)

static char *dup_text(const uint8_t *p, size_t n)
{
    char *s;
    if (memchr(p, 0, n) != NULL) return NULL;
    s = malloc(n + 1);
    if (s == NULL) return NULL;
    memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

static pk_result parse_ctx(const uint8_t *p, size_t n, pk_esdk_header *hd)
{
    rd c = {p, n, 0};
    uint16_t count;
    PK_ENSURE(n >= 2, P11KMS_ERR_CIPHERTEXT_INVALID, "message header: malformed encryption context");
    count = be16(&c);
    PK_ENSURE(count > 0, P11KMS_ERR_CIPHERTEXT_INVALID, "message header: encryption context with no pairs");
    hd->ctx = calloc(count, sizeof(*hd->ctx));
    PK_ENSURE_ALLOC(hd->ctx);
    for (size_t i = 0; i < count; i++) {
        size_t kl, vl, ko, vo;
        PK_ENSURE(need(&c, 2), P11KMS_ERR_CIPHERTEXT_INVALID, "message header: malformed encryption context");
        kl = be16(&c);
        ko = c.off;
        PK_ENSURE(need(&c, kl + 2), P11KMS_ERR_CIPHERTEXT_INVALID, "message header: malformed encryption context");
        c.off += kl;
        vl = be16(&c);
        vo = c.off;
        PK_ENSURE(need(&c, vl), P11KMS_ERR_CIPHERTEXT_INVALID, "message header: malformed encryption context");
        c.off += vl;
        hd->ctx[i].key = dup_text(p + ko, kl);
        hd->ctx[i].value = dup_text(p + vo, vl);
        hd->nctx = i + 1;
        PK_ENSURE(hd->ctx[i].key != NULL && hd->ctx[i].value != NULL, P11KMS_ERR_CIPHERTEXT_INVALID,
                  "message header: encryption context holds a NUL byte");
        for (size_t j = 0; j < i; j++)
            PK_ENSURE(strcmp(hd->ctx[j].key, hd->ctx[i].key) != 0, P11KMS_ERR_CIPHERTEXT_INVALID,
                      "message header: encryption context key '%s' appears twice", hd->ctx[i].key);
    }
    PK_ENSURE(c.off == n, P11KMS_ERR_CIPHERTEXT_INVALID, "message header: malformed encryption context");
    return PK_OK;
}

pk_result pk_esdk_header_parse(const uint8_t *p, size_t n, bool eof, pk_esdk_header *hd, size_t *used)
{
    rd c = {p, n, 0};
    bool short_ = false;
    size_t aad_len, aad_off, count, cap = 0;
    pk_result r = PK_OK;

    *used = 0;
    pk_esdk_header_clear(hd);
    NEED(1);
    PK_CHECK(p[0] != 0x01, P11KMS_ERR_CIPHERTEXT_INVALID, "message format version 1 is not supported (only 2)");
    PK_CHECK(p[0] == VERSION_2, P11KMS_ERR_CIPHERTEXT_INVALID, "not an AWS Encryption SDK message (version byte 0x%02x)",
             p[0]);
    c.off = 1;
    NEED(2 + PK_ESDK_MSG_ID_LEN + 2);
    hd->suite = be16(&c);
    PK_CHECK(pk_esdk_suite_known(hd->suite, NULL), P11KMS_ERR_CIPHERTEXT_INVALID,
             "algorithm suite 0x%04x is not supported (0x0478 or 0x0578)", hd->suite);
    memcpy(hd->msg_id, p + c.off, PK_ESDK_MSG_ID_LEN);
    c.off += PK_ESDK_MSG_ID_LEN;
    aad_len = be16(&c);
    aad_off = c.off;
    NEED(aad_len + 2);
    c.off += aad_len;
    if (aad_len > 0) PK_TRY(parse_ctx(p + aad_off, aad_len, hd));
    count = be16(&c);
    PK_CHECK(count > 0, P11KMS_ERR_CIPHERTEXT_INVALID, "message header: no encrypted data key");
    for (size_t i = 0; i < count; i++) {
        pk_bytes f[3];
        for (int k = 0; k < 3; k++) {
            size_t l;
            NEED(2);
            l = be16(&c);
            NEED(l);
            f[k] = pk_bytes_of(p + c.off, l);
            c.off += l;
        }
        if (hd->nedk == cap) {
            pk_esdk_edk *x = realloc(hd->edk, (cap = cap ? cap * 2 : 2) * sizeof(*x));
            PK_CHECK_ALLOC(x);
            hd->edk = x;
        }
        hd->edk[hd->nedk++] = (pk_esdk_edk){f[0], f[1], f[2]};
    }
    NEED(1 + 4 + 32 + 16);
    PK_CHECK(p[c.off] != CONTENT_NONFRAMED, P11KMS_ERR_CIPHERTEXT_INVALID,
             "non-framed messages are not supported");
    PK_CHECK(p[c.off] == CONTENT_FRAMED, P11KMS_ERR_CIPHERTEXT_INVALID, "message header: unknown content type 0x%02x",
             p[c.off]);
    c.off++;
    hd->frame_len = pk_load_be32(p + c.off);
    c.off += 4;
    PK_CHECK(hd->frame_len >= 1 && hd->frame_len <= PK_ESDK_FRAME_MAX, P11KMS_ERR_CIPHERTEXT_INVALID,
             "message header: frame length %u is outside 1..%u", hd->frame_len, PK_ESDK_FRAME_MAX);
    memcpy(hd->commit, p + c.off, 32);
    c.off += 32;
    /* The EDK views point into body: copy the body and rebase them. */
    PK_TRY(pk_buf_append(&hd->body, p, c.off));
    for (size_t i = 0; i < hd->nedk; i++) {
        hd->edk[i].provider_id.ptr = hd->body.data + (hd->edk[i].provider_id.ptr - p);
        hd->edk[i].provider_info.ptr = hd->body.data + (hd->edk[i].provider_info.ptr - p);
        hd->edk[i].ciphertext.ptr = hd->body.data + (hd->edk[i].ciphertext.ptr - p);
    }
    memcpy(hd->tag, p + c.off, 16);
    c.off += 16;
    *used = c.off;
out:
    if (short_) {
        if (eof || n >= PK_ESDK_HEADER_MAX) {
            r = eof ? pk_fail(P11KMS_ERR_CIPHERTEXT_INVALID, "truncated message: the header is incomplete")
                    : pk_fail(P11KMS_ERR_LIMIT, "message header is larger than %u bytes", PK_ESDK_HEADER_MAX);
        }
    }
    if (pk_failed(r) || *used == 0) pk_esdk_header_clear(hd);
    return r;
}

pk_result pk_esdk_derive(uint16_t suite, const uint8_t data_key[PK_ESDK_KEY_LEN],
                         const uint8_t msg_id[PK_ESDK_MSG_ID_LEN], pk_secbuf *derived, uint8_t commit[32])
{
    uint8_t info[2 + 9] = {(uint8_t)(suite >> 8), (uint8_t)suite, 'D', 'E', 'R', 'I', 'V', 'E', 'K', 'E', 'Y'};
    static const uint8_t commit_info[] = {'C', 'O', 'M', 'M', 'I', 'T', 'K', 'E', 'Y'};

    PK_GUARD(pk_secbuf_alloc(derived, PK_ESDK_KEY_LEN));
    PK_GUARD(pk_hkdf_sha512(msg_id, PK_ESDK_MSG_ID_LEN, data_key, PK_ESDK_KEY_LEN, info, sizeof(info), derived->data,
                            PK_ESDK_KEY_LEN));
    derived->len = PK_ESDK_KEY_LEN;
    return pk_hkdf_sha512(msg_id, PK_ESDK_MSG_ID_LEN, data_key, PK_ESDK_KEY_LEN, commit_info, sizeof(commit_info),
                          commit, 32);
}

pk_result pk_esdk_header_tag(const pk_secbuf *derived, const pk_buf *body, uint8_t tag[16])
{
    static const uint8_t zero_iv[PK_GCM_IV_LEN];
    pk_gcm *g = NULL;
    pk_result r;
    PK_GUARD(pk_gcm_new(derived->data, true, &g));
    r = pk_gcm_seal(g, zero_iv, body->data, body->len, NULL, 0, NULL, tag);
    pk_gcm_free(g);
    return r;
}
