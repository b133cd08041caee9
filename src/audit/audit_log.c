/*
 * The audit log writer: append under lock, seal, flush, rotate, fail closed.
 * This file: opening and closing a handle; audit_log_impl.h lists the
 * files of the other concepts.
 *
 * Locking: a->mu (threads of this process) is always taken before the
 * flock(2) on the file (processes sharing it); the group-commit state has
 * its own mutex, never held together with a->mu. Functions named *_inlock
 * expect both a->mu and the flock held.
 *
 * Under the locks every append first checks that the file it holds is
 * still the file at the path (another process may have rotated it; an
 * attacker may have removed or replaced it) and whether another process
 * appended since (then the tail is read again from the end). The record is
 * then formatted with the next sequence number and the hash of the last
 * line, written with one write(2) (a partial write is truncated back), and
 * sealed and rotated when due.
 */
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

uint64_t al_mono_ms(void)
{
    return (uint64_t)pk_mono_us() / 1000;
}

pk_result al_unavailable_errno(const pk_audit *a, int err)
{
    return pk_audit_unavailable(a->path, strerror(err));
}

static void audit_free(pk_audit *a)
{
    if (a == NULL) return;
    pk_sha256_free(a->hasher);
    if (a->fd >= 0) close(a->fd);
    pk_buf_free(&a->line);
    pthread_mutex_destroy(&a->mu);
    pk_flusher_destroy(&a->flusher);
    pk_gc_destroy(&a->gc);
    free(a->path);
    free(a);
}

pk_result pk_audit_open(const pk_audit_opts *o, pk_audit **out)
{
    pk_audit *a;
    bool exists = false;
    pk_result r = PK_OK;

    *out = NULL;
    a = calloc(1, sizeof(*a));
    PK_ENSURE_ALLOC(a);
    a->fd = -1;
    a->pid = getpid();
    a->fork_gen = pk_fork_generation();
    pthread_mutex_init(&a->mu, NULL);
    /* Timed waits are monotonic: a wall-clock step must not stretch a window or a lease. */
    PK_CHECK(pk_flusher_init(&a->flusher, &a->mu, al_flush_step, a) == 0 && pk_gc_init(&a->gc, al_flush_file, a) == 0,
             P11KMS_ERR_INTERNAL, "audit: cannot create a condition variable");
    PK_TRY(pk_random(a->id_base, sizeof(a->id_base)));
    if (o->path == NULL) {
        a->disabled = true;
        *out = a;
        return PK_OK;
    }
    PK_CHECK(o->p11 != NULL, P11KMS_ERR_INVALID_ARGUMENT, "audit log %s needs a token for its seals", o->path);
    a->path = strdup(o->path);
    PK_CHECK_ALLOC(a->path);
    a->p11 = o->p11;
    a->key = o->key != NULL ? *o->key : pk_audit_key_id();
    a->sync = o->sync;
    a->max_bytes = o->max_bytes;
    a->seal_every = o->seal_every ? o->seal_every : (o->sync == PK_AUDIT_SYNC_ALWAYS ? 1 : DEFAULT_SEAL_EVERY_BATCH);
    a->seal_interval_ms = o->seal_interval_ms ? o->seal_interval_ms : DEFAULT_SEAL_INTERVAL_MS;
    a->flush_interval_ms = o->flush_interval_ms ? o->flush_interval_ms : DEFAULT_FLUSH_INTERVAL_MS;
    a->lease_ms = o->sync == PK_AUDIT_SYNC_BATCH ? BATCH_LEASE_MS : 0;
    PK_TRY(pk_sha256_begin(&a->hasher));

    /* Without the seal key the chain could never be authenticated: refuse to start. */
    r = pk_p11_key_exists(a->p11, &a->key, &exists);
    if (pk_failed(r)) {
        char why[256]; /* the detail buffer is about to be rewritten */
        snprintf(why, sizeof(why), "%s", pk_error_detail());
        PK_CHECK(false, P11KMS_ERR_AUDIT_UNAVAILABLE, "audit unavailable: cannot look for the audit key %s: %s",
                 PK_AUDIT_KEY_LABEL, why);
    }
    PK_CHECK(exists, P11KMS_ERR_AUDIT_UNAVAILABLE,
             "audit unavailable: the audit key %s is not in the token (run p11kms init)", PK_AUDIT_KEY_LABEL);

    pthread_mutex_lock(&a->mu);
    r = al_open_file(a);
    /* What is in the file now is on disk after this: the head a freshness anchor may record. */
    if (pk_ok(r) && a->fd >= 0 && fdatasync(a->fd) == 0) a->durable_seq = a->tail.seq;
    if (a->fd >= 0) al_unlock_file(a->fd);
    pthread_mutex_unlock(&a->mu);
    PK_TRY(r);
    pthread_mutex_lock(&a->mu);
    r = pk_flusher_start(&a->flusher) == 0
            ? PK_OK
            : pk_fail(P11KMS_ERR_INTERNAL, "cannot start the audit flusher thread");
    pthread_mutex_unlock(&a->mu);
    PK_TRY(r);
    *out = a;
out:
    if (pk_failed(r)) audit_free(a);
    return r;
}

pk_result pk_audit_open_conf(const p11kms_config *cfg, pk_p11 *p11, pk_audit **out)
{
    pk_audit_opts o;
    const char *sync = p11kms_config_get(cfg, "audit_sync");
    unsigned long max_bytes = 0;

    memset(&o, 0, sizeof(o));
    *out = NULL;
    o.path = pk_conf_path_value(cfg, "audit");
    PK_ENSURE(o.path != NULL, P11KMS_ERR_CONFIG, "%s: no `audit` path set; p11kms needs an audit log",
              p11kms_config_path(cfg));
    if (sync == NULL || strcmp(sync, "batch") == 0)
        o.sync = PK_AUDIT_SYNC_BATCH;
    else if (strcmp(sync, "always") == 0)
        o.sync = PK_AUDIT_SYNC_ALWAYS;
    else
        return pk_fail(P11KMS_ERR_CONFIG, "%s: audit_sync must be always or batch, not '%s'", p11kms_config_path(cfg),
                       sync);
    PK_GUARD(pk_conf_uint(cfg, "audit_max_bytes", 0, 0, (unsigned long)INT64_MAX, &max_bytes));
    o.max_bytes = max_bytes;
    o.p11 = p11;
    return pk_audit_open(&o, out);
}

const char *pk_audit_path(const pk_audit *a)
{
    return a != NULL && !a->disabled ? a->path : NULL;
}

void pk_audit_get_stats(pk_audit *a, pk_audit_stats *out)
{
    pthread_mutex_lock(&a->mu);
    *out = a->stats;
    pthread_mutex_unlock(&a->mu);
}

pk_result pk_audit_check(pk_audit *a)
{
    pk_result r;
    PK_ENSURE_REF(a);
    if (a->disabled) return PK_OK;
    pthread_mutex_lock(&a->mu);
    r = al_lock_and_follow(a);
    if (pk_ok(r)) al_release(a);
    pthread_mutex_unlock(&a->mu);
    return r;
}

pk_result pk_audit_close(pk_audit *a)
{
    pk_result r = PK_OK;

    if (a == NULL) return PK_OK;
    if (a->disabled || a->fork_gen != pk_fork_generation()) {
        /* A forked child never seals or joins its parent's thread. */
        audit_free(a);
        return PK_OK;
    }
    pk_flusher_stop(&a->flusher);
    r = al_seal_and_sync(a, "close");
    audit_free(a);
    return r;
}
