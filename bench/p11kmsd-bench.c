/*
 * p11kmsd-bench: Encrypt (64 B), GenerateDataKey (AES_256) and Secrets
 * Manager GetSecretValue (a two-pair secret) requests per second against a real p11kmsd on a fresh SoftHSM token, over the Unix
 * socket (peer-uid auth), next to the in-process API at the same
 * concurrency in the same run, with p50/p99 latency and ratios.
 *
 * Usage: bench/p11kmsd-bench [--json] [--seconds S]
 * $P11KMSD_BIN overrides the daemon (default: the build tree's p11kmsd).
 * Not done yet (docs/BENCHMARKS.md): HTTPS + SigV4, client certificates,
 * the in-process p11kms_sigv4_verify cost.
 */
#include "config.h"

#include <openssl/rand.h>
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
#include <fcntl.h>
#include <ftw.h>
#include <time.h>
#include <unistd.h>

#include "p11kms/p11kms.h"

#define ADMIN "arn:aws:iam::111122223333:role/key-admin"
#define OPERATOR "arn:aws:iam::111122223333:role/flink-operator"
#define MAXLAT 2000000

static struct {
    double seconds;
    bool json;
    char tmp[64], sock[100], key[200];
    pid_t daemon;
    p11kms *h;
    p11kms_caller *c;
} B = {.seconds = 2};

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

/* ---- one thread's work: an op repeated until time is up, latencies kept ---- */

typedef struct work {
    int kind; /* 0 encrypt, 1 generate data key, 2 get a secret */
    bool daemon;
    int fd;
    unsigned long n;
    float *lat; /* microseconds */
    bool failed;
} work;

static int connect_unix(void)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    snprintf(a.sun_path, sizeof(a.sun_path), "%s", B.sock);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) return -1;
    return fd;
}

/* One keep-alive request; reads the headers and Content-Length bytes. */
static bool http_call(int fd, const char *op, const char *body)
{
    char req[1024], buf[16384];
    size_t have = 0;
    long clen = -1;
    char *hend = NULL;
    int n = snprintf(req, sizeof(req),
                     "POST / HTTP/1.1\r\nHost: p11kmsd\r\nX-Amz-Target: %s%s\r\n"
                     "Content-Type: application/x-amz-json-1.1\r\nContent-Length: %zu\r\n\r\n%s",
                     strchr(op, '.') ? "" : "TrentService.", op, strlen(body), body);
    if (write(fd, req, (size_t)n) != n) return false;
    for (;;) {
        ssize_t r = read(fd, buf + have, sizeof(buf) - 1 - have);
        if (r <= 0) return false;
        have += (size_t)r;
        buf[have] = 0;
        if (hend == NULL && (hend = strstr(buf, "\r\n\r\n")) != NULL) {
            char *cl = strcasestr(buf, "\r\nContent-Length:");
            if (strncmp(buf, "HTTP/1.1 200", 12) != 0) {
                fprintf(stderr, "p11kmsd-bench: %.200s\n", buf);
                return false;
            }
            clen = cl ? strtol(cl + 17, NULL, 10) : 0;
        }
        if (hend != NULL && (long)(have - (size_t)(hend + 4 - buf)) >= clen) return true;
    }
}

/* GetSecretValue over the wire, or p11kms_secret_get in process (the secret made in setup). */
#define BENCH_SECRET "bench/orders-db"
static bool get_secret(work *w)
{
    p11kms_secret_map *m = NULL;
    bool ok;
    if (w->daemon) return http_call(w->fd, "secretsmanager.GetSecretValue", "{\"SecretId\":\"" BENCH_SECRET "\"}");
    ok = p11kms_secret_get(B.h, B.c, BENCH_SECRET, &m) == P11KMS_OK;
    p11kms_secret_map_free(m);
    return ok;
}

static void put_secret(void)
{
    p11kms_secret_map *m = NULL;
    if (p11kms_secret_map_new(&m) != P11KMS_OK || p11kms_secret_map_set(m, "user", "flink") != P11KMS_OK ||
        p11kms_secret_map_set(m, "password", "0123456789abcdef0123456789abcdef") != P11KMS_OK ||
        p11kms_secret_put_named(B.h, B.c, "bench", NULL, BENCH_SECRET, m) != P11KMS_OK)
        die("secret put");
    p11kms_secret_map_free(m);
}

static bool one_op(work *w)
{
    static const uint8_t pt[64];
    if (w->kind == 2) return get_secret(w);
    if (w->daemon) {
        char body[512];
        if (w->kind == 0) {
            snprintf(body, sizeof(body),
                     "{\"KeyId\":\"%s\",\"Plaintext\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==\"}",
                     B.key);
            return http_call(w->fd, "Encrypt", body);
        }
        snprintf(body, sizeof(body), "{\"KeyId\":\"%s\",\"KeySpec\":\"AES_256\"}", B.key);
        return http_call(w->fd, "GenerateDataKey", body);
    }
    p11kms_buf *blob = NULL, *dk = NULL;
    p11kms_rc rc = w->kind == 0 ? p11kms_encrypt(B.h, B.c, B.key, NULL, 0, pt, sizeof(pt), &blob)
                                : p11kms_generate_data_key(B.h, B.c, B.key, NULL, 0, 32, &dk, &blob);
    p11kms_buf_free(blob);
    p11kms_buf_free(dk);
    return rc == P11KMS_OK;
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
    double per_s, p50, p99, client_cpu, daemon_cpu;
} result;

static result measure(int kind, bool daemon, int threads)
{
    pthread_t t[8];
    work w[8];
    result r = {0};
    unsigned long total = 0;
    struct rusage ru0, ru1;
    double start, el;
    float *all;
    for (int i = 0; i < threads; i++) {
        memset(&w[i], 0, sizeof(w[i]));
        w[i].kind = kind;
        w[i].daemon = daemon;
        w[i].lat = malloc(sizeof(float) * MAXLAT);
        if (daemon && (w[i].fd = connect_unix()) < 0) die("connect");
    }
    getrusage(RUSAGE_SELF, &ru0);
    r.daemon_cpu = daemon ? daemon_cpu() : 0;
    start = now_s();
    for (int i = 0; i < threads; i++) pthread_create(&t[i], NULL, run, &w[i]);
    for (int i = 0; i < threads; i++) pthread_join(t[i], NULL);
    el = now_s() - start;
    getrusage(RUSAGE_SELF, &ru1);
    if (daemon) r.daemon_cpu = (daemon_cpu() - r.daemon_cpu) / el;
    for (int i = 0; i < threads; i++) {
        if (w[i].failed) die(daemon ? "request failed" : "in-process op failed");
        total += w[i].n;
    }
    all = malloc(sizeof(float) * (total ? total : 1));
    total = 0;
    for (int i = 0; i < threads; i++) {
        memcpy(all + total, w[i].lat, sizeof(float) * w[i].n);
        total += w[i].n;
        free(w[i].lat);
        if (daemon) close(w[i].fd);
    }
    qsort(all, total, sizeof(float), cmpf);
    r.per_s = (double)total / el;
    r.p50 = total ? all[total / 2] : 0;
    r.p99 = total ? all[(size_t)((double)total * 0.99)] : 0;
    r.client_cpu = ((double)(ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec) + (ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec) / 1e6 +
                    (double)(ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec) + (ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec) / 1e6) / el;
    free(all);
    return r;
}

/* ---- setup: token, key, daemon ---- */

static void setup(void)
{
    char path[512], text[2048], pin[33];
    uint8_t raw[16];
    p11kms_config *cfg = NULL;
    const char *ops[] = {OPERATOR}, *admins[] = {ADMIN};
    p11kms_caller *admin = NULL;
    p11kms_key_spec spec;
    char *id = NULL;
    snprintf(B.tmp, sizeof(B.tmp), "/tmp/p11kmsd-bench-XXXXXX");
    if (mkdtemp(B.tmp) == NULL) die("mkdtemp");
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
    snprintf(B.sock, sizeof(B.sock), "%s/kms.sock", B.tmp);
    snprintf(text, sizeof(text),
             "module = %s\ntoken = pkcs11:token=bench\npin = file:user.pin\nstore = sqlite:p11kms.db\naudit = audit.log\n"
             "listen = unix:%s\nprincipal.uid.%u = %s\n",
             P11KMS_SOFTHSM_MODULE, B.sock, (unsigned)getuid(), OPERATOR);
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
    p11kms_caller_free(admin);
    snprintf(B.key, sizeof(B.key), "%s", id);
    p11kms_free(id);
    p11kms_config_free(cfg);

    atexit(teardown);
    B.daemon = fork();
    if (B.daemon == 0) {
        const char *bin = getenv("P11KMSD_BIN") ? getenv("P11KMSD_BIN") : P11KMS_BENCH_BUILDDIR "/p11kmsd";
        int fd = open("/dev/null", O_WRONLY); /* the access log would cost the terminal, not the daemon */
        if (fd >= 0) dup2(fd, 2);
        execl(bin, bin, "--config", path, (char *)NULL);
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

int main(int argc, char **argv)
{
    static const char *names[] = {"Encrypt", "GenerateDataKey", "GetSecretValue"};
    static const int conc[] = {1, 8};
    bool first = true;
    double load[3] = {0};
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
    setup();
    put_secret();
    getloadavg(load, 3);
    if (B.json) printf("{\"loadavg\":%.2f,\"rows\":[", load[0]);
    else printf("load average %.2f; %.1f s per configuration\n%-16s %4s %10s %10s %6s %9s %9s %9s %9s %8s %8s\n", load[0], B.seconds,
                "op", "conn", "unix/s", "inproc/s", "ratio", "p50 us", "p99 us", "cli cpu", "daemon cpu", "in p50", "in p99");
    for (int k = 0; k < (int)(sizeof(names) / sizeof(names[0])); k++) {
        for (int c = 0; c < 2; c++) {
            result in = measure(k, false, conc[c]);
            result d = measure(k, true, conc[c]);
            if (B.json)
                printf("%s{\"op\":\"%s\",\"transport\":\"unix\",\"connections\":%d,\"per_s\":%.1f,\"inproc_per_s\":%.1f,"
                       "\"ratio\":%.3f,\"p50_us\":%.1f,\"p99_us\":%.1f,\"inproc_p50_us\":%.1f,\"inproc_p99_us\":%.1f,"
                       "\"client_cpu\":%.3f,\"daemon_cpu\":%.3f}",
                       first ? "" : ",", names[k], conc[c], d.per_s, in.per_s, d.per_s / in.per_s, d.p50, d.p99, in.p50,
                       in.p99, d.client_cpu, d.daemon_cpu);
            else
                printf("%-16s %4d %10.0f %10.0f %5.2fx %9.0f %9.0f %9.2f %9.2f %8.0f %8.0f\n", names[k], conc[c], d.per_s,
                       in.per_s, d.per_s / in.per_s, d.p50, d.p99, d.client_cpu, d.daemon_cpu, in.p50, in.p99);
            first = false;
        }
    }
    if (B.json) printf("]}\n");
    p11kms_caller_free(B.c);
    p11kms_close(B.h);
    teardown();
    return 0;
}
