/* Shared by the Secrets Manager and p11kms service operation files (sm*.c, svc*.c). */
#ifndef PK_DAEMON_SM_IMPL_H
#define PK_DAEMON_SM_IMPL_H

#include "daemon/kms_impl.h"

/* ---- sm.c ---- */
void sm_fail_rc(op_ctx *o, p11kms_rc rc);
const char *sm_str(op_ctx *o, const char *name, bool required, size_t max);
void sm_version_id(uint32_t version, int64_t created_s, char out[37]);
void sm_out_arn_name(op_ctx *o, const char *name);
/* FIELD: {VID: ["AWSCURRENT"]} */
void sm_out_stages(op_ctx *o, const char *field, const char *vid);
void sm_out_meta(op_ctx *o, const char *name, const char *key_id, uint32_t version, int64_t created_s,
                 int64_t changed_s);

/* ---- sm_list.c ---- */
void sm_list_secrets(op_ctx *o);

#endif
