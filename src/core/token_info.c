/* p11kms_token_probe: what `p11kms token info` shows, without needing a store. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"
#include "core/core.h"
#include "p11/p11.h"

struct p11kms_token_info {
    pk_p11_info info;
};

P11KMS_API p11kms_rc p11kms_token_probe(const p11kms_config *cfg, p11kms_token_info **out)
{
    pk_p11_opts o = {0};
    pk_p11 *p = NULL;
    pk_result r;

    pk_error_clear();
    *out = NULL;
    o.module = p11kms_config_get(cfg, "module");
    o.token_uri = p11kms_config_get(cfg, "token");
    o.cfg = cfg;
    o.pool_size = 1;
    o.require_login = false;
    r = pk_p11_open(&o, &p);
    if (pk_failed(r)) return r.code;
    *out = calloc(1, sizeof(**out));
    if (*out == NULL) {
        pk_p11_close(p);
        return pk_fail(P11KMS_ERR_NO_MEMORY, "out of memory").code;
    }
    (*out)->info = *pk_p11_get_info(p);
    pk_p11_close(p);
    return P11KMS_OK;
}

P11KMS_API const char *p11kms_token_info_module(const p11kms_token_info *ti) { return ti->info.module; }
P11KMS_API const char *p11kms_token_info_label(const p11kms_token_info *ti) { return ti->info.label; }
P11KMS_API const char *p11kms_token_info_serial(const p11kms_token_info *ti) { return ti->info.serial; }
P11KMS_API const char *p11kms_token_info_manufacturer(const p11kms_token_info *ti) { return ti->info.manufacturer; }
P11KMS_API const char *p11kms_token_info_model(const p11kms_token_info *ti) { return ti->info.model; }
P11KMS_API p11kms_rc p11kms_token_info_login(const p11kms_token_info *ti) { return ti->info.login_rc; }
P11KMS_API const char *p11kms_token_info_login_detail(const p11kms_token_info *ti) { return ti->info.login_detail; }
P11KMS_API size_t p11kms_token_info_mech_count(const p11kms_token_info *ti)
{
    (void)ti;
    return PK_MECH_ROLE_COUNT;
}

P11KMS_API const char *p11kms_token_info_mech_name(const p11kms_token_info *ti, size_t i)
{
    return i < PK_MECH_ROLE_COUNT ? pk_mech_name(ti->info.mech[i]) : "";
}

P11KMS_API const char *p11kms_token_info_mech_role(const p11kms_token_info *ti, size_t i)
{
    (void)ti;
    return pk_mech_role_name((pk_mech_role)i);
}

P11KMS_API int p11kms_token_info_mech_present(const p11kms_token_info *ti, size_t i)
{
    return i < PK_MECH_ROLE_COUNT && ti->info.present[i];
}

P11KMS_API void p11kms_token_info_free(p11kms_token_info *ti)
{
    free(ti);
}

P11KMS_API p11kms_rc p11kms_token_health_get(p11kms *h, p11kms_token_health *out)
{
    pk_p11_stats st;

    pk_error_clear();
    if (h == NULL || out == NULL || out->struct_size < sizeof(*out))
        return pk_fail(P11KMS_ERR_INVALID_ARGUMENT, "token health: set struct_size = sizeof(p11kms_token_health)")
            .code;
    pk_p11_get_stats(h->p11, &st);
    out->down = st.down;
    out->reconnects = st.reconnects;
    out->reinits = st.reinits;
    out->faults = st.faults;
    snprintf(out->last_fault, sizeof(out->last_fault), "%s", st.last_fault ? pk_p11_rv_name(st.last_fault) : "");
    return P11KMS_OK;
}
