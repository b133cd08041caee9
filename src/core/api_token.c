/* p11kms_token_init: set up a fresh token, PINs read from files into locked memory. */
#include "config.h"

#include "conf/conf.h"
#include "p11/p11.h"
#include "util/secbuf.h"

P11KMS_API p11kms_rc p11kms_token_init(const char *module, const char *label, const char *so_pin_file,
                                       const char *user_pin_file)
{
    pk_secbuf so = PK_SECBUF_INIT, pin = PK_SECBUF_INIT;
    pk_result r = PK_OK;

    pk_error_clear();
    PK_CHECK(module != NULL && label != NULL && so_pin_file != NULL && user_pin_file != NULL,
             P11KMS_ERR_INVALID_ARGUMENT, "token init: module, label, SO PIN file and PIN file are all needed");
    PK_TRY(pk_conf_read_pin_file(so_pin_file, &so));
    PK_TRY(pk_conf_read_pin_file(user_pin_file, &pin));
    PK_TRY(pk_p11_init_token(module, label, &so, &pin));
out:
    pk_secbuf_free(&so);
    pk_secbuf_free(&pin);
    return r.code;
}
