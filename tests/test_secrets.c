/*
 * SecretStore, connections and render on a real SoftHSM token (no mocks).
 * Internal headers are used only to reach counters, the nonce bound and
 * the store records the attacks edit.
 */
#include "config.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/core.h"
#include "lib/fixture.h"
#include "secrets/secrets.h"

#define ADM "arn:aws:iam::111122223333:role/admin"
#define OPR "arn:aws:iam::111122223333:role/flink-operator"
#define OTHER "arn:aws:iam::111122223333:role/other"

static pk_fixture fx;
static p11kms *h;
static p11kms_caller *adm, *opr, *other;

static int suite_init(void)
{
    char *report = NULL;
    pk_fixture_setup(&fx);
    if (p11kms_caller_new(ADM, &adm) != P11KMS_OK || p11kms_caller_new(OPR, &opr) != P11KMS_OK ||
        p11kms_caller_new(OTHER, &other) != P11KMS_OK)
        return 1;
    /* Every principal may use the service key, so OTHER can read what the service key protects. */
    static const char *const anyone[] = {"*"};
    if (p11kms_init(fx.cfg, adm, NULL, 0, anyone, 1, &report) != P11KMS_OK) {
        fprintf(stderr, "init: %s\n", p11kms_last_error());
        return 1;
    }
    p11kms_free(report);
    if (p11kms_open(fx.cfg, &h) != P11KMS_OK) {
        fprintf(stderr, "open: %s\n", p11kms_last_error());
        return 1;
    }
    return 0;
}

static int suite_clean(void)
{
    p11kms_close(h);
    p11kms_caller_free(adm);
    p11kms_caller_free(opr);
    p11kms_caller_free(other);
    pk_fixture_teardown(&fx);
    return 0;
}

static p11kms_secret_map *map2(const char *k1, const char *v1, const char *k2, const char *v2)
{
    p11kms_secret_map *m = NULL;
    CU_ASSERT_FATAL(p11kms_secret_map_new(&m) == P11KMS_OK);
    if (k1) CU_ASSERT(p11kms_secret_map_set(m, k1, v1) == P11KMS_OK);
    if (k2) CU_ASSERT(p11kms_secret_map_set(m, k2, v2) == P11KMS_OK);
    return m;
}

static char *put(const char *ns, const char *key, const char *k1, const char *v1)
{
    char *id = NULL;
    p11kms_secret_map *m = map2(k1, v1, NULL, NULL);
    PK_ASSERT_RC(p11kms_secret_put(h, opr, ns, key, m, &id), P11KMS_OK, NULL);
    p11kms_secret_map_free(m);
    return id;
}

static void expect_value(const char *id, const char *k, const char *v)
{
    p11kms_secret_map *m = NULL;
    PK_ASSERT_RC(p11kms_secret_get(h, opr, id, &m), P11KMS_OK, NULL);
    if (m != NULL) {
        const char *got = p11kms_secret_map_get(m, k);
        CU_ASSERT(got != NULL && strcmp(got, v) == 0);
    }
    p11kms_secret_map_free(m);
}

/* A key on handle `on` whose policy gives ADM administration and OPR use. */
static char *make_key_on(p11kms *on)
{
    const char *admins[] = {ADM}, *ops[] = {OPR};
    p11kms_key_spec spec;
    char *id = NULL;
    memset(&spec, 0, sizeof(spec));
    spec.struct_size = sizeof(spec);
    spec.admins = admins;
    spec.nadmins = 1;
    spec.operators = ops;
    spec.noperators = 1;
    PK_ASSERT_RC(p11kms_key_create(on, adm, &spec, &id), P11KMS_OK, NULL);
    return id;
}

static char *make_key(void) { return make_key_on(h); }

static void test_secrets_store_get_update_remove_list(void)
{
    char *id = NULL, *json = NULL, want[128];
    const char *wantp = want;
    p11kms_secret_map *m = map2("user", "flink", "password", "s3cr3t-1");
    p11kms_secret_map *got = NULL;

    PK_ASSERT_RC(p11kms_secret_put(h, opr, NULL, NULL, m, &id), P11KMS_OK, NULL);
    CU_ASSERT_FATAL(id != NULL);
    PK_ASSERT_RC(p11kms_secret_get(h, opr, id, &got), P11KMS_OK, NULL);
    CU_ASSERT_EQUAL(p11kms_secret_map_count(got), 2);
    CU_ASSERT_STRING_EQUAL(p11kms_secret_map_key_at(got, 0), "password");
    CU_ASSERT_STRING_EQUAL(p11kms_secret_map_value_at(got, 0), "s3cr3t-1");
    CU_ASSERT_STRING_EQUAL(p11kms_secret_map_get(got, "user"), "flink");
    p11kms_secret_map_free(got);
    p11kms_secret_map_free(m);

    /* update replaces the whole map (FLIP-529 semantics) */
    m = map2("token", "t-2", NULL, NULL);
    PK_ASSERT_RC(p11kms_secret_update(h, opr, id, m), P11KMS_OK, NULL);
    p11kms_secret_map_free(m);
    PK_ASSERT_RC(p11kms_secret_get(h, opr, id, &got), P11KMS_OK, NULL);
    CU_ASSERT_EQUAL(p11kms_secret_map_count(got), 1);
    CU_ASSERT_PTR_NULL(p11kms_secret_map_get(got, "password"));
    CU_ASSERT_STRING_EQUAL(p11kms_secret_map_get(got, "token"), "t-2");
    p11kms_secret_map_free(got);

    PK_ASSERT_RC(p11kms_secret_list(h, opr, "default", &json), P11KMS_OK, NULL);
    snprintf(want, sizeof(want), "\"SecretId\":\"%s\",\"Namespace\":\"default\"", id);
    CU_ASSERT_PTR_NOT_NULL(strstr(json, want));
    CU_ASSERT_PTR_NOT_NULL(strstr(json, "\"Version\":2"));
    CU_ASSERT_PTR_NULL(strstr(json, "t-2"));
    p11kms_free(json);

    PK_ASSERT_RC(p11kms_secret_remove(h, opr, id), P11KMS_OK, NULL);
    snprintf(want, sizeof(want), "secret %s not found", id);
    PK_ASSERT_RC(p11kms_secret_get(h, opr, id, &got), P11KMS_ERR_NOT_FOUND, wantp);
    CU_ASSERT_PTR_NULL(got);
    PK_ASSERT_RC(p11kms_secret_remove(h, opr, id), P11KMS_ERR_NOT_FOUND, wantp);
    p11kms_free(id);
}

static void test_secrets_not_found(void)
{
    p11kms_secret_map *got = NULL, *m = map2("a", "b", NULL, NULL);
    PK_ASSERT_RC(p11kms_secret_get(h, opr, "5d0a3d4c-8f6e-4b8e-9d43-0d3c5a1e2f70", &got), P11KMS_ERR_NOT_FOUND,
                 "secret 5d0a3d4c-8f6e-4b8e-9d43-0d3c5a1e2f70 not found");
    PK_ASSERT_RC(p11kms_secret_get(h, opr, "nope", &got), P11KMS_ERR_NOT_FOUND, "secret nope not found");
    PK_ASSERT_RC(p11kms_secret_update(h, opr, "5d0a3d4c-8f6e-4b8e-9d43-0d3c5a1e2f70", m), P11KMS_ERR_NOT_FOUND,
                 "secret 5d0a3d4c-8f6e-4b8e-9d43-0d3c5a1e2f70 not found");
    CU_ASSERT_EQUAL(p11kms_exit_code(P11KMS_ERR_NOT_FOUND), 5);
    p11kms_secret_map_free(m);
}

/* Caller-chosen ids (Secrets Manager Name), their metadata and ARN. */
static void test_secrets_named(void)
{
    p11kms_secret_map *m = map2("user", "flink", "password", "named-1"), *got = NULL;
    p11kms_secret_info info = {sizeof(info), "", "", 0, 0, 0}, d = {sizeof(d), "", "", 0, 0, 0};
    char name[600], *arn = NULL, *arn2 = NULL, *json = NULL;

    PK_ASSERT_RC(p11kms_secret_put_named(h, opr, "flink", NULL, "flink/orders-db", m), P11KMS_OK, NULL);
    PK_ASSERT_RC(p11kms_secret_put_named(h, opr, "flink", NULL, "flink/orders-db", m), P11KMS_ERR_ALREADY_EXISTS,
                 "secret flink/orders-db already exists");
    PK_ASSERT_RC(p11kms_secret_put_named(h, opr, "flink", NULL, "bad name!", m), P11KMS_ERR_INVALID_ARGUMENT,
                 "invalid secret name: use 1 to 512 letters, digits or /_+=.@-");
    PK_ASSERT_RC(p11kms_secret_put_named(h, opr, "flink", NULL, "", m), P11KMS_ERR_INVALID_ARGUMENT,
                 "invalid secret name: use 1 to 512 letters, digits or /_+=.@-");
    PK_ASSERT_RC(p11kms_secret_put_named(h, opr, NULL, NULL, NULL, m), P11KMS_ERR_INVALID_ARGUMENT,
                 "no secret name given");
    memset(name, 'n', 513);
    name[513] = '\0';
    PK_ASSERT_RC(p11kms_secret_put_named(h, opr, NULL, NULL, name, m), P11KMS_ERR_INVALID_ARGUMENT,
                 "invalid secret name: use 1 to 512 letters, digits or /_+=.@-");
    name[512] = '\0'; /* the longest name is fine */
    PK_ASSERT_RC(p11kms_secret_put_named(h, opr, NULL, NULL, name, m), P11KMS_OK, NULL);
    expect_value(name, "password", "named-1");
    PK_ASSERT_RC(p11kms_secret_remove(h, opr, name), P11KMS_OK, NULL);

    PK_ASSERT_RC(p11kms_secret_get_info(h, opr, "flink/orders-db", &got, &info), P11KMS_OK, NULL);
    CU_ASSERT_STRING_EQUAL(p11kms_secret_map_get(got, "password"), "named-1");
    p11kms_secret_map_free(got);
    got = NULL;
    CU_ASSERT_STRING_EQUAL(info.ns, "flink");
    CU_ASSERT_EQUAL(strlen(info.key_id), 36);
    CU_ASSERT_EQUAL(info.version, 1);
    CU_ASSERT(info.created_ms > 0 && info.updated_ms == info.created_ms);

    p11kms_secret_map_free(m);
    m = map2("password", "named-2", NULL, NULL);
    PK_ASSERT_RC(p11kms_secret_update(h, opr, "flink/orders-db", m), P11KMS_OK, NULL);
    PK_ASSERT_RC(p11kms_secret_describe(h, opr, "flink/orders-db", &d), P11KMS_OK, NULL);
    CU_ASSERT_EQUAL(d.version, 2);
    CU_ASSERT_STRING_EQUAL(d.ns, "flink");
    CU_ASSERT_STRING_EQUAL(d.key_id, info.key_id);
    CU_ASSERT(d.created_ms == info.created_ms && d.updated_ms >= info.created_ms);
    /* Twice in a row: the row cache must give the same metadata as the store. */
    PK_ASSERT_RC(p11kms_secret_get_info(h, opr, "flink/orders-db", &got, &info), P11KMS_OK, NULL);
    p11kms_secret_map_free(got);
    got = NULL;
    PK_ASSERT_RC(p11kms_secret_get_info(h, opr, "flink/orders-db", &got, &info), P11KMS_OK, NULL);
    CU_ASSERT_STRING_EQUAL(p11kms_secret_map_get(got, "password"), "named-2");
    CU_ASSERT_EQUAL(info.version, 2);
    p11kms_secret_map_free(got);
    got = NULL;
    info.struct_size = 0;
    PK_ASSERT_RC(p11kms_secret_get_info(h, opr, "flink/orders-db", &got, &info), P11KMS_ERR_INVALID_ARGUMENT,
                 "p11kms_secret_info: set struct_size = sizeof(p11kms_secret_info)");
    CU_ASSERT_PTR_NULL(got);
    PK_ASSERT_RC(p11kms_secret_describe(h, opr, "flink/orders-db", NULL), P11KMS_ERR_INVALID_ARGUMENT,
                 "p11kms_secret_info: set struct_size = sizeof(p11kms_secret_info)");

    PK_ASSERT_RC(p11kms_secret_list(h, opr, "flink", &json), P11KMS_OK, NULL);
    CU_ASSERT_PTR_NOT_NULL(strstr(json, "\"SecretId\":\"flink/orders-db\",\"Namespace\":\"flink\""));
    p11kms_free(json);

    /* The ARN suffix: base32 of SHA-256("p11kms-secret-arn" || name), stable without being stored. */
    PK_ASSERT_RC(p11kms_secret_arn(h, "flink/orders-db", &arn), P11KMS_OK, NULL);
    PK_ASSERT_RC(p11kms_secret_arn(h, "flink/orders-db", &arn2), P11KMS_OK, NULL);
    CU_ASSERT(arn != NULL && strncmp(arn, "arn:aws:secretsmanager:", 23) == 0);
    CU_ASSERT(arn != NULL && strstr(arn, ":secret:flink/orders-db-h6ablt") != NULL &&
              strlen(strstr(arn, ":secret:")) == strlen(":secret:flink/orders-db-h6ablt"));
    CU_ASSERT(arn != NULL && arn2 != NULL && strcmp(arn, arn2) == 0);
    p11kms_free(arn);
    p11kms_free(arn2);
    PK_ASSERT_RC(p11kms_secret_arn(h, "bad name!", &arn), P11KMS_ERR_INVALID_ARGUMENT,
                 "a secret ARN is made from a secret name");
    CU_ASSERT_PTR_NULL(arn);

    PK_ASSERT_RC(p11kms_secret_remove(h, opr, "flink/orders-db"), P11KMS_OK, NULL);
    info.struct_size = sizeof(info);
    PK_ASSERT_RC(p11kms_secret_describe(h, opr, "flink/orders-db", &d), P11KMS_ERR_NOT_FOUND,
                 "secret flink/orders-db not found");
    PK_ASSERT_RC(p11kms_secret_get_info(h, opr, "flink/orders-db", &got, &info), P11KMS_ERR_NOT_FOUND,
                 "secret flink/orders-db not found");
    p11kms_secret_map_free(m);
}

static void test_secrets_map_encoding_and_limits(void)
{
    p11kms_secret_map *m = NULL, *back = NULL;
    pk_secbuf enc = PK_SECBUF_INIT;
    char key[16], *big;
    p11kms_buf *json = NULL;

    CU_ASSERT_FATAL(p11kms_secret_map_new(&m) == P11KMS_OK);
    CU_ASSERT(p11kms_secret_map_set(m, "b", "2") == P11KMS_OK);
    CU_ASSERT(p11kms_secret_map_set(m, "a", "") == P11KMS_OK);
    CU_ASSERT(p11kms_secret_map_set(m, "\xc3\xa9t\xc3\xa9", "\"quoted\"\n") == P11KMS_OK);
    CU_ASSERT(pk_ok(pk_map_encode(m, &enc)));
    /* canonical: magic, format, count, then keys ascending */
    CU_ASSERT_EQUAL(memcmp(enc.data, "PKSM\x01\x00\x00\x00\x03\x00\x00\x00\x01" "a", 14), 0);
    CU_ASSERT(pk_ok(pk_map_decode(pk_bytes_of(enc.data, enc.len), &back)));
    CU_ASSERT_EQUAL(p11kms_secret_map_count(back), 3);
    CU_ASSERT_STRING_EQUAL(p11kms_secret_map_get(back, "\xc3\xa9t\xc3\xa9"), "\"quoted\"\n");
    /* a non-canonical encoding (keys out of order) is refused */
    enc.data[13] = 'z';
    pk_map_free(back);
    back = NULL;
    CU_ASSERT_EQUAL(pk_map_decode(pk_bytes_of(enc.data, enc.len), &back).code, P11KMS_ERR_INTEGRITY);
    pk_secbuf_free(&enc);
    /* JSON round trip through the strict parser */
    PK_ASSERT_RC(p11kms_secret_map_to_json(m, &json), P11KMS_OK, NULL);
    CU_ASSERT_EQUAL(strncmp((const char *)p11kms_buf_data(json), "{\"a\":\"\",\"b\":\"2\",", 16), 0);
    PK_ASSERT_RC(p11kms_secret_map_from_json((const char *)p11kms_buf_data(json), p11kms_buf_len(json), &back),
                 P11KMS_OK, NULL);
    CU_ASSERT_STRING_EQUAL(p11kms_secret_map_get(back, "\xc3\xa9t\xc3\xa9"), "\"quoted\"\n");
    p11kms_secret_map_free(back);
    back = NULL;
    p11kms_buf_free(json);
    PK_ASSERT_RC(p11kms_secret_map_from_json("{\"a\":\"\\u00e9\\ud83d\\ude00\"}", strlen("{\"a\":\"\\u00e9\\ud83d\\ude00\"}"), &back), P11KMS_OK, NULL);
    CU_ASSERT_STRING_EQUAL(p11kms_secret_map_get(back, "a"), "\xc3\xa9\xf0\x9f\x98\x80");
    p11kms_secret_map_free(back);
    back = NULL;
    PK_ASSERT_RC(p11kms_secret_map_from_json("{\"a\":1}", strlen("{\"a\":1}"), &back), P11KMS_ERR_INVALID_ARGUMENT,
                 "secret JSON: the value of 'a' must be a string");
    PK_ASSERT_RC(p11kms_secret_map_from_json("{\"a\":\"x\",\"a\":\"y\"}", strlen("{\"a\":\"x\",\"a\":\"y\"}"), &back), P11KMS_ERR_INVALID_ARGUMENT,
                 "secret JSON: key 'a' is given twice");
    PK_ASSERT_RC(p11kms_secret_map_from_json("{\"a\":\"x\"} x", strlen("{\"a\":\"x\"} x"), &back), P11KMS_ERR_INVALID_ARGUMENT,
                 "secret JSON: trailing characters at offset 10");
    PK_ASSERT_RC(p11kms_secret_map_from_json("{}", strlen("{}"), &back), P11KMS_ERR_INVALID_ARGUMENT,
                 "a secret map needs at least one key");
    PK_ASSERT_RC(p11kms_secret_map_from_json("{\"\":\"x\"}", strlen("{\"\":\"x\"}"), &back), P11KMS_ERR_INVALID_ARGUMENT,
                 "secret map keys must not be empty");
    CU_ASSERT_PTR_NULL(back);
    /* limits: 64 pairs, 64 KiB */
    for (int i = 3; i < PK_SECRET_MAX_PAIRS; i++) {
        snprintf(key, sizeof(key), "k%02d", i);
        CU_ASSERT(p11kms_secret_map_set(m, key, "v") == P11KMS_OK);
    }
    PK_ASSERT_RC(p11kms_secret_map_set(m, "one-more", "v"), P11KMS_ERR_LIMIT, "a secret map holds at most 64 pairs");
    PK_ASSERT_RC(p11kms_secret_map_set(m, "b", "\xff"), P11KMS_ERR_INVALID_ARGUMENT,
                 "the value of secret map key 'b' is not UTF-8 text");
    big = calloc(1, 40000);
    memset(big, 'x', 39999);
    CU_ASSERT(p11kms_secret_map_set(m, "a", big) == P11KMS_OK);
    CU_ASSERT(p11kms_secret_map_set(m, "b", big) == P11KMS_OK);
    {
        char *id = NULL;
        PK_ASSERT_RC(p11kms_secret_put(h, opr, NULL, NULL, m, &id), P11KMS_ERR_LIMIT,
                     "secret map is larger than 65536 bytes (keys and values)");
        CU_ASSERT_PTR_NULL(id);
    }
    free(big);
    p11kms_secret_map_free(m);
}

/* Replace secret b's ciphertext with a's, re-sealing the record so its store MAC is valid. */
typedef struct swap_job {
    const char *from, *to;
    bool bump_version;
} swap_job;

static pk_result swap_tx(p11kms *hh, void *ctx)
{
    swap_job *j = ctx;
    pk_secret a, b;
    pk_result r = pk_secret_load(&hh->env, j->from, false, &a);
    if (pk_failed(r)) return r;
    r = pk_secret_load(&hh->env, j->to, false, &b);
    if (pk_ok(r)) {
        if (j->bump_version) {
            b.version++;
        } else {
            memcpy(b.iv, a.iv, sizeof(b.iv));
            b.ct.len = 0;
            r = pk_buf_append(&b.ct, a.ct.data, a.ct.len);
            b.nsv = a.nsv;
            b.created_ms = a.created_ms;
            b.updated_ms = a.updated_ms;
        }
        if (pk_ok(r)) r = pk_secret_save_tx(&hh->env, &b);
    }
    pk_secret_clear(&a);
    pk_secret_clear(&b);
    return r;
}

static void test_secrets_aad_binding_swapped_ciphertext(void)
{
    char *a = put("aad", NULL, "password", "alpha-value");
    char *b = put("aad", NULL, "password", "bravo-value");
    p11kms_secret_map *got = NULL;
    swap_job j = {a, b, false};

    /* The record's MAC is valid after re-sealing: only the AAD can catch this. */
    CU_ASSERT(pk_ok(pk_with_write_tx(h, swap_tx, &j)));
    PK_ASSERT_RC(p11kms_secret_get(h, opr, b, &got), P11KMS_ERR_CIPHERTEXT_INVALID,
                 "ciphertext invalid or context mismatch");
    CU_ASSERT_PTR_NULL(got);
    expect_value(a, "password", "alpha-value");
    /* A replayed record with another secret version fails the same way. */
    j = (swap_job){a, a, true};
    CU_ASSERT(pk_ok(pk_with_write_tx(h, swap_tx, &j)));
    PK_ASSERT_RC(p11kms_secret_get(h, opr, a, &got), P11KMS_ERR_CIPHERTEXT_INVALID,
                 "ciphertext invalid or context mismatch");
    /* A rewrap --reencrypt reports undecryptable secrets and moves the rest. */
    {
        char *json = NULL, want[200];
        snprintf(want, sizeof(want), "2 secrets could not be re-encrypted (first: %s)", strcmp(a, b) < 0 ? a : b);
        const char *wantp = want;
        PK_ASSERT_RC(p11kms_secret_rewrap(h, opr, "aad", 0, 1, NULL, NULL, &json), P11KMS_ERR_CIPHERTEXT_INVALID,
                     wantp);
        CU_ASSERT_PTR_NULL(json);
    }
    PK_ASSERT_RC(p11kms_secret_remove(h, opr, a), P11KMS_OK, NULL);
    PK_ASSERT_RC(p11kms_secret_remove(h, opr, b), P11KMS_OK, NULL);
    p11kms_free(a);
    p11kms_free(b);
}

/* A rewrap names an undecryptable named secret whole, however long its name. */
static void test_secrets_rewrap_reports_named(void)
{
    const char *a = "aadn/a-secret-name-longer-than-a-uuid-string-1";
    const char *b = "aadn/a-secret-name-longer-than-a-uuid-string-2";
    p11kms_secret_map *m = map2("password", "named-value", NULL, NULL);
    swap_job j = {a, b, false};
    char *json = NULL;

    PK_ASSERT_RC(p11kms_secret_put_named(h, opr, "aadn", NULL, a, m), P11KMS_OK, NULL);
    PK_ASSERT_RC(p11kms_secret_put_named(h, opr, "aadn", NULL, b, m), P11KMS_OK, NULL);
    CU_ASSERT(pk_ok(pk_with_write_tx(h, swap_tx, &j)));
    PK_ASSERT_RC(p11kms_secret_rewrap(h, opr, "aadn", 0, 1, NULL, NULL, &json), P11KMS_ERR_CIPHERTEXT_INVALID,
                 "1 secret could not be re-encrypted (first: aadn/a-secret-name-longer-than-a-uuid-string-2)");
    CU_ASSERT_PTR_NULL(json);
    PK_ASSERT_RC(p11kms_secret_remove(h, opr, a), P11KMS_OK, NULL);
    PK_ASSERT_RC(p11kms_secret_remove(h, opr, b), P11KMS_OK, NULL);
    p11kms_secret_map_free(m);
}

/* The row cache never serves a row this handle or another writer has replaced or removed. */
static void test_secrets_row_cache_follows_writers(void)
{
    p11kms *h2 = NULL;
    pk_secrets *st = NULL;
    pk_secrets_stats before, after;
    p11kms_secret_map *m = NULL;
    char *id = put("rows", NULL, "password", "row-one"), gone[100];
    int64_t saved = h->store_recheck_ms;

    CU_ASSERT_FATAL(pk_ok(pk_secrets_of(&h->env, &st)));
    expect_value(id, "password", "row-one");
    pk_secrets_get_stats(st, &before);
    expect_value(id, "password", "row-one");
    pk_secrets_get_stats(st, &after);
    CU_ASSERT_EQUAL(after.row_hits, before.row_hits + 1);
    CU_ASSERT_EQUAL(after.row_misses, before.row_misses);
    /* This handle's update: the next get reads the new row. */
    m = map2("password", "row-two", NULL, NULL);
    PK_ASSERT_RC(p11kms_secret_update(h, opr, id, m), P11KMS_OK, NULL);
    p11kms_secret_map_free(m);
    expect_value(id, "password", "row-two");
    expect_value(id, "password", "row-two");
    /* Another writer (its own store connection): seen at the next store check. */
    h->store_recheck_ms = 0;
    CU_ASSERT_FATAL(p11kms_open(fx.cfg, &h2) == P11KMS_OK);
    m = map2("password", "row-three", NULL, NULL);
    PK_ASSERT_RC(p11kms_secret_update(h2, opr, id, m), P11KMS_OK, NULL);
    p11kms_secret_map_free(m);
    m = NULL;
    expect_value(id, "password", "row-three");
    PK_ASSERT_RC(p11kms_secret_remove(h2, opr, id), P11KMS_OK, NULL);
    snprintf(gone, sizeof(gone), "secret %s not found", id);
    const char *gonep = gone;
    PK_ASSERT_RC(p11kms_secret_get(h, opr, id, &m), P11KMS_ERR_NOT_FOUND, gonep);
    CU_ASSERT_PTR_NULL(m);
    p11kms_close(h2);
    h->store_recheck_ms = saved;
    p11kms_free(id);
}

static void test_secrets_namespace_key_rollover(void)
{
    pk_secrets *st;
    pk_secrets_stats before, after;
    char *ids[10];
    uint32_t v = 0;
    char dflt[PK_UUID_STR_LEN + 1];

    CU_ASSERT_FATAL(pk_ok(pk_secrets_of(&h->env, &st)));
    pk_secrets_set_nonce_limit(st, 4);
    pk_secrets_get_stats(st, &before);
    for (int i = 0; i < 10; i++) ids[i] = put("roll", NULL, "n", "value");
    pk_secrets_get_stats(st, &after);
    /* 10 encryptions with at most 4 per version: versions 1..3, two rollovers */
    CU_ASSERT_EQUAL(after.rollovers - before.rollovers, 2);
    CU_ASSERT(pk_ok(pk_ns_default_key(&h->env, "roll", dflt)));
    CU_ASSERT(pk_ok(pk_ns_current_version(&h->env, "roll", dflt, &v)));
    CU_ASSERT_EQUAL(v, 3);
    for (int i = 0; i < 10; i++) {
        expect_value(ids[i], "n", "value");
        p11kms_free(ids[i]);
    }
    pk_secrets_set_nonce_limit(st, 0);
}

static void test_secrets_thousand_namespaces_bounded_cache(void)
{
    enum { N = 1000, LIMIT = 100 };
    char **ids = calloc(N, sizeof(*ids));
    char ns[32];
    pk_p11_stats s0, s1, s2;

    pk_p11_set_data_key_limit(h->p11, LIMIT);
    for (int i = 0; i < N; i++) {
        snprintf(ns, sizeof(ns), "tenant-%04d", i);
        ids[i] = put(ns, NULL, "password", "pw");
    }
    pk_p11_get_stats(h->p11, &s0);
    /* Round robin over 1000 namespaces: every get misses, and a miss costs exactly one unwrap. */
    CU_ASSERT(s0.data_keys_cached <= LIMIT);
    for (int i = 0; i < N; i++) expect_value(ids[i], "password", "pw");
    pk_p11_get_stats(h->p11, &s1);
    CU_ASSERT_EQUAL(s1.unwraps - s0.unwraps, N);
    CU_ASSERT(s1.data_keys_cached <= LIMIT);
    CU_ASSERT(s1.evictions - s0.evictions >= N - LIMIT);
    /* The last 100 are resident: no unwrap at all. */
    for (int i = N - LIMIT; i < N; i++) expect_value(ids[i], "password", "pw");
    pk_p11_get_stats(h->p11, &s2);
    CU_ASSERT_EQUAL(s2.unwraps - s1.unwraps, 0);
    CU_ASSERT_EQUAL(s2.find_sweeps, s1.find_sweeps);
    for (int i = 0; i < N; i++) p11kms_free(ids[i]);
    free(ids);
    pk_p11_set_data_key_limit(h->p11, 4096);
}

static void test_secrets_rotation_rewrap_and_reencrypt(void)
{
    char *key = make_key(), *json = NULL, *ids[4];
    unsigned nv = 0;

    for (int i = 0; i < 4; i++) ids[i] = put(i < 2 ? "rw-a" : "rw-b", key, "password", i % 2 ? "odd" : "even");
    PK_ASSERT_RC(p11kms_key_rotate(h, adm, key, &nv), P11KMS_OK, NULL);
    CU_ASSERT_EQUAL(nv, 2);
    /* Rotation alone strands nothing. */
    for (int i = 0; i < 4; i++) expect_value(ids[i], "password", i % 2 ? "odd" : "even");
    PK_ASSERT_RC(p11kms_secret_rewrap(h, adm, "rw-a", 0, 0, NULL, NULL, &json), P11KMS_ERR_ACCESS_DENIED, NULL);
    PK_ASSERT_RC(p11kms_secret_rewrap(h, opr, "rw-a", 0, 0, NULL, NULL, &json), P11KMS_OK, NULL);
    CU_ASSERT_PTR_NOT_NULL(json && strstr(json, "\"KeysRewrapped\":1,\"KeysAlreadyCurrent\":0,\"SecretsReencrypted\":0"));
    p11kms_free(json);
    PK_ASSERT_RC(p11kms_secret_rewrap(h, opr, "rw-a", 0, 0, NULL, NULL, &json), P11KMS_OK, NULL);
    CU_ASSERT_PTR_NOT_NULL(json && strstr(json, "\"KeysRewrapped\":0,\"KeysAlreadyCurrent\":1"));
    p11kms_free(json);
    /* The re-wrapped namespace key is under CMK version 2 in the record. */
    {
        pk_nskey nk;
        pk_record rec = {0};
        bool found = false;
        char rid[PK_STORE_ID_MAX];
        snprintf(rid, sizeof(rid), "%s:rw-a", key);
        CU_ASSERT(pk_ok(pk_record_load(h, "nskey", rid, &rec, &found)) && found);
        CU_ASSERT(pk_ok(pk_nskey_from_record(&rec, &nk)));
        CU_ASSERT_EQUAL(nk.v[0].kek_version, 2);
        pk_nskey_clear(&nk);
        pk_record_clear(&rec);
    }
    /*
     * With the data-key cache emptied, a read must unwrap the re-wrapped
     * form under CMK version 2: exactly one unwrap, and the value is right.
     * (Done in this handle: closing a second handle in the same process
     * logs the whole application out of the token, see the report.)
     */
    {
        pk_p11_stats a0, a1;
        pk_ns_forget(&h->env, "rw-a", key);
        pk_p11_set_data_key_limit(h->p11, 1);
        p11kms_free(put("rw-evict", NULL, "x", "y")); /* a new data key: the cache shrinks to 1 */
        pk_p11_get_stats(h->p11, &a0);
        expect_value(ids[0], "password", "even");
        pk_p11_get_stats(h->p11, &a1);
        CU_ASSERT_EQUAL(a1.unwraps - a0.unwraps, 1);
        pk_p11_set_data_key_limit(h->p11, 4096);
    }
    /* --all --reencrypt: every namespace key re-wrapped and every secret moved to a new version. */
    PK_ASSERT_RC(p11kms_secret_rewrap(h, opr, NULL, 1, 1, NULL, NULL, &json), P11KMS_OK, NULL);
    p11kms_free(json);
    PK_ASSERT_RC(p11kms_secret_list(h, opr, "rw-b", &json), P11KMS_OK, NULL);
    CU_ASSERT_PTR_NOT_NULL(strstr(json, "\"NamespaceKeyVersion\":2"));
    CU_ASSERT_PTR_NULL(strstr(json, "\"NamespaceKeyVersion\":1"));
    p11kms_free(json);
    for (int i = 0; i < 4; i++) {
        expect_value(ids[i], "password", i % 2 ? "odd" : "even");
        p11kms_free(ids[i]);
    }
    p11kms_free(key);
}

static void test_secrets_policy_namespace_condition(void)
{
    char policy[2048], *key = NULL, *id = NULL;
    p11kms_key_spec spec;
    p11kms_secret_map *m = map2("password", "p", NULL, NULL);
    snprintf(policy, sizeof(policy),
             "{\"Version\":\"2012-10-17\",\"Statement\":["
             "{\"Sid\":\"Admin\",\"Effect\":\"Allow\",\"Principal\":{\"AWS\":\"%s\"},\"Action\":\"kms:*\",\"Resource\":\"*\"},"
             "{\"Sid\":\"TeamA\",\"Effect\":\"Allow\",\"Principal\":{\"AWS\":\"%s\"},"
             "\"Action\":[\"kms:GenerateDataKey\",\"kms:Decrypt\"],\"Resource\":\"*\","
             "\"Condition\":{\"StringEquals\":{\"kms:EncryptionContext:p11kms:namespace\":\"team-a\"}}}]}",
             ADM, OPR);
    memset(&spec, 0, sizeof(spec));
    spec.struct_size = sizeof(spec);
    spec.policy_json = policy;
    PK_ASSERT_RC(p11kms_key_create(h, adm, &spec, &key), P11KMS_OK, NULL);
    PK_ASSERT_RC(p11kms_secret_put(h, opr, "team-a", key, m, &id), P11KMS_OK, NULL);
    p11kms_free(id);
    id = NULL;
    PK_ASSERT_RC(p11kms_secret_put(h, opr, "team-b", key, m, &id), P11KMS_ERR_ACCESS_DENIED, NULL);
    CU_ASSERT_PTR_NOT_NULL(strstr(p11kms_last_error(), "is not authorized to perform kms:GenerateDataKey"));
    CU_ASSERT_PTR_NULL(id);
    p11kms_secret_map_free(m);
    p11kms_free(key);
}

static void test_secrets_cache_ttl_uses_entries(void)
{
    pk_secrets *st;
    pk_secrets_stats s0, s1;
    char *a = put("cache", NULL, "v", "A"), *b = put("cache", NULL, "v", "B"), *c = put("cache", NULL, "v", "C");
    p11kms_secret_map *m = NULL;

    CU_ASSERT_FATAL(pk_ok(pk_secrets_of(&h->env, &st)));
    /* Off by default: nothing cached. */
    pk_secrets_get_stats(st, &s0);
    expect_value(a, "v", "A");
    expect_value(a, "v", "A");
    pk_secrets_get_stats(st, &s1);
    CU_ASSERT_EQUAL(s1.cache_hits, s0.cache_hits);
    CU_ASSERT_EQUAL(s1.cache_entries, 0);

    pk_secrets_set_cache(st, 60000, 2, 3);
    expect_value(a, "v", "A"); /* miss, cached */
    expect_value(a, "v", "A"); /* hit 1 */
    expect_value(a, "v", "A"); /* hit 2 */
    expect_value(a, "v", "A"); /* hit 3: max uses reached, dropped */
    pk_secrets_get_stats(st, &s0);
    CU_ASSERT_EQUAL(s0.cache_hits - s1.cache_hits, 3);
    CU_ASSERT_EQUAL(s0.cache_entries, 0);
    /* Policy applies to a cached read too. */
    expect_value(b, "v", "B");
    PK_ASSERT_RC(p11kms_secret_get(h, other, b, &m), P11KMS_OK, NULL); /* the service key lets anyone decrypt */
    p11kms_secret_map_free(m);
    m = NULL;
    /* max entries: a, b, c -> two stay */
    expect_value(a, "v", "A");
    expect_value(c, "v", "C");
    pk_secrets_get_stats(st, &s1);
    CU_ASSERT_EQUAL(s1.cache_entries, 2);
    /* Own updates invalidate at once. */
    {
        p11kms_secret_map *u = map2("v", "C2", NULL, NULL);
        PK_ASSERT_RC(p11kms_secret_update(h, opr, c, u), P11KMS_OK, NULL);
        p11kms_secret_map_free(u);
        expect_value(c, "v", "C2");
    }
    /* TTL: an hour later every entry has expired. */
    pk_secrets_get_stats(st, &s0);
    h->clock_offset_ms += 3600 * 1000;
    expect_value(c, "v", "C2");
    h->clock_offset_ms -= 3600 * 1000;
    pk_secrets_get_stats(st, &s1);
    CU_ASSERT_EQUAL(s1.cache_hits, s0.cache_hits);
    CU_ASSERT_EQUAL(s1.cache_misses - s0.cache_misses, 1);
    pk_secrets_set_cache(st, 0, 0, 0);
    pk_secrets_get_stats(st, &s1);
    CU_ASSERT_EQUAL(s1.cache_entries, 0);
    p11kms_free(a);
    p11kms_free(b);
    p11kms_free(c);
}

typedef struct thr {
    const char *id;
    int n;
    int t;
    int fails;
} thr;

static void *updater(void *arg)
{
    thr *t = arg;
    char v[32];
    for (int i = 0; i < t->n; i++) {
        p11kms_secret_map *m = NULL;
        snprintf(v, sizeof(v), "t%d-i%d", t->t, i);
        if (p11kms_secret_map_new(&m) != P11KMS_OK || p11kms_secret_map_set(m, "v", v) != P11KMS_OK ||
            p11kms_secret_update(h, opr, t->id, m) != P11KMS_OK)
            t->fails++;
        p11kms_secret_map_free(m);
    }
    return NULL;
}

static void test_secrets_concurrent_updates_threads(void)
{
    enum { T = 4, N = 25 };
    char *id = put("threads", NULL, "v", "start"), *json = NULL;
    pthread_t th[T];
    thr args[T];
    p11kms_secret_map *m = NULL;

    for (int i = 0; i < T; i++) {
        args[i] = (thr){id, N, i, 0};
        pthread_create(&th[i], NULL, updater, &args[i]);
    }
    for (int i = 0; i < T; i++) {
        pthread_join(th[i], NULL);
        CU_ASSERT_EQUAL(args[i].fails, 0);
    }
    /* Every update applied exactly once: version 1 + T*N. */
    PK_ASSERT_RC(p11kms_secret_list(h, opr, "threads", &json), P11KMS_OK, NULL);
    CU_ASSERT_PTR_NOT_NULL(strstr(json, "\"Version\":101"));
    p11kms_free(json);
    PK_ASSERT_RC(p11kms_secret_get(h, opr, id, &m), P11KMS_OK, NULL);
    CU_ASSERT(m != NULL && strncmp(p11kms_secret_map_get(m, "v"), "t", 1) == 0);
    p11kms_secret_map_free(m);
    p11kms_free(id);
}

static void test_secrets_connections(void)
{
    p11kms_secret_map *opts = NULL, *got = NULL, *set = NULL;
    char *json = NULL, *sql = NULL;
    const char *reset[] = {"sasl.jaas.config"};
    p11kms_connection_spec spec;

    CU_ASSERT_FATAL(p11kms_secret_map_new(&opts) == P11KMS_OK);
    CU_ASSERT(p11kms_secret_map_set(opts, "url", "jdbc:postgresql://db:5432/x") == P11KMS_OK);
    CU_ASSERT(p11kms_secret_map_set(opts, "username", "flink") == P11KMS_OK);
    CU_ASSERT(p11kms_secret_map_set(opts, "password", "pg-pass-1") == P11KMS_OK);
    CU_ASSERT(p11kms_secret_map_set(opts, "sasl.jaas.config", "jaas-value") == P11KMS_OK);
    memset(&spec, 0, sizeof(spec));
    spec.struct_size = sizeof(spec);
    spec.type = "jdbc";
    spec.comment = "orders db";
    spec.options = opts;
    PK_ASSERT_RC(p11kms_connection_create(h, opr, "cat.db.orders", &spec), P11KMS_OK, NULL);
    PK_ASSERT_RC(p11kms_connection_create(h, opr, "cat.db.orders", &spec), P11KMS_ERR_ALREADY_EXISTS,
                 "connection cat.db.orders already exists");
    PK_ASSERT_RC(p11kms_connection_describe(h, opr, "cat.db.orders", &json), P11KMS_OK, NULL);
    CU_ASSERT_PTR_NOT_NULL(strstr(json, "\"password\":\"****\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(json, "\"sasl.jaas.config\":\"****\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(json, "\"username\":\"flink\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(json, "\"__flink.encrypted-secret-key__\":\""));
    CU_ASSERT_PTR_NULL(strstr(json, "pg-pass-1"));
    p11kms_free(json);
    PK_ASSERT_RC(p11kms_connection_show_create(h, opr, "cat.db.orders", &sql), P11KMS_OK, NULL);
    CU_ASSERT_PTR_NOT_NULL(strstr(sql, "CREATE CONNECTION `cat`.`db`.`orders`\nCOMMENT 'orders db'\nWITH (\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(sql, "'password' = '****'"));
    p11kms_free(sql);
    PK_ASSERT_RC(p11kms_connection_resolve(h, opr, "cat.db.orders", &got), P11KMS_OK, NULL);
    CU_ASSERT_STRING_EQUAL(p11kms_secret_map_get(got, "password"), "pg-pass-1");
    CU_ASSERT_STRING_EQUAL(p11kms_secret_map_get(got, "type"), "jdbc");
    CU_ASSERT_PTR_NULL(p11kms_secret_map_get(got, PK_CONN_RESERVED_KEY));
    p11kms_secret_map_free(got);
    got = NULL;
    /* alter: the secret changes, its id stays */
    CU_ASSERT_FATAL(p11kms_secret_map_new(&set) == P11KMS_OK);
    CU_ASSERT(p11kms_secret_map_set(set, "password", "pg-pass-2") == P11KMS_OK);
    CU_ASSERT(p11kms_secret_map_set(set, "username", "flink2") == P11KMS_OK);
    PK_ASSERT_RC(p11kms_connection_alter(h, opr, "cat.db.orders", set, reset, 1, NULL), P11KMS_OK, NULL);
    PK_ASSERT_RC(p11kms_connection_resolve(h, opr, "cat.db.orders", &got), P11KMS_OK, NULL);
    CU_ASSERT_STRING_EQUAL(p11kms_secret_map_get(got, "password"), "pg-pass-2");
    CU_ASSERT_STRING_EQUAL(p11kms_secret_map_get(got, "username"), "flink2");
    CU_ASSERT_PTR_NULL(p11kms_secret_map_get(got, "sasl.jaas.config"));
    p11kms_secret_map_free(got);
    got = NULL;
    /* the reserved key is refused */
    CU_ASSERT(p11kms_secret_map_set(set, PK_CONN_RESERVED_KEY, "x") == P11KMS_OK);
    PK_ASSERT_RC(p11kms_connection_alter(h, opr, "cat.db.orders", set, NULL, 0, NULL), P11KMS_ERR_INVALID_ARGUMENT,
                 "option '__flink.encrypted-secret-key__' is reserved for the secret reference; it cannot be set");
    PK_ASSERT_RC(p11kms_connection_list(h, opr, "cat.db.%", &json), P11KMS_OK, NULL);
    CU_ASSERT_PTR_NOT_NULL(strstr(json, "{\"Name\":\"cat.db.orders\",\"Type\":\"jdbc\""));
    p11kms_free(json);
    PK_ASSERT_RC(p11kms_connection_list(h, opr, "x%", &json), P11KMS_OK, NULL);
    CU_ASSERT_STRING_EQUAL(json, "[]");
    p11kms_free(json);
    PK_ASSERT_RC(p11kms_connection_drop(h, opr, "cat.db.orders"), P11KMS_OK, NULL);
    PK_ASSERT_RC(p11kms_connection_resolve(h, opr, "cat.db.orders", &got), P11KMS_ERR_NOT_FOUND,
                 "connection cat.db.orders not found");
    p11kms_secret_map_free(set);
    p11kms_secret_map_free(opts);
}

static void test_secrets_render(void)
{
    char *id = put("render", NULL, "password", "rendered-pw"), tmpl[512];
    p11kms_buf *out = NULL, *blob = NULL;
    const char *pt = "kms-pw";
    p11kms_secret_map *opts = map2("token", "conn-token", "host", "h1");
    p11kms_connection_spec spec;
    char b64[256];

    memset(&spec, 0, sizeof(spec));

    spec.struct_size = sizeof(spec);
    spec.options = opts;
    PK_ASSERT_RC(p11kms_connection_create(h, opr, "rconn", &spec), P11KMS_OK, NULL);
    PK_ASSERT_RC(p11kms_encrypt(h, opr, "alias/p11kms/default", NULL, 0, (const uint8_t *)pt, strlen(pt), &blob),
                 P11KMS_OK, NULL);
    pk_base64_encode(p11kms_buf_data(blob), p11kms_buf_len(blob), b64);
    snprintf(tmpl, sizeof(tmpl), "a: ${secret:%s:password}\nb: ${connection:rconn:token}@${connection:rconn:host}\n"
             "c: ${kms:%s}\nd: $${literal} $x\n", id, b64);
    PK_ASSERT_RC(p11kms_render(h, opr, tmpl, strlen(tmpl), &out), P11KMS_OK, NULL);
    CU_ASSERT_STRING_EQUAL((const char *)p11kms_buf_data(out),
                           "a: rendered-pw\nb: conn-token@h1\nc: kms-pw\nd: ${literal} $x\n");
    p11kms_buf_free(out);
    out = NULL;
    snprintf(tmpl, sizeof(tmpl), "a: ${secret:%s:password}\nb: ${secret:%s:nope}\n", id, id);
    PK_ASSERT_RC(p11kms_render(h, opr, tmpl, strlen(tmpl), &out), P11KMS_ERR_NOT_FOUND, NULL);
    CU_ASSERT_PTR_NULL(out);
    PK_ASSERT_RC(p11kms_render(h, opr, "x ${vault:a:b}", 14, &out), P11KMS_ERR_INVALID_ARGUMENT,
                 "render: line 1: unknown placeholder '${vault:a:b}': use ${secret:ID:FIELD}, "
                 "${connection:NAME:OPTION} or ${kms:BLOB}");
    PK_ASSERT_RC(p11kms_render(h, opr, "x ${secret:a", 12, &out), P11KMS_ERR_INVALID_ARGUMENT,
                 "render: line 1: unterminated placeholder '${'");
    p11kms_buf_free(blob);
    p11kms_secret_map_free(opts);
    p11kms_free(id);
}

/* Render one template; its output (NULL on failure) in *out. */
static p11kms_rc render_str(const char *tmpl, p11kms_buf **out)
{
    *out = NULL;
    return p11kms_render(h, opr, tmpl, strlen(tmpl), out);
}

static void expect_render(const char *tmpl, const char *want)
{
    p11kms_buf *out = NULL;
    PK_ASSERT_RC(render_str(tmpl, &out), P11KMS_OK, NULL);
    if (out != NULL) {
        CU_ASSERT_STRING_EQUAL((const char *)p11kms_buf_data(out), want);
        if (strcmp((const char *)p11kms_buf_data(out), want) != 0)
            fprintf(stderr, "\n  got  %s\n  want %s\n", (const char *)p11kms_buf_data(out), want);
    }
    p11kms_buf_free(out);
}

/* Each filter's exact output; no filter refuses what would change the structure. */
static void test_secrets_render_filters(void)
{
    p11kms_secret_map *m = map2("hash", "Xy7 #9!q", "inject", "x\nadmin: true");
    p11kms_buf *out = NULL;
    char *id = NULL, t[512], w[512];
    const char *wp = w;

    CU_ASSERT(p11kms_secret_map_set(m, "quotes", " 'a' \"b\" \\c\t") == P11KMS_OK);
    CU_ASSERT(p11kms_secret_map_set(m, "uni", "\xc3\xa4\xc2\x85\xe2\x80\xa8\xef\xbb\xbf\xf0\x9d\x84\x9e\x7f") == P11KMS_OK);
    CU_ASSERT(p11kms_secret_map_set(m, "props", "  =:#! x") == P11KMS_OK);
    PK_ASSERT_RC(p11kms_secret_put(h, opr, "filters", NULL, m, &id), P11KMS_OK, NULL);
    CU_ASSERT_FATAL(id != NULL);
    snprintf(t, sizeof(t), "a: ${secret:%s:hash|yaml}\nb: ${secret:%s:inject|yaml}\nc: ${secret:%s:quotes|yaml}\n"
             "d: ${secret:%s:uni|yaml}\n", id, id, id, id);
    expect_render(t, "a: \"Xy7 #9!q\"\nb: \"x\\nadmin: true\"\nc: \" 'a' \\\"b\\\" \\\\c\\t\"\n"
                     "d: \"\xc3\xa4\\x85\\u2028\\uFEFF\xf0\x9d\x84\x9e\\x7F\"\n");
    snprintf(t, sizeof(t), "{\"a\": ${secret:%s:inject|json}, \"b\": ${secret:%s:quotes|json}, \"c\": "
             "${secret:%s:uni|json}}", id, id, id);
    expect_render(t, "{\"a\": \"x\\nadmin: true\", \"b\": \" 'a' \\\"b\\\" \\\\c\\t\", \"c\": "
                     "\"\xc3\xa4\xc2\x85\xe2\x80\xa8\xef\xbb\xbf\xf0\x9d\x84\x9e\\u007f\"}");
    snprintf(t, sizeof(t), "a=${secret:%s:hash|properties}\nb=${secret:%s:inject|properties}\n"
             "c=${secret:%s:props|properties}\nd=${secret:%s:uni|properties}\ne=${secret:%s:quotes|properties}\n",
             id, id, id, id, id);
    expect_render(t, "a=Xy7 \\#9\\!q\nb=x\\nadmin\\: true\nc=\\ \\ \\=\\:\\#\\! x\n"
                     "d=\\u00E4\\u0085\\u2028\\uFEFF\\uD834\\uDD1E\\u007F\ne=\\ 'a' \"b\" \\\\c\\t\n");
    snprintf(t, sizeof(t), "A=${secret:%s:quotes|shell} B=${secret:%s:inject|shell}", id, id);
    expect_render(t, "A=' '\\''a'\\'' \"b\" \\c\t' B='x\nadmin: true'");
    snprintf(t, sizeof(t), "a: ${secret:%s:inject|raw} ${secret:%s:hash}", id, id);
    expect_render(t, "a: x\nadmin: true Xy7 #9!q");
    /* No filter: refused, naming the placeholder and its line, never the value. */
    snprintf(t, sizeof(t), "a: 1\nb: ${secret:%s:hash}\npassword: ${secret:%s:inject}\n", id, id);
    snprintf(w, sizeof(w), "render: line 3: ${secret:%s:inject} holds a control character; "
             "use |yaml, |json, |properties, |shell or |raw", id);
    PK_ASSERT_RC(render_str(t, &out), P11KMS_ERR_INVALID_ARGUMENT, wp);
    CU_ASSERT_PTR_NULL(out);
    CU_ASSERT_PTR_NULL(strstr(p11kms_last_error(), "admin"));
    snprintf(t, sizeof(t), "x: ${secret:%s:uni}", id);
    snprintf(w, sizeof(w), "render: line 1: ${secret:%s:uni} holds a control character; "
             "use |yaml, |json, |properties, |shell or |raw", id);
    PK_ASSERT_RC(render_str(t, &out), P11KMS_ERR_INVALID_ARGUMENT, wp);
    snprintf(t, sizeof(t), "x: ${secret:%s:hash|yml}", id);
    snprintf(w, sizeof(w), "render: line 1: unknown filter 'yml' in ${secret:%s:hash|yml}: "
             "use |yaml, |json, |properties, |shell or |raw", id);
    PK_ASSERT_RC(render_str(t, &out), P11KMS_ERR_INVALID_ARGUMENT, wp);
    /* A filter on a missing field: still not found. */
    snprintf(t, sizeof(t), "x: ${secret:%s:nope|yaml}", id);
    snprintf(w, sizeof(w), "render: line 1: secret %s has no field 'nope'", id);
    PK_ASSERT_RC(render_str(t, &out), P11KMS_ERR_NOT_FOUND, wp);
    p11kms_secret_map_free(m);
    p11kms_free(id);
}

/* Bytes that are not UTF-8 (a kms plaintext): only |shell and |raw carry them; |shell refuses a NUL. */
static void test_secrets_render_binary_kms(void)
{
    const uint8_t pt[] = {0xff, 'a', 0x00, 'b'};
    p11kms_buf *blob = NULL, *out = NULL;
    char b64[256], t[512], w[512];
    const char *wp = w;

    PK_ASSERT_RC(p11kms_encrypt(h, opr, "alias/p11kms/default", NULL, 0, pt, 2, &blob), P11KMS_OK, NULL);
    CU_ASSERT_FATAL(blob != NULL);
    pk_base64_encode(p11kms_buf_data(blob), p11kms_buf_len(blob), b64);
    snprintf(t, sizeof(t), "${kms:%s|shell}", b64);
    expect_render(t, "'\xff" "a'");
    snprintf(t, sizeof(t), "${kms:%s|yaml}", b64);
    snprintf(w, sizeof(w), "render: line 1: ${kms:%.60s...} is not UTF-8 text, which |yaml cannot represent; "
             "use |shell or |raw", b64);
    PK_ASSERT_RC(render_str(t, &out), P11KMS_ERR_INVALID_ARGUMENT, wp);
    snprintf(t, sizeof(t), "\n${kms:%s}", b64);
    snprintf(w, sizeof(w), "render: line 2: ${kms:%.60s...} is not UTF-8 text; use |shell or |raw", b64);
    PK_ASSERT_RC(render_str(t, &out), P11KMS_ERR_INVALID_ARGUMENT, wp);
    p11kms_buf_free(blob);
    blob = NULL;
    PK_ASSERT_RC(p11kms_encrypt(h, opr, "alias/p11kms/default", NULL, 0, pt, sizeof(pt), &blob), P11KMS_OK, NULL);
    pk_base64_encode(p11kms_buf_data(blob), p11kms_buf_len(blob), b64);
    snprintf(t, sizeof(t), "${kms:%s|shell}", b64);
    snprintf(w, sizeof(w), "render: line 1: ${kms:%.60s...} holds a NUL byte, which a shell string cannot hold; "
             "use |raw", b64);
    PK_ASSERT_RC(render_str(t, &out), P11KMS_ERR_INVALID_ARGUMENT, wp);
    snprintf(t, sizeof(t), "${kms:%s|raw}", b64);
    PK_ASSERT_RC(render_str(t, &out), P11KMS_OK, NULL);
    CU_ASSERT(out != NULL && p11kms_buf_len(out) == sizeof(pt) && memcmp(p11kms_buf_data(out), pt, sizeof(pt)) == 0);
    p11kms_buf_free(out);
    p11kms_buf_free(blob);
}

/* A secret named many times is read once per render. */
static void test_secrets_render_reads_each_secret_once(void)
{
    char *id = put("once", NULL, "password", "once-pw");
    pk_secrets *st = NULL;
    pk_secrets_stats before, after;
    size_t cap = 300 * 80;
    char *t = malloc(cap), *want = malloc(cap);
    size_t n = 0, wn = 0;

    CU_ASSERT_FATAL(t != NULL && want != NULL && pk_ok(pk_secrets_of(&h->env, &st)));
    for (int i = 0; i < 300; i++) {
        n += (size_t)snprintf(t + n, cap - n, "${secret:%s:password}\n", id);
        wn += (size_t)snprintf(want + wn, cap - wn, "once-pw\n");
    }
    pk_secrets_get_stats(st, &before);
    expect_render(t, want);
    pk_secrets_get_stats(st, &after);
    CU_ASSERT_EQUAL(after.row_hits + after.row_misses - before.row_hits - before.row_misses, 1);
    free(t);
    free(want);
    p11kms_free(id);
}

/* At most 1024 placeholders and 1 MiB of template; refused before anything is read. */
static void test_secrets_render_limits(void)
{
    size_t cap = P11KMS_RENDER_MAX_TEMPLATE_BYTES + 2;
    char *t = malloc(cap);
    p11kms_buf *out = NULL;
    size_t n = 0;

    CU_ASSERT_FATAL(t != NULL);
    for (int i = 0; i < P11KMS_RENDER_MAX_PLACEHOLDERS; i++) n += (size_t)snprintf(t + n, cap - n, "${kms:AAAA}\n");
    snprintf(t + n, cap - n, "${secret:a:b}");
    /* 1025 placeholders whose first would fail to decrypt: the limit is seen first. */
    PK_ASSERT_RC(p11kms_render(h, opr, t, strlen(t), &out), P11KMS_ERR_INVALID_ARGUMENT,
                 "render: line 1025: more than 1024 placeholders; the limit is 1024 per template");
    CU_ASSERT_PTR_NULL(out);
    memset(t, 'x', cap);
    PK_ASSERT_RC(p11kms_render(h, opr, t, P11KMS_RENDER_MAX_TEMPLATE_BYTES, &out), P11KMS_OK, NULL);
    CU_ASSERT(out != NULL && p11kms_buf_len(out) == P11KMS_RENDER_MAX_TEMPLATE_BYTES);
    p11kms_buf_free(out);
    out = NULL;
    PK_ASSERT_RC(p11kms_render(h, opr, t, P11KMS_RENDER_MAX_TEMPLATE_BYTES + 1, &out), P11KMS_ERR_INVALID_ARGUMENT,
                 "render: template larger than the limit of 1048576 bytes (1 MiB)");
    CU_ASSERT_PTR_NULL(out);
    free(t);
}

/* ---- store_sync: when changes reach the disk ---- */

static pk_store_stats stats_of(p11kms *hh)
{
    pk_store_stats st;
    memset(&st, 0, sizeof(st));
    hh->store->ops->stats(hh->store, &st);
    return st;
}

/* The fixture's configuration plus `extra` lines, in another file of the same folder. */
static p11kms_config *conf_with(const char *name, const char *extra, char *path, size_t size)
{
    char text[2048];
    p11kms_config *cfg = NULL;
    snprintf(text, sizeof(text), "module = %s\ntoken = %s\npin = %s\nstore = %s\naudit = %s\n%s",
             p11kms_config_get(fx.cfg, "module"), p11kms_config_get(fx.cfg, "token"),
             p11kms_config_get(fx.cfg, "pin"), p11kms_config_get(fx.cfg, "store"),
             p11kms_config_get(fx.cfg, "audit"), extra);
    pk_fixture_write(&fx, name, text, path, size);
    CU_ASSERT_EQUAL_FATAL(p11kms_config_load(path, &cfg), P11KMS_OK);
    return cfg;
}

/* The argv warning's rule: built-in words always, `sensitive_options` from the config. */
static void test_secrets_option_sensitive_public(void)
{
    char path[512];
    p11kms_config *cfg = conf_with("sens.conf", "sensitive_options = api.key, X_Token\n", path, sizeof(path));
    CU_ASSERT_TRUE(p11kms_connection_option_sensitive(NULL, "DB.Password"));
    CU_ASSERT_FALSE(p11kms_connection_option_sensitive(NULL, "url"));
    CU_ASSERT_FALSE(p11kms_connection_option_sensitive(NULL, "my.api.key"));
    CU_ASSERT_TRUE(p11kms_connection_option_sensitive(cfg, "my.API.key"));
    CU_ASSERT_TRUE(p11kms_connection_option_sensitive(cfg, "x_token_2"));
    CU_ASSERT_FALSE(p11kms_connection_option_sensitive(cfg, "url"));
    CU_ASSERT_FALSE(p11kms_connection_option_sensitive(cfg, NULL));
    p11kms_config_free(cfg);
}

static p11kms *open_with(p11kms_config *cfg)
{
    p11kms *hh = NULL;
    PK_ASSERT_RC(p11kms_open(cfg, &hh), P11KMS_OK, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(hh);
    return hh;
}

/* Poll (never a timed assertion): true once every commit up to `ticket` is durable, false after 20 s. */
static bool wait_synced(p11kms *hh, uint64_t ticket)
{
    for (int i = 0; i < 20000; i++) {
        if (stats_of(hh).synced >= ticket) return true;
        usleep(1000);
    }
    return false;
}

static char *put_on(p11kms *hh, const char *ns, const char *v)
{
    char *id = NULL;
    p11kms_secret_map *m = map2("v", v, NULL, NULL);
    PK_ASSERT_RC(p11kms_secret_put(hh, opr, ns, NULL, m, &id), P11KMS_OK, NULL);
    p11kms_secret_map_free(m);
    return id;
}

static void test_secrets_store_sync_config(void)
{
    char path[600], want[800], text[2048];
    const char *bad[] = {"sometimes", "Always"}; /* values are exact: no case folding */
    p11kms_config *cfg = NULL;
    p11kms *hh = NULL;

    /* A bad value is refused when the file is loaded, naming the line. */
    for (size_t i = 0; i < PK_ARRAY_LEN(bad); i++) {
        snprintf(text, sizeof(text), "module = %s\ntoken = %s\npin = %s\nstore = %s\naudit = %s\nstore_sync = %s\n",
                 p11kms_config_get(fx.cfg, "module"), p11kms_config_get(fx.cfg, "token"),
                 p11kms_config_get(fx.cfg, "pin"), p11kms_config_get(fx.cfg, "store"),
                 p11kms_config_get(fx.cfg, "audit"), bad[i]);
        pk_fixture_write(&fx, "sync-bad.conf", text, path, sizeof(path));
        snprintf(want, sizeof(want), "%s:6: store_sync: must be always or batch, not '%s'", path, bad[i]);
        PK_ASSERT_RC(p11kms_config_load(path, &cfg), P11KMS_ERR_CONFIG, want);
        CU_ASSERT_PTR_NULL(cfg);
    }

    cfg = conf_with("sync-always.conf", "store_sync = always\n", path, sizeof(path));
    hh = open_with(cfg);
    p11kms_close(hh);
    p11kms_config_free(cfg);
}

#define SYNC_THREADS 6
#define SYNC_PUTS 15

typedef struct sync_thr {
    int n;
    unsigned fails, late;
} sync_thr;

static void *durable_putter(void *p)
{
    sync_thr *t = p;
    for (int i = 0; i < SYNC_PUTS; i++) {
        char v[32], *id = NULL;
        p11kms_secret_map *m = NULL;
        snprintf(v, sizeof(v), "t%d-%d", t->n, i);
        if (p11kms_secret_map_new(&m) != P11KMS_OK || p11kms_secret_map_set(m, "v", v) != P11KMS_OK ||
            p11kms_secret_put(h, opr, "durable", NULL, m, &id) != P11KMS_OK) {
            t->fails++;
        } else if (pk_store_last_ticket() == 0 || stats_of(h).synced < pk_store_last_ticket()) {
            t->late++; /* returned before its commit was on disk */
        }
        p11kms_secret_map_free(m);
        p11kms_free(id);
    }
    return NULL;
}

/* store_sync = always (the default): each put is durable when it returns, and concurrent puts share fdatasyncs. */
static void test_secrets_store_sync_always_group_commit(void)
{
    pthread_t th[SYNC_THREADS];
    sync_thr args[SYNC_THREADS];
    pk_store_stats before = stats_of(h), after;

    for (int i = 0; i < SYNC_THREADS; i++) {
        args[i] = (sync_thr){i, 0, 0};
        CU_ASSERT_EQUAL_FATAL(pthread_create(&th[i], NULL, durable_putter, &args[i]), 0);
    }
    for (int i = 0; i < SYNC_THREADS; i++) {
        pthread_join(th[i], NULL);
        CU_ASSERT_EQUAL(args[i].fails, 0);
        CU_ASSERT_EQUAL(args[i].late, 0);
    }
    after = stats_of(h);
    CU_ASSERT_TRUE(after.commits - before.commits >= SYNC_THREADS * SYNC_PUTS);
    CU_ASSERT_EQUAL(after.synced, after.commits);
    CU_ASSERT_TRUE(after.syncs - before.syncs < after.commits - before.commits);
    printf("\n  always: %llu commits, %llu fdatasyncs\n", (unsigned long long)(after.commits - before.commits),
           (unsigned long long)(after.syncs - before.syncs));
}

/*
 * store_sync = batch: secret changes return after the commit and the
 * flusher makes them durable; key changes are still durable on return;
 * closing syncs what is left.
 */
static void test_secrets_store_sync_batch(void)
{
    char path[600], *id = NULL, *key = NULL;
    p11kms_config *cfg = conf_with("sync-batch.conf", "store_sync = batch\n", path, sizeof(path));
    p11kms *hb = open_with(cfg);
    p11kms_connection_spec cs;
    p11kms_secret_map *opts = NULL;
    bool returned_unsynced = false;
    uint64_t t = 0;

    /* Key management ignores batch mode. */
    key = make_key_on(hb);
    CU_ASSERT_TRUE(pk_store_last_ticket() > 0 && stats_of(hb).synced >= pk_store_last_ticket());

    /*
     * A put returns before its commit is synced. The flusher waits 2 ms
     * after a commit, so nearly every put shows it; a few tries make a
     * slow or preempted run (valgrind) harmless.
     */
    for (int i = 0; i < 50 && !returned_unsynced; i++) {
        p11kms_free(id);
        id = put_on(hb, "batch", "b");
        t = pk_store_last_ticket();
        returned_unsynced = stats_of(hb).synced < t;
    }
    CU_ASSERT_TRUE(returned_unsynced);
    /* ... and the flusher makes it durable without anyone asking. */
    CU_ASSERT_TRUE(wait_synced(hb, t));

    /* Connection changes are batched too; close syncs whatever the flusher has not. */
    opts = map2("url", "jdbc:x", "password", "pw");
    memset(&cs, 0, sizeof(cs));
    cs.struct_size = sizeof(cs);
    cs.ns = "batch";
    cs.options = opts;
    PK_ASSERT_RC(p11kms_connection_create(hb, opr, "batchconn", &cs), P11KMS_OK, NULL);
    t = pk_store_last_ticket();
    CU_ASSERT_TRUE(t > 0);
    pk_store_flush_close(hb); /* what p11kms_close does first */
    CU_ASSERT_TRUE(stats_of(hb).synced >= t);
    p11kms_close(hb);

    /* Everything is there for another handle. */
    expect_value(id, "v", "b");
    p11kms_secret_map_free(opts);
    p11kms_config_free(cfg);
    p11kms_free(id);
    p11kms_free(key);
}

/*
 * Closing right after opening: the flusher threads may not have run yet
 * when close stops them (a short CLI command does exactly this; they once
 * read a handle field close had already cleared).
 */
static void test_secrets_store_sync_batch_open_close(void)
{
    char path[600];
    p11kms_config *cfg = conf_with("sync-oc.conf", "store_sync = batch\n", path, sizeof(path));
    for (int i = 0; i < 20; i++) p11kms_close(open_with(cfg));
    p11kms_config_free(cfg);
}

/*
 * A forked child that lets go of an inherited batch-mode handle neither
 * joins nor disturbs the parent's flusher: its close frees memory only
 * (destroying a condition variable the parent's thread waits on would
 * block the child for ever). Only that part of p11kms_close runs in the
 * child: the audit log's close blocks a child that way today.
 */
static void test_secrets_store_sync_batch_fork(void)
{
    char path[600], *id = NULL;
    p11kms_config *cfg = conf_with("sync-fork.conf", "store_sync = batch\n", path, sizeof(path));
    p11kms *hb = open_with(cfg);
    pid_t pid;
    int status = -1, waited = 0;

    id = put_on(hb, "batch", "before fork");
    p11kms_free(id);
    fflush(NULL);
    pid = fork();
    CU_ASSERT_TRUE_FATAL(pid >= 0);
    if (pid == 0) {
        /* The store's own close in a child leaks its connection by design (valgrind would count it). */
        pk_store_flush_close(hb);
        _exit(0);
    }
    while (waitpid(pid, &status, WNOHANG) == 0 && waited++ < 20000) usleep(1000);
    if (waited > 20000) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
    }
    CU_ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) fprintf(stderr, "\n  child status %#x\n", status);
    /* The parent's flusher still runs. */
    id = put_on(hb, "batch", "after fork");
    CU_ASSERT_TRUE(wait_synced(hb, pk_store_last_ticket()));
    p11kms_close(hb);
    p11kms_config_free(cfg);
    p11kms_free(id);
}

/* pk_store_set_sync switches an open handle; back to always, nothing is left unsynced. */
static void test_secrets_store_sync_switch(void)
{
    char *id = NULL;
    pk_store_stats st;

    PK_ASSERT_RC(pk_store_set_sync(h, PK_STORE_SYNC_BATCH).code, P11KMS_OK, NULL);
    for (int i = 0; i < 5; i++) {
        id = put_on(h, "switch", "s");
        p11kms_free(id);
    }
    PK_ASSERT_RC(pk_store_set_sync(h, PK_STORE_SYNC_ALWAYS).code, P11KMS_OK, NULL);
    st = stats_of(h);
    CU_ASSERT_EQUAL(st.synced, st.commits);
    id = put_on(h, "switch", "s");
    CU_ASSERT_TRUE(stats_of(h).synced >= pk_store_last_ticket());
    p11kms_free(id);
    PK_ASSERT_RC(pk_store_set_sync(h, (pk_store_sync)7).code, P11KMS_ERR_INVALID_ARGUMENT,
                 "store_sync must be always or batch");
}

int main(void)
{
    CU_pSuite s;
    if (CU_initialize_registry() != CUE_SUCCESS) return 99;
    s = CU_add_suite("secrets", suite_init, suite_clean);
    CU_add_test(s, "test_secrets_store_get_update_remove_list", test_secrets_store_get_update_remove_list);
    CU_add_test(s, "test_secrets_not_found", test_secrets_not_found);
    CU_add_test(s, "test_secrets_map_encoding_and_limits", test_secrets_map_encoding_and_limits);
    CU_add_test(s, "test_secrets_aad_binding_swapped_ciphertext", test_secrets_aad_binding_swapped_ciphertext);
    CU_add_test(s, "test_secrets_row_cache_follows_writers", test_secrets_row_cache_follows_writers);
    CU_add_test(s, "test_secrets_namespace_key_rollover", test_secrets_namespace_key_rollover);
    CU_add_test(s, "test_secrets_thousand_namespaces_bounded_cache", test_secrets_thousand_namespaces_bounded_cache);
    CU_add_test(s, "test_secrets_rotation_rewrap_and_reencrypt", test_secrets_rotation_rewrap_and_reencrypt);
    CU_add_test(s, "test_secrets_policy_namespace_condition", test_secrets_policy_namespace_condition);
    CU_add_test(s, "test_secrets_cache_ttl_uses_entries", test_secrets_cache_ttl_uses_entries);
    CU_add_test(s, "test_secrets_concurrent_updates_threads", test_secrets_concurrent_updates_threads);
    CU_add_test(s, "test_secrets_connections", test_secrets_connections);
    CU_add_test(s, "test_secrets_render", test_secrets_render);
    CU_add_test(s, "test_secrets_render_filters", test_secrets_render_filters);
    CU_add_test(s, "test_secrets_render_binary_kms", test_secrets_render_binary_kms);
    CU_add_test(s, "test_secrets_render_reads_each_secret_once", test_secrets_render_reads_each_secret_once);
    CU_add_test(s, "test_secrets_render_limits", test_secrets_render_limits);
    CU_add_test(s, "test_secrets_store_sync_config", test_secrets_store_sync_config);
    CU_add_test(s, "test_secrets_store_sync_always_group_commit", test_secrets_store_sync_always_group_commit);
    CU_add_test(s, "test_secrets_store_sync_batch", test_secrets_store_sync_batch);
    CU_add_test(s, "test_secrets_store_sync_batch_open_close", test_secrets_store_sync_batch_open_close);
    CU_add_test(s, "test_secrets_store_sync_batch_fork", test_secrets_store_sync_batch_fork);
    CU_add_test(s, "test_secrets_store_sync_switch", test_secrets_store_sync_switch);
    CU_add_test(s, "test_secrets_option_sensitive_public", test_secrets_option_sensitive_public);
    CU_add_test(s, "test_secrets_named", test_secrets_named);
    CU_add_test(s, "test_secrets_rewrap_reports_named", test_secrets_rewrap_reports_named);
    return pk_run_suites();
}
