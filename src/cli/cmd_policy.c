/*
 * p11kms policy eval | lint: what-if evaluation and lint of key policies.
 * Needs no token and no store; docs/POLICY.md describes the output formats.
 *
 * eval exits 0 whenever the evaluation ran: the decision is the output,
 * not an error (it is a what-if tool). lint exits 1 when it has findings.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "policy/policy.h"
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
    pk_policy_request req;
    pk_policy_kv *ctx;
    size_t nctx;
    pk_policy_kv *extra;
    size_t nextra;
} eval_opts;

/* Split "K=V" in place into a kv entry; the key must not be empty. */
static bool split_kv(char *arg, pk_policy_kv *kv)
{
    char *eq = strchr(arg, '=');
    if (eq == NULL || eq == arg) return false;
    *eq = '\0';
    kv->key = arg;
    kv->value = eq + 1;
    return true;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int parse_eval_args(pk_cli *cli, int argc, char **argv, eval_opts *o)
{
    const char *v;

    o->req.now_ms = now_ms();
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
            if (v != NULL && !pk_policy_parse_time(v, &o->req.now_ms))
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
    o->req.context_len = o->nctx;
    o->req.extra = o->extra;
    o->req.extra_len = o->nextra;
    return PK_EXIT_OK;
}

static int load_policy(const char *path, pk_policy **out)
{
    pk_buf text = {0};
    pk_result r;
    int rc = pk_cli_read_file(path, POLICY_MAX, "a key policy is at most 32768 bytes", &text);

    if (rc != PK_EXIT_OK) {
        pk_buf_free(&text);
        return rc;
    }
    r = pk_policy_compile((const char *)text.data, text.len, out);
    pk_buf_free(&text);
    if (pk_failed(r)) return pk_cli_fail(pk_annotate(r, "%s: ", path).code);
    return PK_EXIT_OK;
}

/* One result as a line: text "Allowed: Sid1, Sid2" or JSON {"decision":...,"matched":[...]}. */
static int print_result(const pk_cli *cli, const pk_policy_result *res)
{
    pk_buf out = {0};
    pk_result r = PK_OK;
    int rc;

    if (cli->json) {
        pk_json_out j;
        pk_jo_init(&j, &out);
        pk_jo_obj_begin(&j);
        pk_jo_kstr(&j, "decision", pk_decision_name(res->decision));
        pk_jo_key(&j, "matched");
        pk_jo_arr_begin(&j);
        for (size_t i = 0; i < res->nsids; i++) pk_jo_str(&j, res->sids[i]);
        pk_jo_arr_end(&j);
        if (res->sids_truncated) pk_jo_kbool(&j, "truncated", true);
        pk_jo_obj_end(&j);
        r = pk_jo_result(&j);
    } else {
        r = pk_buf_append_str(&out, pk_decision_name(res->decision));
        for (size_t i = 0; pk_ok(r) && i < res->nsids; i++) r = pk_buf_printf(&out, "%s%s", i ? ", " : ": ", res->sids[i]);
        if (pk_ok(r) && res->sids_truncated) r = pk_buf_append_str(&out, ", ...");
    }
    if (pk_failed(r)) {
        pk_buf_free(&out);
        return pk_cli_fail(r.code);
    }
    rc = pk_cli_print_buf(&out);
    pk_buf_free(&out);
    return rc;
}

static int eval_one(const pk_cli *cli, const pk_policy *p, const pk_policy_request *req)
{
    pk_policy_result res;
    pk_result r = pk_policy_eval(p, req, &res);
    if (pk_failed(r)) return pk_cli_fail(r.code);
    return print_result(cli, &res);
}

/*
 * --batch: one JSON request per line (blank lines skipped). Command-line
 * request options are the defaults each line may override.
 */
static int eval_batch(const pk_cli *cli, const pk_policy *p, const eval_opts *o)
{
    pk_buf text = {0};
    pk_policy_request_doc doc = {0};
    size_t lineno = 0;
    char *line, *next;
    int rc = pk_cli_read_file(o->batch_path, BATCH_MAX, "a --batch file is at most 64 MiB", &text);

    if (rc != PK_EXIT_OK) goto out;
    if (pk_failed(pk_buf_cstr(&text))) {
        rc = pk_cli_fail(P11KMS_ERR_NO_MEMORY);
        goto out;
    }
    for (line = (char *)text.data; line != NULL && rc == PK_EXIT_OK; line = next) {
        pk_result r;
        size_t len;
        next = strchr(line, '\n');
        len = next != NULL ? (size_t)(next - line) : strlen(line);
        if (next != NULL) next++;
        lineno++;
        if (strspn(line, " \t\r") >= len) continue;
        pk_policy_request_doc_free(&doc);
        doc.req = o->req;
        r = pk_policy_request_parse(line, len, NULL, &doc);
        if (pk_ok(r) && (doc.req.principal == NULL || doc.req.action == NULL))
            r = pk_fail(P11KMS_ERR_INVALID_ARGUMENT, "principal and action are required");
        if (pk_failed(r)) {
            rc = pk_cli_fail(pk_annotate(r, "%s:%zu: ", o->batch_path, lineno).code);
            goto out;
        }
        rc = eval_one(cli, p, &doc.req);
    }
out:
    pk_policy_request_doc_free(&doc);
    pk_buf_free(&text);
    return rc;
}

static int cmd_eval(pk_cli *cli, int argc, char **argv)
{
    eval_opts o;
    pk_policy *p = NULL;
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
    rc = o.batch_path != NULL ? eval_batch(cli, p, &o) : eval_one(cli, p, &o.req);
out:
    pk_policy_free(p);
    free(o.ctx);
    free(o.extra);
    return rc;
}

static pk_result lint_output(const pk_cli *cli, const pk_lint_report *rep, pk_buf *out)
{
    pk_json_out j;

    if (!cli->json) {
        for (size_t i = 0; i < rep->n; i++) {
            PK_GUARD(pk_buf_printf(out, "%s%s: %s", i ? "\n" : "", pk_lint_kind_name(rep->items[i].kind),
                                   rep->items[i].message));
        }
        return rep->n == 0 ? pk_buf_append_str(out, "no findings") : PK_OK;
    }
    pk_jo_init(&j, out);
    pk_jo_arr_begin(&j);
    for (size_t i = 0; i < rep->n; i++) {
        const pk_lint_finding *f = &rep->items[i];
        pk_jo_obj_begin(&j);
        pk_jo_kstr(&j, "kind", pk_lint_kind_name(f->kind));
        pk_jo_key(&j, "statement");
        if (f->statement >= 0) {
            pk_jo_int(&j, f->statement);
        } else {
            pk_jo_null(&j);
        }
        pk_jo_kstr(&j, "sid", f->sid);
        pk_jo_kstr(&j, "message", f->message);
        pk_jo_obj_end(&j);
    }
    pk_jo_arr_end(&j);
    return pk_jo_result(&j);
}

static int cmd_lint(pk_cli *cli, int argc, char **argv)
{
    pk_policy *p = NULL;
    pk_lint_report rep = {0};
    pk_buf out = {0};
    pk_result r;
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
    r = pk_policy_lint(p, &rep);
    if (pk_ok(r)) r = lint_output(cli, &rep, &out);
    if (pk_failed(r)) {
        rc = pk_cli_fail(r.code);
        goto out;
    }
    rc = pk_cli_print_buf(&out);
    if (rc == PK_EXIT_OK && rep.n > 0) rc = PK_EXIT_FAILED;
out:
    pk_buf_free(&out);
    pk_lint_report_free(&rep);
    pk_policy_free(p);
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
    pk_policy *p = NULL;
    pk_lint_report rep = {0};
    /* Errors are left only when the caller bypassed lint: they are shown as well. */
    if (pk_ok(pk_policy_compile(json, len, &p)) && pk_ok(pk_policy_lint(p, &rep))) {
        for (size_t i = 0; i < rep.n; i++) {
            fprintf(stderr, "p11kms: warning: %s: %s\n", pk_lint_kind_name(rep.items[i].kind), rep.items[i].message);
        }
    }
    pk_lint_report_free(&rep);
    pk_policy_free(p);
}
