/*
 * Test tool: ESDK messages under a Raw AES keyring (aws-encryption-sdk-
 * specification framework/raw-aes-keyring.md), so the format layer can be
 * checked against the official SDK offline, without a KMS.
 *
 *   esdk_raw encrypt KEYHEX SUITE FRAMELEN THREADS [K=V]... < plaintext > message
 *   esdk_raw decrypt KEYHEX THREADS < message > plaintext
 *
 * EDK: provider id "p11kms-test", provider info = key name "raw-key" ||
 * tag bits (be32 128) || IV length (be32 12) || IV; ciphertext = the
 * wrapped data key || tag; AAD = the serialized encryption context.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crypto/crypto.h"
#include "crypto/crypto_esdk.h"
#include "esdk/esdk.h"
#include "util/codec.h"

#define NS "p11kms-test"
#define NAME "raw-key"

static uint8_t kek[32];

static pk_result to_stdout(void *arg, const uint8_t *p, size_t n)
{
    (void)arg;
    return fwrite(p, 1, n, stdout) == n ? PK_OK : pk_fail(P11KMS_ERR_INTERNAL, "write failed");
}

static pk_result unwrap(void *arg, const pk_esdk_header *hd, pk_secbuf *key)
{
    pk_buf aad = {0};
    pk_gcm *g = NULL;
    pk_result r = pk_fail(P11KMS_ERR_CIPHERTEXT_INVALID, "no raw AES data key");
    size_t nl = strlen(NAME);
    (void)arg;
    PK_GUARD(pk_esdk_ctx_serialize(hd->ctx, hd->nctx, &aad));
    PK_GUARD(pk_secbuf_alloc(key, 32));
    for (size_t i = 0; i < hd->nedk; i++) {
        const pk_esdk_edk *e = &hd->edk[i];
        if (e->provider_info.len != nl + 8 + 12 || e->ciphertext.len != 48) continue;
        if (pk_failed(pk_gcm_new(kek, false, &g))) break;
        if (pk_gcm_open(g, e->provider_info.ptr + nl + 8, aad.data, aad.len, e->ciphertext.ptr, 32,
                        e->ciphertext.ptr + 32, key->data)) {
            key->len = 32;
            r = PK_OK;
        }
        pk_gcm_free(g);
        g = NULL;
        if (pk_ok(r)) break;
    }
    pk_buf_free(&aad);
    return r;
}

static int die(const char *what)
{
    fprintf(stderr, "esdk_raw: %s: %s\n", what, p11kms_last_error());
    return 1;
}

static int do_encrypt(int argc, char **argv)
{
    pk_esdk_header hd = {0};
    pk_esdk_enc *e = NULL;
    pk_ec384 *sk = NULL;
    pk_gcm *g = NULL;
    pk_buf aad = {0};
    uint8_t dk[32], info[64], wrapped[48], buf[65536], point[PK_EC384_POINT_LEN];
    char b64[80];
    size_t n, nl = strlen(NAME);
    pk_esdk_edk edk;

    hd.suite = (uint16_t)strtoul(argv[3], NULL, 16);
    hd.frame_len = (uint32_t)strtoul(argv[4], NULL, 10);
    hd.ctx = calloc((size_t)argc, sizeof(*hd.ctx));
    for (int i = 6; i < argc; i++) {
        char *eq = strchr(argv[i], '=');
        *eq = '\0';
        hd.ctx[hd.nctx].key = strdup(argv[i]);
        hd.ctx[hd.nctx++].value = strdup(eq + 1);
    }
    if (hd.suite == PK_ESDK_SUITE_COMMIT_SIG) {
        if (pk_failed(pk_ec384_generate(&sk)) || pk_failed(pk_ec384_point(sk, point))) return die("keygen");
        pk_base64_encode(point, sizeof(point), b64);
        hd.ctx[hd.nctx].key = strdup(PK_ESDK_PUBKEY_CTX);
        hd.ctx[hd.nctx++].value = strdup(b64);
    }
    if (pk_failed(pk_random(dk, 32)) || pk_failed(pk_random(hd.msg_id, 32))) return die("random");
    memcpy(info, NAME, nl);
    pk_store_be32(info + nl, 128);
    pk_store_be32(info + nl + 4, 12);
    if (pk_failed(pk_random(info + nl + 8, 12)) || pk_failed(pk_esdk_ctx_serialize(hd.ctx, hd.nctx, &aad)) ||
        pk_failed(pk_gcm_new(kek, true, &g)) ||
        pk_failed(pk_gcm_seal(g, info + nl + 8, aad.data, aad.len, dk, 32, wrapped, wrapped + 32)))
        return die("wrap");
    edk = (pk_esdk_edk){pk_bytes_of(NS, strlen(NS)), pk_bytes_of(info, nl + 20), pk_bytes_of(wrapped, 48)};
    if (pk_failed(pk_esdk_enc_new(&hd, &edk, 1, dk, sk, (unsigned)atoi(argv[5]), to_stdout, NULL, &e)))
        return die("encrypt");
    while ((n = fread(buf, 1, sizeof(buf), stdin)) > 0)
        if (pk_failed(pk_esdk_enc_update(e, buf, n))) return die("encrypt");
    if (pk_failed(pk_esdk_enc_final(e))) return die("encrypt");
    pk_esdk_enc_free(e);
    pk_gcm_free(g);
    pk_buf_free(&aad);
    pk_esdk_header_clear(&hd);
    return fflush(stdout) == 0 ? 0 : 1;
}

static int do_decrypt(char **argv)
{
    pk_esdk_dec *d = NULL;
    uint8_t buf[65536];
    size_t n;
    int rc = 1;
    /* Failures free what they hold too: the ASan run of make check (scripts/sanitize.sh) counts leaks. */
    if (pk_failed(pk_esdk_dec_new((unsigned)atoi(argv[3]), unwrap, NULL, to_stdout, NULL, &d))) goto fail;
    while ((n = fread(buf, 1, sizeof(buf), stdin)) > 0)
        if (pk_failed(pk_esdk_dec_update(d, buf, n))) goto fail;
    if (pk_failed(pk_esdk_dec_final(d))) goto fail;
    rc = fflush(stdout) == 0 ? 0 : 1;
    goto out;
fail:
    rc = die("decrypt");
out:
    pk_esdk_dec_free(d);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc >= 4 && strcmp(argv[1], "decrypt") == 0 && pk_ok(pk_hex_decode(argv[2], kek, 32))) return do_decrypt(argv);
    if (argc >= 6 && strcmp(argv[1], "encrypt") == 0 && pk_ok(pk_hex_decode(argv[2], kek, 32)))
        return do_encrypt(argc, argv);
    fprintf(stderr, "usage: esdk_raw encrypt KEYHEX SUITE FRAMELEN THREADS [K=V]... | decrypt KEYHEX THREADS\n");
    return 2;
}
