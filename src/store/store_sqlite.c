/*
 * The SQLite backend: the only file in p11kms that speaks SQLite.
 *
 * Durability. The journal is WAL with synchronous=NORMAL: a COMMIT appends
 * its frames to the -wal file with write(2) and returns without an fsync
 * (SQLite syncs only around checkpoints). `sync` then makes commits durable
 * with one fdatasync of the -wal file: that is all synchronous=FULL adds to
 * a WAL commit (https://sqlite.org/pragma.html#pragma_synchronous,
 * https://sqlite.org/wal.html). After a power loss, WAL recovery replays
 * frames from the start of the file for as long as their salts and
 * cumulative checksums are valid, up to the last commit frame; every frame
 * that was flushed, in order, is therefore recovered, and a durable commit
 * implies every earlier one. Checkpoints keep this: SQLite syncs the WAL
 * before copying frames into the database, syncs the database before it
 * lets the WAL restart from its beginning, and, in NORMAL mode too, syncs
 * the new WAL header on restart, so stale frames after it never validate.
 * Callers (core) decide when to sync (docs/STORE.md, Durability).
 *
 * Group commit. Commits take tickets (1, 2, ...). `sync` lets one caller,
 * the leader, fdatasync for every commit made so far while the others wait
 * for it; neither the leader nor the waiters hold the handle's mutex or any
 * SQLite lock, so other threads go on committing meanwhile.
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

#include "store/store.h"
#include "util/group_commit.h"

#define BUSY_TIMEOUT_MS 10000
#define RETRY_DEADLINE_MS 30000
#define RETRY_MAX_SLEEP_MS 100
#define CACHE_SIZE "-32768" /* KiB, per handle */
#define CKPT_FRAMES 1000            /* checkpoint mark: SQLite's default wal_autocheckpoint */
#define CKPT_BACKSTOP_FRAMES 10000  /* background checkpoints fell behind: a commit runs one */

/*
 * Schema migrations, in order: entry i takes a store from version i to
 * i + 1 (kept in PRAGMA user_version). Append new entries; never edit one
 * that has shipped. All pending entries run in one write transaction.
 */
static const char *const migrations[] = {
    /* 1: records, an index for lookups by reference, and a partial index so
     * "what is due" reads only due records. */
    "CREATE TABLE records ("
    " kind TEXT NOT NULL,"
    " id TEXT NOT NULL,"
    " ref TEXT NOT NULL DEFAULT '',"
    " due_ms INTEGER NOT NULL DEFAULT 0,"
    " rev INTEGER NOT NULL,"
    " body BLOB NOT NULL,"
    " mac BLOB NOT NULL,"
    " PRIMARY KEY (kind, id)"
    ") WITHOUT ROWID;"
    "CREATE INDEX records_by_ref ON records (kind, ref, id);"
    "CREATE INDEX records_by_due ON records (kind, due_ms) WHERE due_ms > 0;",
};
#define SCHEMA_VERSION ((int64_t)PK_ARRAY_LEN(migrations))

#define COLS "kind, id, ref, due_ms, rev, body, mac"

/* Statements prepared once per handle and reused; get and changed are on every operation's path. */
enum stmt_id {
    ST_BEGIN_READ,
    ST_BEGIN_WRITE,
    ST_COMMIT,
    ST_ROLLBACK,
    ST_GET,
    ST_INSERT,
    ST_UPDATE,
    ST_DELETE,
    ST_LIST_KIND,
    ST_LIST_REF,
    ST_LIST_DUE,
    ST_COUNT_KIND,
    ST_COUNT_REF,
    ST_DATA_VERSION,
    ST_COUNT_
};

static const char *const stmt_sql[ST_COUNT_] = {
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
    [ST_LIST_KIND] = "SELECT " COLS " FROM records WHERE kind = ?1 ORDER BY id",
    [ST_LIST_REF] = "SELECT " COLS " FROM records WHERE kind = ?1 AND ref = ?2 ORDER BY id",
    /* "due_ms > 0" repeats the partial index's WHERE so the planner may use it. */
    [ST_LIST_DUE] = "SELECT " COLS " FROM records WHERE kind = ?1 AND due_ms > 0 AND due_ms <= ?2"
                    " ORDER BY due_ms, id",
    [ST_COUNT_KIND] = "SELECT count(*) FROM records WHERE kind = ?1",
    [ST_COUNT_REF] = "SELECT count(*) FROM records WHERE kind = ?1 AND ref = ?2",
    [ST_DATA_VERSION] = "PRAGMA data_version",
};

typedef enum tx_state { TX_NONE, TX_READ, TX_WRITE } tx_state;

typedef struct sq_store {
    pk_store base; /* first: pk_store * converts to sq_store * */
    pthread_mutex_t lock;
    bool lock_ready;
    sqlite3 *db;
    sqlite3_stmt *stmt[ST_COUNT_];
    tx_state tx;
    bool dv_seen;
    int64_t dv; /* PRAGMA data_version at the last `changed` */
    pid_t pid;
    unsigned lock_wait_ms; /* how long contention is retried before giving up */

    /* Group commit (util/group_commit.c): its lock is never held together with lock, nor across fdatasync. */
    pk_gc gc;
    bool gc_ready;
    int wal_fd;        /* our own fd on the -wal file, -1 until there is one */
    dev_t wal_dev;
    ino_t wal_ino;
    char *wal_path;

    /* Checkpoints: see wal_hook and sq_checkpoint. */
    int wal_frames;    /* WAL size in frames after this handle's last commit; atomic */
    bool ck_background; /* commits leave checkpoints to sq_checkpoint; atomic */
    uint64_t checkpoints; /* atomic */
    pthread_mutex_t ck_mu; /* guards ck_db */
    bool ck_ready;
    sqlite3 *ck_db;    /* a second connection, for checkpoints only */
    int ck_copied;     /* frames of the log already in the database, as of our last checkpoint */
    char path[]; /* for messages */
} sq_store;

static sq_store *sq(pk_store *base) { return (sq_store *)base; }

void pk_store_sqlite_set_lock_wait(pk_store *base, unsigned ms)
{
    sq_store *s = sq(base);

    pthread_mutex_lock(&s->lock);
    s->lock_wait_ms = ms;
    (void)sqlite3_busy_timeout(s->db, ms < BUSY_TIMEOUT_MS ? (int)ms : BUSY_TIMEOUT_MS);
    pthread_mutex_unlock(&s->lock);
}

/* ---- errors ------------------------------------------------------------ */

static p11kms_rc map_rc(int rc)
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
static const char *db_error(const sq_store *s, sqlite3 *db)
{
    static __thread char msg[PATH_MAX + 80];
    if ((sqlite3_errcode(db) & 0xff) != SQLITE_FULL) return sqlite3_errmsg(db);
    snprintf(msg, sizeof(msg), "disk full: no space for %s or its -wal/-shm files", s->path);
    return msg;
}

/* One line: the operation and SQLite's message. Never record bytes. */
static pk_result fail_db(sq_store *s, int rc, const char *op)
{
    if ((rc & 0xff) == SQLITE_NOTADB) return pk_fail(P11KMS_ERR_STORE, "store %s is not an SQLite database", s->path);
    return pk_fail(map_rc(rc), "store %s: %s", op, s->db != NULL ? db_error(s, s->db) : sqlite3_errstr(rc));
}

static pk_result fail_rec(sq_store *s, int rc, const char *op, const char *kind, const char *id)
{
    return pk_fail(map_rc(rc), "store %s %s/%s: %s", op, kind, id, db_error(s, s->db));
}

/* ---- retrying on contention ---------------------------------------------- */

typedef struct retry {
    unsigned attempt;
    unsigned deadline_ms;
    struct timespec start;
} retry;

static void retry_init(retry *t, const sq_store *s)
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
static bool is_busy(int rc)
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
static bool retry_after(retry *t, int rc)
{
    unsigned cap_us;
    struct timespec ts;

    if (!is_busy(rc) || elapsed_ms(&t->start) >= t->deadline_ms) return false;
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
static pk_result fail_locked(const sq_store *s, const char *op)
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
static int step_inlock(sq_store *s, sqlite3_stmt *st, bool may_retry)
{
    retry t;
    int rc;

    retry_init(&t, s);
    while ((rc = sqlite3_step(st)) != SQLITE_ROW && rc != SQLITE_DONE) {
        if (!may_retry || !retry_after(&t, rc)) break;
        (void)sqlite3_reset(st);
    }
    return rc;
}

/* ---- cached statements --------------------------------------------------- */

/*
 * The cached statement, unless a list callback further up this thread's
 * stack is still stepping it: then a private copy, finalised on release.
 */
static pk_result acquire_inlock(sq_store *s, enum stmt_id id, sqlite3_stmt **out)
{
    int rc;

    *out = s->stmt[id];
    if (*out != NULL && !sqlite3_stmt_busy(*out)) return PK_OK;
    rc = sqlite3_prepare_v2(s->db, stmt_sql[id], -1, out, NULL);
    if (rc != SQLITE_OK) return fail_db(s, rc, "prepare");
    return PK_OK;
}

static void release_inlock(sq_store *s, enum stmt_id id, sqlite3_stmt *st)
{
    if (st == NULL) return;
    if (st == s->stmt[id])
        (void)sqlite3_reset(st);
    else
        (void)sqlite3_finalize(st);
}

/* Run a statement that returns no rows we need (BEGIN, COMMIT, ROLLBACK). */
static pk_result run_inlock(sq_store *s, enum stmt_id id, bool may_retry, const char *op)
{
    pk_result r = PK_OK;
    sqlite3_stmt *st = NULL;
    int rc;

    PK_TRY(acquire_inlock(s, id, &st));
    rc = step_inlock(s, st, may_retry);
    if (may_retry && is_busy(rc)) {
        r = fail_locked(s, op);
        goto out;
    }
    PK_CHECK(rc == SQLITE_DONE || rc == SQLITE_ROW, map_rc(rc), "store %s: %s (SQLite %d)", op, db_error(s, s->db),
             sqlite3_extended_errcode(s->db));
out:
    release_inlock(s, id, st);
    return r;
}

/* ---- records ------------------------------------------------------------- */

static pk_result check_name(const char *what, const char *v, size_t max, bool may_be_empty)
{
    PK_ENSURE(v != NULL, P11KMS_ERR_INVALID_ARGUMENT, "store: record %s is missing", what);
    PK_ENSURE(strnlen(v, max) < max, P11KMS_ERR_INVALID_ARGUMENT, "store: record %s is longer than %zu bytes", what,
              max - 1);
    PK_ENSURE(may_be_empty || *v != '\0', P11KMS_ERR_INVALID_ARGUMENT, "store: record %s is empty", what);
    return PK_OK;
}

static pk_result check_key(const char *kind, const char *id)
{
    PK_GUARD(check_name("kind", kind, PK_STORE_KIND_MAX, false));
    if (id != NULL) PK_GUARD(check_name("id", id, PK_STORE_ID_MAX, false));
    return PK_OK;
}

static pk_result copy_text(sqlite3_stmt *st, int col, char *dst, size_t max, const pk_record *rec)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    int n = sqlite3_column_bytes(st, col);

    PK_ENSURE(t != NULL || n == 0, P11KMS_ERR_NO_MEMORY, "out of memory");
    PK_ENSURE((size_t)n < max, P11KMS_ERR_INTEGRITY, "store record %.32s/%.64s has an oversized column %d",
              rec->kind, rec->id, col);
    if (n > 0) memcpy(dst, t, (size_t)n);
    dst[n] = '\0';
    return PK_OK;
}

/*
 * Fill rec from the current row (columns in COLS order). rec->body is
 * reused, so a listing allocates once, not once per row.
 */
static pk_result row_to_record(sqlite3_stmt *st, pk_record *rec)
{
    const void *mac;
    const void *body;
    int n;

    rec->kind[0] = rec->id[0] = '\0';
    PK_GUARD(copy_text(st, 0, rec->kind, sizeof(rec->kind), rec));
    PK_GUARD(copy_text(st, 1, rec->id, sizeof(rec->id), rec));
    PK_GUARD(copy_text(st, 2, rec->ref, sizeof(rec->ref), rec));
    rec->due_ms = sqlite3_column_int64(st, 3);
    PK_ENSURE(sqlite3_column_int64(st, 4) > 0 && rec->due_ms >= 0, P11KMS_ERR_INTEGRITY,
              "store record %s/%s has an invalid rev or due time", rec->kind, rec->id);
    rec->rev = (uint64_t)sqlite3_column_int64(st, 4);
    mac = sqlite3_column_blob(st, 6);
    PK_ENSURE(sqlite3_column_bytes(st, 6) == PK_STORE_MAC_LEN && mac != NULL, P11KMS_ERR_INTEGRITY,
              "store record %s/%s has a malformed MAC", rec->kind, rec->id);
    memcpy(rec->mac, mac, PK_STORE_MAC_LEN);
    body = sqlite3_column_blob(st, 5);
    n = sqlite3_column_bytes(st, 5);
    PK_ENSURE(body != NULL || n == 0, P11KMS_ERR_NO_MEMORY, "out of memory");
    pk_buf_reset(&rec->body);
    return pk_buf_append(&rec->body, body, (size_t)n);
}

/* A zero-length blob must still bind as a blob: a NULL pointer would bind SQL NULL. */
static int bind_blob(sqlite3_stmt *st, int i, const void *p, size_t n)
{
    static const uint8_t none[1];
    return sqlite3_bind_blob(st, i, n ? p : none, (int)n, SQLITE_STATIC);
}

static int bind_key(sqlite3_stmt *st, const char *kind, const char *id)
{
    int rc = sqlite3_bind_text(st, 1, kind, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK && id != NULL) rc = sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
    return rc;
}

static int bind_record(sqlite3_stmt *st, const pk_record *rec)
{
    int rc = bind_key(st, rec->kind, rec->id);
    if (rc == SQLITE_OK) rc = sqlite3_bind_text(st, 3, rec->ref, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 4, rec->due_ms);
    if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 5, (sqlite3_int64)rec->rev);
    if (rc == SQLITE_OK) rc = bind_blob(st, 6, rec->body.data, rec->body.len);
    if (rc == SQLITE_OK) rc = bind_blob(st, 7, rec->mac, PK_STORE_MAC_LEN);
    return rc;
}

/* ---- durability ------------------------------------------------------------ */

static bool writes_refused(sq_store *s)
{
    return pk_gc_broken(&s->gc) != 0;
}

/* What every write says once a flush has failed. */
static pk_result fail_broken(sq_store *s)
{
    return pk_fail(P11KMS_ERR_STORE,
                   "store %s: fdatasync of %s failed (%s): commits since the last good sync may not be on disk; "
                   "refusing writes until the store is reopened",
                   s->path, s->wal_path, strerror(pk_gc_broken(&s->gc)));
}

/* A write became visible: it takes the next ticket. */
static void count_commit_inlock(sq_store *s, uint64_t *ticket)
{
    uint64_t t = pk_gc_next_ticket(&s->gc);
    if (ticket != NULL) *ticket = t;
}

/*
 * Point wal_fd at the -wal file now at the path; returns 0 or an errno.
 * Only the sync leader (and open) call this.
 *
 * fdatasync acts on the inode, whichever fd wrote its pages, so our own fd
 * covers SQLite's writes. WAL mode locks the database and -shm files, never
 * the -wal file, so opening and closing this fd cannot drop one of SQLite's
 * POSIX locks (close(2) drops all of a process's locks on a file). The fd
 * stays open for the handle's life: Linux reports a writeback error to the
 * fds that were open when it happened, and a fresh fd could miss it.
 *
 * While our connection is open the file stays (SQLite resets it in place
 * after a checkpoint; only the last connection to close removes it, after a
 * checkpoint that synced the database). Should it still be replaced, the
 * old inode's frames are in the synced database, so we follow the new
 * file; should it be gone, we flush the inode we hold, which is harmless.
 */
static int wal_follow(sq_store *s)
{
    struct statx sx;
    struct stat st;
    int fd;

    /*
     * statx for the inode number only: a stat(2) that reads the file's times
     * makes Linux (6.13+, multigrain timestamps) give the next write a
     * fine-grained ctime, and the fdatasync after it then also writes the
     * inode: measured 70 us more per sync.
     */
    if (statx(AT_FDCWD, s->wal_path, 0, STATX_INO, &sx) != 0) return errno == ENOENT ? 0 : errno;
    if (s->wal_fd >= 0 && (sx.stx_mask & STATX_INO) != 0 && sx.stx_ino == s->wal_ino &&
        makedev(sx.stx_dev_major, sx.stx_dev_minor) == s->wal_dev)
        return 0;
    fd = open(s->wal_path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) return errno == ENOENT ? 0 : errno;
    if (fstat(fd, &st) != 0) {
        int err = errno;
        close(fd);
        return err;
    }
    if (s->wal_fd >= 0) close(s->wal_fd);
    s->wal_fd = fd;
    s->wal_dev = st.st_dev;
    s->wal_ino = st.st_ino;
    return 0;
}

/*
 * The group commit's flush (util/group_commit.c calls it for one leader at
 * a time, so only it touches wal_fd): one fdatasync of the -wal file.
 */
static int flush_wal(void *ctx, uint64_t *target, bool *flushed)
{
    sq_store *s = ctx;
    int err = wal_follow(s);

    (void)target;
    if (err == 0 && s->wal_fd >= 0) {
        *flushed = true;
        if (fdatasync(s->wal_fd) != 0) err = errno;
    }
    return err;
}

/* Group commit (see the top of the file). */
static pk_result sq_sync(pk_store *base, uint64_t upto)
{
    sq_store *s = sq(base);
    int err;

    PK_ENSURE(s->pid == getpid(), P11KMS_ERR_STORE, "store %s: handle opened by process %ld; open a new one after fork",
              s->path, (long)s->pid);
    err = pk_gc_sync(&s->gc, upto);
    if (err == 0) return PK_OK;
    if (pk_gc_broken(&s->gc) != 0) return fail_broken(s);
    return pk_fail(P11KMS_ERR_STORE, "store %s: cannot open %s: %s", s->path, s->wal_path, strerror(err));
}

static void sq_stats(pk_store *base, pk_store_stats *out)
{
    sq_store *s = sq(base);

    out->commits = pk_gc_last_ticket(&s->gc);
    pk_gc_stats(&s->gc, &out->synced, &out->syncs);
    out->checkpoints = __atomic_load_n(&s->checkpoints, __ATOMIC_RELAXED);
}

/* ---- checkpoints ------------------------------------------------------------ */

/*
 * SQLite calls this after every commit on the main connection with the
 * WAL's size in frames. It replaces SQLite's automatic checkpoint (itself
 * a WAL hook, run inside the commit that reaches the mark) with the same
 * rule, unless checkpoints run in the background: then only past the
 * backstop. A failed checkpoint here is SQLite's usual benign case (it is
 * retried at the next mark); the commit has succeeded either way.
 */
static int wal_hook(void *arg, sqlite3 *db, const char *name, int frames)
{
    sq_store *s = arg;
    bool background = __atomic_load_n(&s->ck_background, __ATOMIC_RELAXED);

    __atomic_store_n(&s->wal_frames, frames, __ATOMIC_RELAXED);
    if (frames >= (background ? CKPT_BACKSTOP_FRAMES : CKPT_FRAMES))
        (void)sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    return SQLITE_OK;
}

static void sq_set_checkpoint_background(pk_store *base, bool background)
{
    __atomic_store_n(&sq(base)->ck_background, background, __ATOMIC_RELAXED);
}

/*
 * The checkpoint connection. Its first read opens the WAL (a checkpoint
 * on a connection that has not read yet does nothing). It never writes, so
 * its own automatic checkpoint never fires; its checkpoints sync the log
 * before copying and the database after, in NORMAL as in FULL.
 */
static pk_result open_checkpointer_inlock(sq_store *s)
{
    int rc = sqlite3_open_v2(s->path, &s->ck_db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, pk_store_vfs());

    if (rc == SQLITE_OK) {
        (void)sqlite3_extended_result_codes(s->ck_db, 1);
        (void)sqlite3_busy_timeout(s->ck_db, BUSY_TIMEOUT_MS);
        (void)sqlite3_db_config(s->ck_db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
        rc = sqlite3_exec(s->ck_db, "PRAGMA synchronous = NORMAL; PRAGMA user_version", NULL, NULL, NULL);
    }
    if (rc == SQLITE_OK) return PK_OK;
    {
        pk_result r = pk_fail(map_rc(rc), "store %s: checkpoint connection: %s", s->path,
                              s->ck_db != NULL ? db_error(s, s->ck_db) : sqlite3_errstr(rc));
        (void)sqlite3_close(s->ck_db);
        s->ck_db = NULL;
        return r;
    }
}

/*
 * A PASSIVE checkpoint on the checkpoint connection, once the log has grown
 * by CKPT_FRAMES since the last one: it copies what no reader still needs,
 * without waiting for anyone, while the main connection goes on committing
 * (writers append past the frames being copied). BUSY means another
 * connection is checkpointing: our work is being done.
 *
 * SQLite restarts the log from its beginning only when a write transaction
 * starts with every frame copied, which a checkpoint racing a steady stream
 * of commits rarely leaves behind. So under load the log grows until the
 * backstop, where the commit's own checkpoint has little left to copy and
 * the next transaction restarts the log. A restart we notice late (the log
 * is smaller than what we copied) delays one checkpoint by one mark at most.
 */
static pk_result sq_checkpoint(pk_store *base)
{
    sq_store *s = sq(base);
    pk_result r = PK_OK;
    int frames = __atomic_load_n(&s->wal_frames, __ATOMIC_RELAXED);
    int log = 0, copied = 0, rc;

    PK_ENSURE(s->pid == getpid(), P11KMS_ERR_STORE, "store %s: handle opened by process %ld; open a new one after fork",
              s->path, (long)s->pid);
    pthread_mutex_lock(&s->ck_mu);
    /* A log smaller than what was copied has restarted from its beginning. */
    if (frames < s->ck_copied) s->ck_copied = 0;
    if (frames - s->ck_copied < CKPT_FRAMES) goto out;
    if (s->ck_db == NULL) PK_TRY(open_checkpointer_inlock(s));
    rc = sqlite3_wal_checkpoint_v2(s->ck_db, NULL, SQLITE_CHECKPOINT_PASSIVE, &log, &copied);
    if (rc == SQLITE_OK) {
        __atomic_add_fetch(&s->checkpoints, 1, __ATOMIC_RELAXED);
        s->ck_copied = copied;
    } else {
        PK_CHECK((rc & 0xff) == SQLITE_BUSY, map_rc(rc), "store %s: checkpoint: %s", s->path,
                 db_error(s, s->ck_db));
    }
out:
    pthread_mutex_unlock(&s->ck_mu);
    return r;
}

/* ---- operations ------------------------------------------------------------ */

/* A read transaction pins its snapshot at once (the first read), so contention shows here, where a retry is safe. */
static pk_result begin_read_inlock(sq_store *s)
{
    pk_result r = PK_OK;
    sqlite3_stmt *st = NULL;
    retry t;
    int rc;

    PK_TRY(acquire_inlock(s, ST_DATA_VERSION, &st));
    for (retry_init(&t, s);;) {
        PK_TRY(run_inlock(s, ST_BEGIN_READ, true, "begin"));
        rc = sqlite3_step(st);
        (void)sqlite3_reset(st);
        if (rc == SQLITE_ROW) break;
        r = pk_fail(map_rc(rc), "store begin: %s", db_error(s, s->db));
        (void)run_inlock(s, ST_ROLLBACK, false, "rollback");
        if (!retry_after(&t, rc)) {
            if (is_busy(rc)) r = fail_locked(s, "begin");
            goto out;
        }
        r = PK_OK;
    }
out:
    release_inlock(s, ST_DATA_VERSION, st);
    return r;
}

static pk_result sq_begin(pk_store *base, bool write)
{
    sq_store *s = sq(base);
    pk_result r = PK_OK;

    pthread_mutex_lock(&s->lock);
    PK_CHECK(s->tx == TX_NONE, P11KMS_ERR_INTERNAL, "store begin: a transaction is already open on this handle");
    if (write && writes_refused(s)) {
        r = fail_broken(s);
        goto out;
    }
    if (write)
        PK_TRY(run_inlock(s, ST_BEGIN_WRITE, true, "begin"));
    else
        PK_TRY(begin_read_inlock(s));
    s->tx = write ? TX_WRITE : TX_READ;
out:
    pthread_mutex_unlock(&s->lock);
    return r;
}

static void rollback_inlock(sq_store *s)
{
    /* SQLite may already have rolled back after an I/O error; that is not a failure here. */
    if (sqlite3_get_autocommit(s->db) == 0) (void)run_inlock(s, ST_ROLLBACK, false, "rollback");
    s->tx = TX_NONE;
}

static pk_result sq_commit(pk_store *base, uint64_t *ticket)
{
    sq_store *s = sq(base);
    pk_result r = PK_OK;
    bool write;

    if (ticket != NULL) *ticket = 0;
    pthread_mutex_lock(&s->lock);
    PK_CHECK(s->tx != TX_NONE, P11KMS_ERR_INTERNAL, "store commit: no transaction is open");
    write = s->tx == TX_WRITE;
    /* A flush failed since begin: this commit could never be made durable. */
    if (write && writes_refused(s))
        r = fail_broken(s);
    else
        r = run_inlock(s, ST_COMMIT, true, "commit");
    if (pk_failed(r))
        rollback_inlock(s);
    else if (write)
        count_commit_inlock(s, ticket);
    s->tx = TX_NONE;
out:
    pthread_mutex_unlock(&s->lock);
    return r;
}

static void sq_rollback(pk_store *base)
{
    sq_store *s = sq(base);
    pthread_mutex_lock(&s->lock);
    if (s->tx != TX_NONE) rollback_inlock(s);
    pthread_mutex_unlock(&s->lock);
}

static pk_result get_inlock(sq_store *s, const char *kind, const char *id, pk_record *out, bool *found)
{
    pk_result r = PK_OK;
    sqlite3_stmt *st = NULL;
    int rc;

    PK_TRY(acquire_inlock(s, ST_GET, &st));
    rc = bind_key(st, kind, id);
    if (rc == SQLITE_OK) rc = step_inlock(s, st, s->tx == TX_NONE);
    if (rc == SQLITE_ROW) {
        PK_TRY(row_to_record(st, out));
        *found = true;
    } else {
        PK_CHECK(rc == SQLITE_DONE, map_rc(rc), "store get %s/%s: %s", kind, id, db_error(s, s->db));
    }
out:
    release_inlock(s, ST_GET, st);
    return r;
}

/* *out is overwritten, not freed: pass a fresh record or one already cleared with pk_record_clear. */
static pk_result sq_get(pk_store *base, const char *kind, const char *id, pk_record *out, bool *found)
{
    sq_store *s = sq(base);
    pk_result r;

    PK_ENSURE_REF(out);
    PK_ENSURE_REF(found);
    memset(out, 0, sizeof(*out));
    *found = false;
    PK_GUARD(check_key(kind, id));
    pthread_mutex_lock(&s->lock);
    r = get_inlock(s, kind, id, out, found);
    pthread_mutex_unlock(&s->lock);
    if (pk_failed(r)) {
        pk_record_clear(out);
        *found = false;
    }
    return r;
}

/* A write outside a transaction commits by itself: refused after a failed flush, like begin. */
static pk_result autocommit_check_inlock(sq_store *s)
{
    if (s->tx == TX_NONE && writes_refused(s)) return fail_broken(s);
    return PK_OK;
}

static pk_result write_inlock(sq_store *s, const pk_record *rec, uint64_t expected_rev)
{
    pk_result r = PK_OK;
    enum stmt_id id = expected_rev == 0 ? ST_INSERT : ST_UPDATE;
    sqlite3_stmt *st = NULL;
    int rc;

    PK_CHECK(s->tx != TX_READ, P11KMS_ERR_INTERNAL, "store put %s/%s: inside a read transaction", rec->kind,
             rec->id);
    PK_TRY(acquire_inlock(s, id, &st));
    rc = bind_record(st, rec);
    if (rc == SQLITE_OK && id == ST_UPDATE) rc = sqlite3_bind_int64(st, 8, (sqlite3_int64)expected_rev);
    if (rc == SQLITE_OK) rc = step_inlock(s, st, s->tx == TX_NONE);
    PK_CHECK(rc != SQLITE_CONSTRAINT_PRIMARYKEY, P11KMS_ERR_ALREADY_EXISTS, "record %s/%s already exists",
             rec->kind, rec->id);
    if (rc != SQLITE_DONE) {
        r = fail_rec(s, rc, "put", rec->kind, rec->id);
        goto out;
    }
    /* Zero rows: someone else updated (or deleted) it since the caller read expected_rev. */
    PK_CHECK(sqlite3_changes(s->db) == 1, P11KMS_ERR_STORE, "record %s/%s changed concurrently; retry", rec->kind,
             rec->id);
    if (s->tx == TX_NONE) count_commit_inlock(s, NULL);
out:
    release_inlock(s, id, st);
    return r;
}

static pk_result sq_put(pk_store *base, const pk_record *rec, uint64_t expected_rev)
{
    sq_store *s = sq(base);
    pk_result r;

    PK_ENSURE_REF(rec);
    PK_GUARD(check_key(rec->kind, rec->id));
    PK_GUARD(check_name("ref", rec->ref, PK_STORE_ID_MAX, true));
    PK_ENSURE(expected_rev < INT64_MAX && rec->rev == expected_rev + 1, P11KMS_ERR_INVALID_ARGUMENT,
              "store put %s/%s: rev %llu is not expected rev + 1 (%llu)", rec->kind, rec->id,
              (unsigned long long)rec->rev, (unsigned long long)expected_rev + 1);
    PK_ENSURE(rec->due_ms >= 0, P11KMS_ERR_INVALID_ARGUMENT, "store put %s/%s: negative due time", rec->kind,
              rec->id);
    PK_ENSURE(rec->body.data != NULL || rec->body.len == 0, P11KMS_ERR_INVALID_ARGUMENT,
              "store put %s/%s: body is missing", rec->kind, rec->id);
    PK_ENSURE(rec->body.len <= INT_MAX, P11KMS_ERR_LIMIT, "store put %s/%s: body too large", rec->kind, rec->id);
    pthread_mutex_lock(&s->lock);
    r = autocommit_check_inlock(s);
    if (pk_ok(r)) r = write_inlock(s, rec, expected_rev);
    pthread_mutex_unlock(&s->lock);
    return r;
}

static pk_result del_inlock(sq_store *s, const char *kind, const char *id)
{
    pk_result r = PK_OK;
    sqlite3_stmt *st = NULL;
    int rc;

    PK_CHECK(s->tx != TX_READ, P11KMS_ERR_INTERNAL, "store delete %s/%s: inside a read transaction", kind, id);
    PK_TRY(acquire_inlock(s, ST_DELETE, &st));
    rc = bind_key(st, kind, id);
    if (rc == SQLITE_OK) rc = step_inlock(s, st, s->tx == TX_NONE);
    if (rc != SQLITE_DONE) r = fail_rec(s, rc, "delete", kind, id);
    else if (s->tx == TX_NONE) count_commit_inlock(s, NULL);
out:
    release_inlock(s, ST_DELETE, st);
    return r;
}

static pk_result sq_del(pk_store *base, const char *kind, const char *id)
{
    sq_store *s = sq(base);
    pk_result r;

    PK_GUARD(check_key(kind, id));
    pthread_mutex_lock(&s->lock);
    r = autocommit_check_inlock(s);
    if (pk_ok(r)) r = del_inlock(s, kind, id);
    pthread_mutex_unlock(&s->lock);
    return r;
}

/* Step through a bound query and hand each row to cb. Contention can only precede the first row. */
static pk_result each_row_inlock(sq_store *s, sqlite3_stmt *st, const char *op, const char *kind, pk_record_cb cb,
                                 void *ctx)
{
    pk_result r = PK_OK;
    pk_record rec;
    bool may_retry = s->tx == TX_NONE;
    retry t;
    int rc;

    memset(&rec, 0, sizeof(rec));
    for (retry_init(&t, s);;) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            may_retry = false;
            PK_TRY(row_to_record(st, &rec));
            if (!cb(&rec, ctx)) break;
            continue;
        }
        if (rc == SQLITE_DONE) break;
        if (!may_retry || !retry_after(&t, rc)) {
            r = pk_fail(map_rc(rc), "store %s %s: %s", op, kind, db_error(s, s->db));
            goto out;
        }
        (void)sqlite3_reset(st);
    }
out:
    pk_record_clear(&rec);
    return r;
}

static pk_result query_inlock(sq_store *s, enum stmt_id id, const char *op, const char *kind, const char *ref,
                              int64_t now_ms, pk_record_cb cb, void *ctx)
{
    pk_result r = PK_OK;
    sqlite3_stmt *st = NULL;
    int rc;

    PK_TRY(acquire_inlock(s, id, &st));
    rc = bind_key(st, kind, ref);
    if (rc == SQLITE_OK && id == ST_LIST_DUE) rc = sqlite3_bind_int64(st, 2, now_ms);
    PK_CHECK(rc == SQLITE_OK, map_rc(rc), "store %s %s: %s", op, kind, db_error(s, s->db));
    PK_TRY(each_row_inlock(s, st, op, kind, cb, ctx));
out:
    release_inlock(s, id, st);
    return r;
}

static pk_result sq_list(pk_store *base, const char *kind, const char *ref, pk_record_cb cb, void *ctx)
{
    sq_store *s = sq(base);
    pk_result r;

    PK_ENSURE_REF(cb);
    PK_GUARD(check_key(kind, NULL));
    if (ref != NULL) PK_GUARD(check_name("ref", ref, PK_STORE_ID_MAX, true));
    pthread_mutex_lock(&s->lock);
    r = query_inlock(s, ref != NULL ? ST_LIST_REF : ST_LIST_KIND, "list", kind, ref, 0, cb, ctx);
    pthread_mutex_unlock(&s->lock);
    return r;
}

static pk_result sq_list_due(pk_store *base, const char *kind, int64_t now_ms, pk_record_cb cb, void *ctx)
{
    sq_store *s = sq(base);
    pk_result r;

    PK_ENSURE_REF(cb);
    PK_GUARD(check_key(kind, NULL));
    pthread_mutex_lock(&s->lock);
    r = query_inlock(s, ST_LIST_DUE, "list_due", kind, NULL, now_ms, cb, ctx);
    pthread_mutex_unlock(&s->lock);
    return r;
}

/* Run a one-row, one-integer statement (count, data_version). */
static pk_result scalar_inlock(sq_store *s, enum stmt_id id, const char *op, const char *kind, const char *ref,
                               int64_t *out)
{
    pk_result r = PK_OK;
    sqlite3_stmt *st = NULL;
    int rc = SQLITE_OK;

    PK_TRY(acquire_inlock(s, id, &st));
    if (kind != NULL) rc = bind_key(st, kind, ref);
    if (rc == SQLITE_OK) rc = step_inlock(s, st, s->tx == TX_NONE);
    PK_CHECK(rc == SQLITE_ROW, map_rc(rc), "store %s: %s", op, db_error(s, s->db));
    *out = sqlite3_column_int64(st, 0);
out:
    release_inlock(s, id, st);
    return r;
}

static pk_result sq_count(pk_store *base, const char *kind, const char *ref, uint64_t *out)
{
    sq_store *s = sq(base);
    pk_result r;
    int64_t n = 0;

    PK_ENSURE_REF(out);
    PK_GUARD(check_key(kind, NULL));
    if (ref != NULL) PK_GUARD(check_name("ref", ref, PK_STORE_ID_MAX, true));
    pthread_mutex_lock(&s->lock);
    r = scalar_inlock(s, ref != NULL ? ST_COUNT_REF : ST_COUNT_KIND, "count", kind, ref, &n);
    pthread_mutex_unlock(&s->lock);
    *out = pk_ok(r) ? (uint64_t)n : 0;
    return r;
}

/*
 * PRAGMA data_version changes when another connection (this process or
 * another) commits; this handle's own commits do not change it, which is
 * what a cache of verified records wants: it updates itself on its writes.
 */
static pk_result sq_changed(pk_store *base, bool *changed)
{
    sq_store *s = sq(base);
    pk_result r;
    int64_t v = 0;

    PK_ENSURE_REF(changed);
    pthread_mutex_lock(&s->lock);
    r = scalar_inlock(s, ST_DATA_VERSION, "changed", NULL, NULL, &v);
    if (pk_ok(r)) {
        *changed = !s->dv_seen || v != s->dv;
        s->dv = v;
        s->dv_seen = true;
    }
    pthread_mutex_unlock(&s->lock);
    return r;
}

/* ---- open, migrate, close ---------------------------------------------- */

/* Our memory and our fd on the -wal file (no locks hang on it). */
static void free_own(sq_store *s)
{
    if (s->wal_fd >= 0) close(s->wal_fd);
    free(s->wal_path);
    free(s);
}

static void destroy(sq_store *s)
{
    /* The main connection closes last: as the last one it checkpoints and removes the WAL. */
    if (s->ck_db != NULL) (void)sqlite3_close(s->ck_db);
    if (s->ck_ready) pthread_mutex_destroy(&s->ck_mu);
    if (s->db != NULL) {
        for (size_t i = 0; i < PK_ARRAY_LEN(s->stmt); i++) (void)sqlite3_finalize(s->stmt[i]);
        /* Closing with a transaction open rolls it back. */
        (void)sqlite3_close(s->db);
    }
    if (s->lock_ready) pthread_mutex_destroy(&s->lock);
    if (s->gc_ready) pk_gc_destroy(&s->gc);
    free_own(s);
}

static void sq_close(pk_store *base)
{
    sq_store *s = sq(base);

    /* In a forked child the connection's locks and WAL belong to the parent: leave them be. */
    if (s->pid != getpid()) {
        free_own(s);
        return;
    }
    /*
     * Another connection may keep the WAL after ours closes, so the last
     * commits are flushed here; a failure is already on record in the handle
     * and cannot be reported from a close. (Callers that can report it call
     * sync first.)
     */
    PK_IGNORE(sq_sync(base, PK_STORE_SYNC_ALL));
    destroy(s);
}

static const pk_store_ops sqlite_ops = {
    .name = "sqlite",
    .begin = sq_begin,
    .commit = sq_commit,
    .rollback = sq_rollback,
    .get = sq_get,
    .put = sq_put,
    .del = sq_del,
    .list = sq_list,
    .list_due = sq_list_due,
    .count = sq_count,
    .changed = sq_changed,
    .sync = sq_sync,
    .set_checkpoint_background = sq_set_checkpoint_background,
    .checkpoint = sq_checkpoint,
    .stats = sq_stats,
    .close = sq_close,
};

/* An existing store must be a regular file; a missing one means `p11kms init` has not run. */
static pk_result require_file(const char *path)
{
    struct stat st;

    if (stat(path, &st) != 0) {
        PK_ENSURE(errno != ENOENT, P11KMS_ERR_NOT_INITIALIZED, "store %s does not exist; run p11kms init", path);
        return pk_fail(P11KMS_ERR_STORE, "store %s: %s", path, strerror(errno));
    }
    PK_ENSURE(S_ISREG(st.st_mode), P11KMS_ERR_STORE, "store %s is not a regular file", path);
    return PK_OK;
}

/*
 * Create the file ourselves, so its mode is exactly 0600 whatever the umask
 * (SQLite gives the -wal and -shm files the database file's mode).
 */
static pk_result create_file(const char *path)
{
    char dir[PATH_MAX];
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);

    if (fd >= 0) {
        int rc = fchmod(fd, 0600);
        int err = errno;
        close(fd);
        if (rc != 0) {
            (void)unlink(path);
            return pk_fail(P11KMS_ERR_STORE, "store %s: chmod: %s", path, strerror(err));
        }
        return PK_OK;
    }
    if (errno == EEXIST) return require_file(path);
    if (errno == ENOENT) {
        snprintf(dir, sizeof(dir), "%s", path);
        return pk_fail(P11KMS_ERR_CONFIG, "store directory %s does not exist; create it first", dirname(dir));
    }
    return pk_fail(P11KMS_ERR_STORE, "cannot create store %s: %s", path, strerror(errno));
}

/*
 * One-off SQL for open and migration (not cached), retried on contention.
 * With out, the first column of the first row is returned as an integer;
 * with text, as text.
 */
static pk_result once_inlock(sq_store *s, const char *sql, const char *op, int64_t *out, char *text, size_t text_len)
{
    sqlite3_stmt *st = NULL;
    retry t;
    int rc;

    for (retry_init(&t, s);;) {
        rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
        if (rc == SQLITE_OK) rc = sqlite3_step(st);
        if (rc == SQLITE_ROW && out != NULL) *out = sqlite3_column_int64(st, 0);
        if (rc == SQLITE_ROW && text != NULL)
            snprintf(text, text_len, "%s", (const char *)sqlite3_column_text(st, 0));
        if (rc == SQLITE_ROW || rc == SQLITE_DONE) break;
        if (!retry_after(&t, rc)) {
            pk_result r = is_busy(rc) ? fail_locked(s, op) : fail_db(s, rc, op);
            (void)sqlite3_finalize(st);
            return r;
        }
        (void)sqlite3_finalize(st);
        st = NULL;
    }
    (void)sqlite3_finalize(st);
    return PK_OK;
}

static pk_result connect_inlock(sq_store *s)
{
    int rc = sqlite3_open_v2(s->path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, pk_store_vfs());

    if (rc != SQLITE_OK) return fail_db(s, rc, "open");
    (void)sqlite3_extended_result_codes(s->db, 1);
    (void)sqlite3_busy_timeout(s->db, s->lock_wait_ms < BUSY_TIMEOUT_MS ? (int)s->lock_wait_ms : BUSY_TIMEOUT_MS);
    /* Refuse SQL that could corrupt the file on purpose (writable_schema and the like). */
    (void)sqlite3_db_config(s->db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
    (void)sqlite3_wal_hook(s->db, wal_hook, s);
    return PK_OK;
}

static pk_result configure_inlock(sq_store *s)
{
    char mode[16] = "";

    PK_GUARD(once_inlock(s, "PRAGMA journal_mode", "journal_mode", NULL, mode, sizeof(mode)));
    /* WAL is persistent; switching needs an exclusive lock, so only when not yet WAL. */
    if (strcmp(mode, "wal") != 0)
        PK_GUARD(once_inlock(s, "PRAGMA journal_mode = WAL", "journal_mode", NULL, mode, sizeof(mode)));
    PK_ENSURE(strcmp(mode, "wal") == 0, P11KMS_ERR_STORE,
              "store %s: cannot use WAL journal mode (got '%s'); is it on a network filesystem?", s->path, mode);
    /* Commits do not wait for the disk; `sync` does (see the top of the file). */
    PK_GUARD(once_inlock(s, "PRAGMA synchronous = NORMAL", "synchronous", NULL, NULL, 0));
    /* Deleted bodies are overwritten in the file, not left in free pages. */
    PK_GUARD(once_inlock(s, "PRAGMA secure_delete = ON", "secure_delete", NULL, NULL, 0));
    /* The page cache grows on demand up to this; the default 2 MiB misses on a 100k-record store. */
    PK_GUARD(once_inlock(s, "PRAGMA cache_size = " CACHE_SIZE, "cache_size", NULL, NULL, 0));
    return PK_OK;
}

static pk_result check_version(const sq_store *s, int64_t v)
{
    PK_ENSURE(v <= SCHEMA_VERSION, P11KMS_ERR_STORE,
              "store %s has schema version %lld, newer than this p11kms supports (%lld); upgrade p11kms", s->path,
              (long long)v, (long long)SCHEMA_VERSION);
    PK_ENSURE(v >= 0, P11KMS_ERR_STORE, "store %s has an invalid schema version %lld", s->path, (long long)v);
    return PK_OK;
}

/* Runs inside BEGIN IMMEDIATE, so two processes opening a new store migrate it once. */
static pk_result migrate_intx(sq_store *s, bool create)
{
    char sql[64];
    int64_t v = 0, objects = 0;
    char *err = NULL;

    PK_GUARD(once_inlock(s, "PRAGMA user_version", "user_version", &v, NULL, 0));
    PK_GUARD(check_version(s, v));
    if (v == 0) {
        PK_ENSURE(create, P11KMS_ERR_NOT_INITIALIZED, "store %s is not initialised; run p11kms init", s->path);
        /* Never add our tables to somebody else's database. */
        PK_GUARD(once_inlock(s, "SELECT count(*) FROM sqlite_master", "schema", &objects, NULL, 0));
        PK_ENSURE(objects == 0, P11KMS_ERR_STORE, "store %s is an SQLite database but not a p11kms store", s->path);
    }
    for (; v < SCHEMA_VERSION; v++) {
        if (sqlite3_exec(s->db, migrations[v], NULL, NULL, &err) != SQLITE_OK) {
            pk_result r = pk_fail(P11KMS_ERR_STORE, "store %s: migration to schema version %lld failed: %s",
                                  s->path, (long long)v + 1, err ? err : db_error(s, s->db));
            sqlite3_free(err);
            return r;
        }
    }
    snprintf(sql, sizeof(sql), "PRAGMA user_version = %lld", (long long)SCHEMA_VERSION);
    return once_inlock(s, sql, "user_version", NULL, NULL, 0);
}

/*
 * Check the version before changing anything (the first read of the file:
 * a non-database shows up here), then configure, then migrate if needed.
 */
static pk_result setup_inlock(sq_store *s, bool create)
{
    pk_result r = PK_OK;
    int64_t v = 0;

    PK_TRY(once_inlock(s, "PRAGMA user_version", "user_version", &v, NULL, 0));
    PK_TRY(check_version(s, v));
    PK_CHECK(v != 0 || create, P11KMS_ERR_NOT_INITIALIZED, "store %s is not initialised; run p11kms init", s->path);
    PK_TRY(configure_inlock(s));
    /* The common case (up to date) takes no write lock. */
    if (v == SCHEMA_VERSION) goto out;
    PK_TRY(run_inlock(s, ST_BEGIN_WRITE, true, "begin"));
    s->tx = TX_WRITE;
    PK_TRY(migrate_intx(s, create));
    PK_TRY(run_inlock(s, ST_COMMIT, true, "commit"));
    s->tx = TX_NONE;
    count_commit_inlock(s, NULL); /* synced before open returns */
out:
    if (pk_failed(r) && s->tx != TX_NONE) rollback_inlock(s);
    return r;
}

static pk_result prepare_all(sq_store *s)
{
    for (size_t i = 0; i < PK_ARRAY_LEN(s->stmt); i++) {
        int rc = sqlite3_prepare_v3(s->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &s->stmt[i], NULL);
        if (rc != SQLITE_OK) return fail_db(s, rc, "prepare");
    }
    return PK_OK;
}

static pk_result init_lock(sq_store *s)
{
    pthread_mutexattr_t a;
    int rc;

    pthread_mutexattr_init(&a);
    /* Recursive: a list callback may call back into the store. */
    pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
    rc = pthread_mutex_init(&s->lock, &a);
    pthread_mutexattr_destroy(&a);
    PK_ENSURE(rc == 0, P11KMS_ERR_INTERNAL, "store: cannot create a mutex");
    s->lock_ready = true;
    PK_ENSURE(pk_gc_init(&s->gc, flush_wal, s) == 0, P11KMS_ERR_INTERNAL, "store: cannot create a mutex");
    s->gc_ready = true;
    PK_ENSURE(pthread_mutex_init(&s->ck_mu, NULL) == 0, P11KMS_ERR_INTERNAL, "store: cannot create a mutex");
    s->ck_ready = true;
    return PK_OK;
}

/* The -wal file exists once the connection has read in WAL mode (setup did). */
static pk_result open_wal(sq_store *s)
{
    int err = wal_follow(s);
    PK_ENSURE(err == 0, P11KMS_ERR_STORE, "store %s: cannot open %s: %s", s->path, s->wal_path, strerror(err));
    PK_ENSURE(s->wal_fd >= 0, P11KMS_ERR_STORE, "store %s: %s is missing after switching to WAL", s->path,
              s->wal_path);
    return PK_OK;
}

pk_result pk_store_sqlite_open(const char *path, bool create, pk_store **out)
{
    pk_result r = PK_OK;
    sq_store *s = NULL;
    size_t n;

    PK_ENSURE_REF(out);
    *out = NULL;
    PK_ENSURE(path != NULL && *path != '\0', P11KMS_ERR_CONFIG, "store path is empty: use sqlite:PATH");
    n = strlen(path);
    PK_ENSURE(n < PATH_MAX, P11KMS_ERR_CONFIG, "store path is too long");
    PK_GUARD(create ? create_file(path) : require_file(path));
    s = calloc(1, sizeof(*s) + n + 1);
    PK_CHECK_ALLOC(s);
    memcpy(s->path, path, n + 1);
    s->base.ops = &sqlite_ops;
    s->pid = getpid();
    s->lock_wait_ms = RETRY_DEADLINE_MS;
    s->wal_fd = -1;
    if (asprintf(&s->wal_path, "%s-wal", path) < 0) s->wal_path = NULL;
    PK_CHECK_ALLOC(s->wal_path);
    PK_TRY(init_lock(s));
    /* Not shared yet; the lock is for the _inlock naming contract only. */
    pthread_mutex_lock(&s->lock);
    r = connect_inlock(s);
    if (pk_ok(r)) r = setup_inlock(s, create);
    if (pk_ok(r)) r = prepare_all(s);
    if (pk_ok(r)) r = open_wal(s);
    pthread_mutex_unlock(&s->lock);
    PK_TRY(r);
    /* A migration is a commit: make it durable before anyone builds on it. */
    PK_TRY(sq_sync(&s->base, PK_STORE_SYNC_ALL));
    *out = &s->base;
    s = NULL;
out:
    if (s != NULL) destroy(s);
    return r;
}
