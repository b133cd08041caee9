/*
 * p11kms-bench: throughput of the public API next to baselines measured in
 * the same run on the same token, printed as ratios because the machines
 * are shared and noisy.
 *
 *   raw_per_s   the minimal PKCS#11 call sequence for the same work, on the
 *               same session-object key p11kms uses (the best raw case)
 *   evp_per_s   OpenSSL EVP in-process, for scale (keys outside an HSM)
 *
 * The bench is a client like any other: it links the exported library
 * (and libp11kms-util), and its raw baseline loads the PKCS#11 module with
 * p11-kit itself, finds the CMK version by its CKA_LABEL
 * ("p11kms:cmk:<id>:v1") and copies it into a session object, as p11kms
 * does. Knobs are switched the way an operator switches them: handles
 * opened on p11kms.conf files that differ in one line (store_sync,
 * cache_ttl_s/cache_max_*, audit_sync). The audit trail cannot be turned
 * off by configuration, so "audit" compares batch with always.
 *
 * Usage: bench/p11kms-bench [--json] [--seconds S] [--keys N] [--secrets N]
 * (--secrets: how many secrets for the large-store latency, default 100000)
 * Uses $P11KMS_CONFIG (with $SOFTHSM2_CONF) when set, else makes a fresh
 * SoftHSM token in a temporary folder. Never writes to the system token.
 * With $P11KMS_CONFIG the figures that need another p11kms.conf (store
 * batch, secret cache, audit always) are skipped.
 */
#include "config.h"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <p11-kit/p11-kit.h>
#include <p11-kit/pkcs11.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "p11kms/p11kms.h"
#include "util/bytes.h"
#include "util/codec.h"
#include "util/json_out.h"

#define ADMIN "arn:aws:iam::111122223333:role/key-admin"
#define OPERATOR "arn:aws:iam::111122223333:role/flink-operator"
#define MAX_ROWS 32
#define MAX_CFGS 8
/* The blob layout's sizes (docs/FORMAT.md): GCM IV and tag, and the AAD
 * p11kms binds (the blob header plus a context digest). */
#define GCM_IV_LEN 12
#define GCM_TAG_LEN 16
#define BLOB_AAD_LEN (34 + 32)
#define STORE_MAC_LABEL "p11kms:sys:store-mac" /* the store's record-MAC key */

typedef struct row {
    const char *op;
    int threads;
    double api, raw, evp;
} row;

static struct {
    double seconds;
    unsigned keys;
    bool json;
    p11kms_config *cfg;
    p11kms *h;   /* the handle the measured calls use */
    p11kms *base; /* opened on the bench's p11kms.conf */
    /* raw PKCS#11, loaded by the bench itself */
    CK_FUNCTION_LIST *fn;
    CK_SLOT_ID slot;
    CK_OBJECT_HANDLE cmk, mac; /* session-object copies of the CMK version and the record-MAC key */
    p11kms_caller *admin, *oper;
    char *key;
    row rows[MAX_ROWS];
    size_t nrows;
    char tmpdir[256];
    char conftext[1024]; /* the bench's p11kms.conf without its audit line */
    p11kms_config *cfgs[MAX_CFGS]; /* of the variant handles */
    size_t ncfgs;
} B;

static p11kms *variant(const char *name, const char *lines);

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
    fprintf(stderr, "p11kms-bench: %s: %s\n", what, p11kms_last_error());
    exit(1);
}

/* ---- timing harness: run fn in batches until the time is up, in N threads ---- */

typedef bool (*op_fn)(void *ctx);
typedef void *(*ctx_new_fn)(void *arg); /* per-thread state */
typedef void (*ctx_free_fn)(void *ctx);

typedef struct work {
    op_fn fn;
    void *ctx;
    double seconds;
    unsigned long ops;
    bool failed;
} work;

static void *run_work(void *arg)
{
    work *w = arg;
    double end = now_s() + w->seconds;
    while (now_s() < end) {
        for (int i = 0; i < 32; i++) {
            if (!w->fn(w->ctx)) {
                w->failed = true;
                return NULL;
            }
        }
        w->ops += 32;
    }
    return NULL;
}

static double measure(int threads, op_fn fn, ctx_new_fn mk, ctx_free_fn fr, void *arg)
{
    pthread_t t[8];
    work w[8];
    double start, elapsed;
    unsigned long total = 0;
    for (int i = 0; i < threads; i++) {
        memset(&w[i], 0, sizeof(w[i]));
        w[i].fn = fn;
        w[i].ctx = mk(arg);
        w[i].seconds = B.seconds;
    }
    start = now_s();
    for (int i = 0; i < threads; i++) pthread_create(&t[i], NULL, run_work, &w[i]);
    for (int i = 0; i < threads; i++) pthread_join(t[i], NULL);
    elapsed = now_s() - start;
    for (int i = 0; i < threads; i++) {
        if (w[i].failed) die("benchmark operation failed");
        total += w[i].ops;
        fr(w[i].ctx);
    }
    return (double)total / elapsed;
}

/* ---- API operations ---- */

typedef struct api_ctx {
    size_t len;
    uint8_t pt[4096];
    p11kms_buf *blob; /* a blob to decrypt */
    bool datakey;
} api_ctx;

typedef struct api_arg {
    size_t len;
    bool datakey; /* make the blob with generate-data-key */
} api_arg;

static const p11kms_kv bench_ctx[] = {{"app", "flink"}};

static void *api_ctx_new(void *arg)
{
    api_arg *a = arg;
    api_ctx *c = calloc(1, sizeof(*c));
    c->len = a->len;
    c->datakey = a->datakey;
    RAND_bytes(c->pt, (int)sizeof(c->pt));
    if (a->datakey) {
        if (p11kms_generate_data_key(B.h, B.oper, B.key, bench_ctx, 1, 32, NULL, &c->blob) != P11KMS_OK)
            die("generate-data-key");
    } else if (p11kms_encrypt(B.h, B.oper, B.key, bench_ctx, 1, c->pt, c->len, &c->blob) != P11KMS_OK) {
        die("encrypt");
    }
    return c;
}

static void api_ctx_free(void *ctx)
{
    api_ctx *c = ctx;
    p11kms_buf_free(c->blob);
    free(c);
}

static bool api_encrypt(void *ctx)
{
    api_ctx *c = ctx;
    p11kms_buf *blob = NULL;
    bool ok = p11kms_encrypt(B.h, B.oper, B.key, bench_ctx, 1, c->pt, c->len, &blob) == P11KMS_OK;
    p11kms_buf_free(blob);
    return ok;
}

static bool api_decrypt(void *ctx)
{
    api_ctx *c = ctx;
    p11kms_buf *pt = NULL;
    bool ok = p11kms_decrypt(B.h, B.oper, bench_ctx, 1, p11kms_buf_data(c->blob), p11kms_buf_len(c->blob), &pt,
                             NULL) == P11KMS_OK;
    p11kms_buf_free(pt);
    return ok;
}

static bool api_datakey(void *ctx)
{
    p11kms_buf *pt = NULL, *blob = NULL;
    bool ok = p11kms_generate_data_key(B.h, B.oper, B.key, bench_ctx, 1, 32, &pt, &blob) == P11KMS_OK;
    (void)ctx;
    p11kms_buf_free(pt);
    p11kms_buf_free(blob);
    return ok;
}

/* ---- raw PKCS#11: the same work with nothing around it ---- */

typedef struct raw_ctx {
    CK_SESSION_HANDLE s;
    uint8_t iv[GCM_IV_LEN];
    uint8_t aad[BLOB_AAD_LEN];
    uint8_t pt[4096], ct[4096 + GCM_TAG_LEN];
    size_t len, ct_len;
    bool datakey;
} raw_ctx;

static void gcm(CK_GCM_PARAMS *g, raw_ctx *c)
{
    memset(g, 0, sizeof(*g));
    g->iv_ptr = c->iv;
    g->iv_len = GCM_IV_LEN;
    g->iv_bits = GCM_IV_LEN * 8;
    g->aad_ptr = c->aad;
    g->aad_len = sizeof(c->aad);
    g->tag_bits = GCM_TAG_LEN * 8;
}

static CK_RV raw_encrypt_once(raw_ctx *c, const uint8_t *pt, size_t len)
{
    CK_GCM_PARAMS g;
    CK_MECHANISM m = {CKM_AES_GCM, &g, sizeof(g)};
    CK_ULONG out = sizeof(c->ct);
    CK_RV rv;
    c->iv[11]++; /* a counter: IV generation is not PKCS#11 work */
    gcm(&g, c);
    rv = B.fn->C_EncryptInit(c->s, &m, B.cmk);
    if (rv == CKR_OK) rv = B.fn->C_Encrypt(c->s, (CK_BYTE_PTR)pt, (CK_ULONG)len, c->ct, &out);
    c->ct_len = out;
    return rv;
}

/* The slot whose token label is the config's pkcs11:token=LABEL. */
static CK_SLOT_ID raw_slot(const char *uri)
{
    const char *t = uri != NULL ? strstr(uri, "token=") : NULL;
    char want[33];
    CK_SLOT_ID slots[64];
    CK_ULONG n = 64;
    size_t len;
    if (t == NULL) die("raw baseline: the token URI names no token= label");
    t += strlen("token=");
    len = strcspn(t, ";?");
    if (len > 32) die("raw baseline: token label too long");
    memset(want, ' ', 32);
    memcpy(want, t, len);
    want[32] = '\0';
    if (B.fn->C_GetSlotList(CK_TRUE, slots, &n) != CKR_OK) die("raw baseline: C_GetSlotList");
    for (CK_ULONG i = 0; i < n; i++) {
        CK_TOKEN_INFO ti;
        if (B.fn->C_GetTokenInfo(slots[i], &ti) == CKR_OK && memcmp(ti.label, want, 32) == 0) return slots[i];
    }
    die("raw baseline: token not found");
    return 0;
}

/* A session-object copy of the token's secret key labelled label, as p11kms serves keys. */
static CK_OBJECT_HANDLE raw_session_key(CK_SESSION_HANDLE s, const char *label)
{
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    CK_ATTRIBUTE find[] = {{CKA_CLASS, &cls, sizeof(cls)}, {CKA_TOKEN, &yes, sizeof(yes)},
                           {CKA_LABEL, (void *)label, strlen(label)}};
    CK_ATTRIBUTE copy[] = {{CKA_TOKEN, &no, sizeof(no)}};
    CK_OBJECT_HANDLE obj = CK_INVALID_HANDLE, out = CK_INVALID_HANDLE;
    CK_ULONG n = 0;
    if (B.fn->C_FindObjectsInit(s, find, 3) != CKR_OK) die("raw baseline: C_FindObjectsInit");
    CK_RV rv = B.fn->C_FindObjects(s, &obj, 1, &n);
    (void)B.fn->C_FindObjectsFinal(s);
    if (rv != CKR_OK || n != 1) die("raw baseline: key label not found");
    if (B.fn->C_CopyObject(s, obj, copy, 1, &out) != CKR_OK) die("raw baseline: C_CopyObject");
    return out;
}

static CK_SESSION_HANDLE raw_session(void)
{
    CK_SESSION_HANDLE s;
    if (B.fn->C_OpenSession(B.slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &s) != CKR_OK)
        die("raw baseline: C_OpenSession");
    return s;
}

/*
 * Load the module with p11-kit, as p11kms does. p11kms has initialised it
 * and logged in already in this process: sessions of one application share
 * the login (PKCS#11 v2.40 section 5.6), so the bench needs no PIN.
 */
static void raw_setup(void)
{
    CK_C_INITIALIZE_ARGS args;
    CK_SESSION_HANDLE s;
    char label[96];
    CK_RV rv;
    memset(&args, 0, sizeof(args));
    args.flags = CKF_OS_LOCKING_OK;
    B.fn = p11_kit_module_load(p11kms_config_get(B.cfg, "module"), 0);
    if (B.fn == NULL) die("raw baseline: p11_kit_module_load");
    rv = B.fn->C_Initialize(&args);
    if (rv != CKR_OK && rv != CKR_CRYPTOKI_ALREADY_INITIALIZED) die("raw baseline: C_Initialize");
    B.slot = raw_slot(p11kms_config_get(B.cfg, "token"));
    s = raw_session();
    snprintf(label, sizeof(label), "p11kms:cmk:%s:v1", B.key);
    B.cmk = raw_session_key(s, label);
    B.mac = raw_session_key(s, STORE_MAC_LABEL);
    /* The session objects outlive this session: a session stays open below. */
}

static void *raw_ctx_new(void *arg)
{
    api_arg *a = arg;
    raw_ctx *c = calloc(1, sizeof(*c));
    c->len = a->datakey ? 32 : a->len;
    c->datakey = a->datakey;
    RAND_bytes(c->pt, (int)sizeof(c->pt));
    /* Each thread holds its own session, as p11kms's threads do. */
    c->s = raw_session();
    if (raw_encrypt_once(c, c->pt, c->len) != CKR_OK) die("raw encrypt");
    return c;
}

static void raw_ctx_free(void *ctx)
{
    raw_ctx *c = ctx;
    (void)B.fn->C_CloseSession(c->s);
    free(c);
}

static bool raw_encrypt(void *ctx)
{
    raw_ctx *c = ctx;
    return raw_encrypt_once(c, c->pt, c->len) == CKR_OK;
}

static bool raw_datakey(void *ctx)
{
    raw_ctx *c = ctx;
    uint8_t dk[32];
    if (B.fn->C_GenerateRandom(c->s, dk, sizeof(dk)) != CKR_OK) return false;
    return raw_encrypt_once(c, dk, sizeof(dk)) == CKR_OK;
}

/*
 * What a stored secret needs from the token at the least: the GCM encrypt
 * of its value, and the HMAC of its store record (about 300 bytes with the
 * ciphertext), which every record carries (docs/STORE.md, Integrity).
 */
#define RECORD_MAC_INPUT_LEN 300
static bool raw_store(void *ctx)
{
    raw_ctx *c = ctx;
    CK_MECHANISM m = {CKM_SHA256_HMAC, NULL, 0};
    uint8_t mac[32];
    CK_ULONG n = sizeof(mac);
    CK_RV rv = raw_encrypt_once(c, c->pt, c->len);
    if (rv == CKR_OK) rv = B.fn->C_SignInit(c->s, &m, B.mac);
    if (rv == CKR_OK) rv = B.fn->C_Sign(c->s, c->pt, RECORD_MAC_INPUT_LEN, mac, &n);
    return rv == CKR_OK;
}

static bool raw_decrypt(void *ctx)
{
    raw_ctx *c = ctx;
    CK_GCM_PARAMS g;
    CK_MECHANISM m = {CKM_AES_GCM, &g, sizeof(g)};
    uint8_t out[4096 + GCM_TAG_LEN];
    CK_ULONG n = sizeof(out);
    CK_RV rv;
    gcm(&g, c);
    rv = B.fn->C_DecryptInit(c->s, &m, B.cmk);
    if (rv == CKR_OK) rv = B.fn->C_Decrypt(c->s, c->ct, (CK_ULONG)c->ct_len, out, &n);
    return rv == CKR_OK;
}

/* ---- OpenSSL EVP, for scale ---- */

typedef struct evp_ctx {
    EVP_CIPHER_CTX *c;
    uint8_t key[32], iv[12], pt[4096], ct[4096 + 16], tag[16];
    size_t len;
    bool decrypt;
} evp_ctx;

static void *evp_new(void *arg)
{
    api_arg *a = arg;
    evp_ctx *e = calloc(1, sizeof(*e));
    e->c = EVP_CIPHER_CTX_new();
    e->len = a->datakey ? 32 : a->len;
    RAND_bytes(e->key, sizeof(e->key));
    RAND_bytes(e->pt, sizeof(e->pt));
    return e;
}

static void evp_free(void *ctx)
{
    evp_ctx *e = ctx;
    EVP_CIPHER_CTX_free(e->c);
    free(e);
}

static bool evp_encrypt(void *ctx)
{
    evp_ctx *e = ctx;
    int n = 0, f = 0;
    e->iv[11]++;
    return EVP_EncryptInit_ex(e->c, EVP_aes_256_gcm(), NULL, e->key, e->iv) == 1 &&
           EVP_EncryptUpdate(e->c, NULL, &n, (const uint8_t *)"p11kms-aad-of-about-forty-bytes-long....", 40) == 1 &&
           EVP_EncryptUpdate(e->c, e->ct, &n, e->pt, (int)e->len) == 1 && EVP_EncryptFinal_ex(e->c, e->ct + n, &f) == 1 &&
           EVP_CIPHER_CTX_ctrl(e->c, EVP_CTRL_GCM_GET_TAG, 16, e->tag) == 1;
}

/* ---- the report ---- */

static void add_row(const char *op, int threads, double api, double raw, double evp)
{
    row *r = &B.rows[B.nrows++];
    r->op = op;
    r->threads = threads;
    r->api = api;
    r->raw = raw;
    r->evp = evp;
    if (!B.json)
        printf("%-18s %2d thr  api %9.0f/s  raw %9.0f/s  ratio %.2f   (OpenSSL EVP %9.0f/s)\n", op, threads, api,
               raw, raw > 0 ? api / raw : 0.0, evp);
}

static void bench_op(const char *name, size_t len, op_fn api_fn, op_fn raw_fn, bool datakey)
{
    api_arg a = {len, datakey};
    double saved = B.seconds;
    /* Warm up: nonce reservations grow to their steady size, caches fill. */
    B.seconds = 0.3;
    (void)measure(1, api_fn, api_ctx_new, api_ctx_free, &a);
    B.seconds = saved;
    for (int threads = 1; threads <= 2; threads++) {
        /* Interleave raw and API so drift on a shared machine hits both alike. */
        double raw = measure(threads, raw_fn, raw_ctx_new, raw_ctx_free, &a);
        double api = measure(threads, api_fn, api_ctx_new, api_ctx_free, &a);
        double raw2 = measure(threads, raw_fn, raw_ctx_new, raw_ctx_free, &a);
        double evp = threads == 1 ? measure(1, evp_encrypt, evp_new, evp_free, &a) : 0;
        add_row(name, threads, api, (raw + raw2) / 2, evp);
    }
}

/* ---- secrets: get and store through the SecretStore ---- */

#define SECRET_VALUE "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" /* 64 bytes */

typedef struct secret_set {
    char **ids;
    size_t n, next;
} secret_set;

static secret_set S1, S1000;

static char *put_secret(const char *ns)
{
    p11kms_secret_map *m = NULL;
    char *id = NULL;
    if (p11kms_secret_map_new(&m) != P11KMS_OK || p11kms_secret_map_set(m, "password", SECRET_VALUE) != P11KMS_OK)
        die("secret map");
    if (p11kms_secret_put(B.h, B.oper, ns, B.key, m, &id) != P11KMS_OK) die("secret put");
    p11kms_secret_map_free(m);
    return id;
}

static void fill(secret_set *set, size_t n, size_t namespaces)
{
    set->ids = calloc(n, sizeof(*set->ids));
    set->n = n;
    for (size_t i = 0; i < n; i++) {
        char ns[32];
        snprintf(ns, sizeof(ns), "bench-%zu", namespaces > 1 ? i % namespaces : 0);
        set->ids[i] = put_secret(ns);
    }
}

static void *set_ctx(void *arg) { return arg; }
static void no_free(void *ctx) { (void)ctx; }

static bool api_get_secret(void *ctx)
{
    secret_set *set = ctx;
    p11kms_secret_map *m = NULL;
    bool ok = p11kms_secret_get(B.h, B.oper, set->ids[set->next++ % set->n], &m) == P11KMS_OK;
    p11kms_secret_map_free(m);
    return ok;
}

static bool api_store_secret(void *ctx)
{
    char *id = put_secret("bench-0");
    (void)ctx;
    p11kms_free(id);
    return id != NULL;
}

typedef struct secret_figures {
    double get, get_raw, store, store_batch, store_raw, get_1000ns, get_cached, us_1k, us_100k;
} secret_figures;

/* Mean latency of gets spread over every secret in the set (microseconds). */
static double get_latency_us(secret_set *set, size_t samples)
{
    double t0 = now_s();
    for (size_t i = 0; i < samples; i++)
        if (!api_get_secret(set)) die("secret get");
    return (now_s() - t0) * 1e6 / (double)samples;
}

static void bench_secrets(secret_figures *f, size_t big)
{
    api_arg raw64 = {64 + 16, false}; /* the encoded map is the value plus its framing */
    p11kms *batch, *cached;
    fill(&S1, 100, 1);
    (void)measure(1, api_get_secret, set_ctx, no_free, &S1); /* warm */
    f->get = measure(1, api_get_secret, set_ctx, no_free, &S1);
    f->get_raw = measure(1, raw_decrypt, raw_ctx_new, raw_ctx_free, &raw64);
    f->store = measure(1, api_store_secret, set_ctx, no_free, &S1);
    f->store_raw = measure(1, raw_store, raw_ctx_new, raw_ctx_free, &raw64);
    /* The same stores with store_sync = batch: durable within the flusher's window, not before returning. */
    if ((batch = variant("batch", "store_sync = batch\n")) != NULL) {
        B.h = batch;
        f->store_batch = measure(1, api_store_secret, set_ctx, no_free, &S1);
        B.h = B.base;
        p11kms_close(batch);
    }
    add_row("get_secret", 1, f->get, f->get_raw, 0);
    add_row("store_secret", 1, f->store, f->store_raw, 0);
    add_row("store_secret_batch", 1, f->store_batch, f->store_raw, 0);
    fill(&S1000, 1000, 1000);
    (void)measure(1, api_get_secret, set_ctx, no_free, &S1000);
    f->get_1000ns = measure(1, api_get_secret, set_ctx, no_free, &S1000);
    add_row("get_secret_1000ns", 1, f->get_1000ns, f->get_raw, 0);
    cached = variant("cached", "cache_ttl_s = 60\ncache_max_entries = 1000\ncache_max_uses = 1000000\n");
    if (cached != NULL) {
        B.h = cached;
        (void)measure(1, api_get_secret, set_ctx, no_free, &S1);
        f->get_cached = measure(1, api_get_secret, set_ctx, no_free, &S1);
        B.h = B.base;
        p11kms_close(cached);
    }
    /* Latency against store size. The row cache (PK_ROWS_MAX rows per handle)
     * has no p11kms.conf key, so it stays on: 1000 secrets fit in it, the
     * large set does not (BENCHMARKS.md). */
    f->us_1k = get_latency_us(&S1000, 5000);
    if (big > 0) {
        secret_set many;
        fill(&many, big, 10);
        f->us_100k = get_latency_us(&many, 5000);
        for (size_t i = 0; i < many.n; i++) free(many.ids[i]);
        free(many.ids);
    }
    if (!B.json)
        printf("secrets: get with cache %.0f/s; get latency %.1f us with 1000 secrets, %.1f us with %zu more\n",
               f->get_cached, f->us_1k, f->us_100k, big);
}

/* ---- key changes: disable and enable in turn, each synced whatever store_sync says ---- */

static bool api_key_toggle(void *ctx)
{
    static __thread bool off;
    (void)ctx;
    off = !off;
    return (off ? p11kms_key_disable(B.h, B.admin, B.key) : p11kms_key_enable(B.h, B.admin, B.key)) == P11KMS_OK;
}

/* A key change the HSM takes no part in: the same policy put again (a new record revision each time). */
static bool api_put_policy(void *ctx)
{
    static const char policy[] =
        "{\"Version\":\"2012-10-17\",\"Statement\":["
        "{\"Sid\":\"a\",\"Effect\":\"Allow\",\"Principal\":{\"AWS\":\"" ADMIN "\"},\"Action\":\"kms:*\",\"Resource\":\"*\"},"
        "{\"Sid\":\"o\",\"Effect\":\"Allow\",\"Principal\":{\"AWS\":\"" OPERATOR "\"},"
        "\"Action\":[\"kms:Encrypt\",\"kms:Decrypt\",\"kms:GenerateDataKey\"],\"Resource\":\"*\"}]}";
    (void)ctx;
    return p11kms_key_put_policy(B.h, B.admin, B.key, policy, 0) == P11KMS_OK;
}

/* ---- audit cost: the same encrypt with audit_sync batch and always ---- */

typedef struct audit_figures {
    double batch, always;         /* encrypt_64 */
    double get_batch, get_always; /* get_secret */
} audit_figures;

/* Measure encrypt_64, and get_secret, on handle h. */
static double encrypt_on(p11kms *h, double *get)
{
    api_arg a = {64, false};
    double rate;
    B.h = h;
    rate = measure(1, api_encrypt, api_ctx_new, api_ctx_free, &a);
    *get = measure(1, api_get_secret, set_ctx, no_free, &S1);
    B.h = B.base;
    return rate;
}

/* The trail cannot be turned off by configuration (p11kms needs an audit
 * log), so the figure is what audit_sync = always costs over batch. */
static void bench_audit(audit_figures *f)
{
    double batch2, get_batch2;
    p11kms *always = variant("always", "audit_sync = always\n");
    if (always == NULL) return;
    if (S1.n == 0) fill(&S1, 100, 1);
    /* Batch twice, around always, so drift hits both alike. */
    f->batch = encrypt_on(B.base, &f->get_batch);
    f->always = encrypt_on(always, &f->get_always);
    batch2 = encrypt_on(B.base, &get_batch2);
    f->batch = (f->batch + batch2) / 2;
    f->get_batch = (f->get_batch + get_batch2) / 2;
    p11kms_close(always);
    if (!B.json)
        printf("audit (encrypt_64, 1 thread): batch %.0f/s, always %.0f/s (ratio %.2f)\n"
               "audit (get_secret, 1 thread): batch %.0f/s, always %.0f/s (ratio %.2f)\n",
               f->batch, f->always, f->always / f->batch, f->get_batch, f->get_always, f->get_always / f->get_batch);
}

/* ---- set-up ---- */

static void write_file(const char *path, const char *text, mode_t mode)
{
    FILE *f = fopen(path, "w");
    if (f == NULL || fputs(text, f) < 0 || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
    chmod(path, mode);
}

static void make_token(void)
{
    char path[512], text[1200], pin[33];
    uint8_t raw[16];
    snprintf(B.tmpdir, sizeof(B.tmpdir), "/tmp/p11kms-bench-XXXXXX");
    if (mkdtemp(B.tmpdir) == NULL) die("mkdtemp");
    snprintf(path, sizeof(path), "%s/tokens", B.tmpdir);
    mkdir(path, 0700);
    snprintf(text, sizeof(text), "directories.tokendir = %s/tokens\nobjectstore.backend = file\nlog.level = ERROR\n",
             B.tmpdir);
    snprintf(path, sizeof(path), "%s/softhsm2.conf", B.tmpdir);
    write_file(path, text, 0600);
    setenv("SOFTHSM2_CONF", path, 1);
    RAND_bytes(raw, sizeof(raw));
    pk_hex_encode(raw, sizeof(raw), pin);
    snprintf(path, sizeof(path), "%s/user.pin", B.tmpdir);
    write_file(path, pin, 0600);
    /* The SO PIN is the user PIN: a throw-away token. */
    if (p11kms_token_init(P11KMS_SOFTHSM_MODULE, "bench", path, path) != P11KMS_OK) die("token init");
    snprintf(B.conftext, sizeof(B.conftext),
             "module = %s\ntoken = pkcs11:token=bench\npin = file:user.pin\nstore = sqlite:p11kms.db\n",
             P11KMS_SOFTHSM_MODULE);
    snprintf(text, sizeof(text), "%saudit = audit.log\n", B.conftext);
    snprintf(path, sizeof(path), "%s/p11kms.conf", B.tmpdir);
    write_file(path, text, 0600);
    if (p11kms_config_load(path, &B.cfg) != P11KMS_OK) die("config");
}

/*
 * A handle on the bench's p11kms.conf plus lines (one knob), with its own
 * audit log: how an operator switches a knob. NULL with $P11KMS_CONFIG,
 * whose folder the bench does not write to.
 */
static p11kms *variant(const char *name, const char *lines)
{
    char path[512], text[2048];
    p11kms_config *cfg = NULL;
    p11kms *h = NULL;
    if (B.tmpdir[0] == '\0') return NULL;
    snprintf(text, sizeof(text), "%saudit = audit-%s.log\n%s", B.conftext, name, lines);
    snprintf(path, sizeof(path), "%s/p11kms-%s.conf", B.tmpdir, name);
    write_file(path, text, 0600);
    if (p11kms_config_load(path, &cfg) != P11KMS_OK) die(name);
    if (p11kms_open(cfg, &h) != P11KMS_OK || B.ncfgs == MAX_CFGS) die(name);
    B.cfgs[B.ncfgs++] = cfg; /* freed at exit, after every handle on it is closed */
    return h;
}

static char *create_key(void)
{
    const char *admins[] = {ADMIN}, *ops[] = {OPERATOR};
    p11kms_key_spec spec;
    char *id = NULL;
    memset(&spec, 0, sizeof(spec));
    spec.struct_size = sizeof(spec);
    spec.admins = admins;
    spec.nadmins = 1;
    spec.operators = ops;
    spec.noperators = 1;
    if (p11kms_key_create(B.h, B.admin, &spec, &id) != P11KMS_OK) die("key create");
    return id;
}

/* Key create cost and open/first-use cost with many keys in the token. */
static void bench_many_keys(double *create_ms, double *open_ms, double *first_use_ms)
{
    double t0, t_last = 0;
    p11kms *h2 = NULL;
    p11kms_buf *blob = NULL;
    char *last = NULL;
    unsigned timed = B.keys < 100 ? B.keys : 100;

    for (unsigned i = 0; i < B.keys; i++) {
        char *id;
        if (i == B.keys - timed) t_last = now_s();
        id = create_key();
        free(last);
        last = id;
    }
    *create_ms = (now_s() - t_last) * 1000 / timed;
    t0 = now_s();
    if (p11kms_open(B.cfg, &h2) != P11KMS_OK) die("open");
    *open_ms = (now_s() - t0) * 1000;
    t0 = now_s();
    if (p11kms_encrypt(h2, B.oper, last, NULL, 0, (const uint8_t *)"x", 1, &blob) != P11KMS_OK) die("first use");
    *first_use_ms = (now_s() - t0) * 1000;
    p11kms_buf_free(blob);
    p11kms_close(h2);
    free(last);
}

static double bench_policy(void)
{
    char path[512];
    const char *top = getenv("P11KMS_TOP_SRCDIR");
    pk_buf text = {0};
    p11kms_policy *p = NULL;
    FILE *f;
    char chunk[4096];
    size_t n;
    static const p11kms_kv ctx[] = {{"app", "flink"}, {"tenant", "t-42"}};
    static const p11kms_kv extra[] = {{"aws:SourceIp", "10.1.2.3"}, {"kms:RequestAlias", "alias/flink-state"}};
    p11kms_policy_request req;
    unsigned long count = 0;
    double start, end;

    snprintf(path, sizeof(path), "%s/tests/vectors/policy/bench-10-statements.json", top ? top : P11KMS_BENCH_SRCDIR);
    f = fopen(path, "r");
    if (f == NULL) {
        snprintf(path, sizeof(path), "%s/../tests/vectors/policy/bench-10-statements.json", top ? top : ".");
        f = fopen(path, "r");
    }
    if (f == NULL) return 0;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) PK_IGNORE(pk_buf_append(&text, chunk, n));
    fclose(f);
    if (p11kms_policy_compile((const char *)text.data, text.len, &p) != P11KMS_OK) die("bench policy");
    memset(&req, 0, sizeof(req));
    req.struct_size = sizeof(req);
    req.principal = OPERATOR;
    req.action = "kms:Encrypt";
    req.resource = "arn:aws:kms:local:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
    req.context = ctx;
    req.ncontext = 2;
    req.request_context = extra;
    req.nrequest_context = 2;
    if (p11kms_policy_parse_time("2024-06-15T12:00:00Z", &req.time_ms) != P11KMS_OK) die("policy time");
    start = now_s();
    end = start + B.seconds;
    while (now_s() < end) {
        for (int i = 0; i < 1000; i++) {
            /* The public call: the decision comes back as JSON ({"decision":"Allowed",...}). */
            char *res = NULL;
            if (p11kms_policy_eval(p, &req, NULL, 0, &res) != P11KMS_OK || strstr(res, "\"Allowed\"") == NULL)
                die("policy eval");
            p11kms_free(res);
        }
        count += 1000;
    }
    p11kms_policy_free(p);
    pk_buf_free(&text);
    return (double)count / (now_s() - start);
}

static void print_json(double create_ms, double open_ms, double first_use_ms, double evals, const audit_figures *af,
                       const secret_figures *sf)
{
    pk_buf b = {0};
    pk_json_out j;
    pk_jo_init(&j, &b);
    pk_jo_obj_begin(&j);
    pk_jo_key(&j, "ops");
    pk_jo_arr_begin(&j);
    for (size_t i = 0; i < B.nrows; i++) {
        row *r = &B.rows[i];
        pk_jo_obj_begin(&j);
        pk_jo_kstr(&j, "op", r->op);
        pk_jo_kint(&j, "threads", r->threads);
        pk_jo_key(&j, "api_per_s");
        pk_jo_double(&j, r->api);
        pk_jo_key(&j, "raw_per_s");
        pk_jo_double(&j, r->raw);
        pk_jo_key(&j, "ratio");
        pk_jo_double(&j, r->raw > 0 ? r->api / r->raw : 0);
        if (r->evp > 0) {
            pk_jo_key(&j, "evp_per_s");
            pk_jo_double(&j, r->evp);
        }
        pk_jo_obj_end(&j);
    }
    pk_jo_arr_end(&j);
    pk_jo_kint(&j, "keys_in_token", B.keys);
    pk_jo_key(&j, "key_create_ms");
    pk_jo_double(&j, create_ms);
    pk_jo_key(&j, "open_ms_1000_keys");
    pk_jo_double(&j, open_ms);
    pk_jo_key(&j, "first_use_ms_1000_keys");
    pk_jo_double(&j, first_use_ms);
    pk_jo_key(&j, "policy_evals_per_s");
    pk_jo_double(&j, evals);
    pk_jo_key(&j, "get_secret_cached");
    pk_jo_double(&j, sf->get_cached);
    pk_jo_key(&j, "get_secret_us_1k");
    pk_jo_double(&j, sf->us_1k);
    pk_jo_key(&j, "get_secret_us_100k");
    pk_jo_double(&j, sf->us_100k);
    pk_jo_key(&j, "audit");
    pk_jo_obj_begin(&j);
    pk_jo_key(&j, "batch_per_s");
    pk_jo_double(&j, af->batch);
    pk_jo_key(&j, "always_per_s");
    pk_jo_double(&j, af->always);
    pk_jo_key(&j, "always_ratio");
    pk_jo_double(&j, af->batch > 0 ? af->always / af->batch : 0);
    pk_jo_key(&j, "get_secret_batch_per_s");
    pk_jo_double(&j, af->get_batch);
    pk_jo_key(&j, "get_secret_always_per_s");
    pk_jo_double(&j, af->get_always);
    pk_jo_key(&j, "get_secret_always_ratio");
    pk_jo_double(&j, af->get_batch > 0 ? af->get_always / af->get_batch : 0);
    pk_jo_obj_end(&j);
    pk_jo_obj_end(&j);
    if (pk_ok(pk_jo_result(&j)) && pk_ok(pk_buf_cstr(&b))) puts((const char *)b.data);
    pk_buf_free(&b);
}

/* --only a,b: run just these groups of figures (all when absent). */
static bool wanted(const char *only, const char *group)
{
    size_t n = strlen(group);
    for (const char *p = only; p != NULL; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL)
        if (strncmp(p, group, n) == 0 && (p[n] == ',' || p[n] == '\0')) return true;
    return only == NULL;
}

int main(int argc, char **argv)
{
    double create_ms = 0, open_ms = 0, first_use_ms = 0, evals;
    audit_figures af = {0, 0, 0, 0};
    secret_figures sf;
    size_t big = 100000;
    const char *only = NULL;
    memset(&sf, 0, sizeof(sf));
    char *report = NULL;
    const char *admins[] = {ADMIN}, *ops[] = {OPERATOR};

    B.seconds = 1.0;
    B.keys = 1000;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) B.json = true;
        else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) B.seconds = atof(argv[++i]);
        else if (strcmp(argv[i], "--keys") == 0 && i + 1 < argc) B.keys = (unsigned)atoi(argv[++i]);
        else if (strcmp(argv[i], "--secrets") == 0 && i + 1 < argc) big = (size_t)atol(argv[++i]);
        else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc) only = argv[++i];
        else {
            fprintf(stderr, "usage: p11kms-bench [--json] [--seconds S] [--keys N] [--secrets N]\n"
                            "                    [--only ops,secrets,keychange,audit,policy,keys]\n");
            return 2;
        }
    }
    if (getenv("P11KMS_CONFIG") != NULL) {
        if (p11kms_config_load(NULL, &B.cfg) != P11KMS_OK) die("config");
    } else {
        make_token();
    }
    if (p11kms_caller_new(ADMIN, &B.admin) != P11KMS_OK || p11kms_caller_new(OPERATOR, &B.oper) != P11KMS_OK)
        die("caller");
    if (p11kms_init(B.cfg, B.admin, admins, 1, ops, 1, &report) != P11KMS_OK) die("init");
    p11kms_free(report);
    if (p11kms_open(B.cfg, &B.base) != P11KMS_OK) die("open");
    B.h = B.base;
    B.key = create_key();
    raw_setup();
    if (!B.json) printf("p11kms-bench: %.1f s per figure; raw = minimal PKCS#11 sequence on the same session key\n", B.seconds);

    if (wanted(only, "ops")) {
        bench_op("encrypt_64", 64, api_encrypt, raw_encrypt, false);
        bench_op("encrypt_4k", 4096, api_encrypt, raw_encrypt, false);
        bench_op("decrypt_64", 64, api_decrypt, raw_decrypt, false);
        bench_op("datakey", 32, api_datakey, raw_datakey, true);
        bench_op("datakey_decrypt", 32, api_decrypt, raw_decrypt, true);
    }
    if (wanted(only, "secrets")) bench_secrets(&sf, big);
    /* An even number of toggles (run_work counts in 32s): the key ends Enabled. */
    if (wanted(only, "keychange")) {
        add_row("key_disable_enable", 1, measure(1, api_key_toggle, set_ctx, no_free, NULL), 0, 0);
        add_row("key_put_policy", 1, measure(1, api_put_policy, set_ctx, no_free, NULL), 0, 0);
    }
    if (wanted(only, "audit")) bench_audit(&af);
    evals = wanted(only, "policy") ? bench_policy() : 0;
    if (!B.json && evals > 0) printf("policy evaluations: %.0f/s (10 statements, compiled once)\n", evals);
    if (B.keys > 0 && wanted(only, "keys")) {
        bench_many_keys(&create_ms, &open_ms, &first_use_ms);
        if (!B.json)
            printf("with %u keys in the token: key create %.1f ms, open %.1f ms, first use of a key %.1f ms\n",
                   B.keys, create_ms, open_ms, first_use_ms);
    }
    if (B.json) print_json(create_ms, open_ms, first_use_ms, evals, &af, &sf);
    free(B.key);
    p11kms_close(B.base);
    for (size_t i = 0; i < B.ncfgs; i++) p11kms_config_free(B.cfgs[i]);
    p11kms_caller_free(B.admin);
    p11kms_caller_free(B.oper);
    p11kms_config_free(B.cfg);
    if (B.tmpdir[0] != '\0') {
        char cmd[300];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", B.tmpdir);
        if (system(cmd) != 0) fprintf(stderr, "p11kms-bench: could not remove %s\n", B.tmpdir);
    }
    return 0;
}
