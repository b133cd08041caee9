/*
 * p11kms_store_accept_restore: take a restored (older) store back into
 * service on purpose (docs/STORE.md, Freshness). A store behind its anchor
 * is refused at every open; a key administrator of the service, naming a
 * reason, re-anchors it to its records as they are, after seeing what is
 * given up. The operation is audited with the reason and both states.
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "core/core.h"
#include "core/freshness.h"
#include "core/op.h"
#include "util/json_out.h"

#define REASON_MAX 256

static pk_result check_reason(const char *reason)
{
    size_t n = reason ? strlen(reason) : 0;
    PK_ENSURE(n > 0, P11KMS_ERR_INVALID_ARGUMENT,
              "store accept-restore: --reason TEXT is required (why the store goes back to an older state)");
    PK_ENSURE(n <= REASON_MAX, P11KMS_ERR_INVALID_ARGUMENT, "store accept-restore: --reason is longer than %d bytes",
              REASON_MAX);
    for (size_t i = 0; i < n; i++)
        PK_ENSURE((unsigned char)reason[i] >= 0x20 && reason[i] != 0x7f, P11KMS_ERR_INVALID_ARGUMENT,
                  "store accept-restore: --reason must be printable text on one line");
    return PK_OK;
}

/* One entry per kind whose records differ from what the file's own state says (rows changed outside p11kms). */
static void report_kinds(pk_json_out *j, const pk_fresh_loss *l)
{
    const pk_fresh_state *sides[2] = {&l->want, &l->have};
    pk_jo_key(j, "changed_outside");
    pk_jo_arr_begin(j);
    for (int s = 0; s < 2; s++)
        for (size_t i = 0; i < sides[s]->nk; i++) {
            const char *kind = sides[s]->k[i].kind;
            const pk_fresh_kind *h = pk_fresh_kind_of(&l->have, kind), *w = pk_fresh_kind_of(&l->want, kind);
            if (s == 1 && w->kind[0] != '\0') continue; /* listed from the other side */
            if (h->n == w->n && memcmp(h->sum, w->sum, PK_FRESH_LEN) == 0) continue;
            pk_jo_obj_begin(j);
            pk_jo_kstr(j, "kind", kind);
            pk_jo_kint(j, "records", (int64_t)h->n);
            pk_jo_kint(j, "recorded_state_records", (int64_t)w->n);
            pk_jo_obj_end(j);
        }
    pk_jo_arr_end(j);
}

static pk_result report(const pk_fresh_loss *l, const char *reason, bool dry_run, char **out)
{
    pk_buf b = {0};
    pk_json_out j;
    pk_result r;

    pk_jo_init(&j, &b);
    pk_jo_obj_begin(&j);
    pk_jo_kint(&j, "store_state", (int64_t)l->store_seq);
    pk_jo_kint(&j, "anchored_state", (int64_t)l->anchored_seq);
    pk_jo_kint(&j, "lost_write_transactions",
               l->anchored_seq > l->store_seq ? (int64_t)(l->anchored_seq - l->store_seq) : 0);
    report_kinds(&j, l);
    pk_jo_kstr(&j, "reason", reason);
    pk_jo_kbool(&j, "accepted", !dry_run);
    pk_jo_obj_end(&j);
    r = pk_jo_result(&j);
    if (pk_ok(r)) r = pk_str_out(&b, out);
    pk_buf_free(&b);
    return r;
}

static pk_result accept_tx(p11kms *h, void *ctx)
{
    (void)ctx;
    return pk_fresh_accept(h);
}

P11KMS_API p11kms_rc p11kms_store_accept_restore(const p11kms_config *cfg, const p11kms_caller *c, const char *reason,
                                                 unsigned flags, char **report_json)
{
    pk_result r = PK_OK;
    p11kms *h = NULL;
    char service[PK_UUID_STR_LEN + 1];
    pk_fresh_loss loss;
    pk_op op;
    char nums[3][24];
    pk_kv extra[4];
    bool dry_run = (flags & P11KMS_ACCEPT_RESTORE_DRY_RUN) != 0;

    pk_error_clear();
    *report_json = NULL;
    PK_CHECK(cfg != NULL && c != NULL, P11KMS_ERR_INVALID_ARGUMENT, "store accept-restore: no config or caller");
    PK_CHECK(flags <= P11KMS_ACCEPT_RESTORE_DRY_RUN, P11KMS_ERR_INVALID_ARGUMENT,
             "store accept-restore: unknown flags");
    PK_TRY(check_reason(reason));
    PK_TRY(pk_handle_open(cfg, PK_OPEN_AUDIT, &h, service));
    PK_TRY(pk_op_begin(&op, h, c, "p11kms:AcceptRestore"));
    pk_op_output_str(&op, report_json);
    /* Re-anchoring overrides the HSM's record of the store: only the service's key administrators. */
    r = pk_op_authorize_service_admin(&op, "kms:PutKeyPolicy");
    if (pk_ok(r)) r = pk_fresh_assess(h, service, &loss);
    if (pk_ok(r)) {
        snprintf(nums[0], sizeof(nums[0]), "%" PRIu64, loss.store_seq);
        snprintf(nums[1], sizeof(nums[1]), "%" PRIu64, loss.anchored_seq);
        snprintf(nums[2], sizeof(nums[2]), "%" PRIu64,
                 loss.anchored_seq > loss.store_seq ? loss.anchored_seq - loss.store_seq : 0);
        extra[0] = (pk_kv){"reason", reason};
        extra[1] = (pk_kv){"store_state", nums[0]};
        extra[2] = (pk_kv){"anchored_state", nums[1]};
        extra[3] = (pk_kv){"lost_write_transactions", nums[2]};
        op.extra = extra;
        op.nextra = 4;
        r = report(&loss, reason, dry_run, report_json);
    }
    if (pk_ok(r) && !dry_run) r = pk_op_preflight(&op);
    if (pk_ok(r) && !dry_run) r = pk_with_write_tx(h, accept_tx, NULL);
    r.code = pk_op_finish(&op, r);
out:
    p11kms_close(h);
    return r.code;
}
