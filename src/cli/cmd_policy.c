/*
 * p11kms policy eval | lint: what-if evaluation and lint of key policies.
 * Needs no token and no store; docs/POLICY.md describes the output formats.
 *
 * eval exits 0 whenever the evaluation ran: the decision is the output,
 * not an error (it is a what-if tool). lint exits 1 when it has findings.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "json/json_in.h"
#include "util/json_out.h"

#define EVAL_USAGE                                                                                  \
    "policy eval --policy FILE --principal ARN --action ACTION [--resource ARN] [--context K=V]... " \
    "[--request-context KEY=VALUE]... [--time ISO8601|EPOCH] [--batch FILE.jsonl]"
#define LINT_USAGE "policy lint FILE"
/* AWS KMS's key policy limit; a batch is many requests, but still bounded. */
#define POLICY_MAX (32 * 1024)
#define BATCH_MAX (64 * 1024 * 1024)

typedef struct eval_opts {
    const char *policy_path;
    const char *batch_path;
    p11kms_policy_request req;
    p11kms_kv *ctx;
    size_t nctx;
    p11kms_kv *extra;
    size_t nextra;
} eval_opts;

/* Split "K=V" in place into a kv entry; the key must not be empty. */
static bool split_kv(char *arg, p11kms_kv *kv)
{
    char *eq = strchr(arg, '=');
    if (eq == NULL || eq == arg) return false;
    *eq = '\0';
    kv->key = arg;
    kv->value = eq + 1;
    return true;
}

/* The policy engine is pure: the command passes its clock. */
static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int parse_eval_args(pk_cli *cli, int argc, char **argv, eval_opts *o)
{
    const char *v;

    o->req.struct_size = sizeof(o->req);
    o->req.time_ms = now_ms();
    for (int i = 1; i < argc; i++) {
        v = NULL;
        if (pk_cli_common_opt(cli, argc, argv, &i)) {
            continue;
        } else if (pk_cli_opt(argc, argv, &i, "--policy", &v)) {
            o->policy_path = v;
        } else if (pk_cli_opt(argc, argv, &i, "--principal", &v)) {
            o->req.principal = v;
        } else if (pk_cli_opt(argc, argv, &i, "--action", &v)) {
            o->req.action = v;
        } else if (pk_cli_opt(argc, argv, &i, "--resource", &v)) {
            o->req.resource = v;
        } else if (pk_cli_opt(argc, argv, &i, "--batch", &v)) {
            o->batch_path = v;
        } else if (pk_cli_opt(argc, argv, &i, "--time", &v)) {
            if (v != NULL && p11kms_policy_parse_time(v, &o->req.time_ms) != P11KMS_OK)
                return pk_cli_usage("--time: '%s' is not an ISO 8601 date or epoch seconds", v);
        } else if (pk_cli_opt(argc, argv, &i, "--context", &v)) {
            if (v == NULL || !split_kv((char *)v, &o->ctx[o->nctx]))
                return pk_cli_usage("--context needs KEY=VALUE");
            for (size_t k = 0; k < o->nctx; k++) {
                if (strcmp(o->ctx[k].key, o->ctx[o->nctx].key) == 0)
                    return pk_cli_usage("--context: key '%s' given twice", o->ctx[k].key);
            }
            o->nctx++;
        } else if (pk_cli_opt(argc, argv, &i, "--request-context", &v)) {
            if (v == NULL || !split_kv((char *)v, &o->extra[o->nextra]))
                return pk_cli_usage("--request-context needs KEY=VALUE");
            o->nextra++;
        } else {
            return pk_cli_usage("policy eval: unexpected argument '%s'; " EVAL_USAGE, argv[i]);
        }
        if (v == NULL) return pk_cli_usage("%s needs a value", argv[i]);
    }
    if (o->req.principal == NULL) o->req.principal = cli->principal; /* --as / $P11KMS_PRINCIPAL */
    if (o->policy_path == NULL) return pk_cli_usage(EVAL_USAGE);
    if (o->batch_path == NULL && (o->req.principal == NULL || o->req.action == NULL))
        return pk_cli_usage("policy eval needs --principal and --action (or --batch FILE)");
    o->req.context = o->ctx;
    o->req.ncontext = o->nctx;
    o->req.request_context = o->extra;
    o->req.nrequest_context = o->nextra;
    return PK_EXIT_OK;
}

static int load_policy(const char *path, p11kms_policy **out)
{
    pk_buf text = {0};
    p11kms_rc rc;
    int ex = pk_cli_read_file(path, POLICY_MAX, "a key policy is at most 32768 bytes", &text);

    if (ex == PK_EXIT_OK && (rc = p11kms_policy_compile((const char *)text.data, text.len, out)) != P11KMS_OK)
        ex = pk_cli_fail_at(path, rc);
    pk_buf_free(&text);
    return ex;
}

/* One result as a line: text "Allowed: Sid1, Sid2" or the library's JSON {"decision":...,"matched":[...]}. */
static int print_result(const pk_cli *cli, const char *json)
{
    pk_buf out = {0};
    pk_jv *doc = NULL;
    const pk_jv *sids;
    pk_result r;
    int ex;

    if (cli->json) return pk_cli_print_str(json);
    r = pk_json_parse(json, strlen(json), P11KMS_ERR_INTERNAL, &doc);
    sids = pk_jv_get(doc, "matched");
    if (pk_ok(r)) r = pk_buf_append_str(&out, pk_jv_str(pk_jv_get(doc, "decision")));
    for (size_t i = 0; pk_ok(r) && i < pk_jv_size(sids); i++)
        r = pk_buf_printf(&out, "%s%s", i ? ", " : ": ", pk_jv_str(pk_jv_at(sids, i)));
    if (pk_ok(r) && pk_jv_get(doc, "truncated") != NULL) r = pk_buf_append_str(&out, ", ..."); /* only ever true */
    ex = pk_ok(r) ? pk_cli_print_buf(&out) : pk_cli_fail(r.code);
    pk_buf_free(&out);
    pk_json_free(doc);
    return ex;
}

/* Evaluate o's request, overridden by a JSON line when given; at (optional) prefixes a failure. */
static int eval_one(const pk_cli *cli, const p11kms_policy *p, const eval_opts *o, const char *line, size_t len,
                    const char *at)
{
    char *json = NULL;
    p11kms_rc rc = p11kms_policy_eval(p, &o->req, line, len, &json);
    int ex;
    if (rc != P11KMS_OK) return at != NULL ? pk_cli_fail_at(at, rc) : pk_cli_fail(rc);
    ex = print_result(cli, json);
    p11kms_free(json);
    return ex;
}

/*
 * --batch: one JSON request per line (blank lines skipped). Command-line
 * request options are the defaults each line may override.
 */
static int eval_batch(const pk_cli *cli, const p11kms_policy *p, const eval_opts *o)
{
    pk_buf text = {0};
    size_t lineno = 0;
    char *line, *next, at[4200];
    int rc = pk_cli_read_file(o->batch_path, BATCH_MAX, "a --batch file is at most 64 MiB", &text);

    if (rc != PK_EXIT_OK) goto out;
    if (pk_failed(pk_buf_cstr(&text))) {
        rc = pk_cli_fail(P11KMS_ERR_NO_MEMORY);
        goto out;
    }
    for (line = (char *)text.data; line != NULL && rc == PK_EXIT_OK; line = next) {
        size_t len;
        next = strchr(line, '\n');
        len = next != NULL ? (size_t)(next - line) : strlen(line);
        if (next != NULL) next++;
        lineno++;
        if (strspn(line, " \t\r") >= len) continue;
        snprintf(at, sizeof(at), "%s:%zu", o->batch_path, lineno);
        rc = eval_one(cli, p, o, line, len, at);
    }
out:
    pk_buf_free(&text);
    return rc;
}

static int cmd_eval(pk_cli *cli, int argc, char **argv)
{
    eval_opts o;
    p11kms_policy *p = NULL;
    int rc;

    memset(&o, 0, sizeof(o));
    o.ctx = calloc((size_t)argc + 1, sizeof(*o.ctx));
    o.extra = calloc((size_t)argc + 1, sizeof(*o.extra));
    if (o.ctx == NULL || o.extra == NULL) {
        rc = pk_cli_fail(P11KMS_ERR_NO_MEMORY);
        goto out;
    }
    rc = parse_eval_args(cli, argc, argv, &o);
    if (rc != PK_EXIT_OK) goto out;
    rc = load_policy(o.policy_path, &p);
    if (rc != PK_EXIT_OK) goto out;
    rc = o.batch_path != NULL ? eval_batch(cli, p, &o) : eval_one(cli, p, &o, NULL, 0, NULL);
out:
    p11kms_policy_free(p);
    free(o.ctx);
    free(o.extra);
    return rc;
}

/* Text lines "kind: message" (or "no findings"), or the findings as JSON without the error flag. */
static pk_result lint_output(const pk_cli *cli, const pk_jv *items, pk_buf *out)
{
    pk_json_out j;
    size_t n = pk_jv_size(items);

    if (!cli->json) {
        for (size_t i = 0; i < n; i++) {
            const pk_jv *f = pk_jv_at(items, i);
            PK_GUARD(pk_buf_printf(out, "%s%s: %s", i ? "\n" : "", pk_jv_str(pk_jv_get(f, "kind")),
                                   pk_jv_str(pk_jv_get(f, "message"))));
        }
        return n == 0 ? pk_buf_append_str(out, "no findings") : PK_OK;
    }
    pk_jo_init(&j, out);
    pk_jo_arr_begin(&j);
    for (size_t i = 0; i < n; i++) {
        const pk_jv *f = pk_jv_at(items, i), *st = pk_jv_get(f, "statement");
        pk_jo_obj_begin(&j);
        pk_jo_kstr(&j, "kind", pk_jv_str(pk_jv_get(f, "kind")));
        pk_jo_key(&j, "statement");
        if (pk_jv_typeof(st) == PK_JV_INTEGER) {
            pk_jo_int(&j, pk_jv_int(st));
        } else {
            pk_jo_null(&j);
        }
        pk_jo_kstr(&j, "sid", pk_jv_str(pk_jv_get(f, "sid")));
        pk_jo_kstr(&j, "message", pk_jv_str(pk_jv_get(f, "message")));
        pk_jo_obj_end(&j);
    }
    pk_jo_arr_end(&j);
    return pk_jo_result(&j);
}

/* The library's findings for a compiled policy, parsed. */
static p11kms_rc lint_findings(const p11kms_policy *p, pk_jv **doc)
{
    char *json = NULL;
    p11kms_rc rc = p11kms_policy_lint(p, &json);
    if (rc == P11KMS_OK) rc = pk_json_parse(json, strlen(json), P11KMS_ERR_INTERNAL, doc).code;
    p11kms_free(json);
    return rc;
}

static int cmd_lint(pk_cli *cli, int argc, char **argv)
{
    p11kms_policy *p = NULL;
    pk_jv *items = NULL;
    pk_buf out = {0};
    p11kms_rc r;
    int rc;

    const char *path = NULL;

    for (int i = 1; i < argc; i++) {
        if (pk_cli_common_opt(cli, argc, argv, &i)) continue;
        if ((argv[i][0] == '-' && argv[i][1] != '\0') || path != NULL) return pk_cli_usage(LINT_USAGE);
        path = argv[i];
    }
    if (path == NULL) return pk_cli_usage(LINT_USAGE);
    rc = load_policy(path, &p);
    if (rc != PK_EXIT_OK) goto out;
    r = lint_findings(p, &items);
    if (r == P11KMS_OK) r = lint_output(cli, items, &out).code;
    if (r != P11KMS_OK) {
        rc = pk_cli_fail(r);
        goto out;
    }
    rc = pk_cli_print_buf(&out);
    if (rc == PK_EXIT_OK && pk_jv_size(items) > 0) rc = PK_EXIT_FAILED;
out:
    pk_buf_free(&out);
    pk_json_free(items);
    p11kms_policy_free(p);
    return rc;
}

int pk_cmd_policy(pk_cli *cli, int argc, char **argv)
{
    if (argc < 2) return pk_cli_usage("policy eval|lint ...");
    if (strcmp(argv[1], "eval") == 0) return cmd_eval(cli, argc - 1, argv + 1);
    if (strcmp(argv[1], "lint") == 0) return cmd_lint(cli, argc - 1, argv + 1);
    return pk_cli_usage("policy: unknown subcommand '%s' (eval, lint)", argv[1]);
}

void pk_cli_policy_warnings(const char *json, size_t len)
{
    p11kms_policy *p = NULL;
    pk_jv *items = NULL;
    /* Errors are left only when the caller bypassed lint: they are shown as well. */
    if (p11kms_policy_compile(json, len, &p) == P11KMS_OK && lint_findings(p, &items) == P11KMS_OK) {
        for (size_t i = 0; i < pk_jv_size(items); i++) {
            const pk_jv *f = pk_jv_at(items, i);
            fprintf(stderr, "p11kms: warning: %s: %s\n", pk_jv_str(pk_jv_get(f, "kind")),
                    pk_jv_str(pk_jv_get(f, "message")));
        }
    }
    pk_json_free(items);
    p11kms_policy_free(p);
}
