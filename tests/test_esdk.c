/*
 * The AWS Encryption SDK message format (src/esdk) and the file API
 * (src/core/api_file.c). The format layer is exercised with a raw data key;
 * the file API with a real SoftHSM token (GenerateDataKey, Decrypt,
 * ReEncrypt in the HSM).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "crypto/crypto.h"
#include "crypto/crypto_esdk.h"
#include "esdk/esdk.h"
#include "keys/keys.h"
#include "lib/fixture.h"
#include "util/codec.h"

#define ADM "arn:aws:iam::111122223333:role/admin"

static const uint8_t KEY[32] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
                                16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31};
static uint8_t msg_id[32];

static pk_fixture fx;
static p11kms *h;
static p11kms_caller *adm;

static pk_result to_buf(void *arg, const uint8_t *p, size_t n) { return pk_buf_append(arg, p, n); }
static pk_result raw_key(void *arg, const pk_esdk_header *hd, pk_secbuf *key)
{
    (void)hd;
    return pk_secbuf_set(key, arg, 32);
}

static void hex_eq(const uint8_t *got, size_t n, const char *want)
{
    char hex[129];
    pk_hex_encode(got, n, hex);
    CU_ASSERT_STRING_EQUAL(hex, want);
}

/* ---- format layer with a raw data key ---- */

static void test_esdk_derivation_known_answer(void)
{
    pk_secbuf d = PK_SECBUF_INIT;
    uint8_t commit[32];
    for (int i = 0; i < 32; i++) msg_id[i] = (uint8_t)(32 + i);
    /* Expected values from an independent HKDF-SHA512 (python cryptography), info per algorithm-suites.md. */
    CU_ASSERT(pk_ok(pk_esdk_derive(0x0478, KEY, msg_id, &d, commit)));
    hex_eq(d.data, 32, "30f891fcd92a8abe67342e11f1cfacffa92994861fca7075fb36a21f9edbf6ae");
    hex_eq(commit, 32, "16bbdf5f77e52a6d45b8cad7f30e0bbf69b304b0d51de9d153b822934fd32d47");
    pk_secbuf_free(&d);
    CU_ASSERT(pk_ok(pk_esdk_derive(0x0578, KEY, msg_id, &d, commit)));
    hex_eq(d.data, 32, "f1c9314c892f401f26fb2fff1e52805b875f89c19258972b0170ceeb9e6e1dd3");
    hex_eq(commit, 32, "16bbdf5f77e52a6d45b8cad7f30e0bbf69b304b0d51de9d153b822934fd32d47");
    pk_secbuf_free(&d);
}

static void raw_encrypt(uint16_t suite, uint32_t fl, unsigned threads, const uint8_t *pt, size_t n, size_t chunk,
                        pk_buf *out)
{
    pk_esdk_header hd = {0};
    pk_esdk_enc *e = NULL;
    pk_ec384 *sk = NULL;
    pk_esdk_edk edk = {pk_bytes_of("raw", 3), pk_bytes_of("test", 4), pk_bytes_of("x", 1)};
    uint8_t point[PK_EC384_POINT_LEN];
    static char b64[80];

    hd.suite = suite;
    hd.frame_len = fl;
    memcpy(hd.msg_id, msg_id, 32);
    hd.ctx = calloc(2, sizeof(*hd.ctx));
    hd.ctx[0].key = strdup("purpose");
    hd.ctx[0].value = strdup("test");
    hd.nctx = 1;
    if (suite == PK_ESDK_SUITE_COMMIT_SIG) {
        CU_ASSERT_FATAL(pk_ok(pk_ec384_generate(&sk)) && pk_ok(pk_ec384_point(sk, point)));
        pk_base64_encode(point, sizeof(point), b64);
        hd.ctx[1].key = strdup(PK_ESDK_PUBKEY_CTX);
        hd.ctx[1].value = strdup(b64);
        hd.nctx = 2;
    }
    CU_ASSERT_FATAL(pk_ok(pk_esdk_enc_new(&hd, &edk, 1, KEY, sk, threads, to_buf, out, &e)));
    for (size_t off = 0; off < n; off += chunk)
        CU_ASSERT_FATAL(pk_ok(pk_esdk_enc_update(e, pt + off, n - off < chunk ? n - off : chunk)));
    CU_ASSERT_FATAL(pk_ok(pk_esdk_enc_final(e)));
    pk_esdk_enc_free(e);
    pk_esdk_header_clear(&hd);
}

/* Decrypt in chunks; returns the result and leaves what was released in out. */
static pk_result raw_decrypt(const uint8_t *ct, size_t n, size_t chunk, unsigned threads, const uint8_t *key,
                             pk_buf *out)
{
    pk_esdk_dec *d = NULL;
    pk_result r = pk_esdk_dec_new(threads, raw_key, (void *)key, to_buf, out, &d);
    for (size_t off = 0; pk_ok(r) && off < n; off += chunk)
        r = pk_esdk_dec_update(d, ct + off, n - off < chunk ? n - off : chunk);
    if (pk_ok(r)) r = pk_esdk_dec_final(d);
    pk_esdk_dec_free(d);
    return r;
}

static uint8_t *pattern(size_t n)
{
    uint8_t *p = malloc(n + 1);
    for (size_t i = 0; i < n; i++) p[i] = (uint8_t)(i * 131 + 7);
    return p;
}

static void test_esdk_round_trips(void)
{
    const size_t sizes[] = {0, 1, 4095, 4096, 4097, 100 * 1024};
    const uint16_t suites[] = {PK_ESDK_SUITE_COMMIT, PK_ESDK_SUITE_COMMIT_SIG};
    uint8_t *pt = pattern(100 * 1024);
    for (size_t s = 0; s < PK_ARRAY_LEN(suites); s++) {
        for (size_t i = 0; i < PK_ARRAY_LEN(sizes); i++) {
            pk_buf ct = {0}, back = {0}, back2 = {0};
            raw_encrypt(suites[s], 4096, 1, pt, sizes[i], 1000, &ct);
            CU_ASSERT(pk_ok(raw_decrypt(ct.data, ct.len, 4096, 1, KEY, &back)));
            CU_ASSERT_EQUAL(back.len, sizes[i]);
            /* memcmp on an empty (NULL) buffer is undefined even for length 0: UBSan stops there. */
            CU_ASSERT(back.len == sizes[i] && (sizes[i] == 0 || memcmp(back.data, pt, sizes[i]) == 0));
            /* Byte-at-a-time input and 3 threads give the same plaintext. */
            CU_ASSERT(pk_ok(raw_decrypt(ct.data, ct.len, sizes[i] < 5000 ? 1 : 777, 3, KEY, &back2)));
            CU_ASSERT(back2.len == sizes[i] && (sizes[i] == 0 || memcmp(back2.data, pt, sizes[i]) == 0));
            pk_buf_free(&ct);
            pk_buf_free(&back);
            pk_buf_free(&back2);
        }
    }
    free(pt);
}

static void test_esdk_threads_same_bytes(void)
{
    uint8_t *pt = pattern(3 * 1024 * 1024 + 5);
    pk_buf one = {0}, four = {0};
    raw_encrypt(PK_ESDK_SUITE_COMMIT, 4096, 1, pt, 3 * 1024 * 1024 + 5, 65536, &one);
    raw_encrypt(PK_ESDK_SUITE_COMMIT, 4096, 4, pt, 3 * 1024 * 1024 + 5, 1000000, &four);
    CU_ASSERT_EQUAL(one.len, four.len);
    CU_ASSERT(one.len == four.len && memcmp(one.data, four.data, one.len) == 0);
    pk_buf_free(&one);
    pk_buf_free(&four);
    free(pt);
}

/* A message of 4 regular frames of 100 bytes and a final frame of 50. */
#define FL 100
#define RF (4 + 12 + FL + 16)
static pk_buf msg;
static size_t hlen;

static void make_msg(uint16_t suite)
{
    uint8_t *pt = pattern(450);
    pk_esdk_header hd = {0};
    pk_buf_free(&msg);
    raw_encrypt(suite, FL, 1, pt, 450, 450, &msg);
    CU_ASSERT_FATAL(pk_ok(pk_esdk_header_parse(msg.data, msg.len, true, &hd, &hlen)));
    pk_esdk_header_clear(&hd);
    free(pt);
}

/* Decrypt an edited copy: the failure's exact message and how much plaintext came out. */
static void expect_refused(const pk_buf *m, const char *want, size_t released)
{
    const size_t chunks[] = {1, 64, 1 << 20};
    for (size_t c = 0; c < PK_ARRAY_LEN(chunks); c++) {
        pk_buf out = {0};
        pk_result r = raw_decrypt(m->data, m->len, chunks[c], 2, KEY, &out);
        CU_ASSERT_EQUAL(r.code, P11KMS_ERR_CIPHERTEXT_INVALID);
        CU_ASSERT_STRING_EQUAL(p11kms_last_error(), want);
        if (strcmp(p11kms_last_error(), want) != 0) fprintf(stderr, "\n  got '%s'\n", p11kms_last_error());
        CU_ASSERT_EQUAL(out.len, released);
        pk_buf_free(&out);
    }
}

static void edited(pk_buf *out, size_t cut_at, size_t cut_len, const uint8_t *ins, size_t ins_len, size_t at)
{
    pk_buf tmp = {0};
    out->len = 0;
    PK_IGNORE(pk_buf_append(&tmp, msg.data, cut_at));
    PK_IGNORE(pk_buf_append(&tmp, msg.data + cut_at + cut_len, msg.len - cut_at - cut_len));
    PK_IGNORE(pk_buf_append(out, tmp.data, at));
    PK_IGNORE(pk_buf_append(out, ins, ins_len));
    PK_IGNORE(pk_buf_append(out, tmp.data + at, tmp.len - at));
    pk_buf_free(&tmp);
}

static void test_esdk_tampering_each_kind(void)
{
    pk_buf m = {0};
    uint8_t frame2[RF], key2[32];
    size_t f1 = hlen, f2 = hlen + RF, f3 = hlen + 2 * RF, fin = hlen + 4 * RF;

    make_msg(PK_ESDK_SUITE_COMMIT);
    f1 = hlen, f2 = hlen + RF, f3 = hlen + 2 * RF, fin = hlen + 4 * RF;
    memcpy(frame2, msg.data + f2, RF);
    /* Truncations. */
    edited(&m, 20, msg.len - 20, NULL, 0, 20);
    expect_refused(&m, "truncated message: the header is incomplete", 0);
    edited(&m, f2 + 50, msg.len - f2 - 50, NULL, 0, f2 + 50);
    expect_refused(&m, "truncated message: frame 2 is incomplete", FL);
    edited(&m, fin, msg.len - fin, NULL, 0, fin);
    expect_refused(&m, "truncated message: the final frame is missing", 4 * FL);
    edited(&m, fin + 30, msg.len - fin - 30, NULL, 0, fin + 30);
    expect_refused(&m, "truncated message: the final frame is incomplete", 4 * FL);
    /* Reordered, duplicated, dropped. */
    edited(&m, f2, RF, frame2, RF, f2 + RF);
    expect_refused(&m, "frames out of order: frame 3 where frame 2 was expected (reordered frames)", FL);
    edited(&m, 0, 0, frame2, RF, f3);
    expect_refused(&m, "frame 2 appears twice (duplicated frame)", 2 * FL);
    edited(&m, f2, RF, NULL, 0, 0);
    expect_refused(&m, "frame 2 is missing (dropped frame)", FL);
    /* Changed frame, header, commitment; trailing bytes. */
    edited(&m, 0, 0, NULL, 0, 0);
    m.data[f3 + 40] ^= 1;
    expect_refused(&m, "frame 3 failed authentication (changed ciphertext)", 2 * FL);
    edited(&m, 0, 0, NULL, 0, 0);
    m.data[f1 + 15] ^= 1;
    expect_refused(&m, "frame 1: its IV is not its sequence number (changed frame)", 0);
    edited(&m, 0, 0, NULL, 0, 0);
    m.data[hlen - 16 - 32 - 2] ^= 1; /* frame length */
    expect_refused(&m, "message header failed authentication (the header was changed)", 0);
    edited(&m, 0, 0, NULL, 0, 0);
    m.data[hlen - 16 - 1] ^= 1; /* commit key */
    expect_refused(&m, "key commitment does not match: the data key does not belong to this message", 0);
    edited(&m, 0, 0, (const uint8_t *)"x", 1, msg.len);
    expect_refused(&m, "trailing data after the end of the message", 450);
    edited(&m, 0, 0, NULL, 0, 0);
    m.data[0] = 1;
    expect_refused(&m, "message format version 1 is not supported (only 2)", 0);
    m.data[0] = 2;
    m.data[1] = 1;
    expect_refused(&m, "algorithm suite 0x0178 is not supported (0x0478 or 0x0578)", 0);
    /* The wrong data key fails on the commitment before any frame. */
    {
        pk_buf out = {0};
        memcpy(key2, KEY, 32);
        key2[0] ^= 1;
        CU_ASSERT_EQUAL(raw_decrypt(msg.data, msg.len, 4096, 1, key2, &out).code, P11KMS_ERR_CIPHERTEXT_INVALID);
        CU_ASSERT_STRING_EQUAL(p11kms_last_error(),
                               "key commitment does not match: the data key does not belong to this message");
        CU_ASSERT_EQUAL(out.len, 0);
        pk_buf_free(&out);
    }
    /* Signed suite: a changed signature, a missing one. */
    make_msg(PK_ESDK_SUITE_COMMIT_SIG);
    edited(&m, 0, 0, NULL, 0, 0);
    m.data[m.len - 3] ^= 1;
    expect_refused(&m, "the message signature does not verify (the message was changed)", 450);
    edited(&m, msg.len - 50, 50, NULL, 0, msg.len - 50);
    expect_refused(&m, "truncated message: the signature is missing", 450);
    pk_buf_free(&m);
    pk_buf_free(&msg);
}

/* Every single-byte change of the header and of frame 2 is refused, and frame 2 never comes out. */
/*
 * Batches of many chunks (4 KiB frames: 8 a chunk), frames split across
 * update calls, and a changed frame at several places: 2 and 3 threads
 * release exactly the frames before it, in order, and no frame after it.
 */
static void test_esdk_threads_changed_frame(void)
{
    const size_t nframes = 300, bad[] = {1, 8, 9, 64, 65, 130, 255, 256, 300};
    const size_t chunks[] = {777, 65536, 100000, 1 << 20, 3 << 20};
    size_t n = nframes * 4096 + 100, hl = 0;
    uint8_t *pt = pattern(n);
    pk_buf ct = {0};
    pk_esdk_header hd = {0};

    raw_encrypt(PK_ESDK_SUITE_COMMIT, 4096, 2, pt, n, 1 << 20, &ct);
    CU_ASSERT_FATAL(pk_ok(pk_esdk_header_parse(ct.data, ct.len, true, &hd, &hl)));
    pk_esdk_header_clear(&hd);
    for (size_t c = 0; c < PK_ARRAY_LEN(chunks); c++) {
        pk_buf out = {0};
        CU_ASSERT(pk_ok(raw_decrypt(ct.data, ct.len, chunks[c], 2, KEY, &out)));
        CU_ASSERT(out.len == n && memcmp(out.data, pt, n) == 0);
        pk_buf_free(&out);
    }
    for (size_t b = 0; b < PK_ARRAY_LEN(bad); b++) {
        char want[80];
        size_t at = hl + (bad[b] - 1) * (4 + 12 + 4096 + 16) + 16 + 100;
        snprintf(want, sizeof(want), "frame %zu failed authentication (changed ciphertext)", bad[b]);
        ct.data[at] ^= 4;
        for (size_t c = 0; c < PK_ARRAY_LEN(chunks); c++) {
            pk_buf out = {0};
            pk_result r = raw_decrypt(ct.data, ct.len, chunks[c], 2 + c % 2, KEY, &out);
            CU_ASSERT_EQUAL(r.code, P11KMS_ERR_CIPHERTEXT_INVALID);
            CU_ASSERT_STRING_EQUAL(p11kms_last_error(), want);
            CU_ASSERT_EQUAL(out.len, (bad[b] - 1) * 4096);
            /* out.data is NULL when nothing was released (memcmp(NULL, .., 0) is undefined). */
            CU_ASSERT(out.len == (bad[b] - 1) * 4096 && (out.len == 0 || memcmp(out.data, pt, out.len) == 0));
            pk_buf_free(&out);
        }
        ct.data[at] ^= 4;
    }
    pk_buf_free(&ct);
    free(pt);
}

/* A sink that takes `left` bytes and then fails, once; later calls count as misuse. */
typedef struct short_sink {
    size_t left, calls_after;
    bool failed;
} short_sink;

static pk_result to_short(void *arg, const uint8_t *p, size_t n)
{
    short_sink *s = arg;
    (void)p;
    if (s->failed) s->calls_after++;
    if (s->failed || n > s->left) {
        s->failed = true;
        return pk_fail(P11KMS_ERR_INTERNAL, "cannot write: disk full (test)");
    }
    s->left -= n;
    return PK_OK;
}

/* A failing sink in the middle of a batch of 2 threads stops the stream with its error. */
static void test_esdk_threads_sink_failure(void)
{
    size_t n = 3 * 1024 * 1024, limits[] = {0, 100, 300 * 1024, 1024 * 1024 + 5};
    uint8_t *pt = pattern(n);
    pk_buf ct = {0};
    raw_encrypt(PK_ESDK_SUITE_COMMIT, 4096, 2, pt, n, 1 << 20, &ct);
    for (size_t l = 0; l < PK_ARRAY_LEN(limits); l++) {
        pk_esdk_header hd = {0};
        pk_esdk_edk edk = {pk_bytes_of("raw", 3), pk_bytes_of("test", 4), pk_bytes_of("x", 1)};
        pk_esdk_enc *e = NULL;
        pk_esdk_dec *d = NULL;
        short_sink s = {limits[l], 0, false};
        pk_result r = PK_OK;
        hd.suite = PK_ESDK_SUITE_COMMIT;
        hd.frame_len = 4096;
        /* Encryption: the header goes out at once, frames per batch. */
        r = pk_esdk_enc_new(&hd, &edk, 1, KEY, NULL, 2, to_short, &s, &e);
        for (size_t off = 0; pk_ok(r) && off < n; off += 1 << 20) r = pk_esdk_enc_update(e, pt + off, 1 << 20);
        if (pk_ok(r)) r = pk_esdk_enc_final(e);
        CU_ASSERT_EQUAL(r.code, P11KMS_ERR_INTERNAL);
        CU_ASSERT_STRING_EQUAL(p11kms_last_error(), "cannot write: disk full (test)");
        if (e != NULL) {
            CU_ASSERT_EQUAL(pk_esdk_enc_update(e, pt, 10).code, P11KMS_ERR_INVALID_STATE);
            CU_ASSERT_STRING_EQUAL(p11kms_last_error(), "the encryption stream has failed");
        }
        CU_ASSERT_EQUAL(s.calls_after, 0);
        pk_esdk_enc_free(e);
        pk_esdk_header_clear(&hd);
        /* Decryption. */
        s = (short_sink){limits[l], 0, false};
        r = pk_esdk_dec_new(2, raw_key, (void *)KEY, to_short, &s, &d);
        for (size_t off = 0; pk_ok(r) && off < ct.len; off += 1 << 20)
            r = pk_esdk_dec_update(d, ct.data + off, ct.len - off < (1u << 20) ? ct.len - off : 1 << 20);
        if (pk_ok(r)) r = pk_esdk_dec_final(d);
        CU_ASSERT_EQUAL(r.code, P11KMS_ERR_INTERNAL);
        CU_ASSERT_STRING_EQUAL(p11kms_last_error(), "cannot write: disk full (test)");
        CU_ASSERT_EQUAL(pk_esdk_dec_update(d, ct.data, 10).code, P11KMS_ERR_INVALID_STATE);
        CU_ASSERT_EQUAL(s.calls_after, 0);
        pk_esdk_dec_free(d);
    }
    pk_buf_free(&ct);
    free(pt);
}

static void test_esdk_every_byte_flip(void)
{
    make_msg(PK_ESDK_SUITE_COMMIT);
    for (size_t i = 0; i < hlen + 2 * RF; i++) {
        pk_buf out = {0};
        if (i >= hlen && i < hlen + RF) continue; /* frame 1 is not part of this test */
        msg.data[i] ^= 0x40;
        CU_ASSERT(pk_failed(raw_decrypt(msg.data, msg.len, 1 << 20, 1, KEY, &out)));
        CU_ASSERT(out.len <= FL);
        msg.data[i] ^= 0x40;
        pk_buf_free(&out);
    }
    pk_buf_free(&msg);
}

/* ---- messages made by the official SDK (tests/vectors/esdk/README.md) ---- */

/* A Raw AES keyring EDK: info = name || be32 128 || be32 12 || IV; ciphertext = key || tag; AAD = the context. */
static pk_result raw_aes_unwrap(void *arg, const pk_esdk_header *hd, pk_secbuf *key)
{
    pk_buf aad = {0};
    pk_gcm *g = NULL;
    const pk_esdk_edk *e = &hd->edk[0];
    bool ok;
    (void)arg;
    PK_GUARD(pk_esdk_ctx_serialize(hd->ctx, hd->nctx, &aad));
    PK_GUARD(pk_secbuf_alloc(key, 32));
    PK_GUARD(pk_gcm_new(KEY, false, &g));
    ok = hd->nedk == 1 && e->provider_info.len == 7 + 20 && e->ciphertext.len == 48 &&
         pk_gcm_open(g, e->provider_info.ptr + 15, aad.data, aad.len, e->ciphertext.ptr, 32, e->ciphertext.ptr + 32,
                     key->data);
    pk_gcm_free(g);
    pk_buf_free(&aad);
    PK_ENSURE(ok, P11KMS_ERR_CIPHERTEXT_INVALID, "raw AES unwrap failed");
    key->len = 32;
    return PK_OK;
}

static void read_vector(const char *name, pk_buf *out)
{
    char path[512];
    uint8_t buf[4096];
    size_t n;
    FILE *f;
    pk_fixture_src(name, path, sizeof(path));
    f = fopen(path, "rb");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0) PK_IGNORE(pk_buf_append(out, buf, n));
    fclose(f);
}

static void test_esdk_official_sdk_vectors(void)
{
    const char *files[] = {"tests/vectors/esdk/sdk-js-0x0478.bin", "tests/vectors/esdk/sdk-js-0x0578.bin"};
    const uint16_t suites[] = {0x0478, 0x0578};
    uint8_t *want = pattern(3000);
    for (size_t i = 0; i < PK_ARRAY_LEN(files); i++) {
        pk_buf m = {0}, out = {0};
        pk_esdk_dec *d = NULL;
        const pk_esdk_header *hd;
        read_vector(files[i], &m);
        CU_ASSERT_FATAL(pk_ok(pk_esdk_dec_new(2, raw_aes_unwrap, NULL, to_buf, &out, &d)));
        CU_ASSERT(pk_ok(pk_esdk_dec_update(d, m.data, m.len)));
        CU_ASSERT(pk_ok(pk_esdk_dec_final(d)));
        CU_ASSERT(out.len == 3000 && memcmp(out.data, want, 3000) == 0);
        hd = pk_esdk_dec_header(d);
        CU_ASSERT_PTR_NOT_NULL_FATAL(hd);
        CU_ASSERT_EQUAL(hd->suite, suites[i]);
        CU_ASSERT_EQUAL(hd->frame_len, 1024);
        CU_ASSERT_EQUAL(pk_esdk_dec_frames(d), 3);
        CU_ASSERT_EQUAL(hd->nctx, suites[i] == 0x0578 ? 3 : 2);
        pk_esdk_dec_free(d);
        /* The last byte changed: the final frame's tag (0x0478) or the signature (0x0578) refuses it. */
        m.data[m.len - 1] ^= 1;
        out.len = 0;
        CU_ASSERT_FATAL(pk_ok(pk_esdk_dec_new(1, raw_aes_unwrap, NULL, to_buf, &out, &d)));
        CU_ASSERT(pk_failed(pk_esdk_dec_update(d, m.data, m.len)) || pk_failed(pk_esdk_dec_final(d)));
        CU_ASSERT_STRING_EQUAL(p11kms_last_error(), suites[i] == 0x0578
                                                        ? "the message signature does not verify (the message was changed)"
                                                        : "frame 3 (final) failed authentication (changed ciphertext)");
        CU_ASSERT_EQUAL(out.len, suites[i] == 0x0578 ? 3000 : 2048);
        pk_esdk_dec_free(d);
        pk_buf_free(&m);
        pk_buf_free(&out);
    }
    free(want);
}

/* ---- the file API on the HSM ---- */

static int api_sink(void *arg, const uint8_t *p, size_t n) { return pk_buf_append(arg, p, n).code; }

static void file_encrypt(const char *key, const p11kms_kv *ctx, size_t n, uint16_t suite, const uint8_t *pt,
                         size_t len, pk_buf *out, char **summary)
{
    p11kms_file_encryptor *e = NULL;
    p11kms_file_opts o = {0, suite, 2};
    PK_ASSERT_RC(p11kms_file_encryptor_new(h, adm, key, ctx, n, &o, api_sink, out, &e), P11KMS_OK, NULL);
    PK_ASSERT_RC(p11kms_file_encrypt_update(e, pt, len), P11KMS_OK, NULL);
    PK_ASSERT_RC(p11kms_file_encrypt_final(e, summary), P11KMS_OK, NULL);
    p11kms_file_encryptor_free(e);
}

static p11kms_rc file_decrypt(const pk_buf *in, const p11kms_kv *req, size_t nreq, pk_buf *out, char **summary)
{
    p11kms_file_decryptor *d = NULL;
    p11kms_rc rc = p11kms_file_decryptor_new(h, adm, req, nreq, 2, api_sink, out, &d);
    if (rc == P11KMS_OK) rc = p11kms_file_decrypt_update(d, in->data, in->len);
    if (rc == P11KMS_OK) rc = p11kms_file_decrypt_final(d, summary);
    p11kms_file_decryptor_free(d);
    return rc;
}

static p11kms_rc file_rewrap(const pk_buf *in, const char *new_key, pk_buf *out)
{
    p11kms_file_decryptor *d = NULL;
    p11kms_rc rc = p11kms_file_rewrapper_new(h, adm, new_key, api_sink, out, &d);
    if (rc == P11KMS_OK) rc = p11kms_file_decrypt_update(d, in->data, in->len);
    if (rc == P11KMS_OK) rc = p11kms_file_decrypt_final(d, NULL);
    p11kms_file_decryptor_free(d);
    return rc;
}

static char *new_key(void)
{
    char policy[512], *id = NULL;
    p11kms_key_spec spec;
    snprintf(policy, sizeof(policy),
             "{\"Version\":\"2012-10-17\",\"Statement\":[{\"Sid\":\"Admin\",\"Effect\":\"Allow\","
             "\"Principal\":{\"AWS\":\"%s\"},\"Action\":\"kms:*\",\"Resource\":\"*\"}]}",
             ADM);
    memset(&spec, 0, sizeof(spec));
    spec.struct_size = sizeof(spec);
    spec.policy_json = policy;
    PK_ASSERT_RC(p11kms_key_create(h, adm, &spec, &id), P11KMS_OK, NULL);
    return id;
}

static size_t header_len(const pk_buf *m, pk_esdk_header *hd)
{
    size_t used = 0;
    CU_ASSERT(pk_ok(pk_esdk_header_parse(m->data, m->len, true, hd, &used)));
    return used;
}

static void test_esdk_file_api_kms(void)
{
    char *k1 = new_key(), *k2 = new_key(), *sum = NULL, arn[200];
    const p11kms_kv ctx[] = {{"tenant", "a"}, {"sch\xc3\xa9ma", "v\xc3\xa9"}};
    const p11kms_kv good[] = {{"tenant", "a"}}, bad[] = {{"tenant", "b"}}, absent[] = {{"job", "x"}};
    uint8_t *pt = pattern(10000);
    pk_buf ct = {0}, back = {0}, rw = {0}, rw2 = {0};
    pk_esdk_header hd = {0}, hd2 = {0};
    size_t hl, hl2;
    unsigned ver = 0;

    file_encrypt(k1, ctx, 2, 0, pt, 10000, &ct, &sum);
    pk_key_arn(&h->env, k1, arn, sizeof(arn));
    hl = header_len(&ct, &hd);
    CU_ASSERT_EQUAL(hd.nedk, 1);
    CU_ASSERT(hd.edk[0].provider_id.len == 7 && memcmp(hd.edk[0].provider_id.ptr, "aws-kms", 7) == 0);
    CU_ASSERT(hd.edk[0].provider_info.len == strlen(arn) && memcmp(hd.edk[0].provider_info.ptr, arn, strlen(arn)) == 0);
    if (hd.edk[0].provider_info.len != strlen(arn)) fprintf(stderr, "\n  ARN %.*s\n", (int)hd.edk[0].provider_info.len, hd.edk[0].provider_info.ptr);
    CU_ASSERT_PTR_NOT_NULL(strstr(sum, "\"Frames\":3"));
    CU_ASSERT_PTR_NOT_NULL(strstr(sum, "\"Bytes\":10000"));
    p11kms_free(sum);
    PK_ASSERT_RC(file_decrypt(&ct, good, 1, &back, &sum), P11KMS_OK, NULL);
    CU_ASSERT(back.len == 10000 && memcmp(back.data, pt, 10000) == 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(sum, arn));
    p11kms_free(sum);
    back.len = 0;
    PK_ASSERT_RC(file_decrypt(&ct, bad, 1, &back, NULL), P11KMS_ERR_CIPHERTEXT_INVALID,
                 "encryption context mismatch: the message's 'tenant' has another value");
    PK_ASSERT_RC(file_decrypt(&ct, absent, 1, &back, NULL), P11KMS_ERR_CIPHERTEXT_INVALID,
                 "encryption context mismatch: the message has no 'job' pair");
    CU_ASSERT_EQUAL(back.len, 0);
    /* A reserved context key is refused. */
    {
        p11kms_file_encryptor *e = NULL;
        const p11kms_kv res[] = {{"aws-crypto-public-key", "x"}};
        PK_ASSERT_RC(p11kms_file_encryptor_new(h, adm, k1, res, 1, NULL, api_sink, &rw, &e),
                     P11KMS_ERR_INVALID_ARGUMENT, "encryption context key 'aws-crypto-public-key' is reserved (aws-crypto- prefix)");
    }
    /* Rewrap after rotation: a new blob, the same body, still decrypts. */
    PK_ASSERT_RC(p11kms_key_rotate(h, adm, k1, &ver), P11KMS_OK, NULL);
    PK_ASSERT_RC(file_rewrap(&ct, NULL, &rw), P11KMS_OK, NULL);
    hl2 = header_len(&rw, &hd2);
    CU_ASSERT(rw.len - hl2 == ct.len - hl && memcmp(rw.data + hl2, ct.data + hl, ct.len - hl) == 0);
    CU_ASSERT(hd2.edk[0].ciphertext.len != hd.edk[0].ciphertext.len ||
              memcmp(hd2.edk[0].ciphertext.ptr, hd.edk[0].ciphertext.ptr, hd.edk[0].ciphertext.len) != 0);
    pk_esdk_header_clear(&hd2);
    back.len = 0;
    PK_ASSERT_RC(file_decrypt(&rw, NULL, 0, &back, NULL), P11KMS_OK, NULL);
    CU_ASSERT(back.len == 10000 && memcmp(back.data, pt, 10000) == 0);
    /* Rewrap to another key: its ARN in the EDK, the same body. */
    PK_ASSERT_RC(file_rewrap(&rw, k2, &rw2), P11KMS_OK, NULL);
    hl2 = header_len(&rw2, &hd2);
    pk_key_arn(&h->env, k2, arn, sizeof(arn));
    CU_ASSERT(hd2.edk[0].provider_info.len == strlen(arn) && memcmp(hd2.edk[0].provider_info.ptr, arn, strlen(arn)) == 0);
    CU_ASSERT(rw2.len - hl2 == ct.len - hl && memcmp(rw2.data + hl2, ct.data + hl, ct.len - hl) == 0);
    pk_esdk_header_clear(&hd2);
    back.len = 0;
    PK_ASSERT_RC(file_decrypt(&rw2, NULL, 0, &back, &sum), P11KMS_OK, NULL);
    CU_ASSERT(back.len == 10000 && memcmp(back.data, pt, 10000) == 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(sum, arn));
    p11kms_free(sum);
    /* A context value changed in the header: the HSM refuses the data key. */
    {
        pk_buf m = {0};
        uint8_t *v;
        PK_IGNORE(pk_buf_append(&m, ct.data, ct.len));
        v = memmem(m.data, hl, "tenant\x00\x01" "a", 9);
        CU_ASSERT_PTR_NOT_NULL_FATAL(v);
        v[8] = 'b';
        back.len = 0;
        CU_ASSERT_EQUAL(file_decrypt(&m, NULL, 0, &back, NULL), P11KMS_ERR_CIPHERTEXT_INVALID);
        CU_ASSERT_PTR_NOT_NULL(strstr(p11kms_last_error(), "cannot decrypt the message's data key: "));
        CU_ASSERT_EQUAL(back.len, 0);
        pk_buf_free(&m);
    }
    /* The provider info names another key than the one that decrypts: refused. */
    {
        pk_buf m = {0};
        uint8_t *at;
        char want[400];
        PK_IGNORE(pk_buf_append(&m, ct.data, ct.len));
        at = memmem(m.data, hl, k1, strlen(k1));
        CU_ASSERT_PTR_NOT_NULL_FATAL(at);
        at[0] = at[0] == 'a' ? 'b' : 'a';
        pk_key_arn(&h->env, k1, arn, sizeof(arn));
        snprintf(want, sizeof(want), "the data key was decrypted by %s, not by the key the message names", arn);
        back.len = 0;
        PK_ASSERT_RC(file_decrypt(&m, NULL, 0, &back, NULL), P11KMS_ERR_CIPHERTEXT_INVALID, want);
        CU_ASSERT_EQUAL(back.len, 0);
        pk_buf_free(&m);
    }
    /* A message without an aws-kms data key (here: a raw one). */
    {
        pk_buf m = {0};
        raw_encrypt(PK_ESDK_SUITE_COMMIT, 4096, 1, pt, 100, 100, &m);
        back.len = 0;
        PK_ASSERT_RC(file_decrypt(&m, NULL, 0, &back, NULL), P11KMS_ERR_CIPHERTEXT_INVALID,
                     "the message has no aws-kms encrypted data key");
        CU_ASSERT_EQUAL(back.len, 0);
        pk_buf_free(&m);
    }
    /* Signed suite through the HSM; its header cannot be rewrapped. */
    ct.len = 0;
    file_encrypt(k2, NULL, 0, PK_ESDK_SUITE_COMMIT_SIG, pt, 5000, &ct, NULL);
    back.len = 0;
    PK_ASSERT_RC(file_decrypt(&ct, NULL, 0, &back, NULL), P11KMS_OK, NULL);
    CU_ASSERT(back.len == 5000 && memcmp(back.data, pt, 5000) == 0);
    rw.len = 0;
    PK_ASSERT_RC(file_rewrap(&ct, NULL, &rw), P11KMS_ERR_INVALID_ARGUMENT,
                 "suite 0x0578 messages are signed over the header: rewrapping would break the signature");
    CU_ASSERT_EQUAL(rw.len, 0);
    pk_esdk_header_clear(&hd);
    pk_buf_free(&ct);
    pk_buf_free(&back);
    pk_buf_free(&rw);
    pk_buf_free(&rw2);
    p11kms_free(k1);
    p11kms_free(k2);
    free(pt);
}

static void test_esdk_file_api_arguments(void)
{
    p11kms_file_encryptor *e = NULL;
    p11kms_file_decryptor *d = NULL;
    const p11kms_kv *ctx = NULL;
    size_t n = 9;
    pk_buf out = {0};
    p11kms_file_opts bad_suite = {0, 0x0178, 1}, bad_frame = {(64u << 20) + 1, 0, 1};
    char *key = new_key();

    PK_ASSERT_RC(p11kms_file_encryptor_new(NULL, adm, key, NULL, 0, NULL, api_sink, &out, &e),
                 P11KMS_ERR_INVALID_ARGUMENT, "no handle, output or context given");
    PK_ASSERT_RC(p11kms_file_encryptor_new(h, adm, NULL, NULL, 0, NULL, api_sink, &out, &e),
                 P11KMS_ERR_INVALID_ARGUMENT, "no key given");
    PK_ASSERT_RC(p11kms_file_encryptor_new(h, adm, key, NULL, 0, &bad_suite, api_sink, &out, &e),
                 P11KMS_ERR_INVALID_ARGUMENT, "algorithm suite 0x0178 is not supported (0x0478 or 0x0578)");
    PK_ASSERT_RC(p11kms_file_encryptor_new(h, adm, key, NULL, 0, &bad_frame, api_sink, &out, &e),
                 P11KMS_ERR_INVALID_ARGUMENT, "frame length must be 1..67108864");
    CU_ASSERT_PTR_NULL(e);
    CU_ASSERT_EQUAL(out.len, 0);
    /* A finished stream takes no more data. */
    PK_ASSERT_RC(p11kms_file_encryptor_new(h, adm, key, NULL, 0, NULL, api_sink, &out, &e), P11KMS_OK, NULL);
    PK_ASSERT_RC(p11kms_file_encrypt_final(e, NULL), P11KMS_OK, NULL);
    PK_ASSERT_RC(p11kms_file_encrypt_update(e, (const uint8_t *)"x", 1), P11KMS_ERR_INVALID_STATE,
                 "the encryption stream has been finished");
    p11kms_file_encryptor_free(e);
    /* The context is there once the header verified, not before. */
    PK_ASSERT_RC(p11kms_file_decryptor_new(h, adm, NULL, 0, 1, api_sink, &out, &d), P11KMS_OK, NULL);
    PK_ASSERT_RC(p11kms_file_decryptor_context(d, &ctx, &n), P11KMS_ERR_INVALID_STATE,
                 "the message header is not verified yet");
    CU_ASSERT_EQUAL(n, 0);
    PK_ASSERT_RC(p11kms_file_decrypt_update(d, out.data, out.len), P11KMS_OK, NULL);
    PK_ASSERT_RC(p11kms_file_decryptor_context(d, &ctx, &n), P11KMS_OK, NULL);
    CU_ASSERT_EQUAL(n, 0);
    PK_ASSERT_RC(p11kms_file_decrypt_final(d, NULL), P11KMS_OK, NULL);
    p11kms_file_decryptor_free(d);
    /* An empty input is a truncated header. */
    PK_ASSERT_RC(p11kms_file_decryptor_new(h, adm, NULL, 0, 1, api_sink, &out, &d), P11KMS_OK, NULL);
    PK_ASSERT_RC(p11kms_file_decrypt_final(d, NULL), P11KMS_ERR_CIPHERTEXT_INVALID,
                 "truncated message: the header is incomplete");
    p11kms_file_decryptor_free(d);
    p11kms_file_encryptor_free(NULL);
    p11kms_file_decryptor_free(NULL);
    pk_buf_free(&out);
    p11kms_free(key);
}

static int suite_init(void)
{
    char *report = NULL;
    static const char *const anyone[] = {"*"};
    pk_fixture_setup(&fx);
    if (p11kms_caller_new(ADM, &adm) != P11KMS_OK) return 1;
    if (p11kms_init(fx.cfg, adm, NULL, 0, anyone, 1, &report) != P11KMS_OK) {
        fprintf(stderr, "init: %s\n", p11kms_last_error());
        return 1;
    }
    p11kms_free(report);
    if (p11kms_open(fx.cfg, &h) != P11KMS_OK) return 1;
    return 0;
}

static int suite_clean(void)
{
    p11kms_close(h);
    p11kms_caller_free(adm);
    pk_fixture_teardown(&fx);
    return 0;
}

int main(void)
{
    CU_pSuite s;
    if (CU_initialize_registry() != CUE_SUCCESS) return 99;
    s = CU_add_suite("esdk", suite_init, suite_clean);
    CU_add_test(s, "test_esdk_derivation_known_answer", test_esdk_derivation_known_answer);
    CU_add_test(s, "test_esdk_round_trips", test_esdk_round_trips);
    CU_add_test(s, "test_esdk_threads_same_bytes", test_esdk_threads_same_bytes);
    CU_add_test(s, "test_esdk_tampering_each_kind", test_esdk_tampering_each_kind);
    CU_add_test(s, "test_esdk_every_byte_flip", test_esdk_every_byte_flip);
    CU_add_test(s, "test_esdk_threads_changed_frame", test_esdk_threads_changed_frame);
    CU_add_test(s, "test_esdk_threads_sink_failure", test_esdk_threads_sink_failure);
    CU_add_test(s, "test_esdk_official_sdk_vectors", test_esdk_official_sdk_vectors);
    CU_add_test(s, "test_esdk_file_api_kms", test_esdk_file_api_kms);
    CU_add_test(s, "test_esdk_file_api_arguments", test_esdk_file_api_arguments);
    return pk_run_suites();
}
