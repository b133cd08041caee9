/*
 * Help for the p11kms command: one table of every command path with its
 * synopsis, description, options and an example. `p11kms --help`,
 * `p11kms help CMD [SUB]` and `p11kms CMD [SUB] --help` print from it;
 * docs/man/p11kms.1 and contrib/bash-completion/p11kms are checked against
 * it by tests/cli/help.sh.
 */
#ifndef PK_CLI_HELP_H
#define PK_CLI_HELP_H

#include <stdbool.h>

typedef struct pk_help_opt {
    const char *flag; /* "--alias alias/NAME"; NULL ends the list */
    const char *text; /* one line */
} pk_help_opt;

typedef struct pk_help_entry {
    const char *path;        /* "key create": the command words */
    const char *synopsis;    /* the words and their arguments, one line */
    const char *summary;     /* one line for listings */
    const char *description; /* lines of at most 76 columns */
    const pk_help_opt *opts; /* NULL-terminated; NULL when only global options */
    const char *example;     /* a full command line */
} pk_help_entry;

/* The top-level usage (p11kms --help); exit code 0. */
int pk_help_usage(void);
/* `p11kms help [--commands | CMD [SUB]]` with argv[0] = "help". */
int pk_help_cmd(int argc, char **argv);
/* Is there a --help or -h among argv[1..]? (argv[0] is the command word.) */
bool pk_help_requested(int argc, char **argv);
/*
 * Help for the command in argv[0] (and its subcommand in argv[1] when it
 * has subcommands); a usage error for an unknown subcommand.
 */
int pk_help_for(int argc, char **argv);

#endif
