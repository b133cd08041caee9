/*
 * Internals of the SQLite backend, shared by its files (one concept each):
 *   store_sqlite.c  errors and cached statements
 *   store_tx.c      transactions and retrying on contention
 *   store_ops.c     records: get, put, delete, list, count
 *   store_sync.c    durability (group commit) and checkpoints
 *   store_schema.c  open, migrations, close
 *   store_vfs.c     the VFS
 * Only src/store includes this header.
 */
#ifndef P11KMS_STORE_SQLITE_IMPL_H
#define P11KMS_STORE_SQLITE_IMPL_H

#include <pthread.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "store/store.h"
#include "util/group_commit.h"

#define BUSY_TIMEOUT_MS 10000
#define RETRY_DEADLINE_MS 30000
#define RETRY_MAX_SLEEP_MS 100
#define CACHE_SIZE "-32768" /* KiB, per handle */
#define CKPT_FRAMES 1000            /* checkpoint mark: SQLite's default wal_autocheckpoint */
#define CKPT_BACKSTOP_FRAMES 10000  /* background checkpoints fell behind: a commit runs one */

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
    ST_LIST_ALL,
    ST_COUNT_
};

extern const char *const sq_stmt_sql[ST_COUNT_];

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

static inline sq_store *sq(pk_store *base) { return (sq_store *)base; }

/* Retrying on contention (store_tx.c). */
typedef struct retry {
    unsigned attempt;
    unsigned deadline_ms;
    struct timespec start;
} retry;

/* store_sqlite.c */
pk_result sq_acquire_inlock(sq_store *s, enum stmt_id id, sqlite3_stmt **out);
const char *sq_db_error(const sq_store *s, sqlite3 *db);
pk_result sq_fail_db(sq_store *s, int rc, const char *op);
pk_result sq_fail_rec(sq_store *s, int rc, const char *op, const char *kind, const char *id);
p11kms_rc sq_map_rc(int rc);
void sq_release_inlock(sq_store *s, enum stmt_id id, sqlite3_stmt *st);
pk_result sq_run_inlock(sq_store *s, enum stmt_id id, bool may_retry, const char *op);

/* store_tx.c */
pk_result sq_fail_locked(const sq_store *s, const char *op);
bool sq_is_busy(int rc);
bool sq_retry_after(retry *t, int rc);
void sq_retry_init(retry *t, const sq_store *s);
void sq_rollback_inlock(sq_store *s);
pk_result sq_begin(pk_store *base, bool write);
pk_result sq_commit(pk_store *base, uint64_t *ticket);
void sq_rollback(pk_store *base);
int sq_step_inlock(sq_store *s, sqlite3_stmt *st, bool may_retry);

/* store_ops.c */
pk_result sq_changed(pk_store *base, bool *changed);
pk_result sq_count(pk_store *base, const char *kind, const char *ref, uint64_t *out);
pk_result sq_del(pk_store *base, const char *kind, const char *id);
pk_result sq_get(pk_store *base, const char *kind, const char *id, pk_record *out, bool *found);
pk_result sq_list(pk_store *base, const char *kind, const char *ref, pk_record_cb cb, void *ctx);
pk_result sq_list_all(pk_store *base, pk_record_cb cb, void *ctx);
pk_result sq_list_due(pk_store *base, const char *kind, int64_t now_ms, pk_record_cb cb, void *ctx);
pk_result sq_put(pk_store *base, const pk_record *rec, uint64_t expected_rev);

/* store_sync.c */
void sq_count_commit_inlock(sq_store *s, uint64_t *ticket);
pk_result sq_fail_broken(sq_store *s);
int sq_flush_wal(void *ctx, uint64_t *target, bool *flushed);
pk_result sq_checkpoint(pk_store *base);
void sq_set_checkpoint_background(pk_store *base, bool background);
void sq_stats(pk_store *base, pk_store_stats *out);
pk_result sq_sync(pk_store *base, uint64_t upto);
int sq_wal_follow(sq_store *s);
int sq_wal_hook(void *arg, sqlite3 *db, const char *name, int frames);
bool sq_writes_refused(sq_store *s);

/* store_schema.c */


#endif
