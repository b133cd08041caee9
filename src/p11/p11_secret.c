/*
 * Imported secrets: a generic-secret token object whose value the caller
 * supplies once (SigV4's "AWS4" + secret access key, docs/AUTH.md). It is
 * sensitive and non-extractable from creation on, and its only usage is
 * CKA_SIGN, so the token can HMAC with it (pk_p11_hmac) and nothing else;
 * pk_p11_destroy_key removes it.
 */
#include "config.h"

#include <string.h>

#include "p11/p11_internal.h"

typedef struct secret_job {
    const pk_keyid *id;
    const char *label;
    pk_bytes value;
} secret_job;

static pk_result create_body(pk_p11 *p, CK_SESSION_HANDLE s, void *ctx)
{
    secret_job *j = ctx;
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_KEY_TYPE kt = CKK_GENERIC_SECRET;
    CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    /* Every usage flag explicit (SoftHSM defaults several to true); SENSITIVE/EXTRACTABLE are one-way. */
    CK_ATTRIBUTE tmpl[] = {
        P11_ATTR(CKA_CLASS, &cls, sizeof(cls)),     P11_ATTR(CKA_KEY_TYPE, &kt, sizeof(kt)),
        P11_ATTR(CKA_TOKEN, &yes, sizeof(yes)),     P11_ATTR(CKA_PRIVATE, &yes, sizeof(yes)),
        P11_ATTR(CKA_SENSITIVE, &yes, sizeof(yes)), P11_ATTR(CKA_EXTRACTABLE, &no, sizeof(no)),
        P11_ATTR(CKA_ENCRYPT, &no, sizeof(no)),     P11_ATTR(CKA_DECRYPT, &no, sizeof(no)),
        P11_ATTR(CKA_WRAP, &no, sizeof(no)),        P11_ATTR(CKA_UNWRAP, &no, sizeof(no)),
        P11_ATTR(CKA_SIGN, &yes, sizeof(yes)),      P11_ATTR(CKA_VERIFY, &no, sizeof(no)),
        P11_ATTR(CKA_DERIVE, &no, sizeof(no)),
        P11_ATTR(CKA_LABEL, (void *)j->label, strlen(j->label)),
        P11_ATTR(CKA_ID, (void *)j->id->bytes, j->id->len),
        P11_ATTR(CKA_VALUE, (void *)j->value.ptr, j->value.len),
    };
    CK_OBJECT_HANDLE obj;

    P11_ENSURE_RV(p->fn->C_CreateObject(s, tmpl, PK_ARRAY_LEN(tmpl), &obj), "C_CreateObject");
    p11_cache_note_token_key(p, j->id, obj);
    return PK_OK;
}

pk_result pk_p11_secret_create(pk_p11 *p, const pk_keyid *id, const char *label, pk_bytes value)
{
    secret_job j = {id, label, value};
    PK_ENSURE(value.len > 0 && value.len <= 256, P11KMS_ERR_INTERNAL, "bad secret length");
    /* Not idempotent: after a lost connection the object may exist already. */
    return p11_run(p, false, create_body, &j);
}

typedef struct value_job {
    const pk_keyid *id;
    bool *readable;
} value_job;

static pk_result value_body(pk_p11 *p, CK_SESSION_HANDLE s, void *ctx)
{
    value_job *j = ctx;
    CK_OBJECT_HANDLE obj;
    CK_ATTRIBUTE a = P11_ATTR(CKA_VALUE, NULL, 0);
    CK_RV rv;

    PK_GUARD(p11_cache_token_handle(p, s, j->id, &obj));
    PK_ENSURE(obj != CK_INVALID_HANDLE, P11KMS_ERR_NOT_FOUND, "secret object is missing from the token");
    rv = p->fn->C_GetAttributeValue(s, obj, &a, 1);
    *j->readable = !(rv == CKR_ATTRIBUTE_SENSITIVE || a.ulValueLen == CK_UNAVAILABLE_INFORMATION);
    return PK_OK;
}

pk_result pk_p11_secret_value_readable(pk_p11 *p, const pk_keyid *id, bool *readable)
{
    value_job j = {id, readable};
    *readable = true;
    return p11_run(p, true, value_body, &j);
}
