/* `connect =`: which commands need the token on this host and are refused there. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

/* Whole commands, then single subcommands, that open the token, the store or the audit trail here. */
static const char *const token_commands[] = {"token", "init", "access-key", "audit", "report", "store"};
static const char *const token_subcommands[][2] = {{"key", "purge"}, {"secret", "rewrap"}};
/* Commands whose second word names a subcommand (the message names both). */
static const char *const grouped[] = {"token", "access-key", "audit", "report", "store"};

static bool needs_token(int argc, char **argv)
{
    for (size_t i = 0; i < PK_ARRAY_LEN(token_commands); i++)
        if (strcmp(argv[0], token_commands[i]) == 0) return true;
    for (size_t i = 0; i < PK_ARRAY_LEN(token_subcommands); i++)
        if (argc > 1 && strcmp(argv[0], token_subcommands[i][0]) == 0 && strcmp(argv[1], token_subcommands[i][1]) == 0)
            return true;
    return false;
}

/* --config FILE may follow the command words. */
static const char *config_path(const pk_cli *cli, int argc, char **argv)
{
    const char *path = cli->config_path;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) path = argv[++i];
        else if (strncmp(argv[i], "--config=", 9) == 0) path = argv[i] + 9;
    }
    return path;
}

int pk_cli_remote_refuse(pk_cli *cli, int argc, char **argv)
{
    p11kms_config *cfg = NULL;
    bool remote, two_words = argc > 1 && argv[1][0] != '-';

    if (!needs_token(argc, argv)) return -1;
    /* A config that does not load is reported by the command itself. */
    if (p11kms_config_load(config_path(cli, argc, argv), &cfg) != P11KMS_OK) return -1;
    remote = p11kms_config_get(cfg, "connect") != NULL;
    p11kms_config_free(cfg);
    if (!remote) return -1;
    if (strcmp(argv[0], "key") != 0 && strcmp(argv[0], "secret") != 0) {
        bool is_grouped = false;
        for (size_t i = 0; i < PK_ARRAY_LEN(grouped); i++) is_grouped |= strcmp(argv[0], grouped[i]) == 0;
        two_words = two_words && is_grouped;
    }
    if (two_words)
        fprintf(stderr, "p11kms: %s %s needs the token: run it on the daemon's host (connect = is set)\n", argv[0],
                argv[1]);
    else
        fprintf(stderr, "p11kms: %s needs the token: run it on the daemon's host (connect = is set)\n", argv[0]);
    return PK_EXIT_USAGE;
}
