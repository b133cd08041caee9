#include "config.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>

#include "util/codec.h"

static const char b64_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

void pk_base64_encode(const uint8_t *in, size_t n, char *out)
{
    size_t i = 0, o = 0;
    for (; i + 2 < n; i += 3) {
        uint32_t v = ((uint32_t)in[i] << 16) | ((uint32_t)in[i + 1] << 8) | in[i + 2];
        out[o++] = b64_alphabet[(v >> 18) & 63];
        out[o++] = b64_alphabet[(v >> 12) & 63];
        out[o++] = b64_alphabet[(v >> 6) & 63];
        out[o++] = b64_alphabet[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n) v |= (uint32_t)in[i + 1] << 8;
        out[o++] = b64_alphabet[(v >> 18) & 63];
        out[o++] = b64_alphabet[(v >> 12) & 63];
        out[o++] = i + 1 < n ? b64_alphabet[(v >> 6) & 63] : '=';
        out[o++] = '=';
    }
    out[o] = '\0';
}

static int b64_value(char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

pk_result pk_base64_decode(const char *in, size_t len, uint8_t *out, size_t *out_len)
{
    size_t o = 0;

    while (len > 0 && (in[len - 1] == '\n' || in[len - 1] == '\r')) len--;
    PK_ENSURE(len % 4 == 0, P11KMS_ERR_INVALID_ARGUMENT, "invalid base64: length is not a multiple of 4");
    for (size_t i = 0; i < len; i += 4) {
        int v[4];
        int pad = 0;
        for (int k = 0; k < 4; k++) {
            char c = in[i + k];
            if (c == '=' && i + 4 == len && k >= 2) {
                v[k] = 0;
                pad++;
                continue;
            }
            PK_ENSURE(pad == 0, P11KMS_ERR_INVALID_ARGUMENT, "invalid base64: data after padding");
            v[k] = b64_value(c);
            PK_ENSURE(v[k] >= 0, P11KMS_ERR_INVALID_ARGUMENT, "invalid base64 character at offset %zu", i + k);
        }
        PK_ENSURE(!(pad == 1 && in[i + 2] == '='), P11KMS_ERR_INVALID_ARGUMENT, "invalid base64 padding");
        /* RFC 4648 3.5: the bits the padding drops must be zero, else two texts decode to one blob. */
        PK_ENSURE(!(pad == 1 && (v[2] & 0x3) != 0) && !(pad == 2 && (v[1] & 0xf) != 0), P11KMS_ERR_INVALID_ARGUMENT,
                  "invalid base64: non-zero bits after the last byte");
        uint32_t w = ((uint32_t)v[0] << 18) | ((uint32_t)v[1] << 12) | ((uint32_t)v[2] << 6) | (uint32_t)v[3];
        out[o++] = (uint8_t)(w >> 16);
        if (pad < 2) out[o++] = (uint8_t)(w >> 8);
        if (pad < 1) out[o++] = (uint8_t)w;
    }
    *out_len = o;
    return PK_OK;
}

void pk_hex_encode(const uint8_t *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

pk_result pk_hex_decode(const char *in, uint8_t *out, size_t out_len)
{
    PK_ENSURE(strlen(in) == 2 * out_len, P11KMS_ERR_INVALID_ARGUMENT, "invalid hex length");
    for (size_t i = 0; i < out_len; i++) {
        int hi = hex_value(in[2 * i]), lo = hex_value(in[2 * i + 1]);
        PK_ENSURE(hi >= 0 && lo >= 0, P11KMS_ERR_INVALID_ARGUMENT, "invalid hex digit");
        out[i] = (uint8_t)((hi << 4) | lo);
    }
    return PK_OK;
}

/* Identifiers need unpredictable bytes, not key material: util/ stands on
 * nothing, so it asks the kernel (getrandom(2), the source OpenSSL's DRBG
 * seeds from) instead of calling up into crypto/. 16 bytes never return short. */
static pk_result uuid_random(uint8_t out[PK_UUID_LEN])
{
    ssize_t n;
    do {
        n = getrandom(out, PK_UUID_LEN, 0);
    } while (n < 0 && errno == EINTR);
    PK_ENSURE(n == PK_UUID_LEN, P11KMS_ERR_INTERNAL, "getrandom failed");
    return PK_OK;
}

pk_result pk_uuid_new(uint8_t out[PK_UUID_LEN])
{
    PK_GUARD(uuid_random(out));
    out[6] = (uint8_t)((out[6] & 0x0f) | 0x40); /* version 4 */
    out[8] = (uint8_t)((out[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    return PK_OK;
}

void pk_uuid_format(const uint8_t id[PK_UUID_LEN], char out[PK_UUID_STR_LEN + 1])
{
    char hex[33];
    pk_hex_encode(id, PK_UUID_LEN, hex);
    memcpy(out, hex, 8);
    out[8] = '-';
    memcpy(out + 9, hex + 8, 4);
    out[13] = '-';
    memcpy(out + 14, hex + 12, 4);
    out[18] = '-';
    memcpy(out + 19, hex + 16, 4);
    out[23] = '-';
    memcpy(out + 24, hex + 20, 12);
    out[36] = '\0';
}

bool pk_uuid_parse(const char *s, uint8_t out[PK_UUID_LEN])
{
    size_t o = 0;
    if (strlen(s) != PK_UUID_STR_LEN) return false;
    for (size_t i = 0; i < PK_UUID_STR_LEN;) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-') return false;
            i++;
            continue;
        }
        int hi = hex_value(s[i]), lo = hex_value(s[i + 1]);
        if (hi < 0 || lo < 0) return false;
        out[o++] = (uint8_t)((hi << 4) | lo);
        i += 2;
    }
    return o == PK_UUID_LEN;
}
