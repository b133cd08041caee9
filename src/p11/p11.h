/*
 * The PKCS#11 layer. This folder is the only user of pkcs11.h and p11-kit.
 *
 * Callers name keys by their CKA_ID (pk_keyid), never by object handle: the
 * layer keeps an id -> handle cache so hot paths never call FindObjects
 * (SoftHSM scans every object, ~33 us each), and it works from session
 * copies of token keys, which SoftHSM serves about 3x faster. Copies keep
 * CKA_SENSITIVE=TRUE and CKA_EXTRACTABLE=FALSE; key material never leaves
 * the HSM.
 *
 * Thread safety: a pk_p11 is shared by all threads of a p11kms handle.
 * Sessions come from a pool, one operation per session at a time.
 * Reconnect and fork recovery happen inside; callers only see errors.
 */
#ifndef PK_P11_P11_H
#define PK_P11_P11_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "p11kms/p11kms.h"
#include "util/bytes.h"
#include "util/result.h"
#include "util/secbuf.h"

#define PK_KEYID_MAX 48
#define PK_GCM_IV_LEN 12
#define PK_GCM_TAG_LEN 16
#define PK_HMAC_LEN 32
#define PK_AES256_LEN 32
#define PK_KWP_WRAPPED_LEN 40 /* RFC 5649 output for a 32-byte key */

/* A key's CKA_ID: the stable name of a key object in the token. */
typedef struct pk_keyid {
    uint8_t bytes[PK_KEYID_MAX];
    size_t len;
} pk_keyid;

typedef struct pk_p11 pk_p11;

/* What a key object is for; decides its template (usage flags are all explicit). */
typedef enum pk_key_kind {
    PK_KEY_AES_CMK,      /* AES-256: encrypt, decrypt, wrap, unwrap */
    PK_KEY_HMAC,         /* generic secret, 32 bytes: sign, verify */
    PK_KEY_AES_DATA      /* AES-256 session key unwrapped under a CMK: encrypt, decrypt */
} pk_key_kind;

typedef struct pk_p11_opts {
    const char *module;        /* absolute path or p11-kit registered name */
    const char *token_uri;     /* RFC 7512 URI selecting one token */
    const p11kms_config *cfg;  /* PIN source: re-read on reconnect, wiped after login */
    unsigned pool_size;        /* concurrent sessions (>= 1) */
    bool require_login;        /* fail open when login fails (token info probes without) */
    bool read_write;           /* open read-write sessions */
} pk_p11_opts;

/* Mechanism roles p11kms needs; the probe records which the token has. */
typedef enum pk_mech_role {
    PK_MECH_AES_KEYGEN,
    PK_MECH_AES_GCM,
    PK_MECH_AES_KWP,
    PK_MECH_HMAC_SHA256,
    PK_MECH_GENERIC_KEYGEN,
    PK_MECH_ROLE_COUNT
} pk_mech_role;

typedef struct pk_p11_info {
    char module[256];
    char label[33];
    char serial[17];
    char manufacturer[33];
    char model[17];
    bool present[PK_MECH_ROLE_COUNT];
    unsigned long mech[PK_MECH_ROLE_COUNT]; /* the CKM_ value chosen per role */
    bool kwp_verified;                      /* known-answer test passed */
    p11kms_rc login_rc;
    char login_detail[256];
} pk_p11_info;

PK_MUST_USE pk_result pk_p11_open(const pk_p11_opts *opts, pk_p11 **out);
void pk_p11_close(pk_p11 *p);
const pk_p11_info *pk_p11_get_info(const pk_p11 *p);
/* Fails naming the first mechanism p11kms needs that the token lacks. */
PK_MUST_USE pk_result pk_p11_require_mechanisms(const pk_p11 *p);
const char *pk_mech_role_name(pk_mech_role role);
const char *pk_mech_name(unsigned long mech);

/* ---- Key objects ---- */
/*
 * Generate a non-extractable, sensitive key. token=true makes a token object
 * (CMKs, system keys); the label is informational, the id is the name.
 */
PK_MUST_USE pk_result pk_p11_generate_key(pk_p11 *p, pk_key_kind kind, const pk_keyid *id, const char *label);
/* Destroy the token object and any session copy. Missing objects are not an error. */
PK_MUST_USE pk_result pk_p11_destroy_key(pk_p11 *p, const pk_keyid *id);
/* Is there a token object with this id? (Uses the cache, sweeps on a miss.) */
PK_MUST_USE pk_result pk_p11_key_exists(pk_p11 *p, const pk_keyid *id, bool *exists);

typedef struct pk_key_attrs {
    bool sensitive, extractable, never_extractable, always_sensitive, local, token;
    bool encrypt, decrypt, wrap, unwrap, sign, verify, derive;
    char label[80];
} pk_key_attrs;
/* Live attributes of the token object, read from the token (for reports and tests). */
PK_MUST_USE pk_result pk_p11_key_attrs(pk_p11 *p, const pk_keyid *id, pk_key_attrs *out);

/*
 * Turn a key object's CKA_ENCRYPT, DECRYPT, WRAP and UNWRAP on or off (key
 * disable and scheduled deletion take them away, so even a store row put
 * back cannot make the HSM use the key). *applied=false when the token keeps
 * usage flags fixed (CKR_ATTRIBUTE_READ_ONLY and kin), which is not an error.
 */
PK_MUST_USE pk_result pk_p11_key_set_usage(pk_p11 *p, const pk_keyid *id, bool on, bool *applied);

/* Every token object whose label starts with prefix: ids and labels (for reports). */
typedef struct pk_p11_object {
    pk_keyid id;
    char label[80];
} pk_p11_object;
PK_MUST_USE pk_result pk_p11_list_objects(pk_p11 *p, const char *label_prefix, pk_p11_object **out, size_t *n);

/* ---- Crypto (always inside the HSM) ---- */
/*
 * A data key (namespace key): an AES-256 key that exists outside the HSM
 * only wrapped under a CMK (RFC 5649). Operations on it unwrap it into a
 * cached session object named `id` on first use, so a cache miss costs one
 * C_UnwrapKey and a hit costs nothing.
 */
typedef struct pk_p11_dk {
    const pk_keyid *kek; /* the CMK version it is wrapped under */
    pk_bytes wrapped;
} pk_p11_dk;

/*
 * AES-256-GCM with a 96-bit IV and a 128-bit tag (NIST SP 800-38D). `key`
 * names a token key, or with dk != NULL a data key. out receives
 * ciphertext || tag (pt.len + 16 bytes); out must have that room.
 */
PK_MUST_USE pk_result pk_p11_gcm_encrypt(pk_p11 *p, const pk_keyid *key, const pk_p11_dk *dk,
                                         const uint8_t iv[PK_GCM_IV_LEN], pk_bytes aad, pk_bytes pt, uint8_t *out);
/*
 * Inverse of pk_p11_gcm_encrypt. Any authentication failure comes back as
 * P11KMS_ERR_CIPHERTEXT_INVALID (SoftHSM reports it as CKR_GENERAL_ERROR).
 * pt receives the plaintext; it is sized here (SoftHSM needs slack).
 */
PK_MUST_USE pk_result pk_p11_gcm_decrypt(pk_p11 *p, const pk_keyid *key, const pk_p11_dk *dk,
                                         const uint8_t iv[PK_GCM_IV_LEN], pk_bytes aad, pk_bytes ct, pk_secbuf *pt);
/* HMAC-SHA256 in the token. */
PK_MUST_USE pk_result pk_p11_hmac(pk_p11 *p, const pk_keyid *key, pk_bytes data, uint8_t mac[PK_HMAC_LEN]);
/* Random bytes from the token's RNG. */
PK_MUST_USE pk_result pk_p11_random(pk_p11 *p, void *out, size_t n);

/*
 * Generate an AES-256 data key inside the HSM and return it wrapped under
 * `kek` with RFC 5649 key wrap. The key object itself is temporary; the
 * wrapped form is the only copy (out needs PK_KWP_WRAPPED_LEN bytes).
 */
PK_MUST_USE pk_result pk_p11_generate_wrapped(pk_p11 *p, const pk_keyid *kek, uint8_t *out, size_t *out_len);
/* Re-wrap: unwrap under old_kek and wrap under new_kek, inside the HSM. */
PK_MUST_USE pk_result pk_p11_rewrap(pk_p11 *p, const pk_keyid *old_kek, const pk_keyid *new_kek, pk_bytes wrapped,
                                    uint8_t *out, size_t *out_len);
/* Is a data key with this id in the session cache? */
bool pk_p11_data_key_cached(pk_p11 *p, const pk_keyid *id);
/* Bound on cached data-key session objects (LRU beyond it). */
void pk_p11_set_data_key_limit(pk_p11 *p, size_t limit);

/* Counters for tests and benchmarks. */
typedef struct pk_p11_stats {
    uint64_t find_sweeps;   /* FindObjects scans */
    uint64_t copies;        /* session copies made */
    uint64_t unwraps;       /* data keys unwrapped */
    uint64_t evictions;     /* data keys evicted */
    uint64_t reconnects;
    size_t data_keys_cached;
    /* Recovery (issue 17): module re-initialisations, injected or real faults seen, state. */
    uint64_t reinits;
    uint64_t faults;
    unsigned long last_fault; /* CK_RV of the last fault that forced a reconnect; 0 if none */
    bool down;                /* the last reconnect failed; operations fail fast until it succeeds */
} pk_p11_stats;
void pk_p11_get_stats(pk_p11 *p, pk_p11_stats *out);
/* The CKR name of a CK_RV such as stats.last_fault ("CKR_DEVICE_ERROR"). */
const char *pk_p11_rv_name(unsigned long rv);
/*
 * Did this thread rebuild the connection since it last asked? Then *fault
 * is the CK_RV that forced it and *reinit whether the module was
 * re-initialised; the audit trail records both with the operation.
 */
bool pk_p11_take_recovery(unsigned long *fault, bool *reinit);

/* Tests only: close every session behind the pool's back, as a token reset would. */
void pk_p11_test_drop_sessions(pk_p11 *p);

/* ---- Imported secrets (p11_secret.c) ---- */
/*
 * Create a token generic secret holding `value` (SigV4: "AWS4" + secret):
 * sensitive, non-extractable, CKA_SIGN only. HMAC with pk_p11_hmac, remove
 * with pk_p11_destroy_key. The caller wipes value.
 */
PK_MUST_USE pk_result pk_p11_secret_create(pk_p11 *p, const pk_keyid *id, const char *label, pk_bytes value);
/* Tests and reports: does reading CKA_VALUE succeed? (false: CKR_ATTRIBUTE_SENSITIVE) */
PK_MUST_USE pk_result pk_p11_secret_value_readable(pk_p11 *p, const pk_keyid *id, bool *readable);

/* ---- Token set-up (softhsm-token.sh, test fixtures) ---- */
/*
 * Initialise the token in the first free slot of `module` with `label`,
 * set the SO PIN and the user PIN. PINs come from locked memory.
 */
PK_MUST_USE pk_result pk_p11_init_token(const char *module, const char *label, const pk_secbuf *so_pin,
                                        const pk_secbuf *user_pin);

/* ---- Private values (p11_data.c): the store's freshness anchor ---- */
/*
 * Private token objects (a usage-less generic secret named by CKA_ID, the
 * value in CKA_LABEL): only a session logged in with the user PIN reads or
 * changes them. Found by name (0: none); callers keep the handle. read/write
 * of a handle that went stale fail with P11KMS_ERR_NOT_FOUND.
 */
PK_MUST_USE pk_result pk_p11_data_find(pk_p11 *p, const char *label, unsigned long *obj);
PK_MUST_USE pk_result pk_p11_data_create(pk_p11 *p, const char *label, pk_bytes value, unsigned long *obj);
PK_MUST_USE pk_result pk_p11_data_read(pk_p11 *p, unsigned long obj, uint8_t *buf, size_t cap, size_t *len);
PK_MUST_USE pk_result pk_p11_data_write(pk_p11 *p, unsigned long obj, pk_bytes value);

#endif
