/*
 * Throughput of the ESDK message format (src/esdk): encrypt and decrypt of
 * a stream from memory (1 GiB by default) with frames of 4 KiB and 64 KiB
 * on 1 and 2 threads, next to `openssl speed [-decrypt] -evp aes-256-gcm
 * -bytes N` run in the same bench run, as ratios: encryption against
 * openssl's encryption, decryption against its decryption. The data key is a fixed raw key:
 * obtaining it from the HSM is one operation per file and not measured.
 *
 *   bench/p11kms-file-bench [--gib N] [--json]
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "esdk/esdk.h"

#define MIB (1u << 20)

static const uint8_t KEY[32] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
                                17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

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

/* Encrypt `total` bytes from a 1 MiB buffer; returns bytes/s of plaintext. */
static double encrypt_run(uint32_t fl, unsigned threads, uint64_t total, const uint8_t *buf, pk_esdk_sink sink,
                          void *arg)
{
    pk_esdk_header hd = {0};
    pk_esdk_edk edk = {pk_bytes_of("raw", 3), pk_bytes_of("bench", 5), pk_bytes_of("x", 1)};
    pk_esdk_enc *e = NULL;
    double t0;

    hd.suite = PK_ESDK_SUITE_COMMIT;
    hd.frame_len = fl;
    t0 = now();
    check(pk_esdk_enc_new(&hd, &edk, 1, KEY, NULL, threads, sink, arg, &e), "encrypt");
    for (uint64_t done = 0; done < total; done += MIB) check(pk_esdk_enc_update(e, buf, MIB), "encrypt");
    check(pk_esdk_enc_final(e), "encrypt");
    pk_esdk_enc_free(e);
    return (double)total / (now() - t0);
}

/* Decrypt a message `rounds` times; bytes/s of plaintext. */
static double decrypt_run(const pk_buf *msg, unsigned threads, int rounds, uint64_t plain)
{
    double t0 = now();
    for (int i = 0; i < rounds; i++) {
        uint64_t out = 0;
        pk_esdk_dec *d = NULL;
        check(pk_esdk_dec_new(threads, raw_key, NULL, discard, &out, &d), "decrypt");
        for (size_t off = 0; off < msg->len; off += MIB)
            check(pk_esdk_dec_update(d, msg->data + off, msg->len - off < MIB ? msg->len - off : MIB), "decrypt");
        check(pk_esdk_dec_final(d), "decrypt");
        pk_esdk_dec_free(d);
        if (out != plain) check(pk_fail(P11KMS_ERR_INTERNAL, "decrypted %llu bytes", (unsigned long long)out), "decrypt");
    }
    return (double)plain * rounds / (now() - t0);
}

/* `openssl speed -mr [-decrypt] -evp aes-256-gcm -bytes N`: bytes/s from its +F line (0 when it cannot run). */
/*
 * With multi 2 (`-multi 2`, two processes) the sum is what two cores give
 * right now: the control for the 2-thread figures on a shared machine.
 */
static double openssl_speed(uint32_t bytes, bool decrypt, bool multi)
{
    char cmd[160], line[256];
    double v = 0;
    FILE *p;
    snprintf(cmd, sizeof(cmd), "openssl speed -mr -seconds 2 %s%s-evp aes-256-gcm -bytes %u 2>/dev/null",
             decrypt ? "-decrypt " : "", multi ? "-multi 2 " : "", bytes);
    if ((p = popen(cmd, "r")) == NULL) return 0;
    while (fgets(line, sizeof(line), p) != NULL) {
        const char *c = strrchr(line, ':');
        if (strncmp(line, "+F:", 3) == 0 && c != NULL) v = strtod(c + 1, NULL); /* -multi: the summed line comes last */
    }
    pclose(p);
    return v;
}

int main(int argc, char **argv)
{
    const uint32_t frames[] = {4096, 65536};
    uint64_t gib = 1, total, sample = 256 * (uint64_t)MIB;
    bool json = false;
    uint8_t *buf = malloc(MIB);

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) json = true;
        else if (strcmp(argv[i], "--gib") == 0 && i + 1 < argc) gib = strtoull(argv[++i], NULL, 10);
        else {
            fprintf(stderr, "usage: p11kms-file-bench [--gib N] [--json]\n");
            return 2;
        }
    }
    if (buf == NULL || gib == 0) return 1;
    total = gib << 30;
    if (sample > total) sample = total;
    for (size_t i = 0; i < MIB; i++) buf[i] = (uint8_t)(i * 7);
    if (json) printf("{\"bytes\":%llu,\"results\":[", (unsigned long long)total);
    else printf("%-6s %9s %9s %9s %9s %9s %9s %8s %8s %7s %7s %8s\n", "frame", "ossl enc", "ossl dec", "enc 1t",
                "enc 2t", "dec 1t", "dec 2t", "enc/ossl", "dec/ossl", "enc 2/1", "dec 2/1", "ossl 2/1");
    for (size_t f = 0; f < sizeof(frames) / sizeof(frames[0]); f++) {
        uint64_t sink = 0;
        pk_buf msg = {0};
        int rounds = (int)(total / sample);
        double ossl = openssl_speed(frames[f], false, false), ossl_d = openssl_speed(frames[f], true, false);
        double ossl2 = openssl_speed(frames[f], false, true);
        double e1 = encrypt_run(frames[f], 1, total, buf, discard, &sink);
        double e2 = encrypt_run(frames[f], 2, total, buf, discard, &sink);
        double d1, d2;
        encrypt_run(frames[f], 2, sample, buf, keep, &msg);
        d1 = decrypt_run(&msg, 1, rounds, sample);
        d2 = decrypt_run(&msg, 2, rounds, sample);
        pk_buf_free(&msg);
        if (json)
            printf("%s{\"frame\":%u,\"openssl_enc_Bps\":%.0f,\"openssl_dec_Bps\":%.0f,\"enc1_Bps\":%.0f,"
                   "\"enc2_Bps\":%.0f,\"dec1_Bps\":%.0f,\"dec2_Bps\":%.0f,\"openssl_multi2_Bps\":%.0f}",
                   f ? "," : "", frames[f], ossl, ossl_d, e1, e2, d1, d2, ossl2);
        else
            printf("%-6u %7.0fMB %7.0fMB %7.0fMB %7.0fMB %7.0fMB %7.0fMB %8.2f %8.2f %7.2f %7.2f %8.2f\n", frames[f],
                   ossl / 1e6, ossl_d / 1e6, e1 / 1e6, e2 / 1e6, d1 / 1e6, d2 / 1e6, ossl > 0 ? e1 / ossl : 0,
                   ossl_d > 0 ? d1 / ossl_d : 0, e2 / e1, d2 / d1, ossl > 0 ? ossl2 / ossl : 0);
    }
    if (json) printf("]}\n");
    free(buf);
    return 0;
}
