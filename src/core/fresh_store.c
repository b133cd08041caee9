/*
 * The store seen through freshness (docs/STORE.md, Freshness).
 *
 * h->store is wrapped: every put and delete inside a write transaction
 * updates the digest state, the commit writes it as meta/fresh (rev + 1:
 * the store's sequence number) in the same transaction, and a sync that
 * made a state durable advances the anchor in the token to it. The
 * anchor is only ever written after the state it names is durable, so the
 * store can be ahead of its anchor (a crash, a power loss) but never
 * behind it unless something outside p11kms put an older store in place.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "audit/audit.h"
#include "core/freshness.h"
#include "util/forkgen.h"
#include "util/group_commit.h"
#include "util/wipe.h"

#define KEY_LABEL "p11kms-fresh-key-v1"
#define RING 16
#define SLOT_LABEL_MAX 64
/*
 * States made durable within this window share one anchor write (a token
 * object write: about 1 ms on SoftHSM, under its global lock). The anchor
 * may lag the durable store by this much; a store ahead of its anchor is
 * what the crash rule accepts anyway.
 */
#define ANCHOR_WINDOW_US 100000

typedef struct committed {
    uint64_t ticket, seq;
    uint64_t audit_seq; /* the audit trail's durable head when it was committed */
    uint8_t total[PK_FRESH_LEN];
} committed;

typedef struct fresh_store {
    pk_store base; /* first: pk_store * converts to fresh_store * */
    pk_store *inner;
    p11kms *h;
    uint8_t key[PK_FRESH_LEN]; /* derived in the HSM on first use (init makes the store key); never stored */
    bool keyed;

    /* The open transaction (under h->store_lock, like the store's own). */
    int tx;          /* 0 none, 1 read, 2 write */
    bool loaded, dirty;
    uint64_t seq;    /* the store's sequence number when the transaction began (in meta/fresh's body) */
    uint64_t rev;    /* meta/fresh's rev then (0: none yet) */
    pk_fresh_state st;
    uint64_t trusted_rev; /* meta/fresh rev + mac whose MAC this handle checked */
    uint8_t trusted_mac[PK_STORE_MAC_LEN];

    /* Anchoring state (under mu, never held across an HSM call). */
    pthread_mutex_t mu;
    committed ring[RING];
    uint64_t nring;
    uint64_t anchored;   /* highest seq this handle knows anchored */
    uint64_t audit_anchored; /* highest audit head this handle knows anchored: an anchor never lowers it */
    bool named;          /* slot labels known (the service key is read at open) */
    /* The anchorer thread (util/group_commit.c's flusher, runs anchor_step under mu). */
    pk_flusher anchorer;
    bool started;
    int64_t pending_since_us; /* monotonic time of the first durable state not handed over; 0: none */
    unsigned long fork_gen;
    /* The token objects (under wmu, which serialises every anchor read and write). */
    pthread_mutex_t wmu;
    char label[2][SLOT_LABEL_MAX];
    unsigned long obj[2];

    bool changed_pending; /* a get saw another process's commit: tell the next `changed` */
    int64_t get_checked_at;
} fresh_store;

static fresh_store *fs_of(pk_store *s) { return (fresh_store *)s; }

/* ---- the state inside a write transaction ---- */

static pk_result ensure_key(fresh_store *fs)
{
    if (fs->keyed) return PK_OK;
    PK_GUARD(pk_p11_hmac(fs->h->p11, &fs->h->store_mac_key, pk_bytes_of(KEY_LABEL, strlen(KEY_LABEL)), fs->key));
    fs->keyed = true;
    return PK_OK;
}

typedef struct scan_ctx {
    fresh_store *fs;
    pk_fresh_state *st;
    pk_result r;
} scan_ctx;

static bool scan_cb(const pk_record *rec, void *ctx)
{
    scan_ctx *c = ctx;
    uint8_t el[PK_FRESH_LEN];
    if (pk_fresh_is_meta(rec->kind, rec->id)) return true;
    c->r = pk_fresh_element(c->fs->key, rec, el);
    if (pk_ok(c->r)) c->r = pk_fresh_apply(c->st, rec->kind, el, +1);
    return pk_ok(c->r);
}

static pk_result scan(fresh_store *fs, pk_fresh_state *st)
{
    scan_ctx c = {fs, st, PK_OK};
    memset(st, 0, sizeof(*st));
    PK_GUARD(ensure_key(fs));
    PK_GUARD(fs->inner->ops->list_all(fs->inner, scan_cb, &c));
    return c.r;
}

/* meta/fresh as stored, MAC checked (in the HSM only when it changed since this handle last checked it). */
static pk_result read_meta(fresh_store *fs, pk_fresh_state *st, uint64_t *seq, uint64_t *rev, bool *found)
{
    pk_record rec = {0};
    pk_result r = fs->inner->ops->get(fs->inner, PK_FRESH_META_KIND, PK_FRESH_META_ID, &rec, found);
    *seq = *rev = 0;
    if (pk_ok(r) && *found) {
        bool known = rec.rev == fs->trusted_rev && memcmp(rec.mac, fs->trusted_mac, PK_STORE_MAC_LEN) == 0;
        if (!known) r = pk_record_check(fs->h, &rec);
        if (pk_ok(r)) r = pk_fresh_decode(rec.body.data, rec.body.len, st, seq);
        if (pk_ok(r)) {
            *rev = rec.rev;
            fs->trusted_rev = rec.rev;
            memcpy(fs->trusted_mac, rec.mac, PK_STORE_MAC_LEN);
        }
    }
    pk_record_clear(&rec);
    return r;
}

/* First write of a transaction: start from the stored state (a store from before freshness: from a scan). */
static pk_result tx_load(fresh_store *fs)
{
    bool found = false;
    if (fs->loaded) return PK_OK;
    PK_GUARD(read_meta(fs, &fs->st, &fs->seq, &fs->rev, &found));
    if (!found) PK_GUARD(scan(fs, &fs->st));
    fs->loaded = true;
    return PK_OK;
}

static pk_result account(fresh_store *fs, const pk_record *rec, int sign)
{
    uint8_t el[PK_FRESH_LEN];
    PK_GUARD(ensure_key(fs));
    PK_GUARD(pk_fresh_element(fs->key, rec, el));
    fs->dirty = true;
    return pk_fresh_apply(&fs->st, rec->kind, el, sign);
}

/* The row a put or delete replaces leaves the digest. */
static pk_result account_old(fresh_store *fs, const char *kind, const char *id)
{
    pk_record old = {0};
    bool found = false;
    pk_result r = fs->inner->ops->get(fs->inner, kind, id, &old, &found);
    if (pk_ok(r) && found) r = account(fs, &old, -1);
    pk_record_clear(&old);
    return r;
}

static pk_result write_meta(fresh_store *fs)
{
    pk_record rec;
    pk_result r;

    memset(&rec, 0, sizeof(rec));
    snprintf(rec.kind, sizeof(rec.kind), PK_FRESH_META_KIND);
    snprintf(rec.id, sizeof(rec.id), PK_FRESH_META_ID);
    rec.rev = fs->rev + 1;
    r = pk_fresh_encode(&fs->st, fs->seq + 1, &rec.body);
    if (pk_ok(r)) r = pk_record_seal(fs->h, &rec);
    if (pk_ok(r)) r = fs->inner->ops->put(fs->inner, &rec, fs->rev);
    if (pk_ok(r)) {
        fs->trusted_rev = rec.rev;
        memcpy(fs->trusted_mac, rec.mac, PK_STORE_MAC_LEN);
    }
    pk_record_clear(&rec);
    return r;
}

/* ---- the anchor in the token ---- */

static pk_result slot_obj(fresh_store *fs, int i, bool create, const uint8_t *value)
{
    if (fs->obj[i] != 0) return PK_OK;
    PK_GUARD(pk_p11_data_find(fs->h->p11, fs->label[i], &fs->obj[i]));
    if (fs->obj[i] != 0 || !create) return PK_OK;
    return pk_p11_data_create(fs->h->p11, fs->label[i], pk_bytes_of(value, PK_ANCHOR_LEN), &fs->obj[i]);
}

/* The anchor: the valid slot with the higher seq. *found=false when neither holds one. */
static pk_result anchor_read(fresh_store *fs, pk_anchor *out, bool *found)
{
    *found = false;
    memset(out, 0, sizeof(*out));
    for (int i = 0; i < 2; i++) {
        uint8_t v[PK_ANCHOR_LEN + 16];
        size_t n = 0;
        pk_anchor a;
        pk_result r;

        PK_GUARD(slot_obj(fs, i, false, NULL));
        if (fs->obj[i] == 0) continue;
        r = pk_p11_data_read(fs->h->p11, fs->obj[i], v, sizeof(v), &n);
        if (r.code == P11KMS_ERR_NOT_FOUND) {
            fs->obj[i] = 0;
            continue;
        }
        PK_GUARD(r);
        if (pk_anchor_decode(v, n, &a) && a.seq > out->seq) {
            *out = a;
            *found = true;
        }
    }
    return PK_OK;
}

/*
 * Slot seq % 2: consecutive anchors alternate, so a write torn by a crash
 * leaves the other slot with an earlier anchor (never a later one).
 */
/* Caller holds wmu. */
static pk_result anchor_write(fresh_store *fs, const committed *c)
{
    pk_anchor a;
    uint8_t v[PK_ANCHOR_LEN];
    int i = (int)(c->seq & 1);
    pk_result r;

    memset(&a, 0, sizeof(a));
    a.seq = c->seq;
    memcpy(a.total, c->total, PK_FRESH_LEN);
    pthread_mutex_lock(&fs->mu);
    a.audit_seq = c->audit_seq > fs->audit_anchored ? c->audit_seq : fs->audit_anchored;
    pthread_mutex_unlock(&fs->mu);
    pk_anchor_encode(&a, v);
    PK_GUARD(slot_obj(fs, i, true, v));
    r = pk_p11_data_write(fs->h->p11, fs->obj[i], pk_bytes_of(v, sizeof(v)));
    if (r.code == P11KMS_ERR_NOT_FOUND) {
        fs->obj[i] = 0;
        PK_GUARD(slot_obj(fs, i, true, v));
        r = pk_p11_data_write(fs->h->p11, fs->obj[i], pk_bytes_of(v, sizeof(v)));
    }
    PK_GUARD(r);
    pthread_mutex_lock(&fs->mu);
    if (a.seq > fs->anchored) fs->anchored = a.seq;
    if (a.audit_seq > fs->audit_anchored) fs->audit_anchored = a.audit_seq;
    pthread_mutex_unlock(&fs->mu);
    return PK_OK;
}

/* The newest state this handle committed that is durable now and not anchored yet. */
static bool pick(fresh_store *fs, committed *out)
{
    pk_store_stats stats;
    const committed *best = NULL;

    fs->inner->ops->stats(fs->inner, &stats);
    pthread_mutex_lock(&fs->mu);
    for (uint64_t i = fs->nring > RING ? fs->nring - RING : 0; fs->named && i < fs->nring; i++) {
        const committed *c = &fs->ring[i % RING];
        if (c->ticket <= stats.synced && c->seq > fs->anchored) best = c;
    }
    if (best != NULL) *out = *best;
    pthread_mutex_unlock(&fs->mu);
    return best != NULL;
}

/* Whether this handle committed a state not anchored yet. */
static bool unanchored(fresh_store *fs)
{
    bool any;
    pthread_mutex_lock(&fs->mu);
    any = fs->named && fs->nring > 0 && fs->ring[(fs->nring - 1) % RING].seq > fs->anchored;
    pthread_mutex_unlock(&fs->mu);
    return any;
}

/* A failure leaves the store ahead of its anchor, which is safe; the next sync tries again. */
static void anchor_now(fresh_store *fs)
{
    committed c;
    pthread_mutex_lock(&fs->wmu);
    if (pick(fs, &c)) PK_IGNORE(anchor_write(fs, &c));
    pthread_mutex_unlock(&fs->wmu);
}

/*
 * The anchorer's step (under mu): one token write covers every state made
 * durable within the window, as one fdatasync covers concurrent commits.
 * The caller of a sync does not wait for it.
 */
static int64_t anchor_step(void *arg, int64_t now)
{
    fresh_store *fs = arg;
    int64_t deadline;

    if (fs->pending_since_us == 0) return PK_FLUSHER_NEVER;
    deadline = fs->pending_since_us + ANCHOR_WINDOW_US;
    if (now < deadline) return deadline;
    fs->pending_since_us = 0;
    pthread_mutex_unlock(&fs->mu);
    anchor_now(fs);
    pthread_mutex_lock(&fs->mu);
    return 0;
}

static bool inherited(const fresh_store *fs) { return fs->fork_gen != pk_fork_generation(); }

/* After a sync: hand the anchor to the anchorer (or, without one, write it here). */
static void advance(fresh_store *fs)
{
    bool async;
    if (inherited(fs)) return; /* a child's handle: the parent's thread and anchor are not ours */
    pthread_mutex_lock(&fs->mu);
    if (!fs->started && pk_flusher_start(&fs->anchorer) == 0) fs->started = true;
    async = fs->started;
    if (async && fs->pending_since_us == 0) {
        fs->pending_since_us = pk_mono_us();
        pk_flusher_nudge(&fs->anchorer, fs->pending_since_us + ANCHOR_WINDOW_US);
    }
    pthread_mutex_unlock(&fs->mu);
    if (!async) anchor_now(fs);
}

/* ---- the wrapped operations ---- */

static pk_result w_begin(pk_store *s, bool write)
{
    fresh_store *fs = fs_of(s);
    PK_GUARD(fs->inner->ops->begin(fs->inner, write));
    fs->tx = write ? 2 : 1;
    fs->loaded = fs->dirty = false;
    return PK_OK;
}

static pk_result w_commit(pk_store *s, uint64_t *ticket)
{
    fresh_store *fs = fs_of(s);
    uint64_t t = 0;
    uint8_t total[PK_FRESH_LEN];
    pk_result r = PK_OK;
    bool wrote = fs->tx == 2 && fs->dirty;

    if (wrote) r = write_meta(fs);
    if (wrote && pk_ok(r)) r = pk_fresh_total(&fs->st, total);
    if (pk_failed(r)) {
        fs->inner->ops->rollback(fs->inner);
        fs->tx = 0;
        return r;
    }
    r = fs->inner->ops->commit(fs->inner, &t);
    fs->tx = 0;
    if (ticket != NULL) *ticket = t;
    if (pk_ok(r) && wrote) {
        pthread_mutex_lock(&fs->mu);
        committed *c = &fs->ring[fs->nring++ % RING];
        c->ticket = t;
        c->seq = fs->seq + 1;
        c->audit_seq = pk_audit_durable_seq(fs->h->audit);
        memcpy(c->total, total, PK_FRESH_LEN);
        pthread_mutex_unlock(&fs->mu);
    }
    return r;
}

static void w_rollback(pk_store *s)
{
    fresh_store *fs = fs_of(s);
    fs->inner->ops->rollback(fs->inner);
    fs->tx = 0;
}

/* A write outside a transaction gets one of its own, so meta/fresh moves with it. */
typedef pk_result (*write_fn)(fresh_store *fs, const void *a, const void *b, uint64_t rev);

static pk_result in_tx(fresh_store *fs, write_fn fn, const void *a, const void *b, uint64_t rev)
{
    pk_result r;
    if (fs->tx == 2) return fn(fs, a, b, rev);
    PK_GUARD(w_begin(&fs->base, true));
    r = fn(fs, a, b, rev);
    if (pk_ok(r)) return w_commit(&fs->base, NULL);
    w_rollback(&fs->base);
    return r;
}

static pk_result do_put(fresh_store *fs, const void *a, const void *b, uint64_t expected_rev)
{
    const pk_record *rec = a;
    (void)b;
    PK_ENSURE(!pk_fresh_is_meta(rec->kind, rec->id), P11KMS_ERR_INTERNAL, "store put meta/fresh: reserved record");
    PK_GUARD(tx_load(fs));
    if (expected_rev > 0) PK_GUARD(account_old(fs, rec->kind, rec->id));
    PK_GUARD(fs->inner->ops->put(fs->inner, rec, expected_rev));
    return account(fs, rec, +1);
}

static pk_result w_put(pk_store *s, const pk_record *rec, uint64_t expected_rev)
{
    return in_tx(fs_of(s), do_put, rec, NULL, expected_rev);
}

static pk_result do_del(fresh_store *fs, const void *a, const void *b, uint64_t rev)
{
    (void)rev;
    PK_ENSURE(!pk_fresh_is_meta(a, b), P11KMS_ERR_INTERNAL, "store delete meta/fresh: reserved record");
    PK_GUARD(tx_load(fs));
    PK_GUARD(account_old(fs, a, b));
    return fs->inner->ops->del(fs->inner, a, b);
}

static pk_result w_del(pk_store *s, const char *kind, const char *id)
{
    return in_tx(fs_of(s), do_del, kind, id, 0);
}

static pk_result recheck(fresh_store *fs, bool *changed);

/*
 * Outside a transaction a read first asks, at most every store_recheck_ms,
 * whether another process wrote; if so the store is verified again before
 * the record is used (the answer is kept for the next `changed`).
 */
static pk_result w_get(pk_store *s, const char *kind, const char *id, pk_record *out, bool *found)
{
    fresh_store *fs = fs_of(s);
    if (fs->tx == 0 && fs->named) {
        int64_t now = pk_monotonic_ms();
        if (now - __atomic_load_n(&fs->get_checked_at, __ATOMIC_RELAXED) >= fs->h->store_recheck_ms) {
            bool changed = false;
            __atomic_store_n(&fs->get_checked_at, now, __ATOMIC_RELAXED);
            PK_GUARD(recheck(fs, &changed));
            if (changed) fs->changed_pending = true;
        }
    }
    return fs->inner->ops->get(fs->inner, kind, id, out, found);
}

static pk_result w_list(pk_store *s, const char *kind, const char *ref, pk_record_cb cb, void *ctx)
{
    return fs_of(s)->inner->ops->list(fs_of(s)->inner, kind, ref, cb, ctx);
}

static pk_result w_list_due(pk_store *s, const char *kind, int64_t now_ms, pk_record_cb cb, void *ctx)
{
    return fs_of(s)->inner->ops->list_due(fs_of(s)->inner, kind, now_ms, cb, ctx);
}

static pk_result w_list_all(pk_store *s, pk_record_cb cb, void *ctx)
{
    return fs_of(s)->inner->ops->list_all(fs_of(s)->inner, cb, ctx);
}

static pk_result w_count(pk_store *s, const char *kind, const char *ref, uint64_t *out)
{
    return fs_of(s)->inner->ops->count(fs_of(s)->inner, kind, ref, out);
}

static pk_result w_changed(pk_store *s, bool *changed)
{
    fresh_store *fs = fs_of(s);
    PK_GUARD(recheck(fs, changed));
    if (fs->changed_pending) *changed = true;
    fs->changed_pending = false;
    return PK_OK;
}

static pk_result w_sync(pk_store *s, uint64_t upto)
{
    fresh_store *fs = fs_of(s);
    PK_GUARD(fs->inner->ops->sync(fs->inner, upto));
    advance(fs);
    return PK_OK;
}

static void w_set_ckpt(pk_store *s, bool background)
{
    fs_of(s)->inner->ops->set_checkpoint_background(fs_of(s)->inner, background);
}

static pk_result w_checkpoint(pk_store *s) { return fs_of(s)->inner->ops->checkpoint(fs_of(s)->inner); }

static void w_stats(pk_store *s, pk_store_stats *out) { fs_of(s)->inner->ops->stats(fs_of(s)->inner, out); }

/* The anchorer stops; what is committed is synced and anchored before the store closes. */
static void w_close(pk_store *s)
{
    fresh_store *fs = fs_of(s);
    if (!inherited(fs)) {
        pk_flusher_stop(&fs->anchorer);
        /* Only with something to anchor: a failed open's error detail must survive its close. */
        if (unanchored(fs) && pk_ok(fs->inner->ops->sync(fs->inner, PK_STORE_SYNC_ALL))) anchor_now(fs);
    }
    pk_store_close(fs->inner);
    if (!inherited(fs)) pk_flusher_destroy(&fs->anchorer);
    pthread_mutex_destroy(&fs->wmu);
    pthread_mutex_destroy(&fs->mu);
    pk_wipe(fs->key, sizeof(fs->key));
    free(fs);
}

static const pk_store_ops fresh_ops = {
    .name = "sqlite",
    .begin = w_begin,
    .commit = w_commit,
    .rollback = w_rollback,
    .get = w_get,
    .put = w_put,
    .del = w_del,
    .list = w_list,
    .list_due = w_list_due,
    .count = w_count,
    .changed = w_changed,
    .sync = w_sync,
    .set_checkpoint_background = w_set_ckpt,
    .checkpoint = w_checkpoint,
    .stats = w_stats,
    .close = w_close,
    .list_all = w_list_all,
};

pk_result pk_fresh_wrap(p11kms *h)
{
    fresh_store *fs = calloc(1, sizeof(*fs));

    PK_ENSURE_ALLOC(fs);
    pthread_mutex_init(&fs->mu, NULL);
    pthread_mutex_init(&fs->wmu, NULL);
    if (pk_flusher_init(&fs->anchorer, &fs->mu, anchor_step, fs) != 0) {
        pthread_mutex_destroy(&fs->wmu);
        pthread_mutex_destroy(&fs->mu);
        free(fs);
        return pk_fail(P11KMS_ERR_INTERNAL, "store freshness: cannot create a condition variable");
    }
    fs->fork_gen = pk_fork_generation();
    fs->base.ops = &fresh_ops;
    fs->inner = h->store;
    fs->h = h;
    fs->get_checked_at = INT64_MIN / 2;
    h->store = &fs->base;
    return PK_OK;
}

/* ---- verification ---- */

/* A write transaction that only rewrites meta/fresh: the state gets a new number, synced and anchored. */
static pk_result reanchor(fresh_store *fs)
{
    uint64_t ticket = 0;
    pk_result r;

    PK_GUARD(w_begin(&fs->base, true));
    r = tx_load(fs);
    fs->dirty = true;
    if (pk_ok(r)) return w_commit(&fs->base, &ticket);
    w_rollback(&fs->base);
    return r;
}

static pk_result name_slots(fresh_store *fs, const char *service_key)
{
    pthread_mutex_lock(&fs->wmu);
    for (int i = 0; i < 2; i++) {
        char label[SLOT_LABEL_MAX];
        snprintf(label, sizeof(label), "p11kms-anchor-%d %s", i, service_key);
        if (strcmp(label, fs->label[i]) != 0) fs->obj[i] = 0;
        memcpy(fs->label[i], label, sizeof(label));
    }
    pthread_mutex_unlock(&fs->wmu);
    pthread_mutex_lock(&fs->mu);
    fs->named = true;
    pthread_mutex_unlock(&fs->mu);
    return PK_OK;
}

/* What the store holds now, in one read snapshot: the records' state and meta/fresh. */
static pk_result snapshot(fresh_store *fs, pk_fresh_state *have, pk_fresh_state *want, uint64_t *seq, bool *found)
{
    uint64_t rev = 0;
    pk_result r;
    PK_GUARD(fs->inner->ops->begin(fs->inner, false));
    r = scan(fs, have);
    if (pk_ok(r)) r = read_meta(fs, want, seq, &rev, found);
    fs->inner->ops->rollback(fs->inner);
    return r;
}

/*
 * The anchor is read before the snapshot: it only ever names durable
 * states, so a state committed by another process meanwhile makes the
 * snapshot newer than the anchor read, never older.
 */
static pk_result verify(fresh_store *fs, bool *needs_anchor)
{
    pk_anchor a;
    bool have_anchor = false, found = false;
    pk_fresh_state have, want;
    uint64_t seq = 0;
    uint8_t total[PK_FRESH_LEN];

    *needs_anchor = false;
    pthread_mutex_lock(&fs->wmu);
    pk_result r = anchor_read(fs, &a, &have_anchor);
    pthread_mutex_unlock(&fs->wmu);
    PK_GUARD(r);
    PK_GUARD(snapshot(fs, &have, &want, &seq, &found));
    if (!found) {
        PK_ENSURE(!have_anchor, P11KMS_ERR_INTEGRITY,
                  "store rolled back: the whole store is older than its anchor in the HSM (it has no freshness "
                  "record, anchored state %llu): an older copy of the store was put in place; refusing the store; "
                  "if a backup was restored on purpose, run p11kms store accept-restore",
                  (unsigned long long)a.seq);
        *needs_anchor = true; /* a store from before freshness: its first open anchors it */
        return PK_OK;
    }
    PK_GUARD(pk_fresh_compare(&have, &want));
    PK_GUARD(pk_fresh_total(&want, total));
    if (!have_anchor) {
        *needs_anchor = true;
        return PK_OK;
    }
    PK_GUARD(pk_anchor_judge(&a, seq, total));
    pthread_mutex_lock(&fs->mu);
    if (a.seq > fs->anchored) fs->anchored = a.seq;
    if (a.audit_seq > fs->audit_anchored) fs->audit_anchored = a.audit_seq;
    pthread_mutex_unlock(&fs->mu);
    /* Ahead of the anchor: a writer died between its commit and the anchor update. */
    *needs_anchor = seq > a.seq;
    return PK_OK;
}

static pk_result verify_and_anchor(fresh_store *fs)
{
    bool needs = false;
    PK_GUARD(verify(fs, &needs));
    if (!needs) return PK_OK;
    PK_GUARD(reanchor(fs));
    return w_sync(&fs->base, PK_STORE_SYNC_ALL);
}

static pk_result recheck(fresh_store *fs, bool *changed)
{
    PK_GUARD(fs->inner->ops->changed(fs->inner, changed));
    if (!*changed || !fs->named || fs->tx != 0) return PK_OK;
    return verify_and_anchor(fs);
}

pk_result pk_fresh_verify(p11kms *h, const char *service_key)
{
    fresh_store *fs = fs_of(h->store);
    PK_GUARD(name_slots(fs, service_key));
    return verify_and_anchor(fs);
}

pk_result pk_fresh_assess(p11kms *h, const char *service_key, pk_fresh_loss *out)
{
    fresh_store *fs = fs_of(h->store);
    pk_anchor a;
    bool have_anchor = false, found = false;
    pk_result r;

    memset(out, 0, sizeof(*out));
    PK_GUARD(name_slots(fs, service_key));
    pthread_mutex_lock(&fs->wmu);
    r = anchor_read(fs, &a, &have_anchor);
    pthread_mutex_unlock(&fs->wmu);
    PK_GUARD(r);
    PK_GUARD(snapshot(fs, &out->have, &out->want, &out->store_seq, &found));
    out->anchored_seq = have_anchor ? a.seq : 0;
    pthread_mutex_lock(&fs->mu);
    if (out->anchored_seq > fs->anchored) fs->anchored = out->anchored_seq;
    if (have_anchor && a.audit_seq > fs->audit_anchored) fs->audit_anchored = a.audit_seq;
    pthread_mutex_unlock(&fs->mu);
    return PK_OK;
}

pk_result pk_fresh_accept(p11kms *h)
{
    fresh_store *fs = fs_of(h->store);
    uint64_t past;
    pk_result r;

    PK_ENSURE(fs->tx == 2, P11KMS_ERR_INTERNAL, "store accept-restore: outside a write transaction");
    /* The records as they are become the truth: a state from a scan, numbered past the anchor. */
    r = tx_load(fs);
    if (pk_ok(r)) r = scan(fs, &fs->st);
    PK_GUARD(r);
    pthread_mutex_lock(&fs->mu);
    past = fs->anchored;
    pthread_mutex_unlock(&fs->mu);
    if (past > fs->seq) fs->seq = past;
    fs->dirty = true;
    return PK_OK;
}

pk_result pk_fresh_anchored_audit(p11kms *h, const char *service_key, uint64_t *audit_seq, bool *found)
{
    fresh_store *fs = fs_of(h->store);
    pk_anchor a;
    pk_result r;

    *audit_seq = 0;
    PK_GUARD(name_slots(fs, service_key));
    pthread_mutex_lock(&fs->wmu);
    r = anchor_read(fs, &a, found);
    pthread_mutex_unlock(&fs->wmu);
    if (pk_ok(r) && *found) *audit_seq = a.audit_seq;
    return r;
}
