/*
 * Public connection API (FLIP-529 CREATE/ALTER/DROP/DESCRIBE/SHOW
 * CONNECTION). Rendering of templates is in api_render.c.
 *
 * A connection is protected by the CMK of its namespace (or the one given
 * at create): create/alter/drop need kms:GenerateDataKey, describe,
 * show-create and list kms:DescribeKey, resolve kms:Decrypt, with the
 * context {"p11kms:namespace", "p11kms:secret-id", "p11kms:connection"}.
 * The connection record and its secret change in one write transaction.
 */
#include "config.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/secret_ops.h"
#include "util/codec.h"
#include "util/json_out.h"
#include "util/timefmt.h"

#define REDACTED "****"

static pk_result refuse_reserved(const char *key)
{
    PK_ENSURE(strcmp(key, PK_CONN_RESERVED_KEY) != 0, P11KMS_ERR_INVALID_ARGUMENT,
              "option '%s' is reserved for the secret reference; it cannot be set", PK_CONN_RESERVED_KEY);
    return PK_OK;
}

/* Write (insert, update, or delete when map is empty) the connection's secret inside the transaction. */
typedef struct conn_job {
    pk_conn *conn;
    uint64_t expected_rev;     /* 0 = create */
    pk_secret *secret;         /* new or updated secret (nsv set), or NULL */
    bool secret_is_new;
    const char *drop_secret;   /* secret id to delete, or NULL */
    pk_bytes enc;
    bool drop_conn;
    bool conflict;             /* the connection changed since it was read: retry */
} conn_job;

static pk_result conn_tx(p11kms *h, void *ctx)
{
    conn_job *j = ctx;
    pk_record rec;
    pk_result r = PK_OK;

    if (j->expected_rev != 0) {
        pk_conn cur;
        PK_GUARD(pk_conn_load(&h->env, j->conn->name, false, &cur));
        uint64_t rev = cur.rev;
        pk_conn_clear(&cur);
        j->conflict = rev != j->expected_rev;
        PK_ENSURE(!j->conflict, P11KMS_ERR_STORE, "connection %s changed concurrently; retry", j->conn->name);
    }
    if (j->secret != NULL && !j->secret_is_new) {
        pk_secret cur;
        uint32_t nsv = j->secret->nsv;
        PK_GUARD(pk_secret_load(&h->env, j->secret->id, false, &cur));
        cur.version++;
        cur.nsv = nsv;
        cur.updated_ms = pk_clock(h);
        r = pk_secret_seal(&h->env, &cur, j->enc, true);
        if (pk_ok(r)) r = pk_secret_save_tx(&h->env, &cur);
        pk_secret_clear(&cur);
        PK_GUARD(r);
    } else if (j->secret != NULL) {
        PK_GUARD(pk_secret_seal(&h->env, j->secret, j->enc, true));
        PK_GUARD(pk_secret_save_tx(&h->env, j->secret));
    }
    if (j->drop_secret != NULL) {
        pk_secret_row_forget(&h->env, j->drop_secret);
        PK_GUARD(h->store->ops->del(h->store, "secret", j->drop_secret));
    }
    if (j->drop_conn) return h->store->ops->del(h->store, "conn", j->conn->name);
    j->conn->updated_ms = pk_clock(h);
    PK_GUARD(pk_conn_to_record(j->conn, &rec));
    r = pk_record_save(h, &rec, j->expected_rev);
    if (r.code == P11KMS_ERR_ALREADY_EXISTS && j->expected_rev == 0)
        r = pk_fail(P11KMS_ERR_ALREADY_EXISTS, "connection %s already exists", j->conn->name);
    pk_record_clear(&rec);
    return r;
}

static void forget_secret(p11kms *h, const char *id)
{
    pk_secrets *st;
    if (id != NULL && *id != '\0' && pk_ok(pk_secrets_of(&h->env, &st))) pk_cache_forget(st, id);
}

/* Every size p11kms_connection_spec has had; append when a field is added. */
static const size_t connection_spec_sizes[] = {sizeof(p11kms_connection_spec)};

P11KMS_API p11kms_rc p11kms_connection_create(p11kms *h, const p11kms_caller *c, const char *name,
                                              const p11kms_connection_spec *caller_spec)
{
    p11kms_connection_spec full, *spec = &full;
    pk_op op;
    pk_result r = PK_OK;
    pk_conn conn;
    pk_secrets *st;
    p11kms_secret_map *sec = NULL;
    pk_secbuf enc = PK_SECBUF_INIT;
    pk_secret s;
    pk_key *k = NULL;
    pk_secret_ctx sc;
    char sid[PK_UUID_STR_LEN + 1] = "";
    const char *ns;
    conn_job j;

    memset(&conn, 0, sizeof(conn));
    memset(&s, 0, sizeof(s));
    PK_TRY(pk_op_begin(&op, h, c, "kms:GenerateDataKey"));
    op.connection = name;
    PK_TRY(pk_op_preflight(&op));
    PK_TRY(pk_conn_name_validate(name));
    PK_CHECK(caller_spec != NULL, P11KMS_ERR_INVALID_ARGUMENT, "no connection specification");
    PK_TRY(pk_spec_copy(&full, sizeof(full), caller_spec, connection_spec_sizes, 1, "connection spec"));
    ns = spec->ns ? spec->ns : PK_NS_DEFAULT;
    PK_TRY(pk_ns_validate(ns));
    PK_TRY(pk_secrets_of(&h->env, &st));
    snprintf(conn.name, sizeof(conn.name), "%s", name);
    snprintf(conn.ns, sizeof(conn.ns), "%s", ns);
    conn.comment = strdup(spec->comment ? spec->comment : "");
    PK_CHECK_ALLOC(conn.comment);
    if (spec->type != NULL) PK_TRY(pk_conn_set_opt(&conn, "type", spec->type));
    PK_TRY(pk_map_new(&sec));
    for (size_t i = 0; i < pk_map_count(spec->options); i++) {
        const char *key = pk_map_key(spec->options, i), *val = pk_map_value(spec->options, i);
        PK_TRY(refuse_reserved(key));
        if (pk_secrets_option_sensitive(st, key)) {
            PK_TRY(pk_map_set(sec, key, strlen(key), val, strlen(val)));
            PK_TRY(pk_conn_add_sensitive(&conn, key));
        } else {
            PK_TRY(pk_conn_set_opt(&conn, key, val));
        }
    }
    if (pk_map_count(sec) > 0) {
        uint8_t u[PK_UUID_LEN];
        PK_TRY(pk_uuid_new(u));
        pk_uuid_format(u, sid);
        PK_TRY(pk_map_encode(sec, &enc));
    }
    pk_secret_ctx_set(&op, &sc, ns, sid, name);
    PK_TRY(pk_secret_choose_key(&op, spec->key, ns, &k));
    memcpy(conn.cmk, k->id, sizeof(conn.cmk));
    conn.created_ms = pk_clock(h);
    memset(&j, 0, sizeof(j));
    j.conn = &conn;
    if (sid[0] != '\0') {
        PK_TRY(pk_secret_prepare(h, ns, k, sid, &s));
        memcpy(conn.secret_id, sid, sizeof(conn.secret_id));
        PK_TRY(pk_conn_set_opt(&conn, PK_CONN_RESERVED_KEY, sid));
        j.secret = &s;
        j.secret_is_new = true;
        j.enc = pk_bytes_of(enc.data, enc.len);
    } else {
        PK_TRY(pk_ns_ensure(&h->env, ns, k));
    }
    PK_TRY(pk_with_write_tx_batched(h, conn_tx, &j));
out:
    pk_key_release(&h->env, k);
    pk_secret_clear(&s);
    pk_secbuf_free(&enc);
    pk_map_free(sec);
    pk_conn_clear(&conn);
    return pk_op_finish(&op, r);
}

/* Load a connection and authorise action on its key with its context. */
static pk_result conn_open(pk_op *op, pk_secret_ctx *sc, const char *name, const char *action, bool usable,
                           pk_conn *conn, pk_key **k)
{
    op->connection = name;
    PK_GUARD(pk_conn_load(&op->h->env, name, true, conn));
    pk_secret_ctx_set(op, sc, conn->ns, conn->secret_id, name);
    return pk_secret_authorize(op, conn->cmk, action, usable, k);
}

/* The secret part of a connection, decrypted (empty map when it has none). */
static pk_result conn_secret(pk_op *op, pk_secret_ctx *sc, const pk_conn *conn, p11kms_secret_map **out)
{
    pk_secbuf enc = PK_SECBUF_INIT;
    pk_result r;
    if (conn->secret_id[0] == '\0') return pk_map_new(out);
    r = pk_secret_get_internal(op, sc, conn->secret_id, &enc);
    if (pk_ok(r)) r = pk_map_decode(pk_bytes_of(enc.data, enc.len), out);
    pk_secbuf_free(&enc);
    return r;
}

/* One attempt: read, change, write in one transaction; *conflict when another writer got there first. */
static pk_result alter_once(pk_op *op_, pk_secret_ctx *scp, const char *name, const p11kms_secret_map *set,
                            const char *const *reset, size_t nreset, const char *comment, bool *conflict)
{
    p11kms *h = op_->h;
    pk_result r = PK_OK;
    pk_conn conn;
    pk_secrets *st;
    pk_key *k = NULL, *dk = NULL;
    p11kms_secret_map *sec = NULL;
    pk_secbuf enc = PK_SECBUF_INIT;
    pk_secret s;
    bool secret_changed = false;
    char old_sid[PK_UUID_STR_LEN + 1];
    conn_job j;

    memset(&conn, 0, sizeof(conn));
    memset(&s, 0, sizeof(s));
    PK_TRY(pk_secrets_of(&h->env, &st));
    PK_TRY(conn_open(op_, scp, name, op_->action, true, &conn, &k));
    memcpy(old_sid, conn.secret_id, sizeof(old_sid));
    for (size_t i = 0; i < pk_map_count(set); i++) PK_TRY(refuse_reserved(pk_map_key(set, i)));
    for (size_t i = 0; i < nreset; i++) PK_TRY(refuse_reserved(reset[i]));
    for (size_t i = 0; i < pk_map_count(set) && !secret_changed; i++)
        secret_changed = pk_secrets_option_sensitive(st, pk_map_key(set, i));
    for (size_t i = 0; i < nreset && !secret_changed; i++)
        secret_changed = pk_secrets_option_sensitive(st, reset[i]);
    if (secret_changed) {
        /* Changing part of the secret needs the rest of it: kms:Decrypt too. */
        PK_TRY(pk_secret_authorize(op_, conn.cmk, "kms:Decrypt", true, &dk));
        PK_TRY(conn_secret(op_, scp, &conn, &sec));
        pk_secret_ctx_set(op_, scp, conn.ns, conn.secret_id, name);
        op_->action = "kms:GenerateDataKey";
    }
    for (size_t i = 0; i < pk_map_count(set); i++) {
        const char *key = pk_map_key(set, i), *val = pk_map_value(set, i);
        if (pk_secrets_option_sensitive(st, key)) {
            PK_TRY(pk_map_set(sec, key, strlen(key), val, strlen(val)));
            PK_TRY(pk_conn_add_sensitive(&conn, key));
        } else {
            PK_TRY(pk_conn_set_opt(&conn, key, val));
        }
    }
    for (size_t i = 0; i < nreset; i++) {
        bool gone = pk_secrets_option_sensitive(st, reset[i]) ? (pk_map_remove(sec, reset[i]),
                                                                 pk_conn_del_sensitive(&conn, reset[i]))
                                                              : pk_conn_del_opt(&conn, reset[i]);
        PK_CHECK(gone, P11KMS_ERR_NOT_FOUND, "connection %s has no option '%s'", name, reset[i]);
    }
    if (comment != NULL) {
        free(conn.comment);
        conn.comment = strdup(comment);
        PK_CHECK_ALLOC(conn.comment);
    }
    memset(&j, 0, sizeof(j));
    j.conn = &conn;
    j.expected_rev = conn.rev;
    if (secret_changed && pk_map_count(sec) == 0 && old_sid[0] != '\0') {
        j.drop_secret = old_sid;
        conn.secret_id[0] = '\0';
        (void)pk_conn_del_opt(&conn, PK_CONN_RESERVED_KEY);
    } else if (secret_changed && pk_map_count(sec) > 0) {
        PK_TRY(pk_map_encode(sec, &enc));
        if (old_sid[0] == '\0') {
            uint8_t u[PK_UUID_LEN];
            PK_TRY(pk_uuid_new(u));
            pk_uuid_format(u, conn.secret_id);
            PK_TRY(pk_conn_set_opt(&conn, PK_CONN_RESERVED_KEY, conn.secret_id));
            j.secret_is_new = true;
        }
        PK_TRY(pk_secret_prepare(h, conn.ns, k, conn.secret_id, &s));
        j.secret = &s;
        j.enc = pk_bytes_of(enc.data, enc.len);
        pk_secret_ctx_set(op_, scp, conn.ns, conn.secret_id, name);
    }
    r = pk_with_write_tx_batched(h, conn_tx, &j);
    *conflict = j.conflict;
    PK_TRY(r);
    forget_secret(h, old_sid);
out:
    pk_key_release(&h->env, k);
    pk_key_release(&h->env, dk);
    pk_secret_clear(&s);
    pk_secbuf_free(&enc);
    pk_map_free(sec);
    pk_conn_clear(&conn);
    return r;
}

P11KMS_API p11kms_rc p11kms_connection_alter(p11kms *h, const p11kms_caller *c, const char *name,
                                             const p11kms_secret_map *set, const char *const *reset, size_t nreset,
                                             const char *comment)
{
    pk_op op;
    pk_result r = PK_OK;
    pk_secret_ctx sc;
    bool conflict = true;

    PK_TRY(pk_op_begin(&op, h, c, "kms:GenerateDataKey"));
    PK_TRY(pk_op_preflight(&op));
    /* Optimistic concurrency: a writer that lost the race reads again and re-applies its change. */
    for (int attempt = 0; conflict && attempt < 100; attempt++) {
        if (attempt > 0) usleep(1000u * (unsigned)(attempt < 20 ? attempt : 20));
        conflict = false;
        r = alter_once(&op, &sc, name, set, reset, nreset, comment, &conflict);
    }
out:
    return pk_op_finish(&op, r);
}

P11KMS_API p11kms_rc p11kms_connection_drop(p11kms *h, const p11kms_caller *c, const char *name)
{
    pk_op op;
    pk_result r = PK_OK;
    pk_conn conn;
    pk_key *k = NULL;
    pk_secret_ctx sc;
    conn_job j;

    memset(&conn, 0, sizeof(conn));
    PK_TRY(pk_op_begin(&op, h, c, "kms:GenerateDataKey"));
    PK_TRY(pk_op_preflight(&op));
    PK_TRY(conn_open(&op, &sc, name, op.action, false, &conn, &k));
    memset(&j, 0, sizeof(j));
    j.conn = &conn;
    j.expected_rev = conn.rev;
    j.drop_conn = true;
    j.drop_secret = conn.secret_id[0] ? conn.secret_id : NULL;
    PK_TRY(pk_with_write_tx_batched(h, conn_tx, &j));
    forget_secret(h, conn.secret_id);
out:
    pk_key_release(&h->env, k);
    pk_conn_clear(&conn);
    return pk_op_finish(&op, r);
}

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
    PK_TRY(conn_open(&op, &sc, name, op.action, false, &conn, &k));
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
    return connection_text(h, c, name, redacted_json, json);
}

P11KMS_API p11kms_rc p11kms_connection_show_create(p11kms *h, const p11kms_caller *c, const char *name, char **sql)
{
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
    PK_TRY(conn_open(op, &sc, name, "kms:Decrypt", true, &conn, &k));
    PK_TRY(conn_secret(op, &sc, &conn, &m));
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
