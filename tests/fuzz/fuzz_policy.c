/*
 * Key policies: compile (src/policy/policy_parse.c and friends), lint, and
 * evaluate. The input is the policy document, a NUL byte, then request
 * lines: principal, action, resource, and "key=value" lines (context keys
 * first, "!" before an extra key such as aws:SourceIp).
 */
#include "config.h"

#include "fuzz/fuzz.h"
#include "policy/policy.h"

#define MAX_KV 16

static void evaluate(const pk_policy *p, char *req)
{
    pk_policy_kv ctx[MAX_KV], extra[MAX_KV];
    pk_policy_request rq = {.principal = "arn:aws:iam::111122223333:role/app", .action = "kms:Encrypt",
                            .now_ms = 1718452800000};
    pk_policy_result res;
    char *line, *save = NULL;
    int i = 0;

    rq.context = ctx;
    rq.extra = extra;
    for (line = strtok_r(req, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save), i++) {
        char *eq = strchr(line, '=');
        if (i == 0) rq.principal = line;
        else if (i == 1) rq.action = line;
        else if (i == 2) rq.resource = line;
        else if (eq != NULL && line[0] == '!' && rq.extra_len < MAX_KV) {
            *eq = '\0';
            extra[rq.extra_len++] = (pk_policy_kv){line + 1, eq + 1};
        } else if (eq != NULL && rq.context_len < MAX_KV) {
            *eq = '\0';
            ctx[rq.context_len++] = (pk_policy_kv){line, eq + 1};
        } else {
            int64_t ms;
            (void)pk_policy_parse_time(line, &ms);
            (void)pk_principal_arn_valid(line);
        }
    }
    if (pk_ok(pk_policy_eval(p, &rq, &res)) && res.nsids > PK_POLICY_MAX_SIDS) abort();
    pk_error_clear();
    (void)pk_policy_would_lock_out(p, rq.principal, rq.resource, rq.now_ms);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *doc;
    size_t doc_len;
    pk_policy *p = NULL;
    pk_lint_report lint;
    char *req;

    fz_split(&data, &size, &doc, &doc_len, 0);
    if (doc_len > PK_POLICY_MAX_BYTES) return 0;
    if (pk_failed(pk_policy_compile((const char *)doc, doc_len, &p))) {
        pk_error_clear();
        return 0;
    }
    memset(&lint, 0, sizeof(lint));
    if (pk_ok(pk_policy_lint(p, &lint))) pk_lint_report_free(&lint);
    pk_error_clear();
    req = fz_strndup(data, size);
    evaluate(p, req);
    free(req);
    pk_policy_free(p);
    return 0;
}
