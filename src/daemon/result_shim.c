/*
 * pk_fail_at for the src/json and src/util files compiled into p11kmsd.
 * src/util/error.c is not linked in: it defines the exported p11kms_last_error
 * too, and the executable's copy would shadow the library's, hiding every
 * library error detail. The daemon's own JSON failures need no detail.
 */
#include "config.h"

#include "util/result.h"

pk_result pk_fail_at(p11kms_rc code, const char *file, int line, const char *fmt, ...)
{
    (void)file, (void)line, (void)fmt;
    return (pk_result){code};
}
