/*
 * SQLite backend: when commits reach the disk, and checkpoints.
 *
 * Durability. The journal is WAL with synchronous=NORMAL: a COMMIT appends
 * its frames to the -wal file with write(2) and returns without an fsync
 * (SQLite syncs only around checkpoints). `sync` then makes commits durable
 * with one fdatasync of the -wal file: that is all synchronous=FULL adds to
 * a WAL commit (https://sqlite.org/pragma.html#pragma_synchronous,
 * https://sqlite.org/wal.html). After a power loss, WAL recovery replays
 * frames from the start of the file for as long as their salts and
 * cumulative checksums are valid, up to the last commit frame; every frame
 * that was flushed, in order, is therefore recovered, and a durable commit
 * implies every earlier one. Checkpoints keep this: SQLite syncs the WAL
 * before copying frames into the database, syncs the database before it
 * lets the WAL restart from its beginning, and, in NORMAL mode too, syncs
 * the new WAL header on restart, so stale frames after it never validate.
 * Callers (core) decide when to sync (docs/STORE.md, Durability).
 *
 * Group commit. Commits take tickets (1, 2, ...). `sync` lets one caller,
 * the leader, fdatasync for every commit made so far while the others wait
 * for it; neither the leader nor the waiters hold the handle's mutex or any
 * SQLite lock, so other threads go on committing meanwhile.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "store/store_sqlite_impl.h"

/* ---- durability ------------------------------------------------------------ */

bool sq_writes_refused(sq_store *s)
{
    return pk_gc_broken(&s->gc) != 0;
}

/* What every write says once a flush has failed. */
pk_result sq_fail_broken(sq_store *s)
{
    return pk_fail(P11KMS_ERR_STORE,
                   "store %s: fdatasync of %s failed (%s): commits since the last good sync may not be on disk; "
                   "refusing writes until the store is reopened",
                   s->path, s->wal_path, strerror(pk_gc_broken(&s->gc)));
}

/* A write became visible: it takes the next ticket. */
void sq_count_commit_inlock(sq_store *s, uint64_t *ticket)
{
    uint64_t t = pk_gc_next_ticket(&s->gc);
    if (ticket != NULL) *ticket = t;
}

/*
 * Point wal_fd at the -wal file now at the path; returns 0 or an errno.
 * Only the sync leader (and open) call this.
 *
 * fdatasync acts on the inode, whichever fd wrote its pages, so our own fd
 * covers SQLite's writes. WAL mode locks the database and -shm files, never
 * the -wal file, so opening and closing this fd cannot drop one of SQLite's
 * POSIX locks (close(2) drops all of a process's locks on a file). The fd
 * stays open for the handle's life: Linux reports a writeback error to the
 * fds that were open when it happened, and a fresh fd could miss it.
 *
 * While our connection is open the file stays (SQLite resets it in place
 * after a checkpoint; only the last connection to close removes it, after a
 * checkpoint that synced the database). Should it still be replaced, the
 * old inode's frames are in the synced database, so we follow the new
 * file; should it be gone, we flush the inode we hold, which is harmless.
 */
int sq_wal_follow(sq_store *s)
{
    struct statx sx;
    struct stat st;
    int fd;

    /*
     * statx for the inode number only: a stat(2) that reads the file's times
     * makes Linux (6.13+, multigrain timestamps) give the next write a
     * fine-grained ctime, and the fdatasync after it then also writes the
     * inode: measured 70 us more per sync.
     */
    if (statx(AT_FDCWD, s->wal_path, 0, STATX_INO, &sx) != 0) return errno == ENOENT ? 0 : errno;
    if (s->wal_fd >= 0 && (sx.stx_mask & STATX_INO) != 0 && sx.stx_ino == s->wal_ino &&
        makedev(sx.stx_dev_major, sx.stx_dev_minor) == s->wal_dev)
        return 0;
    fd = open(s->wal_path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) return errno == ENOENT ? 0 : errno;
    if (fstat(fd, &st) != 0) {
        int err = errno;
        close(fd);
        return err;
    }
    if (s->wal_fd >= 0) close(s->wal_fd);
    s->wal_fd = fd;
    s->wal_dev = st.st_dev;
    s->wal_ino = st.st_ino;
    return 0;
}

/*
 * The group commit's flush (util/group_commit.c calls it for one leader at
 * a time, so only it touches wal_fd): one fdatasync of the -wal file.
 */
int sq_flush_wal(void *ctx, uint64_t *target, bool *flushed)
{
    sq_store *s = ctx;
    int err = sq_wal_follow(s);

    (void)target;
    if (err == 0 && s->wal_fd >= 0) {
        *flushed = true;
        if (fdatasync(s->wal_fd) != 0) err = errno;
    }
    return err;
}

/* Group commit (see the top of the file). */
pk_result sq_sync(pk_store *base, uint64_t upto)
{
    sq_store *s = sq(base);
    int err;

    PK_ENSURE(s->pid == getpid(), P11KMS_ERR_STORE, "store %s: handle opened by process %ld; open a new one after fork",
              s->path, (long)s->pid);
    err = pk_gc_sync(&s->gc, upto);
    if (err == 0) return PK_OK;
    if (pk_gc_broken(&s->gc) != 0) return sq_fail_broken(s);
    return pk_fail(P11KMS_ERR_STORE, "store %s: cannot open %s: %s", s->path, s->wal_path, strerror(err));
}

void sq_stats(pk_store *base, pk_store_stats *out)
{
    sq_store *s = sq(base);

    out->commits = pk_gc_last_ticket(&s->gc);
    pk_gc_stats(&s->gc, &out->synced, &out->syncs);
    out->checkpoints = __atomic_load_n(&s->checkpoints, __ATOMIC_RELAXED);
}

/* ---- checkpoints ------------------------------------------------------------ */

/*
 * SQLite calls this after every commit on the main connection with the
 * WAL's size in frames. It replaces SQLite's automatic checkpoint (itself
 * a WAL hook, run inside the commit that reaches the mark) with the same
 * rule, unless checkpoints run in the background: then only past the
 * backstop. A failed checkpoint here is SQLite's usual benign case (it is
 * retried at the next mark); the commit has succeeded either way.
 */
int sq_wal_hook(void *arg, sqlite3 *db, const char *name, int frames)
{
    sq_store *s = arg;
    bool background = __atomic_load_n(&s->ck_background, __ATOMIC_RELAXED);

    __atomic_store_n(&s->wal_frames, frames, __ATOMIC_RELAXED);
    if (frames >= (background ? CKPT_BACKSTOP_FRAMES : CKPT_FRAMES))
        (void)sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    return SQLITE_OK;
}

void sq_set_checkpoint_background(pk_store *base, bool background)
{
    __atomic_store_n(&sq(base)->ck_background, background, __ATOMIC_RELAXED);
}

/*
 * The checkpoint connection. Its first read opens the WAL (a checkpoint
 * on a connection that has not read yet does nothing). It never writes, so
 * its own automatic checkpoint never fires; its checkpoints sync the log
 * before copying and the database after, in NORMAL as in FULL.
 */
static pk_result open_checkpointer_inlock(sq_store *s)
{
    int rc = sqlite3_open_v2(s->path, &s->ck_db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, pk_store_vfs());

    if (rc == SQLITE_OK) {
        (void)sqlite3_extended_result_codes(s->ck_db, 1);
        (void)sqlite3_busy_timeout(s->ck_db, BUSY_TIMEOUT_MS);
        (void)sqlite3_db_config(s->ck_db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
        rc = sqlite3_exec(s->ck_db, "PRAGMA synchronous = NORMAL; PRAGMA user_version", NULL, NULL, NULL);
    }
    if (rc == SQLITE_OK) return PK_OK;
    {
        pk_result r = pk_fail(sq_map_rc(rc), "store %s: checkpoint connection: %s", s->path,
                              s->ck_db != NULL ? sq_db_error(s, s->ck_db) : sqlite3_errstr(rc));
        (void)sqlite3_close(s->ck_db);
        s->ck_db = NULL;
        return r;
    }
}

/*
 * A PASSIVE checkpoint on the checkpoint connection, once the log has grown
 * by CKPT_FRAMES since the last one: it copies what no reader still needs,
 * without waiting for anyone, while the main connection goes on committing
 * (writers append past the frames being copied). BUSY means another
 * connection is checkpointing: our work is being done.
 *
 * SQLite restarts the log from its beginning only when a write transaction
 * starts with every frame copied, which a checkpoint racing a steady stream
 * of commits rarely leaves behind. So under load the log grows until the
 * backstop, where the commit's own checkpoint has little left to copy and
 * the next transaction restarts the log. A restart we notice late (the log
 * is smaller than what we copied) delays one checkpoint by one mark at most.
 */
pk_result sq_checkpoint(pk_store *base)
{
    sq_store *s = sq(base);
    pk_result r = PK_OK;
    int frames = __atomic_load_n(&s->wal_frames, __ATOMIC_RELAXED);
    int log = 0, copied = 0, rc;

    PK_ENSURE(s->pid == getpid(), P11KMS_ERR_STORE, "store %s: handle opened by process %ld; open a new one after fork",
              s->path, (long)s->pid);
    pthread_mutex_lock(&s->ck_mu);
    /* A log smaller than what was copied has restarted from its beginning. */
    if (frames < s->ck_copied) s->ck_copied = 0;
    if (frames - s->ck_copied < CKPT_FRAMES) goto out;
    if (s->ck_db == NULL) PK_TRY(open_checkpointer_inlock(s));
    rc = sqlite3_wal_checkpoint_v2(s->ck_db, NULL, SQLITE_CHECKPOINT_PASSIVE, &log, &copied);
    if (rc == SQLITE_OK) {
        __atomic_add_fetch(&s->checkpoints, 1, __ATOMIC_RELAXED);
        s->ck_copied = copied;
    } else {
        PK_CHECK((rc & 0xff) == SQLITE_BUSY, sq_map_rc(rc), "store %s: checkpoint: %s", s->path,
                 sq_db_error(s, s->ck_db));
    }
out:
    pthread_mutex_unlock(&s->ck_mu);
    return r;
}
