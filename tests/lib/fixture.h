/*
 * Test fixtures: every test program gets a fresh SoftHSM token in its own
 * temporary folder (its own SOFTHSM2_CONF), made by tokens/softhsm-token.sh
 * exactly as a user would make one. The system token folder is never used.
 */
#ifndef PK_TESTS_FIXTURE_H
#define PK_TESTS_FIXTURE_H

#include <CUnit/Basic.h>
#include <stdbool.h>

#include "p11kms/p11kms.h"

typedef struct pk_fixture {
    char dir[256];      /* token folder: softhsm2.conf, user.pin, p11kms.conf */
    char conf[320];     /* dir/p11kms.conf */
    p11kms_config *cfg;
} pk_fixture;

/* Create the token (label "p11kms-test") and load its p11kms.conf. Aborts on failure. */
void pk_fixture_setup(pk_fixture *f);
void pk_fixture_teardown(pk_fixture *f);
/* Write a file (mode 0600) under the fixture folder; returns its path in out. */
void pk_fixture_write(const pk_fixture *f, const char *name, const char *text, char *out, size_t out_size);
/* Path of a source-tree file (P11KMS_TOP_SRCDIR or "."). */
void pk_fixture_src(const char *rel, char *out, size_t out_size);

/* Run the registered suites; returns the process exit status. */
int pk_run_suites(void);

/* Compare the thread's error detail with want (NULL: do not check). */
void pk_assert_detail(const char *file, int line, const char *want);

/* Assert a p11kms call's code and, when `detail` is non-NULL, the exact detail text. */
#define PK_ASSERT_RC(call, want, detail)                                                        \
    do {                                                                                        \
        p11kms_rc got_ = (call);                                                                \
        CU_ASSERT_EQUAL(got_, (want));                                                          \
        if (got_ != (want))                                                                     \
            fprintf(stderr, "\n  %s:%d: got %s (%s), want %s\n", __FILE__, __LINE__,           \
                    p11kms_rc_name(got_), p11kms_last_error(), p11kms_rc_name(want));           \
        pk_assert_detail(__FILE__, __LINE__, (detail));                                         \
    } while (0)

#endif
