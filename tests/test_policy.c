/*
 * Key-policy engine tests. The evaluation, parse-error and lint expectations
 * live in tests/vectors/policy/ (see its README); this program runs them and
 * adds API-level checks (defaults, lockout, request validation, scalars).
 * Found via $P11KMS_TOP_SRCDIR (set by make check), else ".".
 */
#include "config.h"

#include <CUnit/Basic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json/json_in.h"
#include "policy/policy.h"
#include "policy/policy_impl.h"

static char *read_text(const char *rel, size_t *len)
{
    const char *top = getenv("P11KMS_TOP_SRCDIR");
    char path[1024];
    FILE *f;
    char *buf = NULL;
    long n;

    snprintf(path, sizeof(path), "%s/%s", top != NULL && top[0] != '\0' ? top : ".", rel);
    f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "cannot open %s\n", path);
        return NULL;
    }
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
        buf = malloc((size_t)n + 1);
        if (buf != NULL && fread(buf, 1, (size_t)n, f) == (size_t)n) {
            buf[n] = '\0';
            *len = (size_t)n;
        } else {
            free(buf);
            buf = NULL;
        }
    }
    fclose(f);
    return buf;
}

static pk_jv *load_json(const char *rel)
{
    size_t len = 0;
    char *text = read_text(rel, &len);
    pk_jv *doc = NULL;

    if (text == NULL) return NULL;
    if (pk_failed(pk_json_parse(text, len, P11KMS_ERR_INVALID_ARGUMENT, &doc))) {
        fprintf(stderr, "%s: %s\n", rel, p11kms_last_error());
        doc = NULL;
    }
    free(text);
    return doc;
}

/* Compile a policy given as a JSON value (dumped to text first). */
static pk_result compile_jv(const pk_jv *v, pk_policy **out)
{
    char *text = pk_jv_dump(v);
    pk_result r;
    if (text == NULL) return pk_fail(P11KMS_ERR_NO_MEMORY, "dump");
    r = pk_policy_compile(text, strlen(text), out);
    free(text);
    return r;
}

static pk_policy *compile_str(const char *text)
{
    pk_policy *p = NULL;
    if (pk_failed(pk_policy_compile(text, strlen(text), &p))) {
        fprintf(stderr, "compile failed: %s\n", p11kms_last_error());
        return NULL;
    }
    return p;
}

/* ---- Evaluation vectors ----------------------------------------------- */

static const char *const case_meta[] = {"name", "expect", "sids", NULL};

static bool sids_equal(const pk_policy_result *res, const pk_jv *want)
{
    if (pk_jv_size(want) != res->nsids) return false;
    for (size_t i = 0; i < res->nsids; i++) {
        const char *w = pk_jv_str(pk_jv_at(want, i));
        if (w == NULL || strcmp(w, res->sids[i]) != 0) return false;
    }
    return true;
}

static void print_result(const pk_policy_result *res)
{
    fprintf(stderr, "%s [", pk_decision_name(res->decision));
    for (size_t i = 0; i < res->nsids; i++) fprintf(stderr, "%s\"%s\"", i ? ", " : "", res->sids[i]);
    fprintf(stderr, "]");
}

static size_t run_case(const char *file, const char *gname, const pk_policy *p, const pk_jv *defaults,
                       const pk_jv *c)
{
    pk_policy_request_doc doc = {0};
    pk_policy_result res;
    const char *name = pk_jv_str(pk_jv_get(c, "name"));
    const char *expect = pk_jv_str(pk_jv_get(c, "expect"));
    const pk_jv *sids = pk_jv_get(c, "sids");
    size_t failed = 0;

    if (defaults != NULL && pk_failed(pk_policy_request_from_json(defaults, NULL, &doc))) goto bad;
    if (pk_failed(pk_policy_request_from_json(c, case_meta, &doc))) goto bad;
    if (pk_failed(pk_policy_eval(p, &doc.req, &res))) goto bad;
    if (expect == NULL || strcmp(expect, pk_decision_name(res.decision)) != 0 || sids == NULL ||
        !sids_equal(&res, sids)) {
        char *want = sids != NULL ? pk_jv_dump(sids) : NULL;
        fprintf(stderr, "\n  %s / %s / %s: want %s %s, got ", file, gname, name ? name : "?", expect ? expect : "?",
                want ? want : "?");
        print_result(&res);
        fprintf(stderr, "\n");
        free(want);
        failed = 1;
    }
    pk_policy_request_doc_free(&doc);
    return failed;
bad:
    fprintf(stderr, "\n  %s / %s / %s: %s\n", file, gname, name ? name : "?", p11kms_last_error());
    pk_policy_request_doc_free(&doc);
    return 1;
}

static size_t vector_cases_run;

static void run_eval_file(const char *file)
{
    char rel[256];
    pk_jv *doc;
    const pk_jv *groups;
    size_t failed = 0, ran = 0;

    snprintf(rel, sizeof(rel), "tests/vectors/policy/%s", file);
    doc = load_json(rel);
    CU_ASSERT_PTR_NOT_NULL_FATAL(doc);
    groups = pk_jv_get(doc, "groups");
    CU_ASSERT_FATAL(groups != NULL && pk_jv_size(groups) > 0);
    for (size_t g = 0; g < pk_jv_size(groups); g++) {
        const pk_jv *grp = pk_jv_at(groups, g);
        const char *gname = pk_jv_str(pk_jv_get(grp, "name"));
        const pk_jv *cases = pk_jv_get(grp, "cases");
        pk_policy *p = NULL;
        if (pk_failed(compile_jv(pk_jv_get(grp, "policy"), &p))) {
            fprintf(stderr, "\n  %s / %s: policy does not compile: %s\n", file, gname, p11kms_last_error());
            failed++;
            continue;
        }
        for (size_t i = 0; i < pk_jv_size(cases); i++, ran++) {
            failed += run_case(file, gname ? gname : "?", p, pk_jv_get(grp, "defaults"), pk_jv_at(cases, i));
        }
        pk_policy_free(p);
    }
    vector_cases_run += ran;
    CU_ASSERT(ran > 0);
    CU_ASSERT_EQUAL(failed, 0);
    pk_json_free(doc);
}

#define EVAL_FILE_TEST(fn, file) \
    static void fn(void) { run_eval_file(file); }
EVAL_FILE_TEST(test_vectors_basic, "eval-basic.json")
EVAL_FILE_TEST(test_vectors_action, "eval-action.json")
EVAL_FILE_TEST(test_vectors_resource, "eval-resource.json")
EVAL_FILE_TEST(test_vectors_string, "eval-string.json")
EVAL_FILE_TEST(test_vectors_numeric, "eval-numeric.json")
EVAL_FILE_TEST(test_vectors_date, "eval-date.json")
EVAL_FILE_TEST(test_vectors_bool_ip, "eval-bool-ip.json")
EVAL_FILE_TEST(test_vectors_arn, "eval-arn.json")
EVAL_FILE_TEST(test_vectors_null_keys, "eval-null-keys.json")
EVAL_FILE_TEST(test_vectors_sets, "eval-sets.json")
EVAL_FILE_TEST(test_vectors_scenarios, "eval-scenarios.json")

/* The corpus must stay at least as large as promised in its README. */
static void test_vectors_count(void)
{
    CU_ASSERT(vector_cases_run >= 200);
}

/* ---- Parse errors ------------------------------------------------------ */

static void test_parse_error_vectors(void)
{
    pk_jv *doc = load_json("tests/vectors/policy/invalid.json");
    size_t failed = 0;

    CU_ASSERT_PTR_NOT_NULL_FATAL(doc);
    CU_ASSERT(pk_jv_size(doc) >= 30);
    for (size_t i = 0; i < pk_jv_size(doc); i++) {
        const pk_jv *c = pk_jv_at(doc, i);
        const char *name = pk_jv_str(pk_jv_get(c, "name"));
        const char *want = pk_jv_str(pk_jv_get(c, "error"));
        const char *prefix = pk_jv_str(pk_jv_get(c, "error_prefix"));
        const char *text = pk_jv_str(pk_jv_get(c, "policy_text"));
        char *dumped = NULL;
        pk_policy *p = NULL;
        pk_result r;

        if (text == NULL) text = dumped = pk_jv_dump(pk_jv_get(c, "policy"));
        r = pk_policy_compile(text, strlen(text), &p);
        if (pk_ok(r) || r.code != P11KMS_ERR_POLICY_INVALID ||
            (want != NULL ? strcmp(p11kms_last_error(), want) != 0
                          : prefix == NULL || strncmp(p11kms_last_error(), prefix, strlen(prefix)) != 0)) {
            fprintf(stderr, "\n  invalid.json / %s:\n    want: %s\n    got:  %s (%s)\n", name ? name : "?",
                    want ? want : prefix ? prefix : "?", pk_ok(r) ? "compiled" : p11kms_last_error(), p11kms_rc_name(r.code));
            failed++;
        }
        CU_ASSERT_PTR_NULL(p);
        pk_policy_free(p);
        free(dumped);
    }
    CU_ASSERT_EQUAL(failed, 0);
    pk_json_free(doc);
}

static void test_parse_limits(void)
{
    size_t n = PK_POLICY_MAX_BYTES + 1;
    char *big = malloc(n + 1);
    pk_policy *p = NULL;
    pk_result r;

    CU_ASSERT_PTR_NOT_NULL_FATAL(big);
    memset(big, ' ', n);
    big[n] = '\0';
    r = pk_policy_compile(big, n, &p);
    CU_ASSERT_EQUAL(r.code, P11KMS_ERR_POLICY_INVALID);
    CU_ASSERT_STRING_EQUAL(p11kms_last_error(), "policy is 32769 bytes; the limit is 32768");
    CU_ASSERT_PTR_NULL(p);
    free(big);
    pk_policy_free(NULL);
}

/* ---- Lint -------------------------------------------------------------- */

static void test_lint_vectors(void)
{
    pk_jv *doc = load_json("tests/vectors/policy/lint.json");
    size_t failed = 0;

    CU_ASSERT_PTR_NOT_NULL_FATAL(doc);
    for (size_t i = 0; i < pk_jv_size(doc); i++) {
        const pk_jv *c = pk_jv_at(doc, i);
        const char *name = pk_jv_str(pk_jv_get(c, "name"));
        const pk_jv *want = pk_jv_get(c, "findings");
        pk_lint_report rep = {0};
        pk_policy *p = NULL;
        bool ok;

        if (pk_failed(compile_jv(pk_jv_get(c, "policy"), &p)) || pk_failed(pk_policy_lint(p, &rep))) {
            fprintf(stderr, "\n  lint.json / %s: %s\n", name ? name : "?", p11kms_last_error());
            failed++;
            pk_policy_free(p);
            continue;
        }
        ok = pk_jv_size(want) == rep.n;
        for (size_t k = 0; ok && k < rep.n; k++) {
            const pk_jv *w = pk_jv_at(want, k);
            const char *kind = pk_jv_str(pk_jv_get(w, "kind"));
            const char *msg = pk_jv_str(pk_jv_get(w, "message"));
            ok = kind != NULL && strcmp(kind, pk_lint_kind_name(rep.items[k].kind)) == 0 &&
                 (msg == NULL || strcmp(msg, rep.items[k].message) == 0);
        }
        if (!ok) {
            fprintf(stderr, "\n  lint.json / %s: got %zu finding(s):\n", name ? name : "?", rep.n);
            for (size_t k = 0; k < rep.n; k++)
                fprintf(stderr, "    %s: %s\n", pk_lint_kind_name(rep.items[k].kind), rep.items[k].message);
            failed++;
        }
        pk_lint_report_free(&rep);
        pk_policy_free(p);
    }
    CU_ASSERT_EQUAL(failed, 0);
    pk_json_free(doc);
}

/* ---- Defaults, templates, lockout ---------------------------------------- */

static void test_templates_match_files(void)
{
    static const struct {
        pk_policy_template t;
        const char *file;
    } files[] = {
        {PK_POLICY_TEMPLATE_KEY_ADMINISTRATOR, "tokens/policies/key-administrator.json"},
        {PK_POLICY_TEMPLATE_APPLICATION_OPERATOR, "tokens/policies/application-operator.json"},
    };
    for (size_t i = 0; i < PK_ARRAY_LEN(files); i++) {
        size_t len = 0;
        char *text = read_text(files[i].file, &len);
        CU_ASSERT_PTR_NOT_NULL_FATAL(text);
        CU_ASSERT_STRING_EQUAL(text, pk_policy_template_text(files[i].t));
        CU_ASSERT_PTR_NOT_NULL(strstr(text, PK_POLICY_PRINCIPALS_PLACEHOLDER));
        free(text);
    }
}

#define ADMIN "arn:aws:iam::111122223333:role/key-admin"
#define OPER "arn:aws:iam::111122223333:role/flink-operator"
#define OPER2 "arn:aws:iam::111122223333:role/spark-operator"
#define KEYARN "arn:aws:kms:local:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
/* policy/ reads no clock: the lockout check gets the time (2024-06-15T12:00:00Z). */
#define NOW_MS INT64_C(1718452800000)

static pk_decision decide(const pk_policy *p, const char *principal, const char *action)
{
    pk_policy_request req = {.principal = principal, .action = action, .resource = KEYARN, .now_ms = 0};
    pk_policy_result res;
    if (pk_failed(pk_policy_eval(p, &req, &res))) return (pk_decision)-1;
    return res.decision;
}

static void test_default_policy(void)
{
    const char *admins[] = {ADMIN};
    const char *ops[] = {OPER, OPER2};
    pk_buf out = {0};
    pk_policy *p;
    pk_lint_report rep = {0};

    CU_ASSERT_FATAL(pk_ok(pk_policy_default(admins, 1, ops, 2, &out)));
    CU_ASSERT_FATAL(pk_ok(pk_buf_cstr(&out)));
    CU_ASSERT_PTR_NULL(strstr((char *)out.data, "__PRINCIPALS__"));
    p = compile_str((char *)out.data);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    CU_ASSERT_EQUAL(pk_policy_statement_count(p), 2);
    CU_ASSERT_STRING_EQUAL(pk_policy_id(p), "p11kms-default");
    /* Administrators manage but cannot use; operators use but cannot manage. */
    CU_ASSERT_EQUAL(decide(p, ADMIN, "kms:PutKeyPolicy"), PK_DECISION_ALLOWED);
    CU_ASSERT_EQUAL(decide(p, ADMIN, "kms:ScheduleKeyDeletion"), PK_DECISION_ALLOWED);
    CU_ASSERT_EQUAL(decide(p, ADMIN, "kms:CreateAlias"), PK_DECISION_ALLOWED);
    CU_ASSERT_EQUAL(decide(p, ADMIN, "kms:Decrypt"), PK_DECISION_IMPLICIT_DENY);
    CU_ASSERT_EQUAL(decide(p, ADMIN, "kms:GenerateDataKey"), PK_DECISION_IMPLICIT_DENY);
    CU_ASSERT_EQUAL(decide(p, OPER, "kms:Decrypt"), PK_DECISION_ALLOWED);
    CU_ASSERT_EQUAL(decide(p, OPER2, "kms:ReEncryptTo"), PK_DECISION_ALLOWED);
    CU_ASSERT_EQUAL(decide(p, OPER, "kms:GenerateDataKeyWithoutPlaintext"), PK_DECISION_ALLOWED);
    CU_ASSERT_EQUAL(decide(p, OPER, "kms:DescribeKey"), PK_DECISION_ALLOWED);
    CU_ASSERT_EQUAL(decide(p, OPER, "kms:PutKeyPolicy"), PK_DECISION_IMPLICIT_DENY);
    CU_ASSERT_EQUAL(decide(p, OPER, "kms:DisableKey"), PK_DECISION_IMPLICIT_DENY);
    CU_ASSERT_EQUAL(decide(p, "arn:aws:iam::111122223333:role/other", "kms:Decrypt"), PK_DECISION_IMPLICIT_DENY);
    /* The default policy passes its own lint. */
    CU_ASSERT_FATAL(pk_ok(pk_policy_lint(p, &rep)));
    CU_ASSERT_EQUAL(rep.n, 0);
    pk_lint_report_free(&rep);
    CU_ASSERT_FALSE(pk_policy_would_lock_out(p, ADMIN, KEYARN, NOW_MS));
    CU_ASSERT_TRUE(pk_policy_would_lock_out(p, OPER, KEYARN, NOW_MS));
    pk_policy_free(p);
    pk_buf_free(&out);
}

static void test_default_policy_errors(void)
{
    const char *admins[] = {ADMIN, "111122223333"};
    const char *ops[] = {"arn:aws:iam::111122223333:root"};
    const char *bad[] = {"role/key-admin"};
    pk_buf out = {0};
    pk_result r;
    pk_policy *p;

    r = pk_policy_default(NULL, 0, ops, 1, &out);
    CU_ASSERT_EQUAL(r.code, P11KMS_ERR_INVALID_ARGUMENT);
    CU_ASSERT_STRING_EQUAL(p11kms_last_error(),
                           "default policy: at least one key administrator is required (nobody could manage the key)");
    r = pk_policy_default(admins, 2, ops, 1, &out);
    CU_ASSERT_EQUAL(r.code, P11KMS_ERR_INVALID_ARGUMENT);
    CU_ASSERT_STRING_EQUAL(p11kms_last_error(), "default policy: 111122223333 cannot be both administrator and "
                                                "operator (separation of duties)");
    r = pk_policy_default(bad, 1, NULL, 0, &out);
    CU_ASSERT_EQUAL(r.code, P11KMS_ERR_INVALID_ARGUMENT);
    CU_ASSERT_STRING_EQUAL(p11kms_last_error(), "default policy: Statement[0].Principal.AWS[0]: \"role/key-admin\" "
                                                "is not an account id or an IAM principal ARN");
    CU_ASSERT_EQUAL(out.len, 0);
    /* Operators are optional; an account id is accepted as an administrator. */
    CU_ASSERT_FATAL(pk_ok(pk_policy_default(admins + 1, 1, NULL, 0, &out)));
    CU_ASSERT_FATAL(pk_ok(pk_buf_cstr(&out)));
    p = compile_str((char *)out.data);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    CU_ASSERT_EQUAL(pk_policy_statement_count(p), 1);
    CU_ASSERT_FALSE(pk_policy_would_lock_out(p, "arn:aws:iam::111122223333:root", KEYARN, NOW_MS));
    CU_ASSERT_TRUE(pk_policy_would_lock_out(p, ADMIN, KEYARN, NOW_MS));
    pk_policy_free(p);
    pk_buf_free(&out);
}

static void test_lockout(void)
{
    pk_policy *p = compile_str(
        "{\"Version\":\"2012-10-17\",\"Statement\":["
        "{\"Sid\":\"A\",\"Effect\":\"Allow\",\"Principal\":{\"AWS\":\"" ADMIN "\"},\"Action\":\"kms:*\",\"Resource\":\"*\"},"
        "{\"Sid\":\"Net\",\"Effect\":\"Allow\",\"Principal\":{\"AWS\":\"" OPER "\"},\"Action\":\"kms:PutKeyPolicy\","
        "\"Resource\":\"*\",\"Condition\":{\"IpAddress\":{\"aws:SourceIp\":\"10.0.0.0/8\"}}},"
        "{\"Sid\":\"D\",\"Effect\":\"Deny\",\"Principal\":\"*\",\"Action\":\"kms:PutKeyPolicy\","
        "\"Resource\":\"*\",\"Condition\":{\"StringEquals\":{\"aws:PrincipalArn\":\"" OPER2 "\"}}}]}");
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    CU_ASSERT_FALSE(pk_policy_would_lock_out(p, ADMIN, KEYARN, NOW_MS));
    CU_ASSERT_FALSE(pk_policy_would_lock_out(p, ADMIN, NULL, NOW_MS));
    /* A grant that needs aws:SourceIp does not count. */
    CU_ASSERT_TRUE(pk_policy_would_lock_out(p, OPER, KEYARN, NOW_MS));
    CU_ASSERT_TRUE(pk_policy_would_lock_out(p, OPER2, KEYARN, NOW_MS));
    CU_ASSERT_TRUE(pk_policy_would_lock_out(p, NULL, KEYARN, NOW_MS));
    CU_ASSERT_TRUE(pk_policy_would_lock_out(NULL, ADMIN, KEYARN, NOW_MS));
    pk_policy_free(p);
}

/* The lockout check judges at the time it is given, not the wall clock's. */
static void test_lockout_uses_the_callers_time(void)
{
    pk_policy *p = compile_str(
        "{\"Version\":\"2012-10-17\",\"Statement\":["
        "{\"Effect\":\"Allow\",\"Principal\":{\"AWS\":\"" ADMIN "\"},\"Action\":\"kms:*\",\"Resource\":\"*\","
        "\"Condition\":{\"DateLessThan\":{\"aws:CurrentTime\":\"2030-01-01T00:00:00Z\"}}}]}");
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    CU_ASSERT_FALSE(pk_policy_would_lock_out(p, ADMIN, KEYARN, NOW_MS));
    CU_ASSERT_TRUE(pk_policy_would_lock_out(p, ADMIN, KEYARN, INT64_C(1924992000000))); /* 2031-01-01 */
    pk_policy_free(p);
}

/* ---- Evaluation API ------------------------------------------------------- */

static void test_eval_request_validation(void)
{
    pk_policy *p = compile_str("{\"Version\":\"2012-10-17\",\"Statement\":{\"Effect\":\"Allow\",\"Principal\":\"*\","
                               "\"Action\":\"kms:*\",\"Resource\":\"*\"}}");
    pk_policy_kv extra[] = {{"aws:SourceIp", "10.0.0.1"}, {"aws:PrincipalArn", "x"}};
    pk_policy_kv ctx[] = {{"k", NULL}};
    pk_policy_kv ecextra[] = {{"kms:EncryptionContext:k", "v"}};
    pk_policy_request req = {.principal = OPER, .action = "kms:Encrypt"};
    pk_policy_result res;
    pk_result r;

    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    CU_ASSERT_TRUE(pk_ok(pk_policy_eval(p, &req, &res)));
    CU_ASSERT_EQUAL(res.decision, PK_DECISION_ALLOWED);
    CU_ASSERT_STRING_EQUAL(res.sids[0], "Statement[0]");
    req.extra = extra;
    req.extra_len = 2;
    r = pk_policy_eval(p, &req, &res);
    CU_ASSERT_EQUAL(r.code, P11KMS_ERR_INVALID_ARGUMENT);
    CU_ASSERT_STRING_EQUAL(p11kms_last_error(),
                           "policy request: aws:PrincipalArn is derived from the request and cannot be given");
    req.extra = ecextra;
    req.extra_len = 1;
    r = pk_policy_eval(p, &req, &res);
    CU_ASSERT_EQUAL(r.code, P11KMS_ERR_INVALID_ARGUMENT);
    req.extra_len = 0;
    req.context = ctx;
    req.context_len = 1;
    r = pk_policy_eval(p, &req, &res);
    CU_ASSERT_EQUAL(r.code, P11KMS_ERR_INVALID_ARGUMENT);
    req.context_len = 0;
    req.principal = NULL;
    r = pk_policy_eval(p, &req, &res);
    CU_ASSERT_EQUAL(r.code, P11KMS_ERR_INVALID_ARGUMENT);
    CU_ASSERT_STRING_EQUAL(p11kms_last_error(), "policy request: principal is required");
    req.principal = OPER;
    req.action = "";
    r = pk_policy_eval(p, &req, &res);
    CU_ASSERT_EQUAL(r.code, P11KMS_ERR_INVALID_ARGUMENT);
    pk_policy_free(p);
}

static void test_eval_sid_truncation(void)
{
    pk_buf b = {0};
    pk_policy *p;
    pk_policy_request req = {.principal = OPER, .action = "kms:Decrypt"};
    pk_policy_result res;

    CU_ASSERT_FATAL(pk_ok(pk_buf_append_str(&b, "{\"Version\":\"2012-10-17\",\"Statement\":[")));
    for (int i = 0; i < 10; i++) {
        CU_ASSERT_FATAL(pk_ok(pk_buf_printf(&b, "%s{\"Sid\":\"S%d\",\"Effect\":\"%s\",\"Principal\":\"*\","
                                                "\"Action\":\"kms:Decrypt\",\"Resource\":\"*\"}",
                                            i ? "," : "", i, i == 9 ? "Deny" : "Allow")));
    }
    CU_ASSERT_FATAL(pk_ok(pk_buf_append_str(&b, "]}")));
    CU_ASSERT_FATAL(pk_ok(pk_buf_cstr(&b)));
    p = compile_str((char *)b.data);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    CU_ASSERT_TRUE(pk_ok(pk_policy_eval(p, &req, &res)));
    CU_ASSERT_EQUAL(res.decision, PK_DECISION_EXPLICIT_DENY);
    CU_ASSERT_EQUAL(res.nsids, 1);
    CU_ASSERT_STRING_EQUAL(res.sids[0], "S9");
    CU_ASSERT_FALSE(res.sids_truncated);
    req.action = "kms:Encrypt";
    CU_ASSERT_TRUE(pk_ok(pk_policy_eval(p, &req, &res)));
    CU_ASSERT_EQUAL(res.decision, PK_DECISION_IMPLICIT_DENY);
    CU_ASSERT_EQUAL(res.nsids, 0);
    pk_policy_free(p);
    /* Nine allows: eight reported, the rest flagged. */
    b.len = 0;
    CU_ASSERT_FATAL(pk_ok(pk_buf_append_str(&b, "{\"Version\":\"2012-10-17\",\"Statement\":[")));
    for (int i = 0; i < 9; i++) {
        CU_ASSERT_FATAL(pk_ok(pk_buf_printf(&b, "%s{\"Sid\":\"S%d\",\"Effect\":\"Allow\",\"Principal\":\"*\","
                                                "\"Action\":\"kms:Decrypt\",\"Resource\":\"*\"}",
                                            i ? "," : "", i)));
    }
    CU_ASSERT_FATAL(pk_ok(pk_buf_append_str(&b, "]}")));
    CU_ASSERT_FATAL(pk_ok(pk_buf_cstr(&b)));
    p = compile_str((char *)b.data);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    req.action = "kms:Decrypt";
    CU_ASSERT_TRUE(pk_ok(pk_policy_eval(p, &req, &res)));
    CU_ASSERT_EQUAL(res.decision, PK_DECISION_ALLOWED);
    CU_ASSERT_EQUAL(res.nsids, PK_POLICY_MAX_SIDS);
    CU_ASSERT_TRUE(res.sids_truncated);
    CU_ASSERT_STRING_EQUAL(res.sids[7], "S7");
    pk_policy_free(p);
    pk_buf_free(&b);
}

static void test_eval_names_and_actions(void)
{
    CU_ASSERT_STRING_EQUAL(pk_decision_name(PK_DECISION_ALLOWED), "Allowed");
    CU_ASSERT_STRING_EQUAL(pk_decision_name(PK_DECISION_EXPLICIT_DENY), "ExplicitlyDenied");
    CU_ASSERT_STRING_EQUAL(pk_decision_name(PK_DECISION_IMPLICIT_DENY), "ImplicitlyDenied");
    CU_ASSERT_EQUAL(pk_policy_action_count(), 23);
    CU_ASSERT_TRUE(pk_policy_action_known("kms:Encrypt"));
    CU_ASSERT_TRUE(pk_policy_action_known("KMS:rotatekeyondemand"));
    CU_ASSERT_TRUE(pk_policy_action_known("kms:ListKeys"));
    CU_ASSERT_FALSE(pk_policy_action_known("kms:Sign"));
    CU_ASSERT_FALSE(pk_policy_action_known("kms:Encrypt2"));
    CU_ASSERT_FALSE(pk_policy_action_known("kms:Encryp"));
    CU_ASSERT_FALSE(pk_policy_action_known(NULL));
    CU_ASSERT_EQUAL(pk_policy_action_class(0), PK_ACTION_CRYPTO);
    CU_ASSERT_STRING_EQUAL(pk_lint_kind_name(PK_LINT_OVERLY_PERMISSIVE_CONDITION), "OverlyPermissiveCondition");
}

/* A batch line that names an unknown field or a bad type is refused. */
static void test_request_json(void)
{
    static const char good[] = "{\"principal\":\"" OPER "\",\"action\":\"kms:Decrypt\",\"resource\":null,"
                               "\"context\":{\"app\":\"x\"},\"request_context\":{\"aws:SourceIp\":[\"10.0.0.1\","
                               "\"10.0.0.2\"],\"kms:RequestAlias\":\"alias/a\"},\"time\":\"2024-06-15T12:00:00Z\"}";
    static const char unknown[] = "{\"principa\":\"x\"}";
    static const char badctx[] = "{\"context\":{\"a\":[\"b\"]}}";
    static const char badtime[] = "{\"time\":\"soon\"}";
    pk_policy_request_doc doc = {0};
    pk_result r;

    CU_ASSERT_FATAL(pk_ok(pk_policy_request_parse(good, strlen(good), NULL, &doc)));
    CU_ASSERT_STRING_EQUAL(doc.req.action, "kms:Decrypt");
    CU_ASSERT_PTR_NULL(doc.req.resource);
    CU_ASSERT_EQUAL(doc.req.context_len, 1);
    CU_ASSERT_EQUAL(doc.req.extra_len, 3);
    CU_ASSERT_STRING_EQUAL(doc.req.extra[1].value, "10.0.0.2");
    CU_ASSERT_EQUAL(doc.req.now_ms, INT64_C(1718452800000));
    pk_policy_request_doc_free(&doc);
    r = pk_policy_request_parse(unknown, strlen(unknown), NULL, &doc);
    CU_ASSERT_EQUAL(r.code, P11KMS_ERR_INVALID_ARGUMENT);
    CU_ASSERT_STRING_EQUAL(p11kms_last_error(), "principa: unknown request field");
    pk_policy_request_doc_free(&doc);
    r = pk_policy_request_parse(badctx, strlen(badctx), NULL, &doc);
    CU_ASSERT_EQUAL(r.code, P11KMS_ERR_INVALID_ARGUMENT);
    CU_ASSERT_STRING_EQUAL(p11kms_last_error(), "context.a: must be a string");
    pk_policy_request_doc_free(&doc);
    r = pk_policy_request_parse(badtime, strlen(badtime), NULL, &doc);
    CU_ASSERT_EQUAL(r.code, P11KMS_ERR_INVALID_ARGUMENT);
    pk_policy_request_doc_free(&doc);
}

/* ---- Scalars -------------------------------------------------------------- */

static void test_scalars_dates(void)
{
    static const struct {
        const char *s;
        int64_t ms;
    } good[] = {
        {"1970-01-01T00:00:00Z", 0},
        {"2024-06-15T12:00:00Z", INT64_C(1718452800000)},
        {"2024-06-15T14:00:00+02:00", INT64_C(1718452800000)},
        {"2024-06-15T11:30-00:30", INT64_C(1718452800000)},
        {"2024-06-15T12:00:00.5Z", INT64_C(1718452800500)},
        {"2024-06-15T12:00:00.123456Z", INT64_C(1718452800123)},
        {"2024-06-15", INT64_C(1718409600000)},
        {"2024-06", INT64_C(1717200000000)},
        {"2024-02-29", INT64_C(1709164800000)},
        {"1718452800", INT64_C(1718452800000)},
        {"1718452800.25", INT64_C(1718452800250)},
        {"2024", INT64_C(2024000)},
        {"1969-12-31T23:59:59Z", -1000},
    };
    static const char *const bad[] = {
        "", "2024-13-01", "2023-02-29", "2024-06-15T12:00:00", "2024-06-15 12:00:00Z", "2024-06-15T25:00:00Z",
        "2024-06-15T12:00:00+2:00", "yesterday", "2024-6-15", "1718452800.", "2024-06-15T12:00:60Z", "-5",
    };
    char buf[32];
    for (size_t i = 0; i < PK_ARRAY_LEN(good); i++) {
        int64_t ms = 42;
        CU_ASSERT_TRUE(pol_parse_date(good[i].s, strlen(good[i].s), &ms));
        if (ms != good[i].ms) fprintf(stderr, "\n  date %s: %lld\n", good[i].s, (long long)ms);
        CU_ASSERT_EQUAL(ms, good[i].ms);
    }
    for (size_t i = 0; i < PK_ARRAY_LEN(bad); i++) {
        int64_t ms;
        bool ok = pol_parse_date(bad[i], strlen(bad[i]), &ms);
        if (ok) fprintf(stderr, "\n  date %s parsed\n", bad[i]);
        CU_ASSERT_FALSE(ok);
    }
    pol_format_date(INT64_C(1718452800999), buf, sizeof(buf));
    CU_ASSERT_STRING_EQUAL(buf, "2024-06-15T12:00:00Z");
}

static void test_scalars_numbers_ips(void)
{
    double d;
    pol_cidr net, ip;

    CU_ASSERT_TRUE(pol_parse_number("0.1", 3, &d) && d == 0.1);
    CU_ASSERT_TRUE(pol_parse_number("-12.50", 6, &d) && d == -12.5);
    CU_ASSERT_TRUE(pol_parse_number("0.3", 3, &d) && d == 0.3);
    CU_ASSERT_FALSE(pol_parse_number("1e3", 3, &d));
    CU_ASSERT_FALSE(pol_parse_number(" 1", 2, &d));
    CU_ASSERT_FALSE(pol_parse_number("1.", 2, &d));
    CU_ASSERT_FALSE(pol_parse_number("inf", 3, &d));
    CU_ASSERT_FALSE(pol_parse_number("", 0, &d));
    CU_ASSERT_TRUE(pol_parse_cidr("10.1.2.3/8", 10, &net));
    CU_ASSERT_EQUAL(net.addr[1], 0);
    CU_ASSERT_TRUE(pol_parse_ip("10.255.0.1", 10, &ip));
    CU_ASSERT_TRUE(pol_cidr_contains(&net, &ip));
    CU_ASSERT_TRUE(pol_parse_cidr("0.0.0.0/0", 9, &net));
    CU_ASSERT_TRUE(pol_cidr_contains(&net, &ip));
    CU_ASSERT_TRUE(pol_parse_cidr("2001:db8::/33", 13, &net));
    CU_ASSERT_TRUE(pol_parse_ip("2001:db8:7fff::1", 16, &ip));
    CU_ASSERT_TRUE(pol_cidr_contains(&net, &ip));
    CU_ASSERT_TRUE(pol_parse_ip("2001:db8:8000::1", 16, &ip));
    CU_ASSERT_FALSE(pol_cidr_contains(&net, &ip));
    CU_ASSERT_FALSE(pol_parse_cidr("10.0.0.0/33", 11, &net));
    CU_ASSERT_FALSE(pol_parse_cidr("10.0.0.0/", 9, &net));
    CU_ASSERT_FALSE(pol_parse_ip("10.0.0.0/8", 10, &ip));
    CU_ASSERT_TRUE(pol_glob("a*b?c", 5, "axxbyc", 6, false));
    CU_ASSERT_FALSE(pol_glob("a*b?c", 5, "axxbc", 5, false));
    CU_ASSERT_TRUE(pol_glob("kms:*", 5, "KMS:Decrypt", 11, true));
    CU_ASSERT_TRUE(pol_glob("*", 1, "", 0, false));
    CU_ASSERT_FALSE(pol_glob("", 0, "x", 1, false));
}

/* ---- The public offline calls (p11kms_policy_*) --------------------------- */

static void test_public_policy_calls(void)
{
    const char *doc = "{\"Version\":\"2012-10-17\",\"Statement\":[{\"Sid\":\"Ops\",\"Effect\":\"Allow\","
                      "\"Principal\":{\"AWS\":\"*\"},\"Action\":\"kms:Encrypt\",\"Resource\":\"*\","
                      "\"Condition\":{\"StringEquals\":{\"kms:EncryptionContext:app\":\"x\"}}},"
                      "{\"Effect\":\"Allow\",\"Principal\":{\"AWS\":\"*\"},\"Action\":\"kms:Encrpyt\",\"Resource\":\"*\"}]}";
    p11kms_policy *p = NULL;
    p11kms_kv ctx[] = {{"app", "x"}};
    p11kms_policy_request q;
    char *out = NULL;
    int64_t ms = 1;
    const char *line = "{\"principal\":\"arn:aws:iam::111122223333:user/b\",\"action\":\"kms:Decrypt\"}";

    CU_ASSERT_EQUAL_FATAL(p11kms_policy_compile(doc, strlen(doc), &p), P11KMS_OK);
    memset(&q, 0, sizeof(q));
    q.principal = "arn:aws:iam::111122223333:user/a";
    q.action = "kms:Encrypt";
    q.context = ctx;
    q.ncontext = 1;
    CU_ASSERT_EQUAL(p11kms_policy_eval(p, &q, NULL, 0, &out), P11KMS_ERR_INVALID_ARGUMENT);
    CU_ASSERT_PTR_NULL(out);
    q.struct_size = sizeof(q);
    CU_ASSERT_EQUAL_FATAL(p11kms_policy_eval(p, &q, NULL, 0, &out), P11KMS_OK);
    CU_ASSERT_STRING_EQUAL(out, "{\"decision\":\"Allowed\",\"matched\":[\"Ops\"]}");
    p11kms_free(out);
    /* A JSON request line overrides the fields it names. */
    CU_ASSERT_EQUAL_FATAL(p11kms_policy_eval(p, &q, line, strlen(line), &out), P11KMS_OK);
    CU_ASSERT_STRING_EQUAL(out, "{\"decision\":\"ImplicitlyDenied\",\"matched\":[]}");
    p11kms_free(out);
    q.action = NULL;
    CU_ASSERT_EQUAL(p11kms_policy_eval(p, &q, NULL, 0, &out), P11KMS_ERR_INVALID_ARGUMENT);
    CU_ASSERT_STRING_EQUAL(p11kms_last_error(), "principal and action are required");
    CU_ASSERT_EQUAL_FATAL(p11kms_policy_lint(p, &out), P11KMS_OK);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "\"statement\":1"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "\"error\":true"));
    p11kms_free(out);
    p11kms_policy_free(p);
    CU_ASSERT_EQUAL(p11kms_policy_parse_time("1718452800", &ms), P11KMS_OK);
    CU_ASSERT_EQUAL(ms, 1718452800000LL);
    CU_ASSERT_EQUAL(p11kms_policy_parse_time("noon", &ms), P11KMS_ERR_INVALID_ARGUMENT);
    CU_ASSERT_EQUAL(ms, 0);
    CU_ASSERT_EQUAL(p11kms_policy_compile("{", 1, &p), P11KMS_ERR_POLICY_INVALID);
    CU_ASSERT_PTR_NULL(p);
}

/* ---- Runner --------------------------------------------------------------- */

typedef struct {
    const char *name;
    CU_TestFunc fn;
} test_def;

static int add_suite(const char *name, const test_def *tests, size_t n)
{
    CU_pSuite s = CU_add_suite(name, NULL, NULL);
    if (s == NULL) return -1;
    for (size_t i = 0; i < n; i++) {
        if (CU_add_test(s, tests[i].name, tests[i].fn) == NULL) return -1;
    }
    return 0;
}

int main(void)
{
    static const test_def vectors[] = {
        {"basic", test_vectors_basic},       {"action", test_vectors_action},
        {"resource", test_vectors_resource}, {"string", test_vectors_string},
        {"numeric", test_vectors_numeric},   {"date", test_vectors_date},
        {"bool_ip", test_vectors_bool_ip},   {"arn", test_vectors_arn},
        {"null_keys", test_vectors_null_keys}, {"sets", test_vectors_sets},
        {"scenarios", test_vectors_scenarios}, {"count", test_vectors_count},
    };
    static const test_def parse[] = {
        {"error_vectors", test_parse_error_vectors},
        {"limits", test_parse_limits},
    };
    static const test_def lint[] = {{"lint_vectors", test_lint_vectors}};
    static const test_def defaults[] = {
        {"templates_match_files", test_templates_match_files},
        {"default_policy", test_default_policy},
        {"default_policy_errors", test_default_policy_errors},
        {"lockout", test_lockout},
        {"lockout_uses_the_callers_time", test_lockout_uses_the_callers_time},
    };
    static const test_def api[] = {
        {"request_validation", test_eval_request_validation},
        {"sid_truncation", test_eval_sid_truncation},
        {"names_and_actions", test_eval_names_and_actions},
        {"request_json", test_request_json},
        {"public_calls", test_public_policy_calls},
    };
    static const test_def scalars[] = {
        {"dates", test_scalars_dates},
        {"numbers_ips_globs", test_scalars_numbers_ips},
    };
    unsigned failures;

    if (CU_initialize_registry() != CUE_SUCCESS) return 2;
    if (add_suite("test_policy_vectors", vectors, PK_ARRAY_LEN(vectors)) != 0 ||
        add_suite("test_policy_parse_errors", parse, PK_ARRAY_LEN(parse)) != 0 ||
        add_suite("test_policy_lint", lint, PK_ARRAY_LEN(lint)) != 0 ||
        add_suite("test_policy_defaults", defaults, PK_ARRAY_LEN(defaults)) != 0 ||
        add_suite("test_policy_eval_api", api, PK_ARRAY_LEN(api)) != 0 ||
        add_suite("test_policy_scalars", scalars, PK_ARRAY_LEN(scalars)) != 0) {
        CU_cleanup_registry();
        return 2;
    }
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    failures = CU_get_number_of_failures();
    CU_cleanup_registry();
    return failures != 0;
}
