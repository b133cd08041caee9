/*
 * The text codecs: strict base64, hex and UUIDs of src/util/codec.c, and the
 * daemon's own base64 (src/daemon/codec.c). Decoded input is encoded again
 * and must round-trip; the two base64 decoders must agree.
 * fuzz-sources: src/daemon/codec.c
 */
#include "config.h"

#include <stdio.h>
#include <strings.h>

#include "daemon/daemon.h"
#include "fuzz/fuzz.h"
#include "util/codec.h"

/* The daemon's decoder takes no trailing newline and no empty input; otherwise both accept the same texts. */
static void differential(const char *s, size_t n, const uint8_t *want, size_t want_len)
{
    size_t len = 0;
    uint8_t *got;
    if (n == 0 || s[n - 1] == '\n' || s[n - 1] == '\r') return;
    got = d_b64_decode(s, n, &len);
    if ((got != NULL) != (want_len != SIZE_MAX)) abort();
    if (got != NULL && (len != want_len || memcmp(got, want, len) != 0)) abort();
    free(got);
}

static void base64(const char *s, size_t n)
{
    uint8_t *out = malloc(n / 4 * 3 + 1);
    size_t out_len = 0;
    if (out == NULL) abort();
    bool ok = pk_ok(pk_base64_decode(s, n, out, &out_len));
    if (ok) {
        char *again = malloc(pk_base64_len(out_len) + 1);
        if (again == NULL) abort();
        pk_base64_encode(out, out_len, again);
        /* Strict decoding: the only input that decodes is the canonical one, maybe with trailing newlines. */
        if (strncmp(again, s, strlen(again)) != 0) abort();
        free(again);
    }
    pk_error_clear();
    differential(s, n, out, ok ? out_len : SIZE_MAX);
    free(out);
}

static void hex(const char *s, size_t n)
{
    size_t len = n / 2;
    uint8_t *out = malloc(len + 1);
    if (out == NULL) abort();
    if (pk_ok(pk_hex_decode(s, out, len))) {
        char *again = malloc(2 * len + 1);
        if (again == NULL) abort();
        pk_hex_encode(out, len, again);
        if (strncasecmp(again, s, 2 * len) != 0) abort();
        free(again);
    }
    pk_error_clear();
    free(out);
}

static void uuid(const char *s)
{
    uint8_t id[PK_UUID_LEN];
    char again[PK_UUID_STR_LEN + 1];
    if (!pk_uuid_parse(s, id)) return;
    pk_uuid_format(id, again);
    if (strcasecmp(again, s) != 0) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fz_strndup(data, size);
    base64(s, size);
    hex(s, strlen(s));
    uuid(s);
    free(s);
    return 0;
}
