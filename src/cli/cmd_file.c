/*
 * p11kms encrypt-file | decrypt-file | rewrap-file
 *
 * Files in the AWS Encryption SDK message format (docs/FILES.md), streamed
 * through the library's file API. Plaintext read for encryption sits in
 * locked memory. An output file is written to a 0600 temporary file in the
 * same folder (O_EXCL) and renamed over OUT only when the whole message
 * verified; on any failure the temporary file is removed, so no plaintext
 * of a refused message is left behind. "-" is stdin or stdout.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli_session.h"
#include "cli/cmd_file.h"

#define CHUNK (1024u * 1024) /* a batch of frames for the worker threads */
#define FRAME_MAX (64u << 20)
#define THREADS_MAX 64
#define PROGRESS_MIN (64u << 20) /* show progress for inputs from 64 MiB (or of unknown size) */

typedef struct file_args {
    const char *key;
    const char *frame_length;
    const char *suite;
    const char *threads;
    const char *in;
    const char *out;
    pk_cli_kvs ctx;
} file_args;

/* Where the output goes: stdout, or a temporary file renamed at the end. */
typedef struct sink {
    const char *path;
    char *tmp;
    int fd;
    int err; /* errno of a failed write */
    /* progress on a terminal */
    const char *what;
    uint64_t in_total, in_done;
    bool progress;
    time_t last;
} sink;

static int parse_args(pk_cli *cli, int argc, char **argv, const char *allowed, file_args *a)
{
    const char *v;
    int npos = 0;
    memset(a, 0, sizeof(*a));
    for (int i = 1; i < argc; i++) {
        int ex = PK_EXIT_OK;
        const char *name = argv[i];
        if (pk_cli_common_opt(cli, argc, argv, &i)) continue;
        if (strcmp(name, "-") == 0 || strncmp(name, "--", 2) != 0) {
            if (npos == 0) a->in = name;
            else if (npos == 1) a->out = name;
            else return pk_cli_usage("%s: unexpected '%s'", argv[0], name);
            npos++;
            continue;
        }
        if (strstr(allowed, "key") && pk_cli_optv(argc, argv, &i, "--key", &v)) a->key = v;
        else if (strstr(allowed, "frame") && pk_cli_optv(argc, argv, &i, "--frame-length", &v)) a->frame_length = v;
        else if (strstr(allowed, "suite") && pk_cli_optv(argc, argv, &i, "--suite", &v)) a->suite = v;
        else if (strstr(allowed, "threads") && pk_cli_optv(argc, argv, &i, "--threads", &v)) a->threads = v;
        else if (strstr(allowed, "context") && pk_cli_optv(argc, argv, &i, "--context", &v))
            ex = pk_cli_kv_add(&a->ctx, "--context", v);
        else return pk_cli_usage("%s: unexpected '%s'", argv[0], name);
        if (ex != PK_EXIT_OK) return ex;
    }
    if (a->in == NULL || a->out == NULL) return pk_cli_usage("%s: IN and OUT are required (- for stdin/stdout)", argv[0]);
    if (cli->json && strcmp(a->out, "-") == 0)
        return pk_cli_usage("%s: --json needs an OUT file: standard output carries the data", argv[0]);
    return PK_EXIT_OK;
}

/* A decimal number in lo..hi, or a usage error naming the option. */
static int parse_num(const char *cmd, const char *opt, const char *s, unsigned long lo, unsigned long hi,
                     unsigned long *out)
{
    char *end = NULL;
    unsigned long v;
    errno = 0;
    v = s[0] >= '0' && s[0] <= '9' ? strtoul(s, &end, 10) : 0;
    if (end == NULL || *end != '\0' || errno != 0 || v < lo || v > hi)
        return pk_cli_usage("%s: %s must be a number in %lu..%lu", cmd, opt, lo, hi);
    *out = v;
    return PK_EXIT_OK;
}

static int parse_threads(const char *cmd, const file_args *a, unsigned *threads)
{
    unsigned long v = 1;
    int ex = a->threads ? parse_num(cmd, "--threads", a->threads, 1, THREADS_MAX, &v) : PK_EXIT_OK;
    *threads = (unsigned)v;
    return ex;
}

/* ---- output ---- */

static int sink_open(sink *s, const char *path, const char *what)
{
    struct stat st;
    char *copy, *dir;
    const char *base;

    memset(s, 0, sizeof(*s));
    s->path = path;
    s->what = what;
    s->fd = STDOUT_FILENO;
    if (strcmp(path, "-") == 0) return PK_EXIT_OK;
    if (lstat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
        fprintf(stderr, "p11kms: %s exists and is not a regular file\n", path);
        return PK_EXIT_USAGE;
    }
    base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    copy = strdup(path);
    if (copy == NULL) return pk_cli_fail(P11KMS_ERR_NO_MEMORY);
    dir = dirname(copy);
    if (*base == '\0' || asprintf(&s->tmp, "%s/.%s.XXXXXX", dir, base) < 0) {
        s->tmp = NULL;
        free(copy);
        fprintf(stderr, "p11kms: cannot write %s: %s\n", path, strerror(EINVAL));
        return PK_EXIT_USAGE;
    }
    free(copy);
    /* O_CREAT|O_EXCL, mode 0600 from the first byte: nobody else can open what we write. */
    s->fd = mkostemp(s->tmp, O_CLOEXEC);
    if (s->fd < 0 || fchmod(s->fd, 0600) != 0) {
        fprintf(stderr, "p11kms: cannot write %s: %s\n", path, strerror(errno));
        if (s->fd >= 0) {
            close(s->fd);
            unlink(s->tmp);
        }
        free(s->tmp);
        s->tmp = NULL;
        return PK_EXIT_FAILED;
    }
    return PK_EXIT_OK;
}

static int sink_write(void *arg, const uint8_t *p, size_t n)
{
    sink *s = arg;
    if (pk_cli_write_fd(s->fd, p, n) != 0) {
        s->err = errno;
        return P11KMS_ERR_INTERNAL;
    }
    return 0;
}

/* Remove the temporary file: nothing of a failed run stays. */
static void sink_abort(sink *s)
{
    if (s->tmp == NULL) return;
    close(s->fd);
    unlink(s->tmp);
    free(s->tmp);
    s->tmp = NULL;
}

static int sink_commit(sink *s)
{
    char *copy;
    if (s->tmp == NULL) return PK_EXIT_OK; /* standard output */
    if (fsync(s->fd) != 0 || close(s->fd) != 0) {
        s->err = errno;
        s->fd = -1;
        fprintf(stderr, "p11kms: cannot write %s: %s\n", s->path, strerror(s->err));
        unlink(s->tmp);
        free(s->tmp);
        s->tmp = NULL;
        return PK_EXIT_FAILED;
    }
    if (rename(s->tmp, s->path) != 0) {
        fprintf(stderr, "p11kms: cannot write %s: %s\n", s->path, strerror(errno));
        unlink(s->tmp);
        free(s->tmp);
        s->tmp = NULL;
        return PK_EXIT_FAILED;
    }
    copy = strdup(s->path);
    if (copy != NULL) {
        int dfd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            (void)fsync(dfd);
            close(dfd);
        }
        free(copy);
    }
    free(s->tmp);
    s->tmp = NULL;
    return PK_EXIT_OK;
}

/* A library failure: a write error names the file, anything else is the library's message. */
static int fail(sink *s, p11kms_rc rc)
{
    int ex;
    if (s->progress) fputc('\n', stderr);
    if (s->err != 0) {
        fprintf(stderr, "p11kms: cannot write %s: %s\n", strcmp(s->path, "-") == 0 ? "standard output" : s->path,
                strerror(s->err));
        ex = PK_EXIT_FAILED;
    } else {
        ex = pk_cli_fail(rc);
    }
    sink_abort(s);
    return ex;
}

static void progress_start(sink *s, int in_fd)
{
    struct stat st;
    s->in_total = fstat(in_fd, &st) == 0 && S_ISREG(st.st_mode) ? (uint64_t)st.st_size : 0;
    s->progress = isatty(STDERR_FILENO) && (s->in_total == 0 || s->in_total >= PROGRESS_MIN);
    s->last = time(NULL);
}

static void progress_step(sink *s, size_t n)
{
    time_t now;
    s->in_done += n;
    if (!s->progress || (now = time(NULL)) == s->last) return;
    s->last = now;
    if (s->in_total > 0)
        fprintf(stderr, "\rp11kms: %s: %.1f MiB of %.1f MiB (%d%%)", s->what, s->in_done / 1048576.0,
                s->in_total / 1048576.0, (int)(s->in_done * 100 / s->in_total));
    else
        fprintf(stderr, "\rp11kms: %s: %.1f MiB", s->what, s->in_done / 1048576.0);
}

static void progress_end(sink *s)
{
    if (s->progress) fprintf(stderr, "\rp11kms: %s: %.1f MiB done\n", s->what, s->in_done / 1048576.0);
}

/* ---- reading ---- */

typedef p11kms_rc (*feed_fn)(void *obj, const uint8_t *p, size_t n);

static p11kms_rc feed_enc(void *obj, const uint8_t *p, size_t n) { return p11kms_file_encrypt_update(obj, p, n); }
static p11kms_rc feed_dec(void *obj, const uint8_t *p, size_t n) { return p11kms_file_decrypt_update(obj, p, n); }

/* Read IN to the end through fn. Returns an exit code; *rc gets a library failure. */
static int pump(int fd, const char *in, pk_secbuf *buf, feed_fn fn, void *obj, sink *s, p11kms_rc *rc)
{
    bool eof = false;
    *rc = P11KMS_OK;
    while (!eof) {
        size_t have = 0;
        /* Fill the chunk (a pipe gives 64 KiB a read): whole batches keep every thread busy. */
        while (have < CHUNK) {
            ssize_t n = read(fd, buf->data + have, CHUNK - have);
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) {
                fprintf(stderr, "%sp11kms: cannot read %s: %s\n", s->progress ? "\n" : "", in, strerror(errno));
                sink_abort(s);
                return PK_EXIT_FAILED;
            }
            if (n == 0) {
                eof = true;
                break;
            }
            have += (size_t)n;
        }
        if (have > 0 && (*rc = fn(obj, buf->data, have)) != P11KMS_OK) return fail(s, *rc);
        progress_step(s, have);
    }
    return PK_EXIT_OK;
}

static int finish(pk_cli *cli, sink *s, p11kms_rc rc, char *json)
{
    int ex;
    if (rc != P11KMS_OK) return fail(s, rc);
    progress_end(s);
    if ((ex = sink_commit(s)) != PK_EXIT_OK) {
        p11kms_free(json);
        return ex;
    }
    if (cli->json && json != NULL) return pk_cli_print_json(cli, json);
    p11kms_free(json);
    return PK_EXIT_OK;
}

/* ---- the commands ---- */

static int parse_suite(const char *s, uint16_t *suite)
{
    if (s == NULL) *suite = 0x0478;
    else if (strcmp(s, "0x0478") == 0) *suite = 0x0478;
    else if (strcmp(s, "0x0578") == 0) *suite = 0x0578;
    else return pk_cli_usage("encrypt-file: --suite must be 0x0478 or 0x0578");
    return PK_EXIT_OK;
}

int pk_cmd_encrypt_file(pk_cli *cli, int argc, char **argv)
{
    file_args a;
    pk_cli_session ss = {0};
    p11kms_file_opts o = {0};
    p11kms_file_encryptor *enc = NULL;
    pk_secbuf buf = PK_SECBUF_INIT;
    unsigned long fl = 4096;
    char *json = NULL;
    p11kms_rc rc = P11KMS_OK;
    int ex, fd = -1;
    sink s = {0};

    if ((ex = parse_args(cli, argc, argv, "key context frame suite threads", &a)) != PK_EXIT_OK) goto out;
    if (a.key == NULL) {
        ex = pk_cli_usage("encrypt-file: --key is required");
        goto out;
    }
    if ((a.frame_length && (ex = parse_num(argv[0], "--frame-length", a.frame_length, 1, FRAME_MAX, &fl)) != 0) ||
        (ex = parse_suite(a.suite, &o.suite)) != 0 || (ex = parse_threads(argv[0], &a, &o.threads)) != 0)
        goto out;
    o.frame_length = (uint32_t)fl;
    if (pk_failed(pk_secbuf_alloc(&buf, CHUNK))) {
        ex = pk_cli_fail(P11KMS_ERR_NO_MEMORY);
        goto out;
    }
    if ((ex = pk_cli_open_input(a.in, &fd)) != PK_EXIT_OK || (ex = pk_cli_session_open(cli, &ss)) != PK_EXIT_OK ||
        (ex = sink_open(&s, a.out, "encrypt-file")) != PK_EXIT_OK)
        goto out;
    progress_start(&s, fd);
    rc = p11kms_file_encryptor_new(ss.h, ss.caller, a.key, a.ctx.kv, a.ctx.n, &o, sink_write, &s, &enc);
    if (rc != P11KMS_OK) {
        ex = fail(&s, rc);
        goto out;
    }
    if ((ex = pump(fd, a.in, &buf, feed_enc, enc, &s, &rc)) != PK_EXIT_OK) goto out;
    rc = p11kms_file_encrypt_final(enc, &json);
    ex = finish(cli, &s, rc, json);
out:
    p11kms_file_encryptor_free(enc);
    sink_abort(&s);
    if (fd > STDIN_FILENO) close(fd);
    pk_secbuf_free(&buf);
    pk_cli_session_close(&ss);
    pk_cli_kv_free(&a.ctx);
    return ex;
}

/* decrypt-file and rewrap-file: the input is ciphertext, the library decides what comes out. */
static int run_reader(pk_cli *cli, const char *what, file_args *a, unsigned threads, bool rewrap)
{
    pk_cli_session ss = {0};
    p11kms_file_decryptor *dec = NULL;
    pk_secbuf buf = PK_SECBUF_INIT;
    char *json = NULL;
    p11kms_rc rc = P11KMS_OK;
    int ex, fd = -1;
    sink s = {0};

    if (pk_failed(pk_secbuf_alloc(&buf, CHUNK))) {
        ex = pk_cli_fail(P11KMS_ERR_NO_MEMORY);
        goto out;
    }
    if ((ex = pk_cli_open_input(a->in, &fd)) != PK_EXIT_OK || (ex = pk_cli_session_open(cli, &ss)) != PK_EXIT_OK ||
        (ex = sink_open(&s, a->out, what)) != PK_EXIT_OK)
        goto out;
    progress_start(&s, fd);
    rc = rewrap ? p11kms_file_rewrapper_new(ss.h, ss.caller, a->key, sink_write, &s, &dec)
                : p11kms_file_decryptor_new(ss.h, ss.caller, a->ctx.kv, a->ctx.n, threads, sink_write, &s, &dec);
    if (rc != P11KMS_OK) {
        ex = fail(&s, rc);
        goto out;
    }
    if ((ex = pump(fd, a->in, &buf, feed_dec, dec, &s, &rc)) != PK_EXIT_OK) goto out;
    rc = p11kms_file_decrypt_final(dec, &json);
    ex = finish(cli, &s, rc, json);
out:
    p11kms_file_decryptor_free(dec);
    sink_abort(&s);
    if (fd > STDIN_FILENO) close(fd);
    pk_secbuf_free(&buf);
    pk_cli_session_close(&ss);
    return ex;
}

int pk_cmd_decrypt_file(pk_cli *cli, int argc, char **argv)
{
    file_args a;
    unsigned threads = 1;
    int ex;
    if ((ex = parse_args(cli, argc, argv, "context threads", &a)) == PK_EXIT_OK &&
        (ex = parse_threads(argv[0], &a, &threads)) == PK_EXIT_OK)
        ex = run_reader(cli, "decrypt-file", &a, threads, false);
    pk_cli_kv_free(&a.ctx);
    return ex;
}

int pk_cmd_rewrap_file(pk_cli *cli, int argc, char **argv)
{
    file_args a;
    int ex;
    if ((ex = parse_args(cli, argc, argv, "key", &a)) == PK_EXIT_OK) ex = run_reader(cli, "rewrap-file", &a, 1, true);
    pk_cli_kv_free(&a.ctx);
    return ex;
}
