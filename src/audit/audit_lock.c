/* Audit log writer: the file lock, batch leases, and following other processes (see audit_log.c). */
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

/* ---- Locking and following the file ---- */

pk_result al_lock_file(pk_audit *a, int fd)
{
    while (flock(fd, LOCK_EX) != 0) {
        if (errno != EINTR) return al_unavailable_errno(a, errno);
    }
    return PK_OK;
}

void al_unlock_file(int fd)
{
    (void)flock(fd, LOCK_UN);
}

pk_result al_fsync_dir(const pk_audit *a)
{
    char *dir = strdup(a->path);
    char *slash;
    int fd;
    PK_ENSURE_ALLOC(dir);
    slash = strrchr(dir, '/');
    if (slash == NULL) {
        free(dir);
        dir = strdup(".");
        PK_ENSURE_ALLOC(dir);
    } else if (slash == dir) {
        slash[1] = '\0';
    } else {
        *slash = '\0';
    }
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free(dir);
    if (fd < 0) return al_unavailable_errno(a, errno);
    if (fsync(fd) != 0 && errno != EINVAL) {
        int err = errno;
        close(fd);
        return al_unavailable_errno(a, err);
    }
    close(fd);
    return PK_OK;
}

pk_result al_read_tail_inlock(pk_audit *a, off_t size)
{
    off_t torn = 0;
    a->size = size;
    PK_GUARD(pk_audit_read_tail(a->fd, a->path, size, &a->tail, &torn));
    if (strcmp(a->tail.type, PK_AUDIT_T_SEAL) == 0) {
        a->unsealed = 0;
    } else if (a->tail.seq > 0 && a->unsealed == 0) {
        a->unsealed = 1; /* someone else's records: seal them on close at the latest */
        a->unsealed_since_ms = al_mono_ms();
    }
    if (torn > 0) PK_GUARD(al_repair_inlock(a, torn));
    return PK_OK;
}

/* Replace the held file by the one now at the path (after another process rotated). */
static pk_result switch_to_path_inlock(pk_audit *a)
{
    struct stat st;
    int fd = pk_audit_open_nofollow(a->path, O_RDWR | O_APPEND, 0);
    uint64_t old_seq = a->tail.seq;
    pk_result r;

    if (fd < 0) return pk_audit_open_failed(a->path, errno);
    r = al_lock_file(a, fd);
    if (pk_ok(r) && fstat(fd, &st) != 0) r = al_unavailable_errno(a, errno);
    if (pk_failed(r)) {
        close(fd);
        return r;
    }
    al_unlock_file(a->fd);
    close(a->fd);
    a->fd = fd;
    a->dev = st.st_dev;
    a->ino = st.st_ino;
    a->unsealed = 0;
    PK_GUARD(al_read_tail_inlock(a, st.st_size));
    PK_ENSURE(a->tail.seq > old_seq, P11KMS_ERR_AUDIT_UNAVAILABLE,
              "audit unavailable: cannot write %s: the file at the path does not continue the chain (seq %" PRIu64
              " after %" PRIu64 "); run p11kms audit verify",
              a->path, a->tail.seq, old_seq);
    return PK_OK;
}

/*
 * Under the flock: is the held file still the file at the path, is it
 * still linked, did it shrink or grow behind our back?
 */
static pk_result follow_file_inlock(pk_audit *a)
{
    struct stat fst, pst;

    for (int i = 0; i < MAX_SWITCHES; i++) {
        if (fstat(a->fd, &fst) != 0) return al_unavailable_errno(a, errno);
        if (fst.st_nlink == 0) return pk_audit_unavailable(a->path, "the file was removed");
        if (fst.st_size < a->size)
            return pk_audit_unavailable(a->path, "the file was truncated by someone else");
        if (fst.st_size > a->size) {
            a->stats.tail_reads++;
            PK_GUARD(al_read_tail_inlock(a, fst.st_size));
        }
        if (stat(a->path, &pst) != 0)
            return errno == ENOENT ? pk_audit_unavailable(a->path, "the file was removed") : al_unavailable_errno(a, errno);
        if (pst.st_dev == fst.st_dev && pst.st_ino == fst.st_ino) return PK_OK;
        /* Another file at the path: legitimate only when ours ends with a rotation seal. */
        if (strcmp(a->tail.type, PK_AUDIT_T_SEAL) != 0 || strcmp(a->tail.reason, "rotate") != 0)
            return pk_audit_unavailable(a->path, "the file was replaced");
        PK_GUARD(switch_to_path_inlock(a));
    }
    return pk_audit_unavailable(a->path, "the file keeps being replaced");
}

/* Give up the flock (and any lease on it). */
void al_drop_lock(pk_audit *a)
{
    a->leased = false;
    al_unlock_file(a->fd);
}

/* After an operation: keep the flock while the lease lasts, else al_release it. */
void al_release(pk_audit *a)
{
    if (!a->leased) al_unlock_file(a->fd);
}

/*
 * Make sure the flusher looks at the handle by due_ms. While records keep
 * coming it wakes every flush interval on its own (al_flush_step), so a
 * writer signals it only after a quiet spell: on this kind of VM a
 * cross-CPU wake-up costs more than writing the record.
 */
void al_nudge_flusher(pk_audit *a, uint64_t due_ms)
{
    pk_flusher_nudge(&a->flusher, (int64_t)due_ms * 1000);
}

/*
 * Take the flock and bring the tail up to date, or, within a lease, just
 * carry on: nobody else can have appended while we hold the lock.
 */
pk_result al_lock_and_follow(pk_audit *a)
{
    pk_result r;
    uint64_t now;

    if (a->broken) return pk_audit_unavailable(a->path, a->broken_why);
    if (a->fork_gen != pk_fork_generation())
        return pk_fail(P11KMS_ERR_AUDIT_UNAVAILABLE,
                       "audit unavailable: cannot write %s: handle opened by process %ld; open a new one after fork",
                       a->path, (long)a->pid);
    if (a->leased) {
        now = al_mono_ms();
        if (now - a->lease_since_ms < a->lease_ms) return PK_OK;
        al_drop_lock(a);
    }
    PK_GUARD(al_lock_file(a, a->fd));
    r = follow_file_inlock(a);
    if (pk_failed(r)) {
        al_drop_lock(a);
        return r;
    }
    if (a->lease_ms > 0) {
        a->leased = true;
        a->lease_since_ms = al_mono_ms();
        /*
         * Only the flusher ends a lease when no record follows, and it may be
         * asleep with nothing due. Without this wake-up a check before a
         * change that then waits for another process's store lock would keep
         * the flock from that process until it gave up: a deadlock.
         */
        al_nudge_flusher(a, a->lease_since_ms + a->lease_ms + a->flush_interval_ms);
    }
    return r;
}
