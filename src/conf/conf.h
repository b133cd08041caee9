/* p11kms.conf: `key = value` lines, `#` comments, strict keys. */
#ifndef PK_CONF_CONF_H
#define PK_CONF_CONF_H

#include "p11kms/p11kms.h"
#include "util/result.h"
#include "util/secbuf.h"

/* Read the PIN named by the `pin` key (file:PATH or env:NAME) into locked memory. */
PK_MUST_USE pk_result pk_conf_read_pin(const p11kms_config *cfg, pk_secbuf *pin);
/* Read a PIN file: regular, not accessible by group or others, at most 256 bytes. */
PK_MUST_USE pk_result pk_conf_read_pin_file(const char *path, pk_secbuf *pin);
/* A path relative to the config file's folder, made absolute (caller frees). */
char *pk_conf_resolve(const p11kms_config *cfg, const char *path);
/* Value of a path-valued key, resolved against the config file's folder. */
const char *pk_conf_path_value(const p11kms_config *cfg, const char *key);
/* A key's integer value, or dflt when unset; fails when malformed or out of range. */
PK_MUST_USE pk_result pk_conf_uint(const p11kms_config *cfg, const char *key, unsigned long dflt,
                                   unsigned long min, unsigned long max, unsigned long *out);

#endif
