/*
 * Store freshness (docs/STORE.md, Freshness): the digest of the store's
 * records, kept in the store's meta/fresh record and anchored in the HSM,
 * so a store rolled back (one row or the whole file) is refused.
 *
 * The digest is a set hash: per kind, the count of records and the sum
 * mod 2^256 of one element per record, element = HMAC-SHA256(K, kind, id,
 * rev, mac) with K derived in the HSM at open. Adding and removing a record
 * are O(1) and the order of records does not matter.
 */
#ifndef PK_CORE_FRESHNESS_H
#define PK_CORE_FRESHNESS_H

#include <stdbool.h>
#include <stdint.h>

#include "store/store.h"
#include "util/bytes.h"
#include "util/result.h"

#define PK_FRESH_KINDS_MAX 24
#define PK_FRESH_LEN 32

typedef struct pk_fresh_kind {
    char kind[PK_STORE_KIND_MAX];
    uint64_t n;
    uint8_t sum[PK_FRESH_LEN]; /* big-endian, mod 2^256 */
} pk_fresh_kind;

/* The state of a store's records: per kind, sorted by kind. */
typedef struct pk_fresh_state {
    size_t nk;
    pk_fresh_kind k[PK_FRESH_KINDS_MAX];
} pk_fresh_state;

/* The record that holds the state; it is not part of the digest itself. */
#define PK_FRESH_META_KIND "meta"
#define PK_FRESH_META_ID "fresh"

bool pk_fresh_is_meta(const char *kind, const char *id);
/* element of one record under key K. */
PK_MUST_USE pk_result pk_fresh_element(const uint8_t key[PK_FRESH_LEN], const pk_record *rec,
                                       uint8_t out[PK_FRESH_LEN]);
/* Add (sign > 0) or remove (sign < 0) one element of `kind`. */
PK_MUST_USE pk_result pk_fresh_apply(pk_fresh_state *st, const char *kind, const uint8_t el[PK_FRESH_LEN], int sign);
/* The entry of `kind` (an empty one, kind "", when the state has none). */
const pk_fresh_kind *pk_fresh_kind_of(const pk_fresh_state *st, const char *kind);
/* One hash over the whole state: what the anchor holds. */
PK_MUST_USE pk_result pk_fresh_total(const pk_fresh_state *st, uint8_t out[PK_FRESH_LEN]);
/* meta/fresh's body: the store's sequence number and the state. */
PK_MUST_USE pk_result pk_fresh_encode(const pk_fresh_state *st, uint64_t seq, pk_buf *out);
PK_MUST_USE pk_result pk_fresh_decode(const uint8_t *p, size_t n, pk_fresh_state *st, uint64_t *seq);
/*
 * Compare the records found (`have`) with the state the store says it has
 * (`want`): PK_OK when equal, else P11KMS_ERR_INTEGRITY naming the kind and
 * whether a record was deleted, put back after deletion, or replaced by an
 * earlier row.
 */
PK_MUST_USE pk_result pk_fresh_compare(const pk_fresh_state *have, const pk_fresh_state *want);

/* The anchor value kept in the token (two slots; the higher seq counts). */
#define PK_ANCHOR_LEN 96
typedef struct pk_anchor {
    uint64_t seq;                 /* meta/fresh's rev: one per write transaction */
    uint8_t total[PK_FRESH_LEN];  /* pk_fresh_total of that state */
    uint64_t audit_seq;           /* reserved: the audit head (0 = not anchored) */
    uint8_t audit_hash[PK_FRESH_LEN];
} pk_anchor;
void pk_anchor_encode(const pk_anchor *a, uint8_t out[PK_ANCHOR_LEN]);
/* false for a value that is not an anchor (a slot torn by a crash mid-write). */
bool pk_anchor_decode(const uint8_t *p, size_t n, pk_anchor *a);
/*
 * The crash rule: a store state (seq, total) against the anchor. Behind the
 * anchor, or at its seq with another total: rolled back. Ahead of it: a
 * crash between commit and anchor update (only p11kms can make states, the
 * MAC says so), so it is fresh and the anchor moves on.
 */
PK_MUST_USE pk_result pk_anchor_judge(const pk_anchor *anchor, uint64_t seq, const uint8_t total[PK_FRESH_LEN]);

typedef struct p11kms p11kms;
/* Wrap h->store so that every write keeps meta/fresh and every sync advances the anchor. */
PK_MUST_USE pk_result pk_fresh_wrap(p11kms *h);
/*
 * Check the store against its anchor (at open, and again when another
 * process wrote). Creates meta/fresh and the anchor on the first open of a
 * store made before freshness existed. Caller holds store_lock; no
 * transaction open. service_key names the store's anchor.
 */
PK_MUST_USE pk_result pk_fresh_verify(p11kms *h, const char *service_key);
/* What accepting the store as it is would give up (store accept-restore). */
typedef struct pk_fresh_loss {
    uint64_t store_seq;    /* the state the file says it is at (0: no meta/fresh) */
    uint64_t anchored_seq; /* the anchor's (0: none) */
    pk_fresh_state have;   /* the records found */
    pk_fresh_state want;   /* the state the file's meta/fresh records */
} pk_fresh_loss;
PK_MUST_USE pk_result pk_fresh_assess(p11kms *h, const char *service_key, pk_fresh_loss *out);
/*
 * Inside a write transaction (pk_with_write_tx): make the records as they
 * are the store's state, numbered past the anchor; the commit writes it and
 * the sync anchors it.
 */
PK_MUST_USE pk_result pk_fresh_accept(p11kms *h);
/* The audit head (last durable record's seq) the store's anchor records; *found=false without an anchor. */
PK_MUST_USE pk_result pk_fresh_anchored_audit(p11kms *h, const char *service_key, uint64_t *audit_seq, bool *found);
/*
 * A handle on an initialised store bound to this token (core/handle.c):
 * PK_OPEN_FRESH checks it against its anchor, PK_OPEN_AUDIT opens its
 * trail. service receives the service key id (PK_UUID_STR_LEN + 1 bytes).
 */
#define PK_OPEN_FRESH 1u
#define PK_OPEN_AUDIT 2u
PK_MUST_USE pk_result pk_handle_open(const p11kms_config *cfg, unsigned flags, p11kms **out, char *service);

#endif
