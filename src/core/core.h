/*
 * The p11kms handle: what every layer above src/p11 and src/store shares.
 * One handle is thread-safe; there is no global state.
 */
#ifndef PK_CORE_CORE_H
#define PK_CORE_CORE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "keys/keys.h"
#include "p11/p11.h"
#include "p11kms/p11kms.h"
#include "store/records.h"
#include "store/store.h"
#include "util/result.h"

struct pk_audit;
typedef struct pk_store_flush pk_store_flush;

struct p11kms {
    const p11kms_config *cfg; /* borrowed: must outlive the handle */
    pk_p11 *p11;
    pk_store *store;
    /* The store handle runs one transaction at a time (store.h contract). */
    pthread_mutex_t store_lock;
    pk_store_flush *flush;    /* when commits are synced (store_flush.c) */
    pk_records records;       /* the records service handed to keys/ and secrets/ (integrity.c) */
    pk_env env;               /* what keys/ and secrets/ see of this handle: records, token, their state */
    struct pk_audit *audit;   /* NULL when auditing is off (benchmarks only) */
    char account[16];
    char region[32];
    pk_keyid store_mac_key;
    int64_t clock_offset_ms;  /* tests only: moves the handle's clock (never set from outside) */
    /*
     * How often a long-lived handle asks the store whether another process
     * changed it (PK_STORE_RECHECK_MS). Asking costs a few microseconds of
     * file locking, a third of an HSM operation, so it is bounded in time
     * instead of paid per call; tests set 0 to ask every time.
     */
    int64_t store_recheck_ms;
    int64_t store_checked_at; /* monotonic ms of the last check (under store_lock) */
    struct pk_sigv4_cache *sigv4; /* derived SigV4 signing keys (core/api_sigv4.c), made on first use */
    struct pk_remote *remote; /* connect =: every call goes to p11kmsd (core/api_remote.c); nothing else is set */
};

#define PK_STORE_RECHECK_MS 50

/* Monotonic milliseconds (cheap: vDSO, no syscall). */
int64_t pk_monotonic_ms(void);


/* Current time in ms since the epoch (UTC). */
int64_t pk_now_ms(void);


/* The handle's notion of now (ms since the epoch, UTC). */
static inline int64_t pk_clock(const p11kms *h) { return pk_now_ms() + h->clock_offset_ms; }

/* ---- Store records with integrity (core/integrity.c) ---- */
/*
 * Each record carries an HMAC-SHA256, computed in the HSM with the store
 * key, over its kind, id, ref, due time, revision and body. A record edited
 * outside p11kms fails with P11KMS_ERR_INTEGRITY and is never used.
 */
PK_MUST_USE pk_result pk_record_seal(p11kms *h, pk_record *rec);
PK_MUST_USE pk_result pk_record_check(p11kms *h, const pk_record *rec);
/* get + check. *found=false when absent. Caller holds store_lock. */
PK_MUST_USE pk_result pk_record_load(p11kms *h, const char *kind, const char *id, pk_record *out, bool *found);
/* Seal (rev = expected_rev + 1) and put. Caller holds store_lock. */
PK_MUST_USE pk_result pk_record_save(p11kms *h, pk_record *rec, uint64_t expected_rev);
/* Fill h->records and h->env (open_common, once p11 and store are open). */
void pk_records_bind(p11kms *h);

/*
 * Called by pk_with_write_tx before it commits: writes the audit record of
 * the mutating operation this thread is running (see pk_op_preflight).
 * A failure makes the transaction roll back.
 */
PK_MUST_USE pk_result pk_op_precommit(p11kms *h);

/*
 * Run fn inside a write transaction under store_lock; rolls back on
 * failure. After the commit, with store_lock released, the change is made
 * durable before returning, whatever store_sync says: key management, nonce
 * reservations, namespace keys, init and purge go through here.
 */
typedef pk_result (*pk_tx_fn)(p11kms *h, void *ctx);
PK_MUST_USE pk_result pk_with_write_tx(p11kms *h, pk_tx_fn fn, void *ctx);
/*
 * The same for secret and connection changes: durable before returning with
 * store_sync = always, within the batch window with store_sync = batch.
 */
PK_MUST_USE pk_result pk_with_write_tx_batched(p11kms *h, pk_tx_fn fn, void *ctx);
/* The commit ticket of this thread's last write transaction through the two above (tests). */
uint64_t pk_store_last_ticket(void);

/* ---- Store durability (core/store_flush.c) ---- */
/*
 * store_sync in p11kms.conf. Key changes are always durable before they
 * return; this decides for secret and connection changes.
 */
typedef enum pk_store_sync {
    PK_STORE_SYNC_ALWAYS = 0, /* fdatasync (group commit) before returning */
    PK_STORE_SYNC_BATCH       /* return after the commit; a flusher syncs within 2 ms (docs/STORE.md) */
} pk_store_sync;

/* Read store_sync (P11KMS_ERR_CONFIG when malformed). The handle starts in always mode. */
PK_MUST_USE pk_result pk_store_flush_new(const p11kms_config *cfg, pk_store_flush **out);
/* Apply the configured mode (p11kms_open): starts the flusher thread in batch mode. */
PK_MUST_USE pk_result pk_store_flush_start(p11kms *h);
/*
 * Switch the mode of an open handle (benchmarks and tests). Batch starts the
 * flusher if needed; always first syncs what batch mode left unsynced.
 */
PK_MUST_USE pk_result pk_store_set_sync(p11kms *h, pk_store_sync mode);
/* After a commit with this ticket: sync now, or (batch_ok, batch mode) leave it to the flusher. */
PK_MUST_USE pk_result pk_store_durable(p11kms *h, uint64_t ticket, bool batch_ok);
/* Stop the flusher and sync what is left (p11kms_close, before the store closes). */
void pk_store_flush_close(p11kms *h);

#endif
