/* p11kms init [--admin P]... [--operator P]... */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "cli/cli_session.h"

#define MAX_PRINCIPALS 16

int pk_cmd_init(pk_cli *cli, int argc, char **argv)
{
    const char *admins[MAX_PRINCIPALS], *operators[MAX_PRINCIPALS], *v;
    size_t na = 0, no = 0;
    p11kms_config *cfg = NULL;
    p11kms_caller *caller = NULL;
    char *report = NULL;
    p11kms_rc rc;
    int ex;

    for (int i = 1; i < argc; i++) {
        if (pk_cli_optv(argc, argv, &i, "--admin", &v)) {
            if (na == MAX_PRINCIPALS) return pk_cli_usage("init: at most %d --admin", MAX_PRINCIPALS);
            admins[na++] = v;
        } else if (pk_cli_optv(argc, argv, &i, "--operator", &v)) {
            if (no == MAX_PRINCIPALS) return pk_cli_usage("init: at most %d --operator", MAX_PRINCIPALS);
            operators[no++] = v;
        } else if (!pk_cli_common_opt(cli, argc, argv, &i)) {
            return pk_cli_usage("init: unexpected '%s'", argv[i]);
        }
    }
    if ((ex = pk_cli_caller(cli, &caller)) != PK_EXIT_OK) return ex;
    if ((ex = pk_cli_load_config(cli, &cfg)) != PK_EXIT_OK) {
        p11kms_caller_free(caller);
        return ex;
    }
    rc = p11kms_init(cfg, caller, admins, na, operators, no, &report);
    if (rc != P11KMS_OK) {
        ex = pk_cli_fail(rc);
    } else if (cli->json) {
        ex = pk_cli_print_json(cli, report);
        report = NULL;
    } else {
        bool fresh = strstr(report, "\"initialised\":true") != NULL;
        const char *sk = strstr(report, "\"service_key\":\"");
        printf("%s; service key %.36s (alias/p11kms/default)\n",
               fresh ? "initialised the store and system keys" : "already initialised", sk ? sk + 15 : "?");
        ex = PK_EXIT_OK;
    }
    p11kms_free(report);
    p11kms_config_free(cfg);
    p11kms_caller_free(caller);
    return ex;
}
