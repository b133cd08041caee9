/*
 * TEMPORARY stub of the library side of the daemon contract, so p11kmsd
 * builds and its Unix-socket tests run before the merge. Delete this file
 * (and its line in src/daemon/local.mk) when libp11kms implements the
 * contract: SigV4 refuses every access key, set_rotation and alias_update
 * refuse, key_arn formats from the configuration like the library does.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/contract.h"

const p11kms_config *p11kmsd_stub_config;

p11kms_rc p11kms_caller_set_auth(p11kms_caller *c, p11kms_auth_method method, const char *identity,
                                 const char *request_id)
{
    (void)c, (void)method, (void)identity, (void)request_id;
    return P11KMS_OK;
}

p11kms_rc p11kms_sigv4_verify(p11kms *h, const p11kms_sigv4_request *req, p11kms_caller **caller,
                              char **access_key_id)
{
    (void)h, (void)req;
    *caller = NULL;
    if (access_key_id != NULL) *access_key_id = NULL;
    return P11KMS_ERR_UNRECOGNIZED_CLIENT;
}

p11kms_rc p11kms_key_arn(p11kms *h, const char *key_id, char **arn)
{
    const char *acct = p11kmsd_stub_config ? p11kms_config_get(p11kmsd_stub_config, "account") : NULL;
    const char *region = p11kmsd_stub_config ? p11kms_config_get(p11kmsd_stub_config, "region") : NULL;
    (void)h;
    *arn = NULL;
    if (strncmp(key_id, "arn:", 4) == 0) {
        *arn = strdup(key_id);
    } else if (asprintf(arn, "arn:aws:kms:%s:%s:key/%s", region ? region : "local",
                        acct ? acct : "000000000000", key_id) < 0) {
        *arn = NULL;
    }
    return *arn != NULL ? P11KMS_OK : P11KMS_ERR_NO_MEMORY;
}

p11kms_rc p11kms_key_set_rotation(p11kms *h, const p11kms_caller *c, const char *key, unsigned days)
{
    (void)h, (void)c, (void)key, (void)days;
    return P11KMS_ERR_INVALID_STATE;
}

p11kms_rc p11kms_alias_update(p11kms *h, const p11kms_caller *c, const char *alias, const char *key)
{
    (void)h, (void)c, (void)alias, (void)key;
    return P11KMS_ERR_INVALID_STATE;
}
