/* Unit tests for store freshness (src/core/freshness.c): the set digest, meta/fresh's body, the anchor and the crash rule. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "core/freshness.h"
#include "lib/fixture.h"

static const uint8_t key[PK_FRESH_LEN] = {1, 2, 3, 4, 5, 6, 7, 8, 9};

static pk_record rec(const char *kind, const char *id, uint64_t rev, uint8_t mac0)
{
    pk_record r;
    memset(&r, 0, sizeof(r));
    snprintf(r.kind, sizeof(r.kind), "%s", kind);
    snprintf(r.id, sizeof(r.id), "%s", id);
    r.rev = rev;
    r.mac[0] = mac0;
    return r;
}

static void add(pk_fresh_state *st, pk_record r, int sign)
{
    uint8_t el[PK_FRESH_LEN];
    CU_ASSERT_EQUAL(pk_fresh_element(key, &r, el).code, P11KMS_OK);
    CU_ASSERT_EQUAL(pk_fresh_apply(st, r.kind, el, sign).code, P11KMS_OK);
}

static void total(const pk_fresh_state *st, uint8_t out[PK_FRESH_LEN])
{
    CU_ASSERT_EQUAL(pk_fresh_total(st, out).code, P11KMS_OK);
}

static void test_fresh_digest_is_order_independent(void)
{
    pk_fresh_state a, b;
    uint8_t ta[PK_FRESH_LEN], tb[PK_FRESH_LEN];
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    add(&a, rec("key", "k1", 1, 1), 1);
    add(&a, rec("secret", "s1", 3, 2), 1);
    add(&a, rec("alias", "alias/x", 1, 3), 1);
    add(&b, rec("alias", "alias/x", 1, 3), 1);
    add(&b, rec("secret", "s1", 3, 2), 1);
    add(&b, rec("key", "k1", 1, 1), 1);
    total(&a, ta);
    total(&b, tb);
    CU_ASSERT_EQUAL(memcmp(ta, tb, PK_FRESH_LEN), 0);
    CU_ASSERT_EQUAL(pk_fresh_compare(&a, &b).code, P11KMS_OK);
}

/* An update (remove the old row, add the new one) equals the state built from scratch with the new row. */
static void test_fresh_update_equals_rebuild(void)
{
    pk_fresh_state inc, full;
    uint8_t ti[PK_FRESH_LEN], tf[PK_FRESH_LEN];
    memset(&inc, 0, sizeof(inc));
    memset(&full, 0, sizeof(full));
    add(&inc, rec("key", "k1", 1, 1), 1);
    add(&inc, rec("key", "k2", 1, 9), 1);
    add(&inc, rec("key", "k1", 1, 1), -1);
    add(&inc, rec("key", "k1", 2, 7), 1);
    add(&full, rec("key", "k2", 1, 9), 1);
    add(&full, rec("key", "k1", 2, 7), 1);
    total(&inc, ti);
    total(&full, tf);
    CU_ASSERT_EQUAL(memcmp(ti, tf, PK_FRESH_LEN), 0);
    /* Adding and removing everything leaves the empty state: no kind is remembered. */
    add(&full, rec("key", "k2", 1, 9), -1);
    add(&full, rec("key", "k1", 2, 7), -1);
    {
        pk_fresh_state empty;
        uint8_t te[PK_FRESH_LEN];
        memset(&empty, 0, sizeof(empty));
        total(&full, tf);
        total(&empty, te);
        CU_ASSERT_EQUAL(memcmp(te, tf, PK_FRESH_LEN), 0);
    }
}

/* Each way a row can be stale is named: an earlier row (same rev, other MAC too), a deletion, a put-back. */
static void test_fresh_compare_names_what_is_stale(void)
{
    pk_fresh_state want, have;
    const char *hint = "refusing the store; if a backup was restored on purpose, run p11kms store accept-restore";
    char msg[512];

    memset(&want, 0, sizeof(want));
    add(&want, rec("key", "k1", 2, 1), 1);
    add(&want, rec("secret", "s1", 2, 2), 1);

    have = want;
    add(&have, rec("secret", "s1", 2, 2), -1);
    add(&have, rec("secret", "s1", 1, 5), 1);
    CU_ASSERT_EQUAL(pk_fresh_compare(&have, &want).code, P11KMS_ERR_INTEGRITY);
    snprintf(msg, sizeof(msg),
             "store rolled back: an earlier row of a secret record was put back (the secret records differ from "
             "the store's anchored state); %s", hint);
    pk_assert_detail(__FILE__, __LINE__, msg);

    /* Same rev, other content (delete + re-create): the MAC differs, so does the element. */
    have = want;
    add(&have, rec("key", "k1", 2, 1), -1);
    add(&have, rec("key", "k1", 2, 6), 1);
    CU_ASSERT_EQUAL(pk_fresh_compare(&have, &want).code, P11KMS_ERR_INTEGRITY);

    have = want;
    add(&have, rec("secret", "s1", 2, 2), -1);
    CU_ASSERT_EQUAL(pk_fresh_compare(&have, &want).code, P11KMS_ERR_INTEGRITY);
    snprintf(msg, sizeof(msg),
             "store rolled back: a secret record was deleted outside p11kms (0 secret records, its anchored state "
             "has 1); %s", hint);
    pk_assert_detail(__FILE__, __LINE__, msg);

    have = want;
    add(&have, rec("conn", "db1", 1, 3), 1);
    CU_ASSERT_EQUAL(pk_fresh_compare(&have, &want).code, P11KMS_ERR_INTEGRITY);
    snprintf(msg, sizeof(msg),
             "store rolled back: a deleted conn record was put back (1 conn records, its anchored state has 0); %s",
             hint);
    pk_assert_detail(__FILE__, __LINE__, msg);
}

static void test_fresh_state_round_trip_and_malformed(void)
{
    pk_fresh_state st, back;
    pk_buf b = {0};
    uint64_t seq = 0;
    uint8_t t1[PK_FRESH_LEN], t2[PK_FRESH_LEN];

    memset(&st, 0, sizeof(st));
    add(&st, rec("key", "k1", 1, 1), 1);
    add(&st, rec("alias", "a", 1, 2), 1);
    CU_ASSERT_EQUAL(pk_fresh_encode(&st, 42, &b).code, P11KMS_OK);
    CU_ASSERT_EQUAL(pk_fresh_decode(b.data, b.len, &back, &seq).code, P11KMS_OK);
    CU_ASSERT_EQUAL(seq, 42);
    total(&st, t1);
    total(&back, t2);
    CU_ASSERT_EQUAL(memcmp(t1, t2, PK_FRESH_LEN), 0);
    CU_ASSERT_EQUAL(pk_fresh_decode(b.data, b.len - 1, &back, &seq).code, P11KMS_ERR_INTEGRITY);
    pk_assert_detail(__FILE__, __LINE__, "store record meta/fresh is malformed");
    b.data[0] = 'X';
    CU_ASSERT_EQUAL(pk_fresh_decode(b.data, b.len, &back, &seq).code, P11KMS_ERR_INTEGRITY);
    pk_buf_free(&b);
}

static void test_fresh_anchor_round_trip_and_torn_slot(void)
{
    pk_anchor a, back;
    uint8_t v[PK_ANCHOR_LEN];
    memset(&a, 0, sizeof(a));
    a.seq = 77;
    a.total[3] = 9;
    pk_anchor_encode(&a, v);
    CU_ASSERT_TRUE(pk_anchor_decode(v, sizeof(v), &back));
    CU_ASSERT_EQUAL(back.seq, 77);
    CU_ASSERT_EQUAL(memcmp(back.total, a.total, PK_FRESH_LEN), 0);
    /* A torn write (short or garbled) is no anchor: the other slot counts. */
    CU_ASSERT_FALSE(pk_anchor_decode(v, sizeof(v) - 1, &back));
    v[0] ^= 1;
    CU_ASSERT_FALSE(pk_anchor_decode(v, sizeof(v), &back));
    CU_ASSERT_FALSE(pk_anchor_decode(NULL, 0, &back));
}

/* The crash rule: behind the anchor is a rollback, ahead of it a crash; at the same number the totals must agree. */
static void test_fresh_judge_crash_versus_rollback(void)
{
    pk_anchor a;
    uint8_t same[PK_FRESH_LEN], other[PK_FRESH_LEN];
    const char *hint = "refusing the store; if a backup was restored on purpose, run p11kms store accept-restore";
    char msg[512];

    memset(&a, 0, sizeof(a));
    memset(same, 5, sizeof(same));
    memset(other, 6, sizeof(other));
    a.seq = 10;
    memcpy(a.total, same, PK_FRESH_LEN);
    CU_ASSERT_EQUAL(pk_anchor_judge(&a, 10, same).code, P11KMS_OK);
    CU_ASSERT_EQUAL(pk_anchor_judge(&a, 11, other).code, P11KMS_OK);
    CU_ASSERT_EQUAL(pk_anchor_judge(&a, 1000, other).code, P11KMS_OK);
    CU_ASSERT_EQUAL(pk_anchor_judge(&a, 9, same).code, P11KMS_ERR_INTEGRITY);
    snprintf(msg, sizeof(msg),
             "store rolled back: the whole store is older than its anchor in the HSM (store state 9, anchored "
             "state 10): an older copy of the store was put in place; %s", hint);
    pk_assert_detail(__FILE__, __LINE__, msg);
    CU_ASSERT_EQUAL(pk_anchor_judge(&a, 10, other).code, P11KMS_ERR_INTEGRITY);
}

static void test_fresh_element_binds_every_field(void)
{
    uint8_t e[5][PK_FRESH_LEN];
    pk_record r[5] = {rec("key", "k1", 1, 1), rec("key", "k2", 1, 1), rec("keyver", "k1", 1, 1),
                      rec("key", "k1", 2, 1), rec("key", "k1", 1, 2)};
    uint8_t key2[PK_FRESH_LEN] = {9};
    uint8_t ek[PK_FRESH_LEN];
    for (int i = 0; i < 5; i++) CU_ASSERT_EQUAL(pk_fresh_element(key, &r[i], e[i]).code, P11KMS_OK);
    for (int i = 0; i < 5; i++)
        for (int j = i + 1; j < 5; j++) CU_ASSERT_NOT_EQUAL(memcmp(e[i], e[j], PK_FRESH_LEN), 0);
    CU_ASSERT_EQUAL(pk_fresh_element(key2, &r[0], ek).code, P11KMS_OK);
    CU_ASSERT_NOT_EQUAL(memcmp(e[0], ek, PK_FRESH_LEN), 0);
    CU_ASSERT_TRUE(pk_fresh_is_meta("meta", "fresh"));
    CU_ASSERT_FALSE(pk_fresh_is_meta("meta", "store"));
}

int main(void)
{
    CU_pSuite s;
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    s = CU_add_suite("fresh", NULL, NULL);
    CU_add_test(s, "test_fresh_digest_is_order_independent", test_fresh_digest_is_order_independent);
    CU_add_test(s, "test_fresh_update_equals_rebuild", test_fresh_update_equals_rebuild);
    CU_add_test(s, "test_fresh_compare_names_what_is_stale", test_fresh_compare_names_what_is_stale);
    CU_add_test(s, "test_fresh_state_round_trip_and_malformed", test_fresh_state_round_trip_and_malformed);
    CU_add_test(s, "test_fresh_anchor_round_trip_and_torn_slot", test_fresh_anchor_round_trip_and_torn_slot);
    CU_add_test(s, "test_fresh_judge_crash_versus_rollback", test_fresh_judge_crash_versus_rollback);
    CU_add_test(s, "test_fresh_element_binds_every_field", test_fresh_element_binds_every_field);
    return pk_run_suites();
}
