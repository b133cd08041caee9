/*
 * Public connection API (FLIP-529 CREATE/ALTER/DROP/DESCRIBE/SHOW
 * CONNECTION): create, alter and drop here; describe, show-create, resolve
 * and list in api_connections_read.c; rendering of templates in api_render.c.
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

#include "core/remote_fwd.h"
#include "core/secret_ops.h"
#include "util/codec.h"
#include "util/json_out.h"
#include "util/timefmt.h"

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
    if (h != NULL && h->remote != NULL) return pk_fwd_connection_create(h, c, name, caller_spec);
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

pk_result pk_conn_open(pk_op *op, pk_secret_ctx *sc, const char *name, const char *action, bool usable,
                       pk_conn *conn, pk_key **k)
{
    op->connection = name;
    PK_GUARD(pk_conn_load(&op->h->env, name, true, conn));
    pk_secret_ctx_set(op, sc, conn->ns, conn->secret_id, name);
    return pk_secret_authorize(op, conn->cmk, action, usable, k);
}

pk_result pk_conn_secret(pk_op *op, pk_secret_ctx *sc, const pk_conn *conn, p11kms_secret_map **out)
{
    pk_secbuf enc = PK_SECBUF_INIT;
    pk_result r;
    if (conn->secret_id[0] == '\0') return pk_map_new(out);
    r = pk_secret_get_internal(op, sc, conn->secret_id, &enc);
    if (pk_ok(r)) r = pk_map_decode(pk_bytes_of(enc.data, enc.len), out);
    pk_secbuf_free(&enc);
    return r;
}

/* Whether set or reset name an option kept in the connection's secret. */
static bool touches_secret(pk_secrets *st, const p11kms_secret_map *set, const char *const *reset, size_t nreset)
{
    for (size_t i = 0; i < pk_map_count(set); i++)
        if (pk_secrets_option_sensitive(st, pk_map_key(set, i))) return true;
    for (size_t i = 0; i < nreset; i++)
        if (pk_secrets_option_sensitive(st, reset[i])) return true;
    return false;
}

/* Apply set, reset and comment to conn; sensitive options go to sec (the decrypted secret part). */
static pk_result apply_changes(pk_secrets *st, pk_conn *conn, p11kms_secret_map *sec, const char *name,
                               const p11kms_secret_map *set, const char *const *reset, size_t nreset,
                               const char *comment)
{
    for (size_t i = 0; i < pk_map_count(set); i++) {
        const char *key = pk_map_key(set, i), *val = pk_map_value(set, i);
        if (pk_secrets_option_sensitive(st, key)) {
            PK_GUARD(pk_map_set(sec, key, strlen(key), val, strlen(val)));
            PK_GUARD(pk_conn_add_sensitive(conn, key));
        } else {
            PK_GUARD(pk_conn_set_opt(conn, key, val));
        }
    }
    for (size_t i = 0; i < nreset; i++) {
        bool gone = pk_secrets_option_sensitive(st, reset[i]) ? (pk_map_remove(sec, reset[i]),
                                                                 pk_conn_del_sensitive(conn, reset[i]))
                                                              : pk_conn_del_opt(conn, reset[i]);
        PK_ENSURE(gone, P11KMS_ERR_NOT_FOUND, "connection %s has no option '%s'", name, reset[i]);
    }
    if (comment != NULL) {
        free(conn->comment);
        conn->comment = strdup(comment);
        PK_ENSURE_ALLOC(conn->comment);
    }
    return PK_OK;
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
    bool secret_changed;
    char old_sid[PK_UUID_STR_LEN + 1];
    conn_job j;

    memset(&conn, 0, sizeof(conn));
    memset(&s, 0, sizeof(s));
    PK_TRY(pk_secrets_of(&h->env, &st));
    PK_TRY(pk_conn_open(op_, scp, name, op_->action, true, &conn, &k));
    memcpy(old_sid, conn.secret_id, sizeof(old_sid));
    for (size_t i = 0; i < pk_map_count(set); i++) PK_TRY(refuse_reserved(pk_map_key(set, i)));
    for (size_t i = 0; i < nreset; i++) PK_TRY(refuse_reserved(reset[i]));
    secret_changed = touches_secret(st, set, reset, nreset);
    if (secret_changed) {
        /* Changing part of the secret needs the rest of it: kms:Decrypt too. */
        PK_TRY(pk_secret_authorize(op_, conn.cmk, "kms:Decrypt", true, &dk));
        PK_TRY(pk_conn_secret(op_, scp, &conn, &sec));
        pk_secret_ctx_set(op_, scp, conn.ns, conn.secret_id, name);
        op_->action = "kms:GenerateDataKey";
    }
    PK_TRY(apply_changes(st, &conn, sec, name, set, reset, nreset, comment));
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
    if (h != NULL && h->remote != NULL) return pk_fwd_connection_alter(h, c, name, set, reset, nreset, comment);
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
    if (h != NULL && h->remote != NULL) return pk_fwd_connection_drop(h, c, name);
    pk_op op;
    pk_result r = PK_OK;
    pk_conn conn;
    pk_key *k = NULL;
    pk_secret_ctx sc;
    conn_job j;

    memset(&conn, 0, sizeof(conn));
    PK_TRY(pk_op_begin(&op, h, c, "kms:GenerateDataKey"));
    PK_TRY(pk_op_preflight(&op));
    PK_TRY(pk_conn_open(&op, &sc, name, op.action, false, &conn, &k));
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
