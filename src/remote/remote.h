/*
 * The command as a client of p11kmsd (`connect =` in p11kms.conf): every
 * public call core forwards here is one AWS JSON 1.1 request (TrentService,
 * secretsmanager or P11kmsService) over the daemon's Unix socket (the
 * daemon takes the caller from the peer uid) or HTTPS signed with SigV4.
 * This folder is the only user of libcurl; it stands on util/ and json/.
 * Results come back in the library's own formats (core builds the public
 * types), so a command prints the same as in-process.
 */
#ifndef PK_REMOTE_REMOTE_H
#define PK_REMOTE_REMOTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "p11kms/p11kms.h"
#include "util/bytes.h"
#include "util/result.h"
#include "util/secbuf.h"

typedef struct pk_remote pk_remote;

/* What `connect =` and its companions say (paths already absolute). */
typedef struct pk_remote_conf {
    const char *config_path;   /* for messages */
    const char *endpoint;      /* unix:PATH or https://HOST:PORT */
    const char *ca_file;       /* https: the CA bundle that signs the daemon's certificate (NULL: system CAs) */
    const char *access_key_id; /* https: SigV4 */
    const char *secret_file;   /* https: the secret access key, mode 0600 */
    const char *region;        /* SigV4 scope; "local" when NULL */
} pk_remote_conf;

PK_MUST_USE pk_result pk_remote_open(const pk_remote_conf *c, pk_remote **out);
void pk_remote_close(pk_remote *r);

/* ---- keys and aliases (remote_keys.c): outputs as p11kms_key_* return them ---- */
PK_MUST_USE pk_result pk_remote_key_create(pk_remote *r, const char *description, const char *policy,
                                           bool bypass_lockout, unsigned rotation_days, char **key_id);
PK_MUST_USE pk_result pk_remote_key_describe(pk_remote *r, const char *key, char **json);
PK_MUST_USE pk_result pk_remote_key_list(pk_remote *r, char **json);
/* target: "EnableKey", "DisableKey" or "CancelKeyDeletion". */
PK_MUST_USE pk_result pk_remote_key_simple(pk_remote *r, const char *target, const char *key);
PK_MUST_USE pk_result pk_remote_key_rotate(pk_remote *r, const char *key, unsigned *version);
PK_MUST_USE pk_result pk_remote_key_schedule_deletion(pk_remote *r, const char *key, unsigned days, int64_t *ms);
PK_MUST_USE pk_result pk_remote_key_set_rotation(pk_remote *r, const char *key, unsigned days);
PK_MUST_USE pk_result pk_remote_key_get_policy(pk_remote *r, const char *key, char **policy);
PK_MUST_USE pk_result pk_remote_key_put_policy(pk_remote *r, const char *key, const char *policy, bool bypass_lockout);
/* target: "CreateAlias" or "UpdateAlias". */
PK_MUST_USE pk_result pk_remote_alias_set(pk_remote *r, const char *target, const char *alias, const char *key);
PK_MUST_USE pk_result pk_remote_alias_delete(pk_remote *r, const char *alias);
PK_MUST_USE pk_result pk_remote_alias_list(pk_remote *r, const char *key, char **json);

/* ---- cryptography (remote_crypto.c); plaintext in locked memory ---- */
PK_MUST_USE pk_result pk_remote_encrypt(pk_remote *r, const char *key, const p11kms_kv *ctx, size_t nctx,
                                        const uint8_t *pt, size_t n, pk_buf *blob);
PK_MUST_USE pk_result pk_remote_decrypt(pk_remote *r, const p11kms_kv *ctx, size_t nctx, const uint8_t *blob,
                                        size_t n, pk_secbuf *pt, char **key_id);
/* pt NULL: GenerateDataKeyWithoutPlaintext. */
PK_MUST_USE pk_result pk_remote_generate_data_key(pk_remote *r, const char *key, const p11kms_kv *ctx, size_t nctx,
                                                  size_t bytes, pk_secbuf *pt, pk_buf *blob);
PK_MUST_USE pk_result pk_remote_reencrypt(pk_remote *r, const uint8_t *blob, size_t n, const p11kms_kv *src,
                                          size_t nsrc, const char *dst_key, const p11kms_kv *dst, size_t ndst,
                                          pk_buf *out);

/*
 * A key's ARN as the daemon names keys, known once a crypto answer named
 * one (the ESDK file format stores it as the data key's provider).
 */
PK_MUST_USE pk_result pk_remote_key_arn(pk_remote *r, const char *key_id, char *out, size_t size);

/* ---- secrets, connections, render (remote_secrets.c) ---- */
/* A new secret named NS/UUID (UUID in "default"); map_json is a flat object of strings. */
PK_MUST_USE pk_result pk_remote_secret_put(pk_remote *r, const char *ns, const char *key, const char *map_json,
                                           char **id);
/* The secret's JSON map, in locked memory, NUL-terminated. */
PK_MUST_USE pk_result pk_remote_secret_get(pk_remote *r, const char *id, pk_secbuf *map_json);
PK_MUST_USE pk_result pk_remote_secret_update(pk_remote *r, const char *id, const char *map_json);
PK_MUST_USE pk_result pk_remote_secret_remove(pk_remote *r, const char *id);
PK_MUST_USE pk_result pk_remote_secret_list(pk_remote *r, const char *ns, char **json);
/* options_json / set_json: flat JSON objects of strings (NULL: none). */
PK_MUST_USE pk_result pk_remote_connection_create(pk_remote *r, const char *name, const char *type,
                                                  const char *comment, const char *ns, const char *key,
                                                  const char *options_json);
PK_MUST_USE pk_result pk_remote_connection_alter(pk_remote *r, const char *name, const char *set_json,
                                                 const char *const *reset, size_t nreset, const char *comment);
PK_MUST_USE pk_result pk_remote_connection_drop(pk_remote *r, const char *name);
/* op "DescribeConnection" (field "Name") or "ListConnections" (field "Like"; value may be NULL). */
PK_MUST_USE pk_result pk_remote_connection_doc(pk_remote *r, const char *op, const char *field, const char *value,
                                               char **json);
PK_MUST_USE pk_result pk_remote_connection_show_create(pk_remote *r, const char *name, char **sql);
typedef pk_result (*pk_remote_pair_fn)(void *ctx, const char *key, const char *value);
/* Every option (secrets included) handed to fn. */
PK_MUST_USE pk_result pk_remote_connection_resolve(pk_remote *r, const char *name, pk_remote_pair_fn fn, void *ctx);
PK_MUST_USE pk_result pk_remote_render(pk_remote *r, const char *text, size_t len, pk_secbuf *out);

#endif
