/* Store freshness: the set digest and the anchor value (pure logic; see freshness.h). */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "core/freshness.h"
#include "crypto/crypto.h"
#include "crypto/wipe.h"

#define ELEMENT_DOMAIN "p11kms-fresh-element-v1"
#define TOTAL_DOMAIN "p11kms-fresh-total-v1"
#define STATE_MAGIC "PKF1"
#define ANCHOR_MAGIC "p11kms-anchor-v1" /* 16 bytes */

bool pk_fresh_is_meta(const char *kind, const char *id)
{
    return strcmp(kind, PK_FRESH_META_KIND) == 0 && strcmp(id, PK_FRESH_META_ID) == 0;
}

pk_result pk_fresh_element(const uint8_t key[PK_FRESH_LEN], const pk_record *rec, uint8_t out[PK_FRESH_LEN])
{
    pk_buf b = {0};
    pk_result r = pk_buf_append_lpstr(&b, ELEMENT_DOMAIN);
    /* The record's MAC covers ref, due time and body: an earlier row at the same rev still differs here. */
    if (pk_ok(r)) r = pk_buf_append_lpstr(&b, rec->kind);
    if (pk_ok(r)) r = pk_buf_append_lpstr(&b, rec->id);
    if (pk_ok(r)) r = pk_buf_append_be64(&b, rec->rev);
    if (pk_ok(r)) r = pk_buf_append_lp(&b, rec->mac, PK_STORE_MAC_LEN);
    if (pk_ok(r)) r = pk_hmac_sha256(key, PK_FRESH_LEN, b.data, b.len, out);
    pk_buf_free(&b);
    return r;
}

static void add256(uint8_t *acc, const uint8_t *x)
{
    unsigned carry = 0;
    for (int i = PK_FRESH_LEN - 1; i >= 0; i--) {
        unsigned v = acc[i] + x[i] + carry;
        acc[i] = (uint8_t)v;
        carry = v >> 8;
    }
}

static void sub256(uint8_t *acc, const uint8_t *x)
{
    int borrow = 0;
    for (int i = PK_FRESH_LEN - 1; i >= 0; i--) {
        int v = (int)acc[i] - (int)x[i] - borrow;
        borrow = v < 0;
        acc[i] = (uint8_t)(v + (borrow ? 256 : 0));
    }
}

/* The entry of `kind`, inserted in sorted place when new (create=true). */
static pk_fresh_kind *find_kind(pk_fresh_state *st, const char *kind, bool create)
{
    size_t i = 0;
    int c = 1;
    while (i < st->nk && (c = strcmp(st->k[i].kind, kind)) < 0) i++;
    if (i < st->nk && c == 0) return &st->k[i];
    if (!create || st->nk == PK_FRESH_KINDS_MAX) return NULL;
    memmove(&st->k[i + 1], &st->k[i], (st->nk - i) * sizeof(st->k[0]));
    memset(&st->k[i], 0, sizeof(st->k[i]));
    snprintf(st->k[i].kind, sizeof(st->k[i].kind), "%s", kind);
    st->nk++;
    return &st->k[i];
}

pk_result pk_fresh_apply(pk_fresh_state *st, const char *kind, const uint8_t el[PK_FRESH_LEN], int sign)
{
    pk_fresh_kind *k = find_kind(st, kind, sign > 0);
    PK_ENSURE(k != NULL || sign < 0, P11KMS_ERR_LIMIT, "store freshness: more than %d record kinds", PK_FRESH_KINDS_MAX);
    if (k == NULL) return PK_OK; /* removing what was never counted: the comparison will tell */
    if (sign > 0) {
        add256(k->sum, el);
        k->n++;
    } else {
        sub256(k->sum, el);
        k->n--;
    }
    return PK_OK;
}

/* Kinds with no records left are skipped, so a state never depends on what was once there. */
static bool empty(const pk_fresh_kind *k)
{
    static const uint8_t zero[PK_FRESH_LEN];
    return k->n == 0 && memcmp(k->sum, zero, PK_FRESH_LEN) == 0;
}

static pk_result encode_kinds(const pk_fresh_state *st, pk_buf *out)
{
    pk_result r = PK_OK;
    for (size_t i = 0; pk_ok(r) && i < st->nk; i++) {
        char name[PK_STORE_KIND_MAX] = {0};
        if (empty(&st->k[i])) continue;
        memcpy(name, st->k[i].kind, strlen(st->k[i].kind));
        r = pk_buf_append(out, name, sizeof(name));
        if (pk_ok(r)) r = pk_buf_append_be64(out, st->k[i].n);
        if (pk_ok(r)) r = pk_buf_append(out, st->k[i].sum, PK_FRESH_LEN);
    }
    return r;
}

pk_result pk_fresh_encode(const pk_fresh_state *st, uint64_t seq, pk_buf *out)
{
    PK_GUARD(pk_buf_append(out, STATE_MAGIC, 4));
    PK_GUARD(pk_buf_append_be64(out, seq));
    return encode_kinds(st, out);
}

#define ENTRY_LEN (PK_STORE_KIND_MAX + 8 + PK_FRESH_LEN)

static uint64_t be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = v << 8 | p[i];
    return v;
}

static void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8) p[i] = (uint8_t)v;
}

pk_result pk_fresh_decode(const uint8_t *p, size_t n, pk_fresh_state *st, uint64_t *seq)
{
    memset(st, 0, sizeof(*st));
    PK_ENSURE(n >= 12 && memcmp(p, STATE_MAGIC, 4) == 0 && (n - 12) % ENTRY_LEN == 0 &&
                  (n - 12) / ENTRY_LEN <= PK_FRESH_KINDS_MAX,
              P11KMS_ERR_INTEGRITY, "store record meta/fresh is malformed");
    *seq = be64(p + 4);
    PK_ENSURE(*seq > 0, P11KMS_ERR_INTEGRITY, "store record meta/fresh is malformed");
    for (p += 12, n -= 12; n > 0; p += ENTRY_LEN, n -= ENTRY_LEN) {
        pk_fresh_kind *k = &st->k[st->nk];
        PK_ENSURE(memchr(p, '\0', PK_STORE_KIND_MAX) != NULL && p[0] != '\0', P11KMS_ERR_INTEGRITY,
                  "store record meta/fresh is malformed");
        memcpy(k->kind, p, PK_STORE_KIND_MAX);
        PK_ENSURE(st->nk == 0 || strcmp(st->k[st->nk - 1].kind, k->kind) < 0, P11KMS_ERR_INTEGRITY,
                  "store record meta/fresh is malformed");
        k->n = be64(p + PK_STORE_KIND_MAX);
        memcpy(k->sum, p + PK_STORE_KIND_MAX + 8, PK_FRESH_LEN);
        st->nk++;
    }
    return PK_OK;
}

pk_result pk_fresh_total(const pk_fresh_state *st, uint8_t out[PK_FRESH_LEN])
{
    pk_buf b = {0};
    pk_result r = pk_buf_append_lpstr(&b, TOTAL_DOMAIN);
    if (pk_ok(r)) r = encode_kinds(st, &b);
    if (pk_ok(r)) r = pk_sha256(b.data, b.len, out);
    pk_buf_free(&b);
    return r;
}

const pk_fresh_kind *pk_fresh_kind_of(const pk_fresh_state *st, const char *kind)
{
    static const pk_fresh_kind none;
    for (size_t i = 0; i < st->nk; i++)
        if (strcmp(st->k[i].kind, kind) == 0) return &st->k[i];
    return &none;
}

static pk_result kind_differs(const char *kind, const pk_fresh_kind *have, const pk_fresh_kind *want)
{
    const char *hint = "if a backup was restored on purpose, run p11kms store accept-restore";
    if (have->n < want->n)
        return pk_fail(P11KMS_ERR_INTEGRITY,
                       "store rolled back: a %s record was deleted outside p11kms (%llu %s records, its anchored "
                       "state has %llu); refusing the store; %s",
                       kind, (unsigned long long)have->n, kind, (unsigned long long)want->n, hint);
    if (have->n > want->n)
        return pk_fail(P11KMS_ERR_INTEGRITY,
                       "store rolled back: a deleted %s record was put back (%llu %s records, its anchored state has "
                       "%llu); refusing the store; %s",
                       kind, (unsigned long long)have->n, kind, (unsigned long long)want->n, hint);
    return pk_fail(P11KMS_ERR_INTEGRITY,
                   "store rolled back: an earlier row of a %s record was put back (the %s records differ from the "
                   "store's anchored state); refusing the store; %s",
                   kind, kind, hint);
}

pk_result pk_fresh_compare(const pk_fresh_state *have, const pk_fresh_state *want)
{
    const pk_fresh_state *sides[2] = {want, have};
    for (int s = 0; s < 2; s++)
        for (size_t i = 0; i < sides[s]->nk; i++) {
            const char *kind = sides[s]->k[i].kind;
            const pk_fresh_kind *h = pk_fresh_kind_of(have, kind), *w = pk_fresh_kind_of(want, kind);
            if (h->n != w->n || memcmp(h->sum, w->sum, PK_FRESH_LEN) != 0) return kind_differs(kind, h, w);
        }
    return PK_OK;
}

void pk_anchor_encode(const pk_anchor *a, uint8_t out[PK_ANCHOR_LEN])
{
    memcpy(out, ANCHOR_MAGIC, 16);
    put_be64(out + 16, a->seq);
    memcpy(out + 24, a->total, PK_FRESH_LEN);
    put_be64(out + 56, a->audit_seq);
    memcpy(out + 64, a->audit_hash, PK_FRESH_LEN);
}

bool pk_anchor_decode(const uint8_t *p, size_t n, pk_anchor *a)
{
    memset(a, 0, sizeof(*a));
    if (n != PK_ANCHOR_LEN || memcmp(p, ANCHOR_MAGIC, 16) != 0) return false;
    a->seq = be64(p + 16);
    memcpy(a->total, p + 24, PK_FRESH_LEN);
    a->audit_seq = be64(p + 56);
    memcpy(a->audit_hash, p + 64, PK_FRESH_LEN);
    return a->seq > 0;
}

pk_result pk_anchor_judge(const pk_anchor *anchor, uint64_t seq, const uint8_t total[PK_FRESH_LEN])
{
    const char *hint = "if a backup was restored on purpose, run p11kms store accept-restore";
    PK_ENSURE(seq >= anchor->seq, P11KMS_ERR_INTEGRITY,
              "store rolled back: the whole store is older than its anchor in the HSM (store state %llu, anchored "
              "state %llu): an older copy of the store was put in place; refusing the store; %s",
              (unsigned long long)seq, (unsigned long long)anchor->seq, hint);
    PK_ENSURE(seq > anchor->seq || memcmp(total, anchor->total, PK_FRESH_LEN) == 0, P11KMS_ERR_INTEGRITY,
              "store rolled back: the store's state %llu is not the one anchored in the HSM under that number: "
              "another copy of the store was put in place; refusing the store; %s",
              (unsigned long long)seq, hint);
    return PK_OK;
}
