/* p11kms_audit_verify | p11kms_audit_rotate | p11kms_audit_files: the audit trail without a store. */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit/audit.h"
#include "conf/conf.h"
#include "p11/p11.h"
#include "core/freshness.h"
#include "core/op.h"
#include "util/json_out.h"

/* The configured log path; a config failure naming the file when unset. */
static pk_result audit_path(const p11kms_config *cfg, const char **path)
{
    *path = pk_conf_path_value(cfg, "audit");
    if (*path == NULL) return pk_fail(P11KMS_ERR_CONFIG, "%s: no `audit` path set", p11kms_config_path(cfg));
    return PK_OK;
}

/* The audit key lives on the token: a read-write login session of one. */
static pk_result open_token(const p11kms_config *cfg, pk_p11 **p11)
{
    pk_p11_opts o;
    memset(&o, 0, sizeof(o));
    o.module = p11kms_config_get(cfg, "module");
    o.token_uri = p11kms_config_get(cfg, "token");
    o.cfg = cfg;
    o.pool_size = 1;
    o.require_login = true;
    o.read_write = true;
    return pk_p11_open(&o, p11);
}

static pk_result report_to_json(const pk_audit_report *rep, char **out)
{
    pk_buf b = {0};
    pk_json_out j;

    pk_jo_init(&j, &b);
    pk_jo_obj_begin(&j);
    pk_jo_kbool(&j, "ok", rep->problem == PK_AUDIT_OK);
    if (rep->problem != PK_AUDIT_OK) {
        pk_jo_kstr(&j, "problem", pk_audit_problem_name(rep->problem));
        pk_jo_kstr(&j, "file", rep->file);
        pk_jo_kint(&j, "line", (int64_t)rep->line);
        pk_jo_kint(&j, "seq", (int64_t)rep->seq);
        pk_jo_kstr(&j, "detail", rep->detail);
    }
    pk_jo_kint(&j, "files", (int64_t)rep->files);
    pk_jo_kint(&j, "records", (int64_t)rep->records);
    pk_jo_kint(&j, "seals", (int64_t)rep->seals);
    pk_jo_kint(&j, "last_seq", (int64_t)rep->last_seq);
    pk_jo_kint(&j, "last_sealed_seq", (int64_t)rep->last_sealed_seq);
    pk_jo_kint(&j, "unsealed", (int64_t)rep->unsealed);
    pk_jo_kint(&j, "unreadable", (int64_t)rep->unreadable);
    pk_jo_kstr(&j, "head", rep->head);
    pk_jo_obj_end(&j);
    return pk_jo_take(&j, out);
}

/*
 * The audit head anchored in the HSM with the store (docs/AUDIT.md): a
 * configured trail that ends before it was cut back to a seal boundary, or
 * lost its newest files. Without a store or an anchor there is nothing to
 * compare (a trail verified on its own).
 */
static void check_anchored_head(const p11kms_config *cfg, pk_audit_report *rep)
{
    p11kms *h = NULL;
    char service[PK_UUID_STR_LEN + 1];
    uint64_t head = 0;
    bool found = false;

    if (pk_ok(pk_handle_open(cfg, 0, &h, service)))
        found = pk_ok(pk_fresh_anchored_audit(h, service, &head, &found)) && found;
    p11kms_close(h);
    pk_error_clear();
    if (!found || rep->last_seq >= head) return;
    if (rep->problem != PK_AUDIT_OK && rep->problem != PK_AUDIT_TRUNCATED) return; /* the first problem stands */
    rep->problem = PK_AUDIT_TRUNCATED;
    snprintf(rep->file, sizeof(rep->file), "%s", pk_conf_path_value(cfg, "audit"));
    rep->line = 0;
    rep->seq = rep->last_seq + 1;
    snprintf(rep->detail, sizeof(rep->detail),
             "the trail ends at seq %" PRIu64 ", before the head anchored in the HSM (seq %" PRIu64
             "): records after a seal were cut off, or the newest files deleted",
             rep->last_seq, head);
}

P11KMS_API p11kms_rc p11kms_audit_verify(const p11kms_config *cfg, const char *const *files, size_t nfiles,
                                         unsigned flags, char **report_json)
{
    pk_result r = PK_OK;
    pk_p11 *p11 = NULL;
    char **series = NULL;
    size_t nseries = 0;
    const char *path;
    pk_audit_report *rep = NULL;

    pk_error_clear();
    *report_json = NULL;
    PK_CHECK(cfg != NULL && (files != NULL || nfiles == 0), P11KMS_ERR_INVALID_ARGUMENT, "audit verify: no config");
    PK_CHECK((flags & ~(unsigned)P11KMS_AUDIT_ALLOW_UNSEALED) == 0, P11KMS_ERR_INVALID_ARGUMENT,
             "audit verify: unknown flags 0x%x", flags);
    if (nfiles == 0) {
        PK_TRY(audit_path(cfg, &path));
        PK_TRY(pk_audit_series(path, &series, &nseries));
        PK_CHECK(nseries > 0, P11KMS_ERR_NOT_FOUND, "audit: no audit log at %s", path);
        files = (const char *const *)series;
        nfiles = nseries;
    }
    rep = calloc(1, sizeof(*rep));
    PK_CHECK_ALLOC(rep);
    PK_TRY(open_token(cfg, &p11));
    PK_TRY(pk_audit_verify(p11, NULL, files, nfiles,
                           (flags & P11KMS_AUDIT_ALLOW_UNSEALED) ? PK_AUDIT_VERIFY_ALLOW_UNSEALED : 0, rep));
    if (series != NULL) {
        pk_p11_close(p11); /* the store's handle opens its own session pool */
        p11 = NULL;
        check_anchored_head(cfg, rep);
    }
    PK_TRY(report_to_json(rep, report_json));
out:
    pk_p11_close(p11);
    pk_audit_series_free(series, nseries);
    free(rep);
    return r.code;
}

P11KMS_API p11kms_rc p11kms_audit_rotate(const p11kms_config *cfg, const char *principal, char **rotated)
{
    pk_result r = PK_OK, rc;
    pk_p11 *p11 = NULL;
    pk_audit *a = NULL;
    pk_audit_event ev;
    char name[4096] = "";

    pk_error_clear();
    *rotated = NULL;
    PK_CHECK(cfg != NULL, P11KMS_ERR_INVALID_ARGUMENT, "audit rotate: no config");
    PK_TRY(open_token(cfg, &p11));
    PK_TRY(pk_audit_open_conf(cfg, p11, &a));
    /* The rotation is itself an auditable act; it lands in the file being closed. */
    memset(&ev, 0, sizeof(ev));
    ev.principal = principal;
    ev.action = "RotateAuditLog";
    ev.result = P11KMS_OK;
    PK_TRY(pk_audit_write(a, &ev, NULL));
    PK_TRY(pk_audit_rotate(a, name, sizeof(name)));
out:
    rc = pk_audit_close(a);
    if (pk_ok(r)) r = rc;
    pk_p11_close(p11);
    if (pk_ok(r) && (*rotated = strdup(name)) == NULL) r = pk_fail(P11KMS_ERR_NO_MEMORY, "out of memory");
    return r.code;
}

P11KMS_API p11kms_rc p11kms_audit_files(const p11kms_config *cfg, char **json)
{
    pk_result r = PK_OK;
    char **series = NULL;
    size_t n = 0;
    const char *path;
    pk_buf b = {0};
    pk_json_out j;

    pk_error_clear();
    *json = NULL;
    PK_CHECK(cfg != NULL, P11KMS_ERR_INVALID_ARGUMENT, "audit files: no config");
    PK_TRY(audit_path(cfg, &path));
    PK_TRY(pk_audit_series(path, &series, &n));
    pk_jo_init(&j, &b);
    pk_jo_arr_begin(&j);
    for (size_t i = 0; i < n; i++) pk_jo_str(&j, series[i]);
    pk_jo_arr_end(&j);
    PK_TRY(pk_jo_take(&j, json));
out:
    pk_audit_series_free(series, n);
    return r.code;
}

P11KMS_API const char *p11kms_config_path_value(const p11kms_config *cfg, const char *key)
{
    return cfg == NULL || key == NULL ? NULL : pk_conf_path_value(cfg, key);
}
