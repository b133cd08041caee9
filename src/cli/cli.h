/*
 * The p11kms command. Only this folder parses argv. One file per
 * subcommand (cmd_<name>.c), each exporting a pk_cmd_<name> function that
 * main.c dispatches to with argv[0] set to the subcommand name.
 */
#ifndef PK_CLI_CLI_H
#define PK_CLI_CLI_H

#include <stdbool.h>
#include <stdio.h>

#include "p11kms/p11kms.h"
#include "util/bytes.h"

typedef struct pk_cli {
    const char *config_path; /* --config FILE, or NULL for the lookup order */
    const char *principal;   /* --as PRINCIPAL or $P11KMS_PRINCIPAL, or NULL */
    bool json;               /* --json */
} pk_cli;

/* Exit codes (documented in --help and README). */
enum {
    PK_EXIT_OK = 0,
    PK_EXIT_FAILED = 1,
    PK_EXIT_USAGE = 2,
    PK_EXIT_CONFIG = 3,
    PK_EXIT_DENIED = 4,
    PK_EXIT_NOT_FOUND = 5
};

/*
 * Report the current thread's p11kms error as one line on stderr,
 * "p11kms: <detail>", and return the exit code for rc.
 */
int pk_cli_fail(p11kms_rc rc);
/* Report a usage error ("p11kms: usage: ...") and return PK_EXIT_USAGE. */
int pk_cli_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Write a finished pk_buf (JSON document or text) to stdout with a newline. */
int pk_cli_print_buf(pk_buf *b);
/*
 * Read a whole file ("-" for stdin) into a NUL-terminated buffer. For public
 * data only (policies, blobs); secret input uses the secrets reader.
 */
int pk_cli_read_file(const char *path, pk_buf *out);

/*
 * Match "--name VALUE" or "--name=VALUE" at argv[*i] (advancing *i past a
 * separate value). *value is NULL when the value is missing.
 */
bool pk_cli_opt(int argc, char **argv, int *i, const char *name, const char **value);
/* pk_cli_opt, but a missing value is a usage error (exit 2) on the spot. */
bool pk_cli_optv(int argc, char **argv, int *i, const char *name, const char **value);
/* Consume a global option (--json, --config F, --as P) found after the subcommand. */
bool pk_cli_common_opt(pk_cli *cli, int argc, char **argv, int *i);
/* Load the configuration named by --config / the lookup order; prints errors. */
int pk_cli_load_config(pk_cli *cli, p11kms_config **cfg);

int pk_cmd_token(pk_cli *cli, int argc, char **argv);
int pk_cmd_init(pk_cli *cli, int argc, char **argv);
int pk_cmd_key(pk_cli *cli, int argc, char **argv);
int pk_cmd_alias(pk_cli *cli, int argc, char **argv);
int pk_cmd_encrypt(pk_cli *cli, int argc, char **argv);
int pk_cmd_decrypt(pk_cli *cli, int argc, char **argv);
int pk_cmd_datakey(pk_cli *cli, int argc, char **argv);
int pk_cmd_reencrypt(pk_cli *cli, int argc, char **argv);
int pk_cmd_policy(pk_cli *cli, int argc, char **argv);
int pk_cmd_audit(pk_cli *cli, int argc, char **argv);
int pk_cmd_report(pk_cli *cli, int argc, char **argv);
int pk_cmd_secret(pk_cli *cli, int argc, char **argv);
int pk_cmd_connection(pk_cli *cli, int argc, char **argv);
int pk_cmd_render(pk_cli *cli, int argc, char **argv);

#endif
