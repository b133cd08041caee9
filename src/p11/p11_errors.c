/* CK_RV names and their mapping to p11kms error codes. */
#include "config.h"

#include <stdio.h>

#include "p11/p11_internal.h"

static const struct {
    CK_RV rv;
    const char *name;
} ckr_names[] = {
#define R(x) {x, #x}
    R(CKR_OK), R(CKR_CANCEL), R(CKR_HOST_MEMORY), R(CKR_SLOT_ID_INVALID), R(CKR_GENERAL_ERROR),
    R(CKR_FUNCTION_FAILED), R(CKR_ARGUMENTS_BAD), R(CKR_NO_EVENT), R(CKR_NEED_TO_CREATE_THREADS),
    R(CKR_CANT_LOCK), R(CKR_ATTRIBUTE_READ_ONLY), R(CKR_ATTRIBUTE_SENSITIVE), R(CKR_ATTRIBUTE_TYPE_INVALID),
    R(CKR_ATTRIBUTE_VALUE_INVALID), R(CKR_ACTION_PROHIBITED), R(CKR_DATA_INVALID), R(CKR_DATA_LEN_RANGE),
    R(CKR_DEVICE_ERROR), R(CKR_DEVICE_MEMORY), R(CKR_DEVICE_REMOVED), R(CKR_ENCRYPTED_DATA_INVALID),
    R(CKR_ENCRYPTED_DATA_LEN_RANGE), R(CKR_FUNCTION_CANCELED), R(CKR_FUNCTION_NOT_PARALLEL),
    R(CKR_FUNCTION_NOT_SUPPORTED), R(CKR_KEY_HANDLE_INVALID), R(CKR_KEY_SIZE_RANGE),
    R(CKR_KEY_TYPE_INCONSISTENT), R(CKR_KEY_NOT_NEEDED), R(CKR_KEY_CHANGED), R(CKR_KEY_NEEDED),
    R(CKR_KEY_INDIGESTIBLE), R(CKR_KEY_FUNCTION_NOT_PERMITTED), R(CKR_KEY_NOT_WRAPPABLE),
    R(CKR_KEY_UNEXTRACTABLE), R(CKR_MECHANISM_INVALID), R(CKR_MECHANISM_PARAM_INVALID),
    R(CKR_OBJECT_HANDLE_INVALID), R(CKR_OPERATION_ACTIVE), R(CKR_OPERATION_NOT_INITIALIZED),
    R(CKR_PIN_INCORRECT), R(CKR_PIN_INVALID), R(CKR_PIN_LEN_RANGE), R(CKR_PIN_EXPIRED), R(CKR_PIN_LOCKED),
    R(CKR_SESSION_CLOSED), R(CKR_SESSION_COUNT), R(CKR_SESSION_HANDLE_INVALID),
    R(CKR_SESSION_PARALLEL_NOT_SUPPORTED), R(CKR_SESSION_READ_ONLY), R(CKR_SESSION_EXISTS),
    R(CKR_SESSION_READ_ONLY_EXISTS), R(CKR_SESSION_READ_WRITE_SO_EXISTS), R(CKR_SIGNATURE_INVALID),
    R(CKR_SIGNATURE_LEN_RANGE), R(CKR_TEMPLATE_INCOMPLETE), R(CKR_TEMPLATE_INCONSISTENT),
    R(CKR_TOKEN_NOT_PRESENT), R(CKR_TOKEN_NOT_RECOGNIZED), R(CKR_TOKEN_WRITE_PROTECTED),
    R(CKR_UNWRAPPING_KEY_HANDLE_INVALID), R(CKR_UNWRAPPING_KEY_SIZE_RANGE),
    R(CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT), R(CKR_USER_ALREADY_LOGGED_IN), R(CKR_USER_NOT_LOGGED_IN),
    R(CKR_USER_PIN_NOT_INITIALIZED), R(CKR_USER_TYPE_INVALID), R(CKR_USER_ANOTHER_ALREADY_LOGGED_IN),
    R(CKR_USER_TOO_MANY_TYPES), R(CKR_WRAPPED_KEY_INVALID), R(CKR_WRAPPED_KEY_LEN_RANGE),
    R(CKR_WRAPPING_KEY_HANDLE_INVALID), R(CKR_WRAPPING_KEY_SIZE_RANGE), R(CKR_WRAPPING_KEY_TYPE_INCONSISTENT),
    R(CKR_RANDOM_SEED_NOT_SUPPORTED), R(CKR_RANDOM_NO_RNG), R(CKR_DOMAIN_PARAMS_INVALID),
    R(CKR_BUFFER_TOO_SMALL), R(CKR_SAVED_STATE_INVALID), R(CKR_INFORMATION_SENSITIVE),
    R(CKR_STATE_UNSAVEABLE), R(CKR_CRYPTOKI_NOT_INITIALIZED), R(CKR_CRYPTOKI_ALREADY_INITIALIZED),
    R(CKR_MUTEX_BAD), R(CKR_MUTEX_NOT_LOCKED), R(CKR_FUNCTION_REJECTED),
#undef R
};

/* Vendor-defined codes a supported module is known to return (NSS lib/softoken/pkcs11n.h). */
static const struct {
    CK_RV rv;
    const char *name;
} vendor_names[] = {
    {0xCE534351UL, "CKR_NSS_CERTDB_FAILED"},
    {0xCE534352UL, "CKR_NSS_KEYDB_FAILED"},
};

const char *pk_ckr_name(CK_RV rv)
{
    static __thread char unknown[32];
    for (size_t i = 0; i < PK_ARRAY_LEN(ckr_names); i++)
        if (ckr_names[i].rv == rv) return ckr_names[i].name;
    for (size_t i = 0; i < PK_ARRAY_LEN(vendor_names); i++)
        if (vendor_names[i].rv == rv) return vendor_names[i].name;
    snprintf(unknown, sizeof(unknown), "CKR_0x%lx", (unsigned long)rv);
    return unknown;
}

const char *pk_p11_rv_name(unsigned long rv)
{
    return pk_ckr_name((CK_RV)rv);
}

static p11kms_rc code_for(CK_RV rv)
{
    switch (rv) {
    case CKR_PIN_INCORRECT:
    case CKR_PIN_INVALID:
    case CKR_PIN_LEN_RANGE:
    case CKR_PIN_EXPIRED:
    case CKR_PIN_LOCKED:
    case CKR_USER_PIN_NOT_INITIALIZED:
    case CKR_USER_NOT_LOGGED_IN:
        return P11KMS_ERR_LOGIN;
    case CKR_DEVICE_REMOVED:
    case CKR_TOKEN_NOT_PRESENT:
    case CKR_TOKEN_NOT_RECOGNIZED:
    case CKR_SLOT_ID_INVALID:
    case CKR_CRYPTOKI_NOT_INITIALIZED:
        return P11KMS_ERR_TOKEN;
    case CKR_MECHANISM_INVALID:
    case CKR_MECHANISM_PARAM_INVALID:
        return P11KMS_ERR_MECHANISM;
    case CKR_HOST_MEMORY:
        return P11KMS_ERR_NO_MEMORY;
    default:
        return P11KMS_ERR_HSM;
    }
}

/* The CK_RV behind the last PKCS#11 failure on this thread, for retry decisions. */
static __thread CK_RV tl_last_rv;

CK_RV p11_last_rv(void)
{
    return tl_last_rv;
}

void p11_reset_last_rv(void)
{
    tl_last_rv = CKR_OK;
}

pk_result pk_p11_rv_fail_at(CK_RV rv, const char *function, const char *file, int line)
{
    tl_last_rv = rv;
    return pk_fail_at(code_for(rv), file, line, "%s: %s", function, pk_ckr_name(rv));
}

/* The session is unusable: it was closed, or is stuck in an operation a failed call left open. */
static bool session_lost(CK_RV rv)
{
    return rv == CKR_SESSION_HANDLE_INVALID || rv == CKR_SESSION_CLOSED || rv == CKR_USER_NOT_LOGGED_IN ||
           rv == CKR_OPERATION_ACTIVE;
}

bool p11_ckr_device_fault(CK_RV rv)
{
    return rv == CKR_DEVICE_ERROR || rv == CKR_DEVICE_REMOVED || rv == CKR_TOKEN_NOT_PRESENT ||
           rv == CKR_CRYPTOKI_NOT_INITIALIZED;
}

bool pk_ckr_reconnectable(CK_RV rv)
{
    /* CKR_DEVICE_MEMORY: the partition is full; a fresh connection frees our session objects. */
    return session_lost(rv) || p11_ckr_device_fault(rv) || rv == CKR_DEVICE_MEMORY;
}
