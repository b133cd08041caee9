/* The per-thread error detail and origin behind pk_result. The public
 * names, messages and exit codes of the codes are core/api_errors.c: util/
 * defines no p11kms_ symbol, so a client may link it beside libp11kms. */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/result.h"

#define PK_DETAIL_MAX 512

/* Per-thread, so concurrent callers of one handle never see each other's errors. */
static __thread char tl_detail[PK_DETAIL_MAX];
static __thread char tl_origin[96];

const char *pk_error_detail(void)
{
    return tl_detail;
}

pk_result pk_fail_at(p11kms_rc code, const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tl_detail, sizeof(tl_detail), fmt, ap);
    va_end(ap);
    snprintf(tl_origin, sizeof(tl_origin), "%s:%d", file, line);
    if (code == P11KMS_OK) code = P11KMS_ERR_INTERNAL;
    return (pk_result){code};
}

pk_result pk_recode(pk_result r, p11kms_rc code)
{
    if (pk_failed(r)) r.code = code;
    return r;
}

pk_result pk_annotate(pk_result r, const char *fmt, ...)
{
    char prefix[PK_DETAIL_MAX];
    char old[PK_DETAIL_MAX];
    va_list ap;

    if (pk_ok(r)) return r;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof(prefix), fmt, ap);
    va_end(ap);
    memcpy(old, tl_detail, sizeof(old));
    /* Truncation is acceptable: details are one-line messages. */
    size_t pl = strnlen(prefix, sizeof(tl_detail) - 1);
    memcpy(tl_detail, prefix, pl);
    size_t ol = strnlen(old, sizeof(tl_detail) - 1 - pl);
    memcpy(tl_detail + pl, old, ol);
    tl_detail[pl + ol] = '\0';
    return r;
}

void pk_error_clear(void)
{
    tl_detail[0] = '\0';
    tl_origin[0] = '\0';
}

const char *pk_error_origin(void)
{
    return tl_origin;
}

void pk_error_set_origin(const char *origin)
{
    snprintf(tl_origin, sizeof(tl_origin), "%s", origin != NULL ? origin : "");
}

/* Only "1" enables it, so a stray P11KMS_DEBUG=0 stays quiet. */
static bool debug_enabled(void)
{
    const char *v = getenv("P11KMS_DEBUG");
    return v != NULL && strcmp(v, "1") == 0;
}

p11kms_rc pk_error_report(p11kms_rc rc)
{
    /* The detail is secret-free by contract, so it may go to stderr. */
    if (rc != P11KMS_OK && debug_enabled())
        fprintf(stderr, "p11kms debug: %s: %s\n", tl_origin[0] ? tl_origin : "?", tl_detail);
    return rc;
}
