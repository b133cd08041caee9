/*
 * p11kms render TEMPLATE [-o OUT]   (TEMPLATE "-": standard input)
 *
 * Everything is resolved in memory first; nothing is written unless every
 * placeholder resolved. OUT is written atomically with mode 0600: a temp
 * file in OUT's folder, fsync, rename, fsync of the folder. On any failure
 * the temp file is removed and OUT is untouched.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli_session.h"

static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int write_atomic(const char *out, const uint8_t *data, size_t len)
{
    char *copy = strdup(out), *tmp = NULL, *dir;
    int fd = -1, dfd = -1, ex = PK_EXIT_FAILED;
    const char *base;
    if (copy == NULL) return pk_cli_fail(P11KMS_ERR_NO_MEMORY);
    dir = dirname(copy);
    base = strrchr(out, '/') ? strrchr(out, '/') + 1 : out;
    if (asprintf(&tmp, "%s/.%s.XXXXXX", dir, base) < 0) {
        tmp = NULL;
        goto out;
    }
    fd = mkstemp(tmp); /* 0600 from the first byte */
    if (fd < 0 || fchmod(fd, 0600) != 0 || write_all(fd, data, len) != 0 || fsync(fd) != 0) goto fail;
    if (close(fd) != 0) {
        fd = -1;
        goto fail;
    }
    fd = -1;
    if (rename(tmp, out) != 0) goto fail;
    dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
    ex = PK_EXIT_OK;
    goto out;
fail:
    fprintf(stderr, "p11kms: cannot write %s: %s\n", out, strerror(errno));
    if (fd >= 0) close(fd);
    if (tmp != NULL) unlink(tmp);
out:
    free(tmp);
    free(copy);
    return ex;
}

/*
 * The template, up to one byte over the library's limit: enough for
 * p11kms_render to refuse it with its message, and an endless input
 * (render - </dev/zero) is not read into memory without bound.
 */
static int read_template(const char *path, pk_buf *out)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    size_t n, want = (size_t)P11KMS_RENDER_MAX_TEMPLATE_BYTES + 1;
    int ex = PK_EXIT_OK;

    if (f == NULL) {
        fprintf(stderr, "p11kms: cannot open %s: %s\n", path, strerror(errno));
        return PK_EXIT_FAILED;
    }
    if (pk_failed(pk_buf_reserve(out, want))) ex = pk_cli_fail(P11KMS_ERR_NO_MEMORY);
    while (ex == PK_EXIT_OK && out->len < want && (n = fread(out->data + out->len, 1, want - out->len, f)) > 0)
        out->len += n;
    if (ex == PK_EXIT_OK && ferror(f)) {
        fprintf(stderr, "p11kms: cannot read %s: %s\n", path, strerror(errno));
        ex = PK_EXIT_FAILED;
    }
    if (f != stdin) fclose(f);
    return ex;
}

int pk_cmd_render(pk_cli *cli, int argc, char **argv)
{
    const char *tmpl = NULL, *out = NULL, *v;
    pk_buf text = {0};
    pk_cli_session s = {0};
    p11kms_buf *res = NULL;
    p11kms_rc rc;
    int ex = PK_EXIT_OK;

    for (int i = 1; i < argc; i++) {
        if (pk_cli_common_opt(cli, argc, argv, &i)) continue;
        if (pk_cli_optv(argc, argv, &i, "-o", &v) || pk_cli_optv(argc, argv, &i, "--out", &v)) out = v;
        else if (argv[i][0] == '-' && argv[i][1] != '\0') return pk_cli_usage("render: unexpected '%s'", argv[i]);
        else if (tmpl == NULL) tmpl = argv[i];
        else return pk_cli_usage("render TEMPLATE [-o OUT]");
    }
    if (tmpl == NULL) return pk_cli_usage("render TEMPLATE [-o OUT]");
    if ((ex = read_template(tmpl, &text)) != PK_EXIT_OK) goto done;
    if ((ex = pk_cli_session_open(cli, &s)) != PK_EXIT_OK) goto done;
    rc = p11kms_render(s.h, s.caller, (const char *)text.data, text.len, &res);
    if (rc != P11KMS_OK) ex = pk_cli_fail(rc);
    else if (out != NULL) ex = write_atomic(out, p11kms_buf_data(res), p11kms_buf_len(res));
    else ex = pk_cli_write_secret(NULL, p11kms_buf_data(res), p11kms_buf_len(res));
done:
    p11kms_buf_free(res);
    pk_buf_free(&text);
    pk_cli_session_close(&s);
    return ex;
}
