/*
 * Internals shared by src/esdk's encryptor and decryptor: the frame AAD and
 * IV (data-format/message-body-aad.md, message-body.md) and the worker
 * threads that seal or open the frames of a batch in parallel.
 */
#ifndef PK_ESDK_ESDK_IMPL_H
#define PK_ESDK_ESDK_IMPL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "crypto/crypto_esdk.h"
#include "esdk/esdk.h"

#define PK_ESDK_BATCH_BYTES (1024u * 1024) /* per thread: amortises handing out a batch */
#define PK_ESDK_BATCH_ONE (256u * 1024)    /* one thread: the batch's input and output stay in its cache */
#define PK_ESDK_SEQ_END 0xffffffffu        /* marks the final frame */
#define PK_ESDK_SEQ_MAX 0xfffffffeu
#define PK_ESDK_REG_OVERHEAD (4 + PK_GCM_IV_LEN + PK_GCM_TAG_LEN)
#define PK_ESDK_FINAL_HEAD (4 + 4 + PK_GCM_IV_LEN + 4)
/* Message id, "AWSKMSEncryptionClient Final Frame" (34 bytes), sequence number, length. */
#define PK_ESDK_AAD_MAX (PK_ESDK_MSG_ID_LEN + 34 + 4 + 8)

/* Body AAD into out (PK_ESDK_AAD_MAX bytes): message id, content string, sequence number, content length. */
size_t pk_esdk_body_aad(uint8_t *out, const uint8_t *msg_id, bool final, uint32_t seq, uint64_t len);
/* A frame's IV: its sequence number, big-endian, zero-padded to 12 bytes. */
void pk_esdk_seq_iv(uint8_t iv[PK_GCM_IV_LEN], uint32_t seq);
/* Frames per batch: about PK_ESDK_BATCH_BYTES per thread (PK_ESDK_BATCH_ONE alone), at most 64 MiB in all. */
size_t pk_esdk_batch_frames(uint32_t fl, unsigned threads);

/*
 * Seal or open frames [first, first + n) of the current batch with one
 * thread's GCM context; returns the first failing index, or SIZE_MAX.
 */
typedef size_t (*pk_esdk_frames_fn)(void *owner, pk_gcm *gcm, size_t first, size_t n);
/* Frames [first, first + n) are done, in order, and none failed: write them out. */
typedef pk_result (*pk_esdk_ready_fn)(void *owner, size_t first, size_t n);

/*
 * Worker threads live as long as the stream: starting threads for each
 * batch would cost as much as sealing it. A batch is cut into chunks that
 * the caller and the workers claim one at a time, so a thread the system
 * preempts holds up at most one chunk; idle threads spin briefly before
 * they sleep, because a wake-up through the scheduler costs as much as a
 * chunk. Between its chunks the caller writes out the finished prefix of
 * the batch, so the output overlaps the other threads' work. Fields written
 * by several threads are padded apart (the pool lives in calloc'd memory,
 * so padding rather than alignment): a claim does not evict the line the
 * others poll.
 */
#define PK_ESDK_CACHE_LINE 64
typedef struct pk_esdk_pool pk_esdk_pool;
typedef struct pk_esdk_worker_arg {
    pk_esdk_pool *p;
    unsigned i;
} pk_esdk_worker_arg;
struct pk_esdk_pool {
    unsigned threads, nworkers;
    bool inited;
    uint32_t gen;
    uint32_t frame_len;
    size_t chunk;              /* frames per claim */
    _Atomic unsigned char *ok; /* per chunk of the batch: 1 when done without a failure */
    pthread_t tid[PK_ESDK_THREADS_MAX];
    pk_esdk_worker_arg args[PK_ESDK_THREADS_MAX];
    pthread_mutex_t mu;
    pthread_cond_t go, done;
    /* The batch, written by the caller before it publishes `claim`. */
    pk_esdk_frames_fn fn;
    void *owner;
    pk_gcm **gcm;
    size_t count;
    char pad0[PK_ESDK_CACHE_LINE];
    _Atomic uint64_t claim; /* generation << 32 | chunks << 16 | next chunk */
    char pad1[PK_ESDK_CACHE_LINE];
    _Atomic size_t finished; /* chunks done in this generation */
    _Atomic size_t bad;
    char pad2[PK_ESDK_CACHE_LINE];
    _Atomic unsigned sleepers;
    _Atomic bool stop;
    char pad3[PK_ESDK_CACHE_LINE];
};

/*
 * Start threads - 1 workers for batches of at most max_frames frames of
 * frame_len bytes (fewer workers when the system refuses: the others then
 * claim more chunks; none without memory: the caller does it all).
 */
void pk_esdk_pool_init(pk_esdk_pool *p, unsigned threads, uint32_t frame_len, size_t max_frames);
/* Stop and join the workers. Safe on a zeroed pool. */
void pk_esdk_pool_free(pk_esdk_pool *p);
/*
 * Run fn over frames [0, count) on all threads; returns the first bad
 * index (SIZE_MAX when none). Meanwhile ready (when not NULL) may get the
 * finished frames before the first bad one, in order, from frame 0; the
 * owner counts what it got and writes the rest itself. A failure of ready
 * stops the handing and lands in *r.
 */
size_t pk_esdk_run_jobs(pk_esdk_pool *p, void *owner, pk_esdk_frames_fn fn, pk_esdk_ready_fn ready, pk_gcm **gcm,
                        size_t count, pk_result *r);

/* One GCM context per thread under the derived key. */
PK_MUST_USE pk_result pk_esdk_make_gcms(const pk_secbuf *derived, bool encrypt, unsigned threads, pk_gcm **gcm);
void pk_esdk_free_gcms(pk_gcm **gcm);

#endif
