/*
 * Streaming decryption of framed ESDK v2 messages: the caller's bytes are
 * parsed in place and only an incomplete unit is kept; a frame's plaintext
 * is released only after its tag verified; each kind of damage has its
 * own message.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "crypto/crypto.h"
#include "crypto/crypto_esdk.h"
#include "esdk/esdk.h"
#include "esdk/esdk_impl.h"
#include "util/codec.h"

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
    pk_esdk_pool pool;
    pk_sig *sig;
    pk_buf in; /* ciphertext kept between calls (an incomplete unit) */
    /* What is being parsed: `in`, or the caller's buffer when nothing was kept. */
    const uint8_t *src;
    size_t src_len, off;
    pk_secbuf pt; /* a batch of authenticated plaintext */
    size_t handed; /* frames of pt already released */
    const uint8_t *lead;  /* a regular frame completed in `in`, to open ahead of the batch; or NULL */
    const uint8_t *batch; /* the batch's frames in place */
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
    d->fsz = PK_ESDK_REG_OVERHEAD + d->fl;
    d->nbatch = pk_esdk_batch_frames(d->fl, d->threads);
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
        PK_TRY(pk_esdk_make_gcms(&derived, false, d->threads, d->gcm));
        pk_esdk_pool_init(&d->pool, d->threads, d->fl, d->nbatch);
        PK_TRY(pk_secbuf_alloc(&d->pt, d->nbatch * d->fl));
        d->st = D_BODY;
    }
out:
    pk_secbuf_free(&key);
    pk_secbuf_free(&derived);
    return r;
}

/* Frame i of the batch: the completed kept frame first when there is one, then frames in place. */
static const uint8_t *dec_frame(const pk_esdk_dec *d, size_t i)
{
    if (d->lead == NULL) return d->batch + i * d->fsz;
    return i == 0 ? d->lead : d->batch + (i - 1) * d->fsz;
}

static size_t dec_frames(void *owner, pk_gcm *gcm, size_t first, size_t n)
{
    pk_esdk_dec *d = owner;
    uint8_t aad[PK_ESDK_AAD_MAX];
    for (size_t i = first; i < first + n; i++) {
        const uint8_t *f = dec_frame(d, i);
        size_t al = pk_esdk_body_aad(aad, d->hd.msg_id, false, d->seq + (uint32_t)i, d->fl);
        if (!pk_gcm_open(gcm, f + 4, aad, al, f + 16, d->fl, f + 16 + d->fl, d->pt.data + i * d->fl)) return i;
    }
    return SIZE_MAX;
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
        if (after == PK_ESDK_SEQ_END && avail >= next + 8) after = pk_load_be32(q + next + 4);
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
    pk_esdk_seq_iv(want, seq);
    PK_ENSURE(memcmp(iv, want, sizeof(want)) == 0, P11KMS_ERR_CIPHERTEXT_INVALID,
              "frame %u: its IV is not its sequence number (changed frame)", seq);
    return PK_OK;
}

static pk_result dec_final_frame(pk_esdk_dec *d, bool eof, bool *progress)
{
    const uint8_t *q = d->src + d->off;
    size_t avail = d->src_len - d->off, total, al;
    uint32_t seq, len;
    uint8_t aad[PK_ESDK_AAD_MAX];
    bool more = false;

    if (avail < PK_ESDK_FINAL_HEAD) {
        PK_ENSURE(!eof, P11KMS_ERR_CIPHERTEXT_INVALID, "truncated message: the final frame is incomplete");
        return PK_OK;
    }
    seq = pk_load_be32(q + 4);
    len = pk_load_be32(q + 20);
    PK_ENSURE(len <= d->fl, P11KMS_ERR_CIPHERTEXT_INVALID,
              "the final frame's length %u is larger than the frame length %u", len, d->fl);
    total = PK_ESDK_FINAL_HEAD + len + PK_GCM_TAG_LEN;
    if (avail < total) {
        PK_ENSURE(!eof, P11KMS_ERR_CIPHERTEXT_INVALID, "truncated message: the final frame is incomplete");
        return PK_OK;
    }
    if (seq != d->seq) {
        PK_GUARD(seq_error(d, seq, total, eof, &more));
        return PK_OK;
    }
    PK_GUARD(check_iv(q + 8, seq));
    al = pk_esdk_body_aad(aad, d->hd.msg_id, true, seq, len);
    PK_ENSURE(pk_gcm_open(d->gcm[0], q + 8, aad, al, q + PK_ESDK_FINAL_HEAD, len, q + PK_ESDK_FINAL_HEAD + len, d->pt.data),
              P11KMS_ERR_CIPHERTEXT_INVALID, "frame %u (final) failed authentication (changed ciphertext)", seq);
    if (d->sig != NULL) PK_GUARD(pk_sig_update(d->sig, q, total));
    d->off += total;
    d->frames++;
    d->st = d->signs ? D_FOOTER : D_DONE;
    *progress = true;
    return dec_release(d, d->pt.data, len);
}

/* How many in-order regular frames (at most max) start at q, the first numbered seq. */
static size_t dec_scan(const pk_esdk_dec *d, const uint8_t *q, size_t avail, uint32_t seq, size_t max)
{
    size_t k = 0;
    while (k < max && avail - k * d->fsz >= d->fsz) {
        uint32_t s = pk_load_be32(q + k * d->fsz);
        if (s == PK_ESDK_SEQ_END || s != seq + k || (uint64_t)seq + k > PK_ESDK_SEQ_MAX) break;
        if (pk_failed(check_iv(q + k * d->fsz + 4, s))) break;
        k++;
    }
    return k;
}

/* Frames [first, first + n) of the batch verified: release them while the other threads go on. */
static pk_result dec_ready(void *owner, size_t first, size_t n)
{
    pk_esdk_dec *d = owner;
    d->handed = first + n;
    return dec_release(d, d->pt.data + first * d->fl, n * d->fl);
}

/* Consume a run of in-order regular frames (after d->lead, when set), or the final frame. */
static pk_result dec_body(pk_esdk_dec *d, bool eof, bool *progress)
{
    const uint8_t *q = d->src + d->off, *lead = d->lead;
    size_t avail = d->src_len - d->off, nl = lead != NULL, k, all, bad;
    bool more = false;
    pk_result r;

    k = dec_scan(d, q, avail, d->seq + (uint32_t)nl, d->nbatch - nl);
    all = nl + k;
    if (all > 0) {
        d->batch = q;
        d->handed = 0;
        bad = pk_esdk_run_jobs(&d->pool, d, dec_frames, dec_ready, d->gcm, all, &r);
        d->lead = NULL;
        PK_GUARD(r);
        if (bad != SIZE_MAX) {
            PK_GUARD(dec_release(d, d->pt.data + d->handed * d->fl, (bad - d->handed) * d->fl));
            return pk_fail(P11KMS_ERR_CIPHERTEXT_INVALID, "frame %u failed authentication (changed ciphertext)",
                           d->seq + (uint32_t)bad);
        }
        if (d->sig != NULL && lead != NULL) PK_GUARD(pk_sig_update(d->sig, lead, d->fsz));
        if (d->sig != NULL) PK_GUARD(pk_sig_update(d->sig, q, k * d->fsz));
        d->off += k * d->fsz;
        d->seq += (uint32_t)all;
        d->frames += all;
        *progress = true;
        return dec_release(d, d->pt.data + d->handed * d->fl, (all - d->handed) * d->fl);
    }
    if (avail < 4) {
        PK_ENSURE(!eof || avail > 0, P11KMS_ERR_CIPHERTEXT_INVALID, "truncated message: the final frame is missing");
        PK_ENSURE(!eof, P11KMS_ERR_CIPHERTEXT_INVALID, "truncated message: frame %u is incomplete", d->seq);
        return PK_OK;
    }
    if (pk_load_be32(q) == PK_ESDK_SEQ_END) return dec_final_frame(d, eof, progress);
    if (avail < d->fsz) {
        PK_ENSURE(!eof, P11KMS_ERR_CIPHERTEXT_INVALID, "truncated message: frame %u is incomplete", d->seq);
        return PK_OK;
    }
    if (pk_load_be32(q) != d->seq) return seq_error(d, pk_load_be32(q), d->fsz, eof, &more);
    if ((uint64_t)d->seq > PK_ESDK_SEQ_MAX) return pk_fail(P11KMS_ERR_CIPHERTEXT_INVALID, "message has too many frames");
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
    default:
        return pk_fail(P11KMS_ERR_INTERNAL, "internal error: decryption state %d", (int)d->st);
    }
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
    /* Nothing kept yet (final right after new, or after input parsed in place) means no storage:
     * parse an empty array, not NULL, and move nothing (NULL + 0 and memmove(NULL, ...) are undefined). */
    static const uint8_t none[1];
    pk_result r;
    if (take > 0 && pk_failed(pk_buf_append(&d->in, p, take))) {
        d->failed = true;
        return pk_fail(P11KMS_ERR_NO_MEMORY, "out of memory");
    }
    d->src = d->in.data != NULL ? d->in.data : none;
    d->src_len = d->in.len;
    r = dec_run(d, eof);
    if (d->off > 0) memmove(d->in.data, d->in.data + d->off, d->in.len - d->off);
    d->in.len -= d->off;
    return r;
}

/*
 * When take bytes complete the kept regular frame and more input follows,
 * that frame opens in the same batch as the frames in place after it
 * (d->lead), rather than in a batch of one that leaves the other threads
 * idle. Anything else (a final frame, a wrong number) takes the slow path.
 */
static bool dec_lead(pk_esdk_dec *d, const uint8_t *p, size_t take, size_t n)
{
    if (d->st != D_BODY || d->in.len + take != d->fsz || take >= n) return false;
    if (pk_failed(pk_buf_reserve(&d->in, take))) return false;
    memcpy(d->in.data + d->in.len, p, take);
    /* Not a good regular frame: in.len is unchanged, the slow path appends again. */
    if (dec_scan(d, d->in.data, d->fsz, d->seq, 1) != 1) return false;
    d->lead = d->in.data;
    d->in.len = 0; /* the buffer is not touched again before the lead frame is opened */
    return true;
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
        if (dec_lead(d, p, take, n)) {
            p += take;
            n -= take;
            continue;
        }
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
    pk_esdk_pool_free(&d->pool);
    pk_esdk_free_gcms(d->gcm);
    pk_sig_free(d->sig);
    pk_secbuf_free(&d->pt);
    pk_buf_free(&d->in);
    pk_esdk_header_clear(&d->hd);
    free(d);
}
