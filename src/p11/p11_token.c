/*
 * Module loading (p11-kit), token selection by RFC 7512 URI, and login.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <p11-kit/uri.h>

#include "conf/conf.h"
#include "p11/p11_internal.h"

#define MAX_SLOTS 64

void p11_copy_padded(char *dst, size_t dst_size, const unsigned char *src, size_t src_len)
{
    size_t n = src_len < dst_size - 1 ? src_len : dst_size - 1;
    memcpy(dst, src, n);
    while (n > 0 && dst[n - 1] == ' ') n--;
    dst[n] = '\0';
}

/*
 * Initialise with OS locking: SoftHSM without it is not thread-safe.
 * pReserved carries `module_args` (PKCS#11 v2.40 5.4: "reserved for future
 * use"; NSS softokn reads its database parameters from it).
 */
CK_RV p11_initialize(pk_p11 *p)
{
    CK_C_INITIALIZE_ARGS args;
    memset(&args, 0, sizeof(args));
    args.flags = CKF_OS_LOCKING_OK;
    args.pReserved = p->module_args;
    return p->fn->C_Initialize(&args);
}

/* A module that will not start is a token failure (exit 3), with what to check. */
pk_result p11_init_fail(CK_RV rv)
{
    pk_result r = pk_p11_rv_fail(rv, "C_Initialize");
    if (rv == CKR_CANT_LOCK)
        return pk_fail(P11KMS_ERR_TOKEN,
                       "C_Initialize: CKR_CANT_LOCK: the module cannot use OS locking, which p11kms needs "
                       "(see tokens/README.md)");
    if (rv == CKR_ARGUMENTS_BAD)
        return pk_fail(P11KMS_ERR_TOKEN,
                       "C_Initialize: CKR_ARGUMENTS_BAD: the module rejected its initialisation arguments; "
                       "does it need module_args in p11kms.conf? (see tokens/README.md)");
    if (rv >= CKR_VENDOR_DEFINED)
        return pk_fail(P11KMS_ERR_TOKEN,
                       "C_Initialize: %s: the module could not start; check module_args in p11kms.conf "
                       "(for NSS softokn: does configdir name an NSS database?)",
                       pk_ckr_name(rv));
    return pk_recode(r, P11KMS_ERR_TOKEN);
}

static pk_result load_by_path(pk_p11 *p)
{
    PK_ENSURE(access(p->module, R_OK) == 0, P11KMS_ERR_TOKEN, "PKCS#11 module %s not found or not readable",
              p->module);
    p->fn = p11_kit_module_load(p->module, P11_KIT_MODULE_UNMANAGED);
    PK_ENSURE(p->fn != NULL, P11KMS_ERR_TOKEN, "%s is not a loadable PKCS#11 module: %s", p->module,
              p11_kit_message() ? p11_kit_message() : "no C_GetFunctionList");
    return PK_OK;
}

static pk_result load_by_name(pk_p11 *p)
{
    char names[256] = "";
    p->registered = p11_kit_modules_load(NULL, P11_KIT_MODULE_UNMANAGED);
    PK_ENSURE(p->registered != NULL, P11KMS_ERR_TOKEN, "cannot list p11-kit modules: %s",
              p11_kit_message() ? p11_kit_message() : "unknown error");
    p->fn = p11_kit_module_for_name(p->registered, p->module);
    if (p->fn != NULL) return PK_OK;
    for (size_t i = 0; p->registered[i] != NULL; i++) {
        char *n = p11_kit_module_get_name(p->registered[i]);
        if (n != NULL && strlen(names) + strlen(n) + 3 < sizeof(names)) {
            if (names[0]) strcat(names, ", ");
            strcat(names, n);
        }
        free(n);
    }
    return pk_fail(P11KMS_ERR_TOKEN, "no PKCS#11 module is registered with p11-kit as '%s' (registered: %s)",
                   p->module, names[0] ? names : "none");
}

/* A fault at C_Initialize (an HSM still booting) is tried again with doubling waits. */
static CK_RV initialize_with_retry(pk_p11 *p)
{
    unsigned wait_ms = RECOVER_FIRST_MS;
    CK_RV rv = p11_initialize(p);
    for (int attempt = 1; attempt < OPEN_TRIES && pk_ckr_reconnectable(rv); attempt++) {
        usleep(wait_ms * 1000u);
        wait_ms *= 2;
        rv = p11_initialize(p);
    }
    return rv;
}

pk_result p11_module_load(pk_p11 *p)
{
    CK_RV rv;

    if (p->module[0] == '/')
        PK_GUARD(load_by_path(p));
    else if (strchr(p->module, '/') == NULL)
        PK_GUARD(load_by_name(p));
    else
        return pk_fail(P11KMS_ERR_CONFIG, "module '%s' must be an absolute path or a p11-kit module name",
                       p->module);
    rv = initialize_with_retry(p);
    /*
     * Another handle in this process may have initialised the module already;
     * then that handle finalises it, and we recover if it does so first.
     */
    if (rv != CKR_OK && rv != CKR_CRYPTOKI_ALREADY_INITIALIZED) return p11_init_fail(rv);
    p->owns_init = rv == CKR_OK;
    snprintf(p->info.module, sizeof(p->info.module), "%s", p->module);
    return PK_OK;
}

void p11_module_reinit(pk_p11 *p)
{
    (void)p->fn->C_Finalize(NULL);
    (void)p11_initialize(p);
}

void p11_module_unload(pk_p11 *p)
{
    if (p->fn != NULL && p->owns_init) p->fn->C_Finalize(NULL);
    if (p->registered != NULL)
        p11_kit_modules_release(p->registered);
    else if (p->fn != NULL)
        p11_kit_module_release(p->fn);
    p->fn = NULL;
    p->registered = NULL;
}

static void append_token_desc(char *buf, size_t size, const CK_TOKEN_INFO *ti)
{
    char label[33], serial[17];
    size_t used = strlen(buf);
    p11_copy_padded(label, sizeof(label), ti->label, sizeof(ti->label));
    p11_copy_padded(serial, sizeof(serial), ti->serialNumber, sizeof(ti->serialNumber));
    if (used + 4 < size)
        snprintf(buf + used, size - used, "%s'%s' (serial %s)", used ? ", " : "", label, serial);
}

/*
 * SoftHSM rewrites its token file on every C_Login; a process starting at
 * that instant sees no initialised token or fails to log in with
 * CKR_GENERAL_ERROR. Those answers are retried briefly before they count.
 */

static pk_result select_token_once(pk_p11 *p);

pk_result p11_select_token(pk_p11 *p)
{
    pk_result r = PK_OK;
    for (int i = 0; i < TRANSIENT_TRIES; i++) {
        r = select_token_once(p);
        if (pk_ok(r) || r.code != P11KMS_ERR_TOKEN || strstr(pk_error_detail(), "no token matches") == NULL) break;
        usleep(TRANSIENT_SLEEP_US);
        /* SoftHSM reads the token files at C_Initialize: read them again. */
        if (p->owns_init && p->nsessions == 0) p11_module_reinit(p);
    }
    return r;
}

static pk_result select_token_once(pk_p11 *p)
{
    pk_result r = PK_OK;
    P11KitUri *uri = p11_kit_uri_new();
    CK_SLOT_ID slots[MAX_SLOTS];
    CK_ULONG nslots = MAX_SLOTS;
    CK_TOKEN_INFO ti, chosen;

    memset(&chosen, 0, sizeof(chosen));
    char matches[512] = "", present[512] = "";
    int nmatch = 0, prc;

    PK_CHECK_ALLOC(uri);
    PK_CHECK(strncmp(p->token_uri, "pkcs11:", 7) == 0, P11KMS_ERR_CONFIG,
             "token URI '%s' is not a PKCS#11 URI (expected pkcs11:token=LABEL, RFC 7512)", p->token_uri);
    prc = p11_kit_uri_parse(p->token_uri, P11_KIT_URI_FOR_TOKEN, uri);
    PK_CHECK(prc == P11_KIT_URI_OK, P11KMS_ERR_CONFIG, "malformed token URI '%s': %s", p->token_uri,
             p11_kit_uri_message(prc));
    P11_CHECK_RV(p->fn->C_GetSlotList(CK_TRUE, slots, &nslots), "C_GetSlotList");
    for (CK_ULONG i = 0; i < nslots; i++) {
        if (p->fn->C_GetTokenInfo(slots[i], &ti) != CKR_OK) continue;
        if (!(ti.flags & CKF_TOKEN_INITIALIZED)) continue;
        append_token_desc(present, sizeof(present), &ti);
        if (!p11_kit_uri_match_token_info(uri, &ti)) continue;
        append_token_desc(matches, sizeof(matches), &ti);
        if (nmatch++ == 0) {
            p->slot = slots[i];
            chosen = ti;
        }
    }
    PK_CHECK(nmatch > 0, P11KMS_ERR_TOKEN, "no token matches %s (tokens present: %s)", p->token_uri,
             present[0] ? present : "none; is SOFTHSM2_CONF set to the token's softhsm2.conf?");
    PK_CHECK(nmatch == 1, P11KMS_ERR_TOKEN, "%d tokens match %s: %s; add serial=... to the URI to choose one",
             nmatch, p->token_uri, matches);
    p11_copy_padded(p->info.label, sizeof(p->info.label), chosen.label, sizeof(chosen.label));
    p11_copy_padded(p->info.serial, sizeof(p->info.serial), chosen.serialNumber, sizeof(chosen.serialNumber));
    p11_copy_padded(p->info.manufacturer, sizeof(p->info.manufacturer), chosen.manufacturerID,
                    sizeof(chosen.manufacturerID));
    p11_copy_padded(p->info.model, sizeof(p->info.model), chosen.model, sizeof(chosen.model));
out:
    p11_kit_uri_free(uri);
    return r;
}

/* What the token's PIN flags say after a failed login (PKCS#11 gives no count). */
static const char *pin_state(pk_p11 *p)
{
    CK_TOKEN_INFO ti;
    if (p->fn->C_GetTokenInfo(p->slot, &ti) != CKR_OK) return "PIN retry state unknown";
    if (ti.flags & CKF_USER_PIN_LOCKED) return "the user PIN is now locked";
    if (ti.flags & CKF_USER_PIN_FINAL_TRY) return "one attempt is left before the PIN locks";
    if (ti.flags & CKF_USER_PIN_COUNT_LOW) return "few attempts are left before the PIN locks";
    return "the token reports no retry limit reached";
}

pk_result p11_login(pk_p11 *p, CK_SESSION_HANDLE s)
{
    pk_result r = PK_OK;
    pk_secbuf pin = PK_SECBUF_INIT;
    CK_RV rv;

    /*
     * Recovery logs in again after every reconnect; a PIN the token refused
     * once would be refused again, and each try may count towards locking it.
     */
    PK_ENSURE(!p->login_refused, P11KMS_ERR_LOGIN,
              "C_Login: the token refused the user PIN earlier; not trying again, which could lock it "
              "(fix the PIN and restart)");
    PK_TRY(pk_conf_read_pin(p->cfg, &pin));
    rv = p->fn->C_Login(s, CKU_USER, pin.data, (CK_ULONG)pin.len);
    /* Wipe at once: the PIN is re-read from its source if we must log in again. */
    pk_secbuf_free(&pin);
    if (rv == CKR_USER_ALREADY_LOGGED_IN) rv = CKR_OK;
    p->login_refused = rv == CKR_PIN_INCORRECT || rv == CKR_PIN_LOCKED || rv == CKR_PIN_EXPIRED ||
                       rv == CKR_PIN_INVALID || rv == CKR_PIN_LEN_RANGE;
    if (rv == CKR_PIN_INCORRECT) {
        r = pk_fail(P11KMS_ERR_LOGIN, "C_Login: CKR_PIN_INCORRECT: wrong user PIN for token '%s'; %s",
                    p->info.label, pin_state(p));
        goto out;
    }
    if (rv == CKR_PIN_LOCKED) {
        r = pk_fail(P11KMS_ERR_LOGIN, "C_Login: CKR_PIN_LOCKED: the user PIN of token '%s' is locked",
                    p->info.label);
        goto out;
    }
    P11_CHECK_RV(rv, "C_Login");
out:
    pk_secbuf_free(&pin);
    return r;
}

/* Find the slot of an uninitialised token (SoftHSM always keeps one free). */
static pk_result find_free_slot(CK_FUNCTION_LIST *fn, CK_SLOT_ID *slot)
{
    CK_SLOT_ID slots[MAX_SLOTS];
    CK_ULONG n = MAX_SLOTS;
    CK_TOKEN_INFO ti;
    P11_ENSURE_RV(fn->C_GetSlotList(CK_TRUE, slots, &n), "C_GetSlotList");
    for (CK_ULONG i = 0; i < n; i++) {
        if (fn->C_GetTokenInfo(slots[i], &ti) == CKR_OK && !(ti.flags & CKF_TOKEN_INITIALIZED)) {
            *slot = slots[i];
            return PK_OK;
        }
    }
    return pk_fail(P11KMS_ERR_TOKEN, "no free slot for a new token");
}

static pk_result find_slot_by_label(CK_FUNCTION_LIST *fn, const char *label, CK_SLOT_ID *slot)
{
    CK_SLOT_ID slots[MAX_SLOTS];
    CK_ULONG n = MAX_SLOTS;
    CK_TOKEN_INFO ti;
    char l[33];
    P11_ENSURE_RV(fn->C_GetSlotList(CK_TRUE, slots, &n), "C_GetSlotList");
    for (CK_ULONG i = 0; i < n; i++) {
        if (fn->C_GetTokenInfo(slots[i], &ti) != CKR_OK || !(ti.flags & CKF_TOKEN_INITIALIZED)) continue;
        p11_copy_padded(l, sizeof(l), ti.label, sizeof(ti.label));
        if (strcmp(l, label) == 0) {
            *slot = slots[i];
            return PK_OK;
        }
    }
    return pk_fail(P11KMS_ERR_TOKEN, "token '%s' not found after initialisation", label);
}

pk_result pk_p11_init_token(const char *module, const char *label, const pk_secbuf *so_pin,
                            const pk_secbuf *user_pin)
{
    pk_result r = PK_OK;
    pk_p11 p;
    CK_SLOT_ID slot, existing;
    CK_SESSION_HANDLE s = CK_INVALID_HANDLE;
    unsigned char padded[32];
    size_t llen = strlen(label);

    memset(&p, 0, sizeof(p));
    PK_ENSURE(llen > 0 && llen <= 32, P11KMS_ERR_INVALID_ARGUMENT, "token label must be 1 to 32 bytes");
    p.module = (char *)module;
    PK_TRY(p11_module_load(&p));
    PK_CHECK(pk_failed(find_slot_by_label(p.fn, label, &existing)), P11KMS_ERR_ALREADY_EXISTS,
             "a token labelled '%s' already exists", label);
    PK_TRY(find_free_slot(p.fn, &slot));
    memset(padded, ' ', sizeof(padded));
    memcpy(padded, label, llen);
    P11_CHECK_RV(p.fn->C_InitToken(slot, so_pin->data, (CK_ULONG)so_pin->len, padded), "C_InitToken");
    PK_TRY(find_slot_by_label(p.fn, label, &slot));
    P11_CHECK_RV(p.fn->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &s), "C_OpenSession");
    P11_CHECK_RV(p.fn->C_Login(s, CKU_SO, so_pin->data, (CK_ULONG)so_pin->len), "C_Login(SO)");
    P11_CHECK_RV(p.fn->C_InitPIN(s, user_pin->data, (CK_ULONG)user_pin->len), "C_InitPIN");
    (void)p.fn->C_Logout(s);
out:
    if (s != CK_INVALID_HANDLE) p.fn->C_CloseSession(s);
    if (p.fn != NULL) p11_module_unload(&p);
    return r;
}
