/* p11kms audit verify [FILE...] | audit rotate | audit files */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "json/json_in.h"

/* A JSON value the library returned, parsed for the text rendering. */
static int parse_json(const char *json, pk_jv **doc)
{
    pk_result r = pk_json_parse(json, strlen(json), P11KMS_ERR_INTERNAL, doc);
    return pk_ok(r) ? PK_EXIT_OK : pk_cli_fail(r.code);
}

static const char *jstr(const pk_jv *doc, const char *k)
{
    const char *v = pk_jv_str(pk_jv_get(doc, k));
    return v ? v : "";
}

static uint64_t jnum(const pk_jv *doc, const char *k) { return (uint64_t)pk_jv_int(pk_jv_get(doc, k)); }

static int print_report_text(const pk_jv *rep)
{
    uint64_t files = jnum(rep, "files");
    if (pk_jv_typeof(pk_jv_get(rep, "ok")) != PK_JV_TRUE) {
        fprintf(stderr, "p11kms: audit: %s:%" PRIu64 ": seq %" PRIu64 ": %s: %s\n", jstr(rep, "file"),
                jnum(rep, "line"), jnum(rep, "seq"), jstr(rep, "problem"), jstr(rep, "detail"));
        return PK_EXIT_FAILED;
    }
    printf("audit log verified: %" PRIu64 " file%s, %" PRIu64 " records, %" PRIu64 " seals, last seq %" PRIu64
           ", head %s",
           files, files == 1 ? "" : "s", jnum(rep, "records"), jnum(rep, "seals"), jnum(rep, "last_seq"),
           jstr(rep, "head"));
    if (jnum(rep, "unsealed") > 0) printf(", %" PRIu64 " unsealed at the end (allowed)", jnum(rep, "unsealed"));
    printf("\n");
    return PK_EXIT_OK;
}

/* The report as the library wrote it (--json) or as one line; exit 1 when the trail is broken. */
static int print_report(const pk_cli *cli, const char *json)
{
    pk_jv *rep = NULL;
    int ex = parse_json(json, &rep);
    if (ex != PK_EXIT_OK) return ex;
    if (cli->json) {
        ex = pk_cli_print_str(json);
        if (ex == PK_EXIT_OK && pk_jv_typeof(pk_jv_get(rep, "ok")) != PK_JV_TRUE) ex = PK_EXIT_FAILED;
    } else {
        ex = print_report_text(rep);
    }
    pk_json_free(rep);
    return ex;
}

/* With no FILE, an empty series is "no audit log", a failed verification (exit 1). */
static int series_exists(const p11kms_config *cfg)
{
    char *json = NULL;
    pk_jv *doc = NULL;
    p11kms_rc rc = p11kms_audit_files(cfg, &json);
    int ex;
    if (rc != P11KMS_OK) return pk_cli_fail(rc);
    ex = parse_json(json, &doc);
    p11kms_free(json);
    if (ex == PK_EXIT_OK && pk_jv_size(doc) == 0) {
        fprintf(stderr, "p11kms: audit: no audit log at %s\n", p11kms_config_path_value(cfg, "audit"));
        ex = PK_EXIT_FAILED;
    }
    pk_json_free(doc);
    return ex;
}

static int audit_verify(pk_cli *cli, int argc, char **argv)
{
    p11kms_config *cfg = NULL;
    const char **given = NULL;
    size_t ngiven = 0;
    unsigned flags = 0;
    char *json = NULL;
    p11kms_rc rc;
    int ex;

    given = calloc((size_t)argc, sizeof(*given));
    if (given == NULL) return pk_cli_fail(P11KMS_ERR_NO_MEMORY);
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--allow-unsealed") == 0) flags |= P11KMS_AUDIT_ALLOW_UNSEALED;
        else if (pk_cli_common_opt(cli, argc, argv, &i)) continue;
        else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            free(given);
            return pk_cli_usage("audit verify: unexpected '%s'", argv[i]);
        } else given[ngiven++] = argv[i];
    }
    if ((ex = pk_cli_load_config(cli, &cfg)) != PK_EXIT_OK) goto out;
    if (ngiven == 0 && (ex = series_exists(cfg)) != PK_EXIT_OK) goto out;
    rc = p11kms_audit_verify(cfg, given, ngiven, flags, &json);
    ex = rc == P11KMS_OK ? print_report(cli, json) : pk_cli_fail(rc);
out:
    p11kms_free(json);
    free(given);
    p11kms_config_free(cfg);
    return ex;
}

static int audit_rotate(pk_cli *cli, int argc, char **argv)
{
    p11kms_config *cfg = NULL;
    char *rotated = NULL;
    p11kms_rc rc;
    int ex;

    for (int i = 2; i < argc; i++)
        if (!pk_cli_common_opt(cli, argc, argv, &i)) return pk_cli_usage("audit rotate: unexpected '%s'", argv[i]);
    if ((ex = pk_cli_load_config(cli, &cfg)) != PK_EXIT_OK) return ex;
    rc = p11kms_audit_rotate(cfg, cli->principal, &rotated);
    if (rc != P11KMS_OK) ex = pk_cli_fail(rc);
    else if (cli->json)
        ex = pk_cli_print_obj("path", p11kms_config_path_value(cfg, "audit"), "rotated", rotated, NULL);
    else
        printf("rotated %s to %s\n", p11kms_config_path_value(cfg, "audit"), rotated);
    p11kms_free(rotated);
    p11kms_config_free(cfg);
    return ex;
}

/* The files of the configured series, oldest first (for scripts such as audit-report). */
static int audit_files(pk_cli *cli, int argc, char **argv)
{
    p11kms_config *cfg = NULL;
    char *json = NULL;
    pk_jv *doc = NULL;
    p11kms_rc rc;
    int ex;

    for (int i = 2; i < argc; i++)
        if (!pk_cli_common_opt(cli, argc, argv, &i)) return pk_cli_usage("audit files: unexpected '%s'", argv[i]);
    if ((ex = pk_cli_load_config(cli, &cfg)) != PK_EXIT_OK) return ex;
    rc = p11kms_audit_files(cfg, &json);
    if (rc != P11KMS_OK) ex = pk_cli_fail(rc);
    else if (cli->json) ex = pk_cli_print_str(json);
    else if ((ex = parse_json(json, &doc)) == PK_EXIT_OK)
        for (size_t i = 0; i < pk_jv_size(doc); i++) printf("%s\n", pk_jv_str(pk_jv_at(doc, i)));
    pk_json_free(doc);
    p11kms_free(json);
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
