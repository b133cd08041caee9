/* Secrets, connections and render of a `connect =` handle (SM-CONTRACT.md). */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "core/op.h"
#include "core/remote_fwd.h"
#include "remote/remote.h"
#include "secrets/secrets.h"

static p11kms_rc done(pk_result r) { return pk_error_report(r.code); }

/* The map as JSON text in locked memory (NULL for an empty or absent map when allow_empty). */
static pk_result map_json(const p11kms_secret_map *m, bool allow_empty, p11kms_buf **out)
{
    p11kms_rc rc;
    *out = NULL;
    if (allow_empty && (m == NULL || p11kms_secret_map_count(m) == 0)) return PK_OK;
    PK_ENSURE(m != NULL, P11KMS_ERR_INVALID_ARGUMENT, "no secret map");
    rc = p11kms_secret_map_to_json(m, out);
    return rc == P11KMS_OK ? PK_OK : pk_fail(rc, "%s", p11kms_last_error());
}

static const char *text_of(const p11kms_buf *b) { return b ? (const char *)p11kms_buf_data(b) : NULL; }

p11kms_rc pk_fwd_secret_put(p11kms *h, const p11kms_caller *c, const char *ns, const char *key,
                            const p11kms_secret_map *map, char **id)
{
    p11kms_buf *json = NULL;
    pk_result r = PK_OK;
    pk_error_clear();
    *id = NULL;
    if (c != NULL) return pk_fwd_caller_given();
    PK_TRY(pk_ns_validate(ns ? ns : "default"));
    PK_TRY(map_json(map, false, &json));
    PK_TRY(pk_remote_secret_put(h->remote, ns, key, text_of(json), id));
out:
    p11kms_buf_free(json);
    return done(r);
}

p11kms_rc pk_fwd_secret_get(p11kms *h, const p11kms_caller *c, const char *id, p11kms_secret_map **out)
{
    pk_secbuf json = PK_SECBUF_INIT;
    pk_result r = PK_OK;
    p11kms_rc rc;
    pk_error_clear();
    *out = NULL;
    if (c != NULL) return pk_fwd_caller_given();
    PK_TRY(pk_remote_secret_get(h->remote, id, &json));
    rc = p11kms_secret_map_from_json((const char *)json.data, json.len, out);
    if (rc != P11KMS_OK) r = pk_fail(rc, "p11kmsd's SecretString for %s is not a JSON map of strings", id);
out:
    pk_secbuf_free(&json);
    return done(r);
}

p11kms_rc pk_fwd_secret_update(p11kms *h, const p11kms_caller *c, const char *id, const p11kms_secret_map *map)
{
    p11kms_buf *json = NULL;
    pk_result r = PK_OK;
    pk_error_clear();
    if (c != NULL) return pk_fwd_caller_given();
    PK_TRY(map_json(map, false, &json));
    PK_TRY(pk_remote_secret_update(h->remote, id, text_of(json)));
out:
    p11kms_buf_free(json);
    return done(r);
}

p11kms_rc pk_fwd_secret_remove(p11kms *h, const p11kms_caller *c, const char *id)
{
    pk_error_clear();
    if (c != NULL) return pk_fwd_caller_given();
    return done(pk_remote_secret_remove(h->remote, id));
}

p11kms_rc pk_fwd_secret_list(p11kms *h, const p11kms_caller *c, const char *ns, char **json)
{
    pk_result r = PK_OK;
    pk_error_clear();
    *json = NULL;
    if (c != NULL) return pk_fwd_caller_given();
    if (ns != NULL) PK_TRY(pk_ns_validate(ns));
    PK_TRY(pk_remote_secret_list(h->remote, ns, json));
out:
    return done(r);
}

/* Every size p11kms_connection_spec has had (api_connections.c keeps the same list). */
static const size_t connection_spec_sizes[] = {sizeof(p11kms_connection_spec)};

p11kms_rc pk_fwd_connection_create(p11kms *h, const p11kms_caller *c, const char *name,
                                   const p11kms_connection_spec *caller_spec)
{
    p11kms_connection_spec spec;
    p11kms_buf *json = NULL;
    pk_result r = PK_OK;
    pk_error_clear();
    if (c != NULL) return pk_fwd_caller_given();
    PK_CHECK(caller_spec != NULL, P11KMS_ERR_INVALID_ARGUMENT, "no connection specification");
    PK_TRY(pk_spec_copy(&spec, sizeof(spec), caller_spec, connection_spec_sizes, 1, "connection spec"));
    PK_TRY(map_json(spec.options, true, &json));
    PK_TRY(pk_remote_connection_create(h->remote, name, spec.type, spec.comment, spec.ns, spec.key, text_of(json)));
out:
    p11kms_buf_free(json);
    return done(r);
}

p11kms_rc pk_fwd_connection_alter(p11kms *h, const p11kms_caller *c, const char *name, const p11kms_secret_map *set,
                                  const char *const *reset, size_t nreset, const char *comment)
{
    p11kms_buf *json = NULL;
    pk_result r = PK_OK;
    pk_error_clear();
    if (c != NULL) return pk_fwd_caller_given();
    PK_TRY(map_json(set, true, &json));
    PK_TRY(pk_remote_connection_alter(h->remote, name, text_of(json), reset, nreset, comment));
out:
    p11kms_buf_free(json);
    return done(r);
}

p11kms_rc pk_fwd_connection_drop(p11kms *h, const p11kms_caller *c, const char *name)
{
    pk_error_clear();
    if (c != NULL) return pk_fwd_caller_given();
    return done(pk_remote_connection_drop(h->remote, name));
}

p11kms_rc pk_fwd_connection_describe(p11kms *h, const p11kms_caller *c, const char *name, char **json)
{
    pk_error_clear();
    *json = NULL;
    if (c != NULL) return pk_fwd_caller_given();
    return done(pk_remote_connection_doc(h->remote, "DescribeConnection", "Name", name, json));
}

p11kms_rc pk_fwd_connection_list(p11kms *h, const p11kms_caller *c, const char *like, char **json)
{
    pk_error_clear();
    *json = NULL;
    if (c != NULL) return pk_fwd_caller_given();
    return done(pk_remote_connection_doc(h->remote, "ListConnections", "Like", like, json));
}

p11kms_rc pk_fwd_connection_show_create(p11kms *h, const p11kms_caller *c, const char *name, char **sql)
{
    pk_error_clear();
    *sql = NULL;
    if (c != NULL) return pk_fwd_caller_given();
    return done(pk_remote_connection_show_create(h->remote, name, sql));
}

static pk_result add_pair(void *ctx, const char *key, const char *value)
{
    p11kms_rc rc = p11kms_secret_map_set(ctx, key, value);
    return rc == P11KMS_OK ? PK_OK : pk_fail(rc, "%s", p11kms_last_error());
}

p11kms_rc pk_fwd_connection_resolve(p11kms *h, const p11kms_caller *c, const char *name, p11kms_secret_map **out)
{
    pk_result r = PK_OK;
    p11kms_rc rc;
    pk_error_clear();
    *out = NULL;
    if (c != NULL) return pk_fwd_caller_given();
    rc = p11kms_secret_map_new(out);
    PK_CHECK(rc == P11KMS_OK, rc, "out of memory");
    PK_TRY(pk_remote_connection_resolve(h->remote, name, add_pair, *out));
out:
    if (pk_failed(r)) {
        p11kms_secret_map_free(*out);
        *out = NULL;
    }
    return done(r);
}

p11kms_rc pk_fwd_render(p11kms *h, const p11kms_caller *c, const char *text, size_t len, p11kms_buf **out)
{
    pk_secbuf b = PK_SECBUF_INIT;
    pk_result r = PK_OK;
    pk_error_clear();
    *out = NULL;
    if (c != NULL) return pk_fwd_caller_given();
    PK_CHECK(text != NULL && len <= P11KMS_RENDER_MAX_TEMPLATE_BYTES, P11KMS_ERR_INVALID_ARGUMENT,
             "a template is at most %d bytes", P11KMS_RENDER_MAX_TEMPLATE_BYTES);
    PK_TRY(pk_remote_render(h->remote, text, len, &b));
    PK_TRY(pk_secbuf_out(&b, out));
out:
    pk_secbuf_free(&b);
    return done(r);
}
