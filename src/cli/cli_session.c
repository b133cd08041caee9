/* Opening a handle for a command, and argument helpers shared by key and crypto commands. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "cli/cli_session.h"

int pk_cli_caller(pk_cli *cli, p11kms_caller **caller)
{
    p11kms_rc rc;
    if (cli->principal == NULL || *cli->principal == '\0')
        return pk_cli_usage("no principal: pass --as ARN or set P11KMS_PRINCIPAL");
    rc = p11kms_caller_new(cli->principal, caller);
    return rc == P11KMS_OK ? PK_EXIT_OK : pk_cli_fail(rc);
}

int pk_cli_session_open(pk_cli *cli, pk_cli_session *s)
{
    int ex;
    p11kms_rc rc;
    memset(s, 0, sizeof(*s));
    pk_cli_harden(); /* every command that opens a handle may handle secrets */
    if ((ex = pk_cli_load_config(cli, &s->cfg)) == PK_EXIT_OK && p11kms_config_get(s->cfg, "connect") != NULL) {
        /* A client of p11kmsd: the daemon names the caller (peer uid or access key), never this host. */
        if (cli->as_given) {
            fprintf(stderr, "p11kms: --as is not used with connect =: the daemon authenticates this host's caller\n");
            ex = PK_EXIT_USAGE;
        }
    } else if (ex == PK_EXIT_OK) {
        ex = pk_cli_caller(cli, &s->caller);
    }
    if (ex == PK_EXIT_OK) {
        rc = p11kms_open(s->cfg, &s->h);
        ex = rc == P11KMS_OK ? PK_EXIT_OK : pk_cli_fail(rc);
    }
    /* On failure nothing is left for the caller to close. */
    if (ex != PK_EXIT_OK) pk_cli_session_close(s);
    return ex;
}

void pk_cli_session_close(pk_cli_session *s)
{
    p11kms_close(s->h);
    p11kms_caller_free(s->caller);
    p11kms_config_free(s->cfg);
    memset(s, 0, sizeof(*s));
}

int pk_cli_kv_add(pk_cli_kvs *kvs, const char *opt, const char *arg)
{
    const char *eq;
    if (arg == NULL) return pk_cli_usage("%s needs KEY=VALUE", opt);
    eq = strchr(arg, '=');
    if (eq == NULL || eq == arg) return pk_cli_usage("%s '%s': expected KEY=VALUE", opt, arg);
    if (kvs->n >= PK_CLI_MAX_KV) return pk_cli_usage("too many %s pairs (at most %d)", opt, PK_CLI_MAX_KV);
    kvs->keys[kvs->n] = strndup(arg, (size_t)(eq - arg));
    if (kvs->keys[kvs->n] == NULL) return pk_cli_fail(P11KMS_ERR_NO_MEMORY);
    kvs->kv[kvs->n].key = kvs->keys[kvs->n];
    kvs->kv[kvs->n].value = eq + 1;
    kvs->n++;
    return PK_EXIT_OK;
}

void pk_cli_kv_free(pk_cli_kvs *kvs)
{
    for (size_t i = 0; i < kvs->n; i++) free(kvs->keys[i]);
    kvs->n = 0;
}

int pk_cli_read_secret(const char *path, size_t max, pk_secbuf *out)
{
    int fd, ex;
    ssize_t n;

    pk_cli_harden(); /* before the first secret byte is in memory */
    if ((ex = pk_cli_open_input(path, &fd)) != PK_EXIT_OK) return ex;
    if (pk_failed(pk_secbuf_alloc(out, max + 1))) {
        if (fd != STDIN_FILENO) close(fd);
        return pk_cli_fail(P11KMS_ERR_NO_MEMORY);
    }
    /* Read up to max+1 bytes: one more than allowed tells "too large" apart. */
    while (out->len <= max && (n = read(fd, out->data + out->len, max + 1 - out->len)) != 0) {
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            fprintf(stderr, "p11kms: cannot read %s: %s\n", path ? path : "standard input", strerror(errno));
            if (fd != STDIN_FILENO) close(fd);
            pk_secbuf_free(out);
            return PK_EXIT_FAILED;
        }
        out->len += (size_t)n;
    }
    if (fd != STDIN_FILENO) close(fd);
    return PK_EXIT_OK;
}

static struct termios tty_saved;
static const int tty_signals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};

/* A signal while echo is off must not leave the terminal silent: restore it, then die of the signal. */
static void tty_restore_and_die(int sig)
{
    (void)tcsetattr(STDIN_FILENO, TCSAFLUSH, &tty_saved);
    signal(sig, SIG_DFL);
    raise(sig);
}

/* One line from the terminal with echo off (the value is typed, never shown). */
static int read_tty_line(const char *key, size_t max, pk_secbuf *out)
{
    struct termios old, quiet;
    struct sigaction sa, prev[PK_ARRAY_LEN(tty_signals)];
    char c;
    ssize_t n;

    pk_cli_harden();
    if (tcgetattr(STDIN_FILENO, &old) != 0) {
        fprintf(stderr, "p11kms: cannot read the terminal: %s\n", strerror(errno));
        return PK_EXIT_FAILED;
    }
    if (pk_failed(pk_secbuf_alloc(out, max + 1))) return pk_cli_fail(P11KMS_ERR_NO_MEMORY);
    quiet = old;
    quiet.c_lflag &= ~(tcflag_t)ECHO;
    tty_saved = old;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = tty_restore_and_die;
    for (size_t i = 0; i < PK_ARRAY_LEN(tty_signals); i++) (void)sigaction(tty_signals[i], &sa, &prev[i]);
    fprintf(stderr, "p11kms: value for '%s' (not echoed): ", key);
    fflush(stderr);
    (void)tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
    while (out->len <= max && ((n = read(STDIN_FILENO, &c, 1)) == 1 || (n < 0 && errno == EINTR))) {
        if (n < 0) continue;
        if (c == '\n' || c == '\r') break;
        out->data[out->len++] = (uint8_t)c;
    }
    c = 0;
    (void)tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
    for (size_t i = 0; i < PK_ARRAY_LEN(tty_signals); i++) (void)sigaction(tty_signals[i], &prev[i], NULL);
    fputc('\n', stderr);
    return PK_EXIT_OK;
}

int pk_cli_read_value(const char *key, const char *path, size_t max, pk_secbuf *out)
{
    bool from_stdin = strcmp(path, "-") == 0;
    const char *from = from_stdin ? "standard input" : path;
    int ex = from_stdin && isatty(STDIN_FILENO) ? read_tty_line(key, max, out) : pk_cli_read_secret(path, max, out);

    if (ex != PK_EXIT_OK) return ex;
    if (out->len > max) {
        ex = pk_cli_usage("%s: the value of '%s' is larger than %zu bytes", from, key, max);
    } else {
        if (out->len > 0 && out->data[out->len - 1] == '\n') out->len--;
        if (memchr(out->data, 0, out->len) != NULL) {
            fprintf(stderr, "p11kms: the value of '%s' from %s is not text\n", key, from);
            ex = PK_EXIT_USAGE;
        } else if (out->len == 0) {
            /* An empty file or closed stdin is a mistake far more often than an empty secret. */
            fprintf(stderr, "p11kms: the value of '%s' from %s is empty; refusing to store an empty secret\n", key,
                    from);
            ex = PK_EXIT_USAGE;
        } else if (pk_failed(pk_secbuf_cstr(out))) {
            ex = pk_cli_fail(P11KMS_ERR_NO_MEMORY);
        }
    }
    if (ex != PK_EXIT_OK) pk_secbuf_free(out);
    return ex;
}

int pk_cli_map_add(p11kms_secret_map *m, const char *arg, const char *usage,
                   void (*on_argv)(const char *key, const char *arg, void *ctx), void *ctx)
{
    const char *eq = strchr(arg, '=');
    char *key;
    p11kms_rc rc;
    if (eq == NULL || eq == arg) return pk_cli_usage("%s", usage);
    key = strndup(arg, (size_t)(eq - arg));
    if (key == NULL) return pk_cli_fail(P11KMS_ERR_NO_MEMORY);
    if (eq[1] == '@') {
        pk_secbuf v = PK_SECBUF_INIT;
        int ex = pk_cli_read_value(key, eq + 2, PK_CLI_VALUE_FILE_MAX, &v);
        if (ex != PK_EXIT_OK) {
            free(key);
            return ex;
        }
        rc = p11kms_secret_map_set(m, key, (const char *)v.data);
        pk_secbuf_free(&v);
    } else {
        if (eq[1] != '\0' && on_argv != NULL) on_argv(key, arg, ctx);
        rc = p11kms_secret_map_set(m, key, eq + 1);
    }
    free(key);
    return rc == P11KMS_OK ? PK_EXIT_OK : pk_cli_fail(rc);
}

int pk_cli_write_secret(const char *path, const uint8_t *data, size_t len)
{
    if (path != NULL && strcmp(path, "-") != 0) return pk_cli_write_file_atomic(path, data, len);
    return pk_cli_write_stdout(data, len);
}

int pk_cli_print_json(pk_cli *cli, char *json)
{
    int ex = pk_cli_print_str(json);
    (void)cli;
    p11kms_free(json);
    return ex;
}
