/* p11kms token info | token init */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "util/json_out.h"

static int print_info_json(const p11kms_token_info *ti)
{
    pk_buf b = {0};
    pk_json_out j;
    int rc;

    pk_jo_init(&j, &b);
    pk_jo_obj_begin(&j);
    pk_jo_kstr(&j, "module", p11kms_token_info_module(ti));
    pk_jo_kstr(&j, "label", p11kms_token_info_label(ti));
    pk_jo_kstr(&j, "serial", p11kms_token_info_serial(ti));
    pk_jo_kstr(&j, "manufacturer", p11kms_token_info_manufacturer(ti));
    pk_jo_kstr(&j, "model", p11kms_token_info_model(ti));
    pk_jo_kbool(&j, "login", p11kms_token_info_login(ti) == P11KMS_OK);
    if (p11kms_token_info_login(ti) != P11KMS_OK) pk_jo_kstr(&j, "login_error", p11kms_token_info_login_detail(ti));
    pk_jo_key(&j, "mechanisms");
    pk_jo_arr_begin(&j);
    for (size_t i = 0; i < p11kms_token_info_mech_count(ti); i++) {
        pk_jo_obj_begin(&j);
        pk_jo_kstr(&j, "role", p11kms_token_info_mech_role(ti, i));
        pk_jo_kstr(&j, "mechanism", p11kms_token_info_mech_name(ti, i));
        pk_jo_kbool(&j, "present", p11kms_token_info_mech_present(ti, i) != 0);
        pk_jo_obj_end(&j);
    }
    pk_jo_arr_end(&j);
    pk_jo_obj_end(&j);
    rc = pk_ok(pk_jo_result(&j)) ? pk_cli_print_buf(&b) : pk_cli_fail(P11KMS_ERR_NO_MEMORY);
    pk_buf_free(&b);
    return rc;
}

static void print_info_text(const p11kms_token_info *ti)
{
    printf("module:        %s\n", p11kms_token_info_module(ti));
    printf("token label:   %s\n", p11kms_token_info_label(ti));
    printf("serial:        %s\n", p11kms_token_info_serial(ti));
    printf("manufacturer:  %s\n", p11kms_token_info_manufacturer(ti));
    printf("model:         %s\n", p11kms_token_info_model(ti));
    if (p11kms_token_info_login(ti) == P11KMS_OK)
        printf("login:         ok\n");
    else
        printf("login:         failed (%s)\n", p11kms_token_info_login_detail(ti));
    printf("mechanisms:\n");
    for (size_t i = 0; i < p11kms_token_info_mech_count(ti); i++)
        printf("  %-15s %-28s %s\n", p11kms_token_info_mech_role(ti, i), p11kms_token_info_mech_name(ti, i),
               p11kms_token_info_mech_present(ti, i) ? "yes" : "MISSING");
}

static int token_info(pk_cli *cli, int argc, char **argv)
{
    p11kms_config *cfg = NULL;
    p11kms_token_info *ti = NULL;
    p11kms_rc rc;
    int ex;

    for (int i = 2; i < argc; i++)
        if (!pk_cli_common_opt(cli, argc, argv, &i)) return pk_cli_usage("token info: unexpected '%s'", argv[i]);
    if ((ex = pk_cli_load_config(cli, &cfg)) != PK_EXIT_OK) return ex;
    rc = p11kms_token_probe(cfg, &ti);
    p11kms_config_free(cfg);
    if (rc != P11KMS_OK) return pk_cli_fail(rc);
    ex = PK_EXIT_OK;
    if (cli->json)
        ex = print_info_json(ti);
    else
        print_info_text(ti);
    if (ex == PK_EXIT_OK && p11kms_token_info_login(ti) != P11KMS_OK) {
        fprintf(stderr, "p11kms: %s\n", p11kms_token_info_login_detail(ti));
        ex = p11kms_exit_code(p11kms_token_info_login(ti));
    }
    for (size_t i = 0; ex == PK_EXIT_OK && i < p11kms_token_info_mech_count(ti); i++) {
        if (!p11kms_token_info_mech_present(ti, i)) {
            fprintf(stderr, "p11kms: token '%s' lacks %s (%s), which p11kms needs\n", p11kms_token_info_label(ti),
                    p11kms_token_info_mech_name(ti, i), p11kms_token_info_mech_role(ti, i));
            ex = PK_EXIT_CONFIG;
        }
    }
    p11kms_token_info_free(ti);
    return ex;
}

/* token init: PINs come from files only, never from argv; the library reads and wipes them. */
static int token_init(pk_cli *cli, int argc, char **argv)
{
    const char *module = NULL, *label = NULL, *so_file = NULL, *pin_file = NULL, *v;
    p11kms_rc rc;

    for (int i = 2; i < argc; i++) {
        if (pk_cli_opt(argc, argv, &i, "--module", &v)) module = v;
        else if (pk_cli_opt(argc, argv, &i, "--label", &v)) label = v;
        else if (pk_cli_opt(argc, argv, &i, "--so-pin-file", &v)) so_file = v;
        else if (pk_cli_opt(argc, argv, &i, "--pin-file", &v)) pin_file = v;
        else if (!pk_cli_common_opt(cli, argc, argv, &i)) return pk_cli_usage("token init: unexpected '%s'", argv[i]);
    }
    if (module == NULL || label == NULL || so_file == NULL || pin_file == NULL)
        return pk_cli_usage("token init --module PATH --label LABEL --so-pin-file FILE --pin-file FILE");
    if ((rc = p11kms_token_init(module, label, so_file, pin_file)) != P11KMS_OK) return pk_cli_fail(rc);
    if (cli->json) return pk_cli_print_obj("label", label, "result", "initialised", NULL);
    printf("initialised token '%s'\n", label);
    return PK_EXIT_OK;
}

int pk_cmd_token(pk_cli *cli, int argc, char **argv)
{
    if (argc < 2) return pk_cli_usage("token info | token init");
    if (strcmp(argv[1], "info") == 0) return token_info(cli, argc, argv);
    if (strcmp(argv[1], "init") == 0) return token_init(cli, argc, argv);
    return pk_cli_usage("unknown token command '%s'", argv[1]);
}
