/*
 * SigV4 verification (docs/AUTH.md). kDate = HMAC("AWS4" + secret, date)
 * runs in the HSM on the access key's token object (C_Sign); kRegion,
 * kService and kSigning are derived with OpenSSL and kSigning is cached per
 * (access key, date, region, service) in locked memory, bounded, and wiped
 * on eviction and on close. Signatures are compared in constant time.
 */
#include "config.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/sigv4.h"
#include "core/access.h"
#include "core/op.h"
#include "core/remote_fwd.h"
#include "crypto/crypto.h"

#define SIGV4_MAX_SKEW_MS (5 * 60 * 1000)
#define SIGV4_CACHE_SLOTS 128
#define SIGV4_CACHE_KEY_MAX (PK_ACCESS_KEY_ID_MAX + 9 + 2 * PK_SIGV4_SCOPE_PART_MAX + 4)

typedef struct cache_slot {
    char key[SIGV4_CACHE_KEY_MAX]; /* "AKID/DATE/REGION/SERVICE"; "" = free */
    char principal[256];
    uint64_t generation;           /* store generation when filled: another process's change drops it */
    uint64_t used;
} cache_slot;

struct pk_sigv4_cache {
    pthread_mutex_t lock;
    cache_slot slots[SIGV4_CACHE_SLOTS];
    uint8_t *ksigning;             /* SIGV4_CACHE_SLOTS * 32 bytes of locked memory */
    uint64_t tick;
};

static pthread_mutex_t create_lock = PTHREAD_MUTEX_INITIALIZER;

static pk_result cache_get(p11kms *h, struct pk_sigv4_cache **out)
{
    struct pk_sigv4_cache *c = __atomic_load_n(&h->sigv4, __ATOMIC_ACQUIRE);
    if (c != NULL) {
        *out = c;
        return PK_OK;
    }
    pthread_mutex_lock(&create_lock);
    c = h->sigv4;
    if (c == NULL && (c = calloc(1, sizeof(*c))) != NULL) {
        c->ksigning = pk_secmem_alloc(SIGV4_CACHE_SLOTS * PK_HMAC_SHA256_LEN);
        if (c->ksigning == NULL) {
            free(c);
            c = NULL;
        } else {
            pthread_mutex_init(&c->lock, NULL);
            __atomic_store_n(&h->sigv4, c, __ATOMIC_RELEASE);
        }
    }
    pthread_mutex_unlock(&create_lock);
    PK_ENSURE_ALLOC(c);
    *out = c;
    return PK_OK;
}

void pk_sigv4_cache_free(struct pk_sigv4_cache *c)
{
    if (c == NULL) return;
    pk_secmem_free(c->ksigning); /* wipes */
    pthread_mutex_destroy(&c->lock);
    free(c);
}

static void clear_inlock(struct pk_sigv4_cache *c)
{
    pk_wipe(c->ksigning, SIGV4_CACHE_SLOTS * PK_HMAC_SHA256_LEN);
    memset(c->slots, 0, sizeof(c->slots));
}

void pk_sigv4_cache_clear(p11kms *h)
{
    struct pk_sigv4_cache *c = __atomic_load_n(&h->sigv4, __ATOMIC_ACQUIRE);
    if (c == NULL) return;
    pthread_mutex_lock(&c->lock);
    clear_inlock(c);
    pthread_mutex_unlock(&c->lock);
}

static bool cache_lookup(struct pk_sigv4_cache *c, const char *key, uint64_t gen, uint8_t out[PK_HMAC_SHA256_LEN],
                         char principal[256])
{
    bool hit = false;
    pthread_mutex_lock(&c->lock);
    for (size_t i = 0; i < SIGV4_CACHE_SLOTS && !hit; i++) {
        cache_slot *s = &c->slots[i];
        if (s->key[0] == '\0' || strcmp(s->key, key) != 0) continue;
        if (s->generation != gen) {
            pk_wipe(c->ksigning + i * PK_HMAC_SHA256_LEN, PK_HMAC_SHA256_LEN);
            memset(s, 0, sizeof(*s));
            break;
        }
        memcpy(out, c->ksigning + i * PK_HMAC_SHA256_LEN, PK_HMAC_SHA256_LEN);
        memcpy(principal, s->principal, 256);
        s->used = ++c->tick;
        hit = true;
    }
    pthread_mutex_unlock(&c->lock);
    return hit;
}

/* Insert, evicting (and wiping) the least recently used slot when full. */
static void cache_put(struct pk_sigv4_cache *c, const char *key, uint64_t gen, const uint8_t k[PK_HMAC_SHA256_LEN],
                      const char *principal)
{
    size_t victim = 0;
    pthread_mutex_lock(&c->lock);
    for (size_t i = 0; i < SIGV4_CACHE_SLOTS; i++) {
        if (c->slots[i].key[0] == '\0') {
            victim = i;
            break;
        }
        if (c->slots[i].used < c->slots[victim].used) victim = i;
    }
    pk_wipe(c->ksigning + victim * PK_HMAC_SHA256_LEN, PK_HMAC_SHA256_LEN);
    snprintf(c->slots[victim].key, sizeof(c->slots[victim].key), "%s", key);
    snprintf(c->slots[victim].principal, sizeof(c->slots[victim].principal), "%s", principal);
    c->slots[victim].generation = gen;
    c->slots[victim].used = ++c->tick;
    memcpy(c->ksigning + victim * PK_HMAC_SHA256_LEN, k, PK_HMAC_SHA256_LEN);
    pthread_mutex_unlock(&c->lock);
}

/* kSigning = HMAC(HMAC(HMAC(kDate, region), service), "aws4_request"), kDate computed in the token. */
static pk_result derive(p11kms *h, const pk_sigv4_auth *a, uint8_t out[PK_HMAC_SHA256_LEN])
{
    uint8_t k1[PK_HMAC_SHA256_LEN], k2[PK_HMAC_SHA256_LEN];
    pk_keyid tid;
    pk_result r = PK_OK;

    pk_access_key_token_id(a->akid, &tid);
    PK_TRY(pk_p11_hmac(h->p11, &tid, pk_bytes_of(a->date, strlen(a->date)), k1));
    PK_TRY(pk_hmac_sha256(k1, sizeof(k1), a->region, strlen(a->region), k2));
    PK_TRY(pk_hmac_sha256(k2, sizeof(k2), a->service, strlen(a->service), k1));
    PK_TRY(pk_hmac_sha256(k1, sizeof(k1), "aws4_request", 12, out));
out:
    pk_wipe(k1, sizeof(k1));
    pk_wipe(k2, sizeof(k2));
    return r;
}

/* The signing key and principal for this scope: from the cache, or the store record and the token. */
static pk_result signing_key(p11kms *h, const pk_sigv4_auth *a, uint8_t out[PK_HMAC_SHA256_LEN],
                             char principal[256])
{
    struct pk_sigv4_cache *c = NULL;
    char key[SIGV4_CACHE_KEY_MAX];
    uint64_t gen = 0;
    pk_access_key k;
    bool found = false;

    PK_GUARD(cache_get(h, &c));
    PK_GUARD(pk_store_generation(&h->env, &gen));
    snprintf(key, sizeof(key), "%s/%s/%s/%s", a->akid, a->date, a->region, a->service);
    if (cache_lookup(c, key, gen, out, principal)) return PK_OK;
    PK_GUARD(pk_access_key_load(h, a->akid, &k, &found));
    PK_ENSURE(found, P11KMS_ERR_UNRECOGNIZED_CLIENT, "the access key id %s is not known to p11kms", a->akid);
    memcpy(principal, k.principal, 256); /* also names the principal in a refusal's record */
    PK_ENSURE(k.active, P11KMS_ERR_UNRECOGNIZED_CLIENT, "the access key %s is disabled", a->akid);
    PK_GUARD(derive(h, a, out));
    cache_put(c, key, gen, out, principal);
    return PK_OK;
}

/* Scope, signed headers and clock: everything that needs no key. */
static pk_result check_request(p11kms *h, const p11kms_sigv4_request *req, const pk_sigv4_auth *a,
                               const char **amz_date)
{
    bool dup = false;
    int64_t t = 0, now = req->now_ms ? req->now_ms : pk_clock(h), skew;

    PK_ENSURE(pk_sigv4_signs(a, "host"), P11KMS_ERR_INCOMPLETE_SIGNATURE,
              "the host header must be signed (add host to SignedHeaders)");
    PK_ENSURE(pk_sigv4_signs(a, "x-amz-date"), P11KMS_ERR_INCOMPLETE_SIGNATURE,
              "the x-amz-date header must be signed (add x-amz-date to SignedHeaders)");
    *amz_date = pk_sigv4_header(req, "x-amz-date", &dup);
    PK_ENSURE(*amz_date != NULL && !dup && pk_sigv4_parse_amz_date(*amz_date, &t), P11KMS_ERR_INCOMPLETE_SIGNATURE,
              "x-amz-date must be one ISO 8601 basic time (yyyymmddThhmmssZ)");
    PK_ENSURE(strncmp(*amz_date, a->date, 8) == 0, P11KMS_ERR_SIGNATURE_INVALID,
              "the date in the credential scope (%s) does not match x-amz-date", a->date);
    PK_ENSURE(strcmp(a->terminator, "aws4_request") == 0, P11KMS_ERR_SIGNATURE_INVALID,
              "the credential scope must end with aws4_request");
    PK_ENSURE(req->service != NULL && strcmp(a->service, req->service) == 0, P11KMS_ERR_SIGNATURE_INVALID,
              "the credential is scoped to service %s, not %s", a->service, req->service ? req->service : "?");
    PK_ENSURE(strcmp(a->region, h->region) == 0, P11KMS_ERR_SIGNATURE_INVALID,
              "the credential is scoped to region %s; this service is in %s", a->region, h->region);
    skew = now > t ? now - t : t - now;
    PK_ENSURE(skew <= SIGV4_MAX_SKEW_MS, P11KMS_ERR_REQUEST_EXPIRED,
              "the request time %s is more than 5 minutes from the server's time", *amz_date);
    return PK_OK;
}

static pk_result verify(p11kms *h, const p11kms_sigv4_request *req, const pk_sigv4_auth *a, char principal[256])
{
    const char *amz_date = NULL;
    pk_buf canon = {0}, sts = {0};
    uint8_t ks[PK_HMAC_SHA256_LEN], sig[PK_HMAC_SHA256_LEN];
    pk_result r = PK_OK;

    PK_TRY(check_request(h, req, a, &amz_date));
    PK_TRY(pk_sigv4_canonical_request(req, a, strcmp(a->service, "s3") != 0, &canon));
    PK_TRY(pk_sigv4_string_to_sign(a, amz_date, &canon, &sts));
    PK_TRY(signing_key(h, a, ks, principal));
    PK_TRY(pk_hmac_sha256(ks, sizeof(ks), sts.data, sts.len, sig));
    PK_CHECK(pk_ct_equal(sig, a->signature, sizeof(sig)), P11KMS_ERR_SIGNATURE_INVALID,
             "the request signature does not match the signature p11kms calculated; check the secret access key "
             "and the signing method");
out:
    pk_wipe(ks, sizeof(ks));
    pk_wipe(sig, sizeof(sig));
    pk_buf_free(&canon);
    pk_buf_free(&sts);
    return r;
}

/*
 * Every refusal is on record: who tried (the access key id), why, and the
 * principal when the key was looked up. No extra store or HSM work here: a
 * flood of bad requests costs no more than the checks themselves.
 */
static p11kms_rc refuse(p11kms *h, const pk_sigv4_auth *a, const char *principal, const char *request_id,
                        pk_result r)
{
    char detail[512], rid[PK_AUDIT_REQUEST_ID_MAX + 1];
    pk_audit_event ev;
    pk_audit_kv details[1];
    pk_result ar;

    snprintf(detail, sizeof(detail), "%s", p11kms_last_error());
    memset(&ev, 0, sizeof(ev));
    if (principal[0] != '\0') ev.principal = principal;
    ev.action = "p11kms:Authenticate";
    ev.decision = PK_AUDIT_DECISION_NA;
    ev.result = r.code;
    details[0] = (pk_audit_kv){"reason", detail};
    ev.details = details;
    ev.n_details = 1;
    ev.auth_method = "sigv4";
    ev.auth_id = a->akid[0] ? a->akid : NULL;
    ev.auth_request_id = request_id;
    if (h->audit != NULL) {
        ar = pk_audit_write(h->audit, &ev, rid);
        if (pk_failed(ar)) return ar.code;
    }
    return pk_fail(r.code, "%s", detail).code;
}

P11KMS_API p11kms_rc p11kms_sigv4_verify(p11kms *h, const p11kms_sigv4_request *req, p11kms_caller **caller,
                                         char **access_key_id)
{
    if (h != NULL && h->remote != NULL)
        return (caller ? *caller = NULL : NULL, access_key_id ? *access_key_id = NULL : NULL,
                pk_fwd_refuse("p11kms_sigv4_verify"));
    pk_sigv4_auth a;
    char principal[256] = "";
    const char *request_id = NULL;
    bool dup = false;
    pk_result r;
    p11kms_rc rc;

    pk_error_clear();
    memset(&a, 0, sizeof(a));
    if (caller) *caller = NULL;
    if (access_key_id) *access_key_id = NULL;
    if (h == NULL || req == NULL || caller == NULL || req->struct_size < offsetof(p11kms_sigv4_request, request_id))
        return pk_fail(P11KMS_ERR_INVALID_ARGUMENT, "p11kms_sigv4_verify: bad arguments").code;
    /* Callers built before request_id existed pass the shorter size. */
    if (req->struct_size >= offsetof(p11kms_sigv4_request, request_id) + sizeof(req->request_id))
        request_id = req->request_id;
    const char *authz = pk_sigv4_header(req, "authorization", &dup);
    r = dup ? pk_fail(P11KMS_ERR_INCOMPLETE_SIGNATURE, "the request has more than one Authorization header")
            : pk_sigv4_parse_authorization(authz, &a);
    if (pk_ok(r)) r = verify(h, req, &a, principal);
    if (pk_failed(r)) return refuse(h, &a, principal, request_id, r);
    rc = p11kms_caller_new(principal, caller);
    if (rc == P11KMS_OK) rc = p11kms_caller_set_auth(*caller, P11KMS_AUTH_SIGV4, a.akid, request_id);
    if (rc == P11KMS_OK && access_key_id != NULL && (*access_key_id = strdup(a.akid)) == NULL)
        rc = pk_fail(P11KMS_ERR_NO_MEMORY, "out of memory").code;
    if (rc != P11KMS_OK) {
        p11kms_caller_free(*caller);
        *caller = NULL;
    }
    return rc;
}
