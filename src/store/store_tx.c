/* SQLite backend: transactions, and retrying them on contention (see store_sqlite.c). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "store/store_sqlite_impl.h"

/* ---- retrying on contention ---------------------------------------------- */

void sq_retry_init(retry *t, const sq_store *s)
{
    t->attempt = 0;
    t->deadline_ms = s->lock_wait_ms;
    clock_gettime(CLOCK_MONOTONIC, &t->start);
}

static int64_t elapsed_ms(const struct timespec *since)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)(now.tv_sec - since->tv_sec) * 1000 + (now.tv_nsec - since->tv_nsec) / 1000000;
}

/*
 * BUSY_SNAPSHOT is not contention: this connection's own open snapshot is
 * stale (a write from inside a list callback, say), and waiting cannot fix it.
 */
bool sq_is_busy(int rc)
{
    if (rc == SQLITE_BUSY_SNAPSHOT) return false;
    return (rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED;
}

/* Jitter only spreads waiters apart; it needs no quality, just no shared state. */
static unsigned jitter(unsigned range)
{
    static __thread uint32_t x;
    if (x == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        x = (uint32_t)ts.tv_nsec ^ ((uint32_t)getpid() << 16) ^ 0x9e3779b9u;
    }
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return range ? x % range : 0;
}

/*
 * True (after a backoff sleep) when rc is contention and the deadline allows
 * another try. The handle's mutex stays held while we sleep: the other
 * threads would need the same connection anyway.
 */
bool sq_retry_after(retry *t, int rc)
{
    unsigned cap_us;
    struct timespec ts;

    if (!sq_is_busy(rc) || elapsed_ms(&t->start) >= t->deadline_ms) return false;
    cap_us = t->attempt < 7 ? 1000u << t->attempt : RETRY_MAX_SLEEP_MS * 1000u;
    if (cap_us > RETRY_MAX_SLEEP_MS * 1000u) cap_us = RETRY_MAX_SLEEP_MS * 1000u;
    cap_us = cap_us / 2 + jitter(cap_us / 2);
    ts.tv_sec = cap_us / 1000000u;
    ts.tv_nsec = (long)(cap_us % 1000000u) * 1000;
    nanosleep(&ts, NULL);
    t->attempt++;
    return true;
}

/* Contention outlasted every retry: say so, not SQLite's "database is locked". */
pk_result sq_fail_locked(const sq_store *s, const char *op)
{
    return pk_fail(P11KMS_ERR_STORE, "store %s: %s stayed locked by another process for more than %.1f s; try again later", op,
                   s->path, s->lock_wait_ms / 1000.0);
}

/*
 * Step a statement. With may_retry, contention resets the statement and
 * tries again; only safe where nothing has run yet: outside a transaction,
 * for BEGIN, and for COMMIT (a COMMIT that failed with BUSY leaves the
 * transaction open and may be repeated).
 */
int sq_step_inlock(sq_store *s, sqlite3_stmt *st, bool may_retry)
{
    retry t;
    int rc;

    sq_retry_init(&t, s);
    while ((rc = sqlite3_step(st)) != SQLITE_ROW && rc != SQLITE_DONE) {
        if (!may_retry || !sq_retry_after(&t, rc)) break;
        (void)sqlite3_reset(st);
    }
    return rc;
}

/* ---- operations ------------------------------------------------------------ */

/* A read transaction pins its snapshot at once (the first read), so contention shows here, where a retry is safe. */
static pk_result begin_read_inlock(sq_store *s)
{
    pk_result r = PK_OK;
    sqlite3_stmt *st = NULL;
    retry t;
    int rc;

    PK_TRY(sq_acquire_inlock(s, ST_DATA_VERSION, &st));
    for (sq_retry_init(&t, s);;) {
        PK_TRY(sq_run_inlock(s, ST_BEGIN_READ, true, "begin"));
        rc = sqlite3_step(st);
        (void)sqlite3_reset(st);
        if (rc == SQLITE_ROW) break;
        r = pk_fail(sq_map_rc(rc), "store begin: %s", sq_db_error(s, s->db));
        (void)sq_run_inlock(s, ST_ROLLBACK, false, "rollback");
        if (!sq_retry_after(&t, rc)) {
            if (sq_is_busy(rc)) r = sq_fail_locked(s, "begin");
            goto out;
        }
        r = PK_OK;
    }
out:
    sq_release_inlock(s, ST_DATA_VERSION, st);
    return r;
}

pk_result sq_begin(pk_store *base, bool write)
{
    sq_store *s = sq(base);
    pk_result r = PK_OK;

    pthread_mutex_lock(&s->lock);
    PK_CHECK(s->tx == TX_NONE, P11KMS_ERR_INTERNAL, "store begin: a transaction is already open on this handle");
    if (write && sq_writes_refused(s)) {
        r = sq_fail_broken(s);
        goto out;
    }
    if (write)
        PK_TRY(sq_run_inlock(s, ST_BEGIN_WRITE, true, "begin"));
    else
        PK_TRY(begin_read_inlock(s));
    s->tx = write ? TX_WRITE : TX_READ;
out:
    pthread_mutex_unlock(&s->lock);
    return r;
}

void sq_rollback_inlock(sq_store *s)
{
    /* SQLite may already have rolled back after an I/O error; that is not a failure here. */
    if (sqlite3_get_autocommit(s->db) == 0) (void)sq_run_inlock(s, ST_ROLLBACK, false, "rollback");
    s->tx = TX_NONE;
}

pk_result sq_commit(pk_store *base, uint64_t *ticket)
{
    sq_store *s = sq(base);
    pk_result r = PK_OK;
    bool write;

    if (ticket != NULL) *ticket = 0;
    pthread_mutex_lock(&s->lock);
    PK_CHECK(s->tx != TX_NONE, P11KMS_ERR_INTERNAL, "store commit: no transaction is open");
    write = s->tx == TX_WRITE;
    /* A flush failed since begin: this commit could never be made durable. */
    if (write && sq_writes_refused(s))
        r = sq_fail_broken(s);
    else
        r = sq_run_inlock(s, ST_COMMIT, true, "commit");
    if (pk_failed(r))
        sq_rollback_inlock(s);
    else if (write)
        sq_count_commit_inlock(s, ticket);
    s->tx = TX_NONE;
out:
    pthread_mutex_unlock(&s->lock);
    return r;
}

void sq_rollback(pk_store *base)
{
    sq_store *s = sq(base);
    pthread_mutex_lock(&s->lock);
    if (s->tx != TX_NONE) sq_rollback_inlock(s);
    pthread_mutex_unlock(&s->lock);
}
