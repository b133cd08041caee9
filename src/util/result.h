/*
 * The internal result type and its guard macros (after s2n-tls).
 *
 * Every internal function that can fail returns pk_result, marked
 * PK_MUST_USE so an ignored error does not compile. A failure records a code
 * and a one-line, secret-free detail in thread-local storage (see error.c).
 *
 * Two styles, one per situation:
 *   PK_GUARD / PK_ENSURE return at once: for functions with nothing to clean.
 *   PK_TRY / PK_CHECK jump to `out:` with `r` set: for functions that own
 *   resources (OpenSSH style, one exit, cleanup always runs).
 */
#ifndef PK_UTIL_RESULT_H
#define PK_UTIL_RESULT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "p11kms/p11kms.h"

#define PK_MUST_USE __attribute__((warn_unused_result))
#define PK_PRINTF(f, a) __attribute__((format(printf, f, a)))

typedef struct pk_result {
    p11kms_rc code;
} pk_result;

#define PK_OK ((pk_result){P11KMS_OK})

static inline bool pk_ok(pk_result r) { return r.code == P11KMS_OK; }
static inline bool pk_failed(pk_result r) { return r.code != P11KMS_OK; }

/* Record a failure with a formatted detail; returns it for `return`. */
pk_result pk_fail_at(p11kms_rc code, const char *file, int line, const char *fmt, ...) PK_PRINTF(4, 5);
#define pk_fail(code, ...) pk_fail_at((code), __FILE__, __LINE__, __VA_ARGS__)

/* Replace the code of a failure but keep its detail (e.g. map HSM -> LOGIN). */
pk_result pk_recode(pk_result r, p11kms_rc code);
/* Prefix the current detail with context ("key 1234: "). */
pk_result pk_annotate(pk_result r, const char *fmt, ...) PK_PRINTF(2, 3);

/* A code's message, stable name and exit code (p11kms_strerror, _rc_name, _exit_code). */
const char *pk_rc_message(p11kms_rc rc);
const char *pk_rc_name(p11kms_rc rc);
int pk_rc_exit_code(p11kms_rc rc);
/* The thread's detail of its last failure ("" when none); p11kms_last_error. */
const char *pk_error_detail(void);
/* Clear the thread's detail (start of a public call). */
void pk_error_clear(void);
/* file:line where the last failure on this thread first arose (pk_recode and
 * pk_annotate keep it), for debugging. */
const char *pk_error_origin(void);
/* Put back an origin saved before re-recording a failure's detail. */
void pk_error_set_origin(const char *origin);
/* End of a public call: with P11KMS_DEBUG=1 in the environment, print
 * "p11kms debug: <origin>: <detail>" on stderr when rc is an error. Returns rc. */
p11kms_rc pk_error_report(p11kms_rc rc);

#define PK_GUARD(expr)                                   \
    do {                                                 \
        pk_result pk_g_ = (expr);                        \
        if (pk_failed(pk_g_)) return pk_g_;              \
    } while (0)

#define PK_ENSURE(cond, code, ...)                       \
    do {                                                 \
        if (!(cond)) return pk_fail((code), __VA_ARGS__); \
    } while (0)

#define PK_ENSURE_REF(p) PK_ENSURE((p) != NULL, P11KMS_ERR_INTERNAL, "internal error: %s is NULL", #p)
#define PK_ENSURE_ALLOC(p) PK_ENSURE((p) != NULL, P11KMS_ERR_NO_MEMORY, "out of memory")

#define PK_TRY(expr)                                     \
    do {                                                 \
        r = (expr);                                      \
        if (pk_failed(r)) goto out;                      \
    } while (0)

#define PK_CHECK(cond, code, ...)                        \
    do {                                                 \
        if (!(cond)) {                                   \
            r = pk_fail((code), __VA_ARGS__);            \
            goto out;                                    \
        }                                                \
    } while (0)

#define PK_CHECK_ALLOC(p) PK_CHECK((p) != NULL, P11KMS_ERR_NO_MEMORY, "out of memory")

/* Deliberately ignore a result (best-effort cleanup on an error path). */
#define PK_IGNORE(expr)                                  \
    do {                                                 \
        pk_result pk_i_ = (expr);                        \
        (void)pk_i_;                                     \
    } while (0)

#define PK_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif
