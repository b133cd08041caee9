/*
 * Opening, closing and initialising a p11kms handle.
 *
 * The store is bound to its token: its "meta" record is MAC'd with the
 * token's store key, so a store opened against another token fails its
 * integrity check instead of being trusted or overwritten.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit/audit.h"
#include "conf/conf.h"
#include "core/access.h"
#include "core/freshness.h"
#include "core/op.h"
#include "core/remote_fwd.h"
#include "json/json_in.h"
#include "secrets/secrets.h"
#include "util/json_out.h"

#define DEFAULT_ACCOUNT "000000000000"
#define DEFAULT_REGION "local"
#define META_ID "store"

static pk_keyid text_id(const char *s)
{
    pk_keyid id;
    memset(&id, 0, sizeof(id));
    id.len = strlen(s);
    memcpy(id.bytes, s, id.len);
    return id;
}

static pk_result read_identity(p11kms *h)
{
    const char *acct = p11kms_config_get(h->cfg, "account");
    const char *region = p11kms_config_get(h->cfg, "region");
    acct = acct ? acct : DEFAULT_ACCOUNT;
    region = region ? region : DEFAULT_REGION;
    PK_ENSURE(strlen(acct) == 12 && strspn(acct, "0123456789") == 12, P11KMS_ERR_CONFIG,
              "%s: 'account' must be a 12-digit account id", p11kms_config_path(h->cfg));
    PK_ENSURE(strlen(region) < sizeof(h->region) && strspn(region, "abcdefghijklmnopqrstuvwxyz0123456789-") == strlen(region),
              P11KMS_ERR_CONFIG, "%s: 'region' must be lower-case letters, digits and '-'", p11kms_config_path(h->cfg));
    snprintf(h->account, sizeof(h->account), "%s", acct);
    snprintf(h->region, sizeof(h->region), "%s", region);
    return PK_OK;
}

static pk_result open_store(p11kms *h, bool create)
{
    const char *uri = p11kms_config_get(h->cfg, "store");
    char *resolved = NULL;
    pk_result r;

    PK_ENSURE(uri != NULL, P11KMS_ERR_CONFIG, "%s: 'store' is not set (e.g. store = sqlite:p11kms.db)",
              p11kms_config_path(h->cfg));
    /* sqlite:RELATIVE is relative to the configuration file, like every other path. */
    if (strncmp(uri, "sqlite:", 7) == 0 && uri[7] != '/' && uri[7] != '\0') {
        char *path = pk_conf_resolve(h->cfg, uri + 7);
        PK_ENSURE_ALLOC(path);
        if (asprintf(&resolved, "sqlite:%s", path) < 0) resolved = NULL;
        free(path);
        PK_ENSURE_ALLOC(resolved);
        uri = resolved;
    }
    r = pk_store_open(uri, create, &h->store);
    free(resolved);
    return r;
}

static pk_result open_common(const p11kms_config *cfg, bool create_store, p11kms **out)
{
    pk_result r = PK_OK;
    p11kms *h = calloc(1, sizeof(*h));
    pk_p11_opts o;
    unsigned long sessions = 4;

    *out = NULL;
    PK_ENSURE_ALLOC(h);
    pthread_mutex_init(&h->store_lock, NULL);
    h->cfg = cfg;
    h->store_mac_key = text_id(PK_STORE_MAC_KEY_ID);
    h->env.nonce_limit = PK_NONCE_LIMIT;
    h->store_recheck_ms = PK_STORE_RECHECK_MS;
    h->store_checked_at = INT64_MIN / 2;
    PK_TRY(read_identity(h));
    PK_TRY(pk_conf_uint(cfg, "sessions", 4, 1, 256, &sessions));
    PK_TRY(pk_store_flush_new(cfg, &h->flush));
    memset(&o, 0, sizeof(o));
    o.module = p11kms_config_get(cfg, "module");
    o.token_uri = p11kms_config_get(cfg, "token");
    o.cfg = cfg;
    o.pool_size = (unsigned)sessions;
    o.require_login = true;
    o.read_write = true;
    PK_TRY(pk_p11_open(&o, &h->p11));
    PK_TRY(pk_p11_require_mechanisms(h->p11));
    PK_TRY(open_store(h, create_store));
    PK_TRY(pk_fresh_wrap(h));
    pk_records_bind(h);
    PK_TRY(pk_keycache_new(&h->env.keys));
    PK_TRY(pk_secrets_new(cfg, &h->env.secrets));
    *out = h;
    h = NULL;
out:
    p11kms_close(h);
    return r;
}

/* The token a store was made with, from its meta record (unverified: for messages). */
static void describe_meta_token(const pk_record *rec, char *out, size_t size)
{
    pk_jv *doc = NULL;
    if (pk_ok(pk_json_parse((const char *)rec->body.data, rec->body.len, P11KMS_ERR_INTEGRITY, &doc)))
        snprintf(out, size, "token '%s' (serial %s)", pk_jv_str(pk_jv_get(doc, "token_label")) ?: "?",
                 pk_jv_str(pk_jv_get(doc, "token_serial")) ?: "?");
    else
        snprintf(out, size, "an unknown token");
    pk_json_free(doc);
}

/*
 * Check the store belongs to this token. *found=false for a fresh store.
 * service_key receives the service key id.
 */
static pk_result check_binding(p11kms *h, bool *found, char service_key[PK_UUID_STR_LEN + 1])
{
    pk_record rec = {0};
    bool has_key = false;
    pk_result r;
    char was[128];
    const pk_p11_info *info = pk_p11_get_info(h->p11);
    pk_jv *doc = NULL;

    pthread_mutex_lock(&h->store_lock);
    r = h->store->ops->get(h->store, "meta", META_ID, &rec, found);
    pthread_mutex_unlock(&h->store_lock);
    PK_GUARD(r);
    if (!*found) return PK_OK;
    describe_meta_token(&rec, was, sizeof(was));
    r = pk_p11_key_exists(h->p11, &h->store_mac_key, &has_key);
    if (pk_ok(r) && !has_key)
        r = pk_fail(P11KMS_ERR_INTEGRITY,
                    "this store was initialised with %s, not with token '%s' (serial %s); refusing to use or "
                    "overwrite it",
                    was, info->label, info->serial);
    if (pk_ok(r)) r = pk_record_check(h, &rec);
    if (pk_ok(r)) r = pk_json_parse((const char *)rec.body.data, rec.body.len, P11KMS_ERR_INTEGRITY, &doc);
    if (pk_ok(r)) {
        const char *sk = pk_jv_str(pk_jv_get(doc, "service_key"));
        if (sk == NULL || strlen(sk) != PK_UUID_STR_LEN)
            r = pk_fail(P11KMS_ERR_INTEGRITY, "store record meta/store is malformed");
        else
            memcpy(service_key, sk, PK_UUID_STR_LEN + 1);
    }
    pk_json_free(doc);
    pk_record_clear(&rec);
    return r;
}

/* The store against its anchor in the HSM (core/fresh_store.c). */
static pk_result check_fresh(p11kms *h, const char *service_key)
{
    pk_result r;
    pthread_mutex_lock(&h->store_lock);
    r = pk_fresh_verify(h, service_key);
    pthread_mutex_unlock(&h->store_lock);
    return r;
}

/* Keys destroyed by p11kms itself (at open) go on record as the system's actions. */
static pk_result audit_system(p11kms *h, const char *action, const char *key_id)
{
    pk_audit_event ev;
    if (h->audit == NULL) return PK_OK;
    memset(&ev, 0, sizeof(ev));
    ev.principal = "p11kms";
    ev.action = action;
    ev.key_id = key_id;
    ev.result = P11KMS_OK;
    return pk_audit_write(h->audit, &ev, NULL);
}

/* Deletion windows that have passed are enforced at every open. */
static pk_result purge_at_open(p11kms *h)
{
    pk_purge_report rep;
    pk_result r = pk_key_purge(&h->env, false, &rep);
    for (size_t i = 0; pk_ok(r) && i < rep.ndestroyed; i++) r = audit_system(h, "p11kms:DestroyKey", rep.destroyed[i]);
    if (pk_ok(r)) pk_purge_report_free(&rep);
    return r;
}

/*
 * A handle on an initialised store bound to this token. Without
 * PK_OPEN_FRESH only for store accept-restore (it opens a store its anchor
 * refuses, to re-anchor it) and audit verify (it reads the anchor only, and
 * opens no trail: closing one would seal it).
 */
pk_result pk_handle_open(const p11kms_config *cfg, unsigned flags, p11kms **out, char *service)
{
    pk_result r;
    p11kms *h = NULL;
    bool found = false;

    *out = NULL;
    /* p11kms_open forwards a connect = handle; what comes here needs the token itself. */
    if (p11kms_config_get(cfg, "connect") != NULL)
        return pk_fail(P11KMS_ERR_INVALID_ARGUMENT, "this needs the token: run it on the daemon's host (connect = is set)");
    r = open_common(cfg, false, &h);
    if (pk_ok(r)) r = check_binding(h, &found, service);
    if (pk_ok(r) && !found) r = pk_fail(P11KMS_ERR_NOT_INITIALIZED, "the store is not initialised; run p11kms init");
    if (pk_ok(r) && (flags & PK_OPEN_FRESH)) r = check_fresh(h, service);
    /* No operation without its audit trail: a trail that cannot be opened stops the handle. */
    if (pk_ok(r) && (flags & PK_OPEN_AUDIT)) r = pk_audit_open_conf(cfg, h->p11, &h->audit);
    if (pk_ok(r)) *out = h;
    else p11kms_close(h);
    return r;
}

P11KMS_API p11kms_rc p11kms_open(const p11kms_config *cfg, p11kms **out)
{
    pk_result r;
    p11kms *h = NULL;
    char service[PK_UUID_STR_LEN + 1];

    pk_error_clear();
    *out = NULL;
    if (p11kms_config_get(cfg, "connect") != NULL) return pk_fwd_open(cfg, out);
    r = pk_handle_open(cfg, PK_OPEN_FRESH | PK_OPEN_AUDIT, &h, service);
    if (pk_ok(r)) r = purge_at_open(h);
    if (pk_ok(r)) r = pk_store_flush_start(h);
    if (pk_failed(r)) {
        pk_error_report(r.code);
        p11kms_close(h);
        return r.code;
    }
    *out = h;
    return P11KMS_OK;
}

P11KMS_API void p11kms_close(p11kms *h)
{
    if (h == NULL) return;
    if (h->remote != NULL) {
        pk_fwd_close(h);
        return;
    }
    /* Seals what is unsealed; a failure here cannot be reported to anyone but the log itself. */
    PK_IGNORE(pk_audit_close(h->audit));
    h->audit = NULL;
    /* Wipes the decrypted-secret cache before the handle goes away. */
    pk_secrets_free(h->env.secrets);
    pk_sigv4_cache_free(h->sigv4); /* wipes the derived signing keys */
    pk_keycache_free(h->env.keys);
    pk_store_flush_close(h);
    pk_store_close(h->store);
    pk_p11_close(h->p11);
    pthread_mutex_destroy(&h->store_lock);
    free(h);
}

/* ---- init ---- */

static pk_result ensure_system_key(p11kms *h, const char *id_text, const char *label, bool *created)
{
    pk_keyid id = text_id(id_text);
    bool exists = false;
    PK_GUARD(pk_p11_key_exists(h->p11, &id, &exists));
    *created = !exists;
    if (exists) return PK_OK;
    return pk_p11_generate_key(h->p11, PK_KEY_HMAC, &id, label);
}

typedef struct meta_job {
    const pk_p11_info *info;
    const char *service_key;
} meta_job;

static pk_result write_meta_tx(p11kms *h, void *ctx)
{
    meta_job *m = ctx;
    pk_record rec;
    pk_json_out j;
    pk_result r;

    memset(&rec, 0, sizeof(rec));
    snprintf(rec.kind, sizeof(rec.kind), "meta");
    snprintf(rec.id, sizeof(rec.id), META_ID);
    pk_jo_init(&j, &rec.body);
    pk_jo_obj_begin(&j);
    pk_jo_kint(&j, "format", 1);
    pk_jo_kstr(&j, "token_label", m->info->label);
    pk_jo_kstr(&j, "token_serial", m->info->serial);
    pk_jo_kstr(&j, "service_key", m->service_key);
    pk_jo_kint(&j, "created_ms", pk_now_ms());
    pk_jo_obj_end(&j);
    r = pk_jo_result(&j);
    if (pk_ok(r)) r = pk_record_save(h, &rec, 0);
    pk_record_clear(&rec);
    return r;
}

static pk_result init_fresh(p11kms *h, const p11kms_caller *caller, const char *const *admins, size_t nadmins,
                            const char *const *operators, size_t noperators, char service[PK_UUID_STR_LEN + 1])
{
    pk_result r = PK_OK;
    pk_buf policy = {0};
    pk_key_create_args a;
    meta_job m;
    const char *self[1];

    if (nadmins == 0) {
        self[0] = caller->principal;
        admins = self;
        nadmins = 1;
    }
    PK_TRY(pk_policy_default(admins, nadmins, operators, noperators, &policy));
    PK_TRY(pk_buf_cstr(&policy));
    memset(&a, 0, sizeof(a));
    a.description = "p11kms service key: used when a caller names no key";
    a.policy_json = (const char *)policy.data;
    a.service = true;
    PK_TRY(pk_key_create(&h->env, &a, service));
    PK_TRY(pk_alias_create(&h->env, PK_SERVICE_ALIAS, service, true));
    m.info = pk_p11_get_info(h->p11);
    m.service_key = service;
    PK_TRY(pk_with_write_tx(h, write_meta_tx, &m));
out:
    pk_buf_free(&policy);
    return r;
}

P11KMS_API p11kms_rc p11kms_init(const p11kms_config *cfg, const p11kms_caller *caller, const char *const *admins,
                                 size_t nadmins, const char *const *operators, size_t noperators,
                                 char **report_json)
{
    pk_result r = PK_OK;
    p11kms *h = NULL;
    bool found = false, new_store_key = false, new_audit_key = false;
    char service[PK_UUID_STR_LEN + 1] = "";
    pk_buf out = {0};
    pk_json_out j;

    pk_error_clear();
    *report_json = NULL;
    PK_CHECK(caller != NULL, P11KMS_ERR_INVALID_ARGUMENT, "no principal: every operation needs the caller's ARN");
    PK_TRY(open_common(cfg, true, &h));
    PK_TRY(check_binding(h, &found, service));
    /*
     * A service key usable by "*" unasked is what policy-report flags, so
     * a fresh init must say who uses it; "*" stays possible, explicitly.
     */
    PK_CHECK(found || noperators > 0, P11KMS_ERR_INVALID_ARGUMENT,
             "init: name the principals that may use the service key %s (--operator ARN, repeatable; "
             "--operator '*' lets every principal use it)",
             PK_SERVICE_ALIAS);
    if (!found) PK_TRY(ensure_system_key(h, PK_STORE_MAC_KEY_ID, PK_STORE_MAC_KEY_LABEL, &new_store_key));
    PK_TRY(ensure_system_key(h, PK_AUDIT_KEY_ID, PK_AUDIT_KEY_LABEL, &new_audit_key));
    if (!found) PK_TRY(init_fresh(h, caller, admins, nadmins, operators, noperators, service));
    PK_TRY(check_fresh(h, service));
    PK_TRY(pk_audit_open_conf(cfg, h->p11, &h->audit));
    {
        pk_op op;
        pk_key_ref ref;
        PK_TRY(pk_op_begin(&op, h, caller, "p11kms:Init"));
        memset(&ref, 0, sizeof(ref));
        memcpy(ref.key_id, service, sizeof(ref.key_id));
        pk_op_set_key(&op, &ref);
        r.code = pk_op_finish(&op, PK_OK);
        PK_TRY(r);
    }
    pk_jo_init(&j, &out);
    pk_jo_obj_begin(&j);
    pk_jo_kbool(&j, "initialised", !found);
    pk_jo_kstr(&j, "token", pk_p11_get_info(h->p11)->label);
    pk_jo_kstr(&j, "service_key", service);
    pk_jo_kstr(&j, "service_alias", PK_SERVICE_ALIAS);
    pk_jo_kbool(&j, "created_store_key", new_store_key);
    pk_jo_kbool(&j, "created_audit_key", new_audit_key);
    pk_jo_obj_end(&j);
    PK_TRY(pk_jo_result(&j));
    PK_TRY(pk_str_out(&out, report_json));
out:
    pk_buf_free(&out);
    p11kms_close(h);
    return r.code;
}
