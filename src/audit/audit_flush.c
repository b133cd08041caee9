/* Audit log writer: durability (group commit, the batch flusher) and seals on flush. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "audit/audit_impl.h"
#include "conf/conf.h"
#include "util/codec.h"
#include "util/forkgen.h"
#include "util/group_commit.h"
#include "util/json_out.h"
#include "audit/audit_log_impl.h"

/* ---- Durability ---- */

/*
 * The group commit's flush (one leader at a time): fdatasync of the file
 * for every line written so far. Any failure is sticky: after a failed
 * fdatasync the kernel may have dropped the pages, so never trust the
 * file again.
 */
int al_flush_file(void *ctx, uint64_t *target, bool *flushed)
{
    pk_audit *a = ctx;
    int fd, err = 0;

    uint64_t seq;

    pthread_mutex_lock(&a->mu);
    *target = pk_gc_last_ticket(&a->gc); /* the lines in the file we dup */
    seq = a->tail.seq;
    a->dirty_since_ms = 0;
    fd = a->broken ? -1 : dup(a->fd); /* rotation may close a->fd meanwhile */
    if (fd < 0) err = a->broken ? EIO : errno;
    pthread_mutex_unlock(&a->mu);
    if (fd >= 0) {
        if (fdatasync(fd) != 0) err = errno;
        close(fd);
    }

    pthread_mutex_lock(&a->mu);
    a->stats.syncs++;
    if (err == 0 && fd >= 0 && seq > a->durable_seq) a->durable_seq = seq;
    if (err != 0 && !a->broken) {
        a->broken = true;
        snprintf(a->broken_why, sizeof(a->broken_why), "fdatasync failed: %s", strerror(err));
    }
    pthread_mutex_unlock(&a->mu);
    *flushed = true;
    return err;
}

/* Group commit: make every line up to `ticket` durable. */
pk_result al_sync_upto(pk_audit *a, uint64_t ticket)
{
    char why[sizeof(a->broken_why)];

    if (pk_gc_sync(&a->gc, ticket) == 0) return PK_OK;
    pthread_mutex_lock(&a->mu);
    snprintf(why, sizeof(why), "%s", a->broken_why);
    pthread_mutex_unlock(&a->mu);
    return pk_audit_unavailable(a->path, why);
}

/*
 * Batch mode's flusher step (under a->mu): fdatasync at most
 * flush_interval_ms after the first undurable line, seal records left
 * unsealed for seal_interval_ms, and end a lease no record uses.
 */
int64_t al_flush_step(void *arg, int64_t now_us)
{
    pk_audit *a = arg;
    uint64_t now = (uint64_t)now_us / 1000, deadline = UINT64_MAX;
    uint64_t written = pk_gc_last_ticket(&a->gc);

    if (a->dirty_since_ms != 0) deadline = a->dirty_since_ms + a->flush_interval_ms;
    if (a->unsealed > 0 && a->unsealed_since_ms != 0 && a->unsealed_since_ms + a->seal_interval_ms < deadline)
        deadline = a->unsealed_since_ms + a->seal_interval_ms;
    if (a->leased && a->lease_since_ms + a->lease_ms < deadline) deadline = a->lease_since_ms + a->lease_ms;
    /* Records since the last look: look again in one interval, so writers need not wake us. */
    if (written != a->flusher_seen_ticket && now + a->flush_interval_ms < deadline)
        deadline = now + a->flush_interval_ms;
    a->flusher_seen_ticket = written;
    if (deadline == UINT64_MAX) return PK_FLUSHER_NEVER;
    if (now < deadline) return (int64_t)deadline * 1000;
    if (a->unsealed > 0 && a->unsealed_since_ms != 0 && now >= a->unsealed_since_ms + a->seal_interval_ms) {
        /* A failed timed seal is retried by the next append or close; they report it. */
        if (pk_ok(al_lock_and_follow(a))) {
            if (a->tail.seq > 0 && strcmp(a->tail.type, PK_AUDIT_T_SEAL) != 0 && pk_failed(al_seal_inlock(a, "timer")))
                a->unsealed_since_ms = now; /* back off one interval */
            else if (strcmp(a->tail.type, PK_AUDIT_T_SEAL) == 0)
                a->unsealed = 0;
            al_release(a);
        } else {
            a->unsealed_since_ms = now;
        }
    }
    if (a->leased && now >= a->lease_since_ms + a->lease_ms) al_drop_lock(a); /* let other processes in */
    if (a->dirty_since_ms != 0 && now >= a->dirty_since_ms + a->flush_interval_ms) {
        uint64_t ticket = pk_gc_last_ticket(&a->gc);
        pthread_mutex_unlock(&a->mu);
        (void)al_sync_upto(a, ticket); /* a failure marks the handle broken; writers report it */
        pthread_mutex_lock(&a->mu);
    }
    return 0; /* look again */
}

/* Seal (when anything is unsealed) with `reason`, then make it durable. */
pk_result al_seal_and_sync(pk_audit *a, const char *reason)
{
    uint64_t ticket;
    pk_result r;

    pthread_mutex_lock(&a->mu);
    r = al_lock_and_follow(a);
    if (pk_ok(r)) {
        if (a->tail.seq > 0 && strcmp(a->tail.type, PK_AUDIT_T_SEAL) != 0) r = al_seal_inlock(a, reason);
        if (pk_failed(r)) al_drop_lock(a);
        else al_release(a);
    }
    ticket = pk_gc_last_ticket(&a->gc);
    pthread_mutex_unlock(&a->mu);
    PK_GUARD(r);
    return al_sync_upto(a, ticket);
}

pk_result pk_audit_flush(pk_audit *a)
{
    PK_ENSURE_REF(a);
    if (a->disabled) return PK_OK;
    return al_seal_and_sync(a, "flush");
}

uint64_t pk_audit_durable_seq(pk_audit *a)
{
    uint64_t seq;
    if (a == NULL || a->disabled) return 0;
    pthread_mutex_lock(&a->mu);
    seq = a->durable_seq;
    pthread_mutex_unlock(&a->mu);
    return seq;
}
