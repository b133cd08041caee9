/* p11kms report keys | report policies [--json]: what the compliance scripts run. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "cli/cli_session.h"
#include "json/json_in.h"

static void print_findings(const pk_jv *findings)
{
    for (size_t i = 0; i < pk_jv_size(findings); i++) {
        const pk_jv *f = pk_jv_at(findings, i);
        printf("  FINDING %-20s %s\n", pk_jv_str(pk_jv_get(f, "kind")), pk_jv_str(pk_jv_get(f, "message")));
    }
}

static void keys_text(const char *json, size_t nfindings)
{
    pk_jv *doc = NULL;
    const pk_jv *keys, *unknown;
    if (pk_failed(pk_json_parse(json, strlen(json), P11KMS_ERR_INTERNAL, &doc))) return;
    keys = pk_jv_get(doc, "keys");
    unknown = pk_jv_get(doc, "unknown_objects");
    printf("key report for token '%s': %zu keys, %zu unknown token objects, %zu findings\n",
           pk_jv_str(pk_jv_get(doc, "token")), pk_jv_size(keys), pk_jv_size(unknown), nfindings);
    for (size_t i = 0; i < pk_jv_size(keys); i++) {
        const pk_jv *k = pk_jv_at(keys, i);
        const pk_jv *vs = pk_jv_get(k, "Versions");
        size_t safe = 0;
        for (size_t v = 0; v < pk_jv_size(vs); v++) {
            const pk_jv *x = pk_jv_at(vs, v);
            if (pk_jv_typeof(pk_jv_get(x, "CKA_SENSITIVE")) == PK_JV_TRUE &&
                pk_jv_typeof(pk_jv_get(x, "CKA_EXTRACTABLE")) == PK_JV_FALSE &&
                pk_jv_typeof(pk_jv_get(x, "CKA_NEVER_EXTRACTABLE")) == PK_JV_TRUE)
                safe++;
        }
        printf("  %s  %-15s v%-3lld rotation %4lld d  last %s%s  token objects %zu/%zu sensitive+never-extractable%s%s\n",
               pk_jv_str(pk_jv_get(k, "KeyId")), pk_jv_str(pk_jv_get(k, "KeyState")),
               (long long)pk_jv_int(pk_jv_get(k, "CurrentKeyVersion")),
               (long long)pk_jv_int(pk_jv_get(k, "RotationPeriodInDays")),
               pk_jv_str(pk_jv_get(k, "LastRotationDate")),
               pk_jv_typeof(pk_jv_get(k, "RotationOverdue")) == PK_JV_TRUE ? " (OVERDUE)" : "", safe,
               pk_jv_size(vs), pk_jv_get(k, "DeletionDate") ? "  deletion " : "",
               pk_jv_get(k, "DeletionDate") ? pk_jv_str(pk_jv_get(k, "DeletionDate")) : "");
    }
    print_findings(pk_jv_get(doc, "findings"));
    pk_json_free(doc);
}

static void policies_text(const char *json, size_t nfindings)
{
    pk_jv *doc = NULL;
    const pk_jv *keys;
    if (pk_failed(pk_json_parse(json, strlen(json), P11KMS_ERR_INTERNAL, &doc))) return;
    keys = pk_jv_get(doc, "keys");
    printf("policy report: %zu keys, %zu findings\n", pk_jv_size(keys), nfindings);
    for (size_t i = 0; i < pk_jv_size(keys); i++) {
        const pk_jv *k = pk_jv_at(keys, i), *f = pk_jv_get(k, "findings");
        printf("  %s%s: %s\n", pk_jv_str(pk_jv_get(k, "KeyId")),
               pk_jv_typeof(pk_jv_get(k, "ServiceKey")) == PK_JV_TRUE ? " (service key)" : "",
               pk_jv_size(f) ? "" : "no findings");
        for (size_t x = 0; x < pk_jv_size(f); x++)
            printf("    FINDING %-28s %s\n", pk_jv_str(pk_jv_get(pk_jv_at(f, x), "kind")),
                   pk_jv_str(pk_jv_get(pk_jv_at(f, x), "message")));
    }
    pk_json_free(doc);
}

int pk_cmd_report(pk_cli *cli, int argc, char **argv)
{
    const char *sub = argc >= 2 ? argv[1] : "";
    bool keys = strcmp(sub, "keys") == 0;
    pk_cli_session s;
    char *json = NULL;
    size_t n = 0;
    p11kms_rc rc;
    int ex;

    if (!keys && strcmp(sub, "policies") != 0) return pk_cli_usage("report keys | report policies");
    for (int i = 2; i < argc; i++)
        if (!pk_cli_common_opt(cli, argc, argv, &i)) return pk_cli_usage("report %s: unexpected '%s'", sub, argv[i]);
    if ((ex = pk_cli_session_open(cli, &s)) != PK_EXIT_OK) return ex;
    rc = keys ? p11kms_report_keys(s.h, s.caller, &json, &n) : p11kms_report_policies(s.h, s.caller, &json, &n);
    if (rc != P11KMS_OK) {
        ex = pk_cli_fail(rc);
    } else {
        if (cli->json)
            ex = pk_cli_print_str(json);
        else if (keys)
            keys_text(json, n);
        else
            policies_text(json, n);
        /* Findings are the point of a compliance report: cron sees them in the exit code. */
        if (ex == PK_EXIT_OK && n > 0) ex = PK_EXIT_FAILED;
    }
    p11kms_free(json);
    pk_cli_session_close(&s);
    return ex;
}
