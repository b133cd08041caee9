/*
 * Public connection API, the reading side: describe and show-create (the
 * redacted view, kms:DescribeKey), resolve (with secret values,
 * kms:Decrypt) and list. See api_connections.c for the model.
 */
#include "config.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/remote_fwd.h"
#include "core/secret_ops.h"
#include "util/codec.h"
#include "util/json_out.h"
#include "util/timefmt.h"

#define REDACTED "****"

/* Public options plus sensitive names, sorted: the redacted view. */
static pk_result redacted_json(const pk_conn *conn, pk_buf *out)
{
    pk_json_out j;
    char t[PK_TIME_STR_LEN];
    size_t a = 0, b = 0;
    pk_jo_init(&j, out);
    pk_jo_obj_begin(&j);
    pk_jo_kstr(&j, "Name", conn->name);
    pk_jo_kstr(&j, "Namespace", conn->ns);
    pk_jo_kstr(&j, "KeyId", conn->cmk);
    pk_jo_kstr(&j, "Comment", conn->comment);
    if (conn->secret_id[0]) pk_jo_kstr(&j, "SecretId", conn->secret_id);
    pk_time_rfc3339(conn->created_ms, t);
    pk_jo_kstr(&j, "CreatedDate", t);
    pk_time_rfc3339(conn->updated_ms, t);
    pk_jo_kstr(&j, "LastChangedDate", t);
    pk_jo_key(&j, "Options");
    pk_jo_obj_begin(&j);
    while (a < conn->nopts || b < conn->nsensitive) {
        bool take_sens = a == conn->nopts || (b < conn->nsensitive && strcmp(conn->sensitive[b], conn->opts[a].key) < 0);
        if (take_sens) pk_jo_kstr(&j, conn->sensitive[b++], REDACTED);
        else {
            pk_jo_kstr(&j, conn->opts[a].key, conn->opts[a].value);
            a++;
        }
    }
    pk_jo_obj_end(&j);
    pk_jo_obj_end(&j);
    return pk_jo_result(&j);
}

/* 'text' as an SQL string literal ('' doubles a quote). */
static pk_result sql_lit(pk_buf *b, const char *s)
{
    PK_GUARD(pk_buf_append_str(b, "'"));
    for (; *s; s++) {
        if (*s == '\'') PK_GUARD(pk_buf_append_str(b, "''"));
        else PK_GUARD(pk_buf_append(b, s, 1));
    }
    return pk_buf_append_str(b, "'");
}

static pk_result show_create(const pk_conn *conn, pk_buf *b)
{
    size_t a = 0, s = 0, n = 0;
    const char *p = conn->name;
    PK_GUARD(pk_buf_append_str(b, "CREATE CONNECTION "));
    /* Each part of [catalog.][db.]name in backquotes. */
    while (*p) {
        size_t len = strcspn(p, ".");
        PK_GUARD(pk_buf_printf(b, "%s`%.*s`", p == conn->name ? "" : ".", (int)len, p));
        p += len;
        if (*p == '.') p++;
    }
    PK_GUARD(pk_buf_append_str(b, "\n"));
    if (conn->comment && *conn->comment) {
        PK_GUARD(pk_buf_append_str(b, "COMMENT "));
        PK_GUARD(sql_lit(b, conn->comment));
        PK_GUARD(pk_buf_append_str(b, "\n"));
    }
    PK_GUARD(pk_buf_append_str(b, "WITH ("));
    while (a < conn->nopts || s < conn->nsensitive) {
        bool sens = a == conn->nopts || (s < conn->nsensitive && strcmp(conn->sensitive[s], conn->opts[a].key) < 0);
        PK_GUARD(pk_buf_append_str(b, n++ ? ",\n  " : "\n  "));
        PK_GUARD(sql_lit(b, sens ? conn->sensitive[s] : conn->opts[a].key));
        PK_GUARD(pk_buf_append_str(b, " = "));
        PK_GUARD(sql_lit(b, sens ? REDACTED : conn->opts[a].value));
        if (sens) s++;
        else a++;
    }
    return pk_buf_append_str(b, "\n)");
}

/* describe and show-create: the same read (DescribeKey), two renderings, secrets redacted. */
typedef pk_result (*conn_format_fn)(const pk_conn *conn, pk_buf *out);

static p11kms_rc connection_text(p11kms *h, const p11kms_caller *c, const char *name, conn_format_fn format,
                                 char **text)
{
    pk_op op;
    pk_result r = PK_OK;
    pk_conn conn;
    pk_key *k = NULL;
    pk_buf out = {0};
    pk_secret_ctx sc;

    *text = NULL;
    memset(&conn, 0, sizeof(conn));
    PK_TRY(pk_op_begin(&op, h, c, "kms:DescribeKey"));
    pk_op_output_str(&op, text);
    PK_TRY(pk_conn_open(&op, &sc, name, op.action, false, &conn, &k));
    PK_TRY(format(&conn, &out));
    PK_TRY(pk_str_out(&out, text));
out:
    pk_buf_free(&out);
    pk_key_release(&h->env, k);
    pk_conn_clear(&conn);
    return pk_op_finish(&op, r);
}

P11KMS_API p11kms_rc p11kms_connection_describe(p11kms *h, const p11kms_caller *c, const char *name, char **json)
{
    if (h != NULL && h->remote != NULL) return pk_fwd_connection_describe(h, c, name, json);
    return connection_text(h, c, name, redacted_json, json);
}

P11KMS_API p11kms_rc p11kms_connection_show_create(p11kms *h, const p11kms_caller *c, const char *name, char **sql)
{
    if (h != NULL && h->remote != NULL) return pk_fwd_connection_show_create(h, c, name, sql);
    return connection_text(h, c, name, show_create, sql);
}

/* Merged options into *out (the reserved key left out). */
static pk_result resolve_into(pk_op *op, const char *name, p11kms_secret_map **out)
{
    pk_conn conn;
    pk_key *k = NULL;
    pk_secret_ctx sc;
    p11kms_secret_map *m = NULL;
    pk_result r = PK_OK;

    memset(&conn, 0, sizeof(conn));
    memset(&sc, 0, sizeof(sc));
    PK_TRY(pk_conn_open(op, &sc, name, "kms:Decrypt", true, &conn, &k));
    PK_TRY(pk_conn_secret(op, &sc, &conn, &m));
    for (size_t i = 0; i < conn.nopts; i++) {
        if (strcmp(conn.opts[i].key, PK_CONN_RESERVED_KEY) == 0) continue;
        PK_TRY(pk_map_set(m, conn.opts[i].key, strlen(conn.opts[i].key), conn.opts[i].value,
                          strlen(conn.opts[i].value)));
    }
    *out = m;
    m = NULL;
out:
    /* sc lives on this frame: nothing in op may point into it once we return. */
    op->ctx = NULL;
    op->nctx = 0;
    op->secret_id = NULL;
    op->connection = name;
    pk_map_free(m);
    pk_key_release(&op->h->env, k);
    pk_conn_clear(&conn);
    return r;
}

P11KMS_API p11kms_rc p11kms_connection_resolve(p11kms *h, const p11kms_caller *c, const char *name,
                                               p11kms_secret_map **out)
{
    if (h != NULL && h->remote != NULL) return pk_fwd_connection_resolve(h, c, name, out);
    pk_op op;
    pk_result r = PK_OK;

    *out = NULL;
    PK_TRY(pk_op_begin(&op, h, c, "kms:Decrypt"));
    op.connection = name;
    PK_TRY(resolve_into(&op, name, out));
out:
    {
        p11kms_rc rc = pk_op_finish(&op, r);
        if (rc != P11KMS_OK) {
            pk_map_free(*out); /* withheld: the read is not on record */
            *out = NULL;
        }
        return rc;
    }
}

/* SQL LIKE: % any run, _ one character (bytes); case-sensitive. */
static bool like(const char *p, const char *s)
{
    for (; *p; p++, s++) {
        if (*p == '%') {
            while (p[1] == '%') p++;
            if (p[1] == '\0') return true;
            for (; *s; s++)
                if (like(p + 1, s)) return true;
            return false;
        }
        if (*s == '\0' || (*p != '_' && *p != *s)) return false;
    }
    return *s == '\0';
}

typedef struct conn_acc {
    p11kms *h;
    const char *like;
    pk_conn *items;
    size_t n, cap;
    pk_result err;
} conn_acc;

static bool conn_collect(const pk_record *rec, void *ctx)
{
    conn_acc *a = ctx;
    if (a->like != NULL && !like(a->like, rec->id)) return true;
    a->err = pk_record_check(a->h, rec);
    if (pk_ok(a->err) && a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 32;
        pk_conn *grown = realloc(a->items, cap * sizeof(*grown));
        if (grown == NULL) a->err = pk_fail(P11KMS_ERR_NO_MEMORY, "out of memory");
        else {
            a->items = grown;
            a->cap = cap;
        }
    }
    if (pk_ok(a->err)) a->err = pk_conn_from_record(rec, &a->items[a->n]);
    if (pk_failed(a->err)) return false;
    a->n++;
    return true;
}

P11KMS_API p11kms_rc p11kms_connection_list(p11kms *h, const p11kms_caller *c, const char *pattern, char **json)
{
    if (h != NULL && h->remote != NULL) return pk_fwd_connection_list(h, c, pattern, json);
    pk_op op;
    pk_result r = PK_OK;
    conn_acc a;
    pk_buf out = {0};
    pk_json_out j;
    pk_secret_ctx sc;

    *json = NULL;
    memset(&a, 0, sizeof(a));
    PK_TRY(pk_op_begin(&op, h, c, "kms:DescribeKey"));
    pk_op_output_str(&op, json);
    a.h = h;
    a.like = pattern;
    pthread_mutex_lock(&h->store_lock);
    r = h->store->ops->list(h->store, "conn", NULL, conn_collect, &a);
    pthread_mutex_unlock(&h->store_lock);
    PK_TRY(r);
    PK_TRY(a.err);
    pk_jo_init(&j, &out);
    pk_jo_arr_begin(&j);
    for (size_t i = 0; i < a.n; i++) {
        pk_key *k = NULL;
        const char *type = NULL;
        pk_secret_ctx_set(&op, &sc, a.items[i].ns, a.items[i].secret_id, a.items[i].name);
        /* Only connections whose key lets the caller describe it. */
        bool ok = pk_ok(pk_secret_authorize(&op, a.items[i].cmk, "kms:DescribeKey", false, &k));
        pk_key_release(&h->env, k);
        if (!ok) continue;
        for (size_t o = 0; o < a.items[i].nopts; o++)
            if (strcmp(a.items[i].opts[o].key, "type") == 0) type = a.items[i].opts[o].value;
        pk_jo_obj_begin(&j);
        pk_jo_kstr(&j, "Name", a.items[i].name);
        pk_jo_kstr(&j, "Type", type ? type : "");
        pk_jo_kstr(&j, "Namespace", a.items[i].ns);
        pk_jo_kstr(&j, "Comment", a.items[i].comment);
        pk_jo_obj_end(&j);
    }
    pk_jo_arr_end(&j);
    pk_error_clear();
    op.ctx = NULL;
    op.nctx = 0;
    op.secret_id = NULL;
    op.connection = NULL;
    op.decided = false;
    memset(op.key_id, 0, sizeof(op.key_id));
    PK_TRY(pk_jo_result(&j));
    PK_TRY(pk_str_out(&out, json));
out:
    for (size_t i = 0; i < a.n; i++) pk_conn_clear(&a.items[i]);
    free(a.items);
    pk_buf_free(&out);
    return pk_op_finish(&op, r);
}

/* The argv warning's rule without a handle: built-in words, then `sensitive_options`. */
P11KMS_API int p11kms_connection_option_sensitive(const p11kms_config *cfg, const char *name)
{
    char low[PK_SECRET_KEY_MAX + 1];
    const char *p = cfg != NULL ? p11kms_config_get(cfg, "sensitive_options") : NULL;
    size_t n;

    if (name == NULL) return 0;
    n = strlen(name);
    if (n > PK_SECRET_KEY_MAX) n = PK_SECRET_KEY_MAX;
    for (size_t i = 0; i < n; i++) low[i] = (char)tolower((unsigned char)name[i]);
    low[n] = '\0';
    if (pk_conn_option_sensitive_builtin(low)) return 1;
    while (p != NULL && *p != '\0') {
        const char *end = strchr(p, ',');
        size_t m = end ? (size_t)(end - p) : strlen(p);
        char word[PK_SECRET_KEY_MAX + 1];
        while (m > 0 && isspace((unsigned char)*p)) p++, m--;
        while (m > 0 && isspace((unsigned char)p[m - 1])) m--;
        if (m > 0 && m < sizeof(word)) {
            for (size_t i = 0; i < m; i++) word[i] = (char)tolower((unsigned char)p[i]);
            word[m] = '\0';
            if (strstr(low, word) != NULL) return 1;
        }
        p = end ? end + 1 : NULL;
    }
    return 0;
}
