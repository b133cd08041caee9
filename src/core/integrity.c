/* Store record integrity: HMAC-SHA256 in the HSM over a canonical encoding. */
#include "config.h"

#include <string.h>
#include <time.h>

#include "core/core.h"
#include "crypto/wipe.h"

#define RECORD_MAC_DOMAIN "p11kms-record-v1"

int64_t pk_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Length-prefixed fields: no two different records share an encoding. */
static pk_result mac_input(const pk_record *rec, pk_buf *b)
{
    PK_GUARD(pk_buf_append_lpstr(b, RECORD_MAC_DOMAIN));
    PK_GUARD(pk_buf_append_lpstr(b, rec->kind));
    PK_GUARD(pk_buf_append_lpstr(b, rec->id));
    PK_GUARD(pk_buf_append_lpstr(b, rec->ref));
    PK_GUARD(pk_buf_append_be64(b, (uint64_t)rec->due_ms));
    PK_GUARD(pk_buf_append_be64(b, rec->rev));
    return pk_buf_append_lp(b, rec->body.data, rec->body.len);
}

static pk_result compute(p11kms *h, const pk_record *rec, uint8_t mac[PK_HMAC_LEN])
{
    pk_buf b = {0};
    pk_result r = mac_input(rec, &b);
    if (pk_ok(r)) r = pk_p11_hmac(h->p11, &h->store_mac_key, pk_bytes_of(b.data, b.len), mac);
    pk_buf_free(&b);
    return r;
}

int64_t pk_monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

pk_result pk_record_seal(p11kms *h, pk_record *rec)
{
    return compute(h, rec, rec->mac);
}

pk_result pk_record_check(p11kms *h, const pk_record *rec)
{
    uint8_t mac[PK_HMAC_LEN];
    PK_GUARD(compute(h, rec, mac));
    PK_ENSURE(pk_ct_equal(mac, rec->mac, PK_HMAC_LEN), P11KMS_ERR_INTEGRITY,
              "store record %s/%s failed integrity check: it was changed outside p11kms; refusing to use it",
              rec->kind, rec->id);
    return PK_OK;
}

pk_result pk_record_load(p11kms *h, const char *kind, const char *id, pk_record *out, bool *found)
{
    PK_GUARD(h->store->ops->get(h->store, kind, id, out, found));
    if (!*found) return PK_OK;
    return pk_record_check(h, out);
}

pk_result pk_record_save(p11kms *h, pk_record *rec, uint64_t expected_rev)
{
    rec->rev = expected_rev + 1;
    PK_GUARD(pk_record_seal(h, rec));
    return h->store->ops->put(h->store, rec, expected_rev);
}

static __thread uint64_t tl_ticket;

uint64_t pk_store_last_ticket(void) { return tl_ticket; }

/* The sync runs after store_lock is released, so other threads commit while this one waits for the disk. */
static pk_result write_tx(p11kms *h, pk_tx_fn fn, void *ctx, bool batch_ok)
{
    pk_result r;
    uint64_t ticket = 0;

    pthread_mutex_lock(&h->store_lock);
    r = pk_store_begin(h->store, true);
    if (pk_ok(r)) {
        r = fn(h, ctx);
        if (pk_ok(r)) r = pk_op_precommit(h);
        if (pk_ok(r)) r = h->store->ops->commit(h->store, &ticket);
        if (pk_failed(r)) pk_store_rollback(h->store);
    }
    pthread_mutex_unlock(&h->store_lock);
    PK_GUARD(r);
    tl_ticket = ticket;
    return pk_store_durable(h, ticket, batch_ok);
}

pk_result pk_with_write_tx(p11kms *h, pk_tx_fn fn, void *ctx)
{
    return write_tx(h, fn, ctx, false);
}

pk_result pk_with_write_tx_batched(p11kms *h, pk_tx_fn fn, void *ctx)
{
    return write_tx(h, fn, ctx, true);
}

/* ---- The records service handed to keys/ and secrets/ (store/records.h) ---- */

static pk_result rs_load(void *impl, const char *kind, const char *id, pk_record *out, bool *found)
{
    return pk_record_load(impl, kind, id, out, found);
}

static pk_result rs_save(void *impl, pk_record *rec, uint64_t expected_rev)
{
    return pk_record_save(impl, rec, expected_rev);
}

static pk_result rs_check(void *impl, const pk_record *rec) { return pk_record_check(impl, rec); }

typedef struct rs_tx {
    pk_records_tx_fn fn;
    void *ctx;
} rs_tx;

static pk_result rs_tx_run(p11kms *h, void *ctx)
{
    rs_tx *t = ctx;
    (void)h;
    return t->fn(t->ctx);
}

static pk_result rs_write_tx(void *impl, pk_records_tx_fn fn, void *ctx)
{
    rs_tx t = {fn, ctx};
    return pk_with_write_tx(impl, rs_tx_run, &t);
}

/* Asking costs a few microseconds of file locking, so at most every store_recheck_ms. */
static pk_result rs_changed(void *impl, bool *changed)
{
    p11kms *h = impl;
    int64_t now = pk_monotonic_ms();
    *changed = false;
    if (now - h->store_checked_at < h->store_recheck_ms) return PK_OK;
    h->store_checked_at = now;
    return h->store->ops->changed(h->store, changed);
}

static int64_t rs_now(void *impl) { return pk_clock(impl); }

static const pk_records_ops records_ops = {rs_load, rs_save, rs_check, rs_write_tx, rs_changed, rs_now};

void pk_records_bind(p11kms *h)
{
    h->records.ops = &records_ops;
    h->records.impl = h;
    h->records.store = h->store;
    h->records.lock = &h->store_lock;
    h->env.rs = &h->records;
    h->env.p11 = h->p11;
    h->env.account = h->account;
    h->env.region = h->region;
}
