/* Base64 for AWS blobs, request ids, wiping frees. OpenSSL is already linked for TLS. */
#include "config.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/daemon.h"

char *d_b64_encode(const uint8_t *in, size_t n)
{
    char *out = malloc(((n + 2) / 3) * 4 + 1);
    if (out != NULL) EVP_EncodeBlock((unsigned char *)out, in, (int)n);
    return out;
}

/* EVP_DecodeBlock skips whitespace and ignores padding: check the alphabet and shape first. */
uint8_t *d_b64_decode(const char *in, size_t len, size_t *out_len)
{
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t pad = 0;
    uint8_t *out;
    int n;

    *out_len = 0;
    if (len == 0 || len % 4 != 0 || len > (size_t)1 << 28) return NULL;
    if (in[len - 1] == '=') pad++;
    if (in[len - 2] == '=') pad++;
    for (size_t i = 0; i < len - pad; i++)
        if (memchr(alphabet, in[i], sizeof(alphabet) - 1) == NULL || in[i] == '\0') return NULL;
    out = malloc(len / 4 * 3 + 1);
    if (out == NULL) return NULL;
    n = EVP_DecodeBlock(out, (const unsigned char *)in, (int)len);
    if (n < 0 || (size_t)n < pad) {
        free(out);
        return NULL;
    }
    *out_len = (size_t)n - pad;
    return out;
}

void d_wipe_free(void *p, size_t n)
{
    if (p == NULL) return;
    OPENSSL_cleanse(p, n);
    free(p);
}

/* RFC 4122 version 4, as AWS's x-amzn-RequestId. */
void d_request_id(char out[D_REQID_LEN + 1])
{
    uint8_t b[16] = {0};
    if (RAND_bytes(b, sizeof(b)) != 1) memset(b, 0, sizeof(b));
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
    snprintf(out, D_REQID_LEN + 1, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
             b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
}
