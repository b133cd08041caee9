/*
 * Streaming encryption of framed ESDK v2 messages. Whole frames are sealed
 * straight from the caller's buffer, in batches of about 1 MiB per thread,
 * and written in order: the output does not depend on the thread count.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "crypto/crypto.h"
#include "crypto/crypto_esdk.h"
#include "esdk/esdk.h"
#include "esdk/esdk_impl.h"

struct pk_esdk_enc {
    pk_esdk_header hd;
    bool signs;
    uint32_t fl;
    size_t fsz, nbatch;
    unsigned threads;
    pk_gcm *gcm[PK_ESDK_THREADS_MAX];
    pk_esdk_pool pool;
    const uint8_t *lead; /* the batch's first frame when it is the held one (pt), else NULL */
    const uint8_t *src;  /* the batch's other frames: pt, or the caller's buffer */
    pk_ec384 *key;
    pk_sig *sig;
    pk_secbuf pt; /* at most one frame of plaintext split across calls */
    pk_buf ct;    /* a sealed batch */
    size_t handed; /* frames of ct already written out */
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

/* Frame i of the batch: the held frame first when there is one, then the caller's frames. */
static const uint8_t *enc_frame_src(const pk_esdk_enc *e, size_t i)
{
    if (e->lead == NULL) return e->src + i * e->fl;
    return i == 0 ? e->lead : e->src + (i - 1) * e->fl;
}

static size_t enc_frames(void *owner, pk_gcm *gcm, size_t first, size_t n)
{
    pk_esdk_enc *e = owner;
    uint8_t aad[PK_ESDK_AAD_MAX];
    for (size_t i = first; i < first + n; i++) {
        uint8_t *o = e->ct.data + i * e->fsz;
        uint32_t seq = e->seq + (uint32_t)i;
        size_t al = pk_esdk_body_aad(aad, e->hd.msg_id, false, seq, e->fl);
        pk_store_be32(o, seq);
        pk_esdk_seq_iv(o + 4, seq);
        if (pk_failed(pk_gcm_seal(gcm, o + 4, aad, al, enc_frame_src(e, i), e->fl, o + 16, o + 16 + e->fl))) return i;
    }
    return SIZE_MAX;
}

/* Frames [first, first + n) of the batch are sealed: write them out while the other threads go on. */
static pk_result enc_ready(void *owner, size_t first, size_t n)
{
    pk_esdk_enc *e = owner;
    e->handed = first + n;
    return enc_emit(e, e->ct.data + first * e->fsz, n * e->fsz);
}

/* Seal the held frame `lead` (when not NULL) and k frames of src as one batch. */
static pk_result enc_regular(pk_esdk_enc *e, const uint8_t *lead, const uint8_t *src, size_t k)
{
    size_t all = k + (lead != NULL), bad;
    pk_result r;
    if (all == 0) return PK_OK;
    e->lead = lead;
    e->src = src;
    PK_ENSURE((uint64_t)e->seq + all <= PK_ESDK_SEQ_MAX, P11KMS_ERR_LIMIT, "message too large: more than %u frames",
              PK_ESDK_SEQ_MAX);
    e->ct.len = 0;
    PK_GUARD(pk_buf_reserve(&e->ct, all * e->fsz));
    e->handed = 0;
    bad = pk_esdk_run_jobs(&e->pool, e, enc_frames, enc_ready, e->gcm, all, &r);
    PK_GUARD(r);
    PK_ENSURE(bad == SIZE_MAX, P11KMS_ERR_INTERNAL, "OpenSSL AES-256-GCM encryption failed");
    e->seq += (uint32_t)all;
    e->frames += all;
    return all > e->handed ? enc_emit(e, e->ct.data + e->handed * e->fsz, (all - e->handed) * e->fsz) : PK_OK;
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
    e->fsz = PK_ESDK_REG_OVERHEAD + e->fl;
    e->nbatch = pk_esdk_batch_frames(e->fl, e->threads);
    PK_TRY(pk_esdk_derive(e->hd.suite, data_key, e->hd.msg_id, &derived, e->hd.commit));
    PK_TRY(pk_esdk_header_build(&e->hd, edk, nedk));
    PK_TRY(pk_esdk_header_tag(&derived, &e->hd.body, tag));
    PK_TRY(pk_esdk_make_gcms(&derived, true, e->threads, e->gcm));
    pk_esdk_pool_init(&e->pool, e->threads, e->fl, e->nbatch);
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
        bool held = e->pt.len == e->fl; /* a held frame, and more follows: it is a regular frame */
        if (e->pt.len > 0 && !held) { /* complete the split frame */
            take = n < e->fl - e->pt.len ? n : e->fl - e->pt.len;
            memcpy(e->pt.data + e->pt.len, p, take);
            e->pt.len += take;
            p += take;
            n -= take;
            continue;
        }
        k = (n - 1) / e->fl; /* whole frames with at least one byte after them */
        k = k < e->nbatch - held ? k : e->nbatch - held;
        if (held || k > 0) { /* the held frame joins the batch: no thread waits on a batch of one */
            r = enc_regular(e, held ? e->pt.data : NULL, p, k);
            e->pt.len = 0;
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
    uint8_t aad[PK_ESDK_AAD_MAX], sig[PK_EC384_SIG_MAX], foot[2];
    pk_buf *b = &e->ct;
    size_t sl;

    PK_GUARD(enc_regular(e, NULL, e->pt.data, nreg));
    PK_ENSURE(e->seq <= PK_ESDK_SEQ_MAX, P11KMS_ERR_LIMIT, "message too large: more than %u frames", PK_ESDK_SEQ_MAX);
    b->len = 0;
    PK_GUARD(pk_buf_reserve(b, PK_ESDK_FINAL_HEAD + last + PK_GCM_TAG_LEN));
    pk_store_be32(b->data, PK_ESDK_SEQ_END);
    pk_store_be32(b->data + 4, e->seq);
    pk_esdk_seq_iv(b->data + 8, e->seq);
    pk_store_be32(b->data + 20, (uint32_t)last);
    al = pk_esdk_body_aad(aad, e->hd.msg_id, true, e->seq, last);
    PK_GUARD(pk_gcm_seal(e->gcm[0], b->data + 8, aad, al, e->pt.data + nreg * e->fl, last, b->data + PK_ESDK_FINAL_HEAD,
                         b->data + PK_ESDK_FINAL_HEAD + last));
    e->frames++;
    PK_GUARD(enc_emit(e, b->data, PK_ESDK_FINAL_HEAD + last + PK_GCM_TAG_LEN));
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
    pk_esdk_pool_free(&e->pool);
    pk_esdk_free_gcms(e->gcm);
    pk_sig_free(e->sig);
    pk_ec384_free(e->key);
    pk_secbuf_free(&e->pt);
    pk_buf_free(&e->ct);
    pk_esdk_header_clear(&e->hd);
    free(e);
}
