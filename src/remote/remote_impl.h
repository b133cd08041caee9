/* Shared by the remote*.c files: one request, its JSON body and answer. */
#ifndef PK_REMOTE_REMOTE_IMPL_H
#define PK_REMOTE_REMOTE_IMPL_H

#include "json/json_in.h"
#include "remote/remote.h"
#include "util/json_out.h"

/* Signing names and target prefixes of the daemon's three protocols. */
#define PK_REMOTE_KMS "kms", "TrentService."
#define PK_REMOTE_SM "secretsmanager", "secretsmanager."
#define PK_REMOTE_P11KMS "kms", "P11kmsService."

/*
 * POST body (a finished JSON document, wiped here after sending: it may
 * hold plaintext) as prefix+op, signed for `service` on https:. On 200
 * *resp is the answer (an empty object for an empty body); any other
 * status is the AWS error mapped to a p11kms_rc with the daemon's message
 * as detail; a transport failure is P11KMS_ERR_TOKEN naming the endpoint.
 */
PK_MUST_USE pk_result pk_remote_call(pk_remote *r, const char *service, const char *prefix, const char *op,
                                     pk_buf *body, pk_jv **resp);
/* A request body being written: pk_remote_begin opens its object, pk_remote_send closes and sends it. */
typedef struct pk_remote_req {
    pk_buf body;
    pk_json_out j;
} pk_remote_req;
void pk_remote_begin(pk_remote_req *q);
/* Send q (wiped and freed whatever happens) as pk_remote_call does. */
PK_MUST_USE pk_result pk_remote_send(pk_remote *r, const char *service, const char *prefix, const char *op,
                                     pk_remote_req *q, pk_jv **resp);
/* pk_remote_send for an operation whose answer is not needed. */
PK_MUST_USE pk_result pk_remote_send_only(pk_remote *r, const char *service, const char *prefix, const char *op,
                                          pk_remote_req *q);
/* As pk_remote_call with the body {"KEY": value}; resp NULL drops the answer. */
PK_MUST_USE pk_result pk_remote_call1(pk_remote *r, const char *service, const char *prefix, const char *op,
                                      const char *key, const char *value, pk_jv **resp);

/* Remember how the daemon forms key ARNs (from an answer's KeyId). */
void pk_remote_note_arn(pk_remote *r, const char *arn);
/* An AWS epoch-seconds member as ms (0 when absent). */
int64_t pk_remote_epoch_ms(const pk_jv *v);
/* "arn:...:key/ID" -> "ID" (anything else unchanged). */
const char *pk_remote_key_of_arn(const char *arn);
/* An encryption context member. */
void pk_remote_ctx(pk_json_out *j, const char *name, const p11kms_kv *ctx, size_t n);
/* A base64 member of resp decoded into out (secret memory when sec != NULL). */
PK_MUST_USE pk_result pk_remote_blob(const pk_jv *resp, const char *name, pk_buf *out, pk_secbuf *sec);

#endif
