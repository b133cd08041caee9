/*
 * The audit line verifier (src/audit/audit_verify.c) over a series of up to
 * three files. The verifier is compiled into this target with the seal MAC
 * replaced: the real one is an HMAC in the HSM, here it is the SHA-256 of
 * the sealed prefix, so seeds can carry valid seals without a token. The
 * first input byte picks the flags and the file count; form feeds (\f)
 * separate the files.
 */
#include "config.h"

#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include "crypto/crypto.h"
#include "fuzz/fuzz.h"

#define pk_audit_seal_mac fz_seal_mac
#define pk_audit_verify fz_audit_verify
#define pk_audit_problem_name fz_audit_problem_name
#include "audit/audit_verify.c"

#define MAX_FILES 3

pk_result fz_seal_mac(pk_p11 *p11, const pk_keyid *key, const char *prefix, size_t n, uint8_t mac[PK_HMAC_LEN])
{
    (void)p11;
    (void)key;
    return pk_sha256(prefix, n, mac);
}

static char dir[64];
static const char *const names[MAX_FILES] = {"audit.log.000001", "audit.log.000002", "audit.log"};

static void write_file(const char *path, const uint8_t *data, size_t size)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || (size > 0 && write(fd, data, size) != (ssize_t)size) || close(fd) != 0) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char paths[MAX_FILES][96];
    const char *files[MAX_FILES];
    pk_audit_report rep;
    unsigned flags, n;

    if (size < 1) return 0;
    if (dir[0] == '\0') {
        snprintf(dir, sizeof(dir), "/tmp/p11kms-fuzz-audit.XXXXXX");
        if (mkdtemp(dir) == NULL) abort();
    }
    flags = data[0] & 1u ? PK_AUDIT_VERIFY_ALLOW_UNSEALED : 0;
    n = 1 + (data[0] >> 1) % MAX_FILES;
    data++;
    size--;
    for (unsigned i = 0; i < n; i++) {
        const uint8_t *part;
        size_t part_len;
        fz_split(&data, &size, &part, &part_len, '\f');
        /* The newest file is always "audit.log"; older ones are numbered. */
        snprintf(paths[i], sizeof(paths[i]), "%s/%s", dir, names[MAX_FILES - n + i]);
        write_file(paths[i], part, part_len);
        files[i] = paths[i];
    }
    if (pk_failed(fz_audit_verify(NULL, NULL, files, n, flags, &rep))) abort(); /* only I/O can fail here */
    if (rep.problem != PK_AUDIT_OK && fz_audit_problem_name(rep.problem) == NULL) abort();
    return 0;
}
