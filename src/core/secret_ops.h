/*
 * Operations shared by the public secret and connection API files
 * (api_secrets.c, api_connections.c, api_render.c): they authorise and
 * audit through pk_op, which is core's job, so they live here and not in
 * src/secrets.
 */
#ifndef PK_CORE_SECRET_OPS_H
#define PK_CORE_SECRET_OPS_H

#include "core/core.h"
#include "core/op.h"
#include "secrets/secrets.h"

#define PK_CTX_NS "p11kms:namespace"
#define PK_CTX_ID "p11kms:secret-id"
#define PK_CTX_CONN "p11kms:connection"

/* The encryption context of a secret operation; lives as long as the pk_op using it. */
typedef struct pk_secret_ctx {
    char ns[PK_NS_MAX + 1];
    char id[PK_SECRET_ID_MAX + 1];
    char conn[PK_CONN_NAME_MAX + 1];
    pk_ctx_kv kv[3];
} pk_secret_ctx;
/* Point op's context (and op->secret_id / op->connection) at c, filled from ns, id and conn (each may be NULL). */
void pk_secret_ctx_set(pk_op *op, pk_secret_ctx *c, const char *ns, const char *id, const char *conn);
/* Load key_id and authorise action with op's context; usable also checks the key state. */
PK_MUST_USE pk_result pk_secret_authorize(pk_op *op, const char *key_id, const char *action, bool usable,
                                          pk_key **out);
/* The CMK for a new secret: key, else the namespace's configured key, else the service key; authorised. */
PK_MUST_USE pk_result pk_secret_choose_key(pk_op *op, const char *key, const char *ns, pk_key **out);
/* A new secret record for id in ns under k, its namespace key ready and its nonce taken (not sealed). */
PK_MUST_USE pk_result pk_secret_prepare(p11kms *h, const char *ns, pk_key *k, const char *id, pk_secret *s);
/* Authorised (kms:Decrypt) read of one secret's encoded map; sets op's context through sc. */
PK_MUST_USE pk_result pk_secret_get_internal(pk_op *op, pk_secret_ctx *sc, const char *id, pk_secbuf *enc);

/* Verified metadata of one secret (list and rewrap). */
typedef struct list_item {
    char id[PK_SECRET_ID_MAX + 1];
    char ns[PK_NS_MAX + 1];
    char cmk[PK_UUID_STR_LEN + 1];
    uint32_t version, nsv;
    int64_t created_ms, updated_ms;
} list_item;
void pk_secret_item_of(const pk_secret *s, list_item *it);
/* The public metadata of a secret row. */
void pk_secret_info_fill(const pk_secret *s, p11kms_secret_info *info);
/* Collect the verified metadata of every secret of ns (NULL: all); caller frees *items. */
PK_MUST_USE pk_result pk_secret_collect(p11kms *h, const char *ns, list_item **items, size_t *n);

/* Load a connection and authorise action on its key with its context (api_connections*.c). */
PK_MUST_USE pk_result pk_conn_open(pk_op *op, pk_secret_ctx *sc, const char *name, const char *action, bool usable,
                                   pk_conn *conn, pk_key **k);
/* The secret part of a connection, decrypted (empty map when it has none). */
PK_MUST_USE pk_result pk_conn_secret(pk_op *op, pk_secret_ctx *sc, const pk_conn *conn, p11kms_secret_map **out);

#endif
