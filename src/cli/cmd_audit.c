/* p11kms audit verify [FILE...] | audit rotate | audit files */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit/audit.h"
#include "cli/cli.h"
#include "conf/conf.h"
#include "p11/p11.h"
#include "util/json_out.h"

/* The configured log path, or a usage-level failure naming the config file. */
static int audit_path(const p11kms_config *cfg, const char **path)
{
    *path = pk_conf_path_value(cfg, "audit");
    if (*path == NULL)
        return pk_cli_fail(pk_fail(P11KMS_ERR_CONFIG, "%s: no `audit` path set", p11kms_config_path(cfg)).code);
    return PK_EXIT_OK;
}

static int open_token(const p11kms_config *cfg, pk_p11 **p11)
{
    pk_p11_opts o;
    pk_result r;

    memset(&o, 0, sizeof(o));
    o.module = p11kms_config_get(cfg, "module");
    o.token_uri = p11kms_config_get(cfg, "token");
    o.cfg = cfg;
    o.pool_size = 1;
    o.require_login = true;
    o.read_write = true;
    r = pk_p11_open(&o, p11);
    return pk_ok(r) ? PK_EXIT_OK : pk_cli_fail(r.code);
}

static void report_counts(pk_json_out *j, const pk_audit_report *rep)
{
    pk_jo_kint(j, "files", (int64_t)rep->files);
    pk_jo_kint(j, "records", (int64_t)rep->records);
    pk_jo_kint(j, "seals", (int64_t)rep->seals);
    pk_jo_kint(j, "last_seq", (int64_t)rep->last_seq);
    pk_jo_kint(j, "last_sealed_seq", (int64_t)rep->last_sealed_seq);
    pk_jo_kint(j, "unsealed", (int64_t)rep->unsealed);
    pk_jo_kint(j, "unreadable", (int64_t)rep->unreadable);
    pk_jo_kstr(j, "head", rep->head);
}

static int print_report_json(const pk_audit_report *rep)
{
    pk_buf b = {0};
    pk_json_out j;
    int ex;

    pk_jo_init(&j, &b);
    pk_jo_obj_begin(&j);
    pk_jo_kbool(&j, "ok", rep->problem == PK_AUDIT_OK);
    if (rep->problem != PK_AUDIT_OK) {
        pk_jo_kstr(&j, "problem", pk_audit_problem_name(rep->problem));
        pk_jo_kstr(&j, "file", rep->file);
        pk_jo_kint(&j, "line", (int64_t)rep->line);
        pk_jo_kint(&j, "seq", (int64_t)rep->seq);
        pk_jo_kstr(&j, "detail", rep->detail);
    }
    report_counts(&j, rep);
    pk_jo_obj_end(&j);
    ex = pk_ok(pk_jo_result(&j)) ? pk_cli_print_buf(&b) : pk_cli_fail(P11KMS_ERR_NO_MEMORY);
    pk_buf_free(&b);
    if (ex != PK_EXIT_OK) return ex;
    return rep->problem == PK_AUDIT_OK ? PK_EXIT_OK : PK_EXIT_FAILED;
}

static int print_report_text(const pk_audit_report *rep)
{
    if (rep->problem != PK_AUDIT_OK) {
        fprintf(stderr, "p11kms: audit: %s:%" PRIu64 ": seq %" PRIu64 ": %s: %s\n", rep->file, rep->line, rep->seq,
                pk_audit_problem_name(rep->problem), rep->detail);
        return PK_EXIT_FAILED;
    }
    printf("audit log verified: %zu file%s, %" PRIu64 " records, %" PRIu64 " seals, last seq %" PRIu64
           ", head %s",
           rep->files, rep->files == 1 ? "" : "s", rep->records, rep->seals, rep->last_seq, rep->head);
    if (rep->unsealed > 0) printf(", %" PRIu64 " unsealed at the end (allowed)", rep->unsealed);
    printf("\n");
    return PK_EXIT_OK;
}

static int audit_verify(pk_cli *cli, int argc, char **argv)
{
    p11kms_config *cfg = NULL;
    pk_p11 *p11 = NULL;
    const char **given = NULL;
    char **series = NULL;
    size_t ngiven = 0, nseries = 0;
    unsigned flags = 0;
    pk_audit_report rep;
    pk_result r;
    int ex;

    given = calloc((size_t)argc, sizeof(*given));
    if (given == NULL) return pk_cli_fail(P11KMS_ERR_NO_MEMORY);
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--allow-unsealed") == 0) flags |= PK_AUDIT_VERIFY_ALLOW_UNSEALED;
        else if (pk_cli_common_opt(cli, argc, argv, &i)) continue;
        else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            free(given);
            return pk_cli_usage("audit verify: unexpected '%s'", argv[i]);
        } else given[ngiven++] = argv[i];
    }
    if ((ex = pk_cli_load_config(cli, &cfg)) != PK_EXIT_OK) goto out;
    if (ngiven == 0) {
        const char *path;
        if ((ex = audit_path(cfg, &path)) != PK_EXIT_OK) goto out;
        r = pk_audit_series(path, &series, &nseries);
        if (pk_failed(r)) {
            ex = pk_cli_fail(r.code);
            goto out;
        }
        if (nseries == 0) {
            fprintf(stderr, "p11kms: audit: no audit log at %s\n", path);
            ex = PK_EXIT_FAILED;
            goto out;
        }
    }
    if ((ex = open_token(cfg, &p11)) != PK_EXIT_OK) goto out;
    r = ngiven > 0 ? pk_audit_verify(p11, NULL, given, ngiven, flags, &rep)
                   : pk_audit_verify(p11, NULL, (const char *const *)series, nseries, flags, &rep);
    if (pk_failed(r)) {
        ex = pk_cli_fail(r.code);
        goto out;
    }
    ex = cli->json ? print_report_json(&rep) : print_report_text(&rep);
out:
    pk_p11_close(p11);
    pk_audit_series_free(series, nseries);
    free(given);
    p11kms_config_free(cfg);
    return ex;
}

static int audit_rotate(pk_cli *cli, int argc, char **argv)
{
    p11kms_config *cfg = NULL;
    pk_p11 *p11 = NULL;
    pk_audit *a = NULL;
    pk_audit_event ev;
    char rotated[4096] = "";
    pk_result r = PK_OK, rc;
    int ex;

    for (int i = 2; i < argc; i++)
        if (!pk_cli_common_opt(cli, argc, argv, &i)) return pk_cli_usage("audit rotate: unexpected '%s'", argv[i]);
    if ((ex = pk_cli_load_config(cli, &cfg)) != PK_EXIT_OK) return ex;
    if ((ex = open_token(cfg, &p11)) != PK_EXIT_OK) goto out;
    PK_TRY(pk_audit_open_conf(cfg, p11, &a));
    /* The rotation is itself an auditable act; it lands in the file being closed. */
    memset(&ev, 0, sizeof(ev));
    ev.principal = cli->principal;
    ev.action = "RotateAuditLog";
    ev.result = P11KMS_OK;
    PK_TRY(pk_audit_write(a, &ev, NULL));
    PK_TRY(pk_audit_rotate(a, rotated, sizeof(rotated)));
out:
    rc = pk_audit_close(a);
    if (pk_ok(r)) r = rc;
    if (pk_failed(r)) ex = pk_cli_fail(r.code);
    else if (ex == PK_EXIT_OK && cli->json) {
        pk_buf b = {0};
        pk_json_out j;
        pk_jo_init(&j, &b);
        pk_jo_obj_begin(&j);
        pk_jo_kstr(&j, "path", pk_conf_path_value(cfg, "audit"));
        pk_jo_kstr(&j, "rotated", rotated);
        pk_jo_obj_end(&j);
        ex = pk_ok(pk_jo_result(&j)) ? pk_cli_print_buf(&b) : pk_cli_fail(P11KMS_ERR_NO_MEMORY);
        pk_buf_free(&b);
    } else if (ex == PK_EXIT_OK) {
        printf("rotated %s to %s\n", pk_conf_path_value(cfg, "audit"), rotated);
    }
    pk_p11_close(p11);
    p11kms_config_free(cfg);
    return ex;
}

/* The files of the configured series, oldest first (for scripts such as audit-report). */
static int audit_files(pk_cli *cli, int argc, char **argv)
{
    p11kms_config *cfg = NULL;
    char **series = NULL;
    size_t n = 0;
    const char *path;
    pk_result r;
    int ex;

    for (int i = 2; i < argc; i++)
        if (!pk_cli_common_opt(cli, argc, argv, &i)) return pk_cli_usage("audit files: unexpected '%s'", argv[i]);
    if ((ex = pk_cli_load_config(cli, &cfg)) != PK_EXIT_OK) return ex;
    if ((ex = audit_path(cfg, &path)) != PK_EXIT_OK) goto out;
    r = pk_audit_series(path, &series, &n);
    if (pk_failed(r)) {
        ex = pk_cli_fail(r.code);
        goto out;
    }
    if (cli->json) {
        pk_buf b = {0};
        pk_json_out j;
        pk_jo_init(&j, &b);
        pk_jo_arr_begin(&j);
        for (size_t i = 0; i < n; i++) pk_jo_str(&j, series[i]);
        pk_jo_arr_end(&j);
        ex = pk_cli_print_jo(&j);
    } else {
        for (size_t i = 0; i < n; i++) printf("%s\n", series[i]);
    }
out:
    pk_audit_series_free(series, n);
    p11kms_config_free(cfg);
    return ex;
}

int pk_cmd_audit(pk_cli *cli, int argc, char **argv)
{
    if (argc < 2) return pk_cli_usage("audit verify [FILE...] [--allow-unsealed] | audit rotate | audit files");
    if (strcmp(argv[1], "verify") == 0) return audit_verify(cli, argc, argv);
    if (strcmp(argv[1], "rotate") == 0) return audit_rotate(cli, argc, argv);
    if (strcmp(argv[1], "files") == 0) return audit_files(cli, argc, argv);
    return pk_cli_usage("unknown audit command '%s'", argv[1]);
}
