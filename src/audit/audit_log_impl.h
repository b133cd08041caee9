/*
 * Internals of the audit log writer, shared by its files (one concept each):
 *   audit_log.c     open, close, the handle's life
 *   audit_append.c  writing lines and appending records
 *   audit_lock.c    locking the file and following other processes
 *   audit_rotate.c  rotation and recovery of a vanished file
 *   audit_flush.c   durability: group commit, the batch flusher, seals on flush
 * Only src/audit includes this header.
 */
#ifndef P11KMS_AUDIT_LOG_IMPL_H
#define P11KMS_AUDIT_LOG_IMPL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "audit/audit_impl.h"
#include "util/group_commit.h"

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
    uint64_t durable_seq; /* the last line this handle knows is on disk (after one of its flushes) */
    pk_audit_stats stats;

    /* Batch-mode flusher thread (fdatasync and timed seals; util/group_commit.c, runs flush_step under mu). */
    pk_flusher flusher;
    uint64_t flusher_seen_ticket; /* the last ticket at the flusher's last look */

    /* Group commit (util/group_commit.c): one caller syncs for everyone waiting; tickets count lines. */
    pk_gc gc;
};

/* audit_log.c */
uint64_t al_mono_ms(void);
pk_result al_unavailable_errno(const pk_audit *a, int err);

/* audit_append.c */
pk_result al_append_line_inlock(pk_audit *a, uint64_t seq, const char *type, const char *reason);
pk_result al_link_line(pk_audit *a, uint64_t seq, const char *reason, uint64_t file_no, const char *prev_name, const uint8_t prev[PK_SHA256_LEN]);
pk_result al_repair_inlock(pk_audit *a, off_t torn);
pk_result al_seal_inlock(pk_audit *a, const char *reason);

/* audit_lock.c */
void al_drop_lock(pk_audit *a);
pk_result al_fsync_dir(const pk_audit *a);
pk_result al_lock_and_follow(pk_audit *a);
pk_result al_lock_file(pk_audit *a, int fd);
void al_nudge_flusher(pk_audit *a, uint64_t due_ms);
pk_result al_read_tail_inlock(pk_audit *a, off_t size);
void al_release(pk_audit *a);
void al_unlock_file(int fd);

/* audit_rotate.c */
pk_result al_open_file(pk_audit *a);
pk_result al_rotate_inlock(pk_audit *a, char *rotated_out, size_t rotated_size);

/* audit_flush.c */
int al_flush_file(void *ctx, uint64_t *target, bool *flushed);
int64_t al_flush_step(void *arg, int64_t now_us);
pk_result al_seal_and_sync(pk_audit *a, const char *reason);
pk_result al_sync_upto(pk_audit *a, uint64_t ticket);

#endif
