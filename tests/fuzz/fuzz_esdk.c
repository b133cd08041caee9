/*
 * The ESDK message reader (src/esdk): header parser, then the frame parser
 * and decryptor. Every message is decrypted with one fixed data key. The
 * first input byte picks the mode:
 *   0: the rest is a message, fed in pieces of (byte 1) bytes;
 *   1: the same, but when the header parses its commitment key and tag are
 *      recomputed for the fixed key, so a mutated header reaches the frames;
 *   2: bytes 1-4 pick the frame length and piece size, a byte to corrupt
 *      and a truncation point; the rest is plaintext encrypted with the
 *      fixed key, then the corrupted message is decrypted (frame framing
 *      after valid frames).
 */
#include "config.h"

#include "esdk/esdk.h"
#include "fuzz/fuzz.h"
#include "util/bytes.h"

static const uint8_t data_key[PK_ESDK_KEY_LEN] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
                                                   17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};

static pk_result give_key(void *arg, const pk_esdk_header *hd, pk_secbuf *key)
{
    (void)arg, (void)hd;
    return pk_secbuf_append(key, data_key, sizeof(data_key));
}

static pk_result to_buf(void *arg, const uint8_t *p, size_t n)
{
    return pk_buf_append(arg, p, n);
}

static void decrypt(const uint8_t *msg, size_t n, size_t piece)
{
    pk_esdk_dec *d = NULL;
    pk_buf out = {0};
    pk_result r;
    size_t off = 0;

    if (pk_failed(pk_esdk_dec_new(1, give_key, NULL, to_buf, &out, &d))) abort();
    for (r = PK_OK; pk_ok(r) && off < n; off += piece) r = pk_esdk_dec_update(d, msg + off, n - off < piece ? n - off : piece);
    if (pk_ok(r)) r = pk_esdk_dec_final(d);
    if (pk_ok(r) && out.len != pk_esdk_dec_bytes(d)) abort();
    pk_error_clear();
    pk_esdk_dec_free(d);
    pk_buf_free(&out);
}

/* Make the header's commitment and tag right for data_key (mode 1). */
static void fix_header(uint8_t *msg, size_t n)
{
    pk_esdk_header hd;
    pk_secbuf derived = PK_SECBUF_INIT;
    size_t used = 0;

    memset(&hd, 0, sizeof(hd));
    if (pk_ok(pk_esdk_header_parse(msg, n, true, &hd, &used)) && used == hd.body.len + 16 &&
        pk_ok(pk_esdk_derive(hd.suite, data_key, hd.msg_id, &derived, hd.commit))) {
        memcpy(msg + hd.body.len - 32, hd.commit, 32);
        memcpy(hd.body.data + hd.body.len - 32, hd.commit, 32);
        if (pk_ok(pk_esdk_header_tag(&derived, &hd.body, hd.tag))) memcpy(msg + hd.body.len, hd.tag, 16);
    }
    pk_error_clear();
    pk_secbuf_free(&derived);
    pk_esdk_header_clear(&hd);
}

static void build_and_break(const uint8_t *params, const uint8_t *pt, size_t n)
{
    pk_esdk_header hd;
    pk_esdk_enc *e = NULL;
    pk_buf msg = {0};
    static const uint8_t edk_bytes[] = "fuzz";
    pk_esdk_edk edk = {pk_bytes_of(edk_bytes, 4), pk_bytes_of(edk_bytes, 4), pk_bytes_of(edk_bytes, 4)};

    memset(&hd, 0, sizeof(hd));
    hd.suite = PK_ESDK_SUITE_COMMIT;
    hd.frame_len = 1 + params[0] % 64;
    if (pk_ok(pk_esdk_enc_new(&hd, &edk, 1, data_key, NULL, 1, to_buf, &msg, &e)) &&
        pk_ok(pk_esdk_enc_update(e, pt, n)) && pk_ok(pk_esdk_enc_final(e))) {
        size_t at = msg.len > 0 ? (size_t)(params[1] << 8 | params[2]) % msg.len : 0;
        size_t cut = msg.len - (params[3] & 0x80 ? (params[3] & 0x7f) % (msg.len + 1) : 0);
        if (msg.len > 0) msg.data[at] ^= params[3] & 0x80 ? 0 : params[3] | 1;
        decrypt(msg.data, cut, params[0] & 0x80 ? cut + 1 : 7); /* all at once, or in 7-byte pieces */
    }
    pk_error_clear();
    pk_esdk_enc_free(e);
    pk_esdk_header_clear(&hd);
    pk_buf_free(&msg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *copy;
    if (size < 2) return 0;
    switch (data[0] % 3) {
    case 0: decrypt(data + 2, size - 2, 1 + data[1]); break;
    case 1:
        copy = malloc(size - 2);
        if (copy == NULL) abort();
        memcpy(copy, data + 2, size - 2);
        fix_header(copy, size - 2);
        decrypt(copy, size - 2, 1 + data[1]);
        free(copy);
        break;
    default:
        if (size >= 5) build_and_break(data + 1, data + 5, size - 5);
        break;
    }
    return 0;
}
