/* Opening a handle for a command, and argument helpers shared by key and crypto commands. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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
    if ((ex = pk_cli_caller(cli, &s->caller)) == PK_EXIT_OK && (ex = pk_cli_load_config(cli, &s->cfg)) == PK_EXIT_OK) {
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
    int fd = (path == NULL || strcmp(path, "-") == 0) ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n;
    if (fd < 0) {
        fprintf(stderr, "p11kms: cannot open %s: %s\n", path, strerror(errno));
        return PK_EXIT_FAILED;
    }
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

int pk_cli_write_secret(const char *path, const uint8_t *data, size_t len)
{
    FILE *f = stdout;
    int fd = -1;
    if (path != NULL && strcmp(path, "-") != 0) {
        /* Plaintext files are private from the first byte: create with 0600, never widen. */
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0 || fchmod(fd, 0600) != 0) {
            fprintf(stderr, "p11kms: cannot write %s: %s\n", path, strerror(errno));
            if (fd >= 0) close(fd);
            return PK_EXIT_FAILED;
        }
        for (size_t off = 0; off < len;) {
            ssize_t n = write(fd, data + off, len - off);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) {
                fprintf(stderr, "p11kms: cannot write %s: %s\n", path, strerror(errno));
                close(fd);
                unlink(path);
                return PK_EXIT_FAILED;
            }
            off += (size_t)n;
        }
        if (fsync(fd) != 0 || close(fd) != 0) {
            fprintf(stderr, "p11kms: cannot write %s: %s\n", path, strerror(errno));
            unlink(path);
            return PK_EXIT_FAILED;
        }
        return PK_EXIT_OK;
    }
    if (len > 0 && fwrite(data, 1, len, f) != len) return PK_EXIT_FAILED;
    return fflush(f) == 0 ? PK_EXIT_OK : PK_EXIT_FAILED;
}

int pk_cli_print_json(pk_cli *cli, char *json)
{
    (void)cli;
    fputs(json, stdout);
    fputc('\n', stdout);
    p11kms_free(json);
    return fflush(stdout) == 0 ? PK_EXIT_OK : PK_EXIT_FAILED;
}
