/*
 * p11kms_token_check: a health probe that reaches the token. Reading the
 * store (as key descriptions do) proves nothing about the HSM: a removed or
 * failed token still lets the store answer. The store-MAC key exists on
 * every opened handle, so its live attributes are always there to ask for.
 */
#include "config.h"

#include "core/core.h"
#include "p11/p11.h"

P11KMS_API p11kms_rc p11kms_token_check(p11kms *h)
{
    pk_key_attrs attrs;
    pk_result r;

    pk_error_clear();
    if (h == NULL) return pk_fail(P11KMS_ERR_INVALID_ARGUMENT, "p11kms_token_check: no handle").code;
    r = pk_p11_key_attrs(h->p11, &h->store_mac_key, &attrs);
    return r.code;
}
