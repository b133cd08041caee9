/*
 * Using namespace keys: taking GCM invocations from a version's budget
 * (keys/nonce_window.h; reservations are written to the chain record) and
 * encrypting or decrypting under a version in the HSM. The chain records
 * and their cache are in secret_ns.c.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "secrets/secrets_impl.h"

/* ---- nonce reservation ---- */

typedef struct reserve_job {
    pk_env *env;
    const char *ns;
    pk_key *k;
    uint64_t block, limit;
    uint64_t start;
    bool rolled;
    pk_nskey fresh;
} reserve_job;

static pk_result reserve_tx(void *ctx)
{
    reserve_job *j = ctx;
    pk_env *env = j->env;
    bool found = false;
    PK_GUARD(pk_chain_load(env, j->ns, j->k->id, false, &j->fresh, &found));
    PK_ENSURE(found, P11KMS_ERR_INTEGRITY, "namespace key %s:%s disappeared from the store", j->k->id, j->ns);
    if (pk_nonce_budget_spent(j->fresh.nonce_reserved, j->block, j->limit)) {
        /* The bound of this version is reached: roll to a new namespace-key version. */
        PK_GUARD(pk_nskey_add_version_tx(env, &j->fresh, j->k->nversions));
        j->rolled = true;
    }
    j->start = j->fresh.nonce_reserved;
    j->fresh.nonce_reserved += j->block;
    return pk_nskey_save_tx(env, &j->fresh);
}

/* Take from the window; true when one was available. */
static bool window_take_inlock(pk_secrets *s, const char *id, uint32_t *nsv)
{
    chain_entry *e = pk_chain_find_inlock(s, id);
    uint64_t counter; /* IVs are random here: the window only counts */
    if (e == NULL || !pk_nonce_window_take(&e->win, e->k.nversions, &counter)) return false;
    *nsv = e->win.version;
    return true;
}

pk_result pk_ns_take_nonce(pk_env *env, const char *ns, pk_key *k, uint32_t *nsv)
{
    pk_secrets *s;
    char id[sizeof(((chain_entry *)0)->id)];
    chain_entry *e;
    reserve_job j;
    pk_result r;
    bool got;

    PK_GUARD(pk_secrets_of(env, &s));
    pk_chain_record_id(k->id, ns, id, sizeof(id));
    pthread_mutex_lock(&s->lock);
    got = window_take_inlock(s, id, nsv);
    pthread_mutex_unlock(&s->lock);
    if (got) return PK_OK;

    /* One reservation at a time: threads sharing a namespace wait for it instead of each writing. */
    pthread_mutex_lock(&s->reserve_lock);
    pthread_mutex_lock(&s->lock);
    got = window_take_inlock(s, id, nsv);
    e = pk_chain_find_inlock(s, id);
    memset(&j, 0, sizeof(j));
    j.limit = s->nonce_limit;
    j.block = pk_nonce_window_block(e ? &e->win : &(pk_nonce_window){0}, j.limit);
    pthread_mutex_unlock(&s->lock);
    if (got) {
        pthread_mutex_unlock(&s->reserve_lock);
        return PK_OK;
    }
    j.ns = ns;
    j.k = k;
    j.env = env;
    r = pk_records_write_tx(env->rs, reserve_tx, &j);
    if (pk_ok(r)) {
        uint32_t version = j.fresh.nversions;
        pthread_mutex_lock(&s->lock);
        s->stats.reservations++;
        if (j.rolled) s->stats.rollovers++;
        pk_chain_put_inlock(s, &j.fresh);
        e = pk_chain_find_inlock(s, id);
        if (e != NULL && e->k.nversions == version) pk_nonce_window_fill(&e->win, version, j.start, j.block);
        pthread_mutex_unlock(&s->lock);
        *nsv = version;
    }
    pk_nskey_clear(&j.fresh);
    pthread_mutex_unlock(&s->reserve_lock);
    return r;
}

pk_result pk_ns_current_version(pk_env *env, const char *ns, const char *cmk, uint32_t *out)
{
    pk_nskey k;
    bool found = false;
    PK_GUARD(pk_chain_load(env, ns, cmk, true, &k, &found));
    *out = found ? k.nversions : 0;
    if (found) pk_nskey_clear(&k);
    return PK_OK;
}

/* ---- GCM under a namespace key ---- */

/* pk_nskey_id, with the digest computed once per cached chain instead of once per read. */
static pk_result chain_key_id(pk_secrets *s, const char *ns, const char *cmk, const uint8_t cmk_uuid[PK_UUID_LEN],
                              uint32_t version, pk_keyid *out)
{
    char id[sizeof(((chain_entry *)0)->id)];
    chain_entry *e;
    pk_chain_record_id(cmk, ns, id, sizeof(id));
    pthread_mutex_lock(&s->lock);
    e = pk_chain_find_inlock(s, id);
    if (e != NULL && e->have_digest) {
        pk_nskey_id_of(e->digest, version, out);
        pthread_mutex_unlock(&s->lock);
        return PK_OK;
    }
    pthread_mutex_unlock(&s->lock);
    PK_GUARD(pk_nskey_id(ns, cmk_uuid, version, out));
    pthread_mutex_lock(&s->lock);
    if ((e = pk_chain_find_inlock(s, id)) != NULL) {
        memcpy(e->digest, out->bytes + 1, sizeof(e->digest));
        e->have_digest = true;
    }
    pthread_mutex_unlock(&s->lock);
    return PK_OK;
}

/* A namespace key version as the p11 layer takes it: its CKA_ID and its wrapping (dk points into the struct itself). */
typedef struct ns_data_key {
    pk_keyid id, kek;
    pk_nskey_version ver;
    pk_p11_dk dk;
} ns_data_key;

static pk_result data_key(pk_env *env, const char *ns, const uint8_t cmk_uuid[PK_UUID_LEN], uint32_t nsv,
                          bool in_tx, ns_data_key *out)
{
    pk_secrets *s;
    char cmk[PK_UUID_STR_LEN + 1];
    bool found = false;
    PK_GUARD(pk_secrets_of(env, &s));
    pk_uuid_format(cmk_uuid, cmk);
    PK_ENSURE(nsv >= 1, P11KMS_ERR_CIPHERTEXT_INVALID, "ciphertext invalid or context mismatch");
    PK_GUARD(pk_chain_get(env, s, ns, cmk, nsv, &out->ver, nsv, in_tx, &found));
    PK_ENSURE(found, P11KMS_ERR_INTEGRITY, "namespace key %s version %u under key %s is missing from the store", ns,
              (unsigned)nsv, cmk);
    PK_GUARD(chain_key_id(s, ns, cmk, cmk_uuid, nsv, &out->id));
    pk_key_version_id(cmk_uuid, out->ver.kek_version, &out->kek);
    out->dk.kek = &out->kek;
    out->dk.wrapped = pk_bytes_of(out->ver.wrapped, out->ver.wrapped_len);
    return PK_OK;
}

pk_result pk_ns_encrypt(pk_env *env, const char *ns, const uint8_t cmk_uuid[PK_UUID_LEN], uint32_t nsv,
                        const uint8_t iv[PK_GCM_IV_LEN], pk_bytes aad, pk_bytes pt, uint8_t *out, bool in_tx)
{
    ns_data_key k;
    PK_GUARD(data_key(env, ns, cmk_uuid, nsv, in_tx, &k));
    return pk_p11_gcm_encrypt(env->p11, &k.id, &k.dk, iv, aad, pt, out);
}

pk_result pk_ns_decrypt(pk_env *env, const char *ns, const uint8_t cmk_uuid[PK_UUID_LEN], uint32_t nsv,
                        const uint8_t iv[PK_GCM_IV_LEN], pk_bytes aad, pk_bytes ct, pk_secbuf *pt, bool in_tx)
{
    ns_data_key k;
    PK_GUARD(data_key(env, ns, cmk_uuid, nsv, in_tx, &k));
    return pk_p11_gcm_decrypt(env->p11, &k.id, &k.dk, iv, aad, ct, pt);
}
