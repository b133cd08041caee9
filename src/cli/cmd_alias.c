/* p11kms alias create alias/NAME KEY | alias delete alias/NAME | alias list [KEY] */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "cli/cli_session.h"
#include "json/json_in.h"

static int positional(pk_cli *cli, int argc, char **argv, const char **pos, size_t want_min, size_t want_max,
                      const char *usage)
{
    size_t n = 0;
    for (int i = 2; i < argc; i++) {
        if (pk_cli_common_opt(cli, argc, argv, &i)) continue;
        if (argv[i][0] == '-' || n == want_max) return pk_cli_usage("alias %s: unexpected '%s'", argv[1], argv[i]);
        pos[n++] = argv[i];
    }
    if (n < want_min) return pk_cli_usage("%s", usage);
    return PK_EXIT_OK;
}

int pk_cmd_alias(pk_cli *cli, int argc, char **argv)
{
    const char *sub = argc >= 2 ? argv[1] : "";
    const char *pos[2] = {NULL, NULL};
    pk_cli_session s;
    char *json = NULL;
    p11kms_rc rc;
    int ex;

    if (strcmp(sub, "create") == 0)
        ex = positional(cli, argc, argv, pos, 2, 2, "alias create alias/NAME KEY");
    else if (strcmp(sub, "delete") == 0)
        ex = positional(cli, argc, argv, pos, 1, 1, "alias delete alias/NAME");
    else if (strcmp(sub, "list") == 0)
        ex = positional(cli, argc, argv, pos, 0, 1, "alias list [KEY]");
    else
        return pk_cli_usage("unknown alias command '%s'", sub);
    if (ex != PK_EXIT_OK) return ex;
    if ((ex = pk_cli_session_open(cli, &s)) != PK_EXIT_OK) return ex;
    if (strcmp(sub, "create") == 0) {
        rc = p11kms_alias_create(s.h, s.caller, pos[0], pos[1]);
        if (rc == P11KMS_OK && !cli->json) printf("alias %s -> %s\n", pos[0], pos[1]);
        if (rc == P11KMS_OK && cli->json) ex = pk_cli_print_obj("AliasName", pos[0], "Result", "created", NULL);
    } else if (strcmp(sub, "delete") == 0) {
        rc = p11kms_alias_delete(s.h, s.caller, pos[0]);
        if (rc == P11KMS_OK && !cli->json) printf("alias %s deleted\n", pos[0]);
        if (rc == P11KMS_OK && cli->json) ex = pk_cli_print_obj("AliasName", pos[0], "Result", "deleted", NULL);
    } else {
        rc = p11kms_alias_list(s.h, s.caller, pos[0], &json);
        if (rc == P11KMS_OK && cli->json) {
            ex = pk_cli_print_json(cli, json);
            json = NULL;
        } else if (rc == P11KMS_OK) {
            pk_jv *doc = NULL;
            if (pk_ok(pk_json_parse(json, strlen(json), P11KMS_ERR_INTERNAL, &doc)))
                for (size_t i = 0; i < pk_jv_size(doc); i++)
                    printf("%s  %s\n", pk_jv_str(pk_jv_get(pk_jv_at(doc, i), "AliasName")),
                           pk_jv_str(pk_jv_get(pk_jv_at(doc, i), "TargetKeyId")));
            pk_json_free(doc);
        }
    }
    if (rc != P11KMS_OK) ex = pk_cli_fail(rc);
    p11kms_free(json);
    pk_cli_session_close(&s);
    return ex;
}
