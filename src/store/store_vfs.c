/*
 * A thin SQLite VFS over the default one ("unix") that allocates the WAL
 * index (the -shm file) on disk before SQLite maps it.
 *
 * Why. SQLite 3.40's unix VFS grows the -shm file by writing one byte at the
 * end of each 4 KiB page (unixShmMap) and then mmaps it. On a file system
 * whose blocks are smaller than 4 KiB (ext4 on a small volume uses 1 KiB
 * blocks) the rest of each page stays a hole. The first store to such a hole
 * through the mapping is a page fault that must allocate a block; on a full
 * disk it cannot, and the kernel sends SIGBUS: the process dies at store
 * open or inside COMMIT instead of failing. Reproduced with a 16 MiB ext4
 * loop volume (tests/cli/fulldisk.sh): ftruncate(shm, 3), pwrite of one byte
 * at 4095, 8191, ..., 32767, mmap, then SIGBUS in the WAL-index writes.
 *
 * The fix. Before a region of the -shm is used, fallocate(2) every block
 * from offset 0 to the end of that region, failing with SQLITE_FULL
 * (ENOSPC) instead. SQLite then finds the file large enough, writes no
 * bytes of its own and maps blocks that exist, so no later page fault needs
 * a block. The first connection to open the WAL truncates the -shm to 3
 * bytes (unixLockSharedMemory) and so frees what we allocated; we allocate
 * after that, by asking SQLite to map without extending first. While any
 * connection holds the -shm open nobody truncates it again, so each
 * connection allocates each region once (shm_ready).
 *
 * Size. The WAL index is 32 KiB per 4062 WAL frames
 * (https://sqlite.org/walformat.html). The store checkpoints at 1000 frames
 * and a commit forces one past 10000 (store_sync.c), so the index stays
 * at one to three regions (32 to 96 KiB) in normal use; it is allocated
 * region by region as SQLite asks, so a WAL that outgrows that while
 * readers pin it still gets blocks that exist, or a clean SQLITE_FULL.
 *
 * Multi-process locking is unchanged: every other call goes to the unix
 * VFS as it is (no exclusive locking mode, no heap-memory WAL index).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/store.h"

#define VFS_NAME "p11kms-unix"

/*
 * Our own descriptor on one -shm file, shared by this process's connections
 * to it. POSIX record locks belong to the process and inode: closing any
 * descriptor of the -shm would drop SQLite's locks on it (its DMS lock
 * among them, letting another process truncate the file under us). So the
 * descriptor is closed only after the last connection here has unmapped.
 */
typedef struct shm_entry {
    char *path;
    int fd; /* -1 until an allocation needs it */
    unsigned refs;
    struct shm_entry *next;
} shm_entry;

typedef struct shim_file {
    sqlite3_file base;       /* base.pMethods: shim_io, or NULL when the open failed */
    sqlite3_file *real;      /* the unix VFS's file, stored right after this struct */
    char *shm_path;          /* main database files only: DB-shm */
    shm_entry *shm;          /* set from the first xShmMap until xShmUnmap */
    sqlite3_int64 shm_ready; /* bytes of the -shm known to be allocated */
} shim_file;

/* Keeps the unix VFS's file suitably aligned after ours. */
#define SHIM_SIZE ((sizeof(shim_file) + 15) & ~(size_t)15)

static sqlite3_vfs *real_vfs;
static sqlite3_vfs shim_vfs;
static pthread_once_t register_once = PTHREAD_ONCE_INIT;
static int register_rc = SQLITE_ERROR;
static pthread_mutex_t shm_lock = PTHREAD_MUTEX_INITIALIZER;
static shm_entry *shm_entries;

static sqlite3_file *real_of(sqlite3_file *f)
{
    return ((shim_file *)f)->real;
}

static shm_entry *shm_acquire(const char *path)
{
    shm_entry *e;

    pthread_mutex_lock(&shm_lock);
    for (e = shm_entries; e != NULL && strcmp(e->path, path) != 0; e = e->next) {}
    if (e == NULL && (e = calloc(1, sizeof(*e))) != NULL) {
        e->path = strdup(path);
        e->fd = -1;
        if (e->path == NULL) {
            free(e);
            e = NULL;
        } else {
            e->next = shm_entries;
            shm_entries = e;
        }
    }
    if (e != NULL) e->refs++;
    pthread_mutex_unlock(&shm_lock);
    return e;
}

static void shm_release(shm_entry *e)
{
    shm_entry **pp;

    pthread_mutex_lock(&shm_lock);
    if (--e->refs == 0) {
        for (pp = &shm_entries; *pp != e; pp = &(*pp)->next) {}
        *pp = e->next;
        if (e->fd >= 0) close(e->fd);
        free(e->path);
        free(e);
    }
    pthread_mutex_unlock(&shm_lock);
}

/* Every block of [0, need) on disk; ENOSPC is SQLITE_FULL. */
static int allocate_shm(shm_entry *e, sqlite3_int64 need)
{
    int rc = SQLITE_OK;

    pthread_mutex_lock(&shm_lock);
    if (e->fd < 0) e->fd = open(e->path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    if (e->fd < 0)
        rc = SQLITE_IOERR_SHMOPEN;
    else if (fallocate(e->fd, 0, 0, (off_t)need) != 0) {
        /* A file system without fallocate keeps SQLite's own behaviour. */
        if (errno == ENOSPC || errno == EDQUOT)
            rc = SQLITE_FULL;
        else if (errno != EOPNOTSUPP && errno != ENOSYS)
            rc = SQLITE_IOERR_SHMSIZE;
    }
    pthread_mutex_unlock(&shm_lock);
    return rc;
}

static int shim_shm_map(sqlite3_file *f, int region, int size, int extend, void volatile **pp)
{
    shim_file *sf = (shim_file *)f;
    sqlite3_file *r = sf->real;
    sqlite3_int64 need = (sqlite3_int64)(region + 1) * size;
    int rc;

    if (sf->shm_path == NULL || need <= sf->shm_ready) return r->pMethods->xShmMap(r, region, size, extend, pp);
    if (sf->shm == NULL && (sf->shm = shm_acquire(sf->shm_path)) == NULL) return SQLITE_NOMEM;
    /* Open (and, first in, truncate) the -shm, mapping only what already exists. */
    rc = r->pMethods->xShmMap(r, region, size, 0, pp);
    if (rc != SQLITE_OK || (*pp == NULL && !extend)) return rc;
    rc = allocate_shm(sf->shm, need);
    if (rc != SQLITE_OK) return rc;
    sf->shm_ready = need;
    if (*pp != NULL) return SQLITE_OK;
    return r->pMethods->xShmMap(r, region, size, extend, pp);
}

static void shim_forget_shm(shim_file *sf)
{
    if (sf->shm != NULL) shm_release(sf->shm);
    sf->shm = NULL;
    sf->shm_ready = 0;
}

static int shim_shm_unmap(sqlite3_file *f, int delete_flag)
{
    int rc = real_of(f)->pMethods->xShmUnmap(real_of(f), delete_flag);
    shim_forget_shm((shim_file *)f);
    return rc;
}

static int shim_close(sqlite3_file *f)
{
    shim_file *sf = (shim_file *)f;
    int rc = sf->real->pMethods->xClose(sf->real);
    shim_forget_shm(sf);
    free(sf->shm_path);
    sf->shm_path = NULL;
    return rc;
}

/* ---- plain forwarding ---- */

static int shim_read(sqlite3_file *f, void *buf, int n, sqlite3_int64 off)
{
    return real_of(f)->pMethods->xRead(real_of(f), buf, n, off);
}

static int shim_write(sqlite3_file *f, const void *buf, int n, sqlite3_int64 off)
{
    return real_of(f)->pMethods->xWrite(real_of(f), buf, n, off);
}

static int shim_truncate(sqlite3_file *f, sqlite3_int64 size)
{
    return real_of(f)->pMethods->xTruncate(real_of(f), size);
}

static int shim_sync(sqlite3_file *f, int flags)
{
    return real_of(f)->pMethods->xSync(real_of(f), flags);
}

static int shim_file_size(sqlite3_file *f, sqlite3_int64 *size)
{
    return real_of(f)->pMethods->xFileSize(real_of(f), size);
}

static int shim_lock(sqlite3_file *f, int level)
{
    return real_of(f)->pMethods->xLock(real_of(f), level);
}

static int shim_unlock(sqlite3_file *f, int level)
{
    return real_of(f)->pMethods->xUnlock(real_of(f), level);
}

static int shim_check_reserved(sqlite3_file *f, int *out)
{
    return real_of(f)->pMethods->xCheckReservedLock(real_of(f), out);
}

static int shim_file_control(sqlite3_file *f, int op, void *arg)
{
    return real_of(f)->pMethods->xFileControl(real_of(f), op, arg);
}

static int shim_sector_size(sqlite3_file *f)
{
    return real_of(f)->pMethods->xSectorSize(real_of(f));
}

static int shim_device_characteristics(sqlite3_file *f)
{
    return real_of(f)->pMethods->xDeviceCharacteristics(real_of(f));
}

static int shim_shm_lock(sqlite3_file *f, int offset, int n, int flags)
{
    return real_of(f)->pMethods->xShmLock(real_of(f), offset, n, flags);
}

static void shim_shm_barrier(sqlite3_file *f)
{
    real_of(f)->pMethods->xShmBarrier(real_of(f));
}

static int shim_fetch(sqlite3_file *f, sqlite3_int64 off, int n, void **pp)
{
    return real_of(f)->pMethods->xFetch(real_of(f), off, n, pp);
}

static int shim_unfetch(sqlite3_file *f, sqlite3_int64 off, void *p)
{
    return real_of(f)->pMethods->xUnfetch(real_of(f), off, p);
}

static const sqlite3_io_methods shim_io = {
    3,
    shim_close,
    shim_read,
    shim_write,
    shim_truncate,
    shim_sync,
    shim_file_size,
    shim_lock,
    shim_unlock,
    shim_check_reserved,
    shim_file_control,
    shim_sector_size,
    shim_device_characteristics,
    shim_shm_map,
    shim_shm_lock,
    shim_shm_barrier,
    shim_shm_unmap,
    shim_fetch,
    shim_unfetch,
};

static int shim_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags, int *out_flags)
{
    shim_file *sf = (shim_file *)f;
    int rc;

    (void)vfs;
    memset(sf, 0, sizeof(*sf));
    sf->real = (sqlite3_file *)((char *)f + SHIM_SIZE);
    if ((flags & SQLITE_OPEN_MAIN_DB) && name != NULL) {
        if (asprintf(&sf->shm_path, "%s-shm", name) < 0) return SQLITE_NOMEM;
    }
    rc = real_vfs->xOpen(real_vfs, name, sf->real, flags, out_flags);
    if (sf->real->pMethods == NULL) {
        free(sf->shm_path);
        sf->shm_path = NULL;
        return rc;
    }
    sf->base.pMethods = &shim_io;
    return rc;
}

static void register_vfs(void)
{
    real_vfs = sqlite3_vfs_find("unix");
    /* The unix VFS's files have every v3 method, which shim_io forwards. */
    if (real_vfs == NULL || real_vfs->iVersion < 2) return;
    shim_vfs = *real_vfs;
    shim_vfs.zName = VFS_NAME;
    shim_vfs.szOsFile = (int)SHIM_SIZE + real_vfs->szOsFile;
    shim_vfs.xOpen = shim_open;
    shim_vfs.pNext = NULL;
    register_rc = sqlite3_vfs_register(&shim_vfs, 0);
}

const char *pk_store_vfs(void)
{
    pthread_once(&register_once, register_vfs);
    return register_rc == SQLITE_OK ? VFS_NAME : NULL;
}
