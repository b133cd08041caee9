/*
 * Frame AAD and IV, and the worker threads that seal or open the frames
 * of a batch in parallel (each frame's IV is its sequence number, so the
 * frames of a message are independent).
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

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
    size_t per = PK_ESDK_BATCH_BYTES / fl, n = (per ? per : 1) * threads, cap = PK_ESDK_FRAME_MAX / fl;
    return n <= cap ? n : (cap ? cap : 1);
}

static void *worker(void *arg)
{
    pk_esdk_worker_arg *a = arg;
    pk_esdk_pool *p = a->p;
    uint64_t seen = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        pk_esdk_job *j;
        while (p->gen == seen && !p->stop) pthread_cond_wait(&p->go, &p->mu);
        if (p->stop) break;
        seen = p->gen;
        j = &p->jobs[a->i + 1];
        pthread_mutex_unlock(&p->mu);
        if (j->count > 0) j->fn(j);
        pthread_mutex_lock(&p->mu);
        if (--p->pending == 0) pthread_cond_signal(&p->done);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

void pk_esdk_pool_init(pk_esdk_pool *p, unsigned threads)
{
    memset(p, 0, sizeof(*p));
    p->threads = threads;
    if (threads < 2) return;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->go, NULL);
    pthread_cond_init(&p->done, NULL);
    p->inited = true;
    /* Fewer workers than asked (thread limit) only means the caller runs their jobs. */
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
    p->stop = true;
    pthread_cond_broadcast(&p->go);
    pthread_mutex_unlock(&p->mu);
    for (unsigned i = 0; i < p->nworkers; i++) pthread_join(p->tid[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->go);
    pthread_cond_destroy(&p->done);
    p->inited = false;
}

/* Split count frames over the threads; returns the first bad index (SIZE_MAX when none). */
size_t pk_esdk_run_jobs(pk_esdk_pool *p, void *owner, pk_esdk_job_fn fn, pk_gcm **gcm, size_t count)
{
    size_t t = p->threads < count ? p->threads : count, per, at = 0, bad = SIZE_MAX;
    if (t == 0) return SIZE_MAX;
    per = (count + t - 1) / t;
    for (size_t i = 0; i < p->threads; i++) {
        size_t n = i < t ? (count - at < per ? count - at : per) : 0;
        p->jobs[i] = (pk_esdk_job){fn, owner, gcm[i], at, n, SIZE_MAX};
        at += n;
    }
    bool wake = p->nworkers > 0 && t > 1; /* a single job runs here, the workers sleep on */
    if (wake) {
        pthread_mutex_lock(&p->mu);
        p->pending = p->nworkers;
        p->gen++;
        pthread_cond_broadcast(&p->go);
        pthread_mutex_unlock(&p->mu);
    }
    fn(&p->jobs[0]);
    for (size_t i = wake ? p->nworkers + 1 : 1; i < t; i++) fn(&p->jobs[i]);
    if (wake) {
        pthread_mutex_lock(&p->mu);
        while (p->pending > 0) pthread_cond_wait(&p->done, &p->mu);
        pthread_mutex_unlock(&p->mu);
    }
    for (size_t i = 0; i < t; i++)
        if (p->jobs[i].bad < bad) bad = p->jobs[i].bad;
    return bad;
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
