/*
 * Unit tests for src/store: the SQLite backend on temporary databases
 * (no token needed), including two-process contention on one file.
 *
 * P11KMS_STORE_BENCH=1 also times get and changed (printed, never asserted).
 */
#include "config.h"

#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lib/fixture.h"
#include "store/store.h"
#include "util/bytes.h"

#define OK(call) PK_ASSERT_RC((call).code, P11KMS_OK, NULL)
/* Through a pointer: PK_ASSERT_RC tests detail against NULL, which -Waddress rejects for arrays. */
#define FAILS(call, rc, detail)                       \
    do {                                              \
        const char *want_ = (detail);                 \
        PK_ASSERT_RC((call).code, (rc), want_);       \
    } while (0)

static char tmpdir[64];

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static int suite_init(void)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/p11kms-store-XXXXXX");
    return mkdtemp(tmpdir) != NULL ? 0 : 1;
}

static int suite_clean(void)
{
    return nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS) == 0 ? 0 : 1;
}

static void path_of(const char *name, char *out, size_t n)
{
    snprintf(out, n, "%s/%s", tmpdir, name);
}

static void uri_of(const char *name, char *out, size_t n)
{
    snprintf(out, n, "sqlite:%s/%s", tmpdir, name);
}

/* A fresh store in the temp folder; aborts the test when it cannot open. */
static pk_store *open_new(const char *name)
{
    char uri[256];
    pk_store *s = NULL;
    uri_of(name, uri, sizeof(uri));
    OK(pk_store_open(uri, true, &s));
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    return s;
}

static pk_record mkrec(const char *kind, const char *id, const char *ref, int64_t due, uint64_t rev, const char *body)
{
    pk_record r;
    memset(&r, 0, sizeof(r));
    snprintf(r.kind, sizeof(r.kind), "%s", kind);
    snprintf(r.id, sizeof(r.id), "%s", id);
    snprintf(r.ref, sizeof(r.ref), "%s", ref);
    r.due_ms = due;
    r.rev = rev;
    memset(r.mac, (int)rev, sizeof(r.mac));
    if (pk_failed(pk_buf_append_str(&r.body, body))) abort();
    return r;
}

/* Insert a record with rev 1. */
static void insert(pk_store *s, const char *kind, const char *id, const char *ref, int64_t due)
{
    pk_record r = mkrec(kind, id, ref, due, 1, id);
    OK(s->ops->put(s, &r, 0));
    pk_record_clear(&r);
}

/* Collects ids (comma separated) and optionally stops after `stop` records. */
typedef struct collect {
    char ids[512];
    unsigned n, stop;
} collect;

static bool collect_cb(const pk_record *rec, void *ctx)
{
    collect *c = ctx;
    size_t len = strlen(c->ids);
    snprintf(c->ids + len, sizeof(c->ids) - len, "%s%s", len ? "," : "", rec->id);
    c->n++;
    return c->stop == 0 || c->n < c->stop;
}

static void test_store_open_create_reopen(void)
{
    char uri[256];
    pk_store *s = open_new("reopen.db");
    pk_record got;
    bool found = false;

    CU_ASSERT_STRING_EQUAL(s->ops->name, "sqlite");
    insert(s, "key", "k1", "", 0);
    pk_store_close(s);

    uri_of("reopen.db", uri, sizeof(uri));
    s = NULL;
    OK(pk_store_open(uri, false, &s));
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    OK(s->ops->get(s, "key", "k1", &got, &found));
    CU_ASSERT_TRUE(found);
    CU_ASSERT_EQUAL(got.rev, 1);
    pk_record_clear(&got);
    pk_store_close(s);

    /* create=true on an existing store opens it as it is. */
    s = NULL;
    OK(pk_store_open(uri, true, &s));
    OK(s->ops->get(s, "key", "k1", &got, &found));
    CU_ASSERT_TRUE(found);
    pk_record_clear(&got);
    pk_store_close(s);
    pk_store_close(NULL);
}

static void test_store_open_errors_are_exact(void)
{
    char uri[256], path[256], want[512];
    pk_store *s = (pk_store *)&s; /* must be reset to NULL on failure */

    uri_of("missing.db", uri, sizeof(uri));
    path_of("missing.db", path, sizeof(path));
    snprintf(want, sizeof(want), "store %s does not exist; run p11kms init", path);
    FAILS(pk_store_open(uri, false, &s), P11KMS_ERR_NOT_INITIALIZED, want);
    CU_ASSERT_PTR_NULL(s);
    CU_ASSERT_EQUAL(access(path, F_OK), -1); /* create=false never creates */

    FAILS(pk_store_open("postgres://kms:hunter2@db/kms", true, &s), P11KMS_ERR_CONFIG,
          "unsupported store 'postgres://...': use sqlite:PATH");
    FAILS(pk_store_open("mysql:kms", true, &s), P11KMS_ERR_CONFIG, "unsupported store 'mysql:...': use sqlite:PATH");
    FAILS(pk_store_open("/var/lib/p11kms.db", true, &s), P11KMS_ERR_CONFIG,
          "unsupported store '/var/lib/p11kms.db': use sqlite:PATH");
    FAILS(pk_store_open("sqlite:", true, &s), P11KMS_ERR_CONFIG, "store 'sqlite:' has an empty path: use sqlite:PATH");
    FAILS(pk_store_open("", true, &s), P11KMS_ERR_CONFIG, "no store configured: use sqlite:PATH");

    uri_of("no-such-dir/p11kms.db", uri, sizeof(uri));
    snprintf(want, sizeof(want), "store directory %s/no-such-dir does not exist; create it first", tmpdir);
    FAILS(pk_store_open(uri, true, &s), P11KMS_ERR_CONFIG, want);

    /* A folder is not a store. */
    snprintf(uri, sizeof(uri), "sqlite:%s", tmpdir);
    snprintf(want, sizeof(want), "store %s is not a regular file", tmpdir);
    FAILS(pk_store_open(uri, false, &s), P11KMS_ERR_STORE, want);
    CU_ASSERT_PTR_NULL(s);
}

static void check_mode(const char *path, mode_t want)
{
    struct stat st;
    CU_ASSERT_EQUAL_FATAL(stat(path, &st), 0);
    CU_ASSERT_EQUAL(st.st_mode & 07777, want);
    if ((st.st_mode & 07777) != want) fprintf(stderr, "\n  %s: mode %o\n", path, (unsigned)(st.st_mode & 07777));
}

static void test_store_files_are_mode_0600(void)
{
    const mode_t masks[] = {0, 022, 0277};
    for (size_t i = 0; i < PK_ARRAY_LEN(masks); i++) {
        char name[32], path[256], side[300];
        mode_t old = umask(masks[i]);
        pk_store *s;

        snprintf(name, sizeof(name), "mode%zu.db", i);
        s = open_new(name);
        insert(s, "key", "k", "", 0); /* makes sure the WAL exists */
        path_of(name, path, sizeof(path));
        check_mode(path, 0600);
        snprintf(side, sizeof(side), "%s-wal", path);
        check_mode(side, 0600);
        snprintf(side, sizeof(side), "%s-shm", path);
        check_mode(side, 0600);
        pk_store_close(s);
        umask(old);
    }
}

static void test_store_put_get_and_revisions(void)
{
    pk_store *s = open_new("rev.db");
    pk_record r = mkrec("key", "k1", "ns1", 1234, 1, "body-1");
    pk_record got;
    bool found = true;

    OK(s->ops->get(s, "key", "k1", &got, &found));
    CU_ASSERT_FALSE(found);
    pk_record_clear(&got);

    OK(s->ops->put(s, &r, 0));
    OK(s->ops->get(s, "key", "k1", &got, &found));
    CU_ASSERT_TRUE_FATAL(found);
    CU_ASSERT_STRING_EQUAL(got.kind, "key");
    CU_ASSERT_STRING_EQUAL(got.id, "k1");
    CU_ASSERT_STRING_EQUAL(got.ref, "ns1");
    CU_ASSERT_EQUAL(got.due_ms, 1234);
    CU_ASSERT_EQUAL(got.rev, 1);
    CU_ASSERT_EQUAL(got.body.len, 6);
    CU_ASSERT_EQUAL(memcmp(got.body.data, "body-1", 6), 0);
    CU_ASSERT_EQUAL(memcmp(got.mac, r.mac, PK_STORE_MAC_LEN), 0);
    pk_record_clear(&got);

    /* Insert of an existing record. */
    FAILS(s->ops->put(s, &r, 0), P11KMS_ERR_ALREADY_EXISTS, "record key/k1 already exists");

    /* Update from rev 1 to 2, with an empty body and no due time. */
    r.rev = 2;
    r.due_ms = 0;
    r.ref[0] = '\0';
    pk_buf_reset(&r.body);
    memset(r.mac, 0xa5, sizeof(r.mac));
    OK(s->ops->put(s, &r, 1));
    OK(s->ops->get(s, "key", "k1", &got, &found));
    CU_ASSERT_TRUE(found);
    CU_ASSERT_EQUAL(got.rev, 2);
    CU_ASSERT_EQUAL(got.body.len, 0);
    CU_ASSERT_STRING_EQUAL(got.ref, "");
    CU_ASSERT_EQUAL(got.mac[31], 0xa5);
    pk_record_clear(&got);

    /* A writer that read rev 1 lost the race. */
    FAILS(s->ops->put(s, &r, 1), P11KMS_ERR_STORE, "record key/k1 changed concurrently; retry");
    /* Updating a record that is gone is the same race. */
    r.rev = 8;
    FAILS(s->ops->put(s, &r, 7), P11KMS_ERR_STORE, "record key/k1 changed concurrently; retry");
    /* The caller sets rev = expected + 1 (the MAC covers it). */
    r.rev = 5;
    FAILS(s->ops->put(s, &r, 2), P11KMS_ERR_INVALID_ARGUMENT,
          "store put key/k1: rev 5 is not expected rev + 1 (3)");
    r.rev = 1;
    r.due_ms = -1;
    FAILS(s->ops->put(s, &r, 0), P11KMS_ERR_INVALID_ARGUMENT, "store put key/k1: negative due time");
    r.due_ms = 0;
    memset(r.id, 'x', sizeof(r.id)); /* not NUL-terminated */
    FAILS(s->ops->put(s, &r, 0), P11KMS_ERR_INVALID_ARGUMENT, "store: record id is longer than 519 bytes");
    FAILS(s->ops->get(s, "", "k1", &got, &found), P11KMS_ERR_INVALID_ARGUMENT, "store: record kind is empty");
    CU_ASSERT_FALSE(found);
    pk_record_clear(&r);
    pk_store_close(s);
}

static void test_store_delete(void)
{
    pk_store *s = open_new("del.db");
    pk_record got;
    bool found = true;
    uint64_t n = 9;

    insert(s, "key", "k1", "", 0);
    insert(s, "key", "k2", "", 0);
    OK(s->ops->del(s, "key", "k1"));
    OK(s->ops->get(s, "key", "k1", &got, &found));
    CU_ASSERT_FALSE(found);
    pk_record_clear(&got);
    OK(s->ops->del(s, "key", "k1")); /* absent: not an error */
    OK(s->ops->count(s, "key", NULL, &n));
    CU_ASSERT_EQUAL(n, 1);
    /* Deleted then re-inserted starts again at rev 1. */
    insert(s, "key", "k1", "", 0);
    pk_store_close(s);
}

static void test_store_list_and_count(void)
{
    pk_store *s = open_new("list.db");
    collect c;
    uint64_t n = 0;

    insert(s, "alias", "c", "key-2", 0);
    insert(s, "alias", "a", "key-1", 0);
    insert(s, "alias", "d", "key-1", 0);
    insert(s, "alias", "b", "key-1", 0);
    insert(s, "key", "key-1", "", 0);
    insert(s, "key", "key-2", "", 0);

    memset(&c, 0, sizeof(c));
    OK(s->ops->list(s, "alias", NULL, collect_cb, &c));
    CU_ASSERT_STRING_EQUAL(c.ids, "a,b,c,d");
    memset(&c, 0, sizeof(c));
    OK(s->ops->list(s, "alias", "key-1", collect_cb, &c));
    CU_ASSERT_STRING_EQUAL(c.ids, "a,b,d");
    memset(&c, 0, sizeof(c));
    OK(s->ops->list(s, "alias", "key-9", collect_cb, &c));
    CU_ASSERT_STRING_EQUAL(c.ids, "");
    memset(&c, 0, sizeof(c));
    OK(s->ops->list(s, "key", "", collect_cb, &c)); /* ref "" lists records without a ref */
    CU_ASSERT_STRING_EQUAL(c.ids, "key-1,key-2");
    memset(&c, 0, sizeof(c));
    c.stop = 2;
    OK(s->ops->list(s, "alias", NULL, collect_cb, &c));
    CU_ASSERT_STRING_EQUAL(c.ids, "a,b");

    OK(s->ops->count(s, "alias", NULL, &n));
    CU_ASSERT_EQUAL(n, 4);
    OK(s->ops->count(s, "alias", "key-1", &n));
    CU_ASSERT_EQUAL(n, 3);
    OK(s->ops->count(s, "secret", NULL, &n));
    CU_ASSERT_EQUAL(n, 0);
    pk_store_close(s);
}

static void test_store_list_due(void)
{
    pk_store *s = open_new("due.db");
    collect c;

    insert(s, "keyver", "never", "", 0);
    insert(s, "keyver", "late", "", 300);
    insert(s, "keyver", "second", "", 100);
    insert(s, "keyver", "first", "", 50);
    insert(s, "keyver", "also-second", "", 100);
    insert(s, "key", "other-kind", "", 10);

    memset(&c, 0, sizeof(c));
    OK(s->ops->list_due(s, "keyver", 200, collect_cb, &c));
    CU_ASSERT_STRING_EQUAL(c.ids, "first,also-second,second");
    memset(&c, 0, sizeof(c));
    OK(s->ops->list_due(s, "keyver", 300, collect_cb, &c)); /* due_ms <= now */
    CU_ASSERT_STRING_EQUAL(c.ids, "first,also-second,second,late");
    memset(&c, 0, sizeof(c));
    OK(s->ops->list_due(s, "keyver", 49, collect_cb, &c));
    CU_ASSERT_STRING_EQUAL(c.ids, "");
    memset(&c, 0, sizeof(c));
    c.stop = 1;
    OK(s->ops->list_due(s, "keyver", 1000, collect_cb, &c));
    CU_ASSERT_STRING_EQUAL(c.ids, "first");
    pk_store_close(s);
}

static void test_store_changed_across_handles(void)
{
    char uri[256];
    pk_store *a = open_new("changed.db");
    pk_store *b = NULL;
    bool changed = false;

    uri_of("changed.db", uri, sizeof(uri));
    OK(pk_store_open(uri, false, &b));
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);

    OK(a->ops->changed(a, &changed));
    CU_ASSERT_TRUE(changed); /* first call: nothing seen yet */
    OK(a->ops->changed(a, &changed));
    CU_ASSERT_FALSE(changed);

    insert(b, "key", "k1", "", 0);
    OK(a->ops->changed(a, &changed));
    CU_ASSERT_TRUE(changed);
    OK(a->ops->changed(a, &changed));
    CU_ASSERT_FALSE(changed);

    /* A handle's own writes are not "changes by others". */
    insert(a, "key", "k2", "", 0);
    OK(a->ops->changed(a, &changed));
    CU_ASSERT_FALSE(changed);
    OK(b->ops->changed(b, &changed));
    CU_ASSERT_TRUE(changed);
    pk_store_close(b);
    pk_store_close(a);
}

/*
 * A write lock held past the wait fails with a message that says so (and
 * what to do), not SQLite's "database is locked"; nothing else is affected.
 */
static void test_store_lock_held_past_the_wait(void)
{
    char uri[256], path[256], want[512];
    pk_store *a = open_new("locked.db");
    pk_store *b = NULL;
    pk_record got = {0};
    bool found = false;

    uri_of("locked.db", uri, sizeof(uri));
    path_of("locked.db", path, sizeof(path));
    OK(pk_store_open(uri, false, &b));
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    insert(a, "key", "k1", "", 0);
    pk_store_sqlite_set_lock_wait(b, 200);
    OK(pk_store_begin(a, true));
    snprintf(want, sizeof(want), "store begin: %s stayed locked by another process for more than 0.2 s; try again later",
             path);
    FAILS(pk_store_begin(b, true), P11KMS_ERR_STORE, want);
    /* Readers are not blocked by a writer (WAL), and the failed handle still works. */
    OK(b->ops->get(b, "key", "k1", &got, &found));
    CU_ASSERT_TRUE(found);
    pk_record_clear(&got);
    pk_store_rollback(a);
    OK(pk_store_begin(b, true));
    OK(pk_store_commit(b));
    pk_store_close(b);
    pk_store_close(a);
}

static void test_store_transactions(void)
{
    pk_store *s = open_new("tx.db");
    pk_record got;
    bool found = false;

    OK(pk_store_begin(s, true));
    insert(s, "key", "gone", "", 0);
    OK(s->ops->get(s, "key", "gone", &got, &found));
    CU_ASSERT_TRUE(found); /* visible inside the transaction */
    pk_record_clear(&got);
    pk_store_rollback(s);
    OK(s->ops->get(s, "key", "gone", &got, &found));
    CU_ASSERT_FALSE(found);
    pk_record_clear(&got);

    OK(pk_store_begin(s, true));
    insert(s, "key", "kept", "", 0);
    FAILS(pk_store_begin(s, true), P11KMS_ERR_INTERNAL, "store begin: a transaction is already open on this handle");
    /* A failed statement does not end the transaction. */
    {
        pk_record dup = mkrec("key", "kept", "", 0, 1, "x");
        FAILS(s->ops->put(s, &dup, 0), P11KMS_ERR_ALREADY_EXISTS, "record key/kept already exists");
        pk_record_clear(&dup);
    }
    OK(pk_store_commit(s));
    OK(s->ops->get(s, "key", "kept", &got, &found));
    CU_ASSERT_TRUE(found);
    pk_record_clear(&got);
    FAILS(pk_store_commit(s), P11KMS_ERR_INTERNAL, "store commit: no transaction is open");
    pk_store_rollback(s); /* harmless without a transaction */

    /* Read transactions see a snapshot and refuse writes. */
    OK(pk_store_begin(s, false));
    OK(s->ops->get(s, "key", "kept", &got, &found));
    CU_ASSERT_TRUE(found);
    pk_record_clear(&got);
    {
        pk_record w = mkrec("key", "w", "", 0, 1, "x");
        FAILS(s->ops->put(s, &w, 0), P11KMS_ERR_INTERNAL, "store put key/w: inside a read transaction");
        pk_record_clear(&w);
    }
    FAILS(s->ops->del(s, "key", "kept"), P11KMS_ERR_INTERNAL, "store delete key/kept: inside a read transaction");
    OK(pk_store_commit(s));
    pk_store_close(s);

    /* Closing with an open transaction rolls it back. */
    s = open_new("tx.db");
    OK(pk_store_begin(s, true));
    insert(s, "key", "unfinished", "", 0);
    pk_store_close(s);
    s = open_new("tx.db");
    OK(s->ops->get(s, "key", "unfinished", &got, &found));
    CU_ASSERT_FALSE(found);
    pk_record_clear(&got);
    pk_store_close(s);
}

static void write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    CU_ASSERT_EQUAL(fwrite(data, 1, n, f), n);
    fclose(f);
}

static void test_store_refuses_non_sqlite_file(void)
{
    char path[256], uri[300], want[512], junk[4096];
    pk_store *s = NULL;

    path_of("junk.db", path, sizeof(path));
    for (size_t i = 0; i < sizeof(junk); i++) junk[i] = (char)('a' + i % 26);
    write_file(path, junk, sizeof(junk));
    snprintf(uri, sizeof(uri), "sqlite:%s", path);
    snprintf(want, sizeof(want), "store %s is not an SQLite database", path);
    FAILS(pk_store_open(uri, false, &s), P11KMS_ERR_STORE, want);
    FAILS(pk_store_open(uri, true, &s), P11KMS_ERR_STORE, want);
    CU_ASSERT_PTR_NULL(s);

    /* A short text file too. */
    path_of("short.db", path, sizeof(path));
    write_file(path, "not a database\n", 15);
    snprintf(uri, sizeof(uri), "sqlite:%s", path);
    snprintf(want, sizeof(want), "store %s is not an SQLite database", path);
    FAILS(pk_store_open(uri, true, &s), P11KMS_ERR_STORE, want);

    /* An empty file (as a crashed init leaves it) is not initialised; create=true initialises it. */
    path_of("empty.db", path, sizeof(path));
    write_file(path, "", 0);
    snprintf(uri, sizeof(uri), "sqlite:%s", path);
    snprintf(want, sizeof(want), "store %s is not initialised; run p11kms init", path);
    FAILS(pk_store_open(uri, false, &s), P11KMS_ERR_NOT_INITIALIZED, want);
    OK(pk_store_open(uri, true, &s));
    pk_store_close(s);
}

/* PRAGMA user_version is the big-endian 32-bit word at offset 60 of the database header. */
static void set_user_version(const char *path, uint32_t v)
{
    uint8_t be[4];
    int fd = open(path, O_WRONLY);
    CU_ASSERT_TRUE_FATAL(fd >= 0);
    pk_store_be32(be, v);
    CU_ASSERT_EQUAL(pwrite(fd, be, 4, 60), 4);
    close(fd);
}

static void test_store_refuses_other_schema_versions(void)
{
    char path[256], uri[300], want[512];
    pk_store *s = open_new("future.db");

    insert(s, "key", "k1", "", 0);
    pk_store_close(s); /* the last close checkpoints the WAL into the file */
    path_of("future.db", path, sizeof(path));
    snprintf(uri, sizeof(uri), "sqlite:%s", path);

    set_user_version(path, 99);
    snprintf(want, sizeof(want),
             "store %s has schema version 99, newer than this p11kms supports (1); upgrade p11kms", path);
    s = NULL;
    FAILS(pk_store_open(uri, false, &s), P11KMS_ERR_STORE, want);
    FAILS(pk_store_open(uri, true, &s), P11KMS_ERR_STORE, want);
    CU_ASSERT_PTR_NULL(s);

    /* Version 0 with tables in it: an SQLite database of somebody else. */
    set_user_version(path, 0);
    snprintf(want, sizeof(want), "store %s is an SQLite database but not a p11kms store", path);
    FAILS(pk_store_open(uri, true, &s), P11KMS_ERR_STORE, want);
    snprintf(want, sizeof(want), "store %s is not initialised; run p11kms init", path);
    FAILS(pk_store_open(uri, false, &s), P11KMS_ERR_NOT_INITIALIZED, want);

    set_user_version(path, 1);
    OK(pk_store_open(uri, false, &s));
    pk_store_close(s);
}

/* ---- contention ------------------------------------------------------------ */

#define CHILDREN 4
#define INCREMENTS 200

static bool is_race(pk_result r)
{
    return r.code == P11KMS_ERR_STORE && strstr(p11kms_last_error(), "changed concurrently") != NULL;
}

/* One read-modify-write of the counter; *again when another writer got there first. */
static pk_result increment(pk_store *s, bool use_tx, bool *again)
{
    pk_result r = PK_OK;
    pk_record rec;
    bool found = false, in_tx = false;
    uint64_t v;

    memset(&rec, 0, sizeof(rec));
    *again = false;
    if (use_tx) {
        PK_TRY(pk_store_begin(s, true));
        in_tx = true;
    }
    PK_TRY(s->ops->get(s, "meta", "counter", &rec, &found));
    PK_CHECK(found && rec.body.len == 8, P11KMS_ERR_INTERNAL, "counter missing");
    v = pk_load_be64(rec.body.data) + 1;
    pk_store_be64(rec.body.data, v);
    rec.rev++;
    r = s->ops->put(s, &rec, rec.rev - 1);
    if (is_race(r)) {
        *again = true;
        r = PK_OK;
        goto out;
    }
    PK_TRY(r);
    if (use_tx) {
        in_tx = false;
        PK_TRY(pk_store_commit(s));
    }
out:
    if (in_tx) pk_store_rollback(s);
    pk_record_clear(&rec);
    return r;
}

/* Child: 0 when done, 2 if any error mentioned a lock, 1 for any other error. */
static int child_main(const char *uri, bool use_tx, unsigned count)
{
    pk_store *s = NULL;
    pk_result r = pk_store_open(uri, false, &s);
    unsigned done = 0, races = 0;

    while (pk_ok(r) && done < count) {
        bool again;
        r = increment(s, use_tx, &again);
        if (again)
            races++;
        else
            done++;
    }
    if (pk_failed(r)) {
        fprintf(stderr, "child %d: %s: %s\n", (int)getpid(), p11kms_rc_name(r.code), p11kms_last_error());
        return strstr(p11kms_last_error(), "locked") || strstr(p11kms_last_error(), "busy") ? 2 : 1;
    }
    if (use_tx && races != 0) fprintf(stderr, "child %d: %u races inside write transactions\n", (int)getpid(), races);
    pk_store_close(s);
    return use_tx && races != 0 ? 3 : 0;
}

static uint64_t read_counter(pk_store *s)
{
    pk_record rec;
    bool found = false;
    uint64_t v = 0;
    OK(s->ops->get(s, "meta", "counter", &rec, &found));
    if (found && rec.body.len == 8) v = pk_load_be64(rec.body.data);
    pk_record_clear(&rec);
    return v;
}

static void run_counter(const char *name, bool use_tx, unsigned per_child)
{
    char uri[256];
    pid_t pids[CHILDREN];
    pk_store *s = open_new(name);
    pk_record rec = mkrec("meta", "counter", "", 0, 1, "");

    OK(pk_buf_append_be64(&rec.body, 0));
    OK(s->ops->put(s, &rec, 0));
    pk_record_clear(&rec);
    /* Never carry an SQLite connection across fork(). */
    pk_store_close(s);
    uri_of(name, uri, sizeof(uri));
    fflush(NULL);
    for (int i = 0; i < CHILDREN; i++) {
        pids[i] = fork();
        CU_ASSERT_TRUE_FATAL(pids[i] >= 0);
        if (pids[i] == 0) _exit(child_main(uri, use_tx, per_child));
    }
    for (int i = 0; i < CHILDREN; i++) {
        int status = -1;
        CU_ASSERT_EQUAL(waitpid(pids[i], &status, 0), pids[i]);
        CU_ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    s = NULL;
    OK(pk_store_open(uri, false, &s));
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_EQUAL(read_counter(s), (uint64_t)CHILDREN * per_child);
    pk_store_close(s);
}

/* Write transactions serialise the children: no lost update, no lock error, no race. */
static void test_store_two_process_write_transactions(void)
{
    run_counter("counter-tx.db", true, INCREMENTS);
}

/* Without transactions, autocommit puts plus expected_rev still lose nothing. */
static void test_store_two_process_optimistic_puts(void)
{
    run_counter("counter-opt.db", false, INCREMENTS / 2);
}

typedef struct thread_arg {
    pk_store *s;
    unsigned done;
    p11kms_rc rc;
} thread_arg;

static void *thread_main(void *p)
{
    thread_arg *a = p;
    while (a->done < INCREMENTS / 2) {
        bool again;
        pk_result r = increment(a->s, false, &again);
        if (pk_failed(r)) {
            a->rc = r.code;
            break;
        }
        if (!again) a->done++;
    }
    return NULL;
}

static void test_store_threads_share_a_handle(void)
{
    pk_store *s = open_new("threads.db");
    pk_record rec = mkrec("meta", "counter", "", 0, 1, "");
    pthread_t th[CHILDREN];
    thread_arg args[CHILDREN];

    OK(pk_buf_append_be64(&rec.body, 0));
    OK(s->ops->put(s, &rec, 0));
    pk_record_clear(&rec);
    for (int i = 0; i < CHILDREN; i++) {
        args[i] = (thread_arg){s, 0, P11KMS_OK};
        CU_ASSERT_EQUAL_FATAL(pthread_create(&th[i], NULL, thread_main, &args[i]), 0);
    }
    for (int i = 0; i < CHILDREN; i++) {
        pthread_join(th[i], NULL);
        CU_ASSERT_EQUAL(args[i].rc, P11KMS_OK);
    }
    CU_ASSERT_EQUAL(read_counter(s), (uint64_t)CHILDREN * (INCREMENTS / 2));
    pk_store_close(s);
}

/* A list callback may use the same handle, even to list the same kind again. */
typedef struct nested {
    pk_store *s;
    unsigned outer, inner_total, gets;
} nested;

static bool inner_cb(const pk_record *rec, void *ctx)
{
    (void)rec;
    ((nested *)ctx)->inner_total++;
    return true;
}

static bool outer_cb(const pk_record *rec, void *ctx)
{
    nested *n = ctx;
    pk_record got;
    bool found = false;

    n->outer++;
    if (pk_ok(n->s->ops->get(n->s, rec->kind, rec->id, &got, &found)) && found) n->gets++;
    pk_record_clear(&got);
    if (pk_failed(n->s->ops->list(n->s, rec->kind, NULL, inner_cb, n))) return false;
    return true;
}

static void test_store_list_callback_may_reenter(void)
{
    pk_store *s = open_new("nested.db");
    nested n = {s, 0, 0, 0};

    insert(s, "key", "a", "", 0);
    insert(s, "key", "b", "", 0);
    insert(s, "key", "c", "", 0);
    OK(s->ops->list(s, "key", NULL, outer_cb, &n));
    CU_ASSERT_EQUAL(n.outer, 3);
    CU_ASSERT_EQUAL(n.gets, 3);
    CU_ASSERT_EQUAL(n.inner_total, 9);
    pk_store_close(s);
}

/* ---- durability: commit tickets, sync, group commit, checkpoints --------- */

static pk_store_stats stats_of(pk_store *s)
{
    pk_store_stats st;
    memset(&st, 0xff, sizeof(st));
    s->ops->stats(s, &st);
    return st;
}

/* Commits take tickets; a commit is durable only once `sync` covers it, and a sync with nothing new is free. */
static void test_store_sync_tickets(void)
{
    pk_store *s = open_new("sync.db");
    pk_store_stats st = stats_of(s);
    uint64_t t = 99;

    /* Creating the schema was a commit, made durable before open returned. */
    CU_ASSERT_EQUAL(st.commits, 1);
    CU_ASSERT_EQUAL(st.synced, 1);
    CU_ASSERT_EQUAL(st.syncs, 1);

    OK(pk_store_begin(s, true));
    insert(s, "key", "a", "", 0);
    OK(s->ops->commit(s, &t));
    CU_ASSERT_EQUAL(t, 2);
    st = stats_of(s);
    CU_ASSERT_EQUAL(st.commits, 2);
    CU_ASSERT_EQUAL(st.synced, 1); /* committed, visible, not yet durable */
    OK(s->ops->sync(s, t));
    st = stats_of(s);
    CU_ASSERT_EQUAL(st.synced, 2);
    CU_ASSERT_EQUAL(st.syncs, 2);
    OK(s->ops->sync(s, t));
    OK(s->ops->sync(s, PK_STORE_SYNC_ALL));
    CU_ASSERT_EQUAL(stats_of(s).syncs, 2);
    /* A ticket that was never issued waits for nothing. */
    OK(s->ops->sync(s, 1000));
    CU_ASSERT_EQUAL(stats_of(s).syncs, 2);

    /* Writes outside a transaction commit by themselves and count. */
    insert(s, "key", "b", "", 0);
    OK(s->ops->del(s, "key", "a"));
    st = stats_of(s);
    CU_ASSERT_EQUAL(st.commits, 4);
    CU_ASSERT_EQUAL(st.synced, 2);
    OK(s->ops->sync(s, PK_STORE_SYNC_ALL));
    st = stats_of(s);
    CU_ASSERT_EQUAL(st.synced, 4);
    CU_ASSERT_EQUAL(st.syncs, 3);

    /* Read transactions and rolled back writes take no ticket. */
    OK(pk_store_begin(s, false));
    OK(s->ops->commit(s, &t));
    CU_ASSERT_EQUAL(t, 0);
    OK(pk_store_begin(s, true));
    insert(s, "key", "c", "", 0);
    pk_store_rollback(s);
    CU_ASSERT_EQUAL(stats_of(s).commits, 4);
    pk_store_close(s);
}

#define SYNC_THREADS 6
#define SYNC_COMMITS 60

typedef struct sync_arg {
    pk_store *s;
    pthread_mutex_t *tx_lock; /* what core's store_lock does: one transaction at a time */
    int n;
    unsigned late;            /* sync returned before its ticket was durable */
    p11kms_rc rc;
} sync_arg;

static void *sync_thread(void *p)
{
    sync_arg *a = p;
    for (int i = 0; i < SYNC_COMMITS && a->rc == P11KMS_OK; i++) {
        pk_record rec = mkrec("secret", "", "", 0, 1, "value");
        uint64_t t = 0;
        pk_result r;
        snprintf(rec.id, sizeof(rec.id), "t%d-%d", a->n, i);
        pthread_mutex_lock(a->tx_lock);
        r = pk_store_begin(a->s, true);
        if (pk_ok(r)) r = a->s->ops->put(a->s, &rec, 0);
        if (pk_ok(r)) r = a->s->ops->commit(a->s, &t);
        else pk_store_rollback(a->s);
        pthread_mutex_unlock(a->tx_lock);
        /* The flush runs without the transaction lock: the other threads commit meanwhile. */
        if (pk_ok(r)) r = a->s->ops->sync(a->s, t);
        if (pk_ok(r) && stats_of(a->s).synced < t) a->late++;
        a->rc = r.code;
        pk_record_clear(&rec);
    }
    return NULL;
}

/* Threads share flushes (fewer fdatasyncs than commits), and each sync returns only once its commit is durable. */
static void test_store_sync_group_commit(void)
{
    pk_store *s = open_new("group.db");
    pthread_mutex_t tx_lock = PTHREAD_MUTEX_INITIALIZER;
    pthread_t th[SYNC_THREADS];
    sync_arg args[SYNC_THREADS];
    pk_store_stats before = stats_of(s), after;

    for (int i = 0; i < SYNC_THREADS; i++) {
        args[i] = (sync_arg){s, &tx_lock, i, 0, P11KMS_OK};
        CU_ASSERT_EQUAL_FATAL(pthread_create(&th[i], NULL, sync_thread, &args[i]), 0);
    }
    for (int i = 0; i < SYNC_THREADS; i++) {
        pthread_join(th[i], NULL);
        CU_ASSERT_EQUAL(args[i].rc, P11KMS_OK);
        CU_ASSERT_EQUAL(args[i].late, 0);
    }
    after = stats_of(s);
    CU_ASSERT_EQUAL(after.commits - before.commits, SYNC_THREADS * SYNC_COMMITS);
    CU_ASSERT_EQUAL(after.synced, after.commits);
    CU_ASSERT_TRUE(after.syncs - before.syncs < after.commits - before.commits);
    printf("\n  group commit: %llu commits, %llu fdatasyncs\n", (unsigned long long)(after.commits - before.commits),
           (unsigned long long)(after.syncs - before.syncs));
    pk_store_close(s);
}

/* A handle inherited by a forked child refuses to flush (the WAL and its locks belong to the parent). */
static void test_store_sync_refused_after_fork(void)
{
    pk_store *s = open_new("forksync.db");
    char path[256], want[512];
    pid_t pid;
    int status = -1;

    insert(s, "key", "k", "", 0);
    path_of("forksync.db", path, sizeof(path));
    snprintf(want, sizeof(want), "store %s: handle opened by process %ld; open a new one after fork", path,
             (long)getpid());
    fflush(NULL);
    pid = fork();
    CU_ASSERT_TRUE_FATAL(pid >= 0);
    if (pid == 0) {
        /* Not closed here: a child's close leaks the connection by design, which valgrind would count. */
        pk_result r = s->ops->sync(s, PK_STORE_SYNC_ALL);
        _exit(!(r.code == P11KMS_ERR_STORE && strcmp(p11kms_last_error(), want) == 0));
    }
    CU_ASSERT_EQUAL(waitpid(pid, &status, 0), pid);
    CU_ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    OK(s->ops->sync(s, PK_STORE_SYNC_ALL));
    pk_store_close(s);
}

static off_t wal_size(const char *name)
{
    char path[300];
    struct stat st;
    snprintf(path, sizeof(path), "%s/%s-wal", tmpdir, name);
    return stat(path, &st) == 0 ? st.st_size : -1;
}

/* About `pages` pages of log (one 3000-byte record per 4 KiB page), in commits of 50. */
static void write_pages(pk_store *s, const char *prefix, unsigned pages)
{
    char big[3000];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    OK(pk_store_begin(s, true));
    for (unsigned i = 0; i < pages; i++) {
        pk_record rec = mkrec("blob", "", "", 0, 1, big);
        snprintf(rec.id, sizeof(rec.id), "%s-%06u", prefix, i);
        OK(s->ops->put(s, &rec, 0));
        pk_record_clear(&rec);
        /* One commit per 50 records: about 50 pages each, as a stream of small commits would add up. */
        if (i % 50 == 49) {
            OK(pk_store_commit(s));
            OK(pk_store_begin(s, true));
        }
    }
    OK(pk_store_commit(s));
}

#define FRAME_BYTES (4096 + 24)

/*
 * By default commits checkpoint by themselves at 1000 log pages, so the
 * log restarts and stays small. In the background mode they leave it to
 * `checkpoint`; if nobody calls it, a commit still checkpoints at 10,000.
 */
static void test_store_checkpoints_in_the_background(void)
{
    pk_store *s = open_new("ckpt.db");
    off_t size;

    /* Inline: about 3000 pages written, the log never grows much past the mark. */
    write_pages(s, "inline", 3000);
    size = wal_size("ckpt.db");
    CU_ASSERT_TRUE(size > 0 && size < 1200 * FRAME_BYTES);
    CU_ASSERT_EQUAL(stats_of(s).checkpoints, 0);
    pk_store_close(s);

    s = open_new("ckpt2.db");
    s->ops->set_checkpoint_background(s, true);
    write_pages(s, "bg", 1100);
    CU_ASSERT_TRUE(wal_size("ckpt2.db") > 1100 * FRAME_BYTES); /* nobody checkpointed */
    OK(s->ops->checkpoint(s));
    CU_ASSERT_EQUAL(stats_of(s).checkpoints, 1);
    OK(s->ops->checkpoint(s)); /* copied already: not due again until the log grows by the mark */
    CU_ASSERT_EQUAL(stats_of(s).checkpoints, 1);
    /* Left alone, the log is bounded by the backstop: a commit checkpoints and the log restarts. */
    write_pages(s, "more", 12000);
    size = wal_size("ckpt2.db");
    CU_ASSERT_TRUE(size > 0 && size < 10200 * FRAME_BYTES);
    if (size >= 10200 * FRAME_BYTES) fprintf(stderr, "\n  wal size %lld\n", (long long)size);
    {
        uint64_t n = 0;
        OK(s->ops->count(s, "blob", NULL, &n));
        CU_ASSERT_EQUAL(n, 13100);
    }
    pk_store_close(s);
}

/*
 * A real failed fdatasync, no mock: the store lives on ext4 in a loop
 * device whose backing file sits on a 16 MiB tmpfs. Once the tmpfs is full
 * the loop device fails writes, so writeback of the WAL fails and
 * fdatasync reports it (ENOSPC, or EIO on other kernels). The file system
 * is initialised in full up front: ext4's lazy inode-table zeroing would
 * punch holes in the backing file later (the loop device turns zeroing into
 * hole punching), freeing tmpfs space behind the test's back. Needs root,
 * losetup, mkfs.ext4 and mount; otherwise skipped with a note.
 */
static bool sh(const char *dir, const char *script)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "cd '%s' && { %s; } >/dev/null 2>&1", dir, script);
    return system(cmd) == 0;
}

static void test_store_failed_fdatasync_refuses_writes(void)
{
    char dir[] = "/tmp/p11kms-fsync-XXXXXX", uri[320], path[300], want_nospc[1024], want_eio[1024];
    const char *err;
    pk_store *s = NULL;
    pk_record rec, got;
    pk_result r;
    bool found = false;
    uint64_t synced;

    if (geteuid() != 0) {
        printf("\n  skipped: a loop device needs root\n");
        return;
    }
    CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
    if (!sh(dir, "mkdir backing mnt && mount -t tmpfs -o size=16m tmpfs backing && truncate -s 64M backing/img && "
                 "losetup -f --show backing/img >loopdev && "
                 "mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0,nodiscard \"$(cat loopdev)\" && "
                 "mount -o noinit_itable \"$(cat loopdev)\" mnt")) {
        printf("\n  skipped: cannot make a loop-device file system (losetup, mkfs.ext4, mount)\n");
        goto cleanup;
    }
    snprintf(path, sizeof(path), "%s/mnt/s.db", dir);
    snprintf(uri, sizeof(uri), "sqlite:%s", path);
    OK(pk_store_open(uri, true, &s));
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    insert(s, "key", "before", "", 0);
    OK(s->ops->sync(s, PK_STORE_SYNC_ALL));

    CU_ASSERT_TRUE(sh(dir, "dd if=/dev/zero of=backing/fill bs=1M; df backing | grep -q ' 100%'"));
    /*
     * Commits succeed: the pages are in the page cache. Far more pages than
     * the few blocks freed so far (backed already, so they could take the
     * writes), and fewer than a checkpoint's 1000 (SQLite's own fsync would
     * fail first).
     */
    write_pages(s, "doomed", 800);
    synced = stats_of(s).synced;
    for (int i = 0; i < 2; i++) {
        const char *why = i == 0 ? "No space left on device" : "Input/output error";
        snprintf(i == 0 ? want_nospc : want_eio, sizeof(want_nospc),
                 "store %s: fdatasync of %s-wal failed (%s): commits since the last good sync may not be on disk; "
                 "refusing writes until the store is reopened",
                 path, path, why);
    }
    r = s->ops->sync(s, PK_STORE_SYNC_ALL);
    err = p11kms_last_error();
    CU_ASSERT_EQUAL(r.code, P11KMS_ERR_STORE);
    CU_ASSERT_TRUE(strcmp(err, want_nospc) == 0 || strcmp(err, want_eio) == 0);
    if (strcmp(err, want_nospc) != 0 && strcmp(err, want_eio) != 0) fprintf(stderr, "\n  got: %s\n", err);
    CU_ASSERT_EQUAL(stats_of(s).synced, synced);

    /* Every later write says the same, whichever way it comes; reads go on. */
    {
        char want[1024];
        snprintf(want, sizeof(want), "%s", err);
        FAILS(s->ops->sync(s, PK_STORE_SYNC_ALL), P11KMS_ERR_STORE, want);
        FAILS(pk_store_begin(s, true), P11KMS_ERR_STORE, want);
        rec = mkrec("key", "after", "", 0, 1, "x");
        FAILS(s->ops->put(s, &rec, 0), P11KMS_ERR_STORE, want);
        pk_record_clear(&rec);
        FAILS(s->ops->del(s, "key", "before"), P11KMS_ERR_STORE, want);
        OK(s->ops->get(s, "key", "before", &got, &found));
        CU_ASSERT_TRUE(found);
        pk_record_clear(&got);
        OK(pk_store_begin(s, false));
        OK(pk_store_commit(s));
    }
    pk_store_close(s);
cleanup:
    (void)sh(dir, "umount mnt || umount -l mnt; [ -s loopdev ] && losetup -d \"$(cat loopdev)\"; "
                  "umount backing || umount -l backing; true");
    {
        char cmd[300];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        CU_ASSERT_EQUAL(system(cmd), 0);
    }
}

/* ---- timing (P11KMS_STORE_BENCH=1) ---------------------------------------- */

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static void bench_size(unsigned records)
{
    char name[64], id[48];
    pk_store *s;
    pk_record rec;
    bool found;
    const unsigned gets = 200000, changes = 200000;
    double t0, t_get, t_hot, t_changed;
    uint8_t body[200];

    snprintf(name, sizeof(name), "bench-%u.db", records);
    s = open_new(name);
    memset(body, 0x42, sizeof(body));
    OK(pk_store_begin(s, true));
    for (unsigned i = 0; i < records; i++) {
        rec = mkrec("keyver", "", "", 0, 1, "");
        snprintf(rec.id, sizeof(rec.id), "11111111-2222-4333-8444-%012u", i);
        snprintf(rec.ref, sizeof(rec.ref), "key-%u", i / 4);
        OK(pk_buf_append(&rec.body, body, sizeof(body)));
        OK(s->ops->put(s, &rec, 0));
        pk_record_clear(&rec);
    }
    OK(pk_store_commit(s));

    /* Warm up, then get records spread over the table (a fixed stride, so no RNG in the loop). */
    for (unsigned i = 0; i < 1000; i++) {
        snprintf(id, sizeof(id), "11111111-2222-4333-8444-%012u", (i * 7919u) % records);
        OK(s->ops->get(s, "keyver", id, &rec, &found));
        pk_record_clear(&rec);
    }
    t0 = now_us();
    for (unsigned i = 0; i < gets; i++) {
        snprintf(id, sizeof(id), "11111111-2222-4333-8444-%012u", (i * 7919u) % records);
        if (pk_failed(s->ops->get(s, "keyver", id, &rec, &found)) || !found) CU_FAIL("bench get");
        pk_record_clear(&rec);
    }
    t_get = (now_us() - t0) / gets;
    t0 = now_us();
    for (unsigned i = 0; i < changes; i++) {
        bool ch;
        if (pk_failed(s->ops->changed(s, &ch))) CU_FAIL("bench changed");
    }
    t_changed = (now_us() - t0) / changes;
    t0 = now_us();
    for (unsigned i = 0; i < gets; i++) {
        if (pk_failed(s->ops->get(s, "keyver", "11111111-2222-4333-8444-000000000001", &rec, &found)) || !found)
            CU_FAIL("bench get");
        pk_record_clear(&rec);
    }
    t_hot = (now_us() - t0) / gets;
    printf("\n  bench: %u records: get %.2f us (spread ids), %.2f us (one id), changed %.2f us"
           " (200-byte bodies, 1 thread, warm)\n",
           records, t_get, t_hot, t_changed);
    pk_store_close(s);
}

static void test_store_bench_get_and_changed(void)
{
    if (getenv("P11KMS_STORE_BENCH") == NULL) return;
    bench_size(1000);
    bench_size(100000);
}

int main(void)
{
    CU_pSuite s;
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    s = CU_add_suite("store", suite_init, suite_clean);
    CU_add_test(s, "test_store_open_create_reopen", test_store_open_create_reopen);
    CU_add_test(s, "test_store_open_errors_are_exact", test_store_open_errors_are_exact);
    CU_add_test(s, "test_store_files_are_mode_0600", test_store_files_are_mode_0600);
    CU_add_test(s, "test_store_put_get_and_revisions", test_store_put_get_and_revisions);
    CU_add_test(s, "test_store_delete", test_store_delete);
    CU_add_test(s, "test_store_list_and_count", test_store_list_and_count);
    CU_add_test(s, "test_store_list_due", test_store_list_due);
    CU_add_test(s, "test_store_changed_across_handles", test_store_changed_across_handles);
    CU_add_test(s, "test_store_lock_held_past_the_wait", test_store_lock_held_past_the_wait);
    CU_add_test(s, "test_store_transactions", test_store_transactions);
    CU_add_test(s, "test_store_refuses_non_sqlite_file", test_store_refuses_non_sqlite_file);
    CU_add_test(s, "test_store_refuses_other_schema_versions", test_store_refuses_other_schema_versions);
    CU_add_test(s, "test_store_two_process_write_transactions", test_store_two_process_write_transactions);
    CU_add_test(s, "test_store_two_process_optimistic_puts", test_store_two_process_optimistic_puts);
    CU_add_test(s, "test_store_threads_share_a_handle", test_store_threads_share_a_handle);
    CU_add_test(s, "test_store_list_callback_may_reenter", test_store_list_callback_may_reenter);
    CU_add_test(s, "test_store_sync_tickets", test_store_sync_tickets);
    CU_add_test(s, "test_store_sync_group_commit", test_store_sync_group_commit);
    CU_add_test(s, "test_store_sync_refused_after_fork", test_store_sync_refused_after_fork);
    CU_add_test(s, "test_store_checkpoints_in_the_background", test_store_checkpoints_in_the_background);
    CU_add_test(s, "test_store_failed_fdatasync_refuses_writes", test_store_failed_fdatasync_refuses_writes);
    CU_add_test(s, "test_store_bench_get_and_changed", test_store_bench_get_and_changed);
    return pk_run_suites();
}
