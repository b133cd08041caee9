/* The group-commit engine and the batch-mode flusher (util/group_commit.h). */
#include "config.h"

#include <errno.h>
#include <time.h>

#include "util/group_commit.h"

int64_t pk_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* A condition variable whose timed waits use the monotonic clock. */
static int cond_init_monotonic(pthread_cond_t *cv)
{
    pthread_condattr_t a;
    int rc = pthread_condattr_init(&a);

    if (rc != 0) return rc;
    rc = pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    if (rc == 0) rc = pthread_cond_init(cv, &a);
    pthread_condattr_destroy(&a);
    return rc;
}

/* ---- group commit ---- */

int pk_gc_init(pk_gc *g, pk_gc_sync_fn sync, void *ctx)
{
    int rc;

    *g = (pk_gc){.sync = sync, .ctx = ctx};
    rc = pthread_mutex_init(&g->mu, NULL);
    if (rc != 0) return rc;
    rc = pthread_cond_init(&g->cv, NULL);
    if (rc != 0) pthread_mutex_destroy(&g->mu);
    g->ready = rc == 0;
    return rc;
}

void pk_gc_destroy(pk_gc *g)
{
    if (!g->ready) return;
    g->ready = false;
    pthread_mutex_destroy(&g->mu);
    pthread_cond_destroy(&g->cv);
}

uint64_t pk_gc_next_ticket(pk_gc *g)
{
    return __atomic_add_fetch(&g->written, 1, __ATOMIC_ACQ_REL);
}

uint64_t pk_gc_last_ticket(pk_gc *g)
{
    return __atomic_load_n(&g->written, __ATOMIC_ACQUIRE);
}

int pk_gc_broken(pk_gc *g)
{
    return __atomic_load_n(&g->broken, __ATOMIC_ACQUIRE);
}

void pk_gc_stats(pk_gc *g, uint64_t *synced, uint64_t *syncs)
{
    pthread_mutex_lock(&g->mu);
    if (synced != NULL) *synced = g->synced;
    if (syncs != NULL) *syncs = g->syncs;
    pthread_mutex_unlock(&g->mu);
}

/*
 * A waiter whose ticket a leader covered returns at once; otherwise it
 * becomes the next leader and flushes for everything written by then, its
 * own write included.
 */
int pk_gc_sync(pk_gc *g, uint64_t upto)
{
    uint64_t target;
    bool flushed = false;
    int err;

    pthread_mutex_lock(&g->mu);
    target = pk_gc_last_ticket(g);
    if (upto > target) upto = target; /* never wait for a write that has not happened */
    for (;;) {
        if (g->synced >= upto) {
            pthread_mutex_unlock(&g->mu);
            return 0;
        }
        if (g->broken != 0) {
            err = g->broken;
            pthread_mutex_unlock(&g->mu);
            return err;
        }
        if (!g->syncing) break;
        pthread_cond_wait(&g->cv, &g->mu);
    }
    g->syncing = true;
    target = pk_gc_last_ticket(g);
    pthread_mutex_unlock(&g->mu);

    err = g->sync(g->ctx, &target, &flushed);

    pthread_mutex_lock(&g->mu);
    if (flushed) g->syncs++;
    /* After a failed fdatasync the kernel may have dropped the pages: never trust a later flush. */
    if (flushed && err != 0) __atomic_store_n(&g->broken, err, __ATOMIC_RELEASE);
    if (err == 0 && target > g->synced) g->synced = target;
    g->syncing = false;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
    return err;
}

/* ---- flusher ---- */

int pk_flusher_init(pk_flusher *fl, pthread_mutex_t *mu, pk_flusher_step_fn step, void *ctx)
{
    int rc;

    *fl = (pk_flusher){.mu = mu, .step = step, .ctx = ctx};
    rc = cond_init_monotonic(&fl->cv);
    fl->ready = rc == 0;
    return rc;
}

static void wait_until(pk_flusher *fl, int64_t deadline_us)
{
    struct timespec ts = {(time_t)(deadline_us / 1000000), (long)(deadline_us % 1000000) * 1000};
    (void)pthread_cond_timedwait(&fl->cv, fl->mu, &ts);
}

static void *flusher_main(void *arg)
{
    pk_flusher *fl = arg;

    pthread_mutex_lock(fl->mu);
    while (!fl->stop) {
        int64_t next = fl->step(fl->ctx, pk_mono_us());
        if (fl->stop) break;
        /* The step may have taken a while: compare with a fresh clock. */
        if (next != PK_FLUSHER_NEVER && next <= pk_mono_us()) continue;
        fl->wakes_at = next;
        if (next == PK_FLUSHER_NEVER)
            pthread_cond_wait(&fl->cv, fl->mu);
        else
            wait_until(fl, next);
        fl->wakes_at = 0;
    }
    pthread_mutex_unlock(fl->mu);
    return NULL;
}

int pk_flusher_start(pk_flusher *fl)
{
    int rc;

    if (fl->started) return 0;
    rc = pthread_create(&fl->thread, NULL, flusher_main, fl);
    if (rc == 0) fl->started = true;
    return rc;
}

void pk_flusher_nudge(pk_flusher *fl, int64_t due_us)
{
    /* A running flusher (wakes_at 0) computes its next look after this. */
    if (fl->started && fl->wakes_at > due_us) pthread_cond_signal(&fl->cv);
}

void pk_flusher_stop(pk_flusher *fl)
{
    pthread_mutex_lock(fl->mu);
    fl->stop = true;
    pthread_cond_signal(&fl->cv);
    pthread_mutex_unlock(fl->mu);
    if (fl->started) pthread_join(fl->thread, NULL);
    fl->started = false;
}

void pk_flusher_destroy(pk_flusher *fl)
{
    if (!fl->ready) return;
    fl->ready = false;
    pthread_cond_destroy(&fl->cv);
}
