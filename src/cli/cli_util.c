/* Shared helpers of the p11kms command: error reporting, output, options. */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

int pk_cli_fail(p11kms_rc rc)
{
    const char *detail = p11kms_last_error();
    if (detail == NULL || *detail == '\0')
        fprintf(stderr, "p11kms: %s\n", p11kms_strerror(rc));
    else
        fprintf(stderr, "p11kms: %s\n", detail);
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

int pk_cli_read_file(const char *path, pk_buf *out)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    char chunk[4096];
    size_t n;

    if (f == NULL) {
        fprintf(stderr, "p11kms: cannot open %s: %s\n", path, strerror(errno));
        return PK_EXIT_FAILED;
    }
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (pk_failed(pk_buf_append(out, chunk, n))) {
            if (f != stdin) fclose(f);
            return pk_cli_fail(P11KMS_ERR_NO_MEMORY);
        }
    }
    if (ferror(f)) {
        fprintf(stderr, "p11kms: cannot read %s: %s\n", path, strerror(errno));
        if (f != stdin) fclose(f);
        return PK_EXIT_FAILED;
    }
    if (f != stdin) fclose(f);
    if (pk_failed(pk_buf_cstr(out))) return pk_cli_fail(P11KMS_ERR_NO_MEMORY);
    return PK_EXIT_OK;
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
        return true;
    }
    return false;
}

int pk_cli_load_config(pk_cli *cli, p11kms_config **cfg)
{
    p11kms_rc rc = p11kms_config_load(cli->config_path, cfg);
    return rc == P11KMS_OK ? PK_EXIT_OK : pk_cli_fail(rc);
}
