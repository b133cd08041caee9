/*
 * Opening and closing, the session pool, and recovery.
 *
 * Sessions stay open for the life of the handle: SoftHSM logs the
 * application out and destroys session objects when the last session
 * closes, and C_CloseSession gets slower as session objects pile up.
 * Recovery (reconnect after CKR_SESSION_* / device errors, and
 * re-initialisation in a forked child) takes the connection write lock, so
 * no operation runs on a half-rebuilt connection.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "p11/p11_internal.h"
#include "util/forkgen.h"

/* The process's fork generation (util/forkgen.c), shared with the audit trail and the store. */
unsigned p11_fork_generation(void)
{
    return (unsigned)pk_fork_generation();
}

static pk_result open_session_inlock(pk_p11 *p, CK_SESSION_HANDLE *out)
{
    CK_FLAGS flags = CKF_SERIAL_SESSION | (p->read_write ? CKF_RW_SESSION : 0);
    P11_ENSURE_RV(p->fn->C_OpenSession(p->slot, flags, NULL, NULL, out), "C_OpenSession");
    return PK_OK;
}

/*
 * Select the token, open the first session and log in; the rest of the pool
 * grows on demand. With tolerate_login, a login failure is recorded in
 * info (for `token info`) instead of failing.
 */
static void close_sessions_inlock(pk_p11 *p);

static pk_result connect_inlock(pk_p11 *p, bool tolerate_login)
{
    pk_result r = PK_OK;
    CK_SESSION_HANDLE s;

    for (int attempt = 1;; attempt++) {
        CK_RV rv;
        PK_GUARD(p11_select_token(p));
        PK_GUARD(open_session_inlock(p, &s));
        p->sessions[0] = s;
        p->nsessions = 1;
        p->idle[0] = s;
        p->nidle = 1;
        p11_reset_last_rv();
        r = p11_login(p, s);
        rv = p11_last_rv();
        if (pk_ok(r) || attempt >= TRANSIENT_TRIES || !p->owns_init ||
            (rv != CKR_GENERAL_ERROR && rv != CKR_USER_PIN_NOT_INITIALIZED))
            break;
        /* A token file caught mid-rewrite by another process: read it again. */
        close_sessions_inlock(p);
        usleep(TRANSIENT_SLEEP_US);
        p11_module_reinit(p);
    }
    p->info.login_rc = r.code;
    p->info.login_detail[0] = '\0';
    if (pk_failed(r))
        snprintf(p->info.login_detail, sizeof(p->info.login_detail), "%s", pk_error_detail());
    return tolerate_login ? PK_OK : r;
}

pk_result p11_pool_start(pk_p11 *p, unsigned pool_max)
{
    p->pool_max = pool_max ? pool_max : 1;
    p->sessions = calloc(p->pool_max, sizeof(*p->sessions));
    p->idle = calloc(p->pool_max, sizeof(*p->idle));
    PK_ENSURE(p->sessions != NULL && p->idle != NULL, P11KMS_ERR_NO_MEMORY, "out of memory");
    pthread_mutex_init(&p->pool_lock, NULL);
    pthread_cond_init(&p->pool_cond, NULL);
    pthread_rwlock_init(&p->conn_lock, NULL);
    return PK_OK;
}

static void close_sessions_inlock(pk_p11 *p)
{
    /*
     * Close our own sessions one by one: C_CloseAllSessions would also close
     * those of any other handle in this process on the same token. The
     * session objects we made go with the session that made them.
     */
    for (unsigned i = 0; p->fn != NULL && i < p->nsessions; i++) (void)p->fn->C_CloseSession(p->sessions[i]);
    p->nsessions = 0;
    p->nidle = 0;
}

void p11_pool_stop(pk_p11 *p)
{
    close_sessions_inlock(p);
    free(p->sessions);
    free(p->idle);
    pthread_mutex_destroy(&p->pool_lock);
    pthread_cond_destroy(&p->pool_cond);
    pthread_rwlock_destroy(&p->conn_lock);
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* This thread's recoveries not yet in an audit record (pk_p11_take_recovery). */
static __thread CK_RV tl_recovery_fault;
static __thread bool tl_recovery_reinit;

bool pk_p11_take_recovery(unsigned long *fault, bool *reinit)
{
    bool any = tl_recovery_fault != CKR_OK;
    *fault = tl_recovery_fault;
    *reinit = tl_recovery_reinit;
    tl_recovery_fault = CKR_OK;
    tl_recovery_reinit = false;
    return any;
}

/* Counters for /health, under cache_lock like the rest of stats. */
static void note_recovery(pk_p11 *p, CK_RV fault, bool reinit, bool down)
{
    if (fault != CKR_OK) {
        tl_recovery_fault = fault;
        tl_recovery_reinit = tl_recovery_reinit || reinit;
    }
    pthread_mutex_lock(&p->cache_lock);
    if (fault != CKR_OK) {
        p->stats.faults++;
        p->stats.last_fault = fault;
    }
    if (reinit) p->stats.reinits++;
    p->stats.down = down;
    pthread_mutex_unlock(&p->cache_lock);
}

/*
 * Rebuild the connection. In a forked child the module must be finalised
 * and initialised again: the child inherited sessions it cannot use, and
 * C_Initialize alone returns CKR_CRYPTOKI_ALREADY_INITIALIZED. After a
 * device fault (`fault`: device error or removal, module not initialised)
 * the module is re-initialised too, as a rebooted HSM needs.
 */
static pk_result reconnect_inlock(pk_p11 *p, bool after_fork, CK_RV fault)
{
    CK_RV rv;
    bool reinit = !after_fork && p->owns_init && p11_ckr_device_fault(fault);

    pthread_mutex_lock(&p->cache_lock);
    p11_cache_forget_inlock(p);
    pthread_mutex_unlock(&p->cache_lock);
    if (after_fork) {
        p->nsessions = p->nidle = 0;
        (void)p->fn->C_Finalize(NULL);
    } else {
        close_sessions_inlock(p);
        if (reinit) (void)p->fn->C_Finalize(NULL);
    }
    rv = p11_initialize(p);
    if (rv != CKR_OK && rv != CKR_CRYPTOKI_ALREADY_INITIALIZED) return p11_init_fail(rv);
    if (rv == CKR_OK) p->owns_init = true;
    p->pid = getpid();
    p->fork_gen = p11_fork_generation();
    p->generation++;
    p->stats.reconnects++;
    note_recovery(p, fault, reinit, false);
    return connect_inlock(p, false);
}

/*
 * Reconnect with bounded exponential backoff: while the last attempt is
 * recent, fail at once with a clear error instead of hammering the HSM
 * (or making callers wait on it).
 */
static pk_result recover_inlock(pk_p11 *p, CK_RV fault)
{
    pk_result r;
    uint64_t now = now_ms();

    if (p->down && now < p->next_try_ms)
        return pk_fail(P11KMS_ERR_TOKEN, "token unavailable: reconnecting after %s (next attempt in %u ms)",
                       pk_ckr_name(fault != CKR_OK ? fault : (CK_RV)p->stats.last_fault),
                       (unsigned)(p->next_try_ms - now));
    r = reconnect_inlock(p, false, fault);
    if (pk_ok(r)) {
        __atomic_store_n(&p->down, false, __ATOMIC_RELEASE);
        p->backoff_ms = 0;
        return r;
    }
    __atomic_store_n(&p->down, true, __ATOMIC_RELEASE);
    p->backoff_ms = p->backoff_ms == 0 ? RECOVER_FIRST_MS : p->backoff_ms * 2;
    if (p->backoff_ms > RECOVER_MAX_MS) p->backoff_ms = RECOVER_MAX_MS;
    p->next_try_ms = now_ms() + p->backoff_ms;
    note_recovery(p, CKR_OK, false, true);
    return r;
}

/* While connecting, a slot or session the module refuses means the token is unusable (exit 3). */
static pk_result token_failure(pk_result r)
{
    return r.code == P11KMS_ERR_HSM ? pk_recode(r, P11KMS_ERR_TOKEN) : r;
}

/*
 * Connect and probe; a session or device fault on the way (an HSM
 * rebooting, a session dropped under us) re-initialises the module and
 * tries again, OPEN_TRIES times with doubling waits (50 + 100 + 200 ms).
 * Login refusals are not faults: they are never retried here.
 */
static pk_result connect_with_retry(pk_p11 *p, bool tolerate_login)
{
    unsigned wait_ms = RECOVER_FIRST_MS;
    pk_result r;

    for (int attempt = 1;; attempt++) {
        CK_RV rv;
        p11_reset_last_rv();
        r = token_failure(connect_inlock(p, tolerate_login));
        if (pk_ok(r)) r = token_failure(p11_probe(p, p->sessions[0]));
        rv = p11_last_rv();
        if (pk_ok(r) || attempt >= OPEN_TRIES || !pk_ckr_reconnectable(rv) || !p->owns_init) return r;
        close_sessions_inlock(p);
        usleep(wait_ms * 1000u);
        wait_ms *= 2;
        p11_module_reinit(p);
        note_recovery(p, rv, true, false);
    }
}

pk_result pk_p11_open(const pk_p11_opts *opts, pk_p11 **out)
{
    pk_result r = PK_OK;
    pk_p11 *p = calloc(1, sizeof(*p));

    *out = NULL;
    PK_ENSURE_ALLOC(p);
    p->module = strdup(opts->module);
    p->token_uri = strdup(opts->token_uri);
    if (opts->cfg != NULL && p11kms_config_get(opts->cfg, "module_args") != NULL) {
        p->module_args = strdup(p11kms_config_get(opts->cfg, "module_args"));
        PK_CHECK_ALLOC(p->module_args);
    }
    p->cfg = opts->cfg;
    p->read_write = opts->read_write;
    p->pid = getpid();
    p->fork_gen = p11_fork_generation();
    p->generation = 1;
    PK_CHECK(p->module != NULL && p->token_uri != NULL, P11KMS_ERR_NO_MEMORY, "out of memory");
    PK_TRY(p11_pool_start(p, opts->pool_size));
    PK_TRY(p11_cache_init(p));
    PK_TRY(p11_module_load(p));
    PK_TRY(connect_with_retry(p, !opts->require_login));
    *out = p;
    p = NULL;
out:
    pk_p11_close(p);
    return r;
}

void pk_p11_close(pk_p11 *p)
{
    if (p == NULL) return;
    if (p->fn != NULL && p->pid == getpid()) {
        pthread_mutex_lock(&p->cache_lock);
        p11_cache_forget_inlock(p); /* closing our sessions destroys our session objects */
        pthread_mutex_unlock(&p->cache_lock);
        /*
         * No C_Logout: login state belongs to the whole application, so it
         * would log out every other handle too. The token logs the
         * application out when its last session closes.
         */
        p11_pool_stop(p);
        p11_module_unload(p);
    } else {
        /* A forked child must not log out or finalise its parent's sessions. */
        p11_pool_stop(p);
        /* A by-name load that found no module still holds p11-kit's list. */
        if (p->fn == NULL && p->registered != NULL) p11_module_unload(p);
    }
    p11_cache_free(p);
    free(p->module);
    free(p->token_uri);
    free(p->module_args);
    free(p);
}

const pk_p11_info *pk_p11_get_info(const pk_p11 *p)
{
    return &p->info;
}

pk_result p11_op_begin(pk_p11 *p, p11_op *op)
{
    pk_result r = PK_OK;

    if (p->fork_gen != p11_fork_generation()) {
        pthread_rwlock_wrlock(&p->conn_lock);
        if (p->fork_gen != p11_fork_generation()) r = reconnect_inlock(p, true, CKR_OK);
        pthread_rwlock_unlock(&p->conn_lock);
        PK_GUARD(r);
    }
    if (__atomic_load_n(&p->down, __ATOMIC_ACQUIRE)) {
        /* The last reconnect failed: try again (backoff permitting) before borrowing a session. */
        pthread_rwlock_wrlock(&p->conn_lock);
        if (p->down) r = recover_inlock(p, CKR_OK);
        pthread_rwlock_unlock(&p->conn_lock);
        PK_GUARD(r);
    }
    pthread_rwlock_rdlock(&p->conn_lock);
    op->generation = p->generation;
    pthread_mutex_lock(&p->pool_lock);
    while (p->nidle == 0 && p->nsessions >= p->pool_max) pthread_cond_wait(&p->pool_cond, &p->pool_lock);
    if (p->nidle > 0) {
        op->s = p->idle[--p->nidle];
    } else {
        r = open_session_inlock(p, &op->s);
        if (pk_ok(r)) p->sessions[p->nsessions++] = op->s;
    }
    pthread_mutex_unlock(&p->pool_lock);
    if (pk_failed(r)) pthread_rwlock_unlock(&p->conn_lock);
    return r;
}

void p11_op_end(pk_p11 *p, p11_op *op)
{
    pthread_mutex_lock(&p->pool_lock);
    if (op->generation == p->generation) {
        p->idle[p->nidle++] = op->s;
        pthread_cond_signal(&p->pool_cond);
    }
    pthread_mutex_unlock(&p->pool_lock);
    pthread_rwlock_unlock(&p->conn_lock);
}

bool p11_op_recover(pk_p11 *p, const p11_op *op, CK_RV rv)
{
    pk_result r = PK_OK;
    if (!pk_ckr_reconnectable(rv)) return false;
    pthread_rwlock_wrlock(&p->conn_lock);
    if (op->generation == p->generation) r = recover_inlock(p, rv);
    pthread_rwlock_unlock(&p->conn_lock);
    return pk_ok(r);
}

pk_result p11_run(pk_p11 *p, bool idempotent, p11_body body, void *ctx)
{
    for (unsigned attempt = 1;; attempt++) {
        p11_op op;
        pk_result r;
        CK_RV rv;

        PK_GUARD(p11_op_begin(p, &op));
        p11_reset_last_rv();
        r = body(p, op.s, ctx);
        p11_op_end(p, &op);
        if (r.code == P11KMS_ERR_NOT_FOUND && attempt == 1 && p->owns_init) {
            /*
             * A key object the caller knows exists is not in our view of the
             * token: another process may have made it while this one's
             * module state was stale. Re-read the token once, then believe it.
             */
            pthread_rwlock_wrlock(&p->conn_lock);
            if (op.generation == p->generation) PK_IGNORE(reconnect_inlock(p, true, CKR_OK));
            pthread_rwlock_unlock(&p->conn_lock);
            continue;
        }
        if (pk_ok(r) || r.code == P11KMS_ERR_CIPHERTEXT_INVALID || r.code == P11KMS_ERR_NOT_FOUND) return r;
        rv = p11_last_rv();
        if (!pk_ckr_reconnectable(rv)) return r;
        if (!idempotent) {
            /* Drop the failed session all the same, but never repeat what may have taken effect. */
            (void)p11_op_recover(p, &op, rv);
            return pk_annotate(r, "lost the token connection; the operation may or may not have taken effect: ");
        }
        if (attempt >= P11_MAX_ATTEMPTS) return pk_annotate(r, "token still failing after reconnecting: ");
        if (!p11_op_recover(p, &op, rv)) return pk_annotate(r, "token connection lost and reconnect failed: ");
    }
}

void pk_p11_test_drop_sessions(pk_p11 *p)
{
    (void)p->fn->C_CloseAllSessions(p->slot);
}
