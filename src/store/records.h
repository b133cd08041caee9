/*
 * The records service: what keys/ and secrets/ need from the layer above
 * them to keep their records, without seeing the p11kms handle.
 *
 * core/ implements it (core/integrity.c) and hands it down when a handle
 * opens: the store and the lock that serialises its transactions, MAC'd
 * record load/save/check (the MAC is computed in the HSM with the store
 * key), write transactions (which also write the running operation's
 * audit record and make the change durable), "did another process
 * write?" and the handle's clock. It lives here, below keys/ and
 * secrets/, so they include nothing from core/.
 */
#ifndef PK_STORE_RECORDS_H
#define PK_STORE_RECORDS_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "store/store.h"
#include "util/result.h"

/* The body of a write transaction; runs with the store lock held. */
typedef pk_result (*pk_records_tx_fn)(void *ctx);

typedef struct pk_records_ops {
    /* get + MAC check; *found=false when absent. Caller holds the lock. */
    pk_result (*load)(void *impl, const char *kind, const char *id, pk_record *out, bool *found);
    /* Seal (rev = expected_rev + 1) and put. Caller holds the lock. */
    pk_result (*save)(void *impl, pk_record *rec, uint64_t expected_rev);
    /* Check the MAC of a record read directly from the store. */
    pk_result (*check)(void *impl, const pk_record *rec);
    /* Run fn in a write transaction (takes the lock); durable before returning. */
    pk_result (*write_tx)(void *impl, pk_records_tx_fn fn, void *ctx);
    /* Whether another process wrote, asked at most every recheck interval. Caller holds the lock. */
    pk_result (*changed)(void *impl, bool *changed);
    /* Now, in ms since the epoch (UTC), as the handle sees it. */
    int64_t (*now_ms)(void *impl);
} pk_records_ops;

typedef struct pk_records {
    const pk_records_ops *ops;
    void *impl;
    pk_store *store;       /* raw reads and lists: hold *lock */
    pthread_mutex_t *lock; /* the store runs one transaction at a time */
} pk_records;

static inline void pk_records_lock(const pk_records *rs) { pthread_mutex_lock(rs->lock); }
static inline void pk_records_unlock(const pk_records *rs) { pthread_mutex_unlock(rs->lock); }
static inline pk_result pk_records_load(const pk_records *rs, const char *kind, const char *id, pk_record *out,
                                        bool *found)
{
    return rs->ops->load(rs->impl, kind, id, out, found);
}
static inline pk_result pk_records_save(const pk_records *rs, pk_record *rec, uint64_t expected_rev)
{
    return rs->ops->save(rs->impl, rec, expected_rev);
}
static inline pk_result pk_records_check(const pk_records *rs, const pk_record *rec)
{
    return rs->ops->check(rs->impl, rec);
}
static inline pk_result pk_records_write_tx(const pk_records *rs, pk_records_tx_fn fn, void *ctx)
{
    return rs->ops->write_tx(rs->impl, fn, ctx);
}
static inline pk_result pk_records_changed(const pk_records *rs, bool *changed)
{
    return rs->ops->changed(rs->impl, changed);
}
static inline int64_t pk_records_now(const pk_records *rs) { return rs->ops->now_ms(rs->impl); }

#endif
