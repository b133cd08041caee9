/* p11kms: the command-line front end of libp11kms. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cli_help.h"
#include "cli/cmd_file.h"

typedef struct command {
    const char *name;
    int (*fn)(pk_cli *cli, int argc, char **argv);
} command;

static const command commands[] = {
    {"token", pk_cmd_token},
    {"init", pk_cmd_init},
    {"key", pk_cmd_key},
    {"alias", pk_cmd_alias},
    {"encrypt", pk_cmd_encrypt},
    {"decrypt", pk_cmd_decrypt},
    {"datakey", pk_cmd_datakey},
    {"re-encrypt", pk_cmd_reencrypt},
    {"policy", pk_cmd_policy},
    {"audit", pk_cmd_audit},
    {"report", pk_cmd_report},
    {"secret", pk_cmd_secret},
    {"connection", pk_cmd_connection},
    {"render", pk_cmd_render},
    {"access-key", pk_cmd_access_key},
    {"encrypt-file", pk_cmd_encrypt_file},
    {"decrypt-file", pk_cmd_decrypt_file},
    {"rewrap-file", pk_cmd_rewrap_file},
    {"store", pk_cmd_store},
};

int main(int argc, char **argv)
{
    pk_cli cli = {0};
    int i = 1;

    pk_cli_harden(); /* non-dumpable from the start, as ssh-agent: a core must never hold a secret */
    cli.principal = getenv("P11KMS_PRINCIPAL");
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            return pk_help_usage();
        }
        if (strcmp(argv[i], "--version") == 0) {
            printf("p11kms %s\n", p11kms_version());
            return PK_EXIT_OK;
        }
        if (!pk_cli_common_opt(&cli, argc, argv, &i)) return pk_cli_usage("unknown option '%s'", argv[i]);
    }
    if (i >= argc) return pk_cli_usage("no command given");
    /* --help anywhere after the command words wins over the command's own parser. */
    if (strcmp(argv[i], "help") == 0)
        return pk_help_requested(argc - i, argv + i) ? pk_help_for(argc - i, argv + i) : pk_help_cmd(argc - i, argv + i);
    for (size_t c = 0; c < PK_ARRAY_LEN(commands); c++) {
        if (strcmp(argv[i], commands[c].name) != 0) continue;
        if (pk_help_requested(argc - i, argv + i)) return pk_help_for(argc - i, argv + i);
        int refused = pk_cli_remote_refuse(&cli, argc - i, argv + i);
        if (refused >= 0) return refused;
        return commands[c].fn(&cli, argc - i, argv + i);
    }
    return pk_cli_usage("unknown command '%s'", argv[i]);
}
