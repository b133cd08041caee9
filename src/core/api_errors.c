/* The public face of the error codes (stable names, messages and exit
 * codes, README.md; the table is util/error.c, which lower layers use),
 * the thread's last detail, and the version. */
#include "config.h"

#include "util/result.h"

P11KMS_API const char *p11kms_strerror(p11kms_rc rc) { return pk_rc_message(rc); }

P11KMS_API const char *p11kms_rc_name(p11kms_rc rc) { return pk_rc_name(rc); }

P11KMS_API int p11kms_exit_code(p11kms_rc rc) { return pk_rc_exit_code(rc); }

P11KMS_API const char *p11kms_last_error(void) { return pk_error_detail(); }

P11KMS_API const char *p11kms_version(void) { return PACKAGE_VERSION; }
