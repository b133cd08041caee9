/*
 * A handle opened from a config with `connect =` is a client of p11kmsd:
 * each public call the command uses starts with one line that forwards it
 * here (`if (h->remote) return pk_fwd_...`), which calls src/remote and
 * turns its answer into the public types. Calls that need the token on
 * this host refuse (pk_fwd_refuse).
 */
#ifndef PK_CORE_REMOTE_FWD_H
#define PK_CORE_REMOTE_FWD_H

#include "p11kms/p11kms.h"

/* p11kms_open for a config with `connect =`: no token, PIN, store or audit trail here. */
p11kms_rc pk_fwd_open(const p11kms_config *cfg, p11kms **out);
void pk_fwd_close(p11kms *h);
/* P11KMS_ERR_INVALID_ARGUMENT: what needs the token (or has no remote form) cannot run through p11kmsd. */
p11kms_rc pk_fwd_refuse(const char *what);
/* The daemon names the caller: a caller passed to a connect = handle is refused, never replaced by this host's. */
p11kms_rc pk_fwd_caller_given(void);

p11kms_rc pk_fwd_key_create(p11kms *h, const p11kms_caller *c, const p11kms_key_spec *spec, char **key_id);
p11kms_rc pk_fwd_key_describe(p11kms *h, const p11kms_caller *c, const char *key, char **json);
p11kms_rc pk_fwd_key_list(p11kms *h, const p11kms_caller *c, char **json);
p11kms_rc pk_fwd_key_simple(p11kms *h, const p11kms_caller *c, const char *target, const char *key);
p11kms_rc pk_fwd_key_rotate(p11kms *h, const p11kms_caller *c, const char *key, unsigned *version);
p11kms_rc pk_fwd_key_schedule_deletion(p11kms *h, const p11kms_caller *c, const char *key, unsigned days, int64_t *ms);
p11kms_rc pk_fwd_key_set_rotation(p11kms *h, const p11kms_caller *c, const char *key, unsigned days);
p11kms_rc pk_fwd_key_get_policy(p11kms *h, const p11kms_caller *c, const char *key, char **policy);
p11kms_rc pk_fwd_key_put_policy(p11kms *h, const p11kms_caller *c, const char *key, const char *policy, unsigned flags);
p11kms_rc pk_fwd_alias_set(p11kms *h, const p11kms_caller *c, const char *target, const char *alias, const char *key);
p11kms_rc pk_fwd_alias_delete(p11kms *h, const p11kms_caller *c, const char *alias);
p11kms_rc pk_fwd_alias_list(p11kms *h, const p11kms_caller *c, const char *key, char **json);

p11kms_rc pk_fwd_encrypt(p11kms *h, const p11kms_caller *c, const char *key, const p11kms_kv *ctx, size_t nctx,
                         const uint8_t *pt, size_t n, p11kms_buf **blob);
p11kms_rc pk_fwd_decrypt(p11kms *h, const p11kms_caller *c, const p11kms_kv *ctx, size_t nctx, const uint8_t *blob,
                         size_t n, p11kms_buf **pt, char **key_id);
p11kms_rc pk_fwd_generate_data_key(p11kms *h, const p11kms_caller *c, const char *key, const p11kms_kv *ctx,
                                   size_t nctx, size_t bytes, p11kms_buf **pt, p11kms_buf **blob);
p11kms_rc pk_fwd_reencrypt(p11kms *h, const p11kms_caller *c, const uint8_t *blob, size_t n, const p11kms_kv *src,
                           size_t nsrc, const char *dst_key, const p11kms_kv *dst, size_t ndst, p11kms_buf **out);

/* api_remote_secrets.c */
p11kms_rc pk_fwd_secret_put(p11kms *h, const p11kms_caller *c, const char *ns, const char *key,
                            const p11kms_secret_map *map, char **id);
p11kms_rc pk_fwd_secret_get(p11kms *h, const p11kms_caller *c, const char *id, p11kms_secret_map **out);
p11kms_rc pk_fwd_secret_update(p11kms *h, const p11kms_caller *c, const char *id, const p11kms_secret_map *map);
p11kms_rc pk_fwd_secret_remove(p11kms *h, const p11kms_caller *c, const char *id);
p11kms_rc pk_fwd_secret_list(p11kms *h, const p11kms_caller *c, const char *ns, char **json);
p11kms_rc pk_fwd_connection_create(p11kms *h, const p11kms_caller *c, const char *name,
                                   const p11kms_connection_spec *spec);
p11kms_rc pk_fwd_connection_alter(p11kms *h, const p11kms_caller *c, const char *name, const p11kms_secret_map *set,
                                  const char *const *reset, size_t nreset, const char *comment);
p11kms_rc pk_fwd_connection_drop(p11kms *h, const p11kms_caller *c, const char *name);
p11kms_rc pk_fwd_connection_describe(p11kms *h, const p11kms_caller *c, const char *name, char **json);
p11kms_rc pk_fwd_connection_list(p11kms *h, const p11kms_caller *c, const char *like, char **json);
p11kms_rc pk_fwd_connection_show_create(p11kms *h, const p11kms_caller *c, const char *name, char **sql);
p11kms_rc pk_fwd_connection_resolve(p11kms *h, const p11kms_caller *c, const char *name, p11kms_secret_map **out);
p11kms_rc pk_fwd_render(p11kms *h, const p11kms_caller *c, const char *text, size_t len, p11kms_buf **out);

#endif
