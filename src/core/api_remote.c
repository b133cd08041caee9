/* The public calls of a `connect =` handle: src/remote does the talking, this file the public types. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"
#include "core/op.h"
#include "core/remote_fwd.h"
#include "policy/policy.h"
#include "remote/remote.h"

static p11kms_rc done(pk_result r) { return pk_error_report(r.code); }

/* The daemon names the caller: a caller given here would be silently replaced by this host's identity. */
p11kms_rc pk_fwd_caller_given(void)
{
    return done(pk_fail(P11KMS_ERR_INVALID_ARGUMENT,
                        "with connect = the daemon names the caller: pass no caller (NULL), not this host's guess"));
}

p11kms_rc pk_fwd_open(const p11kms_config *cfg, p11kms **out)
{
    pk_remote_conf c;
    pk_result r = PK_OK;
    char *endpoint = NULL;
    const char *connect = p11kms_config_get(cfg, "connect");
    p11kms *h = calloc(1, sizeof(*h));

    memset(&c, 0, sizeof(c));
    PK_CHECK_ALLOC(h);
    h->cfg = cfg;
    /* unix:RELATIVE is relative to the configuration file, like every other path. */
    if (strncmp(connect, "unix:", 5) == 0 && connect[5] != '/') {
        char *path = pk_conf_resolve(cfg, connect + 5);
        PK_CHECK_ALLOC(path);
        if (asprintf(&endpoint, "unix:%s", path) < 0) endpoint = NULL;
        free(path);
        PK_CHECK_ALLOC(endpoint);
    }
    c.config_path = p11kms_config_path(cfg);
    c.endpoint = endpoint ? endpoint : connect;
    c.ca_file = pk_conf_path_value(cfg, "ca_file");
    c.access_key_id = p11kms_config_get(cfg, "access_key_id");
    c.secret_file = pk_conf_path_value(cfg, "secret_access_key_file");
    c.region = p11kms_config_get(cfg, "region");
    PK_TRY(pk_remote_open(&c, &h->remote));
    *out = h;
    h = NULL;
out:
    free(endpoint);
    free(h);
    return done(r);
}

void pk_fwd_close(p11kms *h)
{
    pk_remote_close(h->remote);
    free(h);
}

p11kms_rc pk_fwd_refuse(const char *what)
{
    return done(pk_fail(P11KMS_ERR_INVALID_ARGUMENT,
                        "%s needs the token: run it on the daemon's host (connect = is set)", what));
}

/* Every size p11kms_key_spec has had (api_keys.c keeps the same list). */
static const size_t key_spec_sizes[] = {sizeof(p11kms_key_spec)};

p11kms_rc pk_fwd_key_create(p11kms *h, const p11kms_caller *c, const p11kms_key_spec *caller_spec, char **key_id)
{
    p11kms_key_spec spec;
    pk_buf policy = {0};
    pk_result r = PK_OK;
    const char *doc;

    pk_error_clear();
    *key_id = NULL;
    if (c != NULL) return pk_fwd_caller_given();
    PK_CHECK(caller_spec != NULL, P11KMS_ERR_INVALID_ARGUMENT, "no key specification");
    PK_TRY(pk_spec_copy(&spec, sizeof(spec), caller_spec, key_spec_sizes, 1, "key spec"));
    PK_CHECK(spec.policy_json == NULL || (spec.nadmins == 0 && spec.noperators == 0), P11KMS_ERR_INVALID_ARGUMENT,
             "give either a policy or administrators/operators, not both");
    /* Checked before CreateKey, as in-process: a refused period must not leave a key behind. */
    PK_CHECK(spec.rotation_days == 0 ||
                 (spec.rotation_days >= PK_ROTATION_MIN_DAYS && spec.rotation_days <= PK_ROTATION_MAX_DAYS),
             P11KMS_ERR_INVALID_ARGUMENT, "rotation period must be %d to %d days (or 0 for off)", PK_ROTATION_MIN_DAYS,
             PK_ROTATION_MAX_DAYS);
    PK_CHECK(!spec.bypass_lint, P11KMS_ERR_INVALID_ARGUMENT,
             "--bypass-lint is not available with connect =: p11kmsd lints every policy");
    /* The default policy names the caller, whom only the daemon knows: operators need explicit admins here. */
    PK_CHECK(spec.noperators == 0 || spec.nadmins > 0, P11KMS_ERR_INVALID_ARGUMENT,
             "with connect =, --operator needs --admin too: the daemon, not this host, knows who the caller is");
    doc = spec.policy_json;
    if (spec.nadmins > 0) {
        PK_TRY(pk_policy_default(spec.admins, spec.nadmins, spec.operators, spec.noperators, &policy));
        PK_TRY(pk_buf_cstr(&policy));
        doc = (const char *)policy.data;
    }
    PK_TRY(pk_remote_key_create(h->remote, spec.description, doc, spec.bypass_lockout_check != 0,
                                spec.rotation_days, key_id));
out:
    pk_buf_free(&policy);
    return done(r);
}

p11kms_rc pk_fwd_key_describe(p11kms *h, const p11kms_caller *c, const char *key, char **json)
{
    pk_error_clear();
    *json = NULL;
    if (c != NULL) return pk_fwd_caller_given();
    return done(pk_remote_key_describe(h->remote, key, json));
}

p11kms_rc pk_fwd_key_list(p11kms *h, const p11kms_caller *c, char **json)
{
    pk_error_clear();
    *json = NULL;
    if (c != NULL) return pk_fwd_caller_given();
    return done(pk_remote_key_list(h->remote, json));
}

p11kms_rc pk_fwd_key_simple(p11kms *h, const p11kms_caller *c, const char *target, const char *key)
{
    pk_error_clear();
    if (c != NULL) return pk_fwd_caller_given();
    return done(pk_remote_key_simple(h->remote, target, key));
}

p11kms_rc pk_fwd_key_rotate(p11kms *h, const p11kms_caller *c, const char *key, unsigned *version)
{
    unsigned v = 0;
    pk_result r;
    pk_error_clear();
    if (version != NULL) *version = 0;
    if (c != NULL) return pk_fwd_caller_given();
    r = pk_remote_key_rotate(h->remote, key, &v);
    if (version != NULL) *version = v;
    return done(r);
}

p11kms_rc pk_fwd_key_schedule_deletion(p11kms *h, const p11kms_caller *c, const char *key, unsigned days, int64_t *ms)
{
    int64_t when = 0;
    pk_result r;
    pk_error_clear();
    if (ms != NULL) *ms = 0;
    if (c != NULL) return pk_fwd_caller_given();
    r = pk_remote_key_schedule_deletion(h->remote, key, days, &when);
    if (ms != NULL) *ms = when;
    return done(r);
}

p11kms_rc pk_fwd_key_set_rotation(p11kms *h, const p11kms_caller *c, const char *key, unsigned days)
{
    pk_error_clear();
    if (c != NULL) return pk_fwd_caller_given();
    return done(pk_remote_key_set_rotation(h->remote, key, days));
}

p11kms_rc pk_fwd_key_get_policy(p11kms *h, const p11kms_caller *c, const char *key, char **policy)
{
    pk_error_clear();
    *policy = NULL;
    if (c != NULL) return pk_fwd_caller_given();
    return done(pk_remote_key_get_policy(h->remote, key, policy));
}

p11kms_rc pk_fwd_key_put_policy(p11kms *h, const p11kms_caller *c, const char *key, const char *policy, unsigned flags)
{
    pk_error_clear();
    if (c != NULL) return pk_fwd_caller_given();
    if (flags & P11KMS_POLICY_BYPASS_LINT)
        return done(pk_fail(P11KMS_ERR_INVALID_ARGUMENT,
                            "--bypass-lint is not available with connect =: p11kmsd lints every policy"));
    return done(pk_remote_key_put_policy(h->remote, key, policy, (flags & P11KMS_POLICY_BYPASS_LOCKOUT_CHECK) != 0));
}

p11kms_rc pk_fwd_alias_set(p11kms *h, const p11kms_caller *c, const char *target, const char *alias, const char *key)
{
    pk_error_clear();
    if (c != NULL) return pk_fwd_caller_given();
    return done(pk_remote_alias_set(h->remote, target, alias, key));
}

p11kms_rc pk_fwd_alias_delete(p11kms *h, const p11kms_caller *c, const char *alias)
{
    pk_error_clear();
    if (c != NULL) return pk_fwd_caller_given();
    return done(pk_remote_alias_delete(h->remote, alias));
}

p11kms_rc pk_fwd_alias_list(p11kms *h, const p11kms_caller *c, const char *key, char **json)
{
    pk_error_clear();
    *json = NULL;
    if (c != NULL) return pk_fwd_caller_given();
    return done(pk_remote_alias_list(h->remote, key, json));
}

p11kms_rc pk_fwd_encrypt(p11kms *h, const p11kms_caller *c, const char *key, const p11kms_kv *ctx, size_t nctx,
                         const uint8_t *pt, size_t n, p11kms_buf **blob)
{
    pk_buf b = {0};
    pk_result r;
    pk_error_clear();
    *blob = NULL;
    if (c != NULL) return pk_fwd_caller_given();
    r = pk_remote_encrypt(h->remote, key, ctx, nctx, pt, n, &b);
    if (pk_ok(r)) r = pk_buf_out(&b, blob);
    pk_buf_free(&b);
    return done(r);
}

p11kms_rc pk_fwd_decrypt(p11kms *h, const p11kms_caller *c, const p11kms_kv *ctx, size_t nctx, const uint8_t *blob,
                         size_t n, p11kms_buf **pt, char **key_id)
{
    pk_secbuf p = PK_SECBUF_INIT;
    pk_result r;
    pk_error_clear();
    *pt = NULL;
    if (key_id != NULL) *key_id = NULL;
    if (c != NULL) return pk_fwd_caller_given();
    r = pk_remote_decrypt(h->remote, ctx, nctx, blob, n, &p, key_id);
    if (pk_ok(r)) r = pk_secbuf_out(&p, pt);
    if (pk_failed(r) && key_id != NULL) {
        free(*key_id);
        *key_id = NULL;
    }
    pk_secbuf_free(&p);
    return done(r);
}

p11kms_rc pk_fwd_generate_data_key(p11kms *h, const p11kms_caller *c, const char *key, const p11kms_kv *ctx,
                                   size_t nctx, size_t bytes, p11kms_buf **pt, p11kms_buf **blob)
{
    pk_secbuf p = PK_SECBUF_INIT;
    pk_buf b = {0};
    pk_result r;
    pk_error_clear();
    *blob = NULL;
    if (pt != NULL) *pt = NULL;
    if (c != NULL) return pk_fwd_caller_given();
    r = pk_remote_generate_data_key(h->remote, key, ctx, nctx, bytes, pt ? &p : NULL, &b);
    if (pk_ok(r)) r = pk_buf_out(&b, blob);
    if (pk_ok(r) && pt != NULL) r = pk_secbuf_out(&p, pt);
    if (pk_failed(r)) {
        p11kms_buf_free(*blob);
        *blob = NULL;
    }
    pk_secbuf_free(&p);
    pk_buf_free(&b);
    return done(r);
}

p11kms_rc pk_fwd_reencrypt(p11kms *h, const p11kms_caller *c, const uint8_t *blob, size_t n, const p11kms_kv *src,
                           size_t nsrc, const char *dst_key, const p11kms_kv *dst, size_t ndst, p11kms_buf **out)
{
    pk_buf b = {0};
    pk_result r;
    pk_error_clear();
    *out = NULL;
    if (c != NULL) return pk_fwd_caller_given();
    r = pk_remote_reencrypt(h->remote, blob, n, src, nsrc, dst_key, dst, ndst, &b);
    if (pk_ok(r)) r = pk_buf_out(&b, out);
    pk_buf_free(&b);
    return done(r);
}
