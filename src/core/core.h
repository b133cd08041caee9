/*
 * The p11kms handle: what every layer above src/p11 and src/store shares.
 * One handle is thread-safe; there is no global state.
 */
#ifndef PK_CORE_CORE_H
#define PK_CORE_CORE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "p11/p11.h"
#include "p11kms/p11kms.h"
#include "store/store.h"
#include "util/result.h"

struct pk_keycache;
struct pk_audit;

struct p11kms {
    const p11kms_config *cfg; /* borrowed: must outlive the handle */
    pk_p11 *p11;
    pk_store *store;
    /* The store handle runs one transaction at a time (store.h contract). */
    pthread_mutex_t store_lock;
    struct pk_keycache *keys;
    struct pk_audit *audit;   /* NULL when auditing is off (benchmarks only) */
    char account[16];
    char region[32];
    pk_keyid store_mac_key;
    uint64_t nonce_limit;     /* GCM invocations per key version (PK_NONCE_LIMIT; lowered by tests) */
    int64_t clock_offset_ms;  /* tests only: moves the handle's clock (never set from outside) */
    /*
     * How often a long-lived handle asks the store whether another process
     * changed it (PK_STORE_RECHECK_MS). Asking costs a few microseconds of
     * file locking, a third of an HSM operation, so it is bounded in time
     * instead of paid per call; tests set 0 to ask every time.
     */
    int64_t store_recheck_ms;
    int64_t store_checked_at; /* monotonic ms of the last check (under store_lock) */
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

/*
 * Called by pk_with_write_tx before it commits: writes the audit record of
 * the mutating operation this thread is running (see pk_op_preflight).
 * A failure makes the transaction roll back.
 */
PK_MUST_USE pk_result pk_op_precommit(p11kms *h);

/*
 * Run fn inside a write transaction under store_lock; rolls back on
 * failure. After the commit, with store_lock released, the change is made
 * durable (store `sync`, shared with concurrent callers) before returning.
 */
typedef pk_result (*pk_tx_fn)(p11kms *h, void *ctx);
PK_MUST_USE pk_result pk_with_write_tx(p11kms *h, pk_tx_fn fn, void *ctx);
/* The commit ticket of this thread's last write transaction through pk_with_write_tx (tests). */
uint64_t pk_store_last_ticket(void);

#endif
