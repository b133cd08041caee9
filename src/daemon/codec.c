/* Base64 for AWS blobs (RFC 4648), request ids, wiping frees. */
#include "config.h"

#include <pthread.h>
#include <sys/random.h>
#include <time.h>
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

static uint64_t id_key[2];

static void seed(void)
{
    if (getrandom(id_key, sizeof(id_key), 0) != (ssize_t)sizeof(id_key)) id_key[0] = (uint64_t)time(NULL);
}

/* splitmix64's finaliser: a bijection of 64-bit words. */
static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/*
 * RFC 4122 version 4 layout, as AWS's x-amzn-RequestId. Ids must be unique,
 * not secret: a per-process random key from getrandom(2) once, then a
 * counter through a bijective mix, saves a system call per request.
 */
void d_request_id(char out[D_REQID_LEN + 1])
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    static uint64_t counter;
    uint64_t n, hi, lo;
    uint8_t b[16];
    static const char hex[] = "0123456789abcdef";
    char *o = out;

    pthread_once(&once, seed);
    n = __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED);
    hi = mix64(id_key[0] + n);
    lo = mix64(id_key[1] ^ mix64(n));
    for (int i = 0; i < 8; i++) {
        b[i] = (uint8_t)(hi >> (8 * i));
        b[8 + i] = (uint8_t)(lo >> (8 * i));
    }
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) *o++ = '-';
        *o++ = hex[b[i] >> 4];
        *o++ = hex[b[i] & 15];
    }
    *o = '\0';
}
