/*
 * The audit log writer: append under lock, seal, flush, rotate, fail closed.
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

#define DEFAULT_SEAL_EVERY_BATCH 1000
#define DEFAULT_SEAL_INTERVAL_MS 1000
#define DEFAULT_FLUSH_INTERVAL_MS 2
/*
 * Rotations by other processes followed within one append or open. Each
 * retry means another process made progress (it rotated), so the bound only
 * guards against a file that is replaced over and over.
 */
#define MAX_SWITCHES 1000
/*
 * Batch mode holds the flock across appends for at most this long (the
 * "lease"), so a busy writer pays for flock, fstat and stat once per lease
 * instead of once per record. The flusher ends a lease that no record
 * uses, at most one flush interval late (nudge_flusher): other processes
 * wait at most about 3 ms, and removal or replacement of the file is
 * noticed at most that late.
 */
#define BATCH_LEASE_MS 1

struct pk_audit {
    char *path;
    bool disabled;
    pid_t pid;
    unsigned long fork_gen;
    uint8_t id_base[PK_UUID_LEN]; /* request ids: random base + counter */
    uint64_t id_counter;
    pk_p11 *p11;
    pk_keyid key;
    pk_audit_sync sync;
    uint64_t max_bytes;
    unsigned seal_every, seal_interval_ms, flush_interval_ms;

    pthread_mutex_t mu; /* guards everything below */
    int fd;
    dev_t dev;
    ino_t ino;
    off_t size;          /* file size at our last look under the flock */
    pk_audit_tail tail;  /* the last line of the file */
    uint64_t unsealed;   /* records after the last seal, as far as we know */
    uint64_t unsealed_since_ms;
    uint64_t dirty_since_ms;
    bool leased;         /* batch: we hold the flock between appends */
    uint64_t lease_since_ms;
    unsigned lease_ms;   /* 0: take and release the flock for every append */
    bool broken;         /* a flush failed: the file's durability is unknown */
    char broken_why[200];
    pk_sha256_ctx *hasher;
    pk_buf line;         /* scratch for the line under construction */
    pk_audit_stats stats;

    /* Batch-mode flusher thread (fdatasync and timed seals; util/group_commit.c, runs flush_step under mu). */
    pk_flusher flusher;
    uint64_t flusher_seen_ticket; /* the last ticket at the flusher's last look */

    /* Group commit (util/group_commit.c): one caller syncs for everyone waiting; tickets count lines. */
    pk_gc gc;
};

static uint64_t mono_ms(void)
{
    return (uint64_t)pk_mono_us() / 1000;
}

static pk_result unavailable_errno(const pk_audit *a, int err)
{
    return pk_audit_unavailable(a->path, strerror(err));
}

/* ---- Writing lines ---- */

/*
 * Write a->line (without newline) as the next line. On any failure the
 * file is truncated back to its size before the write, so no partial line
 * breaks the chain, and the caller gets the fail-closed error.
 */
static pk_result append_line_inlock(pk_audit *a, uint64_t seq, const char *type, const char *reason)
{
    uint8_t hash[PK_SHA256_LEN];
    off_t before = a->size;

    PK_GUARD(pk_sha256_digest(a->hasher, a->line.data, a->line.len, hash));
    PK_GUARD(pk_buf_append(&a->line, "\n", 1));
    if (pk_audit_write_all(a->fd, a->line.data, a->line.len) != 0) {
        int err = errno;
        /* Best effort: if this fails too the next append sees a torn tail and repairs it. */
        if (ftruncate(a->fd, before) != 0) a->size = -1;
        return unavailable_errno(a, err);
    }
    a->size += (off_t)a->line.len;
    (void)pk_gc_next_ticket(&a->gc);
    if (a->dirty_since_ms == 0) a->dirty_since_ms = mono_ms();
    a->tail.seq = seq;
    memcpy(a->tail.hash, hash, sizeof(hash));
    snprintf(a->tail.type, sizeof(a->tail.type), "%s", type);
    snprintf(a->tail.reason, sizeof(a->tail.reason), "%s", reason != NULL ? reason : "");
    if (strcmp(type, PK_AUDIT_T_SEAL) == 0) {
        a->unsealed = 0;
        a->unsealed_since_ms = 0;
        a->stats.seals++;
    } else {
        if (a->unsealed++ == 0) a->unsealed_since_ms = mono_ms();
    }
    return PK_OK;
}

static pk_result seal_inlock(pk_audit *a, const char *reason)
{
    char now[PK_AUDIT_TIME_LEN + 1];
    uint64_t seq = a->tail.seq + 1;
    pk_result r;

    pk_audit_now(now);
    pk_buf_reset(&a->line);
    r = pk_audit_seal_line(&a->line, a->p11, &a->key, seq, now, reason, a->tail.hash);
    if (pk_failed(r)) return pk_annotate(pk_recode(r, P11KMS_ERR_AUDIT_UNAVAILABLE), "audit unavailable: cannot seal %s: ", a->path);
    return append_line_inlock(a, seq, PK_AUDIT_T_SEAL, reason);
}

/* A torn write left by a crashed writer: cut it off and record that we did. */
static pk_result repair_inlock(pk_audit *a, off_t torn)
{
    char now[PK_AUDIT_TIME_LEN + 1];
    uint64_t seq;

    if (ftruncate(a->fd, a->size - torn) != 0) return unavailable_errno(a, errno);
    a->size -= torn;
    seq = a->tail.seq + 1;
    pk_audit_now(now);
    pk_buf_reset(&a->line);
    PK_GUARD(pk_audit_line_head(&a->line, seq, PK_AUDIT_T_REPAIR, now));
    PK_GUARD(pk_buf_printf(&a->line, "\"discarded_bytes\":%lld,", (long long)torn));
    PK_GUARD(pk_audit_line_prev_end(&a->line, a->tail.hash));
    return append_line_inlock(a, seq, PK_AUDIT_T_REPAIR, NULL);
}

static pk_result link_line(pk_audit *a, uint64_t seq, const char *reason, uint64_t file_no, const char *prev_name,
                           const uint8_t prev[PK_SHA256_LEN])
{
    char now[PK_AUDIT_TIME_LEN + 1];
    pk_audit_now(now);
    pk_buf_reset(&a->line);
    PK_GUARD(pk_audit_line_head(&a->line, seq, PK_AUDIT_T_LINK, now));
    PK_GUARD(pk_buf_printf(&a->line, "\"reason\":\"%s\",\"file\":%" PRIu64 ",\"previous_file\":", reason, file_no));
    PK_GUARD(pk_json_escape(&a->line, prev_name, strlen(prev_name)));
    PK_GUARD(pk_buf_append(&a->line, ",", 1));
    return pk_audit_line_prev_end(&a->line, prev);
}

/* ---- Locking and following the file ---- */

static pk_result lock_file(pk_audit *a, int fd)
{
    while (flock(fd, LOCK_EX) != 0) {
        if (errno != EINTR) return unavailable_errno(a, errno);
    }
    return PK_OK;
}

static void unlock_file(int fd)
{
    (void)flock(fd, LOCK_UN);
}

static pk_result fsync_dir(const pk_audit *a)
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
    if (fd < 0) return unavailable_errno(a, errno);
    if (fsync(fd) != 0 && errno != EINVAL) {
        int err = errno;
        close(fd);
        return unavailable_errno(a, err);
    }
    close(fd);
    return PK_OK;
}

static pk_result read_tail_inlock(pk_audit *a, off_t size)
{
    off_t torn = 0;
    a->size = size;
    PK_GUARD(pk_audit_read_tail(a->fd, a->path, size, &a->tail, &torn));
    if (strcmp(a->tail.type, PK_AUDIT_T_SEAL) == 0) {
        a->unsealed = 0;
    } else if (a->tail.seq > 0 && a->unsealed == 0) {
        a->unsealed = 1; /* someone else's records: seal them on close at the latest */
        a->unsealed_since_ms = mono_ms();
    }
    if (torn > 0) PK_GUARD(repair_inlock(a, torn));
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
    r = lock_file(a, fd);
    if (pk_ok(r) && fstat(fd, &st) != 0) r = unavailable_errno(a, errno);
    if (pk_failed(r)) {
        close(fd);
        return r;
    }
    unlock_file(a->fd);
    close(a->fd);
    a->fd = fd;
    a->dev = st.st_dev;
    a->ino = st.st_ino;
    a->unsealed = 0;
    PK_GUARD(read_tail_inlock(a, st.st_size));
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
        if (fstat(a->fd, &fst) != 0) return unavailable_errno(a, errno);
        if (fst.st_nlink == 0) return pk_audit_unavailable(a->path, "the file was removed");
        if (fst.st_size < a->size)
            return pk_audit_unavailable(a->path, "the file was truncated by someone else");
        if (fst.st_size > a->size) {
            a->stats.tail_reads++;
            PK_GUARD(read_tail_inlock(a, fst.st_size));
        }
        if (stat(a->path, &pst) != 0)
            return errno == ENOENT ? pk_audit_unavailable(a->path, "the file was removed") : unavailable_errno(a, errno);
        if (pst.st_dev == fst.st_dev && pst.st_ino == fst.st_ino) return PK_OK;
        /* Another file at the path: legitimate only when ours ends with a rotation seal. */
        if (strcmp(a->tail.type, PK_AUDIT_T_SEAL) != 0 || strcmp(a->tail.reason, "rotate") != 0)
            return pk_audit_unavailable(a->path, "the file was replaced");
        PK_GUARD(switch_to_path_inlock(a));
    }
    return pk_audit_unavailable(a->path, "the file keeps being replaced");
}

/* Give up the flock (and any lease on it). */
static void drop_lock(pk_audit *a)
{
    a->leased = false;
    unlock_file(a->fd);
}

/* After an operation: keep the flock while the lease lasts, else release it. */
static void release(pk_audit *a)
{
    if (!a->leased) unlock_file(a->fd);
}

/*
 * Make sure the flusher looks at the handle by due_ms. While records keep
 * coming it wakes every flush interval on its own (flush_step), so a
 * writer signals it only after a quiet spell: on this kind of VM a
 * cross-CPU wake-up costs more than writing the record.
 */
static void nudge_flusher(pk_audit *a, uint64_t due_ms)
{
    pk_flusher_nudge(&a->flusher, (int64_t)due_ms * 1000);
}

/*
 * Take the flock and bring the tail up to date, or, within a lease, just
 * carry on: nobody else can have appended while we hold the lock.
 */
static pk_result lock_and_follow(pk_audit *a)
{
    pk_result r;
    uint64_t now;

    if (a->broken) return pk_audit_unavailable(a->path, a->broken_why);
    if (a->fork_gen != pk_fork_generation())
        return pk_fail(P11KMS_ERR_AUDIT_UNAVAILABLE,
                       "audit unavailable: cannot write %s: handle opened by process %ld; open a new one after fork",
                       a->path, (long)a->pid);
    if (a->leased) {
        now = mono_ms();
        if (now - a->lease_since_ms < a->lease_ms) return PK_OK;
        drop_lock(a);
    }
    PK_GUARD(lock_file(a, a->fd));
    r = follow_file_inlock(a);
    if (pk_failed(r)) {
        drop_lock(a);
        return r;
    }
    if (a->lease_ms > 0) {
        a->leased = true;
        a->lease_since_ms = mono_ms();
        /*
         * Only the flusher ends a lease when no record follows, and it may be
         * asleep with nothing due. Without this wake-up a check before a
         * change that then waits for another process's store lock would keep
         * the flock from that process until it gave up: a deadlock.
         */
        nudge_flusher(a, a->lease_since_ms + a->lease_ms + a->flush_interval_ms);
    }
    return r;
}

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
        PK_TRY(link_line(a, seq, "rotate", file_no + 1, pk_audit_basename(rotated), prev));
        a->fd = fd;
        a->size = 0;
        r = append_line_inlock(a, seq, PK_AUDIT_T_LINK, "rotate");
        if (pk_ok(r) && fdatasync(fd) != 0) r = unavailable_errno(a, errno);
        if (pk_ok(r) && rename(tmp, a->path) != 0) r = unavailable_errno(a, errno);
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
        unlock_file(old);
        close(old);
        PK_CHECK(fstat(a->fd, &st) == 0, P11KMS_ERR_AUDIT_UNAVAILABLE, "audit unavailable: cannot stat %s: %s",
                 a->path, strerror(errno));
        a->dev = st.st_dev;
        a->ino = st.st_ino;
        a->stats.rotations++;
    }
    PK_TRY(fsync_dir(a));
    if (rotated_out != NULL) snprintf(rotated_out, rotated_size, "%s", rotated);
out:
    if (fd >= 0) close(fd);
    free(rotated);
    free(tmp);
    return r;
}

static pk_result rotate_inlock(pk_audit *a, char *rotated_out, size_t rotated_size)
{
    PK_GUARD(seal_inlock(a, "rotate"));
    if (fdatasync(a->fd) != 0) return unavailable_errno(a, errno);
    a->stats.syncs++;
    return finish_rotation_inlock(a, rotated_out, rotated_size);
}

/* ---- Durability ---- */

/*
 * The group commit's flush (one leader at a time): fdatasync of the file
 * for every line written so far. Any failure is sticky: after a failed
 * fdatasync the kernel may have dropped the pages, so never trust the
 * file again.
 */
static int flush_file(void *ctx, uint64_t *target, bool *flushed)
{
    pk_audit *a = ctx;
    int fd, err = 0;

    pthread_mutex_lock(&a->mu);
    *target = pk_gc_last_ticket(&a->gc); /* the lines in the file we dup */
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
    if (err != 0 && !a->broken) {
        a->broken = true;
        snprintf(a->broken_why, sizeof(a->broken_why), "fdatasync failed: %s", strerror(err));
    }
    pthread_mutex_unlock(&a->mu);
    *flushed = true;
    return err;
}

/* Group commit: make every line up to `ticket` durable. */
static pk_result sync_upto(pk_audit *a, uint64_t ticket)
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
static int64_t flush_step(void *arg, int64_t now_us)
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
        if (pk_ok(lock_and_follow(a))) {
            if (a->tail.seq > 0 && strcmp(a->tail.type, PK_AUDIT_T_SEAL) != 0 && pk_failed(seal_inlock(a, "timer")))
                a->unsealed_since_ms = now; /* back off one interval */
            else if (strcmp(a->tail.type, PK_AUDIT_T_SEAL) == 0)
                a->unsealed = 0;
            release(a);
        } else {
            a->unsealed_since_ms = now;
        }
    }
    if (a->leased && now >= a->lease_since_ms + a->lease_ms) drop_lock(a); /* let other processes in */
    if (a->dirty_since_ms != 0 && now >= a->dirty_since_ms + a->flush_interval_ms) {
        uint64_t ticket = pk_gc_last_ticket(&a->gc);
        pthread_mutex_unlock(&a->mu);
        (void)sync_upto(a, ticket); /* a failure marks the handle broken; writers report it */
        pthread_mutex_lock(&a->mu);
    }
    return 0; /* look again */
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
    PK_TRY(link_line(a, t.seq + 1, "recovered", (uint64_t)last_no + 1, pk_audit_basename(last), t.hash));
    PK_TRY(append_line_inlock(a, t.seq + 1, PK_AUDIT_T_LINK, "recovered"));
out:
    if (fd >= 0) close(fd);
    pk_audit_series_free(files, n);
    return r;
}

static pk_result open_file(pk_audit *a)
{
    struct stat fst, pst;

    for (int i = 0; i < MAX_SWITCHES; i++) {
        a->fd = pk_audit_open_nofollow(a->path, O_RDWR | O_APPEND | O_CREAT, 0600);
        if (a->fd < 0) return pk_audit_open_failed(a->path, errno);
        PK_GUARD(lock_file(a, a->fd));
        if (fstat(a->fd, &fst) != 0) return unavailable_errno(a, errno);
        if (!S_ISREG(fst.st_mode)) return pk_audit_unavailable(a->path, "it is not a regular file");
        /* Rotated by someone between our open and our lock? Then open again. */
        if (stat(a->path, &pst) == 0 && pst.st_dev == fst.st_dev && pst.st_ino == fst.st_ino) {
            a->dev = fst.st_dev;
            a->ino = fst.st_ino;
            a->size = 0;
            /* Locked: no rotation of this file is in flight, so a temp file left by a dead one can go. */
            pk_audit_remove_stale_tmp(a->path);
            PK_GUARD(read_tail_inlock(a, fst.st_size));
            if (a->size == 0) PK_GUARD(recover_inlock(a));
            if (strcmp(a->tail.type, PK_AUDIT_T_SEAL) == 0 && strcmp(a->tail.reason, "rotate") == 0)
                PK_GUARD(finish_rotation_inlock(a, NULL, 0));
            return PK_OK;
        }
        unlock_file(a->fd);
        close(a->fd);
        a->fd = -1;
    }
    return pk_audit_unavailable(a->path, "the file keeps being replaced");
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
    if (pk_flusher_init(&a->flusher, &a->mu, flush_step, a) != 0) {
        pthread_mutex_destroy(&a->mu);
        free(a);
        return pk_fail(P11KMS_ERR_INTERNAL, "audit: cannot create a condition variable");
    }
    if (pk_gc_init(&a->gc, flush_file, a) != 0) {
        pk_flusher_destroy(&a->flusher);
        pthread_mutex_destroy(&a->mu);
        free(a);
        return pk_fail(P11KMS_ERR_INTERNAL, "audit: cannot create a mutex");
    }
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
        snprintf(why, sizeof(why), "%s", p11kms_last_error());
        PK_CHECK(false, P11KMS_ERR_AUDIT_UNAVAILABLE, "audit unavailable: cannot look for the audit key %s: %s",
                 PK_AUDIT_KEY_LABEL, why);
    }
    PK_CHECK(exists, P11KMS_ERR_AUDIT_UNAVAILABLE,
             "audit unavailable: the audit key %s is not in the token (run p11kms init)", PK_AUDIT_KEY_LABEL);

    pthread_mutex_lock(&a->mu);
    r = open_file(a);
    if (a->fd >= 0) unlock_file(a->fd);
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

/* ---- Appending ---- */

static pk_result write_event_inlock(pk_audit *a, const pk_buf *body)
{
    char now[PK_AUDIT_TIME_LEN + 1];
    uint64_t seq = a->tail.seq + 1;

    pk_audit_now(now);
    pk_buf_reset(&a->line);
    PK_GUARD(pk_audit_line_head(&a->line, seq, PK_AUDIT_T_EVENT, now));
    PK_GUARD(pk_buf_append(&a->line, body->data, body->len));
    PK_GUARD(pk_buf_append(&a->line, ",", 1));
    PK_GUARD(pk_audit_line_prev_end(&a->line, a->tail.hash));
    PK_GUARD(append_line_inlock(a, seq, PK_AUDIT_T_EVENT, NULL));
    a->stats.records++;
    if (a->unsealed >= a->seal_every) PK_GUARD(seal_inlock(a, a->seal_every == 1 ? "record" : "count"));
    if (a->max_bytes > 0 && (uint64_t)a->size >= a->max_bytes) PK_GUARD(rotate_inlock(a, NULL, 0));
    return PK_OK;
}

/*
 * A fresh request id: a UUID (version 4 layout) made of the handle's random
 * base plus a per-handle counter. Ids must be unique, not secret, and this
 * costs no system call (the DRBG checks getpid() on every call).
 */
static void request_id_new(pk_audit *a, char out[PK_AUDIT_REQUEST_ID_MAX + 1])
{
    uint8_t id[PK_UUID_LEN];
    uint64_t n = __atomic_add_fetch(&a->id_counter, 1, __ATOMIC_RELAXED);
    uint64_t low = pk_load_be64(a->id_base + 8) + n;

    memcpy(id, a->id_base, 8);
    pk_store_be64(id + 8, low);
    id[6] = (uint8_t)((id[6] & 0x0f) | 0x40); /* version 4 */
    id[8] = (uint8_t)((id[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    pk_uuid_format(id, out);
}

pk_result pk_audit_write(pk_audit *a, const pk_audit_event *ev, char request_id_out[PK_AUDIT_REQUEST_ID_MAX + 1])
{
    char rid[PK_AUDIT_REQUEST_ID_MAX + 1];
    pk_buf body = {0};
    uint64_t ticket;
    bool wake;
    pk_result r = PK_OK;

    PK_ENSURE_REF(a);
    PK_ENSURE_REF(ev);
    if (ev->request_id != NULL) {
        PK_ENSURE(strlen(ev->request_id) <= PK_AUDIT_REQUEST_ID_MAX, P11KMS_ERR_INVALID_ARGUMENT,
                  "request id longer than %d characters", PK_AUDIT_REQUEST_ID_MAX);
        snprintf(rid, sizeof(rid), "%s", ev->request_id);
    } else {
        request_id_new(a, rid);
    }
    if (request_id_out != NULL) snprintf(request_id_out, PK_AUDIT_REQUEST_ID_MAX + 1, "%s", rid);
    if (a->disabled) return PK_OK;

    /* Serialise outside the locks; only numbering, hashing and write(2) happen inside. */
    PK_TRY(pk_audit_event_body(&body, ev, rid));
    pthread_mutex_lock(&a->mu);
    r = lock_and_follow(a);
    if (pk_ok(r)) {
        /* A first undurable line must be synced within the flush interval. */
        wake = a->dirty_since_ms == 0;
        r = write_event_inlock(a, &body);
        if (pk_failed(r))
            drop_lock(a); /* check everything again next time */
        else
            release(a);
        if (wake && a->dirty_since_ms != 0) nudge_flusher(a, a->dirty_since_ms + a->flush_interval_ms);
    }
    ticket = pk_gc_last_ticket(&a->gc);
    pthread_mutex_unlock(&a->mu);
    PK_TRY(r);
    if (a->sync == PK_AUDIT_SYNC_ALWAYS) PK_TRY(sync_upto(a, ticket));
out:
    pk_buf_free(&body);
    return r;
}

/* Seal (when anything is unsealed) with `reason`, then make it durable. */
static pk_result seal_and_sync(pk_audit *a, const char *reason)
{
    uint64_t ticket;
    pk_result r;

    pthread_mutex_lock(&a->mu);
    r = lock_and_follow(a);
    if (pk_ok(r)) {
        if (a->tail.seq > 0 && strcmp(a->tail.type, PK_AUDIT_T_SEAL) != 0) r = seal_inlock(a, reason);
        if (pk_failed(r)) drop_lock(a);
        else release(a);
    }
    ticket = pk_gc_last_ticket(&a->gc);
    pthread_mutex_unlock(&a->mu);
    PK_GUARD(r);
    return sync_upto(a, ticket);
}

pk_result pk_audit_check(pk_audit *a)
{
    pk_result r;
    PK_ENSURE_REF(a);
    if (a->disabled) return PK_OK;
    pthread_mutex_lock(&a->mu);
    r = lock_and_follow(a);
    if (pk_ok(r)) release(a);
    pthread_mutex_unlock(&a->mu);
    return r;
}

pk_result pk_audit_flush(pk_audit *a)
{
    PK_ENSURE_REF(a);
    if (a->disabled) return PK_OK;
    return seal_and_sync(a, "flush");
}

pk_result pk_audit_rotate(pk_audit *a, char *rotated_out, size_t rotated_size)
{
    pk_result r;

    PK_ENSURE_REF(a);
    PK_ENSURE(!a->disabled, P11KMS_ERR_INVALID_ARGUMENT, "auditing is disabled: nothing to rotate");
    pthread_mutex_lock(&a->mu);
    r = lock_and_follow(a);
    if (pk_ok(r)) {
        r = rotate_inlock(a, rotated_out, rotated_size);
        if (pk_failed(r)) drop_lock(a);
        else release(a);
    }
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
    r = seal_and_sync(a, "close");
    audit_free(a);
    return r;
}
