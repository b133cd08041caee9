/*
 * TEMPORARY: the library side of the daemon contract (/work/wt/DAEMON-CONTRACT.md),
 * declared here until include/p11kms/p11kms.h has it. Once the real header
 * defines P11KMS_HAVE_AUTH (or this block is deleted at the merge), this
 * file only includes the public header.
 */
#ifndef PK_DAEMON_CONTRACT_H
#define PK_DAEMON_CONTRACT_H

#include "p11kms/p11kms.h"

#ifndef P11KMS_HAVE_AUTH
#define P11KMS_ERR_SIGNATURE_INVALID ((p11kms_rc)(P11KMS_RC_COUNT_ + 0))
#define P11KMS_ERR_UNRECOGNIZED_CLIENT ((p11kms_rc)(P11KMS_RC_COUNT_ + 1))
#define P11KMS_ERR_INCOMPLETE_SIGNATURE ((p11kms_rc)(P11KMS_RC_COUNT_ + 2))
#define P11KMS_ERR_REQUEST_EXPIRED ((p11kms_rc)(P11KMS_RC_COUNT_ + 3))

typedef enum p11kms_auth_method {
    P11KMS_AUTH_NONE = 0,
    P11KMS_AUTH_PEER_UID,
    P11KMS_AUTH_SIGV4,
    P11KMS_AUTH_CERTIFICATE
} p11kms_auth_method;

P11KMS_MUST_USE p11kms_rc p11kms_caller_set_auth(p11kms_caller *c, p11kms_auth_method method, const char *identity,
                                                 const char *request_id);

typedef struct p11kms_http_header {
    const char *name;
    const char *value;
} p11kms_http_header;

typedef struct p11kms_sigv4_request {
    size_t struct_size;
    const char *method;
    const char *path;
    const char *query;
    const p11kms_http_header *headers;
    size_t nheaders;
    const uint8_t *body;
    size_t body_len;
    const char *service;
    int64_t now_ms;
} p11kms_sigv4_request;

P11KMS_MUST_USE p11kms_rc p11kms_sigv4_verify(p11kms *h, const p11kms_sigv4_request *req, p11kms_caller **caller,
                                              char **access_key_id);
P11KMS_MUST_USE p11kms_rc p11kms_key_arn(p11kms *h, const char *key_id, char **arn);
P11KMS_MUST_USE p11kms_rc p11kms_key_set_rotation(p11kms *h, const p11kms_caller *c, const char *key, unsigned days);
P11KMS_MUST_USE p11kms_rc p11kms_alias_update(p11kms *h, const p11kms_caller *c, const char *alias, const char *key);

/* TEMPORARY (stub only): the configuration the stub's p11kms_key_arn formats ARNs from. */
extern const p11kms_config *p11kmsd_stub_config;
#define P11KMSD_STUB_SET_CONFIG(cfg) (p11kmsd_stub_config = (cfg))
#else
#define P11KMSD_STUB_SET_CONFIG(cfg) ((void)(cfg))
#endif

#endif
