/*
 * Secret maps (src/secrets/secret_map.c): the strict JSON reader and the
 * binary decoder. A map read from JSON is encoded and decoded again and
 * must come back equal; its JSON form must read back too.
 */
#include "config.h"

#include "fuzz/fuzz.h"
#include "secrets/secrets.h"

static void same(const p11kms_secret_map *a, const p11kms_secret_map *b)
{
    if (pk_map_count(a) != pk_map_count(b)) abort();
    for (size_t i = 0; i < pk_map_count(a); i++)
        if (strcmp(pk_map_key(a, i), pk_map_key(b, i)) != 0 || strcmp(pk_map_value(a, i), pk_map_value(b, i)) != 0)
            abort();
}

static void round_trip(const p11kms_secret_map *m)
{
    pk_secbuf enc = PK_SECBUF_INIT, json = PK_SECBUF_INIT;
    p11kms_secret_map *back = NULL, *again = NULL;
    if (pk_failed(pk_map_encode(m, &enc))) abort();
    if (pk_failed(pk_map_decode(pk_bytes_of(enc.data, enc.len), &back))) abort();
    same(m, back);
    if (pk_failed(pk_map_to_json(m, &json))) abort();
    if (pk_failed(pk_map_from_json((const char *)json.data, json.len, &again))) abort();
    same(m, again);
    pk_map_free(back);
    pk_map_free(again);
    pk_secbuf_free(&enc);
    pk_secbuf_free(&json);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    p11kms_secret_map *m = NULL;
    if (size > 0 && data[0] == 'B') {
        /* The binary encoding, as read back from the store. */
        if (pk_ok(pk_map_decode(pk_bytes_of(data + 1, size - 1), &m))) round_trip(m);
    } else if (pk_ok(pk_map_from_json((const char *)data, size, &m))) {
        round_trip(m);
    }
    pk_error_clear();
    pk_map_free(m);
    return 0;
}
