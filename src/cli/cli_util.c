/* Shared helpers of the p11kms command: error reporting, output, options. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "util/json_out.h"

int pk_cli_fail(p11kms_rc rc)
{
    const char *detail = p11kms_last_error();
    if (detail == NULL || *detail == '\0')
        fprintf(stderr, "p11kms: %s\n", p11kms_strerror(rc));
    else
        fprintf(stderr, "p11kms: %s\n", detail);
    return p11kms_exit_code(rc);
}

int pk_cli_fail_at(const char *at, p11kms_rc rc)
{
    const char *detail = p11kms_last_error();
    fprintf(stderr, "p11kms: %s: %s\n", at, detail != NULL && *detail != '\0' ? detail : p11kms_strerror(rc));
    return p11kms_exit_code(rc);
}

int pk_cli_usage(const char *fmt, ...)
{
    va_list ap;
    fputs("p11kms: usage: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs(" (see p11kms --help)\n", stderr);
    return PK_EXIT_USAGE;
}

int pk_cli_print_buf(pk_buf *b)
{
    if (b->len > 0) fwrite(b->data, 1, b->len, stdout);
    fputc('\n', stdout);
    if (fflush(stdout) != 0) {
        fprintf(stderr, "p11kms: cannot write output: %s\n", strerror(errno));
        return PK_EXIT_FAILED;
    }
    return PK_EXIT_OK;
}

int pk_cli_print_str(const char *s)
{
    pk_buf b = {.data = (uint8_t *)(uintptr_t)s, .len = strlen(s)};
    return pk_cli_print_buf(&b);
}

int pk_cli_open_input(const char *path, int *fd)
{
    struct stat st;
    int flags;

    if (path == NULL || strcmp(path, "-") == 0) {
        *fd = STDIN_FILENO; /* a pipe or terminal is fine: the user chose it */
        return PK_EXIT_OK;
    }
    /* O_NONBLOCK: opening a FIFO without a writer must not hang us. */
    *fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (*fd < 0) {
        fprintf(stderr, "p11kms: cannot open %s: %s\n", path, strerror(errno));
        return PK_EXIT_FAILED;
    }
    if (fstat(*fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(*fd);
        *fd = -1;
        fprintf(stderr, "p11kms: %s is not a regular file (use - to read standard input)\n", path);
        return PK_EXIT_USAGE;
    }
    flags = fcntl(*fd, F_GETFL);
    if (flags >= 0) (void)fcntl(*fd, F_SETFL, flags & ~O_NONBLOCK);
    return PK_EXIT_OK;
}

static const char *input_name(const char *path)
{
    return (path == NULL || strcmp(path, "-") == 0) ? "standard input" : path;
}

int pk_cli_read_file(const char *path, size_t max, const char *limit, pk_buf *out)
{
    uint8_t chunk[4096];
    int fd, ex;
    ssize_t n = 0;

    if ((ex = pk_cli_open_input(path, &fd)) != PK_EXIT_OK) return ex;
    /* Never hold more than max+1 bytes: one byte over tells "too large" apart. */
    while (out->len <= max) {
        size_t want = max + 1 - out->len < sizeof(chunk) ? max + 1 - out->len : sizeof(chunk);
        n = read(fd, chunk, want);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        if (pk_failed(pk_buf_append(out, chunk, (size_t)n))) {
            ex = pk_cli_fail(P11KMS_ERR_NO_MEMORY);
            break;
        }
    }
    if (ex == PK_EXIT_OK && n < 0) {
        fprintf(stderr, "p11kms: cannot read %s: %s\n", input_name(path), strerror(errno));
        ex = PK_EXIT_FAILED;
    } else if (ex == PK_EXIT_OK && out->len > max) {
        fprintf(stderr, "p11kms: %s is too large: %s\n", input_name(path), limit);
        ex = PK_EXIT_USAGE;
    } else if (ex == PK_EXIT_OK && pk_failed(pk_buf_cstr(out))) {
        ex = pk_cli_fail(P11KMS_ERR_NO_MEMORY);
    }
    if (fd != STDIN_FILENO) close(fd);
    return ex;
}


int pk_cli_write_fd(int fd, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n > 0) {
        ssize_t w = write(fd, b, n);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return -1;
        if (w == 0) {
            errno = EIO;
            return -1;
        }
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

int pk_cli_write_stdout(const void *p, size_t n)
{
    if (fflush(stdout) != 0 || pk_cli_write_fd(STDOUT_FILENO, p, n) != 0) {
        fprintf(stderr, "p11kms: cannot write output: %s\n", strerror(errno));
        return PK_EXIT_FAILED;
    }
    return PK_EXIT_OK;
}

/* An existing target must be a regular file we may replace: never a FIFO, device, link or folder. */
static int check_target(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0) return errno == ENOENT ? PK_EXIT_OK : PK_EXIT_FAILED;
    if (S_ISREG(st.st_mode)) return PK_EXIT_OK;
    fprintf(stderr, "p11kms: %s exists and is not a regular file; refusing to replace it\n", path);
    return PK_EXIT_USAGE;
}

static void fsync_dir(const char *dir)
{
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) return;
    (void)fsync(dfd);
    close(dfd);
}

int pk_cli_write_file_atomic(const char *path, const uint8_t *data, size_t len)
{
    char *copy = strdup(path), *tmp = NULL, *dir;
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    int fd = -1, ex;

    if (copy == NULL) return pk_cli_fail(P11KMS_ERR_NO_MEMORY);
    dir = dirname(copy);
    if ((ex = check_target(path)) != PK_EXIT_OK) {
        if (ex == PK_EXIT_FAILED) fprintf(stderr, "p11kms: cannot write %s: %s\n", path, strerror(errno));
        goto out;
    }
    ex = PK_EXIT_FAILED;
    if (*base == '\0' || asprintf(&tmp, "%s/.%s.XXXXXX", dir, base) < 0) {
        tmp = NULL;
        errno = EINVAL;
        goto fail;
    }
    /* mkostemp: O_CREAT|O_EXCL (a link in the way is an error, not followed), mode 0600 from the first byte. */
    fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) {
        free(tmp);
        tmp = NULL;
        goto fail;
    }
    if (fchmod(fd, 0600) != 0 || pk_cli_write_fd(fd, data, len) != 0 || fsync(fd) != 0) goto fail;
    if (close(fd) != 0) {
        fd = -1;
        goto fail;
    }
    fd = -1;
    if (rename(tmp, path) != 0) goto fail;
    fsync_dir(dir);
    ex = PK_EXIT_OK;
    goto out;
fail:
    fprintf(stderr, "p11kms: cannot write %s: %s\n", path, strerror(errno));
    if (fd >= 0) close(fd);
    if (tmp != NULL) unlink(tmp);
out:
    free(tmp);
    free(copy);
    return ex;
}

void pk_cli_harden(void)
{
    (void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

void pk_cli_warn_argv_secret(const char *key, const char *hint)
{
    fprintf(stderr,
            "p11kms: warning: secret value for '%s' given on the command line is visible to other local users; "
            "use %s\n",
            key, hint);
}

int pk_cli_print_jo(pk_json_out *j)
{
    pk_result r = pk_jo_result(j);
    int ex = pk_ok(r) ? pk_cli_print_buf(j->buf) : pk_cli_fail(r.code);
    pk_buf_free(j->buf);
    return ex;
}

int pk_cli_print_obj(const char *k1, ...)
{
    pk_buf b = {0};
    pk_json_out j;
    va_list ap;
    const char *k = k1;

    pk_jo_init(&j, &b);
    pk_jo_obj_begin(&j);
    va_start(ap, k1);
    while (k != NULL) {
        pk_jo_kstr(&j, k, va_arg(ap, const char *));
        k = va_arg(ap, const char *);
    }
    va_end(ap);
    pk_jo_obj_end(&j);
    return pk_cli_print_jo(&j);
}

bool pk_cli_opt(int argc, char **argv, int *i, const char *name, const char **value)
{
    size_t n = strlen(name);
    const char *a = argv[*i];

    if (strncmp(a, name, n) != 0) return false;
    if (a[n] == '=') {
        *value = a + n + 1;
        return true;
    }
    if (a[n] != '\0') return false;
    if (*i + 1 >= argc) {
        *value = NULL; /* caller reports the missing value */
        return true;
    }
    *value = argv[++*i];
    return true;
}

bool pk_cli_optv(int argc, char **argv, int *i, const char *name, const char **value)
{
    if (!pk_cli_opt(argc, argv, i, name, value)) return false;
    if (*value == NULL) exit(pk_cli_usage("%s needs a value", name));
    return true;
}

bool pk_cli_common_opt(pk_cli *cli, int argc, char **argv, int *i)
{
    const char *v;
    if (strcmp(argv[*i], "--json") == 0) {
        cli->json = true;
        return true;
    }
    if (pk_cli_opt(argc, argv, i, "--config", &v)) {
        if (v == NULL) exit(pk_cli_usage("--config needs a FILE"));
        cli->config_path = v;
        return true;
    }
    if (pk_cli_opt(argc, argv, i, "--as", &v)) {
        if (v == NULL || *v == '\0') exit(pk_cli_usage("--as needs a PRINCIPAL"));
        cli->principal = v;
        cli->as_given = true;
        return true;
    }
    return false;
}

int pk_cli_load_config(pk_cli *cli, p11kms_config **cfg)
{
    p11kms_rc rc = p11kms_config_load(cli->config_path, cfg);
    return rc == P11KMS_OK ? PK_EXIT_OK : pk_cli_fail(rc);
}
