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
    bool as_given;           /* --as was on the command line (refused with connect =) */
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
/* A string (JSON the library returned) and a newline on stdout. */
int pk_cli_print_str(const char *s);
/* As pk_cli_fail, the detail prefixed with "AT: " (a file, or FILE:LINE). */
int pk_cli_fail_at(const char *at, p11kms_rc rc);
/*
 * Read a whole file ("-" for stdin) of at most max bytes into a
 * NUL-terminated buffer. For public data only (policies, blobs); secret
 * input uses the secrets reader. More than max bytes is a usage error (exit
 * 2): "p11kms: PATH is too large: LIMIT" with the caller's limit sentence.
 * Only regular files are read (stdin may be a pipe or a terminal).
 */
int pk_cli_read_file(const char *path, size_t max, const char *limit, pk_buf *out);
/*
 * Open an input file for reading: "-" or NULL is stdin; anything else must
 * be a regular file (a FIFO or device would block or never end). Opened
 * with O_NONBLOCK so a FIFO is refused instead of waited on. Prints the
 * error and returns its exit code.
 */
int pk_cli_open_input(const char *path, int *fd);
/* Write all of p to fd, looping on partial writes and EINTR; 0 or -1 (errno). */
int pk_cli_write_fd(int fd, const void *p, size_t n);
/*
 * Write secret bytes to stdout with write(2): stdio would keep a copy in
 * its buffer, which is never wiped. Flushes stdio first to keep the order.
 */
int pk_cli_write_stdout(const void *p, size_t n);
/*
 * Create path atomically with mode 0600: a temp file in the same folder
 * (O_CREAT|O_EXCL, never following a link), fsync, rename over path, fsync
 * of the folder. An existing path is replaced, never written into, so a
 * file someone else prepared (a hard link, a file in a shared folder) never
 * receives the data; an existing non-regular path (FIFO, device, link,
 * folder) is refused (exit 2). On failure nothing is left behind.
 */
int pk_cli_write_file_atomic(const char *path, const uint8_t *data, size_t len);
/*
 * Keep secrets out of core dumps and away from ptrace by other processes of
 * the same user: PR_SET_DUMPABLE 0. Idempotent; called before any secret
 * is read or a handle opened.
 */
void pk_cli_harden(void);
/*
 * One-line warning that a secret value was given in argv (readable by every
 * local user through /proc). `hint` is how to give it instead.
 */
void pk_cli_warn_argv_secret(const char *key, const char *hint);
/* Print a finished JSON document (pk_jo_result checked) and free its buffer. */
struct pk_json_out;
int pk_cli_print_jo(struct pk_json_out *j);
/* Print {"K1":"V1","K2":"V2",...} (NULL-terminated pairs) through the JSON writer. */
int pk_cli_print_obj(const char *k1, ...) __attribute__((sentinel));

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

/* Print the linter's findings for an accepted policy on stderr, one warning a line. */
void pk_cli_policy_warnings(const char *json, size_t len);

int pk_cmd_token(pk_cli *cli, int argc, char **argv);
int pk_cmd_init(pk_cli *cli, int argc, char **argv);
int pk_cmd_key(pk_cli *cli, int argc, char **argv);
int pk_cmd_alias(pk_cli *cli, int argc, char **argv);
int pk_cmd_access_key(pk_cli *cli, int argc, char **argv);
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
int pk_cmd_store(pk_cli *cli, int argc, char **argv);

/*
 * With `connect =` the command is a client of p11kmsd: a command that needs
 * the token on this host (argv: the command and its words) is refused
 * ("p11kms: COMMAND needs the token: run it on the daemon's host (connect =
 * is set)", exit 2) and the exit code returned; otherwise -1.
 */
int pk_cli_remote_refuse(pk_cli *cli, int argc, char **argv);

#endif
