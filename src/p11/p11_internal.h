/* Private state of the PKCS#11 layer, shared by the files of src/p11/. */
#ifndef PK_P11_INTERNAL_H
#define PK_P11_INTERNAL_H

#include <pthread.h>
#include <sys/types.h>

#include <p11-kit/p11-kit.h>
#include <p11-kit/pkcs11.h>

#include "p11/p11.h"
#include "util/lru_map.h"

/* One cached key: a token object and/or its session-object form. */
typedef struct cache_entry {
    pk_keyid id;
    CK_OBJECT_HANDLE token_obj;   /* CK_INVALID_HANDLE for data keys */
    CK_OBJECT_HANDLE session_obj; /* session copy or unwrapped key; CK_INVALID_HANDLE if none yet */
    bool data_key;
    unsigned pins;                /* operations using session_obj right now */
    pk_lru_node node;             /* keyed by id; on the LRU list: data keys only */
} cache_entry;

struct pk_p11 {
    CK_FUNCTION_LIST *fn;
    CK_FUNCTION_LIST **registered; /* set when loaded by registered name */
    CK_SLOT_ID slot;
    bool owns_init; /* we called C_Initialize first, so we call C_Finalize */
    char *module;
    char *token_uri;
    char *module_args; /* C_Initialize pReserved (NSS softokn needs one); NULL when unset */
    const p11kms_config *cfg;
    bool read_write;
    pk_p11_info info;
    pid_t pid;
    unsigned fork_gen; /* p11_fork_generation() when this connection was made */

    /* Readers: operations. Writer: reconnect / fork recovery. */
    pthread_rwlock_t conn_lock;
    uint64_t generation;

    pthread_mutex_t pool_lock;
    pthread_cond_t pool_cond;
    CK_SESSION_HANDLE *sessions; /* all open sessions; [0] lives as long as the handle */
    unsigned nsessions, pool_max;
    CK_SESSION_HANDLE *idle;
    unsigned nidle;

    pthread_mutex_t cache_lock;
    pk_lru_map cache;             /* id -> cache_entry; LRU bounds the data keys */
    size_t data_key_limit;
    bool swept;                   /* a full FindObjects sweep ran in this generation */

    pk_p11_stats stats;

    /*
     * Recovery state (issue 17), under conn_lock's write side. While down,
     * operations fail at once until next_try_ms, then one reconnects; the
     * wait doubles up to RECOVER_MAX_MS, so a dead HSM is not hammered.
     */
    bool down;
    uint64_t next_try_ms;
    unsigned backoff_ms;
    /* C_Login said the PIN is wrong or locked: never try it again on this handle. */
    bool login_refused;
};
#define RECOVER_FIRST_MS 50
#define RECOVER_MAX_MS 5000
#define OPEN_TRIES 4

/* A session borrowed for one operation, with the generation it belongs to. */
typedef struct p11_op {
    CK_SESSION_HANDLE s;
    uint64_t generation;
} p11_op;

/* C_Initialize with OS locking and module_args; failures via p11_init_fail (exit 3, with a hint). */
CK_RV p11_initialize(pk_p11 *p);
pk_result p11_init_fail(CK_RV rv);

/* ---- errors (p11_errors.c) ---- */
const char *pk_ckr_name(CK_RV rv);
/* Fail with a code derived from rv and a detail naming the function and CKR. */
pk_result pk_p11_rv_fail_at(CK_RV rv, const char *function, const char *file, int line);
/* The origin is the caller's file:line, not this adapter's. */
#define pk_p11_rv_fail(rv, function) pk_p11_rv_fail_at((rv), (function), __FILE__, __LINE__)
#define P11_CALL(p, fn_name, args) ((p)->fn->fn_name args)
#define P11_ENSURE_RV(rv, name) \
    do { CK_RV rv_ = (rv); if (rv_ != CKR_OK) return pk_p11_rv_fail(rv_, (name)); } while (0)
#define P11_CHECK_RV(rv, name) \
    do { CK_RV rv_ = (rv); if (rv_ != CKR_OK) { r = pk_p11_rv_fail(rv_, (name)); goto out; } } while (0)
/* CK_RV of the last pk_p11_rv_fail on this thread. */
CK_RV p11_last_rv(void);
void p11_reset_last_rv(void);
/*
 * Errors after which a fresh connection may succeed: the session is lost
 * (dropped from the pool, never reused) or the device failed.
 */
bool pk_ckr_reconnectable(CK_RV rv);
/* Device, removal and not-initialised errors: recovery re-initialises the module. */
bool p11_ckr_device_fault(CK_RV rv);

/* ---- module and token (p11_token.c) ---- */
/*
 * SoftHSM rewrites its token file on every C_Login; a process starting at
 * that instant may see no initialised token, or get CKR_GENERAL_ERROR or
 * CKR_USER_PIN_NOT_INITIALIZED from C_Login. Those answers are retried,
 * re-reading the token (C_Finalize + C_Initialize), before they count.
 */
#define TRANSIENT_TRIES 10
#define TRANSIENT_SLEEP_US 20000
PK_MUST_USE pk_result p11_module_load(pk_p11 *p);
void p11_module_unload(pk_p11 *p);
/* C_Finalize + C_Initialize (only when this handle owns the initialisation and has no sessions). */
void p11_module_reinit(pk_p11 *p);
PK_MUST_USE pk_result p11_select_token(pk_p11 *p);
PK_MUST_USE pk_result p11_login(pk_p11 *p, CK_SESSION_HANDLE s);
void p11_copy_padded(char *dst, size_t dst_size, const unsigned char *src, size_t src_len);

/* ---- sessions (p11_pool.c) ---- */
/*
 * Incremented in every forked child (pthread_atfork). Comparing it is a
 * load, where getpid() is a syscall on every operation.
 */
unsigned p11_fork_generation(void);
PK_MUST_USE pk_result p11_pool_start(pk_p11 *p, unsigned pool_max);
void p11_pool_stop(pk_p11 *p);
/* Take the connection read lock and a session; recovers after fork. */
PK_MUST_USE pk_result p11_op_begin(pk_p11 *p, p11_op *op);
void p11_op_end(pk_p11 *p, p11_op *op);
/*
 * After an operation failed with a reconnectable rv: reconnect unless some
 * other thread already did (generation moved on). Returns whether to retry.
 */
bool p11_op_recover(pk_p11 *p, const p11_op *op, CK_RV rv);
/* Idempotent work runs again once, on a fresh connection: more would only stall the caller. */
#define P11_MAX_ATTEMPTS 2

/*
 * Run `body` on a pooled session. A failure whose CK_RV is reconnectable
 * (session closed, token removed) reconnects and runs the body again, at
 * most P11_MAX_ATTEMPTS times in all, but only when `idempotent`: a key that may
 * or may not have been created must not be created twice.
 */
typedef pk_result (*p11_body)(pk_p11 *p, CK_SESSION_HANDLE s, void *ctx);
PK_MUST_USE pk_result p11_run(pk_p11 *p, bool idempotent, p11_body body, void *ctx);

/* ---- handle cache (p11_cache.c) ---- */
PK_MUST_USE pk_result p11_cache_init(pk_p11 *p);
/* Drop every entry without touching the token (after reconnect: handles are stale). */
void p11_cache_forget_inlock(pk_p11 *p);
void p11_cache_free(pk_p11 *p);
/*
 * Session handle to operate with for `id`: makes a session copy of the
 * token key on first use. Pins the entry until p11_cache_unpin.
 */
PK_MUST_USE pk_result p11_cache_get(pk_p11 *p, CK_SESSION_HANDLE s, const pk_keyid *id, cache_entry **out);
void p11_cache_unpin(pk_p11 *p, cache_entry *e);
/* Token object handle for `id`, or CK_INVALID_HANDLE (sweeps on a miss). */
PK_MUST_USE pk_result p11_cache_token_handle(pk_p11 *p, CK_SESSION_HANDLE s, const pk_keyid *id,
                                             CK_OBJECT_HANDLE *out);
void p11_cache_remove(pk_p11 *p, CK_SESSION_HANDLE s, const pk_keyid *id);
/* Destroy a token key's session copy (not in use) but keep its token handle: the next use copies it again. */
void p11_cache_drop_copy(pk_p11 *p, CK_SESSION_HANDLE s, const pk_keyid *id);
/* Pin a cached data key if present; false on a miss. */
bool p11_cache_pin_data_key(pk_p11 *p, const pk_keyid *id, cache_entry **out);
/* Insert a freshly unwrapped data key, pinned; evicts LRU entries past the limit. */
PK_MUST_USE pk_result p11_cache_put_data_key(pk_p11 *p, CK_SESSION_HANDLE s, const pk_keyid *id,
                                             CK_OBJECT_HANDLE obj, cache_entry **out);
void p11_cache_note_token_key(pk_p11 *p, const pk_keyid *id, CK_OBJECT_HANDLE obj);

/* ---- mechanisms (p11_probe.c) ---- */
PK_MUST_USE pk_result p11_probe(pk_p11 *p, CK_SESSION_HANDLE s);

/* Template helpers. */
#define P11_ATTR(type, ptr, len) {(type), (void *)(ptr), (len)}

#endif
