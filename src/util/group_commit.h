/*
 * Durability shared by the audit trail and the store.
 *
 * pk_gc, group commit: writers take a ticket after each write
 * (pk_gc_next_ticket); pk_gc_sync(upto) makes every write up to that ticket
 * durable. One caller, the leader, runs the owner's sync callback (one
 * fdatasync) for every write made so far while the others wait for it, so
 * concurrent callers share one sync. A failed sync is sticky: the kernel
 * may have dropped the pages, so every later pk_gc_sync fails with the
 * first error and the owner refuses writes (pk_gc_broken).
 *
 * pk_flusher, the batch-mode thread: it calls the owner's step callback
 * with the owner's mutex held; the step does what is due (a sync within
 * the batch window, a seal, ending a lease) and returns when to look
 * again. Waits use CLOCK_MONOTONIC, so a wall-clock step never stretches a
 * window. Writers wake it only when it would otherwise look too late
 * (pk_flusher_nudge), so a busy flusher polls instead of being signalled.
 */
#ifndef P11KMS_UTIL_GROUP_COMMIT_H
#define P11KMS_UTIL_GROUP_COMMIT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define PK_GC_ALL UINT64_MAX

/*
 * Flush everything written so far. *target holds the last ticket when it
 * is called; the callback may set it to the last ticket its flush covers
 * (read under the owner's lock). Returns 0 or an errno; *flushed says
 * whether a flush was attempted: only a failed flush is sticky.
 */
typedef int (*pk_gc_sync_fn)(void *ctx, uint64_t *target, bool *flushed);

typedef struct pk_gc {
    pk_gc_sync_fn sync;
    void *ctx;
    uint64_t written;   /* the last ticket handed out (atomic) */
    pthread_mutex_t mu; /* guards the fields below; never held across the callback */
    pthread_cond_t cv;
    bool syncing;       /* a leader runs the callback */
    uint64_t synced;    /* every ticket up to this one is durable */
    uint64_t syncs;     /* flushes attempted */
    int broken;         /* errno of the first failed flush, 0: none (atomic) */
    bool ready;         /* initialised: destroy is safe on a zeroed or failed one */
} pk_gc;

/* 0 or an errno; pk_gc_destroy is safe after a failed init (and on zeroed memory). */
int pk_gc_init(pk_gc *g, pk_gc_sync_fn sync, void *ctx);
void pk_gc_destroy(pk_gc *g);
/* After a write is visible: its ticket (1, 2, ...). */
uint64_t pk_gc_next_ticket(pk_gc *g);
uint64_t pk_gc_last_ticket(pk_gc *g);
/*
 * Make writes up to `upto` durable (capped at the last ticket). 0 (also
 * for tickets made durable before a failure), the sticky errno of a failed
 * flush, or the errno of a callback that could not flush (not sticky).
 */
int pk_gc_sync(pk_gc *g, uint64_t upto);
/* 0, or the errno of the failed flush: the owner must refuse writes. */
int pk_gc_broken(pk_gc *g);
void pk_gc_stats(pk_gc *g, uint64_t *synced, uint64_t *syncs);

/* Monotonic microseconds. */
int64_t pk_mono_us(void);

#define PK_FLUSHER_NEVER INT64_MAX

/*
 * Called with *mu held; it may drop and retake mu around slow work. Returns
 * the monotonic time (us) at which to call it again, PK_FLUSHER_NEVER to
 * sleep until nudged, or a time <= now to call it again at once.
 */
typedef int64_t (*pk_flusher_step_fn)(void *ctx, int64_t now_us);

typedef struct pk_flusher {
    pthread_mutex_t *mu;    /* the owner's */
    pthread_cond_t cv;      /* CLOCK_MONOTONIC */
    pk_flusher_step_fn step;
    void *ctx;
    pthread_t thread;
    bool started, stop;
    int64_t wakes_at;       /* when a waiting flusher looks on its own; NEVER; 0: running (under *mu) */
    bool ready;             /* initialised: destroy is safe on a zeroed or failed one */
} pk_flusher;

/* 0 or an errno; pk_flusher_destroy is safe after a failed init (and on zeroed memory). */
int pk_flusher_init(pk_flusher *fl, pthread_mutex_t *mu, pk_flusher_step_fn step, void *ctx);
/* Start the thread (once); 0 or an errno. Call with *mu held. */
int pk_flusher_start(pk_flusher *fl);
/* Make the flusher look by due_us: signals only if it would wake later. Call with *mu held. */
void pk_flusher_nudge(pk_flusher *fl, int64_t due_us);
/* Stop and join the thread. Call without *mu held. */
void pk_flusher_stop(pk_flusher *fl);
void pk_flusher_destroy(pk_flusher *fl);

#endif
