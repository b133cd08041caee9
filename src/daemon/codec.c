/* Base64 for AWS blobs (RFC 4648), request ids, wiping frees. */
#include "config.h"

#include <sys/random.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/daemon.h"

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *d_b64_encode(const uint8_t *in, size_t n)
{
    char *out = malloc(((n + 2) / 3) * 4 + 1), *o = out;
    if (out == NULL) return NULL;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0) | (i + 2 < n ? in[i + 2] : 0);
        *o++ = alphabet[v >> 18 & 63];
        *o++ = alphabet[v >> 12 & 63];
        *o++ = i + 1 < n ? alphabet[v >> 6 & 63] : '=';
        *o++ = i + 2 < n ? alphabet[v & 63] : '=';
    }
    *o = '\0';
    return out;
}

static int sextet(char c)
{
    const char *p = c != '\0' ? strchr(alphabet, c) : NULL;
    return p != NULL ? (int)(p - alphabet) : -1;
}

/* Strict: padding required, nothing outside the alphabet, no bits after the end. */
uint8_t *d_b64_decode(const char *in, size_t len, size_t *out_len)
{
    size_t pad = 0, o = 0;
    uint8_t *out;

    *out_len = 0;
    if (len == 0 || len % 4 != 0 || len > (size_t)1 << 28) return NULL;
    if (in[len - 1] == '=') pad++;
    if (in[len - 2] == '=') pad++;
    out = malloc(len / 4 * 3 + 1);
    if (out == NULL) return NULL;
    for (size_t i = 0; i < len; i += 4) {
        int s[4];
        uint32_t v = 0;
        for (int k = 0; k < 4; k++) {
            bool padding = i + (size_t)k >= len - pad;
            s[k] = padding ? 0 : sextet(in[i + (size_t)k]);
            if (s[k] < 0) goto bad;
            v = v << 6 | (uint32_t)s[k];
        }
        out[o++] = (uint8_t)(v >> 16);
        if (i + 4 < len || pad < 2) out[o++] = (uint8_t)(v >> 8);
        if (i + 4 < len || pad < 1) out[o++] = (uint8_t)v;
        if (i + 4 == len && ((pad == 2 && (v & 0xffff)) || (pad == 1 && (v & 0xff)))) goto bad;
    }
    *out_len = o;
    return out;
bad:
    free(out);
    return NULL;
}

void d_wipe_free(void *p, size_t n)
{
    if (p == NULL) return;
    explicit_bzero(p, n);
    free(p);
}

/* RFC 4122 version 4, as AWS's x-amzn-RequestId. */
void d_request_id(char out[D_REQID_LEN + 1])
{
    uint8_t b[16] = {0};
    if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b)) memset(b, 0, sizeof(b));
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
    snprintf(out, D_REQID_LEN + 1, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
             b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
}
