/*
 * When store changes reach the disk: the `store_sync` policy and the
 * batch-mode flusher.
 *
 * A commit is visible at once but durable only after the store's `sync`
 * (one fdatasync of SQLite's WAL, shared by concurrent callers). Key
 * management (pk_with_write_tx) always syncs before it returns: a key
 * created in the HSM and then forgotten by the store is lost to its users,
 * and a nonce reservation that is forgotten would let GCM nonces repeat.
 * Secret and connection changes (pk_with_write_tx_batched) follow
 * `store_sync`:
 *
 *   always (default)  sync before returning, like key management.
 *   batch             return after the commit; the flusher thread syncs at
 *                     most FLUSH_INTERVAL_US after the first commit not yet
 *                     synced, and p11kms_close syncs whatever is left.
 *
 * In batch mode a process crash loses nothing (committed pages are in the
 * kernel's page cache); a power loss or kernel crash loses the changes of
 * the last window, about 2 ms plus one fdatasync, and never a key change,
 * because the store flushes in commit order: syncing a key change also
 * makes every earlier batched change durable.
 *
 * Batch mode also moves the store's checkpoints (copying the log into the
 * database: two fsyncs and a few ms every 1000 log pages) off the
 * committing threads, onto a checkpointer thread that the flusher wakes
 * after each sync. It is a thread of its own so that a checkpoint never
 * delays a sync past the window. In always mode commits keep checkpointing
 * themselves: next to an fdatasync per change, that costs little.
 *
 * Locking: f->mu guards the flusher's state and is never held while the
 * store syncs. The mode is read without it on the commit path (atomic).
 * Fork: a child inherits the handle's memory but not its thread; it never
 * waits for, joins or locks what belongs to the parent's flusher, and its
 * changes are synced before they return (the store refuses them anyway:
 * a store handle must not cross fork).
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/core.h"
#include "util/forkgen.h"
#include "util/group_commit.h"

/* The batch window, as for the audit log's batch mode. */
#define FLUSH_INTERVAL_US 2000

struct pk_store_flush {
    p11kms *h;               /* the threads' argument is this struct: h->flush is cleared before they stop */
    pk_store_sync conf_mode; /* from p11kms.conf, applied by pk_store_flush_start */
    int mode;                /* pk_store_sync now in force; atomic loads on the commit path */
    unsigned long fork_gen;
    pthread_mutex_t mu;      /* guards everything below */
    pk_flusher flusher;      /* util/group_commit.c; runs flush_step under mu */
    pthread_cond_t ck_cv;    /* the checkpointer's */
    pthread_t ck_thread;
    bool ck_started, stop;
    bool ck_wanted;          /* a sync happened since the checkpointer last looked */
    int64_t dirty_since_us;  /* monotonic time of the first commit not yet synced; 0: none */
};

static bool inherited(const pk_store_flush *f)
{
    return f->fork_gen != pk_fork_generation();
}

static pk_result parse_mode(const p11kms_config *cfg, pk_store_sync *out)
{
    const char *v = p11kms_config_get(cfg, "store_sync");

    if (v == NULL || strcmp(v, "always") == 0)
        *out = PK_STORE_SYNC_ALWAYS;
    else if (strcmp(v, "batch") == 0)
        *out = PK_STORE_SYNC_BATCH;
    else
        return pk_fail(P11KMS_ERR_CONFIG, "%s: store_sync must be always or batch, not '%s'", p11kms_config_path(cfg),
                       v);
    return PK_OK;
}

static int64_t flush_step(void *arg, int64_t now);

pk_result pk_store_flush_new(const p11kms_config *cfg, pk_store_flush **out)
{
    pk_store_flush *f;
    pk_store_sync mode = PK_STORE_SYNC_ALWAYS;

    *out = NULL;
    PK_GUARD(parse_mode(cfg, &mode));
    f = calloc(1, sizeof(*f));
    PK_ENSURE_ALLOC(f);
    f->conf_mode = mode;
    f->mode = PK_STORE_SYNC_ALWAYS;
    f->fork_gen = pk_fork_generation();
    pthread_mutex_init(&f->mu, NULL);
    /* Deadlines are monotonic (the flusher's condition variable): a wall-clock step must not stretch the window. */
    if (pk_flusher_init(&f->flusher, &f->mu, flush_step, f) != 0 || pthread_cond_init(&f->ck_cv, NULL) != 0) {
        pk_flusher_destroy(&f->flusher);
        pthread_mutex_destroy(&f->mu);
        free(f);
        return pk_fail(P11KMS_ERR_INTERNAL, "store flusher: cannot create a condition variable");
    }
    *out = f;
    return PK_OK;
}

/*
 * The flusher's step (under f->mu): sleep until a commit makes the store
 * dirty, then until the window since that commit has passed, then sync
 * everything committed by then and let the checkpointer look. A failed
 * sync marks the store broken; the next write reports it.
 */
static int64_t flush_step(void *arg, int64_t now)
{
    pk_store_flush *f = arg;
    p11kms *h = f->h;
    int64_t deadline;

    if (f->dirty_since_us == 0) return PK_FLUSHER_NEVER;
    deadline = f->dirty_since_us + FLUSH_INTERVAL_US;
    if (now < deadline) return deadline;
    /* Cleared before the sync: a commit from now on marks the store dirty again. */
    f->dirty_since_us = 0;
    pthread_mutex_unlock(&f->mu);
    PK_IGNORE(h->store->ops->sync(h->store, PK_STORE_SYNC_ALL));
    pthread_mutex_lock(&f->mu);
    if (!f->ck_wanted) {
        f->ck_wanted = true;
        pthread_cond_signal(&f->ck_cv);
    }
    return 0; /* look again at once: a commit may have come meanwhile */
}

/*
 * The store checkpoints only once its log has grown enough, so most wakes
 * return at once. A failed checkpoint is left to the next one (or to the
 * commits' backstop): it loses nothing, the log only stays longer.
 */
static void *checkpointer_main(void *arg)
{
    pk_store_flush *f = arg;
    p11kms *h = f->h;

    pthread_mutex_lock(&f->mu);
    while (!f->stop) {
        if (!f->ck_wanted) {
            pthread_cond_wait(&f->ck_cv, &f->mu);
            continue;
        }
        f->ck_wanted = false;
        pthread_mutex_unlock(&f->mu);
        PK_IGNORE(h->store->ops->checkpoint(h->store));
        pthread_mutex_lock(&f->mu);
    }
    pthread_mutex_unlock(&f->mu);
    return NULL;
}

/* Both threads, once; the checkpointer first, so commits hand checkpoints over only when it runs. */
static pk_result start_threads_inlock(p11kms *h, pk_store_flush *f)
{
    f->h = h;
    if (!f->ck_started) {
        PK_ENSURE(pthread_create(&f->ck_thread, NULL, checkpointer_main, f) == 0, P11KMS_ERR_INTERNAL,
                  "cannot start the store checkpointer thread");
        f->ck_started = true;
    }
    PK_ENSURE(pk_flusher_start(&f->flusher) == 0, P11KMS_ERR_INTERNAL, "cannot start the store flusher thread");
    return PK_OK;
}

pk_result pk_store_set_sync(p11kms *h, pk_store_sync mode)
{
    pk_store_flush *f = h->flush;
    pk_result r = PK_OK;

    PK_ENSURE(mode == PK_STORE_SYNC_ALWAYS || mode == PK_STORE_SYNC_BATCH, P11KMS_ERR_INVALID_ARGUMENT,
              "store_sync must be always or batch");
    PK_ENSURE(!inherited(f), P11KMS_ERR_INVALID_ARGUMENT,
              "store_sync: this handle was opened by the parent process; open a new one after fork");
    pthread_mutex_lock(&f->mu);
    if (mode == PK_STORE_SYNC_BATCH) r = start_threads_inlock(h, f);
    if (pk_ok(r)) {
        h->store->ops->set_checkpoint_background(h->store, mode == PK_STORE_SYNC_BATCH);
        __atomic_store_n(&f->mode, (int)mode, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&f->mu);
    PK_GUARD(r);
    /* From now on "always" must hold for what was returned before the switch too. An idle flusher stays. */
    if (mode == PK_STORE_SYNC_ALWAYS) return h->store->ops->sync(h->store, PK_STORE_SYNC_ALL);
    return PK_OK;
}

pk_result pk_store_flush_start(p11kms *h)
{
    if (h->flush->conf_mode == PK_STORE_SYNC_ALWAYS) return PK_OK;
    return pk_store_set_sync(h, h->flush->conf_mode);
}

pk_result pk_store_durable(p11kms *h, uint64_t ticket, bool batch_ok)
{
    pk_store_flush *f = h->flush;

    if (ticket == 0) return PK_OK;
    if (batch_ok && __atomic_load_n(&f->mode, __ATOMIC_ACQUIRE) == PK_STORE_SYNC_BATCH && !inherited(f)) {
        pthread_mutex_lock(&f->mu);
        if (f->dirty_since_us == 0) {
            f->dirty_since_us = pk_mono_us();
            /* Only the first commit of a window wakes the flusher; the rest cost a mutex. */
            pk_flusher_nudge(&f->flusher, f->dirty_since_us + FLUSH_INTERVAL_US);
        }
        pthread_mutex_unlock(&f->mu);
        return PK_OK;
    }
    return h->store->ops->sync(h->store, ticket);
}

void pk_store_flush_close(p11kms *h)
{
    pk_store_flush *f = h->flush;

    if (f == NULL) return;
    h->flush = NULL;
    /* A child has no flusher thread, and the parent's locks may be mid-use: free the memory only. */
    if (inherited(f)) {
        free(f);
        return;
    }
    pk_flusher_stop(&f->flusher);
    pthread_mutex_lock(&f->mu);
    f->stop = true;
    pthread_cond_signal(&f->ck_cv);
    pthread_mutex_unlock(&f->mu);
    if (f->ck_started) pthread_join(f->ck_thread, NULL);
    /* The end of the window: nothing committed through this handle stays unsynced. */
    if (h->store != NULL) PK_IGNORE(h->store->ops->sync(h->store, PK_STORE_SYNC_ALL));
    pk_flusher_destroy(&f->flusher);
    pthread_mutex_destroy(&f->mu);
    pthread_cond_destroy(&f->ck_cv);
    free(f);
}
