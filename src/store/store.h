/*
 * The metadata store behind a small backend interface.
 *
 * Everything p11kms persists (keys, key versions, aliases, namespaces,
 * secrets, connections, store metadata) is a *record*: a kind, an id, an
 * optional secondary reference, an optional due time, a revision, an opaque
 * body and a MAC. Backends store and index these bytes; they know nothing
 * about what the body means or how the MAC is made (src/store/record.c
 * computes and checks MACs in the HSM). That keeps a backend small: SQLite
 * here, PostgreSQL later, without touching callers.
 *
 * Concurrency: a write transaction (pk_store_begin(s, true)) serialises
 * writers across processes; `put` with expected_rev gives optimistic
 * concurrency on top. Backends retry internally on contention (SQLite:
 * busy timeout + BEGIN IMMEDIATE retries) and never surface "database is
 * locked" to callers.
 *
 * Durability: a commit is atomic and visible at once, but not necessarily
 * on disk; `sync` makes every commit so far durable, and commits reach the
 * disk in commit order (a later durable commit never survives without an
 * earlier one). Callers decide when to pay for it (core/store_flush.c).
 */
#ifndef PK_STORE_STORE_H
#define PK_STORE_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include "util/bytes.h"
#include "util/result.h"

#define PK_STORE_KIND_MAX 16
#define PK_STORE_ID_MAX 520 /* secret names are up to 512 */
#define PK_STORE_MAC_LEN 32

typedef struct pk_record {
    char kind[PK_STORE_KIND_MAX];   /* "key", "keyver", "alias", "meta", ... */
    char id[PK_STORE_ID_MAX];       /* unique within kind */
    char ref[PK_STORE_ID_MAX];      /* secondary index ("" = none), e.g. an alias's key id */
    int64_t due_ms;                 /* 0 = nothing due; else epoch ms when work is due */
    uint64_t rev;                   /* 1 on insert, +1 on each update */
    pk_buf body;                    /* owned; freed by pk_record_clear */
    uint8_t mac[PK_STORE_MAC_LEN];
} pk_record;

void pk_record_clear(pk_record *r);

typedef struct pk_store pk_store;

/* Counters of one handle, for tests and benchmarks. */
typedef struct pk_store_stats {
    uint64_t commits; /* write commits (transactions and autocommit writes); the last commit's ticket */
    uint64_t synced;  /* every commit with a ticket up to this one is durable */
    uint64_t syncs;   /* fdatasync calls (group commit: fewer than commits under concurrency) */
    uint64_t checkpoints; /* run by `checkpoint` */
} pk_store_stats;

/* `sync` target: everything committed on the handle so far. */
#define PK_STORE_SYNC_ALL UINT64_MAX

/* Called for each listed record; return false to stop early. The record is only valid during the call. */
typedef bool (*pk_record_cb)(const pk_record *rec, void *ctx);

typedef struct pk_store_ops {
    const char *name; /* "sqlite" */
    /* Start a transaction. write=true takes the write lock up front. Not nestable. */
    pk_result (*begin)(pk_store *s, bool write);
    /*
     * Commit. A write transaction gets the next commit ticket in *ticket
     * (may be NULL; 0 for a read transaction), to pass to `sync`. The commit
     * is visible at once; it is durable only once `sync` covers its ticket.
     */
    pk_result (*commit)(pk_store *s, uint64_t *ticket);
    void (*rollback)(pk_store *s);
    /* Fetch one record; *found=false (and PK_OK) when absent. */
    pk_result (*get)(pk_store *s, const char *kind, const char *id, pk_record *out, bool *found);
    /*
     * Insert (expected_rev == 0: fails with P11KMS_ERR_ALREADY_EXISTS when
     * present) or update (expected_rev == current rev, else
     * P11KMS_ERR_STORE "record changed concurrently"). rec->rev must already
     * be expected_rev + 1: the MAC covers it, so the caller sets it.
     */
    pk_result (*put)(pk_store *s, const pk_record *rec, uint64_t expected_rev);
    /* Delete; absent records are not an error. */
    pk_result (*del)(pk_store *s, const char *kind, const char *id);
    /* All records of a kind (ref == NULL) or those with this ref, ordered by id. */
    pk_result (*list)(pk_store *s, const char *kind, const char *ref, pk_record_cb cb, void *ctx);
    /* Records of a kind with 0 < due_ms <= now_ms, ordered by due_ms (an index, never a scan). */
    pk_result (*list_due)(pk_store *s, const char *kind, int64_t now_ms, pk_record_cb cb, void *ctx);
    /* Number of records of a kind (with ref, if given). */
    pk_result (*count)(pk_store *s, const char *kind, const char *ref, uint64_t *out);
    /*
     * Whether any other connection or process changed the store since the
     * last call on this handle (SQLite: PRAGMA data_version). Cheap enough to
     * call on every operation; lets callers keep verified records cached.
     */
    pk_result (*changed)(pk_store *s, bool *changed);
    /*
     * Make every commit with a ticket up to `upto` (PK_STORE_SYNC_ALL: every
     * commit so far) durable. Thread-safe and meant to be called without
     * the caller's transaction lock: concurrent callers share one flush
     * (group commit) while other threads go on committing. A failed flush
     * fails this call and every later write on the handle (P11KMS_ERR_STORE):
     * after a failed fsync the kernel may have dropped the pages, so nothing
     * written since the last good flush can be trusted to be on disk.
     */
    pk_result (*sync)(pk_store *s, uint64_t upto);
    /*
     * A checkpoint copies the log into the database file (SQLite: two
     * fsyncs and the copy, once the WAL holds 1000 pages). By default the
     * commit that crosses that mark runs it, on its caller's time. With
     * background=true commits leave it to `checkpoint`, which a thread of the
     * caller's own must then call regularly; should it fall behind, a commit
     * still checkpoints at 10 times the mark, so the log stays bounded.
     */
    void (*set_checkpoint_background)(pk_store *s, bool background);
    /* Checkpoint if the mark is reached; never blocks committing threads. */
    pk_result (*checkpoint)(pk_store *s);
    void (*stats)(pk_store *s, pk_store_stats *out);
    /* Syncs what is committed (a failure cannot be reported), then closes. */
    void (*close)(pk_store *s);
    /* Every record of every kind, ordered by kind then id (the freshness digest, core/freshness.c). */
    pk_result (*list_all)(pk_store *s, pk_record_cb cb, void *ctx);
} pk_store_ops;

struct pk_store {
    const pk_store_ops *ops;
};

/*
 * Open a store from its URI ("sqlite:/path/p11kms.db"). Relative paths are
 * the caller's business (resolve first). Creates and migrates the schema.
 * create=false refuses a store that does not exist yet (P11KMS_ERR_NOT_INITIALIZED).
 */
PK_MUST_USE pk_result pk_store_open(const char *uri, bool create, pk_store **out);

/* Backends. */
PK_MUST_USE pk_result pk_store_sqlite_open(const char *path, bool create, pk_store **out);
/* The SQLite VFS stores open with: the default one, allocating the WAL index up front (store_vfs.c). */
const char *pk_store_vfs(void);
/* How long contention (another process's write lock) is waited out before failing; 30 s unless set (tests). */
void pk_store_sqlite_set_lock_wait(pk_store *s, unsigned ms);

static inline pk_result pk_store_begin(pk_store *s, bool write) { return s->ops->begin(s, write); }
static inline pk_result pk_store_commit(pk_store *s) { return s->ops->commit(s, NULL); }
static inline void pk_store_rollback(pk_store *s) { s->ops->rollback(s); }
static inline void pk_store_close(pk_store *s) { if (s != NULL) s->ops->close(s); }

#endif
