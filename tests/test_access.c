/*
 * Access keys and SigV4 verification (issue 12) against a real SoftHSM
 * token: the AWS SigV4 test suite's vectors (tests/vectors/sigv4), every
 * refusal, who may manage access keys, and where the secret is not.
 */
#define _GNU_SOURCE
#include "config.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth/sigv4.h"
#include "core/access.h"
#include "core/op.h"
#include "crypto/crypto.h"
#include "lib/fixture.h"
#include "util/codec.h"

#include <pthread.h>

#define ADMIN "arn:aws:iam::111122223333:role/key-admin"
#define OPERATOR "arn:aws:iam::111122223333:role/flink-operator"
#define APP "arn:aws:iam::111122223333:role/app"
#define SUITE_AKID "AKIDEXAMPLE"
#define SUITE_SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define SUITE_TIME_MS (1440938160LL * 1000) /* 2015-08-30T12:36:00Z */

static pk_fixture fx;
static p11kms *h;
static p11kms_caller *admin, *oper;

static int suite_init(void)
{
    const char *admins[] = {ADMIN}, *ops[] = {OPERATOR};
    char *report = NULL;
    pk_fixture_setup(&fx);
    if (p11kms_caller_new(ADMIN, &admin) != P11KMS_OK || p11kms_caller_new(OPERATOR, &oper) != P11KMS_OK) return 1;
    if (p11kms_init(fx.cfg, admin, admins, 1, ops, 1, &report) != P11KMS_OK) {
        fprintf(stderr, "init: %s\n", p11kms_last_error());
        return 1;
    }
    p11kms_free(report);
    if (p11kms_open(fx.cfg, &h) != P11KMS_OK) return 1;
    h->store_recheck_ms = 0;
    /* The suite's credential scope is us-east-1. */
    snprintf(h->region, sizeof(h->region), "us-east-1");
    if (pk_failed(pk_access_key_import(h, OPERATOR, SUITE_AKID, SUITE_SECRET))) {
        fprintf(stderr, "import: %s\n", p11kms_last_error());
        return 1;
    }
    return 0;
}

static int suite_clean(void)
{
    p11kms_close(h);
    p11kms_caller_free(admin);
    p11kms_caller_free(oper);
    pk_fixture_teardown(&fx);
    return 0;
}

/* One request of the suite, parsed from header-signed-request.txt. */
typedef struct vreq {
    char *text;
    char method[16];
    char path[256];
    char query[256];
    p11kms_http_header hdr[16];
    size_t nhdr;
    const char *body;
    char service[32];
    p11kms_sigv4_request req;
} vreq;

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    long n;
    if (f == NULL) return NULL;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = calloc(1, (size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (len) *len = (size_t)n;
    return buf;
}

static void vreq_load(const char *name, vreq *v)
{
    char rel[256], path[512], *line, *next, *ctx, *svc;
    memset(v, 0, sizeof(*v));
    snprintf(rel, sizeof(rel), "tests/vectors/sigv4/%s/context.json", name);
    pk_fixture_src(rel, path, sizeof(path));
    ctx = slurp(path, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ctx);
    svc = strstr(ctx, "\"service\": \"");
    CU_ASSERT_PTR_NOT_NULL_FATAL(svc);
    sscanf(svc + 12, "%31[^\"]", v->service);
    free(ctx);
    snprintf(rel, sizeof(rel), "tests/vectors/sigv4/%s/header-signed-request.txt", name);
    pk_fixture_src(rel, path, sizeof(path));
    v->text = slurp(path, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(v->text);
    /* Request line: METHOD PATH[?QUERY] HTTP/1.1 (the path may hold a space). */
    next = strchr(v->text, '\n');
    *next++ = '\0';
    line = v->text;
    *strrchr(line, ' ') = '\0';
    *strchr(line, ' ') = '\0';
    snprintf(v->method, sizeof(v->method), "%s", line);
    line += strlen(line) + 1;
    if (strchr(line, '?')) {
        snprintf(v->query, sizeof(v->query), "%s", strchr(line, '?') + 1);
        *strchr(line, '?') = '\0';
    }
    snprintf(v->path, sizeof(v->path), "%s", line);
    while (next && *next != '\n' && *next != '\0') {
        char *colon;
        line = next;
        next = strchr(line, '\n');
        if (next) *next++ = '\0';
        colon = strchr(line, ':');
        *colon = '\0';
        v->hdr[v->nhdr].name = line;
        v->hdr[v->nhdr++].value = colon + 1;
    }
    v->body = next && *next == '\n' ? next + 1 : "";
    v->req.struct_size = sizeof(v->req);
    v->req.method = v->method;
    v->req.path = v->path;
    v->req.query = v->query;
    v->req.headers = v->hdr;
    v->req.nheaders = v->nhdr;
    v->req.body = (const uint8_t *)v->body;
    v->req.body_len = strlen(v->body);
    v->req.service = v->service;
    v->req.now_ms = SUITE_TIME_MS;
}

static void vreq_free(vreq *v) { free(v->text); }

static p11kms_http_header *authz(vreq *v)
{
    for (size_t i = 0; i < v->nhdr; i++)
        if (strcmp(v->hdr[i].name, "Authorization") == 0) return &v->hdr[i];
    CU_FAIL_FATAL("no Authorization");
    return NULL;
}

static void test_access_aws_suite_vectors_verify(void)
{
    static const char *const names[] = {
        "get-vanilla", "post-vanilla", "post-x-www-form-urlencoded", "get-header-value-trim",
        "get-vanilla-query-order-key-case", "get-vanilla-utf8-query", "get-utf8", "get-unreserved",
        "get-vanilla-query-unreserved", "get-space-normalized", "get-slashes-normalized",
        "get-slash-dot-slash-normalized", "get-relative-relative-normalized", "get-slash-pointless-dot-normalized",
        "get-header-key-duplicate", "get-header-value-order", "post-header-key-sort"};
    for (size_t i = 0; i < PK_ARRAY_LEN(names); i++) {
        vreq v;
        p11kms_caller *c = NULL;
        char *akid = NULL;
        vreq_load(names[i], &v);
        p11kms_rc rc = p11kms_sigv4_verify(h, &v.req, &c, &akid);
        if (rc != P11KMS_OK) fprintf(stderr, "\n  %s: %s: %s\n", names[i], p11kms_rc_name(rc), p11kms_last_error());
        CU_ASSERT_EQUAL(rc, P11KMS_OK);
        if (rc == P11KMS_OK) {
            CU_ASSERT_STRING_EQUAL(c->principal, OPERATOR);
            CU_ASSERT_STRING_EQUAL(akid, SUITE_AKID);
            CU_ASSERT_EQUAL(c->auth, P11KMS_AUTH_SIGV4);
        }
        p11kms_caller_free(c);
        p11kms_free(akid);
        vreq_free(&v);
    }
}

/* Verify get-vanilla after `edit` changed it; expect want and the exact detail. */
static void refused(void (*edit)(vreq *), int64_t now_shift, p11kms_rc want, const char *detail)
{
    vreq v;
    p11kms_caller *c = (p11kms_caller *)1;
    vreq_load("get-vanilla", &v);
    if (edit) edit(&v);
    v.req.now_ms += now_shift;
    PK_ASSERT_RC(p11kms_sigv4_verify(h, &v.req, &c, NULL), want, detail);
    if (want == P11KMS_OK)
        p11kms_caller_free(c);
    else
        CU_ASSERT_PTR_NULL(c);
    vreq_free(&v);
}

static char tampered[512];
static void tamper(vreq *v)
{
    p11kms_http_header *a = authz(v);
    snprintf(tampered, sizeof(tampered), "%s", a->value);
    char *last = tampered + strlen(tampered) - 1;
    *last = *last == '0' ? '1' : '0';
    a->value = tampered;
}

static char unknown[512];
static void unknown_key(vreq *v)
{
    p11kms_http_header *a = authz(v);
    const char *p = strstr(a->value, SUITE_AKID);
    snprintf(unknown, sizeof(unknown), "%.*sAKIDUNKNOWN%s", (int)(p - a->value), a->value, p + strlen(SUITE_AKID));
    a->value = unknown;
}

static char unsigned_host[512];
static void host_unsigned(vreq *v)
{
    (void)v;
    snprintf(unsigned_host, sizeof(unsigned_host),
             "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
             "SignedHeaders=x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
    authz(v)->value = unsigned_host;
}

static void wrong_service(vreq *v) { v->req.service = "kms"; }


static void date_mismatch(vreq *v)
{
    for (size_t i = 0; i < v->nhdr; i++)
        if (strcmp(v->hdr[i].name, "X-Amz-Date") == 0) v->hdr[i].value = "20150831T123600Z";

}

static void test_access_body_must_match_content_sha256(void)
{
    vreq v;
    p11kms_caller *c = NULL;
    vreq_load("post-x-www-form-urlencoded", &v);
    v.req.body = (const uint8_t *)"Param1=value2";
    PK_ASSERT_RC(p11kms_sigv4_verify(h, &v.req, &c, NULL), P11KMS_ERR_SIGNATURE_INVALID,
                 "x-amz-content-sha256 does not match the SHA-256 of the request body");
    vreq_free(&v);
}

static void test_access_refusals_use_aws_error_names(void)
{
    refused(date_mismatch, 24 * 3600 * 1000 - 60000, P11KMS_ERR_SIGNATURE_INVALID,
            "the date in the credential scope (20150830) does not match x-amz-date");
    refused(tamper, 0, P11KMS_ERR_SIGNATURE_INVALID,
            "the request signature does not match the signature p11kms calculated; check the secret access key "
            "and the signing method");
    refused(unknown_key, 0, P11KMS_ERR_UNRECOGNIZED_CLIENT, "the access key id AKIDUNKNOWN is not known to p11kms");
    refused(NULL, 6 * 60 * 1000, P11KMS_ERR_REQUEST_EXPIRED,
            "the request time 20150830T123600Z is more than 5 minutes from the server's time");
    refused(NULL, -6 * 60 * 1000, P11KMS_ERR_REQUEST_EXPIRED, NULL);
    refused(NULL, 4 * 60 * 1000, P11KMS_OK, NULL);
    refused(host_unsigned, 0, P11KMS_ERR_INCOMPLETE_SIGNATURE,
            "the host header must be signed (add host to SignedHeaders)");
    refused(wrong_service, 0, P11KMS_ERR_SIGNATURE_INVALID, "the credential is scoped to service service, not kms");
    CU_ASSERT_EQUAL(p11kms_exit_code(P11KMS_ERR_SIGNATURE_INVALID), 4);
    CU_ASSERT_STRING_EQUAL(p11kms_rc_name(P11KMS_ERR_REQUEST_EXPIRED), "P11KMS_ERR_REQUEST_EXPIRED");
}

static void test_access_disabled_key_is_unrecognized_even_when_cached(void)
{
    refused(NULL, 0, P11KMS_OK, NULL); /* fills the signing-key cache */
    PK_ASSERT_RC(p11kms_access_key_set_enabled(h, oper, SUITE_AKID, 0), P11KMS_ERR_ACCESS_DENIED, NULL);
    PK_ASSERT_RC(p11kms_access_key_set_enabled(h, admin, SUITE_AKID, 0), P11KMS_OK, NULL);
    refused(NULL, 0, P11KMS_ERR_UNRECOGNIZED_CLIENT, "the access key AKIDEXAMPLE is disabled");
    PK_ASSERT_RC(p11kms_access_key_set_enabled(h, admin, SUITE_AKID, 1), P11KMS_OK, NULL);
    refused(NULL, 0, P11KMS_OK, NULL);
}

static bool file_has(const char *path, const char *needle)
{
    size_t n = 0;
    char *buf = slurp(path, &n);
    bool found = buf != NULL && memmem(buf, n, needle, strlen(needle)) != NULL;
    free(buf);
    return found;
}

static void test_access_create_only_by_admins_and_secret_stays_in_hsm(void)
{
    char *id = NULL, *id2 = NULL, *id3 = NULL, *json = NULL, path[512], wal[512];
    p11kms_buf *sec = NULL, *sec2 = NULL, *sec3 = NULL;
    char secret[64];
    pk_keyid tid;
    bool readable = true, exists = true;

    PK_ASSERT_RC(p11kms_access_key_create(h, oper, APP, &id, &sec), P11KMS_ERR_ACCESS_DENIED, NULL);
    CU_ASSERT_PTR_NOT_NULL(strstr(p11kms_last_error(), "is not authorized to perform kms:PutKeyPolicy on key"));
    CU_ASSERT_PTR_NULL(id);
    PK_ASSERT_RC(p11kms_access_key_create(h, admin, "not-an-arn", &id, &sec), P11KMS_ERR_INVALID_ARGUMENT, NULL);
    PK_ASSERT_RC(p11kms_access_key_create(h, admin, APP, &id, &sec), P11KMS_OK, NULL);
    CU_ASSERT_FATAL(id != NULL && sec != NULL);
    CU_ASSERT_EQUAL(strlen(id), 20);
    CU_ASSERT_EQUAL(strncmp(id, "AKIA", 4), 0);
    CU_ASSERT_EQUAL(p11kms_buf_len(sec), 40);
    memcpy(secret, p11kms_buf_data(sec), 40);
    secret[40] = '\0';
    /* The token object is sensitive: its value cannot be read back. */
    pk_access_key_token_id(id, &tid);
    CU_ASSERT(pk_ok(pk_p11_secret_value_readable(h->p11, &tid, &readable)));
    CU_ASSERT_FALSE(readable);
    /* Two per principal. */
    PK_ASSERT_RC(p11kms_access_key_create(h, admin, APP, &id2, &sec2), P11KMS_OK, NULL);
    PK_ASSERT_RC(p11kms_access_key_create(h, admin, APP, &id3, &sec3), P11KMS_ERR_LIMIT,
                 "arn:aws:iam::111122223333:role/app already has 2 access keys; delete one before creating another");
    PK_ASSERT_RC(p11kms_access_key_list(h, admin, APP, &json), P11KMS_OK, NULL);
    CU_ASSERT_PTR_NOT_NULL(strstr(json, id));
    CU_ASSERT_PTR_NOT_NULL(strstr(json, "\"Status\":\"Active\""));
    CU_ASSERT_PTR_NULL(strstr(json, SUITE_AKID));
    p11kms_free(json);
    PK_ASSERT_RC(p11kms_access_key_list(h, oper, NULL, &json), P11KMS_ERR_ACCESS_DENIED, NULL);
    /* Delete removes the record and the token object. */
    PK_ASSERT_RC(p11kms_access_key_delete(h, admin, id2), P11KMS_OK, NULL);
    CU_ASSERT(pk_ok(pk_p11_key_exists(h->p11, &tid, &exists)));
    CU_ASSERT_TRUE(exists);
    pk_access_key_token_id(id2, &tid);
    CU_ASSERT(pk_ok(pk_p11_key_exists(h->p11, &tid, &exists)));
    CU_ASSERT_FALSE(exists);
    PK_ASSERT_RC(p11kms_access_key_delete(h, admin, id2), P11KMS_ERR_NOT_FOUND, NULL);
    /* The secret is nowhere on disk: store (and its log) or audit trail. */
    snprintf(path, sizeof(path), "%s/p11kms.db", fx.dir);
    snprintf(wal, sizeof(wal), "%s/p11kms.db-wal", fx.dir);
    CU_ASSERT_TRUE(file_has(path, id) || file_has(wal, id)); /* the search would find it */
    CU_ASSERT_FALSE(file_has(path, secret));
    CU_ASSERT_FALSE(file_has(wal, secret));
    snprintf(path, sizeof(path), "%s/audit.log", fx.dir);
    CU_ASSERT_TRUE(file_has(path, "\"action\":\"p11kms:CreateAccessKey\""));
    CU_ASSERT_FALSE(file_has(path, secret));
    CU_ASSERT_FALSE(file_has(path, SUITE_SECRET));
    p11kms_free(id);
    p11kms_free(id2);
    p11kms_buf_free(sec);
    p11kms_buf_free(sec2);
    memset(secret, 0, sizeof(secret));
}

static void test_access_audit_record_carries_auth(void)
{
    vreq v;
    p11kms_caller *c = NULL;
    char *json = NULL, path[512];
    vreq_load("get-vanilla", &v);
    CU_ASSERT_EQUAL_FATAL(p11kms_sigv4_verify(h, &v.req, &c, NULL), P11KMS_OK);
    CU_ASSERT_EQUAL(p11kms_caller_set_auth(c, P11KMS_AUTH_SIGV4, SUITE_AKID, "req-test-1"), P11KMS_OK);
    CU_ASSERT_EQUAL(p11kms_key_list(h, c, &json), P11KMS_OK);
    p11kms_free(json);
    snprintf(path, sizeof(path), "%s/audit.log", fx.dir);
    CU_ASSERT_TRUE(file_has(path, "\"auth\":{\"method\":\"sigv4\",\"id\":\"AKIDEXAMPLE\",\"request_id\":\"req-test-1\"}"));
    /* Refusals are on record too. */
    refused(tamper, 0, P11KMS_ERR_SIGNATURE_INVALID, NULL);
    CU_ASSERT_TRUE(file_has(path, "\"action\":\"p11kms:Authenticate\""));
    CU_ASSERT_TRUE(file_has(path, "\"result\":\"P11KMS_ERR_SIGNATURE_INVALID\""));
    CU_ASSERT_TRUE(file_has(path, "\"principal\":\"" OPERATOR "\",\"action\":\"p11kms:Authenticate\""));
    refused(unknown_key, 0, P11KMS_ERR_UNRECOGNIZED_CLIENT, NULL);
    CU_ASSERT_TRUE(file_has(path, "\"principal\":null,\"action\":\"p11kms:Authenticate\""));
    CU_ASSERT_TRUE(file_has(path, "\"auth\":{\"method\":\"sigv4\",\"id\":\"AKIDUNKNOWN\"}"));
    PK_ASSERT_RC(p11kms_caller_set_auth(c, (p11kms_auth_method)42, "x", NULL), P11KMS_ERR_INVALID_ARGUMENT,
                 "unknown authentication method 42");
    p11kms_caller_free(c);
    /* The Unix socket's peer credentials. */
    CU_ASSERT_EQUAL_FATAL(p11kms_caller_new(OPERATOR, &c), P11KMS_OK);
    CU_ASSERT_EQUAL(p11kms_caller_set_auth(c, P11KMS_AUTH_PEER_UID, "uid=1001 gid=1001", NULL), P11KMS_OK);
    CU_ASSERT_EQUAL(p11kms_key_list(h, c, &json), P11KMS_OK);
    p11kms_free(json);
    CU_ASSERT_TRUE(file_has(path, "\"auth\":{\"method\":\"peer-uid\",\"id\":\"uid=1001 gid=1001\"}"));
    p11kms_caller_free(c);
    vreq_free(&v);
}

static void test_access_key_arn_rotation_and_update_alias(void)
{
    const char *admins[] = {ADMIN}, *ops[] = {OPERATOR};
    p11kms_key_spec spec;
    char *k1 = NULL, *k2 = NULL, *arn = NULL, *json = NULL, want[200];

    memset(&spec, 0, sizeof(spec));
    spec.struct_size = sizeof(spec);
    spec.admins = admins;
    spec.nadmins = 1;
    spec.operators = ops;
    spec.noperators = 1;
    CU_ASSERT_EQUAL_FATAL(p11kms_key_create(h, admin, &spec, &k1), P11KMS_OK);
    CU_ASSERT_EQUAL_FATAL(p11kms_key_create(h, admin, &spec, &k2), P11KMS_OK);
    CU_ASSERT_EQUAL(p11kms_key_arn(h, k1, &arn), P11KMS_OK);
    snprintf(want, sizeof(want), "arn:aws:kms:us-east-1:%s:key/%s", h->account, k1);
    CU_ASSERT_STRING_EQUAL(arn, want);
    p11kms_free(arn);
    PK_ASSERT_RC(p11kms_key_arn(h, "nope", &arn), P11KMS_ERR_INVALID_ARGUMENT,
                 "a key ARN is made from a key id (a UUID)");

    PK_ASSERT_RC(p11kms_key_set_rotation(h, oper, k1, 365), P11KMS_ERR_ACCESS_DENIED, NULL);
    PK_ASSERT_RC(p11kms_key_set_rotation(h, admin, k1, 30), P11KMS_ERR_INVALID_ARGUMENT,
                 "the rotation period must be 90 to 2560 days");
    PK_ASSERT_RC(p11kms_key_set_rotation(h, admin, k1, 365), P11KMS_OK, NULL);
    CU_ASSERT_EQUAL(p11kms_key_describe(h, admin, k1, &json), P11KMS_OK);
    CU_ASSERT_PTR_NOT_NULL(strstr(json, "\"RotationPeriodInDays\":365"));
    CU_ASSERT_PTR_NOT_NULL(strstr(json, "\"KeyRotationEnabled\":true"));
    p11kms_free(json);
    PK_ASSERT_RC(p11kms_key_set_rotation(h, admin, k1, 0), P11KMS_OK, NULL);
    CU_ASSERT_EQUAL(p11kms_key_describe(h, admin, k1, &json), P11KMS_OK);
    CU_ASSERT_PTR_NOT_NULL(strstr(json, "\"KeyRotationEnabled\":false"));
    p11kms_free(json);

    CU_ASSERT_EQUAL(p11kms_alias_create(h, admin, "alias/moving", k1), P11KMS_OK);
    PK_ASSERT_RC(p11kms_alias_update(h, oper, "alias/moving", k2), P11KMS_ERR_ACCESS_DENIED, NULL);
    PK_ASSERT_RC(p11kms_alias_update(h, admin, "alias/absent", k2), P11KMS_ERR_NOT_FOUND, NULL);
    PK_ASSERT_RC(p11kms_alias_update(h, admin, "alias/moving", k2), P11KMS_OK, NULL);
    CU_ASSERT_EQUAL(p11kms_alias_list(h, admin, k2, &json), P11KMS_OK);
    CU_ASSERT_PTR_NOT_NULL(strstr(json, "alias/moving"));
    p11kms_free(json);
    CU_ASSERT_EQUAL(p11kms_alias_list(h, admin, k1, &json), P11KMS_OK);
    CU_ASSERT_PTR_NULL(strstr(json, "alias/moving"));
    p11kms_free(json);
    p11kms_free(k1);
    p11kms_free(k2);
}

/* RFC 4231 test case 2: the host-side half of the signing-key chain. */
static void test_access_hmac_sha256_known_answer(void)
{
    uint8_t mac[PK_HMAC_SHA256_LEN];
    char hex[2 * PK_HMAC_SHA256_LEN + 1];
    const char data[] = "what do ya want for nothing?";
    CU_ASSERT_FATAL(pk_ok(pk_hmac_sha256((const uint8_t *)"Jefe", 4, data, strlen(data), mac)));
    pk_hex_encode(mac, sizeof(mac), hex);
    CU_ASSERT_STRING_EQUAL(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

static void *verify_loop(void *arg)
{
    const char *name = arg;
    vreq v;
    long failures = 0;
    vreq_load(name, &v);
    for (int i = 0; i < 200; i++) {
        p11kms_caller *c = NULL;
        if (p11kms_sigv4_verify(h, &v.req, &c, NULL) != P11KMS_OK) failures++;
        p11kms_caller_free(c);
        /* Now and then drop the cache under the other threads' feet. */
        if (i % 50 == 0) pk_sigv4_cache_clear(h);
    }
    vreq_free(&v);
    return (void *)failures;
}

static void test_access_verify_is_thread_safe(void)
{
    static const char *const names[] = {"get-vanilla", "post-vanilla", "get-utf8", "get-header-value-trim"};
    pthread_t t[4];
    for (int i = 0; i < 4; i++) CU_ASSERT_EQUAL_FATAL(pthread_create(&t[i], NULL, verify_loop, (void *)names[i]), 0);
    for (int i = 0; i < 4; i++) {
        void *failures = NULL;
        pthread_join(t[i], &failures);
        CU_ASSERT_EQUAL((long)failures, 0);
    }
}

/* Sign a request in software with a secret p11kms_access_key_create returned; the token must agree. */
static void test_access_created_key_verifies_a_client_signature(void)
{
    static const char *const chain[] = {"20150830", "us-east-1", "service", "aws4_request"};
    char *id = NULL, authz_value[512], hex[65];
    p11kms_buf *sec = NULL;
    p11kms_caller *c = NULL;
    uint8_t k[32], next[32], sig[32];
    pk_secbuf key0 = {0};
    pk_sigv4_auth a;
    pk_buf canon = {0}, sts = {0};
    vreq v;

    PK_ASSERT_RC(p11kms_access_key_create(h, admin, "arn:aws:iam::111122223333:role/client", &id, &sec), P11KMS_OK,
                 NULL);
    CU_ASSERT_FATAL(id != NULL);
    vreq_load("post-vanilla", &v);
    snprintf(authz_value, sizeof(authz_value),
             "AWS4-HMAC-SHA256 Credential=%s/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, "
             "Signature=%064d", id, 0);
    authz(&v)->value = authz_value;
    CU_ASSERT_FATAL(pk_ok(pk_sigv4_parse_authorization(authz_value, &a)));
    CU_ASSERT_FATAL(pk_ok(pk_sigv4_canonical_request(&v.req, &a, true, &canon)));
    CU_ASSERT_FATAL(pk_ok(pk_sigv4_string_to_sign(&a, "20150830T123600Z", &canon, &sts)));
    CU_ASSERT_FATAL(pk_ok(pk_secbuf_append(&key0, "AWS4", 4)));
    CU_ASSERT_FATAL(pk_ok(pk_secbuf_append(&key0, p11kms_buf_data(sec), p11kms_buf_len(sec))));
    CU_ASSERT_FATAL(pk_ok(pk_hmac_sha256(key0.data, key0.len, chain[0], strlen(chain[0]), k)));
    for (int i = 1; i < 4; i++) {
        CU_ASSERT_FATAL(pk_ok(pk_hmac_sha256(k, 32, chain[i], strlen(chain[i]), next)));
        memcpy(k, next, 32);
    }
    CU_ASSERT_FATAL(pk_ok(pk_hmac_sha256(k, 32, sts.data, sts.len, sig)));
    pk_hex_encode(sig, 32, hex);
    memcpy(strstr(authz_value, "Signature=") + 10, hex, 64);
    PK_ASSERT_RC(p11kms_sigv4_verify(h, &v.req, &c, NULL), P11KMS_OK, NULL);
    if (c != NULL) CU_ASSERT_STRING_EQUAL(c->principal, "arn:aws:iam::111122223333:role/client");
    p11kms_caller_free(c);
    pk_secbuf_free(&key0);
    pk_buf_free(&canon);
    pk_buf_free(&sts);
    vreq_free(&v);
    p11kms_buf_free(sec);
    p11kms_free(id);
}

/* The report knows access-key objects, but still flags one whose record is gone (a crash mid-delete). */
static void test_access_report_flags_only_orphaned_objects(void)
{
    char *json = NULL;
    size_t nf = 99;
    pk_keyid tid;
    PK_ASSERT_RC(p11kms_report_keys(h, admin, &json, &nf), P11KMS_OK, NULL);
    CU_ASSERT_PTR_NULL(strstr(json, "UnknownTokenObject"));
    p11kms_free(json);
    pk_access_key_token_id("AKIAORPHANORPHAN2345", &tid);
    CU_ASSERT_FATAL(pk_ok(pk_p11_secret_create(h->p11, &tid, "p11kms:access:AKIAORPHANORPHAN2345",
                                               pk_bytes_of("AWS4x", 5))));
    PK_ASSERT_RC(p11kms_report_keys(h, admin, &json, &nf), P11KMS_OK, NULL);
    CU_ASSERT_PTR_NOT_NULL(strstr(json, "UnknownTokenObject"));
    CU_ASSERT_PTR_NOT_NULL(strstr(json, "p11kms:access:AKIAORPHANORPHAN2345"));
    CU_ASSERT_EQUAL(nf, 1);
    p11kms_free(json);
    CU_ASSERT(pk_ok(pk_p11_destroy_key(h->p11, &tid)));
}

/* Records with "auth" and p11kms:Authenticate refusals keep the chain verifiable. */
/* The daemon's request id is in the record of a refusal and of the verified caller's operations. */
static void test_access_request_id_reaches_the_audit_record(void)
{
    vreq v;
    p11kms_caller *c = NULL;
    char *json = NULL, path[512];
    snprintf(path, sizeof(path), "%s/audit.log", fx.dir);
    vreq_load("get-vanilla", &v);
    tamper(&v);
    v.req.request_id = "req-refused-7";
    PK_ASSERT_RC(p11kms_sigv4_verify(h, &v.req, &c, NULL), P11KMS_ERR_SIGNATURE_INVALID, NULL);
    CU_ASSERT_TRUE(file_has(path, "\"auth\":{\"method\":\"sigv4\",\"id\":\"AKIDEXAMPLE\",\"request_id\":\"req-refused-7\"}"));
    vreq_free(&v);
    vreq_load("get-vanilla", &v);
    v.req.request_id = "req-ok-8";
    CU_ASSERT_EQUAL_FATAL(p11kms_sigv4_verify(h, &v.req, &c, NULL), P11KMS_OK);
    CU_ASSERT_EQUAL(p11kms_key_list(h, c, &json), P11KMS_OK);
    CU_ASSERT_TRUE(file_has(path, "\"auth\":{\"method\":\"sigv4\",\"id\":\"AKIDEXAMPLE\",\"request_id\":\"req-ok-8\"}"));
    p11kms_free(json);
    p11kms_caller_free(c);
    /* A caller built before the field existed passes the shorter size: accepted, no request id. */
    v.req.struct_size = offsetof(p11kms_sigv4_request, request_id);
    CU_ASSERT_EQUAL(p11kms_sigv4_verify(h, &v.req, &c, NULL), P11KMS_OK);
    p11kms_caller_free(c);
    v.req.struct_size = offsetof(p11kms_sigv4_request, now_ms);
    PK_ASSERT_RC(p11kms_sigv4_verify(h, &v.req, &c, NULL), P11KMS_ERR_INVALID_ARGUMENT,
                 "p11kms_sigv4_verify: bad arguments");
    vreq_free(&v);
}

/* The health probe reaches the token through an open handle. */
static void test_access_token_check_answers(void)
{
    PK_ASSERT_RC(p11kms_token_check(h), P11KMS_OK, NULL);
    PK_ASSERT_RC(p11kms_token_check(NULL), P11KMS_ERR_INVALID_ARGUMENT, "p11kms_token_check: no handle");
}

static void test_access_audit_chain_verifies(void)
{
    pk_audit_report rep;
    char path[512], **files = NULL;
    size_t n = 0;
    snprintf(path, sizeof(path), "%s/audit.log", fx.dir);
    memset(&rep, 0, sizeof(rep));
    CU_ASSERT_TRUE_FATAL(pk_ok(pk_audit_series(path, &files, &n)));
    CU_ASSERT_TRUE_FATAL(n > 0);
    CU_ASSERT_TRUE(pk_ok(pk_audit_verify(h->p11, NULL, (const char *const *)files, n, PK_AUDIT_VERIFY_ALLOW_UNSEALED,
                                         &rep)));
    CU_ASSERT_EQUAL(rep.problem, PK_AUDIT_OK);
    if (rep.problem != PK_AUDIT_OK) fprintf(stderr, "\n  audit: %s\n", rep.detail);
    CU_ASSERT_TRUE(rep.records > 10);
    pk_audit_series_free(files, n);
}

/*
 * A connect = handle never acts for a caller it is given: the daemon names
 * the caller, so a caller passed in (as a p11kmsd in front of another would
 * pass its own callers) is refused rather than replaced by this host's identity.
 */
static void test_access_connect_handle_refuses_a_caller(void)
{
    char path[512];
    FILE *f;
    p11kms_config *cfg = NULL;
    p11kms *remote = NULL;
    snprintf(path, sizeof(path), "%s/client.conf", fx.dir);
    f = fopen(path, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fprintf(f, "connect = unix:%s/no-daemon.sock\n", fx.dir);
    fclose(f);
    CU_ASSERT_EQUAL_FATAL(p11kms_config_load(path, &cfg), P11KMS_OK);
    CU_ASSERT_EQUAL_FATAL(p11kms_open(cfg, &remote), P11KMS_OK);
    PK_ASSERT_RC(p11kms_key_enable(remote, oper, "alias/p11kms/default"), P11KMS_ERR_INVALID_ARGUMENT,
                 "with connect = the daemon names the caller: pass no caller (NULL), not this host's guess");
    p11kms_close(remote);
    p11kms_config_free(cfg);
}

int main(void)
{
    CU_TestInfo tests[] = {
        {"test_access_aws_suite_vectors_verify", test_access_aws_suite_vectors_verify},
        {"test_access_connect_handle_refuses_a_caller", test_access_connect_handle_refuses_a_caller},
        {"test_access_refusals_use_aws_error_names", test_access_refusals_use_aws_error_names},
        {"test_access_body_must_match_content_sha256", test_access_body_must_match_content_sha256},
        {"test_access_disabled_key_is_unrecognized_even_when_cached",
         test_access_disabled_key_is_unrecognized_even_when_cached},
        {"test_access_create_only_by_admins_and_secret_stays_in_hsm",
         test_access_create_only_by_admins_and_secret_stays_in_hsm},
        {"test_access_audit_record_carries_auth", test_access_audit_record_carries_auth},
        {"test_access_key_arn_rotation_and_update_alias", test_access_key_arn_rotation_and_update_alias},
        {"test_access_hmac_sha256_known_answer", test_access_hmac_sha256_known_answer},
        {"test_access_verify_is_thread_safe", test_access_verify_is_thread_safe},
        {"test_access_created_key_verifies_a_client_signature", test_access_created_key_verifies_a_client_signature},
        {"test_access_report_flags_only_orphaned_objects", test_access_report_flags_only_orphaned_objects},
        {"test_access_request_id_reaches_the_audit_record", test_access_request_id_reaches_the_audit_record},
        {"test_access_token_check_answers", test_access_token_check_answers},
        {"test_access_audit_chain_verifies", test_access_audit_chain_verifies},
        CU_TEST_INFO_NULL,
    };
    CU_SuiteInfo suites[] = {{"test_access", suite_init, suite_clean, NULL, NULL, tests}, CU_SUITE_INFO_NULL};
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    if (CU_register_suites(suites) != CUE_SUCCESS) return 1;
    return pk_run_suites();
}
