/*
 * Unit tests for src/audit against a real SoftHSM token (no mocks): the
 * chain, seals, rotation, every kind of tampering the verifier must name,
 * fail-closed writes, concurrency and durability modes.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "audit/audit.h"
#include "audit/audit_impl.h"
#include "crypto/crypto.h"
#include "json/json_in.h"
#include "lib/fixture.h"
#include "p11/p11.h"
#include "util/codec.h"

/* Longer than batch mode's lock lease (1 ms), so the next append checks the file. */
#define LEASE_WAIT_US 20000

static pk_fixture fx;
static pk_p11 *p11;
static pk_p11_opts p11_opts;

/* ---- Helpers ---- */

/* PK_ASSERT_RC for a detail built at run time. */
static void assert_rc(p11kms_rc got, p11kms_rc want, const char *detail)
{
    PK_ASSERT_RC(got, want, detail);
}

static void log_path(const char *name, char *out, size_t size)
{
    snprintf(out, size, "%s/%s", fx.dir, name);
}

static pk_audit *open_log(const char *path, pk_audit_sync sync, uint64_t max_bytes, unsigned seal_every)
{
    pk_audit_opts o;
    pk_audit *a = NULL;
    pk_result r;
    memset(&o, 0, sizeof(o));
    o.path = path;
    o.p11 = p11;
    o.sync = sync;
    o.max_bytes = max_bytes;
    o.seal_every = seal_every;
    r = pk_audit_open(&o, &a);
    if (pk_failed(r)) fprintf(stderr, "\n  open %s: %s\n", path, p11kms_last_error());
    return a;
}

static pk_result write_event(pk_audit *a, const char *principal, int i)
{
    char purpose[32];
    pk_audit_kv ctx[1];
    const char *sids[] = {"AllowUse"};
    pk_audit_event ev;

    snprintf(purpose, sizeof(purpose), "test-%d", i);
    ctx[0] = (pk_audit_kv){"purpose", purpose};
    memset(&ev, 0, sizeof(ev));
    ev.principal = principal;
    ev.action = "Encrypt";
    ev.key_id = "1234abcd-12ab-34cd-56ef-1234567890ab";
    ev.context = ctx;
    ev.n_context = 1;
    ev.decision = PK_AUDIT_DECISION_ALLOWED;
    ev.sids = sids;
    ev.n_sids = 1;
    ev.result = P11KMS_OK;
    return pk_audit_write(a, &ev, NULL);
}

static void write_events(pk_audit *a, int n)
{
    for (int i = 0; i < n; i++) CU_ASSERT_TRUE(pk_ok(write_event(a, "arn:aws:iam::111122223333:user/alice", i)));
}

/* Close a handle whose close is expected to fail (the log is unwritable). */
static void close_any(pk_audit *a)
{
    pk_result r = pk_audit_close(a);
    (void)r;
}

static void close_log(pk_audit *a)
{
    pk_result r = pk_audit_close(a);
    CU_ASSERT_TRUE(pk_ok(r));
    if (pk_failed(r)) fprintf(stderr, "\n  close: %s\n", p11kms_last_error());
}

/* A whole file as lines (without newlines). */
typedef struct lines {
    char **v;
    size_t n;
} lines;

static lines read_lines(const char *path)
{
    lines l = {NULL, 0};
    FILE *f = fopen(path, "r");
    char *buf = NULL;
    size_t cap = 0;
    ssize_t len;
    if (f == NULL) return l;
    while ((len = getline(&buf, &cap, f)) > 0) {
        if (buf[len - 1] == '\n') buf[len - 1] = '\0';
        l.v = realloc(l.v, (l.n + 1) * sizeof(*l.v));
        l.v[l.n++] = strdup(buf);
    }
    free(buf);
    fclose(f);
    return l;
}

static void write_lines(const char *path, const lines *l)
{
    FILE *f = fopen(path, "w");
    for (size_t i = 0; i < l->n; i++) fprintf(f, "%s\n", l->v[i]);
    fclose(f);
}

static void free_lines(lines *l)
{
    for (size_t i = 0; i < l->n; i++) free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

static void remove_line(lines *l, size_t idx)
{
    free(l->v[idx]);
    memmove(l->v + idx, l->v + idx + 1, (l->n - idx - 1) * sizeof(*l->v));
    l->n--;
}

static void insert_line(lines *l, size_t idx, const char *text)
{
    l->v = realloc(l->v, (l->n + 1) * sizeof(*l->v));
    memmove(l->v + idx + 1, l->v + idx, (l->n - idx) * sizeof(*l->v));
    l->v[idx] = strdup(text);
    l->n++;
}

/* Replace the first `from` in line idx by `to`. */
static void edit_line(lines *l, size_t idx, const char *from, const char *to)
{
    char *s = l->v[idx], *p = strstr(s, from), *out;
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    out = malloc(strlen(s) - strlen(from) + strlen(to) + 1);
    sprintf(out, "%.*s%s%s", (int)(p - s), s, to, p + strlen(from));
    free(l->v[idx]);
    l->v[idx] = out;
}

static void hash_hex(const char *line, char out[65])
{
    uint8_t h[32];
    CU_ASSERT_TRUE(pk_ok(pk_sha256(line, strlen(line), h)));
    pk_hex_encode(h, 32, out);
}

/* Set line idx's prev to the hash of line idx-1 (what a forger can do without the key). */
static void relink(lines *l, size_t idx)
{
    char want[65], *p = strstr(l->v[idx], "\"prev\":\"");
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    hash_hex(l->v[idx - 1], want);
    memcpy(p + 8, want, 64);
}

static pk_audit_report verify_series(const char *path, unsigned flags)
{
    pk_audit_report rep;
    char **files = NULL;
    size_t n = 0;
    memset(&rep, 0, sizeof(rep));
    CU_ASSERT_TRUE_FATAL(pk_ok(pk_audit_series(path, &files, &n)));
    if (n == 0) {
        rep.problem = PK_AUDIT_MISSING_FILE;
        return rep;
    }
    CU_ASSERT_TRUE(pk_ok(pk_audit_verify(p11, NULL, (const char *const *)files, n, flags, &rep)));
    pk_audit_series_free(files, n);
    return rep;
}

#define ASSERT_VERIFIED(rep)                                                                                    \
    do {                                                                                                        \
        CU_ASSERT_EQUAL((rep).problem, PK_AUDIT_OK);                                                            \
        if ((rep).problem != PK_AUDIT_OK)                                                                       \
            fprintf(stderr, "\n  %s:%d: %s:%llu: seq %llu: %s: %s\n", __FILE__, __LINE__, (rep).file,          \
                    (unsigned long long)(rep).line, (unsigned long long)(rep).seq,                              \
                    pk_audit_problem_name((rep).problem), (rep).detail);                                        \
    } while (0)

#define ASSERT_FINDING(rep, want, want_line, want_seq)                                                         \
    do {                                                                                                        \
        CU_ASSERT_EQUAL((rep).problem, (want));                                                                 \
        CU_ASSERT_EQUAL((rep).line, (uint64_t)(want_line));                                                     \
        CU_ASSERT_EQUAL((rep).seq, (uint64_t)(want_seq));                                                       \
        if ((rep).problem != (want) || (rep).line != (uint64_t)(want_line) || (rep).seq != (uint64_t)(want_seq)) \
            fprintf(stderr, "\n  %s:%d: got %s line %llu seq %llu (%s), want %s line %d seq %d\n", __FILE__,  \
                    __LINE__, pk_audit_problem_name((rep).problem), (unsigned long long)(rep).line,             \
                    (unsigned long long)(rep).seq, (rep).detail, pk_audit_problem_name(want), (int)(want_line), \
                    (int)(want_seq));                                                                           \
    } while (0)

/*
 * A log whose sequence numbers equal its line numbers: events 1-4, seal 5,
 * events 6-9, seal 10, events 11-12, close seal 13.
 */
static void make_reference_log(const char *path)
{
    pk_audit *a = open_log(path, PK_AUDIT_SYNC_BATCH, 0, 1000);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    write_events(a, 4);
    CU_ASSERT_TRUE(pk_ok(pk_audit_flush(a)));
    write_events(a, 4);
    CU_ASSERT_TRUE(pk_ok(pk_audit_flush(a)));
    write_events(a, 2);
    close_log(a);
}

static bool has_json_key(const char *line, const char *key)
{
    pk_jv *doc = NULL;
    bool has;
    if (pk_failed(pk_json_parse(line, strlen(line), P11KMS_ERR_INTEGRITY, &doc))) return false;
    has = pk_jv_get(doc, key) != NULL;
    pk_json_free(doc);
    return has;
}

/* ---- test_audit_chain ---- */

static void test_audit_chain_starts_at_genesis(void)
{
    char path[512];
    lines l;
    log_path("genesis.log", path, sizeof(path));
    make_reference_log(path);
    l = read_lines(path);
    CU_ASSERT_EQUAL_FATAL(l.n, 13);
    CU_ASSERT_PTR_NOT_NULL(strstr(l.v[0], "{\"v\":1,\"seq\":1,\"type\":\"event\",\"time\":\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(l.v[0], "\"prev\":\"" PK_AUDIT_GENESIS "\"}"));
    CU_ASSERT_PTR_NOT_NULL(strstr(l.v[4], "\"seq\":5,\"type\":\"seal\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(l.v[4], "\"reason\":\"flush\",\"sealed_seq\":4,"));
    CU_ASSERT_PTR_NOT_NULL(strstr(l.v[12], "\"reason\":\"close\""));
    for (size_t i = 1; i < l.n; i++) {
        char want[80], h[65];
        hash_hex(l.v[i - 1], h);
        snprintf(want, sizeof(want), "\"prev\":\"%s\"", h);
        CU_ASSERT_PTR_NOT_NULL(strstr(l.v[i], want));
    }
    pk_audit_report rep = verify_series(path, 0);
    ASSERT_VERIFIED(rep);
    CU_ASSERT_EQUAL(rep.records, 13);
    CU_ASSERT_EQUAL(rep.seals, 3);
    CU_ASSERT_EQUAL(rep.last_seq, 13);
    free_lines(&l);
}

static void test_audit_chain_continues_across_reopen(void)
{
    char path[512], h[65], want[80];
    pk_audit *a;
    lines l;

    log_path("reopen.log", path, sizeof(path));
    a = open_log(path, PK_AUDIT_SYNC_BATCH, 0, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    write_events(a, 5);
    close_log(a); /* 5 events + close seal */
    a = open_log(path, PK_AUDIT_SYNC_BATCH, 0, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    write_events(a, 3);
    close_log(a);
    l = read_lines(path);
    CU_ASSERT_EQUAL_FATAL(l.n, 10);
    CU_ASSERT_PTR_NOT_NULL(strstr(l.v[6], "\"seq\":7,\"type\":\"event\""));
    hash_hex(l.v[5], h);
    snprintf(want, sizeof(want), "\"prev\":\"%s\"", h);
    CU_ASSERT_PTR_NOT_NULL(strstr(l.v[6], want));
    pk_audit_report rep = verify_series(path, 0);
    ASSERT_VERIFIED(rep);
    CU_ASSERT_EQUAL(rep.last_seq, 10);

    /* Restart reads only the tail: a first line nobody can parse does not stop it. */
    l.v[0][0] = 'X';
    write_lines(path, &l);
    a = open_log(path, PK_AUDIT_SYNC_BATCH, 0, 0);
    CU_ASSERT_PTR_NOT_NULL(a);
    write_events(a, 1);
    close_log(a);
    rep = verify_series(path, 0);
    ASSERT_FINDING(rep, PK_AUDIT_MALFORMED, 1, 1);
    free_lines(&l);
}

static void test_audit_chain_repairs_a_torn_write(void)
{
    char path[512];
    pk_audit *a;
    lines l;
    FILE *f;

    log_path("torn.log", path, sizeof(path));
    a = open_log(path, PK_AUDIT_SYNC_BATCH, 0, 0);
    write_events(a, 2);
    close_log(a);
    /* A writer that died half-way through a line. */
    f = fopen(path, "a");
    fputs("{\"v\":1,\"seq\":4,\"type\":\"ev", f);
    fclose(f);
    CU_ASSERT_EQUAL(verify_series(path, 0).problem, PK_AUDIT_TRUNCATED);
    a = open_log(path, PK_AUDIT_SYNC_BATCH, 0, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    write_events(a, 1);
    close_log(a);
    l = read_lines(path);
    CU_ASSERT_EQUAL_FATAL(l.n, 6);
    CU_ASSERT_PTR_NOT_NULL(strstr(l.v[3], "\"seq\":4,\"type\":\"repair\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(l.v[3], "\"discarded_bytes\":25,"));
    ASSERT_VERIFIED(verify_series(path, 0));
    free_lines(&l);
}

/* Issue 17a: the reason a malformed last line cannot be continued is given intact. */
static void test_audit_chain_refuses_a_malformed_last_line(void)
{
    char path[512], want[1024];
    pk_audit_opts o;
    pk_audit *a = NULL;
    FILE *f;

    log_path("badtail.log", path, sizeof(path));
    f = fopen(path, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs("{\"v\":1,\"seq\":1,\"type\":\"event\",\"time\":\"x\",\"a\":1,\"a\":2}\n", f);
    fclose(f);
    memset(&o, 0, sizeof(o));
    o.path = path;
    o.p11 = p11;
    snprintf(want, sizeof(want),
             "audit unavailable: cannot continue %s: its last record is malformed (invalid JSON at line 1 column 50: "
             "duplicate object key near '\"a\"'); run p11kms audit verify",
             path);
    assert_rc(pk_audit_open(&o, &a).code, P11KMS_ERR_AUDIT_UNAVAILABLE, want);
    CU_ASSERT_PTR_NULL(a);
}

static void test_audit_chain_needs_the_audit_key(void)
{
    char path[512];
    pk_audit_opts o;
    pk_audit *a = NULL;
    pk_keyid other;

    log_path("nokey.log", path, sizeof(path));
    memset(&other, 0, sizeof(other));
    other.len = 9;
    memcpy(other.bytes, "no-such-k", 9);
    memset(&o, 0, sizeof(o));
    o.path = path;
    o.p11 = p11;
    o.key = &other;
    PK_ASSERT_RC(pk_audit_open(&o, &a).code, P11KMS_ERR_AUDIT_UNAVAILABLE,
                 "audit unavailable: the audit key p11kms:sys:audit-mac is not in the token (run p11kms init)");
    CU_ASSERT_PTR_NULL(a);
}

/* ---- test_audit_records ---- */

static void test_audit_records_hold_only_what_was_given(void)
{
    static const char secret[] = "S3cr3t-plaintext-never-logged";
    char path[512], rid[PK_AUDIT_REQUEST_ID_MAX + 1], want[200];
    pk_audit_kv ctx[] = {{"department", "finance"}, {"purpose", "payroll"}};
    pk_audit_kv details[] = {{"host", "db.example.com"}};
    const char *sids[] = {"AllowFinance", "AllowPayroll"};
    pk_audit_event ev;
    pk_audit *a;
    lines l;
    uint8_t iv[PK_GCM_IV_LEN] = {1}, ct[sizeof(secret) - 1 + PK_GCM_TAG_LEN];
    pk_keyid cmk;
    static const char *const expected_keys[] = {"v", "seq", "type", "time", "request_id", "principal", "action",
                                                "resource", "context", "decision", "sids", "result", "details",
                                                "prev"};

    /* A real operation on a secret, audited the way the core will do it. */
    memset(&cmk, 0, sizeof(cmk));
    cmk.len = 8;
    memcpy(cmk.bytes, "test:cmk", 8);
    CU_ASSERT_TRUE_FATAL(pk_ok(pk_p11_generate_key(p11, PK_KEY_AES_CMK, &cmk, "p11kms:test:cmk")));
    CU_ASSERT_TRUE(pk_ok(pk_p11_gcm_encrypt(p11, &cmk, NULL, iv, pk_bytes_of("", 0),
                                            pk_bytes_of(secret, sizeof(secret) - 1), ct)));
    log_path("fields.log", path, sizeof(path));
    a = open_log(path, PK_AUDIT_SYNC_ALWAYS, 0, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    memset(&ev, 0, sizeof(ev));
    ev.principal = "arn:aws:iam::111122223333:role/payroll";
    ev.action = "Encrypt";
    ev.key_id = "1234abcd-12ab-34cd-56ef-1234567890ab";
    ev.key_version = "2";
    ev.alias = "alias/payroll";
    ev.context = ctx;
    ev.n_context = 2;
    ev.decision = PK_AUDIT_DECISION_ALLOWED;
    ev.sids = sids;
    ev.n_sids = 2;
    ev.result = P11KMS_OK;
    ev.details = details;
    ev.n_details = 1;
    CU_ASSERT_TRUE(pk_ok(pk_audit_write(a, &ev, rid)));
    CU_ASSERT_EQUAL(strlen(rid), 36);
    /* A denied request with the caller's own request id. */
    ev.request_id = "req-42";
    ev.decision = PK_AUDIT_DECISION_EXPLICIT_DENY;
    ev.result = P11KMS_ERR_ACCESS_DENIED;
    ev.n_details = 0;
    ev.n_sids = 1;
    ev.sids = (const char *const[]){"DenyOutsideHours"};
    CU_ASSERT_TRUE(pk_ok(pk_audit_write(a, &ev, NULL)));
    close_log(a);

    l = read_lines(path);
    CU_ASSERT_EQUAL_FATAL(l.n, 4); /* always mode: each event is followed by its seal */
    snprintf(want, sizeof(want), "\"request_id\":\"%s\",", rid);
    CU_ASSERT_PTR_NOT_NULL(strstr(l.v[0], want));
    CU_ASSERT_PTR_NOT_NULL(strstr(
        l.v[0], "\"principal\":\"arn:aws:iam::111122223333:role/payroll\",\"action\":\"Encrypt\","
                "\"resource\":{\"key_id\":\"1234abcd-12ab-34cd-56ef-1234567890ab\",\"key_version\":\"2\","
                "\"alias\":\"alias/payroll\"},\"context\":{\"department\":\"finance\",\"purpose\":\"payroll\"},"
                "\"decision\":\"Allowed\",\"sids\":[\"AllowFinance\",\"AllowPayroll\"],\"result\":\"ok\","
                "\"details\":{\"host\":\"db.example.com\"},\"prev\":\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(l.v[1], "\"type\":\"seal\",\"time\":\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(l.v[1], "\"reason\":\"record\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(
        l.v[2], "\"request_id\":\"req-42\",\"principal\":\"arn:aws:iam::111122223333:role/payroll\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(l.v[2], "\"decision\":\"ExplicitlyDenied\",\"sids\":[\"DenyOutsideHours\"],"
                                          "\"result\":\"P11KMS_ERR_ACCESS_DENIED\",\"prev\""));
    CU_ASSERT_PTR_NULL(strstr(l.v[2], "details"));
    /* Time: UTC, RFC 3339, milliseconds. */
    {
        const char *t = strstr(l.v[0], "\"time\":\"") + 8;
        CU_ASSERT_EQUAL(t[4], '-');
        CU_ASSERT_EQUAL(t[10], 'T');
        CU_ASSERT_EQUAL(t[19], '.');
        CU_ASSERT_EQUAL(t[23], 'Z');
        CU_ASSERT_EQUAL(t[24], '"');
    }
    /* Exactly the documented members: there is nowhere to put a plaintext. */
    {
        pk_jv *doc = NULL;
        void *it = NULL;
        const char *k;
        const pk_jv *v;
        size_t n = 0;
        CU_ASSERT_TRUE_FATAL(pk_ok(pk_json_parse(l.v[0], strlen(l.v[0]), P11KMS_ERR_INTEGRITY, &doc)));
        while (pk_jv_next(doc, &it, &k, &v)) {
            CU_ASSERT_TRUE(n < PK_ARRAY_LEN(expected_keys) && strcmp(k, expected_keys[n]) == 0);
            n++;
        }
        CU_ASSERT_EQUAL(n, PK_ARRAY_LEN(expected_keys));
        pk_json_free(doc);
    }
    for (size_t i = 0; i < l.n; i++) {
        CU_ASSERT_PTR_NULL(strstr(l.v[i], secret));
        CU_ASSERT_PTR_NULL(strstr(l.v[i], "plaintext"));
    }
    ASSERT_VERIFIED(verify_series(path, 0));
    CU_ASSERT_TRUE(pk_ok(pk_p11_destroy_key(p11, &cmk)));
    free_lines(&l);
}

static void test_audit_records_stay_valid_json(void)
{
    char path[512];
    pk_audit_kv ctx[] = {{"bad\xff" "key", "quote\" backslash\\ newline\n tab\t \x01 \xc3\x28"}};
    pk_audit_event ev;
    pk_audit *a;
    lines l;

    log_path("escape.log", path, sizeof(path));
    a = open_log(path, PK_AUDIT_SYNC_BATCH, 0, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    memset(&ev, 0, sizeof(ev));
    ev.action = "Decrypt";
    ev.context = ctx;
    ev.n_context = 1;
    ev.result = P11KMS_ERR_CIPHERTEXT_INVALID;
    CU_ASSERT_TRUE(pk_ok(pk_audit_write(a, &ev, NULL)));
    /* No action: refused before anything is written. */
    ev.action = NULL;
    PK_ASSERT_RC(pk_audit_write(a, &ev, NULL).code, P11KMS_ERR_INVALID_ARGUMENT, "audit event without action");
    close_log(a);
    l = read_lines(path);
    CU_ASSERT_EQUAL_FATAL(l.n, 2);
    CU_ASSERT_PTR_NOT_NULL(strstr(l.v[0], "\"principal\":null,\"action\":\"Decrypt\",\"resource\":{},"));
    CU_ASSERT_PTR_NOT_NULL(strstr(l.v[0], "\"context\":{\"bad\xef\xbf\xbdkey\":\"quote\\\" backslash\\\\ newline\\n "
                                          "tab\\t \\u0001 \xef\xbf\xbd(\"},\"decision\":\"n/a\",\"sids\":[],"
                                          "\"result\":\"P11KMS_ERR_CIPHERTEXT_INVALID\""));
    CU_ASSERT_TRUE(has_json_key(l.v[0], "context"));
    ASSERT_VERIFIED(verify_series(path, 0));
    free_lines(&l);
}

/* Issue 1: duplicate keys (also ones equal only after escaping) never reach the line. */
static void test_audit_records_never_repeat_a_key(void)
{
    char path[512];
    pk_audit_kv ctx[] = {{"a", "1"}, {"a", "2"}, {"x\xff", "3"}, {"x\xfe", "4"}, {"", "5"}, {"", "6"}};
    pk_audit_kv details[] = {{"d", "1"}, {"d", "2"}};
    pk_audit_event ev;
    pk_audit *a;
    lines l;

    log_path("dupkeys.log", path, sizeof(path));
    a = open_log(path, PK_AUDIT_SYNC_BATCH, 0, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    memset(&ev, 0, sizeof(ev));
    ev.action = "Encrypt";
    ev.context = ctx;
    ev.n_context = PK_ARRAY_LEN(ctx);
    ev.details = details;
    ev.n_details = PK_ARRAY_LEN(details);
    ev.result = P11KMS_ERR_INVALID_ARGUMENT;
    CU_ASSERT_TRUE(pk_ok(pk_audit_write(a, &ev, NULL)));
    close_log(a);
    l = read_lines(path);
    CU_ASSERT_EQUAL_FATAL(l.n, 2);
    CU_ASSERT_PTR_NOT_NULL(strstr(l.v[0], "\"context\":{\"a\":\"1\",\"x\xef\xbf\xbd\":\"3\",\"\":\"5\"},"));
    CU_ASSERT_PTR_NOT_NULL(strstr(l.v[0], "\"details\":{\"d\":\"1\"},\"duplicate_keys_dropped\":4,\"prev\":"));
    CU_ASSERT_TRUE(has_json_key(l.v[0], "context"));
    ASSERT_VERIFIED(verify_series(path, 0));
    free_lines(&l);
}

/* Issue 16: a record too large for a line is cut down and marked, never dropped. */
static void test_audit_records_cut_to_fit(void)
{
    char path[512], *ctl = malloc(8001), *big = malloc(40001);
    pk_audit_kv ctx[] = {{"k", ctl}, {"k2", ctl}, {"k3", "short"}};
    pk_audit_event ev;
    pk_audit *a;
    lines l;

    CU_ASSERT_PTR_NOT_NULL_FATAL(ctl);
    CU_ASSERT_PTR_NOT_NULL_FATAL(big);
    memset(ctl, 0x01, 8000);
    ctl[8000] = '\0';
    /* A multi-byte character across the cut point is not split. */
    for (size_t i = 0; i < 40000; i += 2) memcpy(big + i, "\xc3\xa9", 2);
    big[40000] = '\0';
    log_path("cut.log", path, sizeof(path));
    a = open_log(path, PK_AUDIT_SYNC_BATCH, 0, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    memset(&ev, 0, sizeof(ev));
    ev.principal = "arn:aws:iam::1:role/anyone";
    ev.action = "Encrypt";
    ev.key_id = "1234abcd-12ab-34cd-56ef-1234567890ab";
    ev.context = ctx;
    ev.n_context = 1;
    ev.decision = PK_AUDIT_DECISION_IMPLICIT_DENY;
    ev.result = P11KMS_ERR_ACCESS_DENIED;
    CU_ASSERT_TRUE(pk_ok(pk_audit_write(a, &ev, NULL)));
    ev.n_context = 3;
    ev.principal = big;
    CU_ASSERT_TRUE(pk_ok(pk_audit_write(a, &ev, NULL)));
    close_log(a);
    l = read_lines(path);
    CU_ASSERT_EQUAL_FATAL(l.n, 3);
    for (size_t i = 0; i < 2; i++) {
        CU_ASSERT_TRUE(strlen(l.v[i]) < PK_AUDIT_MAX_LINE);
        CU_ASSERT_PTR_NOT_NULL(strstr(l.v[i], "\"result\":\"P11KMS_ERR_ACCESS_DENIED\",\"truncated\":true,\"prev\":"));
        CU_ASSERT_PTR_NOT_NULL(strstr(l.v[i], "\"resource\":{\"key_id\":\"1234abcd-12ab-34cd-56ef-1234567890ab\"}"));
        CU_ASSERT_TRUE(has_json_key(l.v[i], "truncated"));
    }
    /* 256 bytes of 0x01, each escaped to 6. */
    CU_ASSERT_PTR_NOT_NULL(strstr(l.v[0], "\"context\":{\"k\":\"\\u0001"));
    CU_ASSERT_PTR_NOT_NULL(strstr(l.v[0], "\\u0001\"},\"decision\":\"ImplicitlyDenied\""));
    CU_ASSERT_PTR_NULL(strstr(l.v[0], "\xef\xbf\xbd"));
    CU_ASSERT_PTR_NULL(strstr(l.v[1], "\xef\xbf\xbd"));
    CU_ASSERT_PTR_NOT_NULL(strstr(l.v[1], "\"k3\":\"short\""));
    ASSERT_VERIFIED(verify_series(path, 0));
    free_lines(&l);
    free(ctl);
    free(big);
}

/* ---- test_audit_tamper: each kind named at the right line and sequence number ---- */

static void tamper_case(const char *name, void (*mutate)(lines *), pk_audit_problem want, int line, int seq)
{
    char path[512];
    lines l;
    log_path(name, path, sizeof(path));
    make_reference_log(path);
    ASSERT_VERIFIED(verify_series(path, 0));
    l = read_lines(path);
    CU_ASSERT_EQUAL_FATAL(l.n, 13);
    mutate(&l);
    write_lines(path, &l);
    free_lines(&l);
    pk_audit_report rep = verify_series(path, 0);
    ASSERT_FINDING(rep, want, line, seq);
    CU_ASSERT_STRING_EQUAL(rep.file, path);
}

static void mut_modify(lines *l) { edit_line(l, 6, "user/alice", "user/mallory"); }
static void mut_modify_before_seal(lines *l) { edit_line(l, 8, "\"result\":\"ok\"", "\"result\":\"P11KMS_ERR_HSM\""); }
static void mut_delete(lines *l) { remove_line(l, 2); }
static void mut_delete_seal(lines *l) { remove_line(l, 4); }
static void mut_reorder(lines *l)
{
    char *t = l->v[6];
    l->v[6] = l->v[7];
    l->v[7] = t;
}
/* A forger who knows the format: right seq, right prev, then the genuine record. */
static void mut_insert_forged(lines *l)
{
    char *forged = strdup(l->v[3]);
    insert_line(l, 3, forged);
    free(forged);
    edit_line(l, 3, "user/alice", "user/bob");
    relink(l, 3);
}
/* A replayed old line in the middle. */
static void mut_insert_replay(lines *l) { insert_line(l, 8, l->v[1]); }
static void mut_insert_duplicate(lines *l) { insert_line(l, 7, l->v[6]); }
static void mut_truncate(lines *l)
{
    remove_line(l, 12);
    remove_line(l, 11);
}
/* Change a record and recompute every hash after it: only the seal can tell. */
static void mut_rechain(lines *l)
{
    edit_line(l, 6, "user/alice", "user/mallory");
    for (size_t i = 7; i < l->n; i++) relink(l, i);
}
static void mut_forge_seal_mac(lines *l)
{
    char *m = strstr(l->v[9], "\"mac\":\"") + 7;
    m[0] = m[0] == '0' ? '1' : '0';
}
static void mut_malformed(lines *l) { edit_line(l, 10, "{\"v\":1,", "{\"v\":1"); }

/* Recompute every prev and seal MAC from line idx on, as a writer holding the key would have. */
static void rewrite_chain_from(lines *l, size_t idx)
{
    for (size_t i = idx; i < l->n; i++) {
        size_t prefix;
        uint8_t mac[PK_HMAC_LEN];
        char hex[2 * PK_HMAC_LEN + 1];
        pk_keyid key = pk_audit_key_id();
        relink(l, i);
        if (!pk_audit_seal_split(l->v[i], strlen(l->v[i]), &prefix, mac)) continue;
        CU_ASSERT_TRUE_FATAL(pk_ok(pk_audit_seal_mac(p11, &key, l->v[i], prefix, mac)));
        pk_hex_encode(mac, PK_HMAC_LEN, hex);
        memcpy(l->v[i] + prefix + strlen(PK_AUDIT_MAC_MEMBER), hex, 2 * PK_HMAC_LEN);
    }
}

/*
 * Issue 1: a line an older writer left with a duplicate key is malformed,
 * but its chain is intact: the finding names it, and the pass goes on.
 */
static void test_audit_tamper_unreadable_line_keeps_the_chain(void)
{
    char path[512], head[65];
    pk_audit_report rep;
    lines l;

    log_path("t-dupkey.log", path, sizeof(path));
    make_reference_log(path);
    l = read_lines(path);
    CU_ASSERT_EQUAL_FATAL(l.n, 13);
    edit_line(&l, 6, "\"context\":{\"purpose\":\"test-1\"}", "\"context\":{\"a\":\"1\",\"a\":\"2\"}");
    rewrite_chain_from(&l, 7);
    write_lines(path, &l);
    rep = verify_series(path, 0);
    ASSERT_FINDING(rep, PK_AUDIT_MALFORMED, 7, 7);
    CU_ASSERT_PTR_NOT_NULL(strstr(rep.detail, "line 7 (seq 7) is not valid JSON (invalid JSON at line 1 column"));
    CU_ASSERT_PTR_NOT_NULL(strstr(rep.detail, "duplicate object key"));
    CU_ASSERT_PTR_NOT_NULL(strstr(rep.detail, "its hash chain is intact, so the lines after it were verified"));
    CU_ASSERT_EQUAL(rep.unreadable, 1);
    CU_ASSERT_EQUAL(rep.records, 13);
    CU_ASSERT_EQUAL(rep.seals, 3);
    CU_ASSERT_EQUAL(rep.last_seq, 13);
    CU_ASSERT_EQUAL(rep.last_sealed_seq, 13);
    hash_hex(l.v[12], head);
    CU_ASSERT_STRING_EQUAL(rep.head, head);
    /* Later lines are still checked: a deletion after it is what is reported. */
    remove_line(&l, 10);
    write_lines(path, &l);
    rep = verify_series(path, 0);
    ASSERT_FINDING(rep, PK_AUDIT_DELETED, 11, 11);
    /* Not linked (its successor does not follow from it): the pass stops there, as before. */
    free_lines(&l);
    log_path("t-dupkey2.log", path, sizeof(path));
    make_reference_log(path);
    l = read_lines(path);
    edit_line(&l, 6, "\"context\":{\"purpose\":\"test-1\"}", "\"context\":{\"a\":\"1\",\"a\":\"2\"}");
    write_lines(path, &l);
    rep = verify_series(path, 0);
    ASSERT_FINDING(rep, PK_AUDIT_MODIFIED, 7, 7);
    free_lines(&l);
}

static void test_audit_tamper_modified_field(void)
{
    tamper_case("t-mod.log", mut_modify, PK_AUDIT_MODIFIED, 7, 7);
    tamper_case("t-mod2.log", mut_modify_before_seal, PK_AUDIT_MODIFIED, 9, 9);
}
static void test_audit_tamper_deleted_record(void)
{
    tamper_case("t-del.log", mut_delete, PK_AUDIT_DELETED, 3, 3);
    tamper_case("t-del2.log", mut_delete_seal, PK_AUDIT_DELETED, 5, 5);
}
static void test_audit_tamper_reordered_records(void) { tamper_case("t-ord.log", mut_reorder, PK_AUDIT_REORDERED, 7, 8); }
static void test_audit_tamper_inserted_record(void)
{
    tamper_case("t-ins.log", mut_insert_forged, PK_AUDIT_INSERTED, 4, 4);
    tamper_case("t-ins2.log", mut_insert_replay, PK_AUDIT_INSERTED, 9, 2);
    tamper_case("t-ins3.log", mut_insert_duplicate, PK_AUDIT_INSERTED, 8, 7);
}
static void test_audit_tamper_truncated_tail(void)
{
    char path[512];
    int fd;
    struct stat st;
    tamper_case("t-trunc.log", mut_truncate, PK_AUDIT_TRUNCATED, 11, 11);
    /* Cut in the middle of the last line. */
    log_path("t-trunc2.log", path, sizeof(path));
    make_reference_log(path);
    CU_ASSERT_EQUAL(stat(path, &st), 0);
    fd = open(path, O_WRONLY);
    CU_ASSERT_EQUAL(ftruncate(fd, st.st_size - 40), 0);
    close(fd);
    pk_audit_report rep = verify_series(path, 0);
    ASSERT_FINDING(rep, PK_AUDIT_TRUNCATED, 13, 13);
    /* A live log may be checked with the unsealed tail allowed. */
    tamper_case("t-trunc3.log", mut_truncate, PK_AUDIT_TRUNCATED, 11, 11);
    log_path("t-trunc3.log", path, sizeof(path));
    rep = verify_series(path, PK_AUDIT_VERIFY_ALLOW_UNSEALED);
    ASSERT_VERIFIED(rep);
    CU_ASSERT_EQUAL(rep.unsealed, 1);
}
static void test_audit_tamper_rechained_record_breaks_the_seal(void)
{
    tamper_case("t-rechain.log", mut_rechain, PK_AUDIT_BAD_SEAL, 10, 10);
    tamper_case("t-mac.log", mut_forge_seal_mac, PK_AUDIT_BAD_SEAL, 10, 10);
}
static void test_audit_tamper_malformed_line(void) { tamper_case("t-bad.log", mut_malformed, PK_AUDIT_MALFORMED, 11, 11); }

/* ---- test_audit_rotation ---- */

static size_t count_series(const char *path)
{
    char **files = NULL;
    size_t n = 0;
    CU_ASSERT_TRUE(pk_ok(pk_audit_series(path, &files, &n)));
    pk_audit_series_free(files, n);
    return n;
}

static void test_audit_rotation_links_the_series(void)
{
    char path[512], rotated[600], want[600], h[65];
    pk_audit *a;
    lines first, second;

    log_path("rot.log", path, sizeof(path));
    a = open_log(path, PK_AUDIT_SYNC_BATCH, 0, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    write_events(a, 3);
    CU_ASSERT_TRUE(pk_ok(pk_audit_rotate(a, rotated, sizeof(rotated))));
    snprintf(want, sizeof(want), "%s.000001", path);
    CU_ASSERT_STRING_EQUAL(rotated, want);
    write_events(a, 2);
    CU_ASSERT_TRUE(pk_ok(pk_audit_rotate(a, rotated, sizeof(rotated))));
    snprintf(want, sizeof(want), "%s.000002", path);
    CU_ASSERT_STRING_EQUAL(rotated, want);
    write_events(a, 1);
    close_log(a);
    CU_ASSERT_EQUAL(count_series(path), 3);

    first = read_lines(want);
    second = read_lines(path);
    CU_ASSERT_EQUAL_FATAL(first.n, 4); /* link, 2 events, rotation seal */
    CU_ASSERT_PTR_NOT_NULL(strstr(first.v[3], "\"type\":\"seal\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(first.v[3], "\"reason\":\"rotate\""));
    CU_ASSERT_EQUAL_FATAL(second.n, 3); /* link, event, close seal */
    CU_ASSERT_PTR_NOT_NULL(strstr(second.v[0], "\"seq\":9,\"type\":\"link\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(second.v[0], "\"reason\":\"rotate\",\"file\":3,\"previous_file\":\"rot.log.000002\","));
    hash_hex(first.v[3], h);
    snprintf(want, sizeof(want), "\"prev\":\"%s\"", h);
    CU_ASSERT_PTR_NOT_NULL(strstr(second.v[0], want));
    free_lines(&first);
    free_lines(&second);

    pk_audit_report rep = verify_series(path, 0);
    ASSERT_VERIFIED(rep);
    CU_ASSERT_EQUAL(rep.files, 3);
    CU_ASSERT_EQUAL(rep.last_seq, 11);

    /* Restart continues in the newest file. */
    a = open_log(path, PK_AUDIT_SYNC_BATCH, 0, 0);
    write_events(a, 1);
    close_log(a);
    ASSERT_VERIFIED(verify_series(path, 0));
}

/* Issue 17c: a temp file left by a rotation that crashed is removed at the next open, if its process is gone. */
static void test_audit_rotation_removes_stale_temp_files(void)
{
    char path[512], dead[600], mine[600], live[600], other[600];
    struct stat st;
    pk_audit *a;
    pid_t child = fork();

    if (child == 0) _exit(0);
    CU_ASSERT_FATAL(child > 0);
    CU_ASSERT_EQUAL(waitpid(child, NULL, 0), child);
    log_path("stale.log", path, sizeof(path));
    snprintf(dead, sizeof(dead), "%s.tmp-%ld", path, (long)child);
    snprintf(mine, sizeof(mine), "%s.tmp-%ld", path, (long)getpid());
    snprintf(live, sizeof(live), "%s.tmp-1", path); /* init: alive, and not ours */
    snprintf(other, sizeof(other), "%s.tmp-x1", path);
    close(open(dead, O_WRONLY | O_CREAT, 0600));
    close(open(mine, O_WRONLY | O_CREAT, 0600));
    close(open(live, O_WRONLY | O_CREAT, 0600));
    close(open(other, O_WRONLY | O_CREAT, 0600));
    a = open_log(path, PK_AUDIT_SYNC_BATCH, 0, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    CU_ASSERT_NOT_EQUAL(lstat(dead, &st), 0);
    CU_ASSERT_NOT_EQUAL(lstat(mine, &st), 0);
    CU_ASSERT_EQUAL(lstat(live, &st), 0);
    CU_ASSERT_EQUAL(lstat(other, &st), 0);
    write_events(a, 1);
    close_log(a);
    ASSERT_VERIFIED(verify_series(path, 0));
    unlink(live);
    unlink(other);
}

static void test_audit_rotation_on_size(void)
{
    char path[512];
    pk_audit *a;
    pk_audit_stats st;

    log_path("size.log", path, sizeof(path));
    a = open_log(path, PK_AUDIT_SYNC_BATCH, 4096, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    write_events(a, 60);
    pk_audit_get_stats(a, &st);
    CU_ASSERT_TRUE(st.rotations >= 4);
    close_log(a);
    CU_ASSERT_EQUAL(count_series(path), st.rotations + 1);
    for (unsigned long i = 1; i <= st.rotations; i++) {
        char name[600];
        struct stat sb;
        snprintf(name, sizeof(name), "%s.%06lu", path, i);
        CU_ASSERT_EQUAL(stat(name, &sb), 0);
        CU_ASSERT_TRUE(sb.st_size >= 4096 && sb.st_size < 4096 + 1024);
    }
    pk_audit_report rep = verify_series(path, 0);
    ASSERT_VERIFIED(rep);
    CU_ASSERT_EQUAL(rep.files, st.rotations + 1);
}

static void test_audit_rotation_detects_a_missing_file(void)
{
    char path[512], name[600], next[600];
    pk_audit *a;
    lines l;

    log_path("miss.log", path, sizeof(path));
    a = open_log(path, PK_AUDIT_SYNC_BATCH, 0, 0);
    for (int i = 0; i < 3; i++) {
        write_events(a, 2);
        CU_ASSERT_TRUE(pk_ok(pk_audit_rotate(a, NULL, 0)));
    }
    write_events(a, 1);
    close_log(a);
    ASSERT_VERIFIED(verify_series(path, 0));

    /* A file in the middle. */
    snprintf(name, sizeof(name), "%s.000002", path);
    snprintf(next, sizeof(next), "%s.000003", path);
    l = read_lines(next);
    CU_ASSERT_TRUE(l.n > 0);
    CU_ASSERT_EQUAL(rename(name, "/tmp/p11kms-audit-moved-away"), 0);
    pk_audit_report rep = verify_series(path, 0);
    ASSERT_FINDING(rep, PK_AUDIT_MISSING_FILE, 1, 8);
    CU_ASSERT_STRING_EQUAL(rep.file, next);
    CU_ASSERT_PTR_NOT_NULL(strstr(rep.detail, "miss.log.000002"));
    CU_ASSERT_EQUAL(rename("/tmp/p11kms-audit-moved-away", name), 0);
    ASSERT_VERIFIED(verify_series(path, 0));
    free_lines(&l);

    /* The oldest file. */
    snprintf(name, sizeof(name), "%s.000001", path);
    snprintf(next, sizeof(next), "%s.000002", path);
    CU_ASSERT_EQUAL(rename(name, "/tmp/p11kms-audit-moved-away"), 0);
    rep = verify_series(path, 0);
    ASSERT_FINDING(rep, PK_AUDIT_MISSING_FILE, 1, 4);
    CU_ASSERT_STRING_EQUAL(rep.file, next);
    CU_ASSERT_EQUAL(rename("/tmp/p11kms-audit-moved-away", name), 0);

    /* A rotated file cut short: it no longer ends with its rotation seal. */
    l = read_lines(next);
    remove_line(&l, l.n - 1);
    write_lines(next, &l);
    rep = verify_series(path, 0);
    ASSERT_FINDING(rep, PK_AUDIT_TRUNCATED, 4, 7);
    free_lines(&l);
}

static void test_audit_rotation_current_file_vanishing_is_recorded(void)
{
    char path[512];
    pk_audit *a;
    lines l;

    log_path("vanish.log", path, sizeof(path));
    a = open_log(path, PK_AUDIT_SYNC_BATCH, 0, 0);
    write_events(a, 2);
    CU_ASSERT_TRUE(pk_ok(pk_audit_rotate(a, NULL, 0)));
    write_events(a, 2);
    close_log(a);
    CU_ASSERT_EQUAL(unlink(path), 0);
    /* The next writer carries on from the newest rotated file, saying so. */
    a = open_log(path, PK_AUDIT_SYNC_BATCH, 0, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    write_events(a, 1);
    close_log(a);
    l = read_lines(path);
    CU_ASSERT_PTR_NOT_NULL(strstr(l.v[0], "\"seq\":4,\"type\":\"link\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(l.v[0], "\"reason\":\"recovered\",\"file\":2,\"previous_file\":\"vanish.log.000001\""));
    pk_audit_report rep = verify_series(path, 0);
    ASSERT_FINDING(rep, PK_AUDIT_MISSING_FILE, 1, 4);
    free_lines(&l);
}

/* ---- test_audit_fail_closed ---- */

static void expect_unavailable(pk_audit *a, const char *path, const char *why)
{
    char want[700];
    snprintf(want, sizeof(want), "audit unavailable: cannot write %s: %s", path, why);
    assert_rc(write_event(a, "arn:aws:iam::111122223333:user/alice", 99).code, P11KMS_ERR_AUDIT_UNAVAILABLE, want);
}

static bool ends_with_newline(const char *path)
{
    int fd = open(path, O_RDONLY);
    char c = 0;
    off_t end = lseek(fd, 0, SEEK_END);
    bool ok = end == 0 || (pread(fd, &c, 1, end - 1) == 1 && c == '\n');
    close(fd);
    return ok;
}

static void test_audit_fail_closed_when_file_removed(void)
{
    char path[512], moved[600];
    pk_audit *a;

    /* always mode checks the file before every record. */
    log_path("removed-always.log", path, sizeof(path));
    a = open_log(path, PK_AUDIT_SYNC_ALWAYS, 0, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    write_events(a, 2);
    CU_ASSERT_EQUAL(unlink(path), 0);
    expect_unavailable(a, path, "the file was removed");
    CU_ASSERT_EQUAL(pk_audit_close(a).code, P11KMS_ERR_AUDIT_UNAVAILABLE);

    /* batch mode notices at the end of its lock lease (1 ms). */
    log_path("removed.log", path, sizeof(path));
    a = open_log(path, PK_AUDIT_SYNC_BATCH, 0, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    write_events(a, 2);
    CU_ASSERT_EQUAL(unlink(path), 0);
    usleep(LEASE_WAIT_US);
    {
        /* The check before a change refuses it the same way, without writing anything. */
        char want[700];
        snprintf(want, sizeof(want), "audit unavailable: cannot write %s: the file was removed", path);
        assert_rc(pk_audit_check(a).code, P11KMS_ERR_AUDIT_UNAVAILABLE, want);
    }
    expect_unavailable(a, path, "the file was removed");
    expect_unavailable(a, path, "the file was removed"); /* and it stays closed */
    CU_ASSERT_EQUAL(pk_audit_close(a).code, P11KMS_ERR_AUDIT_UNAVAILABLE);

    /* Moved away and replaced by another file. */
    log_path("replaced.log", path, sizeof(path));
    snprintf(moved, sizeof(moved), "%s.moved", path);
    a = open_log(path, PK_AUDIT_SYNC_BATCH, 0, 0);
    write_events(a, 2);
    CU_ASSERT_EQUAL(rename(path, moved), 0);
    fclose(fopen(path, "w"));
    usleep(LEASE_WAIT_US);
    expect_unavailable(a, path, "the file was replaced");
    CU_ASSERT_EQUAL(pk_audit_close(a).code, P11KMS_ERR_AUDIT_UNAVAILABLE);

    /* Truncated under a running writer. */
    log_path("shrunk.log", path, sizeof(path));
    a = open_log(path, PK_AUDIT_SYNC_BATCH, 0, 0);
    write_events(a, 3);
    CU_ASSERT_EQUAL(truncate(path, 0), 0);
    usleep(LEASE_WAIT_US);
    expect_unavailable(a, path, "the file was truncated by someone else");
    CU_ASSERT_EQUAL(pk_audit_close(a).code, P11KMS_ERR_AUDIT_UNAVAILABLE);
}

static bool mount_tmpfs(const char *dir, const char *opts)
{
    mkdir(dir, 0700);
    return mount("tmpfs", dir, "tmpfs", 0, opts) == 0;
}

static int chattr(const char *flag, const char *path)
{
    char cmd[700];
    snprintf(cmd, sizeof(cmd), "chattr %s '%s' 2>/dev/null", flag, path);
    return system(cmd);
}

/* Issue 11: the log path, a rotated name or a temp name that is a symbolic link is never followed. */
static void test_audit_fail_closed_refuses_a_symlink(void)
{
    char path[512], target[512], rotated[600], want[1200];
    struct stat st;
    pk_audit *a = NULL;
    pk_audit_opts o;

    log_path("link.log", path, sizeof(path));
    log_path("link-target", target, sizeof(target));
    CU_ASSERT_EQUAL_FATAL(symlink(target, path), 0);
    memset(&o, 0, sizeof(o));
    o.path = path;
    o.p11 = p11;
    snprintf(want, sizeof(want),
             "audit unavailable: cannot write %s: it is a symbolic link (the audit trail never follows links: replace "
             "it with the log file itself)",
             path);
    /* A dangling link: the file it names is not created. */
    assert_rc(pk_audit_open(&o, &a).code, P11KMS_ERR_AUDIT_UNAVAILABLE, want);
    CU_ASSERT_PTR_NULL(a);
    CU_ASSERT_NOT_EQUAL(lstat(target, &st), 0);
    /* A link to an existing file: it is not appended to. */
    close(open(target, O_WRONLY | O_CREAT, 0600));
    assert_rc(pk_audit_open(&o, &a).code, P11KMS_ERR_AUDIT_UNAVAILABLE, want);
    CU_ASSERT_EQUAL(stat(target, &st), 0);
    CU_ASSERT_EQUAL(st.st_size, 0);
    CU_ASSERT_EQUAL(unlink(path), 0);

    /* A link at the rotated name, even to the log itself, is not taken for the rotated file. */
    a = open_log(path, PK_AUDIT_SYNC_BATCH, 0, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    write_events(a, 2);
    snprintf(rotated, sizeof(rotated), "%s.000001", path);
    CU_ASSERT_EQUAL_FATAL(symlink(path, rotated), 0);
    snprintf(want, sizeof(want), "audit unavailable: cannot rotate %s to %s: a different file has that name", path,
             rotated);
    assert_rc(pk_audit_rotate(a, NULL, 0).code, P11KMS_ERR_AUDIT_UNAVAILABLE, want);
    CU_ASSERT_EQUAL(unlink(rotated), 0);
    /* A link at the temp name is removed, not written through. */
    {
        char tmp[600];
        snprintf(tmp, sizeof(tmp), "%s.tmp-%ld", path, (long)getpid());
        CU_ASSERT_EQUAL_FATAL(symlink(target, tmp), 0);
        CU_ASSERT_TRUE(pk_ok(pk_audit_rotate(a, NULL, 0)));
        CU_ASSERT_NOT_EQUAL(lstat(tmp, &st), 0);
        CU_ASSERT_EQUAL(stat(target, &st), 0);
        CU_ASSERT_EQUAL(st.st_size, 0);
    }
    close_log(a);
    ASSERT_VERIFIED(verify_series(path, 0));
}

static void test_audit_fail_closed_when_read_only(void)
{
    char path[512], want[700];
    pk_audit *a;
    pk_audit_opts o;

    log_path("ro.log", path, sizeof(path));
    a = open_log(path, PK_AUDIT_SYNC_BATCH, 0, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    write_events(a, 2);
    memset(&o, 0, sizeof(o));
    o.path = path;
    o.p11 = p11;
    if (geteuid() != 0) {
        /* An ordinary user: a read-only file cannot be opened for appending. */
        close_log(a);
        CU_ASSERT_EQUAL(chmod(path, 0400), 0);
        a = NULL;
        snprintf(want, sizeof(want), "audit unavailable: cannot write %s: Permission denied", path);
        assert_rc(pk_audit_open(&o, &a).code, P11KMS_ERR_AUDIT_UNAVAILABLE, want);
        return;
    }
    /* root ignores file modes; an immutable file refuses root too, also through an open descriptor. */
    if (chattr("+i", path) != 0) {
        fprintf(stderr, "\n  SKIP read-only case: chattr +i is not supported here\n");
        close_any(a);
        return;
    }
    expect_unavailable(a, path, "Operation not permitted");
    CU_ASSERT_EQUAL(pk_audit_close(a).code, P11KMS_ERR_AUDIT_UNAVAILABLE);
    a = NULL;
    snprintf(want, sizeof(want), "audit unavailable: cannot write %s: Operation not permitted", path);
    assert_rc(pk_audit_open(&o, &a).code, P11KMS_ERR_AUDIT_UNAVAILABLE, want);
    CU_ASSERT_EQUAL(chattr("-i", path), 0);
    /* What was written before stays a valid (if unsealed) chain. */
    ASSERT_VERIFIED(verify_series(path, PK_AUDIT_VERIFY_ALLOW_UNSEALED));
}

static void test_audit_fail_closed_when_disk_full(void)
{
    char dir[512], path[600];
    pk_audit *a;
    pk_result r = PK_OK;
    int written = 0;

    log_path("fullmnt", dir, sizeof(dir));
    if (mount_tmpfs(dir, "size=16k")) {
        snprintf(path, sizeof(path), "%s/audit.log", dir);
        a = open_log(path, PK_AUDIT_SYNC_BATCH, 0, 0);
        CU_ASSERT_PTR_NOT_NULL_FATAL(a);
        while (written < 10000 && pk_ok(r = write_event(a, "arn:aws:iam::111122223333:user/alice", written)))
            written++;
        CU_ASSERT_TRUE(written > 10 && written < 10000);
        {
            char want[700];
            snprintf(want, sizeof(want), "audit unavailable: cannot write %s: No space left on device", path);
            CU_ASSERT_EQUAL(r.code, P11KMS_ERR_AUDIT_UNAVAILABLE);
            CU_ASSERT_STRING_EQUAL(p11kms_last_error(), want);
        }
        /* No partial line is left behind: the chain still verifies. */
        CU_ASSERT_TRUE(ends_with_newline(path));
        expect_unavailable(a, path, "No space left on device");
        CU_ASSERT_TRUE(ends_with_newline(path));
        close_any(a); /* cannot seal: the disk is full */
        pk_audit_report rep = verify_series(path, PK_AUDIT_VERIFY_ALLOW_UNSEALED);
        ASSERT_VERIFIED(rep);
        CU_ASSERT_EQUAL(umount2(dir, MNT_DETACH), 0);
        return;
    }
    /* No tmpfs: /dev/full behind the log path gives ENOSPC on every write. */
    fprintf(stderr, "\n  (no tmpfs: using /dev/full for ENOSPC)\n");
    log_path("full.log", path, sizeof(path));
    CU_ASSERT_EQUAL_FATAL(symlink("/dev/full", path), 0);
    a = open_log(path, PK_AUDIT_SYNC_BATCH, 0, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    expect_unavailable(a, path, "No space left on device");
    close_any(a);
}

/* ---- test_audit_concurrency ---- */

#define PROC_EVENTS 150
#define THREADS 4
#define THREAD_EVENTS 150

typedef struct thread_arg {
    pk_audit *a;
    int failures;
} thread_arg;

static void *thread_main(void *arg)
{
    thread_arg *t = arg;
    for (int i = 0; i < THREAD_EVENTS; i++)
        if (pk_failed(write_event(t->a, "arn:aws:iam::111122223333:role/thread", i))) t->failures++;
    return NULL;
}

static int count_with(const char *path, const char *needle)
{
    char **files = NULL;
    size_t n = 0;
    int count = 0;
    CU_ASSERT_TRUE(pk_ok(pk_audit_series(path, &files, &n)));
    for (size_t f = 0; f < n; f++) {
        lines l = read_lines(files[f]);
        for (size_t i = 0; i < l.n; i++)
            if (strstr(l.v[i], needle) != NULL) count++;
        free_lines(&l);
    }
    pk_audit_series_free(files, n);
    return count;
}

static void concurrent_run(const char *name, uint64_t max_bytes, pk_audit_sync sync)
{
    char path[512];
    pid_t kids[2];
    pthread_t th[THREADS];
    thread_arg args[THREADS];
    pk_audit *a;

    log_path(name, path, sizeof(path));
    for (int k = 0; k < 2; k++) {
        kids[k] = fork();
        if (kids[k] == 0) {
            /*
             * Another p11kms process: its own token connection and its own
             * handle on the same file. If the token cannot be reached (SoftHSM
             * reloads its files in every process), a real CLI process would
             * fail closed; here it reconnects, so the test is about the log.
             */
            pk_audit *ca = NULL;
            pk_p11_close(p11);
            p11 = NULL;
            for (int tries = 0; ca == NULL && tries < 40; tries++) {
                if (tries > 0) usleep(50 * 1000);
                if (p11 == NULL && pk_failed(pk_p11_open(&p11_opts, &p11))) {
                    fprintf(stderr, "\n  child: token: %s\n", p11kms_last_error());
                    p11 = NULL;
                    continue;
                }
                ca = open_log(path, sync, max_bytes, 0);
                if (ca == NULL) {
                    pk_p11_close(p11);
                    p11 = NULL;
                }
            }
            int bad = ca == NULL;
            for (int i = 0; ca != NULL && i < PROC_EVENTS; i++)
                if (pk_failed(write_event(ca, "arn:aws:iam::111122223333:role/process", i))) bad++;
            if (pk_failed(pk_audit_close(ca))) bad++;
            pk_p11_close(p11);
            _exit(bad == 0 ? 0 : 1);
        }
    }
    a = open_log(path, sync, max_bytes, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    for (int t = 0; t < THREADS; t++) {
        args[t].a = a;
        args[t].failures = 0;
        CU_ASSERT_EQUAL(pthread_create(&th[t], NULL, thread_main, &args[t]), 0);
    }
    for (int t = 0; t < THREADS; t++) {
        pthread_join(th[t], NULL);
        CU_ASSERT_EQUAL(args[t].failures, 0);
    }
    close_log(a);
    for (int k = 0; k < 2; k++) {
        int status = 0;
        CU_ASSERT_EQUAL(waitpid(kids[k], &status, 0), kids[k]);
        CU_ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    pk_audit_report rep = verify_series(path, 0);
    ASSERT_VERIFIED(rep);
    CU_ASSERT_EQUAL(count_with(path, "role/process\""), 2 * PROC_EVENTS);
    CU_ASSERT_EQUAL(count_with(path, "role/thread\""), THREADS * THREAD_EVENTS);
}

static void test_audit_concurrency_processes_and_threads_share_one_chain(void)
{
    concurrent_run("conc.log", 0, PK_AUDIT_SYNC_BATCH);
}

static void test_audit_concurrency_with_rotation(void)
{
    char path[512];
    concurrent_run("conc-rot.log", 16384, PK_AUDIT_SYNC_BATCH);
    log_path("conc-rot.log", path, sizeof(path));
    CU_ASSERT_TRUE(count_series(path) > 5);
}

static void test_audit_concurrency_always_mode(void)
{
    concurrent_run("conc-always.log", 0, PK_AUDIT_SYNC_ALWAYS);
}

/* ---- test_audit_sync ---- */

static void test_audit_sync_always_seals_and_flushes_each_record(void)
{
    char path[512];
    pk_audit *a;
    pk_audit_stats st;
    lines l;

    log_path("always.log", path, sizeof(path));
    a = open_log(path, PK_AUDIT_SYNC_ALWAYS, 0, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    write_events(a, 10);
    pk_audit_get_stats(a, &st);
    CU_ASSERT_EQUAL(st.records, 10);
    CU_ASSERT_EQUAL(st.seals, 10);
    CU_ASSERT_TRUE(st.syncs >= 10);
    /* Before close: every record is already sealed. */
    pk_audit_report rep = verify_series(path, 0);
    ASSERT_VERIFIED(rep);
    CU_ASSERT_EQUAL(rep.records, 20);
    close_log(a);
    l = read_lines(path);
    CU_ASSERT_EQUAL(l.n, 20); /* nothing left to seal on close */
    free_lines(&l);
}

static void test_audit_sync_batch_flushes_and_seals_in_the_background(void)
{
    char path[512];
    pk_audit_opts o;
    pk_audit *a = NULL;
    pk_audit_stats st;
    lines l;

    log_path("batch.log", path, sizeof(path));
    memset(&o, 0, sizeof(o));
    o.path = path;
    o.p11 = p11;
    o.sync = PK_AUDIT_SYNC_BATCH;
    o.seal_interval_ms = 500;
    CU_ASSERT_TRUE_FATAL(pk_ok(pk_audit_open(&o, &a)));
    write_events(a, 100);
    pk_audit_get_stats(a, &st);
    CU_ASSERT_EQUAL(st.seals, 0);
    CU_ASSERT_TRUE(st.syncs < 100);
    /* Unsealed records are visible as such to a strict verifier. */
    CU_ASSERT_EQUAL(verify_series(path, 0).problem, PK_AUDIT_TRUNCATED);
    usleep(1200 * 1000);
    pk_audit_get_stats(a, &st);
    CU_ASSERT_TRUE(st.syncs >= 1);
    CU_ASSERT_EQUAL(st.seals, 1);
    l = read_lines(path);
    CU_ASSERT_EQUAL_FATAL(l.n, 101);
    CU_ASSERT_PTR_NOT_NULL(strstr(l.v[100], "\"reason\":\"timer\""));
    free_lines(&l);
    ASSERT_VERIFIED(verify_series(path, 0));
    close_log(a);
    l = read_lines(path);
    CU_ASSERT_EQUAL(l.n, 101); /* the timer seal already covers everything */
    free_lines(&l);
}

/* A writer in another process (here: another handle) blocked behind our lease. */
typedef struct {
    pk_audit *a;
    volatile int done;
    pk_result r;
} blocked_writer;

static void *blocked_writer_main(void *arg)
{
    blocked_writer *w = arg;
    w->r = write_event(w->a, "other-process", 1);
    __atomic_store_n(&w->done, 1, __ATOMIC_RELEASE);
    return NULL;
}

/*
 * A check before a change takes the flock and keeps it for one lease. The
 * lease must end on time even when no record follows (the change may itself
 * wait for another process, which waits for this flock): else two processes
 * deadlock, one on the store's lock and one on the trail's.
 */
static void test_audit_sync_batch_check_lease_ends_on_time(void)
{
    char path[512];
    pk_audit *a, *b;
    blocked_writer w;
    pthread_t th;
    int waited_ms = 0;

    log_path("lease.log", path, sizeof(path));
    a = open_log(path, PK_AUDIT_SYNC_BATCH, 0, 0);
    b = open_log(path, PK_AUDIT_SYNC_BATCH, 0, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    CU_ASSERT_TRUE(pk_ok(write_event(a, "this-process", 0)));
    CU_ASSERT_TRUE(pk_ok(pk_audit_flush(a))); /* sealed and synced: no timer is due */
    usleep(50 * 1000); /* the flusher has ended that lease; it now sleeps with nothing to do */
    CU_ASSERT_TRUE(pk_ok(pk_audit_check(a)));
    memset(&w, 0, sizeof(w));
    w.a = b;
    CU_ASSERT_EQUAL_FATAL(pthread_create(&th, NULL, blocked_writer_main, &w), 0);
    while (!__atomic_load_n(&w.done, __ATOMIC_ACQUIRE) && waited_ms < 3000) {
        usleep(10 * 1000);
        waited_ms += 10;
    }
    CU_ASSERT_TRUE(__atomic_load_n(&w.done, __ATOMIC_ACQUIRE)); /* still blocked: the lease never ended */
    close_log(a); /* releases the flock either way, so the writer finishes */
    pthread_join(th, NULL);
    CU_ASSERT_TRUE(pk_ok(w.r));
    close_log(b);
    ASSERT_VERIFIED(verify_series(path, 0));
}

static void test_audit_sync_seal_every_n(void)
{
    char path[512];
    pk_audit *a;
    lines l;

    log_path("every.log", path, sizeof(path));
    a = open_log(path, PK_AUDIT_SYNC_BATCH, 0, 10);
    write_events(a, 25);
    close_log(a);
    l = read_lines(path);
    CU_ASSERT_EQUAL_FATAL(l.n, 28);
    CU_ASSERT_PTR_NOT_NULL(strstr(l.v[10], "\"seq\":11,\"type\":\"seal\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(l.v[10], "\"reason\":\"count\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(l.v[21], "\"seq\":22,\"type\":\"seal\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(l.v[27], "\"reason\":\"close\""));
    free_lines(&l);
    ASSERT_VERIFIED(verify_series(path, 0));
}

static void test_audit_sync_disabled_records_nothing(void)
{
    pk_audit_opts o;
    pk_audit *a = NULL;
    char rid[PK_AUDIT_REQUEST_ID_MAX + 1] = "";
    memset(&o, 0, sizeof(o)); /* path NULL: benchmarks only */
    CU_ASSERT_TRUE_FATAL(pk_ok(pk_audit_open(&o, &a)));
    CU_ASSERT_PTR_NULL(pk_audit_path(a));
    CU_ASSERT_TRUE(pk_ok(write_event(a, "x", 1)));
    {
        pk_audit_event ev;
        memset(&ev, 0, sizeof(ev));
        ev.action = "Encrypt";
        CU_ASSERT_TRUE(pk_ok(pk_audit_write(a, &ev, rid)));
        CU_ASSERT_EQUAL(strlen(rid), 36);
    }
    CU_ASSERT_TRUE(pk_ok(pk_audit_close(a)));
}

static void test_audit_sync_config_settings(void)
{
    char conf[600], text[2048], path[600];
    p11kms_config *cfg = NULL;
    pk_audit *a = NULL;
    FILE *f;

    snprintf(text, sizeof(text), "module = %s\ntoken = %s\npin = %s\naudit = conf-audit.log\naudit_sync = sometimes\n",
             p11kms_config_get(fx.cfg, "module"), p11kms_config_get(fx.cfg, "token"), p11kms_config_get(fx.cfg, "pin"));
    pk_fixture_write(&fx, "audit1.conf", text, conf, sizeof(conf));
    {
        /* A bad value is refused when the file is loaded, naming the line. */
        char want[800];
        snprintf(want, sizeof(want), "%s:5: audit_sync: must be always or batch, not 'sometimes'", conf);
        assert_rc(p11kms_config_load(conf, &cfg), P11KMS_ERR_CONFIG, want);
        CU_ASSERT_PTR_NULL(cfg);
    }
    f = fopen(conf, "w");
    fprintf(f, "module = %s\ntoken = %s\npin = %s\naudit = conf-audit.log\naudit_sync = always\n",
            p11kms_config_get(fx.cfg, "module"), p11kms_config_get(fx.cfg, "token"), p11kms_config_get(fx.cfg, "pin"));
    fclose(f);
    CU_ASSERT_EQUAL_FATAL(p11kms_config_load(conf, &cfg), P11KMS_OK);
    CU_ASSERT_TRUE_FATAL(pk_ok(pk_audit_open_conf(cfg, p11, &a)));
    snprintf(path, sizeof(path), "%s/conf-audit.log", fx.dir);
    CU_ASSERT_STRING_EQUAL(pk_audit_path(a), path);
    write_events(a, 1);
    close_log(a);
    p11kms_config_free(cfg);
    /* No audit path: refused, never silently unaudited. */
    f = fopen(conf, "w");
    fprintf(f, "module = %s\ntoken = %s\npin = %s\n", p11kms_config_get(fx.cfg, "module"),
            p11kms_config_get(fx.cfg, "token"), p11kms_config_get(fx.cfg, "pin"));
    fclose(f);
    CU_ASSERT_EQUAL_FATAL(p11kms_config_load(conf, &cfg), P11KMS_OK);
    {
        char want[800];
        snprintf(want, sizeof(want), "%s: no `audit` path set; p11kms needs an audit log", conf);
        assert_rc(pk_audit_open_conf(cfg, p11, &a).code, P11KMS_ERR_CONFIG, want);
    }
    p11kms_config_free(cfg);
}

/* ---- main ---- */

static void global_setup(void)
{
    pk_p11_opts *o = &p11_opts;
    pk_keyid id = pk_audit_key_id();

    pk_fixture_setup(&fx);
    memset(o, 0, sizeof(*o));
    o->module = p11kms_config_get(fx.cfg, "module");
    o->token_uri = p11kms_config_get(fx.cfg, "token");
    o->cfg = fx.cfg;
    o->pool_size = 4;
    o->require_login = true;
    o->read_write = true;
    if (pk_failed(pk_p11_open(o, &p11)) || pk_failed(pk_p11_generate_key(p11, PK_KEY_HMAC, &id, PK_AUDIT_KEY_LABEL))) {
        fprintf(stderr, "test_audit: cannot prepare the token: %s\n", p11kms_last_error());
        exit(99);
    }
}

typedef struct test_def {
    const char *name;
    CU_TestFunc fn;
} test_def;

static void add_suite(const char *name, const test_def *tests, size_t n)
{
    CU_pSuite s = CU_add_suite(name, NULL, NULL);
    for (size_t i = 0; i < n; i++) CU_add_test(s, tests[i].name, tests[i].fn);
}

#define T(fn) {#fn, fn}

int main(void)
{
    static const test_def chain[] = {
        T(test_audit_chain_starts_at_genesis), T(test_audit_chain_continues_across_reopen),
        T(test_audit_chain_repairs_a_torn_write), T(test_audit_chain_needs_the_audit_key),
        T(test_audit_chain_refuses_a_malformed_last_line)};
    static const test_def records[] = {T(test_audit_records_hold_only_what_was_given),
                                       T(test_audit_records_stay_valid_json),
                                       T(test_audit_records_never_repeat_a_key),
                                       T(test_audit_records_cut_to_fit)};
    static const test_def tamper[] = {
        T(test_audit_tamper_modified_field), T(test_audit_tamper_deleted_record),
        T(test_audit_tamper_reordered_records), T(test_audit_tamper_inserted_record),
        T(test_audit_tamper_truncated_tail), T(test_audit_tamper_rechained_record_breaks_the_seal),
        T(test_audit_tamper_malformed_line), T(test_audit_tamper_unreadable_line_keeps_the_chain)};
    static const test_def rotation[] = {
        T(test_audit_rotation_links_the_series), T(test_audit_rotation_on_size),
        T(test_audit_rotation_removes_stale_temp_files),
        T(test_audit_rotation_detects_a_missing_file), T(test_audit_rotation_current_file_vanishing_is_recorded)};
    static const test_def fail_closed[] = {T(test_audit_fail_closed_when_file_removed),
                                           T(test_audit_fail_closed_refuses_a_symlink),
                                           T(test_audit_fail_closed_when_read_only),
                                           T(test_audit_fail_closed_when_disk_full)};
    static const test_def concurrency[] = {T(test_audit_concurrency_processes_and_threads_share_one_chain),
                                           T(test_audit_concurrency_with_rotation),
                                           T(test_audit_concurrency_always_mode)};
    static const test_def sync[] = {T(test_audit_sync_always_seals_and_flushes_each_record),
                                    T(test_audit_sync_batch_flushes_and_seals_in_the_background),
                                    T(test_audit_sync_batch_check_lease_ends_on_time),
                                    T(test_audit_sync_seal_every_n), T(test_audit_sync_disabled_records_nothing),
                                    T(test_audit_sync_config_settings)};
    int rc;

    global_setup();
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    add_suite("test_audit_chain", chain, PK_ARRAY_LEN(chain));
    add_suite("test_audit_records", records, PK_ARRAY_LEN(records));
    add_suite("test_audit_tamper", tamper, PK_ARRAY_LEN(tamper));
    add_suite("test_audit_rotation", rotation, PK_ARRAY_LEN(rotation));
    add_suite("test_audit_fail_closed", fail_closed, PK_ARRAY_LEN(fail_closed));
    add_suite("test_audit_concurrency", concurrency, PK_ARRAY_LEN(concurrency));
    add_suite("test_audit_sync", sync, PK_ARRAY_LEN(sync));
    rc = pk_run_suites();
    pk_p11_close(p11);
    pk_fixture_teardown(&fx);
    return rc;
}
