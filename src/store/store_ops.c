/* SQLite backend: the record operations (see store_sqlite.c, Threads). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "store/store_sqlite_impl.h"

/* ---- records ------------------------------------------------------------- */

static pk_result check_name(const char *what, const char *v, size_t max, bool may_be_empty)
{
    PK_ENSURE(v != NULL, P11KMS_ERR_INVALID_ARGUMENT, "store: record %s is missing", what);
    PK_ENSURE(strnlen(v, max) < max, P11KMS_ERR_INVALID_ARGUMENT, "store: record %s is longer than %zu bytes", what,
              max - 1);
    PK_ENSURE(may_be_empty || *v != '\0', P11KMS_ERR_INVALID_ARGUMENT, "store: record %s is empty", what);
    return PK_OK;
}

static pk_result check_key(const char *kind, const char *id)
{
    PK_GUARD(check_name("kind", kind, PK_STORE_KIND_MAX, false));
    if (id != NULL) PK_GUARD(check_name("id", id, PK_STORE_ID_MAX, false));
    return PK_OK;
}

static pk_result copy_text(sqlite3_stmt *st, int col, char *dst, size_t max, const pk_record *rec)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    int n = sqlite3_column_bytes(st, col);

    PK_ENSURE(t != NULL || n == 0, P11KMS_ERR_NO_MEMORY, "out of memory");
    PK_ENSURE((size_t)n < max, P11KMS_ERR_INTEGRITY, "store record %.32s/%.64s has an oversized column %d",
              rec->kind, rec->id, col);
    if (n > 0) memcpy(dst, t, (size_t)n);
    dst[n] = '\0';
    return PK_OK;
}

/*
 * Fill rec from the current row (columns in COLS order). rec->body is
 * reused, so a listing allocates once, not once per row.
 */
static pk_result row_to_record(sqlite3_stmt *st, pk_record *rec)
{
    const void *mac;
    const void *body;
    int n;

    rec->kind[0] = rec->id[0] = '\0';
    PK_GUARD(copy_text(st, 0, rec->kind, sizeof(rec->kind), rec));
    PK_GUARD(copy_text(st, 1, rec->id, sizeof(rec->id), rec));
    PK_GUARD(copy_text(st, 2, rec->ref, sizeof(rec->ref), rec));
    rec->due_ms = sqlite3_column_int64(st, 3);
    PK_ENSURE(sqlite3_column_int64(st, 4) > 0 && rec->due_ms >= 0, P11KMS_ERR_INTEGRITY,
              "store record %s/%s has an invalid rev or due time", rec->kind, rec->id);
    rec->rev = (uint64_t)sqlite3_column_int64(st, 4);
    mac = sqlite3_column_blob(st, 6);
    PK_ENSURE(sqlite3_column_bytes(st, 6) == PK_STORE_MAC_LEN && mac != NULL, P11KMS_ERR_INTEGRITY,
              "store record %s/%s has a malformed MAC", rec->kind, rec->id);
    memcpy(rec->mac, mac, PK_STORE_MAC_LEN);
    body = sqlite3_column_blob(st, 5);
    n = sqlite3_column_bytes(st, 5);
    PK_ENSURE(body != NULL || n == 0, P11KMS_ERR_NO_MEMORY, "out of memory");
    pk_buf_reset(&rec->body);
    return pk_buf_append(&rec->body, body, (size_t)n);
}

/* A zero-length blob must still bind as a blob: a NULL pointer would bind SQL NULL. */
static int bind_blob(sqlite3_stmt *st, int i, const void *p, size_t n)
{
    static const uint8_t none[1];
    return sqlite3_bind_blob(st, i, n ? p : none, (int)n, SQLITE_STATIC);
}

static int bind_key(sqlite3_stmt *st, const char *kind, const char *id)
{
    int rc = sqlite3_bind_text(st, 1, kind, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK && id != NULL) rc = sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
    return rc;
}

static int bind_record(sqlite3_stmt *st, const pk_record *rec)
{
    int rc = bind_key(st, rec->kind, rec->id);
    if (rc == SQLITE_OK) rc = sqlite3_bind_text(st, 3, rec->ref, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 4, rec->due_ms);
    if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 5, (sqlite3_int64)rec->rev);
    if (rc == SQLITE_OK) rc = bind_blob(st, 6, rec->body.data, rec->body.len);
    if (rc == SQLITE_OK) rc = bind_blob(st, 7, rec->mac, PK_STORE_MAC_LEN);
    return rc;
}

static pk_result get_inlock(sq_store *s, const char *kind, const char *id, pk_record *out, bool *found)
{
    pk_result r = PK_OK;
    sqlite3_stmt *st = NULL;
    int rc;

    PK_TRY(sq_acquire_inlock(s, ST_GET, &st));
    rc = bind_key(st, kind, id);
    if (rc == SQLITE_OK) rc = sq_step_inlock(s, st, s->tx == TX_NONE);
    if (rc == SQLITE_ROW) {
        PK_TRY(row_to_record(st, out));
        *found = true;
    } else {
        PK_CHECK(rc == SQLITE_DONE, sq_map_rc(rc), "store get %s/%s: %s", kind, id, sq_db_error(s, s->db));
    }
out:
    sq_release_inlock(s, ST_GET, st);
    return r;
}

/* *out is overwritten, not freed: pass a fresh record or one already cleared with pk_record_clear. */
pk_result sq_get(pk_store *base, const char *kind, const char *id, pk_record *out, bool *found)
{
    sq_store *s = sq(base);
    pk_result r;

    PK_ENSURE_REF(out);
    PK_ENSURE_REF(found);
    memset(out, 0, sizeof(*out));
    *found = false;
    PK_GUARD(check_key(kind, id));
    pthread_mutex_lock(&s->lock);
    r = get_inlock(s, kind, id, out, found);
    pthread_mutex_unlock(&s->lock);
    if (pk_failed(r)) {
        pk_record_clear(out);
        *found = false;
    }
    return r;
}

/* A write outside a transaction commits by itself: refused after a failed flush, like begin. */
static pk_result autocommit_check_inlock(sq_store *s)
{
    if (s->tx == TX_NONE && sq_writes_refused(s)) return sq_fail_broken(s);
    return PK_OK;
}

static pk_result write_inlock(sq_store *s, const pk_record *rec, uint64_t expected_rev)
{
    pk_result r = PK_OK;
    enum stmt_id id = expected_rev == 0 ? ST_INSERT : ST_UPDATE;
    sqlite3_stmt *st = NULL;
    int rc;

    PK_CHECK(s->tx != TX_READ, P11KMS_ERR_INTERNAL, "store put %s/%s: inside a read transaction", rec->kind,
             rec->id);
    PK_TRY(sq_acquire_inlock(s, id, &st));
    rc = bind_record(st, rec);
    if (rc == SQLITE_OK && id == ST_UPDATE) rc = sqlite3_bind_int64(st, 8, (sqlite3_int64)expected_rev);
    if (rc == SQLITE_OK) rc = sq_step_inlock(s, st, s->tx == TX_NONE);
    PK_CHECK(rc != SQLITE_CONSTRAINT_PRIMARYKEY, P11KMS_ERR_ALREADY_EXISTS, "record %s/%s already exists",
             rec->kind, rec->id);
    if (rc != SQLITE_DONE) {
        r = sq_fail_rec(s, rc, "put", rec->kind, rec->id);
        goto out;
    }
    /* Zero rows: someone else updated (or deleted) it since the caller read expected_rev. */
    PK_CHECK(sqlite3_changes(s->db) == 1, P11KMS_ERR_STORE, "record %s/%s changed concurrently; retry", rec->kind,
             rec->id);
    if (s->tx == TX_NONE) sq_count_commit_inlock(s, NULL);
out:
    sq_release_inlock(s, id, st);
    return r;
}

pk_result sq_put(pk_store *base, const pk_record *rec, uint64_t expected_rev)
{
    sq_store *s = sq(base);
    pk_result r;

    PK_ENSURE_REF(rec);
    PK_GUARD(check_key(rec->kind, rec->id));
    PK_GUARD(check_name("ref", rec->ref, PK_STORE_ID_MAX, true));
    PK_ENSURE(expected_rev < INT64_MAX && rec->rev == expected_rev + 1, P11KMS_ERR_INVALID_ARGUMENT,
              "store put %s/%s: rev %llu is not expected rev + 1 (%llu)", rec->kind, rec->id,
              (unsigned long long)rec->rev, (unsigned long long)expected_rev + 1);
    PK_ENSURE(rec->due_ms >= 0, P11KMS_ERR_INVALID_ARGUMENT, "store put %s/%s: negative due time", rec->kind,
              rec->id);
    PK_ENSURE(rec->body.data != NULL || rec->body.len == 0, P11KMS_ERR_INVALID_ARGUMENT,
              "store put %s/%s: body is missing", rec->kind, rec->id);
    PK_ENSURE(rec->body.len <= INT_MAX, P11KMS_ERR_LIMIT, "store put %s/%s: body too large", rec->kind, rec->id);
    pthread_mutex_lock(&s->lock);
    r = autocommit_check_inlock(s);
    if (pk_ok(r)) r = write_inlock(s, rec, expected_rev);
    pthread_mutex_unlock(&s->lock);
    return r;
}

static pk_result del_inlock(sq_store *s, const char *kind, const char *id)
{
    pk_result r = PK_OK;
    sqlite3_stmt *st = NULL;
    int rc;

    PK_CHECK(s->tx != TX_READ, P11KMS_ERR_INTERNAL, "store delete %s/%s: inside a read transaction", kind, id);
    PK_TRY(sq_acquire_inlock(s, ST_DELETE, &st));
    rc = bind_key(st, kind, id);
    if (rc == SQLITE_OK) rc = sq_step_inlock(s, st, s->tx == TX_NONE);
    if (rc != SQLITE_DONE) r = sq_fail_rec(s, rc, "delete", kind, id);
    else if (s->tx == TX_NONE) sq_count_commit_inlock(s, NULL);
out:
    sq_release_inlock(s, ST_DELETE, st);
    return r;
}

pk_result sq_del(pk_store *base, const char *kind, const char *id)
{
    sq_store *s = sq(base);
    pk_result r;

    PK_GUARD(check_key(kind, id));
    pthread_mutex_lock(&s->lock);
    r = autocommit_check_inlock(s);
    if (pk_ok(r)) r = del_inlock(s, kind, id);
    pthread_mutex_unlock(&s->lock);
    return r;
}

/* Step through a bound query and hand each row to cb. Contention can only precede the first row. */
static pk_result each_row_inlock(sq_store *s, sqlite3_stmt *st, const char *op, const char *kind, pk_record_cb cb,
                                 void *ctx)
{
    pk_result r = PK_OK;
    pk_record rec;
    bool may_retry = s->tx == TX_NONE;
    retry t;
    int rc;

    memset(&rec, 0, sizeof(rec));
    for (sq_retry_init(&t, s);;) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            may_retry = false;
            PK_TRY(row_to_record(st, &rec));
            if (!cb(&rec, ctx)) break;
            continue;
        }
        if (rc == SQLITE_DONE) break;
        if (!may_retry || !sq_retry_after(&t, rc)) {
            r = pk_fail(sq_map_rc(rc), "store %s %s: %s", op, kind, sq_db_error(s, s->db));
            goto out;
        }
        (void)sqlite3_reset(st);
    }
out:
    pk_record_clear(&rec);
    return r;
}

static pk_result query_inlock(sq_store *s, enum stmt_id id, const char *op, const char *kind, const char *ref,
                              int64_t now_ms, pk_record_cb cb, void *ctx)
{
    pk_result r = PK_OK;
    sqlite3_stmt *st = NULL;
    int rc;

    PK_TRY(sq_acquire_inlock(s, id, &st));
    rc = bind_key(st, kind, ref);
    if (rc == SQLITE_OK && id == ST_LIST_DUE) rc = sqlite3_bind_int64(st, 2, now_ms);
    PK_CHECK(rc == SQLITE_OK, sq_map_rc(rc), "store %s %s: %s", op, kind, sq_db_error(s, s->db));
    PK_TRY(each_row_inlock(s, st, op, kind, cb, ctx));
out:
    sq_release_inlock(s, id, st);
    return r;
}

pk_result sq_list(pk_store *base, const char *kind, const char *ref, pk_record_cb cb, void *ctx)
{
    sq_store *s = sq(base);
    pk_result r;

    PK_ENSURE_REF(cb);
    PK_GUARD(check_key(kind, NULL));
    if (ref != NULL) PK_GUARD(check_name("ref", ref, PK_STORE_ID_MAX, true));
    pthread_mutex_lock(&s->lock);
    r = query_inlock(s, ref != NULL ? ST_LIST_REF : ST_LIST_KIND, "list", kind, ref, 0, cb, ctx);
    pthread_mutex_unlock(&s->lock);
    return r;
}

pk_result sq_list_all(pk_store *base, pk_record_cb cb, void *ctx)
{
    sq_store *s = sq(base);
    pk_result r = PK_OK;
    sqlite3_stmt *st = NULL;

    PK_ENSURE_REF(cb);
    pthread_mutex_lock(&s->lock);
    r = sq_acquire_inlock(s, ST_LIST_ALL, &st);
    if (pk_ok(r)) r = each_row_inlock(s, st, "list", "(all kinds)", cb, ctx);
    sq_release_inlock(s, ST_LIST_ALL, st);
    pthread_mutex_unlock(&s->lock);
    return r;
}

pk_result sq_list_due(pk_store *base, const char *kind, int64_t now_ms, pk_record_cb cb, void *ctx)
{
    sq_store *s = sq(base);
    pk_result r;

    PK_ENSURE_REF(cb);
    PK_GUARD(check_key(kind, NULL));
    pthread_mutex_lock(&s->lock);
    r = query_inlock(s, ST_LIST_DUE, "list_due", kind, NULL, now_ms, cb, ctx);
    pthread_mutex_unlock(&s->lock);
    return r;
}

/* Run a one-row, one-integer statement (count, data_version). */
static pk_result scalar_inlock(sq_store *s, enum stmt_id id, const char *op, const char *kind, const char *ref,
                               int64_t *out)
{
    pk_result r = PK_OK;
    sqlite3_stmt *st = NULL;
    int rc = SQLITE_OK;

    PK_TRY(sq_acquire_inlock(s, id, &st));
    if (kind != NULL) rc = bind_key(st, kind, ref);
    if (rc == SQLITE_OK) rc = sq_step_inlock(s, st, s->tx == TX_NONE);
    PK_CHECK(rc == SQLITE_ROW, sq_map_rc(rc), "store %s: %s", op, sq_db_error(s, s->db));
    *out = sqlite3_column_int64(st, 0);
out:
    sq_release_inlock(s, id, st);
    return r;
}

pk_result sq_count(pk_store *base, const char *kind, const char *ref, uint64_t *out)
{
    sq_store *s = sq(base);
    pk_result r;
    int64_t n = 0;

    PK_ENSURE_REF(out);
    PK_GUARD(check_key(kind, NULL));
    if (ref != NULL) PK_GUARD(check_name("ref", ref, PK_STORE_ID_MAX, true));
    pthread_mutex_lock(&s->lock);
    r = scalar_inlock(s, ref != NULL ? ST_COUNT_REF : ST_COUNT_KIND, "count", kind, ref, &n);
    pthread_mutex_unlock(&s->lock);
    *out = pk_ok(r) ? (uint64_t)n : 0;
    return r;
}

/*
 * PRAGMA data_version changes when another connection (this process or
 * another) commits; this handle's own commits do not change it, which is
 * what a cache of verified records wants: it updates itself on its writes.
 */
pk_result sq_changed(pk_store *base, bool *changed)
{
    sq_store *s = sq(base);
    pk_result r;
    int64_t v = 0;

    PK_ENSURE_REF(changed);
    pthread_mutex_lock(&s->lock);
    r = scalar_inlock(s, ST_DATA_VERSION, "changed", NULL, NULL, &v);
    if (pk_ok(r)) {
        *changed = !s->dv_seen || v != s->dv;
        s->dv = v;
        s->dv_seen = true;
    }
    pthread_mutex_unlock(&s->lock);
    return r;
}
