/*
 * p11kmsd-bench: requests per second against a real p11kmsd on a fresh
 * SoftHSM token, next to the in-process API at the same concurrency in the
 * same run, with p50/p99 latency, the daemon's CPU per request and ratios.
 *
 *  - operations: the OPS table (Encrypt 64 B, GenerateDataKey AES_256,
 *    Secrets Manager GetSecretValue of a two-pair secret);
 *  - transports: the Unix socket (peer uid), HTTPS keep-alive with SigV4
 *    (an access key made on the bench's token) and HTTPS with a client
 *    certificate (principal.cert.CN), 1 and 8 connections;
 *  - the protocol floor: GET /ping on each transport (answered by the
 *    daemon's loop without worker or token), and the ratio a zero-cost
 *    operation would leave: floor*inproc/(floor+inproc)/inproc;
 *  - the cost of SigV4: p11kms_sigv4_verify timed in-process on one signed
 *    request, and the daemon's CPU per request with SigV4 minus with a
 *    client certificate.
 *
 * Usage: bench/p11kmsd-bench [--json] [--seconds S]   (S per configuration, default 2)
 * $P11KMSD_BIN overrides the daemon (default: the build tree's p11kmsd; one
 * without GET /ping is measured without the floor); $P11KMSD_BENCH_LOG
 * keeps its stderr (default /dev/null).
 * Bounded: S <= 60, at most MAXLAT requests per thread, 10 s socket
 * timeouts, and an alarm kills the daemon and exits if the run overruns.
 */
#include "config.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "p11kms/p11kms.h"

#define ADMIN "arn:aws:iam::111122223333:role/key-admin"
#define OPERATOR "arn:aws:iam::111122223333:role/flink-operator"
#define CLIENT_CN "p11kmsd-bench-client"
#define MAXLAT 2000000
#define MAXTHREADS 8
#define GOAL 0.8

/* ---- what is measured: add a row to OPS to measure another operation ---- */

typedef struct bench_op {
    const char *name;    /* printed */
    const char *target;  /* X-Amz-Target */
    const char *service; /* SigV4 signing name */
    /* The request body (JSON) and the same call through the public API. */
    void (*body)(char *out, size_t cap);
    p11kms_rc (*inproc)(void);
    /* NULL, or run once after the key exists and before the daemon starts (e.g. to store a secret). */
    void (*setup)(p11kms_caller *admin);
} bench_op;

enum transport { T_INPROC, T_UNIX, T_SIGV4, T_CERT, T_COUNT };
static const char *const TNAMES[T_COUNT] = {"in-process", "unix", "https+sigv4", "https+cert"};

static struct {
    double seconds;
    bool json, no_ping;
    char tmp[64], sock[100], key[200], region[64], akid[32], secret[64];
    int port;
    pid_t daemon;
    p11kms *h;
    p11kms_caller *c;
    SSL_CTX *tls_plain, *tls_cert;
} B = {.seconds = 2};

static void body_encrypt(char *out, size_t cap)
{
    /* 64 zero bytes of plaintext, base64 */
    snprintf(out, cap, "{\"KeyId\":\"%s\",\"Plaintext\":\"%.86s==\"}", B.key,
             "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
}

static p11kms_rc inproc_encrypt(void)
{
    static const uint8_t pt[64];
    p11kms_buf *blob = NULL;
    p11kms_rc rc = p11kms_encrypt(B.h, B.c, B.key, NULL, 0, pt, sizeof(pt), &blob);
    p11kms_buf_free(blob);
    return rc;
}

static void body_data_key(char *out, size_t cap)
{
    snprintf(out, cap, "{\"KeyId\":\"%s\",\"KeySpec\":\"AES_256\"}", B.key);
}

static p11kms_rc inproc_data_key(void)
{
    p11kms_buf *blob = NULL, *dk = NULL;
    p11kms_rc rc = p11kms_generate_data_key(B.h, B.c, B.key, NULL, 0, 32, &dk, &blob);
    p11kms_buf_free(blob);
    p11kms_buf_free(dk);
    return rc;
}

static void die(const char *what);

/* GetSecretValue of a two-pair secret stored once in setup, or p11kms_secret_get in process. */
#define BENCH_SECRET "bench/orders-db"

static void body_get_secret(char *out, size_t cap)
{
    snprintf(out, cap, "{\"SecretId\":\"" BENCH_SECRET "\"}");
}

static p11kms_rc inproc_get_secret(void)
{
    p11kms_secret_map *m = NULL;
    p11kms_rc rc = p11kms_secret_get(B.h, B.c, BENCH_SECRET, &m);
    p11kms_secret_map_free(m);
    return rc;
}

static void setup_secret(p11kms_caller *admin)
{
    p11kms_secret_map *m = NULL;
    (void)admin; /* the operator writes it: secrets need kms:GenerateDataKey */
    if (p11kms_secret_map_new(&m) != P11KMS_OK || p11kms_secret_map_set(m, "user", "flink") != P11KMS_OK ||
        p11kms_secret_map_set(m, "password", "0123456789abcdef0123456789abcdef") != P11KMS_OK ||
        p11kms_secret_put_named(B.h, B.c, "bench", NULL, BENCH_SECRET, m) != P11KMS_OK)
        die("secret put");
    p11kms_secret_map_free(m);
}

static const bench_op OPS[] = {
    {"Encrypt", "TrentService.Encrypt", "kms", body_encrypt, inproc_encrypt, NULL},
    {"GenerateDataKey", "TrentService.GenerateDataKey", "kms", body_data_key, inproc_data_key, NULL},
    {"GetSecretValue", "secretsmanager.GetSecretValue", "secretsmanager", body_get_secret, inproc_get_secret, setup_secret},
};
#define NOPS (sizeof(OPS) / sizeof(OPS[0]))

/* ---- process helpers ---- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
    (void)st, (void)flag, (void)f;
    return remove(p);
}

/* The daemon's CPU seconds (user + system) from /proc/PID/stat. */
static double daemon_cpu(void)
{
    char path[64], buf[1024], *p;
    unsigned long ut = 0, st = 0;
    FILE *f;
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)B.daemon);
    if ((f = fopen(path, "r")) == NULL) return 0;
    p = fgets(buf, sizeof(buf), f) ? strrchr(buf, ')') : NULL;
    fclose(f);
    if (p == NULL || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2) return 0;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* The daemon's context switches (voluntary + involuntary, all threads): a figure the machine's load does not move. */
static double daemon_switches(void)
{
    char path[64], line[256];
    struct dirent *e;
    double n = 0;
    DIR *d;
    snprintf(path, sizeof(path), "/proc/%d/task", (int)B.daemon);
    if ((d = opendir(path)) == NULL) return 0;
    while ((e = readdir(d)) != NULL) {
        char st[600];
        FILE *f;
        if (e->d_name[0] == '.') continue;
        snprintf(st, sizeof(st), "%.60s/%.256s/status", path, e->d_name);
        if ((f = fopen(st, "r")) == NULL) continue;
        while (fgets(line, sizeof(line), f) != NULL) {
            unsigned long v;
            if (sscanf(line, "voluntary_ctxt_switches: %lu", &v) == 1 ||
                sscanf(line, "nonvoluntary_ctxt_switches: %lu", &v) == 1)
                n += (double)v;
        }
        fclose(f);
    }
    closedir(d);
    return n;
}

static void teardown(void)
{
    if (B.daemon > 0) {
        kill(B.daemon, SIGKILL); /* killed in every path, even after die() */
        waitpid(B.daemon, NULL, 0);
        B.daemon = 0;
    }
    if (B.tmp[0]) nftw(B.tmp, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    B.tmp[0] = 0;
}

static void on_alarm(int sig)
{
    static const char msg[] = "p11kmsd-bench: the run took too long: stopped\n";
    (void)sig;
    if (B.daemon > 0) kill(B.daemon, SIGKILL);
    if (write(2, msg, sizeof(msg) - 1) < 0) {}
    _exit(1);
}

static void die(const char *what)
{
    fprintf(stderr, "p11kmsd-bench: %s: %s\n", what, p11kms_last_error());
    exit(1);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (f == NULL) die(path);
    fputs(text, f);
    fclose(f);
    chmod(path, 0600);
}

/* ---- a client connection: Unix socket or TLS over TCP ---- */

typedef struct conn {
    int fd;
    SSL *ssl;
    enum transport t;
} conn;

static void set_timeouts(int fd)
{
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

static int connect_unix(void)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    snprintf(a.sun_path, sizeof(a.sun_path), "%s", B.sock);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        if (fd >= 0) close(fd);
        return -1;
    }
    set_timeouts(fd);
    return fd;
}

static bool conn_open(conn *c, enum transport t)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)B.port)};
    int one = 1;
    memset(c, 0, sizeof(*c));
    c->t = t;
    if (t == T_UNIX) return (c->fd = connect_unix()) >= 0;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&a, sizeof(a)) != 0) return false;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    set_timeouts(c->fd);
    c->ssl = SSL_new(t == T_CERT ? B.tls_cert : B.tls_plain);
    return c->ssl != NULL && SSL_set_fd(c->ssl, c->fd) == 1 && SSL_connect(c->ssl) == 1;
}

static void conn_close(conn *c)
{
    if (c->ssl) {
        SSL_shutdown(c->ssl);
        SSL_free(c->ssl);
    }
    if (c->fd >= 0) close(c->fd);
    memset(c, 0, sizeof(*c));
    c->fd = -1;
}

static bool conn_write(conn *c, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = c->ssl ? SSL_write(c->ssl, p, (int)n) : write(c->fd, p, n);
        if (w <= 0) return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

static ssize_t conn_read(conn *c, char *p, size_t n)
{
    return c->ssl ? SSL_read(c->ssl, p, (int)n) : read(c->fd, p, n);
}

/* ---- SigV4 signing, as the AWS SDKs do (header form, AWS4-HMAC-SHA256) ---- */

static void hex(const uint8_t *b, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++) sprintf(out + 2 * i, "%02x", b[i]);
}

static void hmac(const uint8_t *key, size_t klen, const char *msg, size_t n, uint8_t out[32])
{
    unsigned int len = 32;
    HMAC(EVP_sha256(), key, (int)klen, (const uint8_t *)msg, n, out, &len);
}

static void sha256_hex(const char *msg, size_t n, char out[65])
{
    uint8_t d[32];
    SHA256((const uint8_t *)msg, n, d);
    hex(d, 32, out);
}

/* "Authorization: ...\r\nX-Amz-Date: ...\r\n" for this request, signed now. */
static void sigv4_headers(const bench_op *op, const char *host, const char *body, char *out, size_t cap)
{
    time_t now = time(NULL);
    struct tm tm;
    char amz_date[17], day[9], scope[128], canon[1024], sts[512], body_hash[65], canon_hash[65], sig[65];
    char key[80];
    uint8_t k[32];
    gmtime_r(&now, &tm);
    strftime(amz_date, sizeof(amz_date), "%Y%m%dT%H%M%SZ", &tm);
    memcpy(day, amz_date, 8);
    day[8] = 0;
    snprintf(scope, sizeof(scope), "%s/%s/%s/aws4_request", day, B.region, op->service);
    sha256_hex(body, strlen(body), body_hash);
    snprintf(canon, sizeof(canon),
             "POST\n/\n\ncontent-type:application/x-amz-json-1.1\nhost:%s\nx-amz-date:%s\nx-amz-target:%s\n\n"
             "content-type;host;x-amz-date;x-amz-target\n%s",
             host, amz_date, op->target, body_hash);
    sha256_hex(canon, strlen(canon), canon_hash);
    snprintf(sts, sizeof(sts), "AWS4-HMAC-SHA256\n%s\n%s\n%s", amz_date, scope, canon_hash);
    snprintf(key, sizeof(key), "AWS4%s", B.secret);
    hmac((const uint8_t *)key, strlen(key), day, 8, k);
    hmac(k, 32, B.region, strlen(B.region), k);
    hmac(k, 32, op->service, strlen(op->service), k);
    hmac(k, 32, "aws4_request", 12, k);
    hmac(k, 32, sts, strlen(sts), k);
    hex(k, 32, sig);
    OPENSSL_cleanse(key, sizeof(key));
    snprintf(out, cap,
             "X-Amz-Date: %s\r\nAuthorization: AWS4-HMAC-SHA256 Credential=%s/%s, "
             "SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=%s\r\n",
             amz_date, B.akid, scope, sig);
}

/* ---- one request over a keep-alive connection ---- */

/* op NULL: GET /ping, the protocol floor. Reads the head and Content-Length bytes; 200 only. */
static bool http_call(conn *c, const bench_op *op)
{
    char req[4096], body[1024], auth[512] = "", host[64], buf[16384];
    size_t have = 0;
    long clen = -1;
    char *hend = NULL;
    int n;
    if (c->t == T_UNIX) snprintf(host, sizeof(host), "p11kmsd");
    else snprintf(host, sizeof(host), "127.0.0.1:%d", B.port);
    if (op == NULL) {
        n = snprintf(req, sizeof(req), "GET /ping HTTP/1.1\r\nHost: %s\r\n\r\n", host);
    } else {
        op->body(body, sizeof(body));
        if (c->t == T_SIGV4) sigv4_headers(op, host, body, auth, sizeof(auth));
        n = snprintf(req, sizeof(req),
                     "POST / HTTP/1.1\r\nHost: %s\r\nX-Amz-Target: %s\r\n"
                     "Content-Type: application/x-amz-json-1.1\r\n%sContent-Length: %zu\r\n\r\n%s",
                     host, op->target, auth, strlen(body), body);
    }
    if (n <= 0 || (size_t)n >= sizeof(req) || !conn_write(c, req, (size_t)n)) return false;
    for (;;) {
        ssize_t r = conn_read(c, buf + have, sizeof(buf) - 1 - have);
        if (r <= 0) return false;
        have += (size_t)r;
        buf[have] = 0;
        if (hend == NULL && (hend = strstr(buf, "\r\n\r\n")) != NULL) {
            char *cl = strcasestr(buf, "\r\nContent-Length:");
            if (strncmp(buf, "HTTP/1.1 200", 12) != 0) {
                if (op == NULL && B.no_ping) return false; /* the probe */
                fprintf(stderr, "p11kmsd-bench: %.300s\n", buf);
                return false;
            }
            clen = cl ? strtol(cl + 17, NULL, 10) : 0;
        }
        if (hend != NULL && (long)(have - (size_t)(hend + 4 - buf)) >= clen) return true;
    }
}

/* ---- one thread's work: an op repeated until time is up, latencies kept ---- */

typedef struct work {
    const bench_op *op; /* NULL: ping */
    enum transport t;
    conn c;
    unsigned long n;
    float *lat; /* microseconds */
    bool failed;
} work;

static bool one_op(work *w)
{
    if (w->t == T_INPROC) return w->op->inproc() == P11KMS_OK;
    return http_call(&w->c, w->op);
}

static void *run(void *arg)
{
    work *w = arg;
    double end = now_s() + B.seconds;
    while (w->n < MAXLAT) {
        double t0 = now_s();
        if (t0 >= end) break;
        if (!one_op(w)) {
            w->failed = true;
            break;
        }
        w->lat[w->n++] = (float)((now_s() - t0) * 1e6);
    }
    return NULL;
}

static int cmpf(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

typedef struct result {
    double per_s, p50, p99, client_cpu, daemon_us; /* daemon_us: daemon CPU microseconds per request */
    double daemon_cs;                              /* daemon context switches per request */
} result;

static double rusage_s(const struct rusage *r)
{
    return (double)r->ru_utime.tv_sec + (double)r->ru_utime.tv_usec / 1e6 + (double)r->ru_stime.tv_sec +
           (double)r->ru_stime.tv_usec / 1e6;
}

static result measure(const bench_op *op, enum transport t, int threads)
{
    pthread_t th[MAXTHREADS];
    work w[MAXTHREADS];
    result r = {0};
    unsigned long total = 0;
    struct rusage ru0, ru1;
    double start, el, cpu0, cs0;
    float *all;
    for (int i = 0; i < threads; i++) {
        memset(&w[i], 0, sizeof(w[i]));
        w[i].op = op;
        w[i].t = t;
        w[i].c.fd = -1;
        if ((w[i].lat = malloc(sizeof(float) * MAXLAT)) == NULL) die("out of memory");
        if (t != T_INPROC && !conn_open(&w[i].c, t)) die(TNAMES[t]);
    }
    getrusage(RUSAGE_SELF, &ru0);
    cpu0 = daemon_cpu();
    cs0 = daemon_switches();
    start = now_s();
    for (int i = 0; i < threads; i++) pthread_create(&th[i], NULL, run, &w[i]);
    for (int i = 0; i < threads; i++) pthread_join(th[i], NULL);
    el = now_s() - start;
    getrusage(RUSAGE_SELF, &ru1);
    for (int i = 0; i < threads; i++) {
        if (w[i].failed) die(t == T_INPROC ? "in-process op failed" : "request failed");
        total += w[i].n;
    }
    if (t != T_INPROC && total > 0) {
        r.daemon_us = (daemon_cpu() - cpu0) * 1e6 / (double)total;
        r.daemon_cs = (daemon_switches() - cs0) / (double)total;
    }
    if ((all = malloc(sizeof(float) * (total ? total : 1))) == NULL) die("out of memory");
    total = 0;
    for (int i = 0; i < threads; i++) {
        memcpy(all + total, w[i].lat, sizeof(float) * w[i].n);
        total += w[i].n;
        free(w[i].lat);
        if (t != T_INPROC) conn_close(&w[i].c);
    }
    qsort(all, total, sizeof(float), cmpf);
    r.per_s = (double)total / el;
    r.p50 = total ? all[total / 2] : 0;
    r.p99 = total ? all[(size_t)((double)total * 0.99)] : 0;
    r.client_cpu = (rusage_s(&ru1) - rusage_s(&ru0)) / el;
    free(all);
    return r;
}

/* p11kms_sigv4_verify on one fixed signed request, in-process: microseconds per call. */
static double sigv4_verify_us(void)
{
    const bench_op *op = &OPS[0];
    char body[1024], auth[512], host[64], *date, *authz;
    p11kms_http_header hs[5];
    unsigned long n = 0;
    double t0, el;
    snprintf(host, sizeof(host), "127.0.0.1:%d", B.port);
    op->body(body, sizeof(body));
    sigv4_headers(op, host, body, auth, sizeof(auth));
    /* auth: "X-Amz-Date: D\r\nAuthorization: A\r\n", split in place */
    date = auth + strlen("X-Amz-Date: ");
    authz = strstr(date, "\r\n");
    *authz = 0;
    authz += 2 + strlen("Authorization: ");
    authz[strlen(authz) - 2] = 0;
    hs[0] = (p11kms_http_header){"Host", host};
    hs[1] = (p11kms_http_header){"X-Amz-Target", op->target};
    hs[2] = (p11kms_http_header){"Content-Type", "application/x-amz-json-1.1"};
    hs[3] = (p11kms_http_header){"X-Amz-Date", date};
    hs[4] = (p11kms_http_header){"Authorization", authz};
    p11kms_sigv4_request req = {sizeof(req), "POST", "/", "", hs, 5, (const uint8_t *)body, strlen(body),
                                op->service, 0, NULL};
    t0 = now_s();
    while ((el = now_s() - t0) < B.seconds && n < MAXLAT) {
        p11kms_caller *c = NULL;
        if (p11kms_sigv4_verify(B.h, &req, &c, NULL) != P11KMS_OK) die("p11kms_sigv4_verify");
        p11kms_caller_free(c);
        n++;
    }
    return n ? el * 1e6 / (double)n : 0;
}

/* ---- setup: token, key, access key, certificates, daemon ---- */

static EVP_PKEY *new_key(void)
{
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    if (k == NULL) die("EC key");
    return k;
}

static X509 *new_cert(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *issuer_key)
{
    static long serial = 1;
    X509 *x = X509_new();
    X509_NAME *name;
    if (x == NULL) die("X509_new");
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, key);
    name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name);
    if (issuer == NULL) {
        X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, NULL, NID_basic_constraints, "critical,CA:TRUE");
        X509_add_ext(x, e, -1);
        X509_EXTENSION_free(e);
    }
    if (X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256()) == 0) die("X509_sign");
    return x;
}

static void write_pem(const char *name, X509 *x, EVP_PKEY *k)
{
    char path[256];
    FILE *f;
    snprintf(path, sizeof(path), "%s/%s.pem", B.tmp, name);
    if ((f = fopen(path, "w")) == NULL) die(path);
    PEM_write_X509(f, x);
    fclose(f);
    snprintf(path, sizeof(path), "%s/%s.key", B.tmp, name);
    if ((f = fopen(path, "w")) == NULL) die(path);
    chmod(path, 0600);
    PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL);
    fclose(f);
}

/* A CA, the server's certificate and the client's (CN=CLIENT_CN), and the clients' TLS contexts. */
static void make_pki(void)
{
    EVP_PKEY *ca_k = new_key(), *srv_k = new_key(), *cli_k = new_key();
    X509 *ca = new_cert(ca_k, "p11kmsd-bench-ca", NULL, NULL);
    X509 *srv = new_cert(srv_k, "127.0.0.1", ca, ca_k);
    X509 *cli = new_cert(cli_k, CLIENT_CN, ca, ca_k);
    write_pem("ca", ca, ca_k);
    write_pem("server", srv, srv_k);
    B.tls_plain = SSL_CTX_new(TLS_client_method());
    B.tls_cert = SSL_CTX_new(TLS_client_method());
    if (B.tls_plain == NULL || B.tls_cert == NULL || SSL_CTX_use_certificate(B.tls_cert, cli) != 1 ||
        SSL_CTX_use_PrivateKey(B.tls_cert, cli_k) != 1)
        die("client TLS context");
    /* Loopback to a server this process just made: the client does not verify the server. */
    SSL_CTX_set_verify(B.tls_plain, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_verify(B.tls_cert, SSL_VERIFY_NONE, NULL);
    X509_free(ca);
    X509_free(srv);
    X509_free(cli);
    EVP_PKEY_free(ca_k);
    EVP_PKEY_free(srv_k);
    EVP_PKEY_free(cli_k);
}

static int free_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0), port = 0;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 && getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0) close(fd);
    if (port == 0) die("no free port");
    return port;
}

/* The access key's SigV4 credentials and the region (from the key's ARN) for signing. */
static void make_access_key(p11kms_caller *admin)
{
    char *akid = NULL, *arn = NULL;
    p11kms_buf *secret = NULL;
    const char *r;
    if (p11kms_access_key_create(B.h, admin, OPERATOR, &akid, &secret) != P11KMS_OK) die("access-key create");
    snprintf(B.akid, sizeof(B.akid), "%s", akid);
    snprintf(B.secret, sizeof(B.secret), "%.*s", (int)p11kms_buf_len(secret), (const char *)p11kms_buf_data(secret));
    p11kms_free(akid);
    p11kms_buf_free(secret);
    if (p11kms_key_arn(B.h, B.key, &arn) != P11KMS_OK) die("key arn");
    /* arn:aws:kms:REGION:ACCOUNT:key/ID */
    r = strchr(strchr(strchr(arn, ':') + 1, ':') + 1, ':') + 1;
    snprintf(B.region, sizeof(B.region), "%.*s", (int)(strchr(r, ':') - r), r);
    p11kms_free(arn);
}

static void start_daemon(const char *conf)
{
    B.daemon = fork();
    if (B.daemon == 0) {
        const char *bin = getenv("P11KMSD_BIN") ? getenv("P11KMSD_BIN") : P11KMS_BENCH_BUILDDIR "/p11kmsd";
        /* the access log would cost the terminal, not the daemon: /dev/null unless $P11KMSD_BENCH_LOG */
        const char *log = getenv("P11KMSD_BENCH_LOG") ? getenv("P11KMSD_BENCH_LOG") : "/dev/null";
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd >= 0) dup2(fd, 2);
        execl(bin, bin, "--config", conf, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 100; i++) {
        int fd = connect_unix();
        if (fd >= 0) {
            close(fd);
            return;
        }
        if (waitpid(B.daemon, NULL, WNOHANG) == B.daemon) break;
        usleep(100000);
    }
    B.daemon = 0;
    fprintf(stderr, "p11kmsd-bench: p11kmsd did not start\n");
    exit(1);
}

static void setup(void)
{
    char path[512], text[4096], pin[33];
    uint8_t raw[16];
    p11kms_config *cfg = NULL;
    const char *ops[] = {OPERATOR}, *admins[] = {ADMIN};
    p11kms_caller *admin = NULL;
    p11kms_key_spec spec;
    char *id = NULL;
    snprintf(B.tmp, sizeof(B.tmp), "/tmp/p11kmsd-bench-XXXXXX");
    if (mkdtemp(B.tmp) == NULL) die("mkdtemp");
    atexit(teardown);
    snprintf(path, sizeof(path), "%s/tokens", B.tmp);
    mkdir(path, 0700);
    snprintf(text, sizeof(text), "directories.tokendir = %s/tokens\nobjectstore.backend = file\nlog.level = ERROR\n", B.tmp);
    snprintf(path, sizeof(path), "%s/softhsm2.conf", B.tmp);
    write_file(path, text);
    setenv("SOFTHSM2_CONF", path, 1);
    RAND_bytes(raw, sizeof(raw));
    for (int i = 0; i < 16; i++) sprintf(pin + 2 * i, "%02x", raw[i]);
    snprintf(path, sizeof(path), "%s/user.pin", B.tmp);
    write_file(path, pin);
    if (p11kms_token_init(P11KMS_SOFTHSM_MODULE, "bench", path, path) != P11KMS_OK) die("token init");
    make_pki();
    B.port = free_port();
    snprintf(B.sock, sizeof(B.sock), "%s/kms.sock", B.tmp);
    snprintf(text, sizeof(text),
             "module = %s\ntoken = pkcs11:token=bench\npin = file:user.pin\nstore = sqlite:p11kms.db\naudit = audit.log\n"
             "listen = unix:%s\nprincipal.uid.%u = %s\nlisten = https://127.0.0.1:%d\ntls_cert = %s/server.pem\n"
             "tls_key = %s/server.key\ntls_client_ca = %s/ca.pem\nprincipal.cert.%s = %s\n",
             P11KMS_SOFTHSM_MODULE, B.sock, (unsigned)getuid(), OPERATOR, B.port, B.tmp, B.tmp, B.tmp, CLIENT_CN,
             OPERATOR);
    snprintf(path, sizeof(path), "%s/p11kms.conf", B.tmp);
    write_file(path, text);
    if (p11kms_config_load(path, &cfg) != P11KMS_OK) die("config");
    if (p11kms_caller_new(OPERATOR, &B.c) != P11KMS_OK) die("caller");
    if (p11kms_caller_new(ADMIN, &admin) != P11KMS_OK) die("caller");
    if (p11kms_init(cfg, admin, admins, 1, ops, 1, &id) != P11KMS_OK) die("init");
    p11kms_free(id);
    id = NULL;
    if (p11kms_open(cfg, &B.h) != P11KMS_OK) die("open");
    memset(&spec, 0, sizeof(spec));
    spec.struct_size = sizeof(spec);
    spec.admins = admins;
    spec.nadmins = 1;
    spec.operators = ops;
    spec.noperators = 1;
    if (p11kms_key_create(B.h, admin, &spec, &id) != P11KMS_OK) die("key create");
    snprintf(B.key, sizeof(B.key), "%s", id);
    p11kms_free(id);
    make_access_key(admin);
    for (size_t k = 0; k < NOPS; k++)
        if (OPS[k].setup != NULL) OPS[k].setup(admin);
    p11kms_caller_free(admin);
    p11kms_config_free(cfg);
    start_daemon(path);
}

/* ---- the report ---- */

static bool first_row = true;

static void print_row(const char *op, enum transport t, int nconn, const result *d, const result *in, double floor_s)
{
    /* A zero-cost daemon over this transport would still pay the floor per request. */
    double ratio = in ? d->per_s / in->per_s : 0;
    double ceiling = in && floor_s > 0 ? floor_s / (floor_s + in->per_s) : 0;
    if (B.json) {
        printf("%s{\"op\":\"%s\",\"transport\":\"%s\",\"connections\":%d,\"per_s\":%.1f,\"p50_us\":%.1f,\"p99_us\":%.1f,"
               "\"client_cpu\":%.3f,\"daemon_cpu_us_per_req\":%.1f,\"daemon_switches_per_req\":%.2f",
               first_row ? "" : ",", op, TNAMES[t], nconn, d->per_s, d->p50, d->p99, d->client_cpu, d->daemon_us,
               d->daemon_cs);
        if (in)
            printf(",\"inproc_per_s\":%.1f,\"inproc_p50_us\":%.1f,\"inproc_p99_us\":%.1f,\"ratio\":%.3f,"
                   "\"floor_per_s\":%.1f,\"ceiling_ratio\":%.3f",
                   in->per_s, in->p50, in->p99, ratio, floor_s, ceiling);
        printf("}");
    } else if (in) {
        char ceil_s[16] = "-";
        if (floor_s > 0) snprintf(ceil_s, sizeof(ceil_s), "%.2fx", ceiling);
        printf("%-16s %-12s %4d %9.0f %9.0f %5.2fx %6s %7.0f %7.0f %7.0f %7.0f %8.1f %5.2f %6.2f\n", op, TNAMES[t],
               nconn, d->per_s, in->per_s, ratio, ceil_s, d->p50, d->p99, in->p50, in->p99, d->daemon_us, d->daemon_cs,
               d->client_cpu);
    } else {
        printf("%-16s %-12s %4d %9.0f %9s %6s %6s %7.0f %7.0f %7s %7s %8.1f %5.2f %6.2f\n", op, TNAMES[t], nconn,
               d->per_s, "-", "-", "-", d->p50, d->p99, "-", "-", d->daemon_us, d->daemon_cs, d->client_cpu);
    }
    first_row = false;
}

int main(int argc, char **argv)
{
    static const int conc[] = {1, 8};
    double load[3] = {0}, verify_us;
    result floor[2][T_COUNT], sig_cost[2] = {{0}};
    double worst_ceiling = 1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) B.json = true;
        else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) B.seconds = atof(argv[++i]);
        else {
            fprintf(stderr, "usage: p11kmsd-bench [--json] [--seconds S]\n");
            return 2;
        }
    }
    if (B.seconds <= 0 || B.seconds > 60) {
        fprintf(stderr, "p11kmsd-bench: --seconds must be in (0, 60]\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    signal(SIGALRM, on_alarm);
    /* every configuration, the verify loop and setup, with room to spare */
    alarm((unsigned)(B.seconds * (double)(2 * (NOPS + 1) * T_COUNT + 1) * 2) + 120);
    setup();
    getloadavg(load, 3);
    if (B.json) printf("{\"loadavg\":%.2f,\"seconds\":%.1f,\"goal_ratio\":%.2f,\"rows\":[", load[0], B.seconds, GOAL);
    else
        printf("load average %.2f; %.1f s per configuration; goal %.1fx in-process\n"
               "%-16s %-12s %4s %9s %9s %6s %6s %7s %7s %7s %7s %8s %5s %6s\n",
               load[0], B.seconds, GOAL, "op", "transport", "conn", "req/s", "inproc/s", "ratio", "ceil", "p50us",
               "p99us", "in-p50", "in-p99", "dCPUus", "dCS", "cliCPU");
    {
        conn probe;
        B.no_ping = true;
        if (!conn_open(&probe, T_UNIX)) die("connect");
        B.no_ping = !http_call(&probe, NULL);
        conn_close(&probe);
    }
    memset(floor, 0, sizeof(floor));
    for (int c = 0; c < 2 && !B.no_ping; c++)
        for (int t = T_UNIX; t < T_COUNT; t++) {
            floor[c][t] = measure(NULL, (enum transport)t, conc[c]);
            print_row("ping (floor)", (enum transport)t, conc[c], &floor[c][t], NULL, 0);
        }
    for (size_t k = 0; k < NOPS; k++)
        for (int c = 0; c < 2; c++) {
            result in = measure(&OPS[k], T_INPROC, conc[c]);
            result d[T_COUNT];
            for (int t = T_UNIX; t < T_COUNT; t++) {
                double ceiling;
                d[t] = measure(&OPS[k], (enum transport)t, conc[c]);
                print_row(OPS[k].name, (enum transport)t, conc[c], &d[t], &in, floor[c][t].per_s);
                ceiling = floor[c][t].per_s / (floor[c][t].per_s + in.per_s);
                if (!B.no_ping && ceiling < worst_ceiling) worst_ceiling = ceiling;
            }
            if (k == 0) { /* SigV4's price on the wire: the same op with a client certificate instead */
                sig_cost[c].p50 = d[T_SIGV4].p50 - d[T_CERT].p50;
                sig_cost[c].daemon_us = d[T_SIGV4].daemon_us - d[T_CERT].daemon_us;
            }
        }
    verify_us = sigv4_verify_us();
    if (B.json) {
        printf("],\"sigv4_verify_inproc_us\":%.2f,\"sigv4_minus_cert\":[", verify_us);
        for (int c = 0; c < 2; c++)
            printf("%s{\"op\":\"%s\",\"connections\":%d,\"p50_us\":%.1f,\"daemon_cpu_us_per_req\":%.1f}", c ? "," : "",
                   OPS[0].name, conc[c], sig_cost[c].p50, sig_cost[c].daemon_us);
        printf("],\"worst_ceiling_ratio\":%.3f}\n", worst_ceiling);
    } else {
        printf("\nSigV4 cost: p11kms_sigv4_verify in-process %.1f us/call;", verify_us);
        for (int c = 0; c < 2; c++)
            printf(" %s %d conn: https+sigv4 minus https+cert p50 %+.0f us, daemon CPU %+.1f us/req;", OPS[0].name,
                   conc[c], sig_cost[c].p50, sig_cost[c].daemon_us);
        printf("\nceil = ping/(ping+inproc): the ratio a daemon doing no work beyond the protocol floor would reach.\n");
        if (B.no_ping) printf("this p11kmsd has no GET /ping: no floor measured\n");
        else if (worst_ceiling < GOAL)
            printf("goal %.1fx: blocked by the protocol floor on this machine where ceil < %.1f (lowest ceil %.2fx)\n",
                   GOAL, GOAL, worst_ceiling);
    }
    p11kms_caller_free(B.c);
    p11kms_close(B.h);
    SSL_CTX_free(B.tls_plain);
    SSL_CTX_free(B.tls_cert);
    teardown();
    return 0;
}
