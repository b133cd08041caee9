/*
 * Throughput of the ESDK message format (src/esdk): encrypt and decrypt of
 * a stream from memory (1 GiB by default) with frames of 4 KiB and 64 KiB
 * on 1 and 2 threads, next to `openssl speed [-decrypt] -evp aes-256-gcm
 * -bytes N` run in the same bench run, as ratios: encryption against
 * openssl's encryption, decryption against its decryption. The data key is
 * a fixed raw key: obtaining it from the HSM is one operation per file and
 * not measured.
 *
 * On a shared machine wall-clock figures move with the load, so:
 * - per core: our one-thread figure per CPU-second (user + system) against
 *   openssl's own figure, which divides by its CPU user time;
 * - two threads: wall-clock, ours 2-thread/1-thread next to the control
 *   `openssl speed -elapsed -multi 2` / `openssl speed -elapsed`, which
 *   says what two cores give right now;
 * - --reps rounds (3) of every measurement, taken in turns: the figures
 *   are medians, a ratio is the median of the ratios within each round.
 *
 *   bench/p11kms-file-bench [--gib N] [--reps N] [--json]
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "esdk/esdk.h"

#define MIB (1u << 20)
#define REPS_MAX 15

static const uint8_t KEY[32] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
                                17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static double cpu_now(void)
{
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return (double)u.ru_utime.tv_sec + u.ru_utime.tv_usec / 1e6 + (double)u.ru_stime.tv_sec + u.ru_stime.tv_usec / 1e6;
}

/* A run's bytes per wall-clock second and per CPU-second. */
typedef struct rate {
    double wall, cpu;
} rate;

static pk_result discard(void *arg, const uint8_t *p, size_t n)
{
    (void)p;
    *(uint64_t *)arg += n;
    return PK_OK;
}
static pk_result keep(void *arg, const uint8_t *p, size_t n) { return pk_buf_append(arg, p, n); }
static pk_result raw_key(void *arg, const pk_esdk_header *hd, pk_secbuf *key)
{
    (void)arg;
    (void)hd;
    return pk_secbuf_set(key, KEY, 32);
}

static int check(pk_result r, const char *what)
{
    if (pk_ok(r)) return 0;
    fprintf(stderr, "p11kms-file-bench: %s: %s\n", what, p11kms_last_error());
    exit(1);
}

/* Encrypt `total` bytes from a 1 MiB buffer; bytes of plaintext per second. */
static rate encrypt_run(uint32_t fl, unsigned threads, uint64_t total, const uint8_t *buf, pk_esdk_sink sink,
                          void *arg)
{
    pk_esdk_header hd = {0};
    pk_esdk_edk edk = {pk_bytes_of("raw", 3), pk_bytes_of("bench", 5), pk_bytes_of("x", 1)};
    pk_esdk_enc *e = NULL;
    double t0, c0;

    hd.suite = PK_ESDK_SUITE_COMMIT;
    hd.frame_len = fl;
    t0 = now();
    c0 = cpu_now();
    check(pk_esdk_enc_new(&hd, &edk, 1, KEY, NULL, threads, sink, arg, &e), "encrypt");
    for (uint64_t done = 0; done < total; done += MIB) check(pk_esdk_enc_update(e, buf, MIB), "encrypt");
    check(pk_esdk_enc_final(e), "encrypt");
    pk_esdk_enc_free(e);
    return (rate){(double)total / (now() - t0), (double)total / (cpu_now() - c0)};
}

/*
 * Decrypt a message `rounds` times; bytes of plaintext per second. With
 * stage, each MiB is first copied into it, untimed, as read() fills the
 * command's buffer: decryption then reads a buffer in cache, like
 * encryption here and like openssl speed. Without, it reads the message
 * where it lies (256 MiB: from main memory).
 */
static rate decrypt_run(const pk_buf *msg, unsigned threads, int rounds, uint64_t plain, uint8_t *stage)
{
    double wall = 0, cpu = 0, t0, c0;
    for (int i = 0; i < rounds; i++) {
        uint64_t out = 0;
        pk_esdk_dec *d = NULL;
        t0 = now();
        c0 = cpu_now();
        check(pk_esdk_dec_new(threads, raw_key, NULL, discard, &out, &d), "decrypt");
        for (size_t off = 0; off < msg->len; off += MIB) {
            size_t n = msg->len - off < MIB ? msg->len - off : MIB;
            const uint8_t *p = msg->data + off;
            if (stage != NULL) {
                wall += now() - t0;
                cpu += cpu_now() - c0;
                memcpy(stage, p, n);
                p = stage;
                t0 = now();
                c0 = cpu_now();
            }
            check(pk_esdk_dec_update(d, p, n), "decrypt");
        }
        check(pk_esdk_dec_final(d), "decrypt");
        pk_esdk_dec_free(d);
        wall += now() - t0;
        cpu += cpu_now() - c0;
        if (out != plain)
            check(pk_fail(P11KMS_ERR_INTERNAL, "decrypted %llu bytes", (unsigned long long)out), "decrypt");
    }
    return (rate){(double)plain * rounds / wall, (double)plain * rounds / cpu};
}

/*
 * `openssl speed -mr [-decrypt] [-elapsed] [-multi 2] -evp aes-256-gcm
 * -bytes N`: bytes/s from its +F line (0 when it cannot run). Without
 * -elapsed openssl divides by its CPU user time; with -multi the summed
 * line comes last.
 */
static double openssl_speed(uint32_t bytes, bool decrypt, bool elapsed, bool multi)
{
    char cmd[200], line[256];
    double v = 0;
    FILE *p;
    snprintf(cmd, sizeof(cmd), "openssl speed -mr -seconds 1 %s%s%s-evp aes-256-gcm -bytes %u 2>/dev/null",
             decrypt ? "-decrypt " : "", elapsed ? "-elapsed " : "", multi ? "-multi 2 " : "", bytes);
    if ((p = popen(cmd, "r")) == NULL) return 0;
    while (fgets(line, sizeof(line), p) != NULL) {
        const char *c = strrchr(line, ':');
        if (strncmp(line, "+F:", 3) == 0 && c != NULL) v = strtod(c + 1, NULL);
    }
    pclose(p);
    return v;
}

static double ratio(double a, double b) { return b > 0 ? a / b : 0; }

/* One round's figures for one frame length, bytes per second. */
enum {
    OSSL_ENC, OSSL_DEC,     /* openssl speed, its CPU user time as divisor */
    OSSL_WALL, OSSL_WALL2,  /* openssl speed -elapsed, one process and -multi 2 */
    E1C, D1C, DMEMC, E2C, D2C, /* ours per CPU-second; DMEMC: the message read from main memory */
    E1W, E2W, D1W, D2W,     /* ours per wall-clock second */
    NFIG
};
/* The ratios, taken within each round: its figures were measured seconds apart. */
enum { R_ENC, R_DEC, R_OSSL21, R_ENC21, R_DEC21, NRATIO };

static void round_ratios(const double *f, double *r)
{
    r[R_ENC] = ratio(f[E1C], f[OSSL_ENC]);
    r[R_DEC] = ratio(f[D1C], f[OSSL_DEC]);
    r[R_OSSL21] = ratio(f[OSSL_WALL2], f[OSSL_WALL]);
    r[R_ENC21] = ratio(f[E2W], f[E1W]);
    r[R_DEC21] = ratio(f[D2W], f[D1W]);
}

/* One round of every measurement for frame length fl. */
static void measure(double *f, uint32_t fl, uint64_t total, uint64_t sample, const uint8_t *buf, uint8_t *stage)
{
    uint64_t sink = 0;
    pk_buf msg = {0};
    int rounds = (int)(total / sample);
    rate r;
    f[OSSL_ENC] = openssl_speed(fl, false, false, false);
    f[OSSL_DEC] = openssl_speed(fl, true, false, false);
    f[OSSL_WALL] = openssl_speed(fl, false, true, false);
    f[OSSL_WALL2] = openssl_speed(fl, false, true, true);
    r = encrypt_run(fl, 1, total, buf, discard, &sink);
    f[E1C] = r.cpu, f[E1W] = r.wall;
    r = encrypt_run(fl, 2, total, buf, discard, &sink);
    f[E2C] = r.cpu, f[E2W] = r.wall;
    encrypt_run(fl, 2, sample, buf, keep, &msg);
    r = decrypt_run(&msg, 1, rounds, sample, stage);
    f[D1C] = r.cpu, f[D1W] = r.wall;
    r = decrypt_run(&msg, 2, rounds, sample, stage);
    f[D2C] = r.cpu, f[D2W] = r.wall;
    f[DMEMC] = decrypt_run(&msg, 1, rounds, sample, NULL).cpu;
    pk_buf_free(&msg);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The median of v[0], v[stride], ... (n values). */
static double median(const double *v, size_t stride, unsigned n)
{
    double tmp[REPS_MAX];
    for (unsigned i = 0; i < n; i++) tmp[i] = v[i * stride];
    qsort(tmp, n, sizeof(tmp[0]), cmp_double);
    return n % 2 ? tmp[n / 2] : (tmp[n / 2 - 1] + tmp[n / 2]) / 2;
}

static void load_avg(double la[3])
{
    if (getloadavg(la, 3) != 3) la[0] = la[1] = la[2] = -1;
}

int main(int argc, char **argv)
{
    const uint32_t frames[] = {4096, 65536};
    static double fig[REPS_MAX][2][NFIG], rat[REPS_MAX][2][NRATIO];
    uint64_t gib = 1, total, sample = 256 * (uint64_t)MIB;
    unsigned reps = 3;
    double la0[3], la1[3], m[2][NFIG], mr[2][NRATIO];
    bool json = false;
    uint8_t *buf = malloc(MIB), *stage = malloc(MIB);

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) json = true;
        else if (strcmp(argv[i], "--gib") == 0 && i + 1 < argc) gib = strtoull(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc) reps = (unsigned)strtoul(argv[++i], NULL, 10);
        else {
            fprintf(stderr, "usage: p11kms-file-bench [--gib N] [--reps 1..%d] [--json]\n", REPS_MAX);
            return 2;
        }
    }
    if (buf == NULL || stage == NULL || gib == 0 || reps == 0 || reps > REPS_MAX) return 1;
    total = gib << 30;
    if (sample > total) sample = total;
    for (size_t i = 0; i < MIB; i++) buf[i] = (uint8_t)(i * 7);
    load_avg(la0);
    for (unsigned r = 0; r < reps; r++)
        for (size_t f = 0; f < 2; f++) {
            measure(fig[r][f], frames[f], total, sample, buf, stage);
            round_ratios(fig[r][f], rat[r][f]);
        }
    load_avg(la1);
    for (size_t f = 0; f < 2; f++) {
        for (int k = 0; k < NFIG; k++) m[f][k] = median(&fig[0][f][k], 2 * NFIG, reps);
        for (int k = 0; k < NRATIO; k++) mr[f][k] = median(&rat[0][f][k], 2 * NRATIO, reps);
    }
    if (json) {
        printf("{\"bytes\":%llu,\"reps\":%u,\"load_before\":%.2f,\"load_after\":%.2f,\"results\":[",
               (unsigned long long)total, reps, la0[0], la1[0]);
        for (size_t f = 0; f < 2; f++) {
            const double *x = m[f];
            printf("%s{\"frame\":%u,\"openssl_enc_Bps\":%.0f,\"openssl_dec_Bps\":%.0f,\"enc1_cpu_Bps\":%.0f,"
                   "\"dec1_cpu_Bps\":%.0f,\"openssl_elapsed_Bps\":%.0f,\"openssl_multi2_elapsed_Bps\":%.0f,"
                   "\"enc1_Bps\":%.0f,\"enc2_Bps\":%.0f,\"dec1_Bps\":%.0f,\"dec2_Bps\":%.0f,"
                   "\"dec1_from_memory_cpu_Bps\":%.0f,\"enc2_cpu_Bps\":%.0f,\"dec2_cpu_Bps\":%.0f,"
                   "\"enc_vs_openssl\":%.3f,\"dec_vs_openssl\":%.3f,\"openssl_2_over_1\":%.3f,"
                   "\"enc_2_over_1\":%.3f,\"dec_2_over_1\":%.3f}",
                   f ? "," : "", frames[f], x[OSSL_ENC], x[OSSL_DEC], x[E1C], x[D1C], x[OSSL_WALL], x[OSSL_WALL2],
                   x[E1W], x[E2W], x[D1W], x[D2W], x[DMEMC], x[E2C], x[D2C], mr[f][R_ENC], mr[f][R_DEC],
                   mr[f][R_OSSL21], mr[f][R_ENC21], mr[f][R_DEC21]);
        }
        printf("]}\n");
        free(buf);
        free(stage);
        return 0;
    }
    printf("%llu MiB, median of %u rounds (ratios: the median of each round's ratio); load average %.2f %.2f %.2f "
           "before, %.2f %.2f %.2f after\n",
           (unsigned long long)(total >> 20), reps, la0[0], la0[1], la0[2], la1[0], la1[1], la1[2]);
    printf("per core (MB per CPU-second)                  | two threads (MB/s wall clock)\n");
    printf("%-6s %8s %8s %8s %8s %8s %5s %5s | ", "frame", "ossl enc", "ossl dec", "enc 1t", "dec 1t", "dec mem",
           "enc/o", "dec/o");
    printf("%8s %8s %8s %8s %8s %8s %5s %5s %5s\n", "ossl 1p", "ossl 2p", "enc 1t", "enc 2t", "dec 1t", "dec 2t",
           "o 2/1", "e 2/1", "d 2/1");
    for (size_t f = 0; f < 2; f++) {
        const double *x = m[f];
        printf("%-6u %8.0f %8.0f %8.0f %8.0f %8.0f %5.2f %5.2f | ", frames[f], x[OSSL_ENC] / 1e6, x[OSSL_DEC] / 1e6,
               x[E1C] / 1e6, x[D1C] / 1e6, x[DMEMC] / 1e6, mr[f][R_ENC], mr[f][R_DEC]);
        printf("%8.0f %8.0f %8.0f %8.0f %8.0f %8.0f %5.2f %5.2f %5.2f\n", x[OSSL_WALL] / 1e6, x[OSSL_WALL2] / 1e6,
               x[E1W] / 1e6, x[E2W] / 1e6, x[D1W] / 1e6, x[D2W] / 1e6, mr[f][R_OSSL21], mr[f][R_ENC21],
               mr[f][R_DEC21]);
    }
    printf("each round's ratios, enc/o dec/o o 2/1 e 2/1 d 2/1:\n");
    for (size_t f = 0; f < 2; f++) {
        printf("%-6u", frames[f]);
        for (unsigned r = 0; r < reps; r++)
            printf("  %.2f %.2f %.2f %.2f %.2f%s", rat[r][f][R_ENC], rat[r][f][R_DEC], rat[r][f][R_OSSL21],
                   rat[r][f][R_ENC21], rat[r][f][R_DEC21], r + 1 < reps ? " |" : "");
        printf("\n");
    }
    printf("dec mem: one thread decrypting the message where it lies in main memory, not through a buffer in cache\n");
    free(buf);
    free(stage);
    return 0;
}
