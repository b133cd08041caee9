/* p11kms encrypt-file | decrypt-file | rewrap-file (cmd_file.c, docs/FILES.md). */
#ifndef PK_CLI_CMD_FILE_H
#define PK_CLI_CMD_FILE_H

#include "cli/cli.h"

int pk_cmd_encrypt_file(pk_cli *cli, int argc, char **argv);
int pk_cmd_decrypt_file(pk_cli *cli, int argc, char **argv);
int pk_cmd_rewrap_file(pk_cli *cli, int argc, char **argv);

#endif
