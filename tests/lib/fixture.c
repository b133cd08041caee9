#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/fixture.h"

static const char *env_or(const char *name, const char *dflt)
{
    const char *v = getenv(name);
    return v != NULL && *v != '\0' ? v : dflt;
}

void pk_fixture_src(const char *rel, char *out, size_t out_size)
{
    snprintf(out, out_size, "%s/%s", env_or("P11KMS_TOP_SRCDIR", "."), rel);
}

static void make_token(const char *dir, const char *label)
{
    char script[512], cmd[2048], bin[512];
    pk_fixture_src("tokens/softhsm-token.sh", script, sizeof(script));
    snprintf(bin, sizeof(bin), "%s/p11kms", env_or("P11KMS_TOP_BUILDDIR", "."));
    snprintf(cmd, sizeof(cmd), "P11KMS_BIN='%s' '%s' '%s' '%s' >/dev/null", bin, script, dir, label);
    if (system(cmd) != 0) {
        fprintf(stderr, "fixture: cannot create a SoftHSM token: %s\n", cmd);
        exit(99);
    }
}

void pk_fixture_setup(pk_fixture *f)
{
    char tmpl[] = "/tmp/p11kms-test-XXXXXX";
    char env[512];

    memset(f, 0, sizeof(*f));
    if (mkdtemp(tmpl) == NULL) {
        perror("mkdtemp");
        exit(99);
    }
    snprintf(f->dir, sizeof(f->dir), "%s", tmpl);
    make_token(f->dir, "p11kms-test");
    snprintf(env, sizeof(env), "%s/softhsm2.conf", f->dir);
    setenv("SOFTHSM2_CONF", env, 1);
    snprintf(f->conf, sizeof(f->conf), "%s/p11kms.conf", f->dir);
    if (p11kms_config_load(f->conf, &f->cfg) != P11KMS_OK) {
        fprintf(stderr, "fixture: cannot load %s: %s\n", f->conf, p11kms_last_error());
        exit(99);
    }
}

void pk_fixture_write(const pk_fixture *f, const char *name, const char *text, char *out, size_t out_size)
{
    FILE *fp;
    snprintf(out, out_size, "%s/%s", f->dir, name);
    fp = fopen(out, "w");
    if (fp == NULL || fputs(text, fp) < 0 || fclose(fp) != 0) {
        fprintf(stderr, "fixture: cannot write %s\n", out);
        exit(99);
    }
    chmod(out, 0600);
}

void pk_fixture_teardown(pk_fixture *f)
{
    char cmd[600];
    p11kms_config_free(f->cfg);
    f->cfg = NULL;
    if (getenv("P11KMS_KEEP_TEST_DIR") != NULL || f->dir[0] == '\0') return;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    if (system(cmd) != 0) fprintf(stderr, "fixture: cannot remove %s\n", f->dir);
}

int pk_run_suites(void)
{
    unsigned failures;
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    failures = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
    if (CU_get_error() != CUE_SUCCESS) failures++;
    CU_cleanup_registry();
    return failures == 0 ? 0 : 1;
}

void pk_assert_detail(const char *file, int line, const char *want)
{
    if (want == NULL || strcmp(p11kms_last_error(), want) == 0) return;
    fprintf(stderr, "\n  %s:%d: detail '%s'\n  want   '%s'\n", file, line, p11kms_last_error(), want);
    CU_FAIL("error detail differs");
}
