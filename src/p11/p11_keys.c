/* Token key objects: generation with explicit templates, lookup, attributes, destruction. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "p11/p11_internal.h"

#define FIND_BATCH 256

typedef struct gen_job {
    pk_key_kind kind;
    const pk_keyid *id;
    const char *label;
} gen_job;

static pk_result generate_body(pk_p11 *p, CK_SESSION_HANDLE s, void *ctx)
{
    gen_job *j = ctx;
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    bool aes = j->kind == PK_KEY_AES_CMK;
    CK_KEY_TYPE kt = aes ? CKK_AES : CKK_GENERIC_SECRET;
    CK_ULONG len = aes ? PK_AES256_LEN : PK_HMAC_LEN;
    CK_BBOOL *crypt = aes ? &yes : &no, *mac = aes ? &no : &yes;
    CK_MECHANISM m = {aes ? CKM_AES_KEY_GEN : CKM_GENERIC_SECRET_KEY_GEN, NULL, 0};
    /*
     * Every usage flag is explicit: SoftHSM defaults SIGN, VERIFY, ENCRYPT and
     * WRAP to true when a template leaves them out. SENSITIVE and
     * non-EXTRACTABLE cannot be changed later (CKR_ATTRIBUTE_READ_ONLY).
     */
    CK_ATTRIBUTE tmpl[] = {
        P11_ATTR(CKA_CLASS, &cls, sizeof(cls)),       P11_ATTR(CKA_KEY_TYPE, &kt, sizeof(kt)),
        P11_ATTR(CKA_VALUE_LEN, &len, sizeof(len)),   P11_ATTR(CKA_TOKEN, &yes, sizeof(yes)),
        P11_ATTR(CKA_PRIVATE, &yes, sizeof(yes)),     P11_ATTR(CKA_SENSITIVE, &yes, sizeof(yes)),
        P11_ATTR(CKA_EXTRACTABLE, &no, sizeof(no)),   P11_ATTR(CKA_ENCRYPT, crypt, sizeof(*crypt)),
        P11_ATTR(CKA_DECRYPT, crypt, sizeof(*crypt)), P11_ATTR(CKA_WRAP, crypt, sizeof(*crypt)),
        P11_ATTR(CKA_UNWRAP, crypt, sizeof(*crypt)),  P11_ATTR(CKA_SIGN, mac, sizeof(*mac)),
        P11_ATTR(CKA_VERIFY, mac, sizeof(*mac)),      P11_ATTR(CKA_DERIVE, &no, sizeof(no)),
        P11_ATTR(CKA_LABEL, (void *)j->label, strlen(j->label)),
        P11_ATTR(CKA_ID, (void *)j->id->bytes, j->id->len),
    };
    CK_OBJECT_HANDLE obj;

    P11_ENSURE_RV(p->fn->C_GenerateKey(s, &m, tmpl, PK_ARRAY_LEN(tmpl), &obj), "C_GenerateKey");
    p11_cache_note_token_key(p, j->id, obj);
    return PK_OK;
}

pk_result pk_p11_generate_key(pk_p11 *p, pk_key_kind kind, const pk_keyid *id, const char *label)
{
    gen_job j = {kind, id, label};
    PK_ENSURE(kind == PK_KEY_AES_CMK || kind == PK_KEY_HMAC, P11KMS_ERR_INTERNAL, "bad key kind");
    /* Not idempotent: after a lost connection the key may exist already. */
    return p11_run(p, false, generate_body, &j);
}

static pk_result destroy_body(pk_p11 *p, CK_SESSION_HANDLE s, void *ctx)
{
    const pk_keyid *id = ctx;
    CK_OBJECT_HANDLE obj;
    CK_RV rv;

    PK_GUARD(p11_cache_token_handle(p, s, id, &obj));
    p11_cache_remove(p, s, id);
    if (obj == CK_INVALID_HANDLE) return PK_OK;
    rv = p->fn->C_DestroyObject(s, obj);
    if (rv == CKR_OBJECT_HANDLE_INVALID) rv = CKR_OK; /* already gone */
    P11_ENSURE_RV(rv, "C_DestroyObject");
    return PK_OK;
}

pk_result pk_p11_destroy_key(pk_p11 *p, const pk_keyid *id)
{
    return p11_run(p, true, destroy_body, (void *)id);
}

typedef struct exists_job {
    const pk_keyid *id;
    bool *exists;
} exists_job;

static pk_result exists_body(pk_p11 *p, CK_SESSION_HANDLE s, void *ctx)
{
    exists_job *j = ctx;
    CK_OBJECT_HANDLE obj;
    PK_GUARD(p11_cache_token_handle(p, s, j->id, &obj));
    *j->exists = obj != CK_INVALID_HANDLE;
    return PK_OK;
}

pk_result pk_p11_key_exists(pk_p11 *p, const pk_keyid *id, bool *exists)
{
    exists_job j = {id, exists};
    return p11_run(p, true, exists_body, &j);
}

typedef struct attrs_job {
    const pk_keyid *id;
    pk_key_attrs *out;
} attrs_job;

static pk_result attrs_body(pk_p11 *p, CK_SESSION_HANDLE s, void *ctx)
{
    attrs_job *j = ctx;
    pk_key_attrs *o = j->out;
    CK_OBJECT_HANDLE obj;
    CK_BBOOL v[13] = {0};
    CK_ATTRIBUTE a[] = {
        P11_ATTR(CKA_SENSITIVE, &v[0], 1),        P11_ATTR(CKA_EXTRACTABLE, &v[1], 1),
        P11_ATTR(CKA_NEVER_EXTRACTABLE, &v[2], 1), P11_ATTR(CKA_ALWAYS_SENSITIVE, &v[3], 1),
        P11_ATTR(CKA_LOCAL, &v[4], 1),             P11_ATTR(CKA_TOKEN, &v[5], 1),
        P11_ATTR(CKA_ENCRYPT, &v[6], 1),           P11_ATTR(CKA_DECRYPT, &v[7], 1),
        P11_ATTR(CKA_WRAP, &v[8], 1),              P11_ATTR(CKA_UNWRAP, &v[9], 1),
        P11_ATTR(CKA_SIGN, &v[10], 1),             P11_ATTR(CKA_VERIFY, &v[11], 1),
        P11_ATTR(CKA_DERIVE, &v[12], 1),           P11_ATTR(CKA_LABEL, o->label, sizeof(o->label) - 1),
    };
    CK_RV rv;

    PK_GUARD(p11_cache_token_handle(p, s, j->id, &obj));
    PK_ENSURE(obj != CK_INVALID_HANDLE, P11KMS_ERR_NOT_FOUND, "key object is missing from the token");
    memset(o, 0, sizeof(*o));
    rv = p->fn->C_GetAttributeValue(s, obj, a, PK_ARRAY_LEN(a));
    /* A missing attribute leaves its value false, which reports read as "weaker". */
    if (rv != CKR_ATTRIBUTE_TYPE_INVALID && rv != CKR_ATTRIBUTE_SENSITIVE) P11_ENSURE_RV(rv, "C_GetAttributeValue");
    o->sensitive = v[0];
    o->extractable = v[1];
    o->never_extractable = v[2];
    o->always_sensitive = v[3];
    o->local = v[4];
    o->token = v[5];
    o->encrypt = v[6];
    o->decrypt = v[7];
    o->wrap = v[8];
    o->unwrap = v[9];
    o->sign = v[10];
    o->verify = v[11];
    o->derive = v[12];
    if (a[13].ulValueLen != CK_UNAVAILABLE_INFORMATION && a[13].ulValueLen < sizeof(o->label))
        o->label[a[13].ulValueLen] = '\0';
    else
        o->label[0] = '\0';
    return PK_OK;
}

pk_result pk_p11_key_attrs(pk_p11 *p, const pk_keyid *id, pk_key_attrs *out)
{
    attrs_job j = {id, out};
    return p11_run(p, true, attrs_body, &j);
}

typedef struct list_job {
    const char *prefix;
    pk_p11_object *items;
    size_t n, cap;
} list_job;

static pk_result list_add(list_job *j, const pk_p11_object *o)
{
    if (j->n == j->cap) {
        size_t cap = j->cap ? j->cap * 2 : 64;
        pk_p11_object *it = realloc(j->items, cap * sizeof(*it));
        PK_ENSURE_ALLOC(it);
        j->items = it;
        j->cap = cap;
    }
    j->items[j->n++] = *o;
    return PK_OK;
}

static pk_result list_body(pk_p11 *p, CK_SESSION_HANDLE s, void *ctx)
{
    pk_result r = PK_OK;
    list_job *j = ctx;
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_BBOOL yes = CK_TRUE;
    CK_ATTRIBUTE find[] = {P11_ATTR(CKA_CLASS, &cls, sizeof(cls)), P11_ATTR(CKA_TOKEN, &yes, sizeof(yes))};
    CK_OBJECT_HANDLE objs[FIND_BATCH];
    CK_ULONG got = 0;

    j->n = 0;
    P11_ENSURE_RV(p->fn->C_FindObjectsInit(s, find, PK_ARRAY_LEN(find)), "C_FindObjectsInit");
    do {
        P11_CHECK_RV(p->fn->C_FindObjects(s, objs, FIND_BATCH, &got), "C_FindObjects");
        for (CK_ULONG i = 0; i < got; i++) {
            pk_p11_object o;
            CK_ATTRIBUTE a[] = {P11_ATTR(CKA_LABEL, o.label, sizeof(o.label) - 1),
                                P11_ATTR(CKA_ID, o.id.bytes, sizeof(o.id.bytes))};
            memset(&o, 0, sizeof(o));
            if (p->fn->C_GetAttributeValue(s, objs[i], a, 2) != CKR_OK) continue;
            o.label[a[0].ulValueLen < sizeof(o.label) ? a[0].ulValueLen : 0] = '\0';
            o.id.len = a[1].ulValueLen <= sizeof(o.id.bytes) ? a[1].ulValueLen : 0;
            if (strncmp(o.label, j->prefix, strlen(j->prefix)) != 0) continue;
            PK_TRY(list_add(j, &o));
        }
    } while (got == FIND_BATCH);
out:
    (void)p->fn->C_FindObjectsFinal(s);
    return r;
}

pk_result pk_p11_list_objects(pk_p11 *p, const char *label_prefix, pk_p11_object **out, size_t *n)
{
    list_job j = {label_prefix, NULL, 0, 0};
    pk_result r = p11_run(p, true, list_body, &j);
    if (pk_failed(r)) {
        free(j.items);
        return r;
    }
    *out = j.items;
    *n = j.n;
    return PK_OK;
}

typedef struct usage_job {
    const pk_keyid *id;
    bool on;
    bool *applied;
} usage_job;

static pk_result usage_body(pk_p11 *p, CK_SESSION_HANDLE s, void *ctx)
{
    usage_job *j = ctx;
    CK_BBOOL v = j->on ? CK_TRUE : CK_FALSE;
    CK_ATTRIBUTE a[] = {
        P11_ATTR(CKA_ENCRYPT, &v, 1),
        P11_ATTR(CKA_DECRYPT, &v, 1),
        P11_ATTR(CKA_WRAP, &v, 1),
        P11_ATTR(CKA_UNWRAP, &v, 1),
    };
    CK_OBJECT_HANDLE obj;
    CK_RV rv;

    PK_GUARD(p11_cache_token_handle(p, s, j->id, &obj));
    if (obj == CK_INVALID_HANDLE) return PK_OK; /* destroyed already: nothing left to use */
    rv = p->fn->C_SetAttributeValue(s, obj, a, PK_ARRAY_LEN(a));
    /* A token may keep usage flags fixed after creation; the store's state still rules then. */
    if (rv == CKR_ATTRIBUTE_READ_ONLY || rv == CKR_ATTRIBUTE_TYPE_INVALID || rv == CKR_TEMPLATE_INCONSISTENT ||
        rv == CKR_ACTION_PROHIBITED)
        return PK_OK;
    P11_ENSURE_RV(rv, "C_SetAttributeValue");
    *j->applied = true;
    /* The session copy was made with the old flags: the next use copies the token object again. */
    p11_cache_drop_copy(p, s, j->id);
    return PK_OK;
}

pk_result pk_p11_key_set_usage(pk_p11 *p, const pk_keyid *id, bool on, bool *applied)
{
    usage_job j = {id, on, applied};
    *applied = false;
    return p11_run(p, true, usage_body, &j);
}
