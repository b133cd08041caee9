/*
 * The SQLite backend: the only folder in p11kms that speaks SQLite.
 *
 * Concurrency between processes. Writers take the write lock up front
 * (BEGIN IMMEDIATE), so a write transaction never fails half way with
 * SQLITE_BUSY. Contention is absorbed twice: SQLite's busy handler waits up
 * to BUSY_TIMEOUT_MS, and our own retry loop (with jittered exponential
 * backoff, up to RETRY_DEADLINE_MS) covers the cases where SQLite returns
 * BUSY/LOCKED without calling the handler (WAL recovery, lock upgrades).
 * Callers never see "database is locked" under ordinary contention; a
 * lock held longer than the wait (lock_wait_ms, 30 s) fails with a message
 * that says so.
 *
 * Threads. One handle may be shared by the threads of one process. A
 * recursive mutex guards the connection and the cached statements (so the
 * connection is opened SQLITE_OPEN_NOMUTEX). A transaction belongs to the
 * handle, not to a thread: between begin and commit every call on the
 * handle, from any thread, runs inside that transaction. Callers therefore
 * serialise transactions themselves (core holds its own lock around
 * begin..commit). The list callbacks run with the mutex held; they may call
 * back into the same handle (the mutex is recursive and a statement still in
 * use is never reused), but must not block on another thread that uses it.
 *
 * Fork. A handle must not be used across fork(): open a new one in the
 * child. Closing an inherited handle in a child frees only our memory (and
 * our fd on the -wal file, which carries no locks).
 *
 * This file: errors and cached statements. The other concepts have files
 * of their own (store_sqlite_impl.h lists them).
 */
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

const char *const sq_stmt_sql[ST_COUNT_] = {
    [ST_BEGIN_READ] = "BEGIN DEFERRED",
    [ST_BEGIN_WRITE] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_GET] = "SELECT " COLS " FROM records WHERE kind = ?1 AND id = ?2",
    /* INSERT and UPDATE share parameter numbers 1..7 so one binder serves both. */
    [ST_INSERT] = "INSERT INTO records (" COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    [ST_UPDATE] = "UPDATE records SET ref = ?3, due_ms = ?4, rev = ?5, body = ?6, mac = ?7"
                  " WHERE kind = ?1 AND id = ?2 AND rev = ?8",
    [ST_DELETE] = "DELETE FROM records WHERE kind = ?1 AND id = ?2",
    [ST_LIST_ALL] = "SELECT " COLS " FROM records ORDER BY kind, id",
    [ST_LIST_KIND] = "SELECT " COLS " FROM records WHERE kind = ?1 ORDER BY id",
    [ST_LIST_REF] = "SELECT " COLS " FROM records WHERE kind = ?1 AND ref = ?2 ORDER BY id",
    /* "due_ms > 0" repeats the partial index's WHERE so the planner may use it. */
    [ST_LIST_DUE] = "SELECT " COLS " FROM records WHERE kind = ?1 AND due_ms > 0 AND due_ms <= ?2"
                    " ORDER BY due_ms, id",
    [ST_COUNT_KIND] = "SELECT count(*) FROM records WHERE kind = ?1",
    [ST_COUNT_REF] = "SELECT count(*) FROM records WHERE kind = ?1 AND ref = ?2",
    [ST_DATA_VERSION] = "PRAGMA data_version",
};

void pk_store_sqlite_set_lock_wait(pk_store *base, unsigned ms)
{
    sq_store *s = sq(base);

    pthread_mutex_lock(&s->lock);
    s->lock_wait_ms = ms;
    (void)sqlite3_busy_timeout(s->db, ms < BUSY_TIMEOUT_MS ? (int)ms : BUSY_TIMEOUT_MS);
    pthread_mutex_unlock(&s->lock);
}

/* ---- errors ------------------------------------------------------------ */

p11kms_rc sq_map_rc(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_NOMEM:
        return P11KMS_ERR_NO_MEMORY;
    default:
        return P11KMS_ERR_STORE;
    }
}

/*
 * SQLite's message, except that a full disk says so and names the store:
 * "database or disk is full" does not tell which disk.
 */
const char *sq_db_error(const sq_store *s, sqlite3 *db)
{
    static __thread char msg[PATH_MAX + 80];
    if ((sqlite3_errcode(db) & 0xff) != SQLITE_FULL) return sqlite3_errmsg(db);
    snprintf(msg, sizeof(msg), "disk full: no space for %s or its -wal/-shm files", s->path);
    return msg;
}

/* One line: the operation and SQLite's message. Never record bytes. */
pk_result sq_fail_db(sq_store *s, int rc, const char *op)
{
    if ((rc & 0xff) == SQLITE_NOTADB) return pk_fail(P11KMS_ERR_STORE, "store %s is not an SQLite database", s->path);
    return pk_fail(sq_map_rc(rc), "store %s: %s", op, s->db != NULL ? sq_db_error(s, s->db) : sqlite3_errstr(rc));
}

pk_result sq_fail_rec(sq_store *s, int rc, const char *op, const char *kind, const char *id)
{
    return pk_fail(sq_map_rc(rc), "store %s %s/%s: %s", op, kind, id, sq_db_error(s, s->db));
}

/* ---- cached statements --------------------------------------------------- */

/*
 * The cached statement, unless a list callback further up this thread's
 * stack is still stepping it: then a private copy, finalised on release.
 */
pk_result sq_acquire_inlock(sq_store *s, enum stmt_id id, sqlite3_stmt **out)
{
    int rc;

    *out = s->stmt[id];
    if (*out != NULL && !sqlite3_stmt_busy(*out)) return PK_OK;
    rc = sqlite3_prepare_v2(s->db, sq_stmt_sql[id], -1, out, NULL);
    if (rc != SQLITE_OK) return sq_fail_db(s, rc, "prepare");
    return PK_OK;
}

void sq_release_inlock(sq_store *s, enum stmt_id id, sqlite3_stmt *st)
{
    if (st == NULL) return;
    if (st == s->stmt[id])
        (void)sqlite3_reset(st);
    else
        (void)sqlite3_finalize(st);
}

/* Run a statement that returns no rows we need (BEGIN, COMMIT, ROLLBACK). */
pk_result sq_run_inlock(sq_store *s, enum stmt_id id, bool may_retry, const char *op)
{
    pk_result r = PK_OK;
    sqlite3_stmt *st = NULL;
    int rc;

    PK_TRY(sq_acquire_inlock(s, id, &st));
    rc = sq_step_inlock(s, st, may_retry);
    if (may_retry && sq_is_busy(rc)) {
        r = sq_fail_locked(s, op);
        goto out;
    }
    PK_CHECK(rc == SQLITE_DONE || rc == SQLITE_ROW, sq_map_rc(rc), "store %s: %s (SQLite %d)", op, sq_db_error(s, s->db),
             sqlite3_extended_errcode(s->db));
out:
    sq_release_inlock(s, id, st);
    return r;
}
