/* Shared by the KMS operation files (kms*.c): the request context and field helpers. */
#ifndef PK_DAEMON_KMS_IMPL_H
#define PK_DAEMON_KMS_IMPL_H

#include "daemon/daemon.h"
#include "json/json_in.h"
#include "util/json_out.h"

#define MAX_PLAINTEXT 4096
#define MAX_CIPHERTEXT 6144
#define MAX_DATA_KEY 1024
#define MAX_CONTEXT 64
#define BLOB_KEY_OFFSET 2
#define SERVICE_ALIAS "alias/p11kms/default"

/* Per-principal token buckets (rate_limit requests/s, rate_burst deep). */
typedef struct bucket {
    char *principal;
    double tokens;
    int64_t last_ms;
} bucket;

struct d_kms {
    p11kms *h;
    d_settings s;
    pthread_mutex_t mu;
    bucket *buckets;
    size_t nbuckets;
};

/* What one operation sees. */
typedef struct op_ctx {
    d_kms *k;
    d_job *job;
    const pk_jv *in;
    p11kms_caller *caller;
    const char *principal;
    pk_buf out;
    pk_json_out j;
    int status;
    bool done; /* an error response was set */
    const char *service; /* the SigV4 signing name: "kms" or "secretsmanager" */
} op_ctx;

/* An operation of a target prefix's table. */
typedef struct k_op {
    const char *name;
    void (*fn)(op_ctx *o);
} k_op;
extern const k_op sm_ops[];  /* sm.c: secretsmanager.* */
extern const size_t sm_nops;
extern const k_op svc_ops[]; /* svc.c: P11kmsService.* */
extern const size_t svc_nops;

/* ---- kms_fields.c: answers, errors, request fields, ARNs ---- */
void k_set_body(d_response *r, pk_buf *b);
void k_fail(op_ctx *o, int status, const char *type, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
void k_fail_rc(op_ctx *o, p11kms_rc rc);
const char *k_field_str(op_ctx *o, const char *name, bool required, size_t max);
bool k_field_int(op_ctx *o, const char *name, long min, long max, long *out);
bool k_field_bool(op_ctx *o, const char *name);
uint8_t *k_field_blob(op_ctx *o, const char *name, bool required, size_t max, size_t *len);
size_t k_field_context(op_ctx *o, const char *name, p11kms_kv *kv);
void k_check_algorithm(op_ctx *o, const char *name);
void k_out_arn(op_ctx *o, const char *field, const char *key_id);
void k_blob_key_id(const uint8_t *b, size_t len, char out[37]);
void k_out_blob(op_ctx *o, const char *field, const uint8_t *b, size_t n);
int64_t k_epoch_of(const char *t);

/* ---- kms_keys.c: key management ---- */
bool k_describe(op_ctx *o, const char *key, pk_jv **doc);
void op_describe_key(op_ctx *o);
void op_create_key(op_ctx *o);
void op_list_keys(op_ctx *o);
void op_list_aliases(op_ctx *o);
void op_enable_key(op_ctx *o);
void op_disable_key(op_ctx *o);
void op_cancel_deletion(op_ctx *o);
void op_schedule_deletion(op_ctx *o);
void op_enable_rotation(op_ctx *o);
void op_disable_rotation(op_ctx *o);
void op_rotation_status(op_ctx *o);
void op_rotate_now(op_ctx *o);
void op_list_rotations(op_ctx *o);
void op_get_policy(op_ctx *o);
void op_put_policy(op_ctx *o);
void op_create_alias(op_ctx *o);
void op_update_alias(op_ctx *o);
void op_delete_alias(op_ctx *o);

/* ---- kms_crypto.c: cryptographic operations ---- */
void op_encrypt(op_ctx *o);
void op_decrypt(op_ctx *o);
void op_reencrypt(op_ctx *o);
void op_generate_data_key(op_ctx *o);
void op_generate_data_key_wp(op_ctx *o);
void op_generate_random(op_ctx *o);

#endif
