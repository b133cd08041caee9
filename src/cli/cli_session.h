/* A command's handle, caller and argument helpers (key and crypto commands). */
#ifndef PK_CLI_SESSION_H
#define PK_CLI_SESSION_H

#include "cli/cli.h"
#include "util/secbuf.h"

#define PK_CLI_MAX_KV 64

typedef struct pk_cli_session {
    p11kms_config *cfg;
    p11kms *h;
    p11kms_caller *caller;
} pk_cli_session;

/* The caller from --as / $P11KMS_PRINCIPAL; usage error when neither is given. */
int pk_cli_caller(pk_cli *cli, p11kms_caller **caller);
/* Caller + configuration + p11kms_open; prints the error and returns its exit code. */
int pk_cli_session_open(pk_cli *cli, pk_cli_session *s);
void pk_cli_session_close(pk_cli_session *s);

/* Repeated KEY=VALUE options (--context). Values point into argv. */
typedef struct pk_cli_kvs {
    p11kms_kv kv[PK_CLI_MAX_KV];
    char *keys[PK_CLI_MAX_KV];
    size_t n;
} pk_cli_kvs;
int pk_cli_kv_add(pk_cli_kvs *kvs, const char *opt, const char *arg);
void pk_cli_kv_free(pk_cli_kvs *kvs);

/* Read at most max+1 bytes of secret input (file, or stdin for NULL/"-") into locked memory. */
int pk_cli_read_secret(const char *path, size_t max, pk_secbuf *out);
/*
 * The value of KEY=@PATH: the file's content (PATH "-" is stdin, read
 * without echo from a terminal), one trailing newline removed, text only,
 * at most max bytes, NUL-terminated. An empty value is refused (exit 2):
 * an empty file or closed stdin is a mistake far more often than an empty
 * secret; KEY= on the command line stores an empty value deliberately.
 */
int pk_cli_read_value(const char *key, const char *path, size_t max, pk_secbuf *out);
/* Largest value a KEY=@FILE may give. */
#define PK_CLI_VALUE_FILE_MAX (64 * 1024)
/*
 * The command's one KEY=VALUE / KEY=@FILE (@- = standard input) reader: the
 * pair goes into m. usage is the message for an argument without KEY= (the
 * argument itself is never echoed: it may be a mistyped secret). For a
 * non-empty value given on the command line, on_argv (optional) is called
 * with the key first, so the caller can warn that argv is world-readable.
 */
int pk_cli_map_add(p11kms_secret_map *m, const char *arg, const char *usage,
                   void (*on_argv)(const char *key, const char *arg, void *ctx), void *ctx);
/* Write secret output to stdout with write(2), or atomically to a new 0600 file. */
int pk_cli_write_secret(const char *path, const uint8_t *data, size_t len);
/* Print a library JSON string and free it. */
int pk_cli_print_json(pk_cli *cli, char *json);

#endif
