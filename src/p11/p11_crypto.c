/*
 * Cryptographic operations, all inside the token: AES-GCM, HMAC, RFC 5649
 * key wrap, random. Each runs as one body under p11_run, so a dropped
 * session is recovered transparently (all of these are idempotent).
 */
#include "config.h"

#include <string.h>

#include "crypto/wipe.h"
#include "p11/p11_internal.h"

#define GCM_MAX_INPUT (64u * 1024u * 1024u)

/* Pinned session handle for a token key or a data key (unwrapping it on a miss). */
static pk_result key_entry(pk_p11 *p, CK_SESSION_HANDLE s, const pk_keyid *key, const pk_p11_dk *dk,
                           cache_entry **out)
{
    cache_entry *kek = NULL;
    CK_OBJECT_HANDLE obj = CK_INVALID_HANDLE;
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_KEY_TYPE kt = CKK_AES;
    CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    CK_MECHANISM m = {p->info.mech[PK_MECH_AES_KWP], NULL, 0};
    CK_ATTRIBUTE tmpl[] = {
        P11_ATTR(CKA_CLASS, &cls, sizeof(cls)),     P11_ATTR(CKA_KEY_TYPE, &kt, sizeof(kt)),
        P11_ATTR(CKA_TOKEN, &no, sizeof(no)),       P11_ATTR(CKA_PRIVATE, &yes, sizeof(yes)),
        P11_ATTR(CKA_SENSITIVE, &yes, sizeof(yes)), P11_ATTR(CKA_EXTRACTABLE, &no, sizeof(no)),
        P11_ATTR(CKA_ENCRYPT, &yes, sizeof(yes)),   P11_ATTR(CKA_DECRYPT, &yes, sizeof(yes)),
        P11_ATTR(CKA_WRAP, &no, sizeof(no)),        P11_ATTR(CKA_UNWRAP, &no, sizeof(no)),
        P11_ATTR(CKA_SIGN, &no, sizeof(no)),        P11_ATTR(CKA_VERIFY, &no, sizeof(no)),
        P11_ATTR(CKA_DERIVE, &no, sizeof(no)),
    };
    CK_RV rv;

    if (dk == NULL) return p11_cache_get(p, s, key, out);
    if (p11_cache_pin_data_key(p, key, out)) return PK_OK;
    PK_GUARD(p11_cache_get(p, s, dk->kek, &kek));
    rv = p->fn->C_UnwrapKey(s, &m, kek->session_obj, (CK_BYTE_PTR)dk->wrapped.ptr, (CK_ULONG)dk->wrapped.len, tmpl,
                            PK_ARRAY_LEN(tmpl), &obj);
    p11_cache_unpin(p, kek);
    /* SoftHSM reports a corrupt wrapped key as CKR_GENERAL_ERROR. */
    if (rv == CKR_GENERAL_ERROR || rv == CKR_WRAPPED_KEY_INVALID || rv == CKR_WRAPPED_KEY_LEN_RANGE)
        return pk_fail(P11KMS_ERR_CIPHERTEXT_INVALID, "C_UnwrapKey: %s: wrapped data key failed to unwrap",
                       pk_ckr_name(rv));
    P11_ENSURE_RV(rv, "C_UnwrapKey");
    return p11_cache_put_data_key(p, s, key, obj, out);
}

typedef struct gcm_job {
    const pk_keyid *key;
    const pk_p11_dk *dk;
    const uint8_t *iv;
    pk_bytes aad;
    pk_bytes in;
    uint8_t *out;       /* encrypt */
    pk_secbuf *pt;      /* decrypt */
} gcm_job;

static void gcm_params(CK_GCM_PARAMS *g, const gcm_job *j)
{
    memset(g, 0, sizeof(*g));
    g->iv_ptr = (CK_BYTE_PTR)j->iv;
    g->iv_len = PK_GCM_IV_LEN;
    g->iv_bits = PK_GCM_IV_LEN * 8; /* NSS checks it; SoftHSM ignores it */
    g->aad_ptr = (CK_BYTE_PTR)j->aad.ptr;
    g->aad_len = (CK_ULONG)j->aad.len;
    /* Always 128: SoftHSM would accept 0 and produce no tag at all. */
    g->tag_bits = PK_GCM_TAG_LEN * 8;
}

static pk_result gcm_encrypt_body(pk_p11 *p, CK_SESSION_HANDLE s, void *ctx)
{
    gcm_job *j = ctx;
    cache_entry *e;
    CK_GCM_PARAMS g;
    CK_MECHANISM m = {CKM_AES_GCM, &g, sizeof(g)};
    CK_ULONG out_len = (CK_ULONG)(j->in.len + PK_GCM_TAG_LEN);
    CK_RV rv;

    PK_GUARD(key_entry(p, s, j->key, j->dk, &e));
    gcm_params(&g, j);
    rv = p->fn->C_EncryptInit(s, &m, e->session_obj);
    if (rv == CKR_OK) rv = p->fn->C_Encrypt(s, (CK_BYTE_PTR)j->in.ptr, (CK_ULONG)j->in.len, j->out, &out_len);
    p11_cache_unpin(p, e);
    P11_ENSURE_RV(rv, "C_Encrypt");
    /* Check the tag really is there: never trust the token to have honoured tag_bits. */
    PK_ENSURE(out_len == j->in.len + PK_GCM_TAG_LEN, P11KMS_ERR_HSM,
              "C_Encrypt: AES-GCM returned %lu bytes, expected %zu", (unsigned long)out_len,
              j->in.len + PK_GCM_TAG_LEN);
    return PK_OK;
}

pk_result pk_p11_gcm_encrypt(pk_p11 *p, const pk_keyid *key, const pk_p11_dk *dk, const uint8_t iv[PK_GCM_IV_LEN],
                             pk_bytes aad, pk_bytes pt, uint8_t *out)
{
    gcm_job j = {key, dk, iv, aad, pt, out, NULL};
    PK_ENSURE(pt.len <= GCM_MAX_INPUT, P11KMS_ERR_LIMIT, "plaintext too large for one GCM operation");
    return p11_run(p, true, gcm_encrypt_body, &j);
}

static bool is_auth_failure(CK_RV rv)
{
    /* SoftHSM returns CKR_GENERAL_ERROR for a bad tag; the standard codes are the others. */
    return rv == CKR_GENERAL_ERROR || rv == CKR_ENCRYPTED_DATA_INVALID || rv == CKR_ENCRYPTED_DATA_LEN_RANGE ||
           rv == CKR_FUNCTION_FAILED || rv == CKR_DATA_INVALID || rv == CKR_DATA_LEN_RANGE;
}

static pk_result gcm_decrypt_body(pk_p11 *p, CK_SESSION_HANDLE s, void *ctx)
{
    gcm_job *j = ctx;
    cache_entry *e;
    CK_GCM_PARAMS g;
    CK_MECHANISM m = {CKM_AES_GCM, &g, sizeof(g)};
    /* SoftHSM wants room for the whole ciphertext, tag included. */
    CK_ULONG out_len = (CK_ULONG)j->in.len;
    CK_RV rv;

    PK_GUARD(key_entry(p, s, j->key, j->dk, &e));
    gcm_params(&g, j);
    rv = p->fn->C_DecryptInit(s, &m, e->session_obj);
    if (rv == CKR_OK) rv = p->fn->C_Decrypt(s, (CK_BYTE_PTR)j->in.ptr, (CK_ULONG)j->in.len, j->pt->data, &out_len);
    p11_cache_unpin(p, e);
    if (is_auth_failure(rv)) {
        pk_wipe(j->pt->data, j->pt->cap);
        return pk_fail(P11KMS_ERR_CIPHERTEXT_INVALID, "ciphertext invalid or context mismatch");
    }
    P11_ENSURE_RV(rv, "C_Decrypt");
    PK_ENSURE(out_len + PK_GCM_TAG_LEN == j->in.len, P11KMS_ERR_CIPHERTEXT_INVALID,
              "ciphertext invalid or context mismatch");
    j->pt->len = out_len;
    return PK_OK;
}

pk_result pk_p11_gcm_decrypt(pk_p11 *p, const pk_keyid *key, const pk_p11_dk *dk, const uint8_t iv[PK_GCM_IV_LEN],
                             pk_bytes aad, pk_bytes ct, pk_secbuf *pt)
{
    gcm_job j = {key, dk, iv, aad, ct, NULL, pt};
    pk_result r;

    PK_ENSURE(ct.len >= PK_GCM_TAG_LEN, P11KMS_ERR_CIPHERTEXT_INVALID, "ciphertext invalid or context mismatch");
    PK_ENSURE(ct.len <= GCM_MAX_INPUT + PK_GCM_TAG_LEN, P11KMS_ERR_LIMIT, "ciphertext too large");
    if (pt->cap < ct.len + 1) {
        pk_secbuf_free(pt);
        PK_GUARD(pk_secbuf_alloc(pt, ct.len));
    }
    r = p11_run(p, true, gcm_decrypt_body, &j);
    if (pk_failed(r)) pt->len = 0;
    return r;
}

typedef struct hmac_job {
    const pk_keyid *key;
    pk_bytes data;
    uint8_t *mac;
} hmac_job;

static pk_result hmac_body(pk_p11 *p, CK_SESSION_HANDLE s, void *ctx)
{
    hmac_job *j = ctx;
    cache_entry *e;
    CK_MECHANISM m = {CKM_SHA256_HMAC, NULL, 0};
    CK_ULONG len = PK_HMAC_LEN;
    CK_RV rv;

    PK_GUARD(p11_cache_get(p, s, j->key, &e));
    rv = p->fn->C_SignInit(s, &m, e->session_obj);
    if (rv == CKR_OK) rv = p->fn->C_Sign(s, (CK_BYTE_PTR)j->data.ptr, (CK_ULONG)j->data.len, j->mac, &len);
    p11_cache_unpin(p, e);
    P11_ENSURE_RV(rv, "C_Sign");
    PK_ENSURE(len == PK_HMAC_LEN, P11KMS_ERR_HSM, "C_Sign: HMAC-SHA256 returned %lu bytes", (unsigned long)len);
    return PK_OK;
}

pk_result pk_p11_hmac(pk_p11 *p, const pk_keyid *key, pk_bytes data, uint8_t mac[PK_HMAC_LEN])
{
    hmac_job j = {key, data, mac};
    return p11_run(p, true, hmac_body, &j);
}

typedef struct random_job {
    void *out;
    size_t n;
} random_job;

static pk_result random_body(pk_p11 *p, CK_SESSION_HANDLE s, void *ctx)
{
    random_job *j = ctx;
    P11_ENSURE_RV(p->fn->C_GenerateRandom(s, j->out, (CK_ULONG)j->n), "C_GenerateRandom");
    return PK_OK;
}

pk_result pk_p11_random(pk_p11 *p, void *out, size_t n)
{
    random_job j = {out, n};
    return p11_run(p, true, random_body, &j);
}

typedef struct wrap_job {
    const pk_keyid *old_kek; /* NULL: generate a fresh key instead of unwrapping */
    const pk_keyid *new_kek;
    pk_bytes wrapped;
    uint8_t *out;
    size_t *out_len;
} wrap_job;

/* A temporary session key that may be wrapped but never read in clear. */
#define TEMP_KEY_TEMPLATE(cls, kt, len, yes, no)                                                          \
    {                                                                                                     \
        P11_ATTR(CKA_CLASS, &cls, sizeof(cls)), P11_ATTR(CKA_KEY_TYPE, &kt, sizeof(kt)),                  \
            P11_ATTR(CKA_TOKEN, &no, sizeof(no)), P11_ATTR(CKA_PRIVATE, &yes, sizeof(yes)),               \
            P11_ATTR(CKA_SENSITIVE, &yes, sizeof(yes)), P11_ATTR(CKA_EXTRACTABLE, &yes, sizeof(yes)),     \
            P11_ATTR(CKA_ENCRYPT, &yes, sizeof(yes)), P11_ATTR(CKA_DECRYPT, &yes, sizeof(yes)),           \
            P11_ATTR(CKA_WRAP, &no, sizeof(no)), P11_ATTR(CKA_UNWRAP, &no, sizeof(no)),                   \
            P11_ATTR(CKA_SIGN, &no, sizeof(no)), P11_ATTR(CKA_VERIFY, &no, sizeof(no)),                   \
            P11_ATTR(CKA_DERIVE, &no, sizeof(no)), P11_ATTR(CKA_VALUE_LEN, &len, sizeof(len))             \
    }

static pk_result wrap_body(pk_p11 *p, CK_SESSION_HANDLE s, void *ctx)
{
    pk_result r = PK_OK;
    wrap_job *j = ctx;
    cache_entry *old_e = NULL, *new_e = NULL;
    CK_OBJECT_HANDLE tmp = CK_INVALID_HANDLE;
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_KEY_TYPE kt = CKK_AES;
    CK_ULONG len = PK_AES256_LEN;
    CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    CK_ATTRIBUTE tmpl[] = TEMP_KEY_TEMPLATE(cls, kt, len, yes, no);
    CK_MECHANISM kwp = {p->info.mech[PK_MECH_AES_KWP], NULL, 0};
    CK_MECHANISM gen = {CKM_AES_KEY_GEN, NULL, 0};
    CK_ULONG out_len = PK_KWP_WRAPPED_LEN;
    CK_RV rv;

    PK_TRY(p11_cache_get(p, s, j->new_kek, &new_e));
    if (j->old_kek == NULL) {
        P11_CHECK_RV(p->fn->C_GenerateKey(s, &gen, tmpl, PK_ARRAY_LEN(tmpl), &tmp), "C_GenerateKey");
    } else {
        PK_TRY(p11_cache_get(p, s, j->old_kek, &old_e));
        /* CKA_VALUE_LEN must not be given to C_UnwrapKey; the wrapped data sets it. */
        rv = p->fn->C_UnwrapKey(s, &kwp, old_e->session_obj, (CK_BYTE_PTR)j->wrapped.ptr,
                                (CK_ULONG)j->wrapped.len, tmpl, PK_ARRAY_LEN(tmpl) - 1, &tmp);
        PK_CHECK(rv != CKR_GENERAL_ERROR && rv != CKR_WRAPPED_KEY_INVALID && rv != CKR_WRAPPED_KEY_LEN_RANGE,
                 P11KMS_ERR_CIPHERTEXT_INVALID, "C_UnwrapKey: %s: wrapped data key failed to unwrap",
                 pk_ckr_name(rv));
        P11_CHECK_RV(rv, "C_UnwrapKey");
    }
    P11_CHECK_RV(p->fn->C_WrapKey(s, &kwp, new_e->session_obj, tmp, j->out, &out_len), "C_WrapKey");
    *j->out_len = out_len;
out:
    if (tmp != CK_INVALID_HANDLE) (void)p->fn->C_DestroyObject(s, tmp);
    if (old_e != NULL) p11_cache_unpin(p, old_e);
    if (new_e != NULL) p11_cache_unpin(p, new_e);
    return r;
}

pk_result pk_p11_generate_wrapped(pk_p11 *p, const pk_keyid *kek, uint8_t *out, size_t *out_len)
{
    wrap_job j = {NULL, kek, {NULL, 0}, out, out_len};
    return p11_run(p, true, wrap_body, &j);
}

pk_result pk_p11_rewrap(pk_p11 *p, const pk_keyid *old_kek, const pk_keyid *new_kek, pk_bytes wrapped,
                        uint8_t *out, size_t *out_len)
{
    wrap_job j = {old_kek, new_kek, wrapped, out, out_len};
    PK_ENSURE(wrapped.len <= PK_KWP_WRAPPED_LEN, P11KMS_ERR_CIPHERTEXT_INVALID, "wrapped data key has a bad length");
    return p11_run(p, true, wrap_body, &j);
}
