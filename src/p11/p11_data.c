/*
 * Small private values in the token (the store's freshness anchor,
 * core/fresh_store.c). A value is a private token object that only a
 * session logged in with the user PIN can read, create or change: a
 * generic secret key generated in the token, with no usage at all, named by
 * CKA_ID, whose value lives in CKA_LABEL, in hex. Measured: SoftHSM 2.6
 * refuses to change a data object's CKA_VALUE (CKR_ATTRIBUTE_READ_ONLY) and
 * NSS softokn refuses private token data objects altogether
 * (CKR_ATTRIBUTE_VALUE_INVALID), while PKCS#11 lets every token change a
 * storage object's label. Callers keep the object handle: FindObjects scans
 * every object in SoftHSM (~33 us each), so it runs once per handle.
 */
#include "config.h"

#include <string.h>

#include "p11/p11_internal.h"
#include "util/codec.h"

#define VALUE_MAX 128 /* bytes; the label holds twice as many hex digits */

typedef struct data_job {
    const char *label;
    pk_bytes value;
    uint8_t *buf;
    size_t cap;
    size_t *len;
    unsigned long *obj;
} data_job;

static pk_result find_body(pk_p11 *p, CK_SESSION_HANDLE s, void *ctx)
{
    data_job *j = ctx;
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_ATTRIBUTE tmpl[] = {
        P11_ATTR(CKA_CLASS, &cls, sizeof(cls)),
        P11_ATTR(CKA_ID, (void *)j->label, strlen(j->label)),
    };
    CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
    CK_ULONG n = 0;
    CK_RV rv;

    P11_ENSURE_RV(p->fn->C_FindObjectsInit(s, tmpl, PK_ARRAY_LEN(tmpl)), "C_FindObjectsInit");
    rv = p->fn->C_FindObjects(s, &h, 1, &n);
    (void)p->fn->C_FindObjectsFinal(s);
    P11_ENSURE_RV(rv, "C_FindObjects");
    *j->obj = n == 1 ? (unsigned long)h : 0;
    return PK_OK;
}

pk_result pk_p11_data_find(pk_p11 *p, const char *label, unsigned long *obj)
{
    data_job j = {.label = label, .obj = obj};
    *obj = 0;
    return p11_run(p, true, find_body, &j);
}

static pk_result create_body(pk_p11 *p, CK_SESSION_HANDLE s, void *ctx)
{
    data_job *j = ctx;
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_KEY_TYPE kt = CKK_GENERIC_SECRET;
    CK_ULONG len = 16;
    CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    CK_MECHANISM m = {CKM_GENERIC_SECRET_KEY_GEN, NULL, 0};
    char hex[2 * VALUE_MAX + 1];
    /* A key only by form: every usage off, never extractable. */
    CK_ATTRIBUTE tmpl[] = {
        P11_ATTR(CKA_CLASS, &cls, sizeof(cls)),       P11_ATTR(CKA_KEY_TYPE, &kt, sizeof(kt)),
        P11_ATTR(CKA_VALUE_LEN, &len, sizeof(len)),   P11_ATTR(CKA_TOKEN, &yes, sizeof(yes)),
        P11_ATTR(CKA_PRIVATE, &yes, sizeof(yes)),     P11_ATTR(CKA_SENSITIVE, &yes, sizeof(yes)),
        P11_ATTR(CKA_EXTRACTABLE, &no, sizeof(no)),   P11_ATTR(CKA_ENCRYPT, &no, sizeof(no)),
        P11_ATTR(CKA_DECRYPT, &no, sizeof(no)),       P11_ATTR(CKA_WRAP, &no, sizeof(no)),
        P11_ATTR(CKA_UNWRAP, &no, sizeof(no)),        P11_ATTR(CKA_SIGN, &no, sizeof(no)),
        P11_ATTR(CKA_VERIFY, &no, sizeof(no)),        P11_ATTR(CKA_DERIVE, &no, sizeof(no)),
        P11_ATTR(CKA_MODIFIABLE, &yes, sizeof(yes)),
        P11_ATTR(CKA_ID, (void *)j->label, strlen(j->label)),
        P11_ATTR(CKA_LABEL, hex, 2 * j->value.len),
    };
    CK_OBJECT_HANDLE h;

    pk_hex_encode(j->value.ptr, j->value.len, hex);
    P11_ENSURE_RV(p->fn->C_GenerateKey(s, &m, tmpl, PK_ARRAY_LEN(tmpl), &h), "C_GenerateKey");
    *j->obj = (unsigned long)h;
    return PK_OK;
}

pk_result pk_p11_data_create(pk_p11 *p, const char *label, pk_bytes value, unsigned long *obj)
{
    data_job j = {.label = label, .value = value, .obj = obj};
    PK_ENSURE(value.len <= VALUE_MAX, P11KMS_ERR_INTERNAL, "token data object value too long");
    /* Not idempotent: after a lost connection the object may exist already. */
    return p11_run(p, false, create_body, &j);
}

/* A handle from before a reconnect (or of a destroyed object) is reported as not found: find it again. */
static pk_result data_rv(CK_RV rv, const char *fn)
{
    if (rv == CKR_OBJECT_HANDLE_INVALID)
        return pk_fail(P11KMS_ERR_NOT_FOUND, "token data object is gone (%s: CKR_OBJECT_HANDLE_INVALID)", fn);
    return pk_p11_rv_fail(rv, fn);
}

static pk_result read_body(pk_p11 *p, CK_SESSION_HANDLE s, void *ctx)
{
    data_job *j = ctx;
    char hex[2 * VALUE_MAX + 1];
    CK_ATTRIBUTE a = P11_ATTR(CKA_LABEL, hex, sizeof(hex) - 1);
    CK_RV rv = p->fn->C_GetAttributeValue(s, (CK_OBJECT_HANDLE)*j->obj, &a, 1);

    if (rv != CKR_OK && rv != CKR_BUFFER_TOO_SMALL) return data_rv(rv, "C_GetAttributeValue");
    /* Not ours, or torn: the caller treats an unreadable value as no value. */
    if (rv != CKR_OK || a.ulValueLen == CK_UNAVAILABLE_INFORMATION || a.ulValueLen % 2 != 0 ||
        a.ulValueLen / 2 > j->cap)
        return PK_OK;
    hex[a.ulValueLen] = '\0';
    if (pk_ok(pk_hex_decode(hex, j->buf, a.ulValueLen / 2))) *j->len = a.ulValueLen / 2;
    else pk_error_clear();
    return PK_OK;
}

pk_result pk_p11_data_read(pk_p11 *p, unsigned long obj, uint8_t *buf, size_t cap, size_t *len)
{
    data_job j = {.buf = buf, .cap = cap, .len = len, .obj = &obj};
    *len = 0;
    return p11_run(p, true, read_body, &j);
}

static pk_result write_body(pk_p11 *p, CK_SESSION_HANDLE s, void *ctx)
{
    data_job *j = ctx;
    char hex[2 * VALUE_MAX + 1];
    CK_ATTRIBUTE a = P11_ATTR(CKA_LABEL, hex, 2 * j->value.len);
    CK_RV rv;

    pk_hex_encode(j->value.ptr, j->value.len, hex);
    rv = p->fn->C_SetAttributeValue(s, (CK_OBJECT_HANDLE)*j->obj, &a, 1);

    return rv == CKR_OK ? PK_OK : data_rv(rv, "C_SetAttributeValue");
}

pk_result pk_p11_data_write(pk_p11 *p, unsigned long obj, pk_bytes value)
{
    data_job j = {.value = value, .obj = &obj};
    PK_ENSURE(value.len <= VALUE_MAX, P11KMS_ERR_INTEGRITY, "token data object value too long");
    return p11_run(p, true, write_body, &j);
}
