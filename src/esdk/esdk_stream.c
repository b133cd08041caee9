/*
 * Streaming encryption and decryption of framed ESDK v2 messages.
 *
 * Frames are gathered into batches of about 1 MiB per thread; a batch's
 * frames are sealed or opened in parallel (each frame's IV is its sequence
 * number, so frames are independent) and written in order, so the output
 * does not depend on the thread count. Memory is bounded by the batch and
 * the caller's chunk, never by the message.
 */
#include "config.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/crypto.h"
#include "crypto/crypto_esdk.h"
#include "esdk/esdk.h"
#include "util/codec.h"

#define BATCH_BYTES (1024u * 1024) /* per thread */
#define SEQ_END 0xffffffffu
#define SEQ_MAX 0xfffffffeu
#define REG_OVERHEAD (4 + PK_GCM_IV_LEN + PK_GCM_TAG_LEN)
#define FINAL_HEAD (4 + 4 + PK_GCM_IV_LEN + 4)

static const char AAD_FRAME[] = "AWSKMSEncryptionClient Frame";
static const char AAD_FINAL[] = "AWSKMSEncryptionClient Final Frame";

/* Body AAD: message id || content string || sequence number || content length. */
static size_t body_aad(uint8_t *out, const uint8_t *msg_id, bool final, uint32_t seq, uint64_t len)
{
    const char *s = final ? AAD_FINAL : AAD_FRAME;
    size_t sl = strlen(s);
    memcpy(out, msg_id, PK_ESDK_MSG_ID_LEN);
    memcpy(out + PK_ESDK_MSG_ID_LEN, s, sl);
    pk_store_be32(out + PK_ESDK_MSG_ID_LEN + sl, seq);
    pk_store_be64(out + PK_ESDK_MSG_ID_LEN + sl + 4, len);
    return PK_ESDK_MSG_ID_LEN + sl + 12;
}

#define AAD_MAX (PK_ESDK_MSG_ID_LEN + sizeof(AAD_FINAL) + 12)

static void seq_iv(uint8_t iv[PK_GCM_IV_LEN], uint32_t seq)
{
    memset(iv, 0, PK_GCM_IV_LEN - 4);
    pk_store_be32(iv + PK_GCM_IV_LEN - 4, seq);
}

/* Frames per batch: about BATCH_BYTES per thread, never more than 64 MiB of plaintext in all (big frames). */
static size_t batch_frames(uint32_t fl, unsigned threads)
{
    size_t per = BATCH_BYTES / fl, n = (per ? per : 1) * threads, cap = PK_ESDK_FRAME_MAX / fl;
    return n <= cap ? n : (cap ? cap : 1);
}

/* ---- parallel batches ---- */

typedef struct job job;
typedef void (*job_fn)(job *j);
struct job {
    job_fn fn;
    void *owner;
    pk_gcm *gcm;
    size_t first, count;
    size_t bad; /* first failing frame index, or SIZE_MAX */
};

/*
 * Worker threads live as long as the stream: starting threads for each
 * batch would cost as much as sealing it. The caller's thread runs job 0.
 */
typedef struct pool pool;
typedef struct worker_arg {
    pool *p;
    unsigned i;
} worker_arg;
struct pool {
    unsigned threads, nworkers;
    bool inited, stop;
    pthread_t tid[PK_ESDK_THREADS_MAX];
    worker_arg args[PK_ESDK_THREADS_MAX];
    pthread_mutex_t mu;
    pthread_cond_t go, done;
    uint64_t gen;
    unsigned pending;
    job jobs[PK_ESDK_THREADS_MAX];
};

static void *worker(void *arg)
{
    worker_arg *a = arg;
    pool *p = a->p;
    uint64_t seen = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        job *j;
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

static void pool_init(pool *p, unsigned threads)
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
        p->args[i] = (worker_arg){p, i};
        if (pthread_create(&p->tid[i], NULL, worker, &p->args[i]) != 0) break;
        p->nworkers = i + 1;
    }
}

static void pool_free(pool *p)
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
static size_t run_jobs(pool *p, void *owner, job_fn fn, pk_gcm **gcm, size_t count)
{
    size_t t = p->threads < count ? p->threads : count, per, at = 0, bad = SIZE_MAX;
    if (t == 0) return SIZE_MAX;
    per = (count + t - 1) / t;
    for (size_t i = 0; i < p->threads; i++) {
        size_t n = i < t ? (count - at < per ? count - at : per) : 0;
        p->jobs[i] = (job){fn, owner, gcm[i], at, n, SIZE_MAX};
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

static pk_result make_gcms(const pk_secbuf *derived, bool encrypt, unsigned threads, pk_gcm **gcm)
{
    for (unsigned i = 0; i < threads; i++) PK_GUARD(pk_gcm_new(derived->data, encrypt, &gcm[i]));
    return PK_OK;
}

static void free_gcms(pk_gcm **gcm)
{
    for (unsigned i = 0; i < PK_ESDK_THREADS_MAX; i++) {
        pk_gcm_free(gcm[i]);
        gcm[i] = NULL;
    }
}

/* ---- encryption ---- */

struct pk_esdk_enc {
    pk_esdk_header hd;
    bool signs;
    uint32_t fl;
    size_t fsz, nbatch;
    unsigned threads;
    pk_gcm *gcm[PK_ESDK_THREADS_MAX];
    pool pool;
    const uint8_t *src; /* the batch's plaintext: pt, or the caller's buffer */
    pk_ec384 *key;
    pk_sig *sig;
    pk_secbuf pt; /* at most one frame of plaintext split across calls */
    pk_buf ct;    /* a sealed batch */
    uint32_t seq; /* next sequence number */
    uint64_t frames;
    pk_esdk_sink sink;
    void *arg;
    bool failed, done;
};

static pk_result enc_emit(pk_esdk_enc *e, const uint8_t *p, size_t n)
{
    if (e->sig != NULL) PK_GUARD(pk_sig_update(e->sig, p, n));
    return e->sink(e->arg, p, n);
}

static void enc_job(job *j)
{
    pk_esdk_enc *e = j->owner;
    uint8_t aad[AAD_MAX];
    for (size_t i = j->first; i < j->first + j->count; i++) {
        uint8_t *o = e->ct.data + i * e->fsz;
        uint32_t seq = e->seq + (uint32_t)i;
        size_t al = body_aad(aad, e->hd.msg_id, false, seq, e->fl);
        pk_store_be32(o, seq);
        seq_iv(o + 4, seq);
        if (pk_failed(pk_gcm_seal(j->gcm, o + 4, aad, al, e->src + i * e->fl, e->fl, o + 16, o + 16 + e->fl))) {
            j->bad = i;
            return;
        }
    }
}

static pk_result enc_regular(pk_esdk_enc *e, const uint8_t *src, size_t k)
{
    if (k == 0) return PK_OK;
    e->src = src;
    PK_ENSURE((uint64_t)e->seq + k <= SEQ_MAX, P11KMS_ERR_LIMIT, "message too large: more than %u frames", SEQ_MAX);
    e->ct.len = 0;
    PK_GUARD(pk_buf_reserve(&e->ct, k * e->fsz));
    PK_ENSURE(run_jobs(&e->pool, e, enc_job, e->gcm, k) == SIZE_MAX, P11KMS_ERR_INTERNAL,
              "OpenSSL AES-256-GCM encryption failed");
    e->seq += (uint32_t)k;
    e->frames += k;
    return enc_emit(e, e->ct.data, k * e->fsz);
}

pk_result pk_esdk_enc_new(pk_esdk_header *hd, const pk_esdk_edk *edk, size_t nedk,
                          const uint8_t data_key[PK_ESDK_KEY_LEN], pk_ec384 *sign_key, unsigned threads,
                          pk_esdk_sink sink, void *arg, pk_esdk_enc **out)
{
    pk_esdk_enc *e = calloc(1, sizeof(*e));
    pk_secbuf derived = PK_SECBUF_INIT;
    uint8_t tag[16];
    pk_result r = PK_OK;

    *out = NULL;
    if (e == NULL) {
        pk_ec384_free(sign_key);
        return pk_fail(P11KMS_ERR_NO_MEMORY, "out of memory");
    }
    e->key = sign_key;
    e->hd = *hd; /* takes ownership */
    memset(hd, 0, sizeof(*hd));
    e->sink = sink;
    e->arg = arg;
    e->seq = 1;
    e->threads = threads == 0 ? 1 : threads;
    PK_CHECK(e->threads <= PK_ESDK_THREADS_MAX, P11KMS_ERR_INVALID_ARGUMENT, "threads must be 1..%d",
             PK_ESDK_THREADS_MAX);
    PK_CHECK(pk_esdk_suite_known(e->hd.suite, &e->signs), P11KMS_ERR_INVALID_ARGUMENT,
             "algorithm suite 0x%04x is not supported (0x0478 or 0x0578)", e->hd.suite);
    PK_CHECK(e->signs == (sign_key != NULL), P11KMS_ERR_INTERNAL, "internal error: signing key and suite disagree");
    e->fl = e->hd.frame_len;
    PK_CHECK(e->fl >= 1 && e->fl <= PK_ESDK_FRAME_MAX, P11KMS_ERR_INVALID_ARGUMENT,
             "frame length must be 1..%u", PK_ESDK_FRAME_MAX);
    e->fsz = REG_OVERHEAD + e->fl;
    e->nbatch = batch_frames(e->fl, e->threads);
    PK_TRY(pk_esdk_derive(e->hd.suite, data_key, e->hd.msg_id, &derived, e->hd.commit));
    PK_TRY(pk_esdk_header_build(&e->hd, edk, nedk));
    PK_TRY(pk_esdk_header_tag(&derived, &e->hd.body, tag));
    PK_TRY(make_gcms(&derived, true, e->threads, e->gcm));
    pool_init(&e->pool, e->threads);
    PK_TRY(pk_secbuf_alloc(&e->pt, e->fl));
    if (e->signs) PK_TRY(pk_sig_begin(e->key, true, &e->sig));
    PK_TRY(enc_emit(e, e->hd.body.data, e->hd.body.len));
    PK_TRY(enc_emit(e, tag, sizeof(tag)));
    *out = e;
out:
    pk_secbuf_free(&derived);
    if (pk_failed(r)) pk_esdk_enc_free(e);
    return r;
}

/*
 * Frames are sealed straight from the caller's buffer; only a frame split
 * across calls is gathered in pt (at most one frame). A full frame is held
 * back until more input shows it is not the last one.
 */
pk_result pk_esdk_enc_update(pk_esdk_enc *e, const uint8_t *p, size_t n)
{
    pk_result r = PK_OK;
    PK_ENSURE(!e->failed && !e->done, P11KMS_ERR_INVALID_STATE, "the encryption stream has %s",
              e->done ? "been finished" : "failed");
    while (n > 0 && pk_ok(r)) {
        size_t k, take;
        if (e->pt.len == e->fl) { /* a held frame, and more follows: it is a regular frame */
            r = enc_regular(e, e->pt.data, 1);
            e->pt.len = 0;
            continue;
        }
        if (e->pt.len > 0) { /* complete the split frame */
            take = n < e->fl - e->pt.len ? n : e->fl - e->pt.len;
            memcpy(e->pt.data + e->pt.len, p, take);
            e->pt.len += take;
            p += take;
            n -= take;
            continue;
        }
        k = (n - 1) / e->fl; /* whole frames with at least one byte after them */
        k = k < e->nbatch ? k : e->nbatch;
        if (k > 0) {
            r = enc_regular(e, p, k);
            p += k * e->fl;
            n -= k * e->fl;
            continue;
        }
        memcpy(e->pt.data, p, n); /* n <= fl: the start of a frame, or the last one */
        e->pt.len = n;
        n = 0;
    }
    if (pk_failed(r)) e->failed = true;
    return r;
}

static pk_result enc_finish(pk_esdk_enc *e)
{
    size_t nreg = e->pt.len ? (e->pt.len - 1) / e->fl : 0, last = e->pt.len - nreg * e->fl, al;
    uint8_t aad[AAD_MAX], sig[PK_EC384_SIG_MAX], foot[2];
    pk_buf *b = &e->ct;
    size_t sl;

    PK_GUARD(enc_regular(e, e->pt.data, nreg));
    PK_ENSURE(e->seq <= SEQ_MAX, P11KMS_ERR_LIMIT, "message too large: more than %u frames", SEQ_MAX);
    b->len = 0;
    PK_GUARD(pk_buf_reserve(b, FINAL_HEAD + last + PK_GCM_TAG_LEN));
    pk_store_be32(b->data, SEQ_END);
    pk_store_be32(b->data + 4, e->seq);
    seq_iv(b->data + 8, e->seq);
    pk_store_be32(b->data + 20, (uint32_t)last);
    al = body_aad(aad, e->hd.msg_id, true, e->seq, last);
    PK_GUARD(pk_gcm_seal(e->gcm[0], b->data + 8, aad, al, e->pt.data + nreg * e->fl, last, b->data + FINAL_HEAD,
                         b->data + FINAL_HEAD + last));
    e->frames++;
    PK_GUARD(enc_emit(e, b->data, FINAL_HEAD + last + PK_GCM_TAG_LEN));
    if (!e->signs) return PK_OK;
    PK_GUARD(pk_sig_sign(e->sig, sig, &sl));
    foot[0] = (uint8_t)(sl >> 8);
    foot[1] = (uint8_t)sl;
    PK_GUARD(e->sink(e->arg, foot, 2));
    return e->sink(e->arg, sig, sl);
}

pk_result pk_esdk_enc_final(pk_esdk_enc *e)
{
    pk_result r;
    PK_ENSURE(!e->failed && !e->done, P11KMS_ERR_INVALID_STATE, "the encryption stream has %s",
              e->done ? "been finished" : "failed");
    r = enc_finish(e);
    pk_wipe(e->pt.data, e->pt.cap);
    e->pt.len = 0;
    if (pk_failed(r)) e->failed = true;
    else e->done = true;
    return r;
}

uint64_t pk_esdk_enc_frames(const pk_esdk_enc *e) { return e->frames; }

void pk_esdk_enc_free(pk_esdk_enc *e)
{
    if (e == NULL) return;
    pool_free(&e->pool);
    free_gcms(e->gcm);
    pk_sig_free(e->sig);
    pk_ec384_free(e->key);
    pk_secbuf_free(&e->pt);
    pk_buf_free(&e->ct);
    pk_esdk_header_clear(&e->hd);
    free(e);
}

/* ---- decryption ---- */

typedef enum dstate { D_HEADER, D_BODY, D_FOOTER, D_DONE, D_PASS } dstate;

struct pk_esdk_dec {
    unsigned threads;
    pk_esdk_keyfn keyfn;
    void *key_arg;
    pk_esdk_sink sink;
    void *arg;
    pk_esdk_rewrapfn rewrap;
    void *rw_arg;
    dstate st;
    bool have_header, signs, failed;
    pk_esdk_header hd;
    uint32_t fl;
    size_t fsz, nbatch;
    pk_gcm *gcm[PK_ESDK_THREADS_MAX];
    pool pool;
    pk_sig *sig;
    pk_buf in; /* ciphertext kept between calls (an incomplete unit) */
    /* What is being parsed: `in`, or the caller's buffer when nothing was kept. */
    const uint8_t *src;
    size_t src_len, off;
    pk_secbuf pt; /* a batch of authenticated plaintext */
    const uint8_t *batch; /* the batch's first frame (in `in`) */
    uint32_t seq;
    uint64_t frames, bytes;
};

pk_result pk_esdk_dec_new(unsigned threads, pk_esdk_keyfn keyfn, void *key_arg, pk_esdk_sink sink, void *arg,
                          pk_esdk_dec **out)
{
    pk_esdk_dec *d;
    *out = NULL;
    PK_ENSURE(threads <= PK_ESDK_THREADS_MAX, P11KMS_ERR_INVALID_ARGUMENT, "threads must be 1..%d",
              PK_ESDK_THREADS_MAX);
    d = calloc(1, sizeof(*d));
    PK_ENSURE_ALLOC(d);
    d->threads = threads == 0 ? 1 : threads;
    d->keyfn = keyfn;
    d->key_arg = key_arg;
    d->sink = sink;
    d->arg = arg;
    d->seq = 1;
    *out = d;
    return PK_OK;
}

void pk_esdk_dec_set_rewrap(pk_esdk_dec *d, pk_esdk_rewrapfn fn, void *arg)
{
    d->rewrap = fn;
    d->rw_arg = arg;
}

static pk_result signer_from_ctx(pk_esdk_dec *d)
{
    const char *b64 = NULL;
    uint8_t point[PK_EC384_POINT_LEN + 3];
    size_t len = 0;
    pk_ec384 *k = NULL;
    pk_result r;

    for (size_t i = 0; i < d->hd.nctx; i++)
        if (strcmp(d->hd.ctx[i].key, PK_ESDK_PUBKEY_CTX) == 0) b64 = d->hd.ctx[i].value;
    PK_ENSURE(b64 != NULL, P11KMS_ERR_CIPHERTEXT_INVALID,
              "message header: signed suite 0x0578 without an %s context pair", PK_ESDK_PUBKEY_CTX);
    PK_ENSURE(strlen(b64) == pk_base64_len(PK_EC384_POINT_LEN) &&
                  pk_ok(pk_base64_decode(b64, strlen(b64), point, &len)) && len == PK_EC384_POINT_LEN,
              P11KMS_ERR_CIPHERTEXT_INVALID, "message header: %s is not a base64 P-384 point", PK_ESDK_PUBKEY_CTX);
    PK_GUARD(pk_ec384_from_point(point, len, &k));
    r = pk_sig_begin(k, false, &d->sig);
    pk_ec384_free(k); /* the verifier holds its own reference */
    return r;
}

/* The header is parsed: fetch the data key, check the commitment and the header tag. */
static pk_result dec_open_header(pk_esdk_dec *d, const uint8_t *raw, size_t used)
{
    pk_secbuf key = PK_SECBUF_INIT, derived = PK_SECBUF_INIT;
    uint8_t commit[32], tag[16];
    pk_result r = PK_OK;

    pk_esdk_suite_known(d->hd.suite, &d->signs);
    d->fl = d->hd.frame_len;
    d->fsz = REG_OVERHEAD + d->fl;
    d->nbatch = batch_frames(d->fl, d->threads);
    if (d->signs) PK_TRY(signer_from_ctx(d));
    PK_TRY(d->keyfn(d->key_arg, &d->hd, &key));
    PK_CHECK(key.len == PK_ESDK_KEY_LEN, P11KMS_ERR_CIPHERTEXT_INVALID, "the data key is %zu bytes, not 32", key.len);
    PK_TRY(pk_esdk_derive(d->hd.suite, key.data, d->hd.msg_id, &derived, commit));
    PK_CHECK(pk_ct_equal(commit, d->hd.commit, 32), P11KMS_ERR_CIPHERTEXT_INVALID,
             "key commitment does not match: the data key does not belong to this message");
    PK_TRY(pk_esdk_header_tag(&derived, &d->hd.body, tag));
    PK_CHECK(pk_ct_equal(tag, d->hd.tag, 16), P11KMS_ERR_CIPHERTEXT_INVALID,
             "message header failed authentication (the header was changed)");
    if (d->sig != NULL) PK_TRY(pk_sig_update(d->sig, raw, used));
    d->have_header = true;
    if (d->rewrap != NULL) {
        PK_TRY(d->rewrap(d->rw_arg, &d->hd, &key));
        d->st = D_PASS;
    } else {
        PK_TRY(make_gcms(&derived, false, d->threads, d->gcm));
        pool_init(&d->pool, d->threads);
        PK_TRY(pk_secbuf_alloc(&d->pt, d->nbatch * d->fl));
        d->st = D_BODY;
    }
out:
    pk_secbuf_free(&key);
    pk_secbuf_free(&derived);
    return r;
}

static void dec_job(job *j)
{
    pk_esdk_dec *d = j->owner;
    uint8_t aad[AAD_MAX];
    for (size_t i = j->first; i < j->first + j->count; i++) {
        const uint8_t *f = d->batch + i * d->fsz;
        size_t al = body_aad(aad, d->hd.msg_id, false, d->seq + (uint32_t)i, d->fl);
        if (!pk_gcm_open(j->gcm, f + 4, aad, al, f + 16, d->fl, f + 16 + d->fl, d->pt.data + i * d->fl)) {
            j->bad = i;
            return;
        }
    }
}

/* Release plaintext that has been authenticated. */
static pk_result dec_release(pk_esdk_dec *d, const uint8_t *p, size_t n)
{
    pk_result r = n > 0 ? d->sink(d->arg, p, n) : PK_OK;
    d->bytes += n;
    return r;
}

/*
 * A frame numbered `got` where d->seq was expected. Decide between a
 * duplicated, reordered or dropped frame; for a frame from the future, the
 * next frame's number tells a swap from a loss. *more: need more input.
 */
static pk_result seq_error(pk_esdk_dec *d, uint32_t got, size_t next, bool eof, bool *more)
{
    const uint8_t *q = d->src + d->off;
    size_t avail = d->src_len - d->off;
    uint32_t after;

    if (got < d->seq && got + 1 == d->seq)
        return pk_fail(P11KMS_ERR_CIPHERTEXT_INVALID, "frame %u appears twice (duplicated frame)", got);
    if (got < d->seq)
        return pk_fail(P11KMS_ERR_CIPHERTEXT_INVALID,
                       "frames out of order: frame %u where frame %u was expected (reordered frames)", got, d->seq);
    if (avail < next + 8 && !eof) {
        *more = true;
        return PK_OK;
    }
    if (avail >= next + 4) {
        after = pk_load_be32(q + next);
        if (after == SEQ_END && avail >= next + 8) after = pk_load_be32(q + next + 4);
        if (after == d->seq)
            return pk_fail(P11KMS_ERR_CIPHERTEXT_INVALID,
                           "frames out of order: frame %u where frame %u was expected (reordered frames)", got,
                           d->seq);
    }
    return pk_fail(P11KMS_ERR_CIPHERTEXT_INVALID, "frame %u is missing (dropped frame)", d->seq);
}

static pk_result check_iv(const uint8_t *iv, uint32_t seq)
{
    uint8_t want[PK_GCM_IV_LEN];
    seq_iv(want, seq);
    PK_ENSURE(memcmp(iv, want, sizeof(want)) == 0, P11KMS_ERR_CIPHERTEXT_INVALID,
              "frame %u: its IV is not its sequence number (changed frame)", seq);
    return PK_OK;
}

static pk_result dec_final_frame(pk_esdk_dec *d, bool eof, bool *progress)
{
    const uint8_t *q = d->src + d->off;
    size_t avail = d->src_len - d->off, total, al;
    uint32_t seq, len;
    uint8_t aad[AAD_MAX];
    bool more = false;

    if (avail < FINAL_HEAD) {
        PK_ENSURE(!eof, P11KMS_ERR_CIPHERTEXT_INVALID, "truncated message: the final frame is incomplete");
        return PK_OK;
    }
    seq = pk_load_be32(q + 4);
    len = pk_load_be32(q + 20);
    PK_ENSURE(len <= d->fl, P11KMS_ERR_CIPHERTEXT_INVALID,
              "the final frame's length %u is larger than the frame length %u", len, d->fl);
    total = FINAL_HEAD + len + PK_GCM_TAG_LEN;
    if (avail < total) {
        PK_ENSURE(!eof, P11KMS_ERR_CIPHERTEXT_INVALID, "truncated message: the final frame is incomplete");
        return PK_OK;
    }
    if (seq != d->seq) {
        PK_GUARD(seq_error(d, seq, total, eof, &more));
        return PK_OK;
    }
    PK_GUARD(check_iv(q + 8, seq));
    al = body_aad(aad, d->hd.msg_id, true, seq, len);
    PK_ENSURE(pk_gcm_open(d->gcm[0], q + 8, aad, al, q + FINAL_HEAD, len, q + FINAL_HEAD + len, d->pt.data),
              P11KMS_ERR_CIPHERTEXT_INVALID, "frame %u (final) failed authentication (changed ciphertext)", seq);
    if (d->sig != NULL) PK_GUARD(pk_sig_update(d->sig, q, total));
    d->off += total;
    d->frames++;
    d->st = d->signs ? D_FOOTER : D_DONE;
    *progress = true;
    return dec_release(d, d->pt.data, len);
}

/* Consume a run of in-order regular frames, or the final frame. */
static pk_result dec_body(pk_esdk_dec *d, bool eof, bool *progress)
{
    const uint8_t *q = d->src + d->off;
    size_t avail = d->src_len - d->off, k = 0, bad;
    bool more = false;

    while (k < d->nbatch && avail - k * d->fsz >= d->fsz) {
        uint32_t s = pk_load_be32(q + k * d->fsz);
        if (s == SEQ_END || s != d->seq + k || (uint64_t)d->seq + k > SEQ_MAX) break;
        if (pk_failed(check_iv(q + k * d->fsz + 4, s))) break;
        k++;
    }
    if (k > 0) {
        d->batch = q;
        bad = run_jobs(&d->pool, d, dec_job, d->gcm, k);
        if (bad != SIZE_MAX) {
            PK_GUARD(dec_release(d, d->pt.data, bad * d->fl));
            return pk_fail(P11KMS_ERR_CIPHERTEXT_INVALID, "frame %u failed authentication (changed ciphertext)",
                           d->seq + (uint32_t)bad);
        }
        if (d->sig != NULL) PK_GUARD(pk_sig_update(d->sig, q, k * d->fsz));
        d->off += k * d->fsz;
        d->seq += (uint32_t)k;
        d->frames += k;
        *progress = true;
        return dec_release(d, d->pt.data, k * d->fl);
    }
    if (avail < 4) {
        PK_ENSURE(!eof || avail > 0, P11KMS_ERR_CIPHERTEXT_INVALID, "truncated message: the final frame is missing");
        PK_ENSURE(!eof, P11KMS_ERR_CIPHERTEXT_INVALID, "truncated message: frame %u is incomplete", d->seq);
        return PK_OK;
    }
    if (pk_load_be32(q) == SEQ_END) return dec_final_frame(d, eof, progress);
    if (avail < d->fsz) {
        PK_ENSURE(!eof, P11KMS_ERR_CIPHERTEXT_INVALID, "truncated message: frame %u is incomplete", d->seq);
        return PK_OK;
    }
    if (pk_load_be32(q) != d->seq) return seq_error(d, pk_load_be32(q), d->fsz, eof, &more);
    if ((uint64_t)d->seq > SEQ_MAX) return pk_fail(P11KMS_ERR_CIPHERTEXT_INVALID, "message has too many frames");
    return check_iv(q + 4, d->seq);
}

static pk_result dec_footer(pk_esdk_dec *d, bool eof, bool *progress)
{
    const uint8_t *q = d->src + d->off;
    size_t avail = d->src_len - d->off, len;

    if (avail < 2 || avail < 2 + (size_t)((q[0] << 8) | q[1])) {
        PK_ENSURE(!eof, P11KMS_ERR_CIPHERTEXT_INVALID, "truncated message: the signature is missing");
        return PK_OK;
    }
    len = (size_t)((q[0] << 8) | q[1]);
    PK_ENSURE(pk_sig_verify(d->sig, q + 2, len), P11KMS_ERR_CIPHERTEXT_INVALID,
              "the message signature does not verify (the message was changed)");
    d->off += 2 + len;
    d->st = D_DONE;
    *progress = true;
    return PK_OK;
}

static pk_result dec_step(pk_esdk_dec *d, bool eof, bool *progress)
{
    size_t used = 0, avail = d->src_len - d->off;
    *progress = false;
    switch (d->st) {
    case D_HEADER:
        PK_GUARD(pk_esdk_header_parse(d->src + d->off, avail, eof, &d->hd, &used));
        if (used == 0) return PK_OK;
        PK_GUARD(dec_open_header(d, d->src + d->off, used));
        d->off += used;
        *progress = true;
        return PK_OK;
    case D_BODY:
        return dec_body(d, eof, progress);
    case D_FOOTER:
        return dec_footer(d, eof, progress);
    case D_PASS:
        if (avail > 0) PK_GUARD(d->sink(d->arg, d->src + d->off, avail));
        d->off = d->src_len;
        return PK_OK;
    case D_DONE:
        PK_ENSURE(avail == 0, P11KMS_ERR_CIPHERTEXT_INVALID, "trailing data after the end of the message");
        return PK_OK;
    }
    return PK_OK;
}

static pk_result dec_run(pk_esdk_dec *d, bool eof)
{
    bool progress = true;
    pk_result r = PK_OK;
    d->off = 0;
    while (progress && pk_ok(r)) r = dec_step(d, eof, &progress);
    if (pk_failed(r)) d->failed = true;
    return r;
}

/* Parse `in` (topped up with at most `take` new bytes) and keep what is left. */
static pk_result dec_kept(pk_esdk_dec *d, const uint8_t *p, size_t take, bool eof)
{
    pk_result r;
    if (take > 0 && pk_failed(pk_buf_append(&d->in, p, take))) {
        d->failed = true;
        return pk_fail(P11KMS_ERR_NO_MEMORY, "out of memory");
    }
    d->src = d->in.data;
    d->src_len = d->in.len;
    r = dec_run(d, eof);
    memmove(d->in.data, d->in.data + d->off, d->in.len - d->off);
    d->in.len -= d->off;
    return r;
}

pk_result pk_esdk_dec_update(pk_esdk_dec *d, const uint8_t *p, size_t n)
{
    pk_result r = PK_OK;
    PK_ENSURE(!d->failed, P11KMS_ERR_INVALID_STATE, "the decryption stream has failed");
    while (n > 0 && pk_ok(r)) {
        size_t take;
        if (d->in.len == 0) { /* parse the caller's bytes in place; keep only an incomplete tail */
            d->src = p;
            d->src_len = n;
            r = dec_run(d, false);
            if (pk_ok(r) && pk_failed(pk_buf_append(&d->in, p + d->off, n - d->off))) {
                d->failed = true;
                r = pk_fail(P11KMS_ERR_NO_MEMORY, "out of memory");
            }
            break;
        }
        /* Complete the kept unit with a little more input, then go back to parsing in place. */
        /* Exactly what completes a regular frame, so that `in` empties and parsing goes back in place. */
        take = d->st == D_BODY && d->in.len < d->fsz ? d->fsz - d->in.len : d->st == D_HEADER ? 65536 : 64;
        take = n < take ? n : take;
        r = dec_kept(d, p, take, false);
        p += take;
        n -= take;
    }
    return r;
}

pk_result pk_esdk_dec_final(pk_esdk_dec *d)
{
    PK_ENSURE(!d->failed, P11KMS_ERR_INVALID_STATE, "the decryption stream has failed");
    PK_GUARD(dec_kept(d, NULL, 0, true));
    PK_ENSURE(d->st == D_DONE || d->st == D_PASS, P11KMS_ERR_CIPHERTEXT_INVALID,
              "truncated message: the final frame is missing");
    return PK_OK;
}

const pk_esdk_header *pk_esdk_dec_header(const pk_esdk_dec *d) { return d->have_header ? &d->hd : NULL; }
uint64_t pk_esdk_dec_frames(const pk_esdk_dec *d) { return d->frames; }
uint64_t pk_esdk_dec_bytes(const pk_esdk_dec *d) { return d->bytes; }

void pk_esdk_dec_free(pk_esdk_dec *d)
{
    if (d == NULL) return;
    pool_free(&d->pool);
    free_gcms(d->gcm);
    pk_sig_free(d->sig);
    pk_secbuf_free(&d->pt);
    pk_buf_free(&d->in);
    pk_esdk_header_clear(&d->hd);
    free(d);
}
