/*
 * A PKCS#11 module whose C_Initialize answers what FAKE_P11_INIT_RV says
 * (hex, e.g. 0x0A for CKR_CANT_LOCK), so tests can reach module failures
 * that real tokens give only on other machines (NSS's PEM module, a vendor
 * HSM). Every other function is absent: nothing gets that far.
 */
#include <stdlib.h>
#include <string.h>

#include <p11-kit/pkcs11.h>

static CK_RV fake_initialize(CK_VOID_PTR args)
{
    const char *v = getenv("FAKE_P11_INIT_RV");
    (void)args;
    return v != NULL ? (CK_RV)strtoul(v, NULL, 16) : CKR_GENERAL_ERROR;
}

static CK_RV fake_finalize(CK_VOID_PTR reserved)
{
    (void)reserved;
    return CKR_OK;
}

static CK_FUNCTION_LIST fake_list;

__attribute__((visibility("default"))) CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR out)
{
    fake_list.version.major = 2;
    fake_list.version.minor = 40;
    fake_list.C_Initialize = fake_initialize;
    fake_list.C_Finalize = fake_finalize;
    *out = &fake_list;
    return CKR_OK;
}
