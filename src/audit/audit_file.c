/*
 * File helpers for the audit log: reading the last line from the end (so
 * restart is O(1) in file size), the file number of a rotated series, and
 * listing the series in chain order.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit/audit_impl.h"

pk_result pk_audit_unavailable(const char *path, const char *why)
{
    return pk_fail(P11KMS_ERR_AUDIT_UNAVAILABLE, "audit unavailable: cannot write %s: %s", path, why);
}

int pk_audit_open_nofollow(const char *path, int flags, mode_t mode)
{
    return open(path, flags | O_NOFOLLOW | O_CLOEXEC, mode);
}

pk_result pk_audit_open_failed(const char *path, int err)
{
    if (err == ELOOP)
        return pk_audit_unavailable(path, "it is a symbolic link (the audit trail never follows links: replace it "
                                          "with the log file itself)");
    return pk_audit_unavailable(path, strerror(err));
}

/* "base.tmp-PID" -> PID. */
static bool tmp_pid(const char *name, const char *base, long *pid)
{
    static const char tag[] = ".tmp-";
    size_t bl = strlen(base), tl = sizeof(tag) - 1;
    const char *d;
    char *end;

    if (strncmp(name, base, bl) != 0 || strncmp(name + bl, tag, tl) != 0) return false;
    d = name + bl + tl;
    if (*d < '1' || *d > '9' || strspn(d, "0123456789") != strlen(d) || strlen(d) > 9) return false;
    *pid = strtol(d, &end, 10);
    return *end == '\0';
}

/*
 * A rotation writes PATH.tmp-PID and renames it over PATH; a crash in
 * between leaves it behind. Called with the current file locked, so no
 * rotation is in flight; still only files of processes that are gone (or
 * of this one) are removed, never one a live process might be using.
 */
void pk_audit_remove_stale_tmp(const char *path)
{
    const char *base = pk_audit_basename(path);
    char *dir = base == path ? strdup(".") : strndup(path, (size_t)(base - path));
    DIR *d = dir != NULL ? opendir(dir) : NULL;
    struct dirent *e;
    long me = (long)getpid(), pid;

    while (d != NULL && (e = readdir(d)) != NULL) {
        if (!tmp_pid(e->d_name, base, &pid)) continue;
        if (pid == me || (kill((pid_t)pid, 0) != 0 && errno == ESRCH)) (void)unlinkat(dirfd(d), e->d_name, 0);
    }
    if (d != NULL) closedir(d);
    free(dir);
}

const char *pk_audit_basename(const char *path)
{
    const char *s = strrchr(path, '/');
    return s != NULL ? s + 1 : path;
}

int pk_audit_write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n > 0) {
        ssize_t w = write(fd, c, n);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return -1;
        if (w == 0) {
            errno = EIO;
            return -1;
        }
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

static pk_result pread_all(int fd, const char *path, void *buf, size_t n, off_t off)
{
    char *c = buf;
    while (n > 0) {
        ssize_t got = pread(fd, c, n, off);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0)
            return pk_fail(P11KMS_ERR_AUDIT_UNAVAILABLE, "audit unavailable: cannot read %s: %s", path,
                           got < 0 ? strerror(errno) : "file shrank while reading");
        c += got;
        n -= (size_t)got;
        off += got;
    }
    return PK_OK;
}

static pk_result tail_of_line(const char *path, const char *line, size_t len, pk_audit_tail *t)
{
    pk_result r = pk_audit_parse_tail(line, len, t, NULL, NULL, 0);
    if (pk_failed(r)) {
        char why[256]; /* a copy: pk_fail rewrites the detail it would otherwise read from */
        snprintf(why, sizeof(why), "%s", pk_error_detail());
        return pk_fail(P11KMS_ERR_AUDIT_UNAVAILABLE,
                       "audit unavailable: cannot continue %s: its last record is malformed (%s); run p11kms audit verify",
                       path, why);
    }
    return pk_sha256(line, len, t->hash);
}

pk_result pk_audit_read_tail(int fd, const char *path, off_t size, pk_audit_tail *t, off_t *torn)
{
    /* Room for a torn write (at most one line) and the complete line before it. */
    const size_t window_max = 2 * (size_t)PK_AUDIT_MAX_LINE + 4;
    size_t window = (size_t)size < window_max ? (size_t)size : window_max;
    char *buf = NULL;
    size_t end, start;
    pk_result r = PK_OK;

    memset(t, 0, sizeof(*t));
    *torn = 0;
    if (size == 0) return PK_OK;
    buf = malloc(window);
    PK_CHECK_ALLOC(buf);
    PK_TRY(pread_all(fd, path, buf, window, size - (off_t)window));
    end = window;
    while (end > 0 && buf[end - 1] != '\n') end--;
    *torn = (off_t)(window - end);
    if (end == 0) {
        /* No newline in the window: the whole file is one torn line, or a line is too long. */
        PK_CHECK((size_t)size == window, P11KMS_ERR_AUDIT_UNAVAILABLE,
                 "audit unavailable: cannot continue %s: no complete line in its last %zu bytes", path, window);
        goto out;
    }
    start = end - 1;
    while (start > 0 && buf[start - 1] != '\n') start--;
    PK_CHECK(start > 0 || (size_t)size == window, P11KMS_ERR_AUDIT_UNAVAILABLE,
             "audit unavailable: cannot continue %s: its last line is longer than %d bytes", path, PK_AUDIT_MAX_LINE);
    PK_TRY(tail_of_line(path, buf + start, end - 1 - start, t));
out:
    free(buf);
    return r;
}

pk_result pk_audit_file_no(int fd, const char *path, uint64_t *file_no)
{
    struct stat st;
    char *buf = NULL;
    size_t n;
    char *nl;
    pk_audit_tail t;
    pk_result r = PK_OK;

    *file_no = 1;
    PK_ENSURE(fstat(fd, &st) == 0, P11KMS_ERR_AUDIT_UNAVAILABLE, "audit unavailable: cannot stat %s: %s", path,
              strerror(errno));
    n = (size_t)st.st_size < (size_t)PK_AUDIT_MAX_LINE + 1 ? (size_t)st.st_size : (size_t)PK_AUDIT_MAX_LINE + 1;
    if (n == 0) return PK_OK;
    buf = malloc(n);
    PK_CHECK_ALLOC(buf);
    PK_TRY(pread_all(fd, path, buf, n, 0));
    nl = memchr(buf, '\n', n);
    if (nl != NULL && pk_ok(pk_audit_parse_tail(buf, (size_t)(nl - buf), &t, NULL, NULL, 0)) &&
        strcmp(t.type, PK_AUDIT_T_LINK) == 0)
        *file_no = t.file_no;
    pk_error_clear();
out:
    free(buf);
    return r;
}

/* ---- The rotated series ---- */

typedef struct numbered {
    unsigned long no;
    char *path;
} numbered;

static int by_no(const void *a, const void *b)
{
    const numbered *x = a, *y = b;
    return x->no < y->no ? -1 : x->no > y->no;
}

/* "base.NNNNNN" (six or more digits) -> NNNNNN. */
static bool rotated_no(const char *name, const char *base, unsigned long *no)
{
    size_t bl = strlen(base), dl;
    const char *d;
    char *end;

    if (strncmp(name, base, bl) != 0 || name[bl] != '.') return false;
    d = name + bl + 1;
    dl = strspn(d, "0123456789");
    if (dl < 6 || d[dl] != '\0' || dl > 18) return false;
    errno = 0;
    *no = strtoul(d, &end, 10);
    return errno == 0 && *no > 0;
}

void pk_audit_series_free(char **files, size_t n)
{
    if (files == NULL) return;
    for (size_t i = 0; i < n; i++) free(files[i]);
    free(files);
}

pk_result pk_audit_series(const char *path, char ***files, size_t *n)
{
    char *dir = NULL;
    const char *base = pk_audit_basename(path);
    DIR *d = NULL;
    struct dirent *e;
    numbered *list = NULL;
    size_t count = 0, cap = 0;
    char **out = NULL;
    struct stat st;
    pk_result r = PK_OK;

    *files = NULL;
    *n = 0;
    if (base == path)
        dir = strdup(".");
    else
        dir = strndup(path, (size_t)(base - path - 1 > 0 ? base - path - 1 : 1));
    PK_CHECK_ALLOC(dir);
    d = opendir(dir);
    PK_CHECK(d != NULL, P11KMS_ERR_AUDIT_UNAVAILABLE, "cannot list %s: %s", dir, strerror(errno));
    while ((e = readdir(d)) != NULL) {
        unsigned long no;
        if (!rotated_no(e->d_name, base, &no)) continue;
        if (count == cap) {
            numbered *grown = realloc(list, (cap = cap ? cap * 2 : 16) * sizeof(*list));
            PK_CHECK_ALLOC(grown);
            list = grown;
        }
        list[count].no = no;
        PK_CHECK(asprintf(&list[count].path, "%s/%s", dir, e->d_name) >= 0, P11KMS_ERR_NO_MEMORY, "out of memory");
        count++;
    }
    if (count > 1) qsort(list, count, sizeof(*list), by_no); /* qsort(NULL, 0) is undefined */
    out = calloc(count + 1, sizeof(*out));
    PK_CHECK_ALLOC(out);
    for (size_t i = 0; i < count; i++) {
        out[i] = list[i].path;
        list[i].path = NULL;
    }
    *n = count;
    if (stat(path, &st) == 0) {
        out[count] = strdup(path);
        PK_CHECK_ALLOC(out[count]);
        (*n)++;
    }
    *files = out;
    out = NULL;
out:
    if (pk_failed(r)) pk_audit_series_free(out, count + 1);
    for (size_t i = 0; i < count && list != NULL; i++) free(list[i].path);
    free(list);
    if (d != NULL) closedir(d);
    free(dir);
    return r;
}
