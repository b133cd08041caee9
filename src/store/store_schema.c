/* SQLite backend: opening a store, its schema and migrations, closing it. */
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
    .list_all = sq_list_all,
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

    for (sq_retry_init(&t, s);;) {
        rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
        if (rc == SQLITE_OK) rc = sqlite3_step(st);
        if (rc == SQLITE_ROW && out != NULL) *out = sqlite3_column_int64(st, 0);
        if (rc == SQLITE_ROW && text != NULL)
            snprintf(text, text_len, "%s", (const char *)sqlite3_column_text(st, 0));
        if (rc == SQLITE_ROW || rc == SQLITE_DONE) break;
        if (!sq_retry_after(&t, rc)) {
            pk_result r = sq_is_busy(rc) ? sq_fail_locked(s, op) : sq_fail_db(s, rc, op);
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

    if (rc != SQLITE_OK) return sq_fail_db(s, rc, "open");
    (void)sqlite3_extended_result_codes(s->db, 1);
    (void)sqlite3_busy_timeout(s->db, s->lock_wait_ms < BUSY_TIMEOUT_MS ? (int)s->lock_wait_ms : BUSY_TIMEOUT_MS);
    /* Refuse SQL that could corrupt the file on purpose (writable_schema and the like). */
    (void)sqlite3_db_config(s->db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
    (void)sqlite3_wal_hook(s->db, sq_wal_hook, s);
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
                                  s->path, (long long)v + 1, err ? err : sq_db_error(s, s->db));
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
    PK_TRY(sq_run_inlock(s, ST_BEGIN_WRITE, true, "begin"));
    s->tx = TX_WRITE;
    PK_TRY(migrate_intx(s, create));
    PK_TRY(sq_run_inlock(s, ST_COMMIT, true, "commit"));
    s->tx = TX_NONE;
    sq_count_commit_inlock(s, NULL); /* synced before open returns */
out:
    if (pk_failed(r) && s->tx != TX_NONE) sq_rollback_inlock(s);
    return r;
}

static pk_result prepare_all(sq_store *s)
{
    for (size_t i = 0; i < PK_ARRAY_LEN(s->stmt); i++) {
        int rc = sqlite3_prepare_v3(s->db, sq_stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &s->stmt[i], NULL);
        if (rc != SQLITE_OK) return sq_fail_db(s, rc, "prepare");
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
    PK_ENSURE(pk_gc_init(&s->gc, sq_flush_wal, s) == 0, P11KMS_ERR_INTERNAL, "store: cannot create a mutex");
    s->gc_ready = true;
    PK_ENSURE(pthread_mutex_init(&s->ck_mu, NULL) == 0, P11KMS_ERR_INTERNAL, "store: cannot create a mutex");
    s->ck_ready = true;
    return PK_OK;
}

/* The -wal file exists once the connection has read in WAL mode (setup did). */
static pk_result open_wal(sq_store *s)
{
    int err = sq_wal_follow(s);
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
