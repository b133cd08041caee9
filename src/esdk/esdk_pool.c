/*
 * Frame AAD and IV, and the worker threads that seal or open the frames
 * of a batch in parallel (each frame's IV is its sequence number, so the
 * frames of a message are independent).
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crypto/crypto.h"
#include "crypto/crypto_esdk.h"
#include "esdk/esdk.h"
#include "esdk/esdk_impl.h"

static const char AAD_FRAME[] = "AWSKMSEncryptionClient Frame";
static const char AAD_FINAL[] = "AWSKMSEncryptionClient Final Frame";

/* Body AAD: message id || content string || sequence number || content length. */
size_t pk_esdk_body_aad(uint8_t *out, const uint8_t *msg_id, bool final, uint32_t seq, uint64_t len)
{
    const char *s = final ? AAD_FINAL : AAD_FRAME;
    size_t sl = strlen(s);
    memcpy(out, msg_id, PK_ESDK_MSG_ID_LEN);
    memcpy(out + PK_ESDK_MSG_ID_LEN, s, sl);
    pk_store_be32(out + PK_ESDK_MSG_ID_LEN + sl, seq);
    pk_store_be64(out + PK_ESDK_MSG_ID_LEN + sl + 4, len);
    return PK_ESDK_MSG_ID_LEN + sl + 12;
}

void pk_esdk_seq_iv(uint8_t iv[PK_GCM_IV_LEN], uint32_t seq)
{
    memset(iv, 0, PK_GCM_IV_LEN - 4);
    pk_store_be32(iv + PK_GCM_IV_LEN - 4, seq);
}

size_t pk_esdk_batch_frames(uint32_t fl, unsigned threads)
{
    size_t per = (threads > 1 ? PK_ESDK_BATCH_BYTES : PK_ESDK_BATCH_ONE) / fl, n = (per ? per : 1) * threads;
    size_t cap = PK_ESDK_FRAME_MAX / fl;
    return n <= cap ? n : (cap ? cap : 1);
}

#define CHUNK_BYTES (32u * 1024) /* a claim: small enough to balance, large enough that claiming costs nothing */
#define CHUNKS_MAX 0xffffu
#define HAND_BYTES (256u * 1024) /* write out in pieces of at least this much: fewer system calls */
/*
 * How long an idle thread polls before it sleeps: a wake-up through the
 * scheduler takes tens of us on a VM. A worker polls through the caller's
 * read and write between two batches; the caller waits at most one chunk
 * for a worker that runs, and longer only for one that was preempted.
 */
#define WORKER_SPIN_NS 200000
#define CALLER_SPIN_NS 50000

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Poll until done(p, x) holds, for about ns; false when it still does not. */
static bool spin_until(pk_esdk_pool *p, bool (*done)(pk_esdk_pool *, uint64_t), uint64_t x, uint64_t ns)
{
    uint64_t t0 = 0;
    for (unsigned i = 0;; i++) {
        if (done(p, x)) return true;
        cpu_relax();
        if ((i & 63) != 63) continue;
        if (t0 == 0) t0 = now_ns();
        else if (now_ns() - t0 > ns) return false;
    }
}

static bool new_batch(pk_esdk_pool *p, uint64_t seen)
{
    return (uint32_t)(atomic_load(&p->claim) >> 32) != (uint32_t)seen || atomic_load(&p->stop);
}

static bool all_finished(pk_esdk_pool *p, uint64_t chunks) { return atomic_load(&p->finished) >= chunks; }

/*
 * Claim and run one chunk of generation gen; false when none is left. The
 * claim word holds the generation, so a thread that looks late never takes
 * a chunk of the next batch; the batch's fields are read only once a chunk
 * of it is held (the batch cannot end, nor be replaced, before that chunk
 * is reported).
 */
static bool run_chunk(pk_esdk_pool *p, unsigned t, uint32_t gen)
{
    uint64_t w = atomic_load(&p->claim), chunks, c;
    size_t first, n, bad;
    do {
        chunks = (w >> 16) & CHUNKS_MAX;
        c = w & CHUNKS_MAX;
        if ((uint32_t)(w >> 32) != gen || c >= chunks) return false;
    } while (!atomic_compare_exchange_weak(&p->claim, &w, w + 1));
    first = c * p->chunk;
    n = p->count - first < p->chunk ? p->count - first : p->chunk;
    bad = p->fn(p->owner, p->gcm[t], first, n);
    if (bad != SIZE_MAX) {
        size_t cur = atomic_load(&p->bad);
        while (bad < cur && !atomic_compare_exchange_weak(&p->bad, &cur, bad)) {}
    } else {
        atomic_store(&p->ok[c], 1);
    }
    if (atomic_fetch_add(&p->finished, 1) + 1 == chunks) { /* the last one: the caller may be asleep */
        pthread_mutex_lock(&p->mu);
        pthread_cond_signal(&p->done);
        pthread_mutex_unlock(&p->mu);
    }
    return true;
}

static void *worker(void *arg)
{
    pk_esdk_worker_arg *a = arg;
    pk_esdk_pool *p = a->p;
    uint32_t seen = 0;
    for (;;) {
        if (!spin_until(p, new_batch, seen, WORKER_SPIN_NS)) {
            pthread_mutex_lock(&p->mu);
            atomic_fetch_add(&p->sleepers, 1); /* seen by the caller after it publishes, or we see its batch */
            while (!new_batch(p, seen)) pthread_cond_wait(&p->go, &p->mu);
            atomic_fetch_sub(&p->sleepers, 1);
            pthread_mutex_unlock(&p->mu);
        }
        if (atomic_load(&p->stop)) break;
        seen = (uint32_t)(atomic_load(&p->claim) >> 32);
        while (run_chunk(p, a->i + 1, seen)) {}
    }
    return NULL;
}

void pk_esdk_pool_init(pk_esdk_pool *p, unsigned threads, uint32_t frame_len, size_t max_frames)
{
    size_t chunk = CHUNK_BYTES / frame_len;
    memset(p, 0, sizeof(*p));
    p->threads = threads;
    atomic_init(&p->claim, 0);
    atomic_init(&p->finished, 0);
    atomic_init(&p->bad, SIZE_MAX);
    atomic_init(&p->sleepers, 0);
    atomic_init(&p->stop, false);
    chunk = chunk > 0 ? chunk : 1;
    if ((max_frames + chunk - 1) / chunk > CHUNKS_MAX) chunk = (max_frames + CHUNKS_MAX - 1) / CHUNKS_MAX;
    p->chunk = chunk;
    p->frame_len = frame_len;
    if (threads < 2 || (p->ok = calloc((max_frames + chunk - 1) / chunk, sizeof(*p->ok))) == NULL) return;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->go, NULL);
    pthread_cond_init(&p->done, NULL);
    p->inited = true;
    for (unsigned i = 0; i + 1 < threads; i++) {
        p->args[i] = (pk_esdk_worker_arg){p, i};
        if (pthread_create(&p->tid[i], NULL, worker, &p->args[i]) != 0) break;
        p->nworkers = i + 1;
    }
}

void pk_esdk_pool_free(pk_esdk_pool *p)
{
    if (!p->inited) return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->stop, true);
    pthread_cond_broadcast(&p->go);
    pthread_mutex_unlock(&p->mu);
    for (unsigned i = 0; i < p->nworkers; i++) pthread_join(p->tid[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->go);
    pthread_cond_destroy(&p->done);
    free((void *)p->ok);
    p->ok = NULL;
    p->inited = false;
}

/* The caller's side of handing out the finished prefix of a batch. */
typedef struct hand {
    pk_esdk_ready_fn ready;
    size_t chunks, at, frames; /* chunks checked, frames handed */
    pk_result *r;
} hand;

/* Hand over the finished prefix once it is worth a write (or whatever is left when last). */
static void hand_ready(pk_esdk_pool *p, hand *h, bool last)
{
    size_t upto;
    if (h->ready == NULL || pk_failed(*h->r)) return;
    while (h->at < h->chunks && atomic_load(&p->ok[h->at])) h->at++;
    upto = h->at * p->chunk < p->count ? h->at * p->chunk : p->count;
    if (upto == h->frames || (!last && (upto - h->frames) * p->frame_len < HAND_BYTES)) return;
    *h->r = h->ready(p->owner, h->frames, upto - h->frames);
    h->frames = upto;
}

static bool finished_or_handed(pk_esdk_pool *p, hand *h)
{
    if (all_finished(p, h->chunks)) return true;
    hand_ready(p, h, false);
    return false;
}

/* Wait for the other threads, writing out what they finish meanwhile. */
static void wait_batch(pk_esdk_pool *p, hand *h)
{
    uint64_t t0 = now_ns();
    while (!finished_or_handed(p, h)) {
        cpu_relax();
        if (now_ns() - t0 <= CALLER_SPIN_NS) continue;
        pthread_mutex_lock(&p->mu);
        while (!all_finished(p, h->chunks)) pthread_cond_wait(&p->done, &p->mu);
        pthread_mutex_unlock(&p->mu);
    }
}

size_t pk_esdk_run_jobs(pk_esdk_pool *p, void *owner, pk_esdk_frames_fn fn, pk_esdk_ready_fn ready, pk_gcm **gcm,
                        size_t count, pk_result *r)
{
    hand h = {ready, 0, 0, 0, r};
    *r = PK_OK;
    if (count == 0) return SIZE_MAX;
    if (p->nworkers == 0 || count == 1) return fn(owner, gcm[0], 0, count);
    h.chunks = (count + p->chunk - 1) / p->chunk;
    for (size_t c = 0; c < h.chunks; c++) atomic_store(&p->ok[c], 0);
    p->fn = fn;
    p->owner = owner;
    p->gcm = gcm;
    p->count = count;
    atomic_store(&p->finished, 0);
    atomic_store(&p->bad, SIZE_MAX);
    p->gen++;
    atomic_store(&p->claim, (uint64_t)p->gen << 32 | (uint64_t)h.chunks << 16);
    if (atomic_load(&p->sleepers) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->go);
        pthread_mutex_unlock(&p->mu);
    }
    while (run_chunk(p, 0, p->gen)) hand_ready(p, &h, false);
    wait_batch(p, &h);
    hand_ready(p, &h, true);
    return atomic_load(&p->bad);
}

pk_result pk_esdk_make_gcms(const pk_secbuf *derived, bool encrypt, unsigned threads, pk_gcm **gcm)
{
    for (unsigned i = 0; i < threads; i++) PK_GUARD(pk_gcm_new(derived->data, encrypt, &gcm[i]));
    return PK_OK;
}

void pk_esdk_free_gcms(pk_gcm **gcm)
{
    for (unsigned i = 0; i < PK_ESDK_THREADS_MAX; i++) {
        pk_gcm_free(gcm[i]);
        gcm[i] = NULL;
    }
}
