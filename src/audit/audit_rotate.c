/* Audit log writer: rotation, and recovery when the current file vanished. */
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

/* ---- Rotation ---- */

/*
 * The held file ends with a rotation seal: give it its numbered name (a
 * hard link first, so the path never disappears), then put a new file in
 * place whose first line links back to it. Also completes a rotation that
 * a crashed process left half done.
 */
static pk_result finish_rotation_inlock(pk_audit *a, char *rotated_out, size_t rotated_size)
{
    char *rotated = NULL, *tmp = NULL;
    uint64_t file_no;
    struct stat st, rst;
    int fd = -1;
    pk_result r = PK_OK;

    PK_TRY(pk_audit_file_no(a->fd, a->path, &file_no));
    PK_CHECK(asprintf(&rotated, PK_AUDIT_ROTATED_FMT, a->path, (unsigned long)file_no) >= 0, P11KMS_ERR_NO_MEMORY,
             "out of memory");
    PK_CHECK(asprintf(&tmp, "%s.tmp-%ld", a->path, (long)getpid()) >= 0, P11KMS_ERR_NO_MEMORY, "out of memory");
    PK_CHECK(fstat(a->fd, &st) == 0, P11KMS_ERR_AUDIT_UNAVAILABLE, "audit unavailable: cannot stat %s: %s", a->path,
             strerror(errno));
    if (link(a->path, rotated) != 0) {
        /* Already linked by an earlier, interrupted attempt? (lstat: a symbolic link there is not our file.) */
        PK_CHECK(errno == EEXIST && lstat(rotated, &rst) == 0 && rst.st_ino == st.st_ino && rst.st_dev == st.st_dev,
                 P11KMS_ERR_AUDIT_UNAVAILABLE, "audit unavailable: cannot rotate %s to %s: %s", a->path, rotated,
                 errno == EEXIST ? "a different file has that name" : strerror(errno));
    }
    (void)unlink(tmp);
    fd = pk_audit_open_nofollow(tmp, O_RDWR | O_APPEND | O_CREAT | O_EXCL, st.st_mode & 0777);
    PK_CHECK(fd >= 0, P11KMS_ERR_AUDIT_UNAVAILABLE, "audit unavailable: cannot write %s: %s", tmp, strerror(errno));
    PK_CHECK(flock(fd, LOCK_EX) == 0, P11KMS_ERR_AUDIT_UNAVAILABLE, "audit unavailable: cannot lock %s: %s", tmp,
             strerror(errno));
    {
        /* Switch the handle to the new file, then write its link line. */
        uint64_t seq = a->tail.seq + 1;
        uint8_t prev[PK_SHA256_LEN];
        int old = a->fd;
        off_t old_size = a->size;
        pk_audit_tail old_tail = a->tail;
        uint64_t old_unsealed = a->unsealed;
        memcpy(prev, a->tail.hash, sizeof(prev));
        PK_TRY(al_link_line(a, seq, "rotate", file_no + 1, pk_audit_basename(rotated), prev));
        a->fd = fd;
        a->size = 0;
        r = al_append_line_inlock(a, seq, PK_AUDIT_T_LINK, "rotate");
        if (pk_ok(r) && fdatasync(fd) != 0) r = al_unavailable_errno(a, errno);
        if (pk_ok(r) && rename(tmp, a->path) != 0) r = al_unavailable_errno(a, errno);
        if (pk_failed(r)) {
            /* The old file stays current; the next append or open completes the rotation. */
            a->fd = old;
            a->size = old_size;
            a->tail = old_tail;
            a->unsealed = old_unsealed;
            (void)unlink(tmp);
            goto out;
        }
        fd = -1;
        al_unlock_file(old);
        close(old);
        PK_CHECK(fstat(a->fd, &st) == 0, P11KMS_ERR_AUDIT_UNAVAILABLE, "audit unavailable: cannot stat %s: %s",
                 a->path, strerror(errno));
        a->dev = st.st_dev;
        a->ino = st.st_ino;
        a->stats.rotations++;
    }
    PK_TRY(al_fsync_dir(a));
    if (rotated_out != NULL) snprintf(rotated_out, rotated_size, "%s", rotated);
out:
    if (fd >= 0) close(fd);
    free(rotated);
    free(tmp);
    return r;
}

pk_result al_rotate_inlock(pk_audit *a, char *rotated_out, size_t rotated_size)
{
    PK_GUARD(al_seal_inlock(a, "rotate"));
    if (fdatasync(a->fd) != 0) return al_unavailable_errno(a, errno);
    a->stats.syncs++;
    return finish_rotation_inlock(a, rotated_out, rotated_size);
}

/* ---- Opening ---- */

/*
 * An empty file at the path while rotated files exist means the current
 * file vanished (or was emptied). Continue from the newest rotated file with
 * a link marked "recovered", which the verifier reports as a missing file.
 */
static pk_result recover_inlock(pk_audit *a)
{
    char **files = NULL;
    size_t n = 0;
    const char *last = NULL;
    unsigned long last_no = 0;
    int fd = -1;
    struct stat st;
    off_t torn;
    pk_audit_tail t;
    pk_result r = PK_OK;

    PK_TRY(pk_audit_series(a->path, &files, &n));
    for (size_t i = 0; i < n; i++)
        if (strcmp(files[i], a->path) != 0) last = files[i];
    if (last == NULL) goto out; /* a brand-new log: the chain starts at genesis */
    last_no = strtoul(last + strlen(a->path) + 1, NULL, 10);
    fd = pk_audit_open_nofollow(last, O_RDONLY, 0);
    PK_CHECK(fd >= 0 && fstat(fd, &st) == 0, P11KMS_ERR_AUDIT_UNAVAILABLE,
             "audit unavailable: cannot read %s: %s", last, strerror(errno));
    PK_TRY(pk_audit_read_tail(fd, last, st.st_size, &t, &torn));
    PK_TRY(al_link_line(a, t.seq + 1, "recovered", (uint64_t)last_no + 1, pk_audit_basename(last), t.hash));
    PK_TRY(al_append_line_inlock(a, t.seq + 1, PK_AUDIT_T_LINK, "recovered"));
out:
    if (fd >= 0) close(fd);
    pk_audit_series_free(files, n);
    return r;
}

pk_result al_open_file(pk_audit *a)
{
    struct stat fst, pst;

    for (int i = 0; i < MAX_SWITCHES; i++) {
        a->fd = pk_audit_open_nofollow(a->path, O_RDWR | O_APPEND | O_CREAT, 0600);
        if (a->fd < 0) return pk_audit_open_failed(a->path, errno);
        PK_GUARD(al_lock_file(a, a->fd));
        if (fstat(a->fd, &fst) != 0) return al_unavailable_errno(a, errno);
        if (!S_ISREG(fst.st_mode)) return pk_audit_unavailable(a->path, "it is not a regular file");
        /* Rotated by someone between our open and our lock? Then open again. */
        if (stat(a->path, &pst) == 0 && pst.st_dev == fst.st_dev && pst.st_ino == fst.st_ino) {
            a->dev = fst.st_dev;
            a->ino = fst.st_ino;
            a->size = 0;
            /* Locked: no rotation of this file is in flight, so a temp file left by a dead one can go. */
            pk_audit_remove_stale_tmp(a->path);
            PK_GUARD(al_read_tail_inlock(a, fst.st_size));
            if (a->size == 0) PK_GUARD(recover_inlock(a));
            if (strcmp(a->tail.type, PK_AUDIT_T_SEAL) == 0 && strcmp(a->tail.reason, "rotate") == 0)
                PK_GUARD(finish_rotation_inlock(a, NULL, 0));
            return PK_OK;
        }
        al_unlock_file(a->fd);
        close(a->fd);
        a->fd = -1;
    }
    return pk_audit_unavailable(a->path, "the file keeps being replaced");
}

pk_result pk_audit_rotate(pk_audit *a, char *rotated_out, size_t rotated_size)
{
    pk_result r;

    PK_ENSURE_REF(a);
    PK_ENSURE(!a->disabled, P11KMS_ERR_INVALID_ARGUMENT, "auditing is disabled: nothing to rotate");
    pthread_mutex_lock(&a->mu);
    r = al_lock_and_follow(a);
    if (pk_ok(r)) {
        r = al_rotate_inlock(a, rotated_out, rotated_size);
        if (pk_failed(r)) al_drop_lock(a);
        else al_release(a);
    }
    pthread_mutex_unlock(&a->mu);
    return r;
}
