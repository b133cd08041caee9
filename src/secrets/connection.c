/*
 * Connection records (FLIP-529): kind "conn", id = the connection name,
 * ref = the namespace of its secret. The body holds only public options;
 * sensitive ones live in one secret named by __flink.encrypted-secret-key__.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "secrets/secrets.h"

#define CONN_FORMAT 1
#define MAX_OPTS 256

/* Flink's GlobalConfiguration.SENSITIVE_KEYS: matched as lower-case substrings. */
static const char *const builtin_sensitive[] = {
    "password", "secret", "fs.azure.account.key", "apikey", "api-key", "auth-params",
    "service-key", "token", "basic-auth", "jaas.config", "http-headers",
};

bool pk_conn_option_sensitive_builtin(const char *lower_name)
{
    for (size_t i = 0; i < PK_ARRAY_LEN(builtin_sensitive); i++)
        if (strstr(lower_name, builtin_sensitive[i]) != NULL) return true;
    return false;
}

static bool ident_ok(const char *p, size_t n)
{
    if (n == 0) return false;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
            return false;
    }
    return true;
}

pk_result pk_conn_name_validate(const char *name)
{
    size_t n, parts = 0;
    const char *p;
    PK_ENSURE(name != NULL && *name != '\0', P11KMS_ERR_INVALID_ARGUMENT, "no connection name given");
    n = strlen(name);
    p = name;
    while (n <= PK_CONN_NAME_MAX) {
        const char *dot = strchr(p, '.');
        size_t len = dot ? (size_t)(dot - p) : strlen(p);
        if (!ident_ok(p, len) || ++parts > 3) break;
        if (dot == NULL) return PK_OK;
        p = dot + 1;
    }
    return pk_fail(P11KMS_ERR_INVALID_ARGUMENT,
                   "invalid connection name '%.*s': use [catalog.][db.]name of letters, digits, '_' and '-'",
                   (int)(n > 64 ? 64 : n), name);
}

void pk_conn_clear(pk_conn *c)
{
    for (size_t i = 0; i < c->nopts; i++) {
        free(c->opts[i].key);
        free(c->opts[i].value);
    }
    for (size_t i = 0; i < c->nsensitive; i++) free(c->sensitive[i]);
    free(c->opts);
    free(c->sensitive);
    free(c->type);
    free(c->comment);
    memset(c, 0, sizeof(*c));
}

pk_result pk_conn_set_opt(pk_conn *c, const char *key, const char *value)
{
    size_t i;
    char *v;
    for (i = 0; i < c->nopts && strcmp(c->opts[i].key, key) < 0; i++) {}
    v = strdup(value);
    PK_ENSURE_ALLOC(v);
    if (i < c->nopts && strcmp(c->opts[i].key, key) == 0) {
        free(c->opts[i].value);
        c->opts[i].value = v;
        return PK_OK;
    }
    if (c->nopts >= MAX_OPTS) {
        free(v);
        return pk_fail(P11KMS_ERR_LIMIT, "a connection holds at most %d options", MAX_OPTS);
    }
    pk_conn_opt *grown = realloc(c->opts, (c->nopts + 1) * sizeof(*grown));
    if (grown == NULL) {
        free(v);
        return pk_fail(P11KMS_ERR_NO_MEMORY, "out of memory");
    }
    c->opts = grown;
    memmove(&c->opts[i + 1], &c->opts[i], (c->nopts - i) * sizeof(*grown));
    c->opts[i].key = strdup(key);
    c->opts[i].value = v;
    c->nopts++;
    PK_ENSURE_ALLOC(c->opts[i].key);
    return PK_OK;
}

bool pk_conn_del_opt(pk_conn *c, const char *key)
{
    for (size_t i = 0; i < c->nopts; i++) {
        if (strcmp(c->opts[i].key, key) == 0) {
            free(c->opts[i].key);
            free(c->opts[i].value);
            memmove(&c->opts[i], &c->opts[i + 1], (c->nopts - i - 1) * sizeof(*c->opts));
            c->nopts--;
            return true;
        }
    }
    return false;
}

pk_result pk_conn_add_sensitive(pk_conn *c, const char *key)
{
    size_t i;
    for (i = 0; i < c->nsensitive && strcmp(c->sensitive[i], key) < 0; i++) {}
    if (i < c->nsensitive && strcmp(c->sensitive[i], key) == 0) return PK_OK;
    char **grown = realloc(c->sensitive, (c->nsensitive + 1) * sizeof(*grown));
    PK_ENSURE_ALLOC(grown);
    c->sensitive = grown;
    memmove(&c->sensitive[i + 1], &c->sensitive[i], (c->nsensitive - i) * sizeof(*grown));
    c->sensitive[i] = strdup(key);
    c->nsensitive++;
    PK_ENSURE_ALLOC(c->sensitive[i]);
    return PK_OK;
}

bool pk_conn_del_sensitive(pk_conn *c, const char *key)
{
    for (size_t i = 0; i < c->nsensitive; i++) {
        if (strcmp(c->sensitive[i], key) == 0) {
            free(c->sensitive[i]);
            memmove(&c->sensitive[i], &c->sensitive[i + 1], (c->nsensitive - i - 1) * sizeof(*c->sensitive));
            c->nsensitive--;
            return true;
        }
    }
    return false;
}

pk_result pk_conn_to_record(const pk_conn *c, pk_record *rec)
{
    pk_buf *b = &rec->body;
    memset(rec, 0, sizeof(*rec));
    snprintf(rec->kind, sizeof(rec->kind), "conn");
    snprintf(rec->id, sizeof(rec->id), "%s", c->name);
    snprintf(rec->ref, sizeof(rec->ref), "%s", c->ns);
    PK_GUARD(pk_buf_append_be32(b, CONN_FORMAT));
    PK_GUARD(pk_buf_append_lpstr(b, c->name));
    PK_GUARD(pk_buf_append_lpstr(b, c->ns));
    PK_GUARD(pk_buf_append_lpstr(b, c->cmk));
    PK_GUARD(pk_buf_append_lpstr(b, c->secret_id));
    PK_GUARD(pk_buf_append_lpstr(b, c->comment ? c->comment : ""));
    PK_GUARD(pk_buf_append_be64(b, (uint64_t)c->created_ms));
    PK_GUARD(pk_buf_append_be64(b, (uint64_t)c->updated_ms));
    PK_GUARD(pk_buf_append_be32(b, (uint32_t)c->nopts));
    for (size_t i = 0; i < c->nopts; i++) {
        PK_GUARD(pk_buf_append_lpstr(b, c->opts[i].key));
        PK_GUARD(pk_buf_append_lpstr(b, c->opts[i].value));
    }
    PK_GUARD(pk_buf_append_be32(b, (uint32_t)c->nsensitive));
    for (size_t i = 0; i < c->nsensitive; i++) PK_GUARD(pk_buf_append_lpstr(b, c->sensitive[i]));
    return PK_OK;
}

static char *dup_bytes(pk_bytes b)
{
    char *s = malloc(b.len + 1);
    if (s == NULL) return NULL;
    if (b.len) memcpy(s, b.ptr, b.len);
    s[b.len] = '\0';
    return s;
}

pk_result pk_conn_from_record(const pk_record *rec, pk_conn *c)
{
    pk_cur cur = pk_cur_of(rec->body.data, rec->body.len);
    uint32_t n;
    pk_result r = PK_OK;
    memset(c, 0, sizeof(*c));
    cur.bad = pk_cur_u32(&cur) != CONN_FORMAT;
    pk_cur_str(&cur, c->name, sizeof(c->name));
    pk_cur_str(&cur, c->ns, sizeof(c->ns));
    pk_cur_str(&cur, c->cmk, sizeof(c->cmk));
    pk_cur_str(&cur, c->secret_id, sizeof(c->secret_id));
    c->comment = dup_bytes(pk_cur_lp(&cur));
    c->created_ms = (int64_t)pk_cur_u64(&cur);
    c->updated_ms = (int64_t)pk_cur_u64(&cur);
    n = pk_cur_u32(&cur);
    PK_CHECK(!cur.bad && c->comment != NULL && n <= MAX_OPTS && strcmp(c->name, rec->id) == 0, P11KMS_ERR_INTEGRITY,
             "store record conn/%s is malformed", rec->id);
    for (uint32_t i = 0; i < n; i++) {
        char *k = dup_bytes(pk_cur_lp(&cur)), *v = dup_bytes(pk_cur_lp(&cur));
        if (!cur.bad && k && v) r = pk_conn_set_opt(c, k, v);
        free(k);
        free(v);
        PK_CHECK(!cur.bad, P11KMS_ERR_INTEGRITY, "store record conn/%s is malformed", rec->id);
        PK_TRY(r);
    }
    n = pk_cur_u32(&cur);
    PK_CHECK(!cur.bad && n <= MAX_OPTS, P11KMS_ERR_INTEGRITY, "store record conn/%s is malformed", rec->id);
    for (uint32_t i = 0; i < n; i++) {
        char *k = dup_bytes(pk_cur_lp(&cur));
        if (!cur.bad && k) r = pk_conn_add_sensitive(c, k);
        free(k);
        PK_CHECK(!cur.bad, P11KMS_ERR_INTEGRITY, "store record conn/%s is malformed", rec->id);
        PK_TRY(r);
    }
    PK_CHECK(cur.n == 0, P11KMS_ERR_INTEGRITY, "store record conn/%s is malformed", rec->id);
    c->rev = rec->rev;
out:
    if (pk_failed(r)) pk_conn_clear(c);
    return r;
}

pk_result pk_conn_load(pk_env *env, const char *name, bool take_lock, pk_conn *out)
{
    pk_record rec = {0};
    bool found = false;
    pk_result r;
    PK_GUARD(pk_conn_name_validate(name));
    if (take_lock) pk_records_lock(env->rs);
    r = pk_records_load(env->rs, "conn", name, &rec, &found);
    if (take_lock) pk_records_unlock(env->rs);
    if (pk_ok(r) && !found) r = pk_fail(P11KMS_ERR_NOT_FOUND, "connection %s not found", name);
    if (pk_ok(r)) r = pk_conn_from_record(&rec, out);
    pk_record_clear(&rec);
    return r;
}
