/* Unit tests for src/util and src/crypto: codecs, buffers, JSON output, errors. */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "crypto/crypto.h"
#include "lib/fixture.h"
#include "util/bytes.h"
#include "util/codec.h"
#include "util/forkgen.h"
#include "util/group_commit.h"
#include "util/json_out.h"
#include "util/lru_map.h"
#include "util/secbuf.h"
#include "util/wipe.h"

static void test_util_base64_round_trip(void)
{
    /* RFC 4648 section 10 vectors. */
    const char *in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    const char *want[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    for (size_t i = 0; i < PK_ARRAY_LEN(in); i++) {
        char enc[16];
        uint8_t dec[16];
        size_t n = 0;
        pk_base64_encode((const uint8_t *)in[i], strlen(in[i]), enc);
        CU_ASSERT_STRING_EQUAL(enc, want[i]);
        CU_ASSERT_TRUE(pk_ok(pk_base64_decode(enc, strlen(enc), dec, &n)));
        CU_ASSERT_EQUAL(n, strlen(in[i]));
        CU_ASSERT_EQUAL(memcmp(dec, in[i], n), 0);
    }
}

static void test_util_base64_rejects_malformed(void)
{
    uint8_t out[16];
    size_t n;
    const char *bad[] = {"Zg=", "Z===", "Zg=a", "Zm9v!A==", "Zm 9", "=Zm9"};
    for (size_t i = 0; i < PK_ARRAY_LEN(bad); i++) {
        pk_result r = pk_base64_decode(bad[i], strlen(bad[i]), out, &n);
        CU_ASSERT_EQUAL(r.code, P11KMS_ERR_INVALID_ARGUMENT);
    }
    /* A trailing newline (as from a file) is accepted. */
    CU_ASSERT_TRUE(pk_ok(pk_base64_decode("Zm9v\n", 5, out, &n)));
    CU_ASSERT_EQUAL(n, 3);
}

/* "Zg==" is "f"; "Zh==" and "Zm9=" carry non-zero pad bits and must not decode too. */
static void test_util_base64_rejects_nonzero_pad_bits(void)
{
    uint8_t out[16];
    size_t n = 0;
    const char *bad[] = {"Zh==", "Zv==", "Zm9=", "Zm9vYe==", "Zm9vYmF="};
    for (size_t i = 0; i < PK_ARRAY_LEN(bad); i++) {
        pk_result r = pk_base64_decode(bad[i], strlen(bad[i]), out, &n);
        CU_ASSERT_EQUAL(r.code, P11KMS_ERR_INVALID_ARGUMENT);
        CU_ASSERT_STRING_EQUAL(p11kms_last_error(), "invalid base64: non-zero bits after the last byte");
    }
    CU_ASSERT_TRUE(pk_ok(pk_base64_decode("Zg==", 4, out, &n)));
    CU_ASSERT_TRUE(n == 1 && out[0] == 'f');
    CU_ASSERT_TRUE(pk_ok(pk_base64_decode("Zm8=", 4, out, &n)));
    CU_ASSERT_TRUE(n == 2 && memcmp(out, "fo", 2) == 0);
}

static void test_util_uuid_format_and_parse(void)
{
    uint8_t id[PK_UUID_LEN], back[PK_UUID_LEN];
    char s[PK_UUID_STR_LEN + 1];
    CU_ASSERT_TRUE(pk_ok(pk_uuid_new(id)));
    pk_uuid_format(id, s);
    CU_ASSERT_EQUAL(strlen(s), 36);
    CU_ASSERT_EQUAL(s[14], '4'); /* version 4 */
    CU_ASSERT_TRUE(pk_uuid_parse(s, back));
    CU_ASSERT_EQUAL(memcmp(id, back, sizeof(id)), 0);
    CU_ASSERT_FALSE(pk_uuid_parse("not-a-uuid", back));
    CU_ASSERT_FALSE(pk_uuid_parse("0123456789ab-cdef-0123-4567-89abcdef0123", back));
    CU_ASSERT_FALSE(pk_uuid_parse("0123456z-89ab-cdef-0123-456789abcdef", back));
}

static void test_util_secbuf_grows_and_wipes(void)
{
    pk_secbuf b = PK_SECBUF_INIT;
    uint8_t big[70000];
    memset(big, 0x5a, sizeof(big));
    CU_ASSERT_TRUE(pk_ok(pk_secbuf_append(&b, "abc", 3)));
    CU_ASSERT_TRUE(pk_ok(pk_secbuf_append(&b, big, sizeof(big)))); /* crosses into a direct mapping */
    CU_ASSERT_EQUAL(b.len, 3 + sizeof(big));
    CU_ASSERT_EQUAL(memcmp(b.data, "abc", 3), 0);
    CU_ASSERT_EQUAL(b.data[b.len - 1], 0x5a);
    pk_secbuf_free(&b);
    CU_ASSERT_PTR_NULL(b.data);
    CU_ASSERT_EQUAL(b.len, 0);
    pk_secbuf_free(&b); /* idempotent */
    pk_secbuf_free(NULL);
}

static void test_util_secmem_reuses_wiped_chunks(void)
{
    uint8_t *a = pk_secmem_alloc(40);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    memset(a, 0xee, 40);
    pk_secmem_free(a);
    /* The same class hands the chunk back zeroed. */
    uint8_t *b = pk_secmem_alloc(40);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    for (int i = 0; i < 40; i++) CU_ASSERT_EQUAL(b[i], 0);
    pk_secmem_free(b);
}

static void test_util_json_out_escapes(void)
{
    pk_buf b = {0};
    pk_json_out j;
    pk_jo_init(&j, &b);
    pk_jo_obj_begin(&j);
    pk_jo_kstr(&j, "a\"b", "line\nnext\x01");
    pk_jo_key(&j, "list");
    pk_jo_arr_begin(&j);
    pk_jo_int(&j, -3);
    pk_jo_bool(&j, true);
    pk_jo_null(&j);
    pk_jo_obj_begin(&j);
    pk_jo_obj_end(&j);
    pk_jo_arr_end(&j);
    pk_jo_kint(&j, "n", 7);
    pk_jo_obj_end(&j);
    CU_ASSERT_TRUE(pk_ok(pk_jo_result(&j)));
    CU_ASSERT_TRUE(pk_ok(pk_buf_cstr(&b)));
    CU_ASSERT_STRING_EQUAL((char *)b.data, "{\"a\\\"b\":\"line\\nnext\\u0001\",\"list\":[-3,true,null,{}],\"n\":7}");
    pk_buf_free(&b);
}

/* Bytes that are not UTF-8 never reach the output: it must stay JSON a strict parser reads back. */
static void test_util_json_escape_keeps_output_valid(void)
{
    static const char in[] = "ok \xc3\xa9 \xff \xe2\x82 \xed\xa0\x80 \xf0\x9f\x94\x91\x7f|";
    pk_buf b = {0};
    CU_ASSERT_TRUE(pk_ok(pk_json_escape(&b, in, sizeof(in) - 1)));
    /* An embedded NUL within the length is escaped, and a sequence cut by the length is not read past it. */
    CU_ASSERT_TRUE(pk_ok(pk_json_escape(&b, "a\0b\xc3", 4)));
    CU_ASSERT_TRUE(pk_ok(pk_buf_cstr(&b)));
    CU_ASSERT_STRING_EQUAL((char *)b.data, "\"ok \xc3\xa9 \xef\xbf\xbd \xef\xbf\xbd\xef\xbf\xbd "
                                           "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd \xf0\x9f\x94\x91\\u007f|\""
                                           "\"a\\u0000b\xef\xbf\xbd\"");
    pk_buf_free(&b);
}

/*
 * A pk_buf marked wipe keeps its text across growth and leaves no copy in
 * freed memory. Where glibc hands the freed chunk straight back (its
 * per-thread cache; not under ASan, whose quarantine never does), the old
 * bytes past the allocator's own bookkeeping must be zero.
 */
static bool reused_chunk_holds(const uint8_t *was, size_t cap, char mark)
{
    uint8_t *q = malloc(cap);
    bool held = false;
    CU_ASSERT_PTR_NOT_NULL_FATAL(q);
    /* Another chunk (ASan, valgrind) says nothing, and its bytes are not ours to read. */
    for (size_t i = 32; q == was && i < cap; i++) held = held || q[i] == (uint8_t)mark;
    free(q);
    return held;
}

static void test_util_buf_wipe_leaves_no_copy(void)
{
    pk_buf b = {0};
    uint8_t *old;
    size_t old_cap;
    char text[200];
    b.wipe = true;
    memset(text, 'S', sizeof(text));
    CU_ASSERT_TRUE_FATAL(pk_ok(pk_buf_append(&b, text, sizeof(text))));
    old = b.data;
    old_cap = b.cap;
    CU_ASSERT_TRUE_FATAL(pk_ok(pk_buf_append(&b, text, sizeof(text)))); /* grows: a new region */
    CU_ASSERT_EQUAL(b.len, 2 * sizeof(text));
    CU_ASSERT_TRUE(b.data[0] == 'S' && b.data[b.len - 1] == 'S');
    if (b.data != old) CU_ASSERT_FALSE(reused_chunk_holds(old, old_cap, 'S'));
    old = b.data;
    old_cap = b.cap;
    pk_buf_free(&b);
    CU_ASSERT_FALSE(reused_chunk_holds(old, old_cap, 'S'));
}

static void test_util_error_names_and_exit_codes(void)
{
    CU_ASSERT_STRING_EQUAL(p11kms_rc_name(P11KMS_ERR_DISABLED), "P11KMS_ERR_DISABLED");
    CU_ASSERT_STRING_EQUAL(p11kms_strerror(P11KMS_ERR_CIPHERTEXT_INVALID), "ciphertext invalid or context mismatch");
    CU_ASSERT_STRING_EQUAL(p11kms_strerror(P11KMS_ERR_INTEGRITY), "store record failed integrity check");
    CU_ASSERT_STRING_EQUAL(p11kms_strerror((p11kms_rc)999), "unknown error");
    CU_ASSERT_EQUAL(p11kms_exit_code(P11KMS_OK), 0);
    CU_ASSERT_EQUAL(p11kms_exit_code(P11KMS_ERR_INVALID_ARGUMENT), 2);
    CU_ASSERT_EQUAL(p11kms_exit_code(P11KMS_ERR_CONFIG), 3);
    CU_ASSERT_EQUAL(p11kms_exit_code(P11KMS_ERR_ACCESS_DENIED), 4);
    CU_ASSERT_EQUAL(p11kms_exit_code(P11KMS_ERR_NOT_FOUND), 5);
    pk_result r = pk_fail(P11KMS_ERR_HSM, "C_Encrypt: %s", "CKR_GENERAL_ERROR");
    CU_ASSERT_EQUAL(r.code, P11KMS_ERR_HSM);
    r = pk_annotate(r, "key %d: ", 7);
    CU_ASSERT_STRING_EQUAL(p11kms_last_error(), "key 7: C_Encrypt: CKR_GENERAL_ERROR");
}

static void test_util_ct_equal_and_kwp_vector(void)
{
    /* RFC 5649 wrap is deterministic: the probe relies on that for its known answer. */
    uint8_t kek[32] = {0}, key[32] = {1}, a[64], b[64];
    size_t na = 0, nb = 0;
    CU_ASSERT_TRUE(pk_ok(pk_kwp_wrap_kat(kek, key, 32, a, &na)));
    CU_ASSERT_TRUE(pk_ok(pk_kwp_wrap_kat(kek, key, 32, b, &nb)));
    CU_ASSERT_EQUAL(na, 40);
    CU_ASSERT_TRUE(pk_ct_equal(a, b, na));
    b[5] ^= 1;
    CU_ASSERT_FALSE(pk_ct_equal(a, b, na));
}

/* util/wipe.c stands alone (no OpenSSL): a difference anywhere is seen, n = 0 is equal. */
static void test_util_wipe_and_ct_equal_without_crypto(void)
{
    uint8_t a[33], b[33];
    memset(a, 0x5a, sizeof(a));
    memcpy(b, a, sizeof(b));
    CU_ASSERT_TRUE(pk_ct_equal(a, b, sizeof(a)));
    CU_ASSERT_TRUE(pk_ct_equal(a, b, 0));
    b[0] ^= 0x80;
    CU_ASSERT_FALSE(pk_ct_equal(a, b, sizeof(a)));
    b[0] = a[0];
    b[32] ^= 1;
    CU_ASSERT_FALSE(pk_ct_equal(a, b, sizeof(a)));
    pk_wipe(a, sizeof(a));
    for (size_t i = 0; i < sizeof(a); i++) CU_ASSERT_EQUAL(a[i], 0);
    pk_wipe(NULL, 4); /* NULL is a no-op, like free */
}

static void test_util_sha256_digest_reuses_context(void)
{
    /* FIPS 180-2 "abc" vector; the reused context must give it every time and agree with the one-shot. */
    static const uint8_t abc[PK_SHA256_LEN] = {
        0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40, 0xde, 0x5d, 0xae, 0x22, 0x23,
        0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17, 0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad};
    pk_sha256_ctx *c = NULL;
    uint8_t d[PK_SHA256_LEN], e[PK_SHA256_LEN];
    CU_ASSERT_FATAL(pk_ok(pk_sha256_begin(&c)));
    for (int i = 0; i < 3; i++) {
        CU_ASSERT_TRUE(pk_ok(pk_sha256_digest(c, "abc", 3, d)));
        CU_ASSERT_EQUAL(memcmp(d, abc, sizeof(abc)), 0);
        CU_ASSERT_TRUE(pk_ok(pk_sha256_digest(c, "abcd", 4, d)));
        CU_ASSERT_TRUE(pk_ok(pk_sha256("abcd", 4, e)));
        CU_ASSERT_EQUAL(memcmp(d, e, sizeof(e)), 0);
    }
    pk_sha256_free(c);
}

/* ---- group commit, flusher, fork generation ---- */

typedef struct gc_probe {
    pthread_mutex_t mu;
    unsigned calls;
    int fail_with;  /* errno the next flush returns */
    unsigned delay_us;
} gc_probe;

static int probe_sync(void *ctx, uint64_t *target, bool *flushed)
{
    gc_probe *p = ctx;
    (void)target;
    if (p->delay_us) usleep(p->delay_us);
    pthread_mutex_lock(&p->mu);
    p->calls++;
    pthread_mutex_unlock(&p->mu);
    *flushed = true;
    return p->fail_with;
}

typedef struct gc_writer {
    pk_gc *g;
    int failures;
} gc_writer;

static void *gc_writer_main(void *arg)
{
    gc_writer *w = arg;
    for (int i = 0; i < 50; i++)
        if (pk_gc_sync(w->g, pk_gc_next_ticket(w->g)) != 0) w->failures++;
    return NULL;
}

static void test_util_group_commit_coalesces_concurrent_tickets(void)
{
    gc_probe p = {.mu = PTHREAD_MUTEX_INITIALIZER, .delay_us = 500};
    pk_gc g;
    pthread_t t[6];
    gc_writer w[6];
    uint64_t synced = 0, syncs = 0;

    CU_ASSERT_EQUAL_FATAL(pk_gc_init(&g, probe_sync, &p), 0);
    for (int i = 0; i < 6; i++) {
        w[i] = (gc_writer){.g = &g};
        CU_ASSERT_EQUAL_FATAL(pthread_create(&t[i], NULL, gc_writer_main, &w[i]), 0);
    }
    for (int i = 0; i < 6; i++) {
        pthread_join(t[i], NULL);
        CU_ASSERT_EQUAL(w[i].failures, 0);
    }
    pk_gc_stats(&g, &synced, &syncs);
    CU_ASSERT_EQUAL(synced, 300);      /* every ticket durable */
    CU_ASSERT_EQUAL(syncs, p.calls);
    CU_ASSERT(p.calls < 300);          /* concurrent writers shared flushes */
    CU_ASSERT_EQUAL(pk_gc_sync(&g, PK_GC_ALL), 0); /* nothing left: no flush */
    CU_ASSERT_EQUAL(syncs, p.calls);
    pk_gc_destroy(&g);
}

static void test_util_group_commit_failure_is_sticky(void)
{
    gc_probe p = {.mu = PTHREAD_MUTEX_INITIALIZER};
    pk_gc g;
    uint64_t t1, t2;

    CU_ASSERT_EQUAL_FATAL(pk_gc_init(&g, probe_sync, &p), 0);
    t1 = pk_gc_next_ticket(&g);
    CU_ASSERT_EQUAL(pk_gc_sync(&g, t1), 0);
    CU_ASSERT_EQUAL(pk_gc_broken(&g), 0);
    p.fail_with = EIO;
    t2 = pk_gc_next_ticket(&g);
    CU_ASSERT_EQUAL(pk_gc_sync(&g, t2), EIO);
    CU_ASSERT_EQUAL(pk_gc_broken(&g), EIO);
    /* The device recovers, but the pages may be gone: still refused, without another flush. */
    p.fail_with = 0;
    CU_ASSERT_EQUAL(pk_gc_sync(&g, pk_gc_next_ticket(&g)), EIO);
    CU_ASSERT_EQUAL(pk_gc_sync(&g, t1), 0); /* durable before the failure */
    CU_ASSERT_EQUAL(p.calls, 2);
    pk_gc_destroy(&g);
}

/* A store-like owner: the first undurable write starts a 2 ms window. */
typedef struct window_owner {
    pthread_mutex_t mu;
    pk_flusher fl;
    pk_gc g;
    gc_probe p;
    int64_t dirty_since_us;
    int64_t synced_at_us;
} window_owner;

#define TEST_WINDOW_US 2000

static int64_t window_step(void *ctx, int64_t now)
{
    window_owner *o = ctx;
    if (o->dirty_since_us == 0) return PK_FLUSHER_NEVER;
    if (now < o->dirty_since_us + TEST_WINDOW_US) return o->dirty_since_us + TEST_WINDOW_US;
    o->dirty_since_us = 0;
    pthread_mutex_unlock(&o->mu);
    (void)pk_gc_sync(&o->g, PK_GC_ALL);
    pthread_mutex_lock(&o->mu);
    o->synced_at_us = pk_mono_us();
    return 0;
}

static void test_util_flusher_syncs_within_the_window(void)
{
    window_owner o = {.mu = PTHREAD_MUTEX_INITIALIZER, .p = {.mu = PTHREAD_MUTEX_INITIALIZER}};
    int64_t wrote, synced = 0;
    uint64_t ticket, done = 0;

    CU_ASSERT_EQUAL_FATAL(pk_gc_init(&o.g, probe_sync, &o.p), 0);
    CU_ASSERT_EQUAL_FATAL(pk_flusher_init(&o.fl, &o.mu, window_step, &o), 0);
    pthread_mutex_lock(&o.mu);
    CU_ASSERT_EQUAL_FATAL(pk_flusher_start(&o.fl), 0);
    pthread_mutex_unlock(&o.mu);
    usleep(20000); /* the flusher sleeps with nothing to do */
    CU_ASSERT_EQUAL(o.p.calls, 0);

    ticket = pk_gc_next_ticket(&o.g);
    pthread_mutex_lock(&o.mu);
    wrote = o.dirty_since_us = pk_mono_us();
    pk_flusher_nudge(&o.fl, wrote + TEST_WINDOW_US);
    pthread_mutex_unlock(&o.mu);
    for (int i = 0; i < 2000 && done < ticket; i++) {
        usleep(1000);
        pk_gc_stats(&o.g, &done, NULL);
    }
    pthread_mutex_lock(&o.mu);
    synced = o.synced_at_us;
    pthread_mutex_unlock(&o.mu);
    CU_ASSERT_EQUAL(done, ticket);
    /* Not before the window ends (the flusher batches); well within a second after it. */
    CU_ASSERT(synced >= wrote + TEST_WINDOW_US);
    CU_ASSERT(synced < wrote + TEST_WINDOW_US + 1000000);
    CU_ASSERT_EQUAL(o.p.calls, 1);
    pk_flusher_stop(&o.fl);
    pk_flusher_destroy(&o.fl);
    pk_gc_destroy(&o.g);
}

static void test_util_fork_generation_changes_in_child(void)
{
    unsigned long before = pk_fork_generation();
    int status = 0;
    pid_t pid = fork();

    CU_ASSERT_FATAL(pid >= 0);
    if (pid == 0) _exit(pk_fork_generation() != before ? 0 : 1);
    CU_ASSERT_EQUAL(waitpid(pid, &status, 0), pid);
    CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CU_ASSERT_EQUAL(pk_fork_generation(), before); /* the parent keeps its own */
}

static volatile int churn_stop;

static void *secmem_churn(void *arg)
{
    (void)arg;
    while (!churn_stop) pk_secmem_free(pk_secmem_alloc(40));
    return NULL;
}

/*
 * Another thread allocates and frees all the time, so a fork often lands
 * while it holds the pool lock: without the atfork handler the child's
 * allocation then blocks for ever (the alarm kills it).
 */
static void test_util_secmem_fork_while_pool_locked(void)
{
    pthread_t t;
    int hung = 0;

    churn_stop = 0;
    CU_ASSERT_EQUAL_FATAL(pthread_create(&t, NULL, secmem_churn, NULL), 0);
    for (int i = 0; i < 300 && !hung; i++) {
        int status = 0;
        pid_t pid = fork();
        if (pid == 0) {
            pk_secbuf b = {0};
            alarm(2);
            if (pk_failed(pk_secbuf_set(&b, "in child", 8))) _exit(1);
            pk_secbuf_free(&b);
            _exit(0);
        }
        CU_ASSERT_FATAL(pid > 0);
        waitpid(pid, &status, 0);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) hung = 1;
    }
    churn_stop = 1;
    pthread_join(t, NULL);
    CU_ASSERT_EQUAL(hung, 0);
}

/* ---- lru_map ---- */
typedef struct {
    pk_lru_node node;
    char id[24];
    int pins;
    int *released; /* counts release/evict calls */
} lru_item;

static lru_item *lru_item_new(pk_lru_map *m, const char *id, int *released)
{
    lru_item *it = calloc(1, sizeof(*it));
    CU_ASSERT_PTR_NOT_NULL_FATAL(it);
    snprintf(it->id, sizeof(it->id), "%s", id);
    it->released = released;
    pk_lru_map_insert(m, &it->node, it->id, strlen(it->id));
    return it;
}

static lru_item *lru_find(pk_lru_map *m, const char *id)
{
    pk_lru_node *n = pk_lru_map_find(m, id, strlen(id));
    return n ? PK_LRU_ENTRY(n, lru_item, node) : NULL;
}

static void lru_release(pk_lru_node *n, void *ctx)
{
    lru_item *it = PK_LRU_ENTRY(n, lru_item, node);
    (void)ctx;
    if (it->released) (*it->released)++;
    free(it);
}

static bool lru_evict_unpinned(pk_lru_map *m, pk_lru_node *n, void *ctx)
{
    lru_item *it = PK_LRU_ENTRY(n, lru_item, node);
    char *log = ctx;
    if (it->pins > 0) return false;
    strcat(log, it->id);
    strcat(log, ",");
    pk_lru_map_remove(m, n);
    lru_release(n, NULL);
    return true;
}

static bool lru_evict_quiet(pk_lru_map *m, pk_lru_node *n, void *ctx)
{
    (void)ctx;
    pk_lru_map_remove(m, n);
    lru_release(n, NULL);
    return true;
}

static void test_util_lru_map_insert_find_remove(void)
{
    pk_lru_map m;
    int released = 0;
    lru_item *a, *b;

    CU_ASSERT_TRUE_FATAL(pk_ok(pk_lru_map_init(&m, 4, 0)));
    a = lru_item_new(&m, "key-a", &released);
    b = lru_item_new(&m, "key-b", &released);
    CU_ASSERT_PTR_EQUAL(lru_find(&m, "key-a"), a);
    CU_ASSERT_PTR_EQUAL(lru_find(&m, "key-b"), b);
    CU_ASSERT_PTR_NULL(lru_find(&m, "key-c"));
    CU_ASSERT_PTR_NULL(lru_find(&m, "key-"));  /* a prefix is another key */
    CU_ASSERT_EQUAL(pk_lru_map_count(&m), 2);
    CU_ASSERT_EQUAL(pk_lru_map_lru_count(&m), 0); /* not on the LRU until touched */
    pk_lru_map_remove(&m, &a->node);
    free(a);
    CU_ASSERT_PTR_NULL(lru_find(&m, "key-a"));
    CU_ASSERT_PTR_EQUAL(lru_find(&m, "key-b"), b);
    CU_ASSERT_EQUAL(pk_lru_map_count(&m), 1);
    pk_lru_map_destroy(&m, lru_release, NULL);
    CU_ASSERT_EQUAL(released, 1); /* destroy releases what is left */
}

static void test_util_lru_map_evicts_least_recent_unpinned(void)
{
    pk_lru_map m;
    char log[128] = "";
    int released = 0;
    const char *ids[] = {"k1", "k2", "k3", "k4"};
    lru_item *it[4];

    CU_ASSERT_TRUE_FATAL(pk_ok(pk_lru_map_init(&m, 0, 7)));
    for (size_t i = 0; i < 4; i++) {
        it[i] = lru_item_new(&m, ids[i], &released);
        pk_lru_map_touch(&m, &it[i]->node);
    }
    lru_item_new(&m, "untracked", &released); /* never touched: never evicted */
    pk_lru_map_touch(&m, &it[0]->node);        /* k1 is now the most recent */
    CU_ASSERT_PTR_EQUAL(pk_lru_map_oldest(&m), &it[1]->node);
    it[1]->pins = 1;                           /* k2 pinned: skipped */
    CU_ASSERT_EQUAL(pk_lru_map_evict(&m, 2, lru_evict_unpinned, log), 2);
    CU_ASSERT_STRING_EQUAL(log, "k3,k4,");
    CU_ASSERT_EQUAL(pk_lru_map_lru_count(&m), 2);
    CU_ASSERT_EQUAL(pk_lru_map_count(&m), 3);
    CU_ASSERT_PTR_NOT_NULL(lru_find(&m, "k1"));
    CU_ASSERT_PTR_NOT_NULL(lru_find(&m, "k2"));
    CU_ASSERT_PTR_NOT_NULL(lru_find(&m, "untracked"));
    /* Nothing evictable: all pinned, the list stays over capacity. */
    it[0]->pins = 1;
    CU_ASSERT_EQUAL(pk_lru_map_evict(&m, 0, lru_evict_unpinned, log), 0);
    CU_ASSERT_EQUAL(released, 2);
    pk_lru_map_destroy(&m, lru_release, NULL);
    CU_ASSERT_EQUAL(released, 5);
}

static void test_util_lru_map_grows_with_many_entries(void)
{
    enum { N = 20000 };
    pk_lru_map m;
    int released = 0;
    size_t b0;

    CU_ASSERT_TRUE_FATAL(pk_ok(pk_lru_map_init(&m, 16, 0)));
    b0 = m.nbuckets;
    for (int i = 0; i < N; i++) {
        char id[24];
        snprintf(id, sizeof(id), "id-%d", i);
        pk_lru_map_touch(&m, &lru_item_new(&m, id, &released)->node);
    }
    CU_ASSERT_TRUE(m.nbuckets > b0);
    CU_ASSERT_TRUE(m.count <= 2 * m.nbuckets);
    CU_ASSERT_EQUAL(pk_lru_map_count(&m), N);
    for (int i = 0; i < N; i += 97) {
        char id[24];
        snprintf(id, sizeof(id), "id-%d", i);
        CU_ASSERT_PTR_NOT_NULL(lru_find(&m, id));
    }
    /* Keep the newest 100; the others leave oldest first. */
    CU_ASSERT_EQUAL(pk_lru_map_evict(&m, 100, lru_evict_quiet, NULL), N - 100);
    CU_ASSERT_PTR_NULL(lru_find(&m, "id-0"));
    CU_ASSERT_PTR_NULL(lru_find(&m, "id-19899"));
    CU_ASSERT_PTR_NOT_NULL(lru_find(&m, "id-19900"));
    CU_ASSERT_PTR_NOT_NULL(lru_find(&m, "id-19999"));
    CU_ASSERT_EQUAL(released, N - 100);
    pk_lru_map_clear(&m, lru_release, NULL);
    CU_ASSERT_EQUAL(pk_lru_map_count(&m), 0);
    CU_ASSERT_PTR_NULL(lru_find(&m, "id-19999"));
    pk_lru_map_destroy(&m, lru_release, NULL);
    CU_ASSERT_EQUAL(released, N);
}

int main(void)
{
    CU_pSuite s;
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    s = CU_add_suite("util", NULL, NULL);
    CU_add_test(s, "test_util_base64_round_trip", test_util_base64_round_trip);
    CU_add_test(s, "test_util_base64_rejects_malformed", test_util_base64_rejects_malformed);
    CU_add_test(s, "test_util_base64_rejects_nonzero_pad_bits", test_util_base64_rejects_nonzero_pad_bits);
    CU_add_test(s, "test_util_uuid_format_and_parse", test_util_uuid_format_and_parse);
    CU_add_test(s, "test_util_secbuf_grows_and_wipes", test_util_secbuf_grows_and_wipes);
    CU_add_test(s, "test_util_secmem_reuses_wiped_chunks", test_util_secmem_reuses_wiped_chunks);
    CU_add_test(s, "test_util_json_out_escapes", test_util_json_out_escapes);
    CU_add_test(s, "test_util_json_escape_keeps_output_valid", test_util_json_escape_keeps_output_valid);
    CU_add_test(s, "test_util_buf_wipe_leaves_no_copy", test_util_buf_wipe_leaves_no_copy);
    CU_add_test(s, "test_util_error_names_and_exit_codes", test_util_error_names_and_exit_codes);
    CU_add_test(s, "test_util_ct_equal_and_kwp_vector", test_util_ct_equal_and_kwp_vector);
    CU_add_test(s, "test_util_wipe_and_ct_equal_without_crypto", test_util_wipe_and_ct_equal_without_crypto);
    CU_add_test(s, "test_util_sha256_digest_reuses_context", test_util_sha256_digest_reuses_context);
    CU_add_test(s, "test_util_group_commit_coalesces_concurrent_tickets",
                test_util_group_commit_coalesces_concurrent_tickets);
    CU_add_test(s, "test_util_group_commit_failure_is_sticky", test_util_group_commit_failure_is_sticky);
    CU_add_test(s, "test_util_flusher_syncs_within_the_window", test_util_flusher_syncs_within_the_window);
    CU_add_test(s, "test_util_fork_generation_changes_in_child", test_util_fork_generation_changes_in_child);
    CU_add_test(s, "test_util_secmem_fork_while_pool_locked", test_util_secmem_fork_while_pool_locked);
    CU_add_test(s, "test_util_lru_map_insert_find_remove", test_util_lru_map_insert_find_remove);
    CU_add_test(s, "test_util_lru_map_evicts_least_recent_unpinned", test_util_lru_map_evicts_least_recent_unpinned);
    CU_add_test(s, "test_util_lru_map_grows_with_many_entries", test_util_lru_map_grows_with_many_entries);
    return pk_run_suites();
}
