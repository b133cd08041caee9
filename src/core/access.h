/*
 * Access keys for SigV4 (issue 12, docs/AUTH.md). A store record of kind
 * "access" (id = access key id, ref = principal, MAC'd in the HSM like every
 * record) holds the principal, status, creation time and the token
 * object's label. The secret itself exists only as a token generic secret
 * holding "AWS4" + secret (CKA_ID 'A' || access key id), never in the store.
 */
#ifndef PK_CORE_ACCESS_H
#define PK_CORE_ACCESS_H

#include "core/core.h"

#define PK_ACCESS_KIND "access"
#define PK_ACCESS_KEY_ID_LEN 20      /* AKIA + 16 */
#define PK_ACCESS_KEY_ID_MAX 128     /* longest id accepted on the wire (AWS: 16..128) */
#define PK_ACCESS_SECRET_LEN 40
#define PK_ACCESS_PER_PRINCIPAL 2    /* two, so a principal can rotate */
#define PK_ACCESS_LABEL_PREFIX "p11kms:access:"

typedef struct pk_access_key {
    char id[PK_ACCESS_KEY_ID_MAX + 1];
    char principal[256];
    bool active;
    int64_t created_ms;
    char label[PK_ACCESS_KEY_ID_MAX + 16];
} pk_access_key;

/* CKA_ID of the token object holding "AWS4" + secret. */
void pk_access_key_token_id(const char *akid, pk_keyid *out);
/* Load and verify one record (takes store_lock). *found=false when unknown. */
PK_MUST_USE pk_result pk_access_key_load(p11kms *h, const char *akid, pk_access_key *out, bool *found);
/*
 * Tests only (not exported): store an access key with a given id and
 * secret, e.g. the AWS SigV4 test suite's, with no authorisation or audit.
 * The public API only creates keys whose secret it generated itself.
 */
PK_MUST_USE pk_result pk_access_key_import(p11kms *h, const char *principal, const char *akid, const char *secret);

/*
 * Is this token object the secret of an access key the store knows? (The
 * compliance report must not call it unknown.) Takes store_lock.
 */
bool pk_access_key_owns_object(p11kms *h, const pk_p11_object *o);

/* ---- SigV4 signing-key cache (core/api_sigv4.c) ---- */
struct pk_sigv4_cache;
/* Wipe every cached signing key and free the cache (p11kms_close). NULL is fine. */
void pk_sigv4_cache_free(struct pk_sigv4_cache *c);
/* Drop every cached entry (after this handle changed an access key). */
void pk_sigv4_cache_clear(p11kms *h);

#endif
