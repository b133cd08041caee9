/*
 * Internals shared by src/esdk's encryptor and decryptor: the frame AAD and
 * IV (data-format/message-body-aad.md, message-body.md) and the worker
 * threads that seal or open the frames of a batch in parallel.
 */
#ifndef PK_ESDK_ESDK_IMPL_H
#define PK_ESDK_ESDK_IMPL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "crypto/crypto_esdk.h"
#include "esdk/esdk.h"

#define PK_ESDK_BATCH_BYTES (1024u * 1024) /* per thread: amortises waking a worker */
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
/* Frames per batch: about PK_ESDK_BATCH_BYTES per thread, at most 64 MiB of plaintext in all. */
size_t pk_esdk_batch_frames(uint32_t fl, unsigned threads);

/* One thread's share of a batch: frames [first, first + count). */
typedef struct pk_esdk_job pk_esdk_job;
typedef void (*pk_esdk_job_fn)(pk_esdk_job *j);
struct pk_esdk_job {
    pk_esdk_job_fn fn;
    void *owner;
    pk_gcm *gcm;
    size_t first, count;
    size_t bad; /* first failing frame index, or SIZE_MAX */
};

/*
 * Worker threads live as long as the stream: starting threads for each
 * batch would cost as much as sealing it. The caller's thread runs job 0.
 */
typedef struct pk_esdk_pool pk_esdk_pool;
typedef struct pk_esdk_worker_arg {
    pk_esdk_pool *p;
    unsigned i;
} pk_esdk_worker_arg;
struct pk_esdk_pool {
    unsigned threads, nworkers;
    bool inited, stop;
    pthread_t tid[PK_ESDK_THREADS_MAX];
    pk_esdk_worker_arg args[PK_ESDK_THREADS_MAX];
    pthread_mutex_t mu;
    pthread_cond_t go, done;
    uint64_t gen;
    unsigned pending;
    pk_esdk_job jobs[PK_ESDK_THREADS_MAX];
};

/* Start threads - 1 workers (fewer when the system refuses: the caller then runs their jobs). */
void pk_esdk_pool_init(pk_esdk_pool *p, unsigned threads);
/* Stop and join the workers. Safe on a zeroed pool. */
void pk_esdk_pool_free(pk_esdk_pool *p);
/* Split count frames over the threads; returns the first bad index (SIZE_MAX when none). */
size_t pk_esdk_run_jobs(pk_esdk_pool *p, void *owner, pk_esdk_job_fn fn, pk_gcm **gcm, size_t count);

/* One GCM context per thread under the derived key. */
PK_MUST_USE pk_result pk_esdk_make_gcms(const pk_secbuf *derived, bool encrypt, unsigned threads, pk_gcm **gcm);
void pk_esdk_free_gcms(pk_gcm **gcm);

#endif
