/*
 * One public operation: who asked, for what, on which resource, what the
 * policy decided and how it ended. Every public entry point builds one, and
 * pk_op_finish writes its single audit record before the result returns.
 */
#ifndef PK_CORE_OP_H
#define PK_CORE_OP_H

#include <stddef.h>

#include "audit/audit.h"
#include "core/core.h"
#include "keys/keys.h"
#include "util/json_out.h"

struct p11kms_caller {
    char *principal;
    char *source_ip;
    p11kms_auth_method auth;   /* how the daemon authenticated it (P11KMS_AUTH_NONE in-process) */
    char *auth_id;             /* uid/gid, access key id or certificate */
    char *auth_request_id;     /* the daemon's request id */
};

/* The audit name of an authentication method ("sigv4"), or NULL for in-process callers. */
const char *pk_auth_method_name(p11kms_auth_method m);

struct p11kms_buf {
    uint8_t *data;
    size_t len;
    bool secret; /* allocated from locked memory */
};

#define PK_OP_EXTRA_MAX 4

typedef struct pk_op {
    p11kms *h;
    const p11kms_caller *caller;
    const char *action;                /* "kms:Encrypt" */
    char key_id[PK_UUID_STR_LEN + 1];
    uint32_t key_version;
    char src_key_id[PK_UUID_STR_LEN + 1]; /* re-encrypt: the key the blob came from */
    char alias[PK_ALIAS_MAX + 8];
    const char *secret_id;
    const char *connection;
    const char *access_key_id;         /* access-key management: the key acted on (never its secret) */
    const pk_ctx_kv *ctx;              /* only a context that passed pk_context_encode */
    size_t nctx;
    bool ctx_invalid;                  /* the caller's context was refused and is not on record */
    const char *bypass;                /* safety checks the caller waived ("lint", "lockout-check lint") */
    const pk_kv *extra;                /* more public details (store accept-restore), at most PK_OP_EXTRA_MAX */
    size_t nextra;
    bool decided;
    pk_decision decision;
    /* Copies: the policy they come from may be freed before the audit record is written. */
    char sid_text[PK_POLICY_MAX_SIDS][128];
    const char *sids[PK_POLICY_MAX_SIDS];
    size_t nsids;
    bool mutating;  /* changes state: a "pending" record is written inside the store transaction */
    bool recorded;  /* its "pending" record is written; pk_op_finish writes the outcome */
    char request_id[PK_AUDIT_REQUEST_ID_MAX + 1]; /* the pending record's, for the outcome record */
    /* Outputs withheld (wiped and freed) if the audit record cannot be written. */
    p11kms_buf **out_bufs[2];
    char **out_strs[2];
} pk_op;

/* Start: validates the caller (a missing principal is refused). */
PK_MUST_USE pk_result pk_op_begin(pk_op *op, p11kms *h, const p11kms_caller *c, const char *action);
/* Record the key (and alias, when the caller used one) the operation acts on. */
void pk_op_set_key(pk_op *op, const pk_key_ref *ref);
/*
 * Evaluate k's policy for this operation's caller and `action` (which may
 * differ from op->action, e.g. ReEncryptTo). Denied: P11KMS_ERR_ACCESS_DENIED
 * naming principal, action, key and decision, never context values.
 */
PK_MUST_USE pk_result pk_op_authorize(pk_op *op, const pk_key *k, const char *action);
/*
 * Service-wide administration (purge, access keys) belongs to the service
 * administrators: whoever the service key's (alias/p11kms/default) policy
 * allows `action`. The service key is named in the record, so a denial says
 * where to look.
 */
PK_MUST_USE pk_result pk_op_authorize_service_admin(pk_op *op, const char *action);
/* A key's state allows cryptographic use (checked after authorisation, as AWS does). */
PK_MUST_USE pk_result pk_key_usable(const pk_key *k);
/*
 * Register an output so that a failed audit write withholds it: the caller
 * never receives a result whose operation is not on record.
 */
/*
 * Copy a public spec struct by its leading struct_size into *dst (dst_size
 * bytes): only sizes in known[] are accepted; a smaller one is an older
 * caller, so the fields past it stay zero.
 */
pk_result pk_spec_copy(void *dst, size_t dst_size, const void *src, const size_t *known, size_t nknown,
                       const char *what);
/* A finished JSON writer's text handed to the caller (p11kms_free); the buffer is freed on failure. */
pk_result pk_jo_take(pk_json_out *j, char **out);
void pk_op_output_buf(pk_op *op, p11kms_buf **out);
void pk_op_output_str(pk_op *op, char **out);
/*
 * Before an operation that changes state: check the audit trail can take
 * records (pk_audit_check), and mark the operation as mutating, so that a
 * record with result "pending" is written inside its store transaction
 * just before the commit (pk_op_precommit). A trail that cannot take it
 * rolls the change back: a change is never made without a record naming
 * it. pk_op_finish then records the outcome under the same request id, so
 * "ok" stands only for what was committed (issue 12).
 */
PK_MUST_USE pk_result pk_op_preflight(pk_op *op);
/*
 * Write the operation's audit record (for a change, its outcome record)
 * and return the final code. If the record cannot be written the result is
 * P11KMS_ERR_AUDIT_UNAVAILABLE and registered outputs are withheld.
 */
p11kms_rc pk_op_finish(pk_op *op, pk_result r);

/*
 * Validate the caller's encryption context (pk_context_encode: pairs, sizes,
 * empty or duplicate keys, UTF-8) and build its AAD into aad. Only a valid
 * context is put on the operation's record; a refused one is recorded as
 * "context_invalid" in the details, so the record stays what the verifier
 * reads (issue 1).
 */
PK_MUST_USE pk_result pk_op_context(pk_op *op, const p11kms_kv *ctx, size_t n, pk_buf *aad);

/*
 * The public context array as the internal pk_kv (validated by
 * pk_context_encode before use): the two layouts are checked equal here,
 * so the view is exact, not a pun.
 */
_Static_assert(sizeof(p11kms_kv) == sizeof(pk_kv) && _Alignof(p11kms_kv) == _Alignof(pk_kv) &&
                   offsetof(p11kms_kv, key) == offsetof(pk_kv, key) &&
                   offsetof(p11kms_kv, value) == offsetof(pk_kv, value),
               "p11kms_kv and pk_kv must have the same layout");
static inline const pk_kv *pk_kv_of(const p11kms_kv *kv) { return (const pk_kv *)(const void *)kv; }

/* Return buffers. */
PK_MUST_USE pk_result pk_buf_out(pk_buf *src, p11kms_buf **out);            /* takes ownership of src */
PK_MUST_USE pk_result pk_secbuf_out(pk_secbuf *src, p11kms_buf **out); /* takes ownership of src */
PK_MUST_USE pk_result pk_str_out(pk_buf *json, char **out);            /* takes ownership of json */

#endif
