/*
 * Mechanism probe at open. RFC 5649 key wrap has two numbers in the wild:
 * 0x210A (CKM_AES_KEY_WRAP_PAD, SoftHSM's RFC 5649) and 0x210B
 * (CKM_AES_KEY_WRAP_KWP, PKCS#11 v3.0). NSS uses 0x210A for a different,
 * incompatible padding, so a number alone proves nothing: each candidate is
 * checked against a software RFC 5649 known answer built from public test
 * values.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "crypto/crypto.h"
#include "p11/p11_internal.h"

#define CKM_KWP_V3 0x210BUL
#define MAX_MECHS 512

static const struct {
    unsigned long mech;
    const char *name;
} mech_names[] = {
    {CKM_AES_KEY_GEN, "CKM_AES_KEY_GEN"},
    {CKM_AES_GCM, "CKM_AES_GCM"},
    {CKM_AES_KEY_WRAP_PAD, "CKM_AES_KEY_WRAP_PAD"},
    {CKM_KWP_V3, "CKM_AES_KEY_WRAP_KWP"},
    {CKM_SHA256_HMAC, "CKM_SHA256_HMAC"},
    {CKM_GENERIC_SECRET_KEY_GEN, "CKM_GENERIC_SECRET_KEY_GEN"},
};

static const struct {
    const char *name;
    const char *purpose;
    unsigned long default_mech;
} roles[PK_MECH_ROLE_COUNT] = {
    [PK_MECH_AES_KEYGEN] = {"aes-keygen", "creating CMKs", CKM_AES_KEY_GEN},
    [PK_MECH_AES_GCM] = {"aes-gcm", "encrypt and decrypt", CKM_AES_GCM},
    [PK_MECH_AES_KWP] = {"aes-kwp", "RFC 5649 data-key wrapping", CKM_KWP_V3},
    [PK_MECH_HMAC_SHA256] = {"hmac-sha256", "store integrity and audit seals", CKM_SHA256_HMAC},
    [PK_MECH_GENERIC_KEYGEN] = {"generic-keygen", "creating HMAC keys", CKM_GENERIC_SECRET_KEY_GEN},
};

const char *pk_mech_name(unsigned long mech)
{
    static __thread char unknown[32];
    for (size_t i = 0; i < PK_ARRAY_LEN(mech_names); i++)
        if (mech_names[i].mech == mech) return mech_names[i].name;
    snprintf(unknown, sizeof(unknown), "CKM_0x%lx", mech);
    return unknown;
}

const char *pk_mech_role_name(pk_mech_role role)
{
    return role < PK_MECH_ROLE_COUNT ? roles[role].name : "unknown";
}

/*
 * A token that fails the probe with a session or device fault has not said
 * whether it has the mechanism: remember the fault, so the open fails (and
 * is retried) with it instead of reporting a missing mechanism.
 */
static __thread CK_RV probe_fault;
static __thread const char *probe_fault_fn;

static void note_fault(CK_RV rv, const char *fn)
{
    if (probe_fault == CKR_OK && pk_ckr_reconnectable(rv)) {
        probe_fault = rv;
        probe_fault_fn = fn;
    }
}

static CK_OBJECT_HANDLE import_kat_key(pk_p11 *p, CK_SESSION_HANDLE s, const uint8_t *value, bool wrapping)
{
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_KEY_TYPE kt = CKK_AES;
    CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    CK_ATTRIBUTE tmpl[] = {
        P11_ATTR(CKA_CLASS, &cls, sizeof(cls)),   P11_ATTR(CKA_KEY_TYPE, &kt, sizeof(kt)),
        P11_ATTR(CKA_TOKEN, &no, sizeof(no)),     P11_ATTR(CKA_PRIVATE, &no, sizeof(no)),
        P11_ATTR(CKA_SENSITIVE, &no, sizeof(no)), P11_ATTR(CKA_EXTRACTABLE, &yes, sizeof(yes)),
        P11_ATTR(CKA_WRAP, wrapping ? &yes : &no, sizeof(yes)),
        P11_ATTR(CKA_VALUE, (void *)value, PK_AES256_LEN),
    };
    CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
    CK_RV rv = p->fn->C_CreateObject(s, tmpl, PK_ARRAY_LEN(tmpl), &h);
    if (rv != CKR_OK) {
        note_fault(rv, "C_CreateObject");
        return CK_INVALID_HANDLE;
    }
    return h;
}

/* 1: matches RFC 5649, 0: does not, -1: could not test (token refuses raw import). */
static int kwp_known_answer(pk_p11 *p, CK_SESSION_HANDLE s, unsigned long mech)
{
    uint8_t kek[PK_AES256_LEN], key[PK_AES256_LEN], want[64], got[64];
    size_t want_len = 0;
    CK_ULONG got_len = sizeof(got);
    CK_MECHANISM m = {mech, NULL, 0};
    CK_OBJECT_HANDLE hk, hv;
    int result = -1;

    for (int i = 0; i < PK_AES256_LEN; i++) {
        kek[i] = (uint8_t)i;
        key[i] = (uint8_t)(0xa0 + i);
    }
    if (pk_failed(pk_kwp_wrap_kat(kek, key, sizeof(key), want, &want_len))) return -1;
    hk = import_kat_key(p, s, kek, true);
    hv = import_kat_key(p, s, key, false);
    if (hk != CK_INVALID_HANDLE && hv != CK_INVALID_HANDLE) {
        CK_RV rv = p->fn->C_WrapKey(s, &m, hk, hv, got, &got_len);
        note_fault(rv, "C_WrapKey");
        result = rv == CKR_OK && got_len == want_len && memcmp(got, want, want_len) == 0;
    }
    if (hk != CK_INVALID_HANDLE) (void)p->fn->C_DestroyObject(s, hk);
    if (hv != CK_INVALID_HANDLE) (void)p->fn->C_DestroyObject(s, hv);
    return result;
}

static bool has(const CK_MECHANISM_TYPE *list, CK_ULONG n, unsigned long mech)
{
    for (CK_ULONG i = 0; i < n; i++)
        if (list[i] == mech) return true;
    return false;
}

pk_result p11_probe(pk_p11 *p, CK_SESSION_HANDLE s)
{
    CK_MECHANISM_TYPE list[MAX_MECHS];
    CK_ULONG n = MAX_MECHS;
    const unsigned long kwp_candidates[] = {CKM_KWP_V3, CKM_AES_KEY_WRAP_PAD};

    probe_fault = CKR_OK;
    P11_ENSURE_RV(p->fn->C_GetMechanismList(p->slot, list, &n), "C_GetMechanismList");
    for (int r = 0; r < PK_MECH_ROLE_COUNT; r++) {
        p->info.mech[r] = roles[r].default_mech;
        p->info.present[r] = r != PK_MECH_AES_KWP && has(list, n, roles[r].default_mech);
    }
    /* Prefer a candidate that passes the known answer; else an untestable one. */
    for (int pass = 0; pass < 2 && !p->info.present[PK_MECH_AES_KWP]; pass++) {
        for (size_t i = 0; i < PK_ARRAY_LEN(kwp_candidates); i++) {
            int kat;
            if (!has(list, n, kwp_candidates[i])) continue;
            kat = kwp_known_answer(p, s, kwp_candidates[i]);
            /* Pass 1 runs the test again: one that could not run before may pass now. */
            if ((pass == 0 && kat == 1) || (pass == 1 && kat != 0)) {
                p->info.mech[PK_MECH_AES_KWP] = kwp_candidates[i];
                p->info.present[PK_MECH_AES_KWP] = true;
                p->info.kwp_verified = kat == 1;
                break;
            }
        }
    }
    if (probe_fault != CKR_OK) return pk_p11_rv_fail(probe_fault, probe_fault_fn);
    return PK_OK;
}

pk_result pk_p11_require_mechanisms(const pk_p11 *p)
{
    for (int r = 0; r < PK_MECH_ROLE_COUNT; r++)
        PK_ENSURE(p->info.present[r], P11KMS_ERR_MECHANISM,
                  "token '%s' does not offer %s, which p11kms needs for %s", p->info.label,
                  r == PK_MECH_AES_KWP ? "RFC 5649 key wrap (CKM_AES_KEY_WRAP_KWP 0x210B or CKM_AES_KEY_WRAP_PAD 0x210A)"
                                       : pk_mech_name(roles[r].default_mech),
                  roles[r].purpose);
    return PK_OK;
}
