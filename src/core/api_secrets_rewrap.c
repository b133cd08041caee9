/*
 * Public SecretStore API: rewrap (kms:ReEncryptFrom + kms:ReEncryptTo).
 * Re-wraps namespace keys under their CMK's newest version and, with
 * reencrypt, moves every secret to a new namespace-key version.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/op.h"
#include "core/remote_fwd.h"
#include "core/secret_ops.h"
#include "util/json_out.h"

/* ---- rewrap ---- */

typedef struct chain_ref {
    char ns[PK_NS_MAX + 1];
    char cmk[PK_UUID_STR_LEN + 1];
} chain_ref;

typedef struct chain_acc {
    chain_ref *items;
    size_t n, cap;
    pk_result err;
} chain_acc;

static bool chain_collect(const pk_record *rec, void *ctx)
{
    chain_acc *a = ctx;
    const char *colon = strchr(rec->id, ':');
    if (colon == NULL || colon - rec->id != PK_UUID_STR_LEN || strlen(colon + 1) > PK_NS_MAX) {
        a->err = pk_fail(P11KMS_ERR_INTEGRITY, "store record nskey/%s is malformed", rec->id);
        return false;
    }
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 64;
        chain_ref *grown = realloc(a->items, cap * sizeof(*grown));
        if (grown == NULL) {
            a->err = pk_fail(P11KMS_ERR_NO_MEMORY, "out of memory");
            return false;
        }
        a->items = grown;
        a->cap = cap;
    }
    memcpy(a->items[a->n].cmk, rec->id, PK_UUID_STR_LEN);
    a->items[a->n].cmk[PK_UUID_STR_LEN] = '\0';
    snprintf(a->items[a->n].ns, sizeof(a->items[a->n].ns), "%s", colon + 1);
    a->n++;
    return true;
}

typedef struct rewrap_job {
    const char *ns;
    pk_key *k;
    bool add_version;
    uint32_t rewrapped, current, new_version;
} rewrap_job;

/* Inside one write transaction: re-wrap every version not under the CMK's newest version (in the HSM). */
static pk_result rewrap_tx(p11kms *h, void *ctx)
{
    rewrap_job *j = ctx;
    pk_record rec = {0};
    char id[PK_STORE_ID_MAX];
    bool found = false;
    pk_nskey nk;
    pk_result r = PK_OK;
    pk_keyid newkek;

    memset(&nk, 0, sizeof(nk));
    snprintf(id, sizeof(id), "%s:%s", j->k->id, j->ns);
    PK_TRY(pk_record_load(h, "nskey", id, &rec, &found));
    PK_CHECK(found, P11KMS_ERR_NOT_FOUND, "namespace key %s not found", id);
    PK_TRY(pk_nskey_from_record(&rec, &nk));
    pk_key_version_id(j->k->uuid, j->k->nversions, &newkek);
    for (uint32_t i = 0; i < nk.nversions; i++) {
        pk_keyid oldkek;
        uint8_t out[PK_KWP_WRAPPED_LEN];
        size_t outlen = sizeof(out);
        if (nk.v[i].kek_version == j->k->nversions) {
            j->current++;
            continue;
        }
        pk_key_version_id(j->k->uuid, nk.v[i].kek_version, &oldkek);
        /* Unwrap under the old CMK version and wrap under the newest, inside the HSM. */
        PK_TRY(pk_p11_rewrap(h->p11, &oldkek, &newkek, pk_bytes_of(nk.v[i].wrapped, nk.v[i].wrapped_len), out,
                             &outlen));
        memcpy(nk.v[i].wrapped, out, outlen);
        nk.v[i].wrapped_len = outlen;
        nk.v[i].kek_version = j->k->nversions;
        j->rewrapped++;
    }
    if (j->add_version) PK_TRY(pk_nskey_add_version_tx(&h->env, &nk, j->k->nversions));
    j->new_version = nk.nversions;
    if (j->rewrapped > 0 || j->add_version) {
        pk_record_clear(&rec);
        PK_TRY(pk_nskey_to_record(&nk, &rec));
        PK_TRY(pk_record_save(h, &rec, nk.rev));
    }
out:
    pk_nskey_clear(&nk);
    pk_record_clear(&rec);
    return r;
}

typedef struct reenc_job {
    const char *id;
    uint32_t nsv, min_nsv;
    bool moved;
} reenc_job;

/* Inside one write transaction: decrypt into locked memory, seal under nsv, save; the plaintext is wiped. */
static pk_result reenc_tx(p11kms *h, void *ctx)
{
    reenc_job *j = ctx;
    pk_secret s;
    pk_secbuf pt = PK_SECBUF_INIT;
    pk_result r = PK_OK;
    PK_TRY(pk_secret_load(&h->env, j->id, false, &s));
    if (s.nsv >= j->min_nsv) goto out; /* already moved (another run) */
    PK_TRY(pk_secret_open(&h->env, &s, &pt, true));
    s.nsv = j->nsv;
    PK_TRY(pk_secret_seal(&h->env, &s, pk_bytes_of(pt.data, pt.len), true));
    PK_TRY(pk_secret_save_tx(&h->env, &s));
    j->moved = true;
out:
    pk_secbuf_free(&pt);
    pk_secret_clear(&s);
    return r;
}

static void report(p11kms_progress_fn cb, void *cb_ctx, const char *what, const char *item, size_t done, size_t total)
{
    if (cb != NULL) cb(cb_ctx, what, item, done, total);
}

/* One rewrap call: what it found, what it did so far, and its JSON report. */
typedef struct rewrap_run {
    p11kms *h;
    pk_op *op;
    pk_secret_ctx sc;          /* op's context points here while a chain or secret is handled */
    p11kms_progress_fn progress;
    void *progress_ctx;
    chain_acc chains;
    uint32_t *new_versions;    /* per chain: its namespace-key version after rewrap */
    uint64_t rewrapped, current, moved, nfailed;
    char first_failed[PK_SECRET_ID_MAX + 1];
    pk_json_out jo;
} rewrap_run;

static pk_result list_chains(rewrap_run *w, const char *ns)
{
    pk_result r;
    pthread_mutex_lock(&w->h->store_lock);
    r = w->h->store->ops->list(w->h->store, "nskey", ns, chain_collect, &w->chains);
    pthread_mutex_unlock(&w->h->store_lock);
    PK_GUARD(r);
    PK_GUARD(w->chains.err);
    PK_ENSURE(ns == NULL || w->chains.n > 0, P11KMS_ERR_NOT_FOUND, "namespace %s not found", ns);
    w->new_versions = calloc(w->chains.n + 1, sizeof(*w->new_versions));
    PK_ENSURE_ALLOC(w->new_versions);
    return PK_OK;
}

static void report_chain(rewrap_run *w, const rewrap_job *j, size_t i)
{
    char item[PK_NS_MAX + 64];
    pk_jo_obj_begin(&w->jo);
    pk_jo_kstr(&w->jo, "Namespace", j->ns);
    pk_jo_kstr(&w->jo, "KeyId", j->k->id);
    pk_jo_kint(&w->jo, "KeyVersion", j->k->nversions);
    pk_jo_kint(&w->jo, "Rewrapped", j->rewrapped);
    pk_jo_kint(&w->jo, "AlreadyCurrent", j->current);
    pk_jo_kint(&w->jo, "NamespaceKeyVersion", j->new_version);
    pk_jo_obj_end(&w->jo);
    snprintf(item, sizeof(item), "%s (key %s)", j->ns, j->k->id);
    report(w->progress, w->progress_ctx, "rewrap", item, i + 1, w->chains.n);
}

/* Authorise and rewrap chain i (one write transaction), then report it. */
static pk_result rewrap_chain(rewrap_run *w, size_t i, bool add_version)
{
    const chain_ref *c = &w->chains.items[i];
    rewrap_job j;
    pk_key *k = NULL;
    pk_result r = PK_OK;

    pk_secret_ctx_set(w->op, &w->sc, c->ns, NULL, NULL);
    PK_TRY(pk_secret_authorize(w->op, c->cmk, "kms:ReEncryptFrom", true, &k));
    PK_TRY(pk_op_authorize(w->op, k, "kms:ReEncryptTo"));
    memset(&j, 0, sizeof(j));
    j.ns = c->ns;
    j.k = k;
    j.add_version = add_version;
    PK_TRY(pk_with_write_tx_batched(w->h, rewrap_tx, &j));
    pk_ns_forget(&w->h->env, j.ns, k->id);
    w->new_versions[i] = j.new_version;
    w->rewrapped += j.rewrapped;
    w->current += j.current;
    report_chain(w, &j, i);
out:
    pk_key_release(&w->h->env, k);
    return r;
}

/* The chain a secret belongs to, or chains.n when it was not rewrapped. */
static size_t chain_of(const rewrap_run *w, const list_item *s)
{
    size_t ci;
    for (ci = 0; ci < w->chains.n; ci++)
        if (strcmp(w->chains.items[ci].ns, s->ns) == 0 && strcmp(w->chains.items[ci].cmk, s->cmk) == 0) break;
    return ci;
}

/* Move one secret to its chain's new namespace-key version (one write transaction). */
static pk_result reencrypt_one(rewrap_run *w, pk_secrets *st, const list_item *s, uint32_t min_nsv)
{
    reenc_job rj;
    pk_key *k = NULL;
    pk_result r = PK_OK;

    pk_secret_ctx_set(w->op, &w->sc, s->ns, s->id, NULL);
    PK_TRY(pk_secret_authorize(w->op, s->cmk, "kms:ReEncryptFrom", true, &k));
    memset(&rj, 0, sizeof(rj));
    rj.id = s->id;
    rj.min_nsv = min_nsv;
    PK_TRY(pk_ns_take_nonce(&w->h->env, s->ns, k, &rj.nsv));
    r = pk_with_write_tx_batched(w->h, reenc_tx, &rj);
    /* An undecryptable secret (tampered, or its key lost) must not stop the others. */
    if (r.code == P11KMS_ERR_CIPHERTEXT_INVALID || r.code == P11KMS_ERR_INTEGRITY) {
        if (w->nfailed++ == 0) snprintf(w->first_failed, sizeof(w->first_failed), "%s", s->id);
        r = PK_OK;
    }
    PK_TRY(r);
    pk_cache_forget(st, s->id);
    if (rj.moved) w->moved++;
out:
    pk_key_release(&w->h->env, k);
    return r;
}

static pk_result reencrypt_all(rewrap_run *w, const char *ns)
{
    list_item *secrets = NULL;
    size_t n = 0;
    pk_secrets *st;
    pk_result r = PK_OK;

    PK_GUARD(pk_secrets_of(&w->h->env, &st));
    PK_GUARD(pk_secret_collect(w->h, ns, &secrets, &n));
    for (size_t i = 0; i < n; i++) {
        size_t ci = chain_of(w, &secrets[i]);
        if (ci == w->chains.n || secrets[i].nsv >= w->new_versions[ci]) continue;
        PK_TRY(reencrypt_one(w, st, &secrets[i], w->new_versions[ci]));
        report(w->progress, w->progress_ctx, "reencrypt", secrets[i].id, i + 1, n);
    }
out:
    free(secrets);
    return r;
}

/* The audit record of the whole call names no single namespace or secret. */
static void clear_op_context(pk_op *op)
{
    op->ctx = NULL;
    op->nctx = 0;
    op->secret_id = NULL;
}

P11KMS_API p11kms_rc p11kms_secret_rewrap(p11kms *h, const p11kms_caller *c, const char *ns, int all, int reencrypt,
                                          p11kms_progress_fn progress, void *progress_ctx, char **json)
{
    if (h != NULL && h->remote != NULL) return (*json = NULL, pk_fwd_refuse("secret rewrap"));
    pk_op op;
    pk_result r = PK_OK;
    pk_buf out = {0};
    rewrap_run w;

    *json = NULL;
    memset(&w, 0, sizeof(w));
    w.h = h;
    w.op = &op;
    w.progress = progress;
    w.progress_ctx = progress_ctx;
    PK_TRY(pk_op_begin(&op, h, c, "kms:ReEncrypt"));
    pk_op_output_str(&op, json);
    PK_TRY(pk_op_preflight(&op));
    PK_CHECK((ns != NULL) != (all != 0), P11KMS_ERR_INVALID_ARGUMENT, "give a namespace or all, not both");
    if (ns != NULL) PK_TRY(pk_ns_validate(ns));
    PK_TRY(list_chains(&w, ns));
    pk_jo_init(&w.jo, &out);
    pk_jo_obj_begin(&w.jo);
    pk_jo_key(&w.jo, "namespaces");
    pk_jo_arr_begin(&w.jo);
    for (size_t i = 0; i < w.chains.n; i++) PK_TRY(rewrap_chain(&w, i, reencrypt != 0));
    pk_jo_arr_end(&w.jo);
    if (reencrypt) PK_TRY(reencrypt_all(&w, ns));
    clear_op_context(&op);
    PK_CHECK(w.nfailed == 0, P11KMS_ERR_CIPHERTEXT_INVALID, "%llu secret%s could not be re-encrypted (first: %s)",
             (unsigned long long)w.nfailed, w.nfailed == 1 ? "" : "s", w.first_failed);
    pk_jo_kint(&w.jo, "KeysRewrapped", (int64_t)w.rewrapped);
    pk_jo_kint(&w.jo, "KeysAlreadyCurrent", (int64_t)w.current);
    pk_jo_kint(&w.jo, "SecretsReencrypted", (int64_t)w.moved);
    pk_jo_obj_end(&w.jo);
    PK_TRY(pk_jo_result(&w.jo));
    PK_TRY(pk_str_out(&out, json));
out:
    if (pk_failed(r)) clear_op_context(&op);
    free(w.new_versions);
    free(w.chains.items);
    pk_buf_free(&out);
    return pk_op_finish(&op, r);
}
