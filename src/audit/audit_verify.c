/*
 * Verifying an audit series: one pass over every line, oldest file first,
 * checking what a writer guarantees (docs/AUDIT.md, "Verification"):
 *
 *   - each line is a JSON object with the fields of its type;
 *   - its seq is one more than the line before, and its prev is the
 *     SHA-256 of the line before (genesis: 64 zeros);
 *   - each seal's HMAC, recomputed in the HSM, matches (constant time);
 *   - each file but the newest ends with a rotation seal, and each file but
 *     the oldest starts with a link naming the file before it;
 *   - nothing follows the last seal of the newest file.
 *
 * At the first line that breaks the chain the verifier looks around it
 * (the next line, later lines of the same file) to name the kind of
 * tampering, then stops: everything after a break is unauthenticated.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit/audit_impl.h"
#include "crypto/wipe.h"
#include "util/codec.h"

typedef struct vfile {
    const char *path;
    char *text;
    size_t size;
    size_t *starts; /* offset of each line */
    size_t nlines;  /* complete lines */
    bool torn;      /* bytes after the last newline */
} vfile;

/* One parsed line. */
typedef struct vline {
    bool parsed;
    pk_audit_tail t;
    char prev_hex[PK_AUDIT_HASH_HEX_LEN + 1];
    char prev_file[256];
    char error[200];
} vline;

typedef struct vstate {
    pk_p11 *p11;
    const pk_keyid *key;
    unsigned flags;
    pk_audit_report *rep;
    bool hard; /* a finding that ends the pass (all but an unreadable line still in the chain) */
    uint64_t exp_seq;
    uint8_t last_hash[PK_SHA256_LEN];
    char last_hash_hex[PK_AUDIT_HASH_HEX_LEN + 1];
    /* The last accepted line. */
    bool have_last;
    size_t last_file;
    uint64_t last_line, last_seq;
    const char *last_text;
    size_t last_len;
    char last_type[8], last_reason[16];
    char last_prev_hex[PK_AUDIT_HASH_HEX_LEN + 1];
    bool last_sealed_ok; /* the last line is a seal whose MAC verified */
    /* The first line after the last good seal. */
    size_t unsealed_file;
    uint64_t unsealed_line, unsealed_seq;
} vstate;

const char *pk_audit_problem_name(pk_audit_problem p)
{
    switch (p) {
    case PK_AUDIT_OK: return "ok";
    case PK_AUDIT_MODIFIED: return "modified";
    case PK_AUDIT_DELETED: return "deleted";
    case PK_AUDIT_REORDERED: return "reordered";
    case PK_AUDIT_INSERTED: return "inserted";
    case PK_AUDIT_TRUNCATED: return "truncated";
    case PK_AUDIT_MISSING_FILE: return "missing-file";
    case PK_AUDIT_BAD_SEAL: return "bad-seal";
    case PK_AUDIT_MALFORMED: return "malformed";
    default: return "unknown";
    }
}

static void finding(vstate *s, pk_audit_problem p, const char *file, uint64_t line, uint64_t seq, const char *fmt, ...)
    PK_PRINTF(6, 7);
static void finding(vstate *s, pk_audit_problem p, const char *file, uint64_t line, uint64_t seq, const char *fmt, ...)
{
    va_list ap;
    s->hard = true;
    s->rep->problem = p;
    snprintf(s->rep->file, sizeof(s->rep->file), "%s", file);
    s->rep->line = line;
    s->rep->seq = seq;
    va_start(ap, fmt);
    vsnprintf(s->rep->detail, sizeof(s->rep->detail), fmt, ap);
    va_end(ap);
}

/*
 * A line that is not valid JSON but whose chain is intact (its seq and prev
 * fit, and the next line links to its hash): reported as malformed unless
 * something else is found, and the pass goes on from its hash.
 */
static void unreadable_in_chain(vstate *s, const char *file, uint64_t line, uint64_t seq, const char *why)
{
    s->rep->unreadable++;
    if (s->rep->problem != PK_AUDIT_OK) return;
    s->rep->problem = PK_AUDIT_MALFORMED;
    snprintf(s->rep->file, sizeof(s->rep->file), "%s", file);
    s->rep->line = line;
    s->rep->seq = seq;
    snprintf(s->rep->detail, sizeof(s->rep->detail),
             "line %" PRIu64 " (seq %" PRIu64 ") is not valid JSON (%s); its hash chain is intact, so the lines "
             "after it were verified",
             line, seq, why);
}

/* ---- Loading ---- */

static void vfile_free(vfile *f)
{
    free(f->text);
    free(f->starts);
    memset(f, 0, sizeof(*f));
}

/*
 * Read the whole file. A shared flock while taking its size makes sure no
 * writer is half-way through a line at that moment; appends after it are
 * simply not part of this verification.
 */
static pk_result vfile_load(const char *path, vfile *f)
{
    struct stat st;
    int fd;
    size_t got = 0, cap = 0;
    pk_result r = PK_OK;

    memset(f, 0, sizeof(*f));
    f->path = path;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    PK_ENSURE(fd >= 0, P11KMS_ERR_AUDIT_UNAVAILABLE, "cannot open %s: %s", path, strerror(errno));
    while (flock(fd, LOCK_SH) != 0 && errno == EINTR) {}
    PK_CHECK(fstat(fd, &st) == 0, P11KMS_ERR_AUDIT_UNAVAILABLE, "cannot stat %s: %s", path, strerror(errno));
    f->size = (size_t)st.st_size;
    f->text = malloc(f->size + 1);
    PK_CHECK_ALLOC(f->text);
    while (got < f->size) {
        ssize_t n = pread(fd, f->text + got, f->size - got, (off_t)got);
        if (n < 0 && errno == EINTR) continue;
        PK_CHECK(n > 0, P11KMS_ERR_AUDIT_UNAVAILABLE, "cannot read %s: %s", path,
                 n < 0 ? strerror(errno) : "file shrank while reading");
        got += (size_t)n;
    }
    f->text[f->size] = '\0';
    for (size_t off = 0; off < f->size;) {
        char *nl = memchr(f->text + off, '\n', f->size - off);
        if (nl == NULL) {
            f->torn = true;
            break;
        }
        if (f->nlines == cap) {
            size_t *grown = realloc(f->starts, (cap = cap ? cap * 2 : 1024) * sizeof(*grown));
            PK_CHECK_ALLOC(grown);
            f->starts = grown;
        }
        f->starts[f->nlines++] = off;
        off = (size_t)(nl - f->text) + 1;
    }
out:
    (void)flock(fd, LOCK_UN);
    close(fd);
    if (pk_failed(r)) vfile_free(f);
    return r;
}

static const char *line_text(const vfile *f, size_t i, size_t *len)
{
    size_t start = f->starts[i];
    const char *nl = memchr(f->text + start, '\n', f->size - start);
    *len = (size_t)(nl - (f->text + start));
    return f->text + start;
}

static void parse_line(const vfile *f, size_t i, vline *v)
{
    size_t len;
    const char *text = line_text(f, i, &len);
    memset(v, 0, sizeof(*v));
    v->parsed = pk_ok(pk_audit_parse_tail(text, len, &v->t, v->prev_hex, v->prev_file, sizeof(v->prev_file))) &&
                pk_ok(pk_sha256(text, len, v->t.hash));
    if (!v->parsed) snprintf(v->error, sizeof(v->error), "%s", pk_error_detail());
    pk_error_clear();
}

/* ---- Classifying a break in the chain ---- */

/* Does a later line of this file carry sequence number seq? */
static bool seq_later(const vfile *f, size_t from, uint64_t seq)
{
    for (size_t i = from; i < f->nlines; i++) {
        vline v;
        parse_line(f, i, &v);
        if (v.parsed && v.t.seq == seq) return true;
    }
    return false;
}

/*
 * Was line li (seq > expected) moved up from later in the file? Then a later
 * line carries seq-1 and hashes to its prev, and no later line is an exact
 * copy of it (a copy would be an insertion).
 */
static bool moved_here(const vfile *f, size_t li, const vline *cur)
{
    size_t len, olen;
    const char *text = line_text(f, li, &len);
    bool linked = false;

    for (size_t i = li + 1; i < f->nlines; i++) {
        vline v;
        const char *other = line_text(f, i, &olen);
        if (olen == len && memcmp(other, text, len) == 0) return false;
        parse_line(f, i, &v);
        if (v.parsed && v.t.seq == cur->t.seq - 1) {
            char hex[PK_AUDIT_HASH_HEX_LEN + 1];
            pk_hex_encode(v.t.hash, PK_SHA256_LEN, hex);
            if (strcmp(hex, cur->prev_hex) == 0) linked = true;
        }
    }
    return linked;
}

static void classify_break(vstate *s, const vfile *files, size_t fi, size_t li, const vline *cur)
{
    const vfile *f = &files[fi];
    uint64_t line = li + 1;
    const char *text;
    size_t len;

    text = line_text(f, li, &len);
    /* (a) The next line continues the chain as if this one were not there. */
    if (li + 1 < f->nlines) {
        vline next;
        parse_line(f, li + 1, &next);
        if (next.parsed && next.t.seq == s->exp_seq && strcmp(next.prev_hex, s->last_hash_hex) == 0) {
            /* ... unless this line belongs later: it links to a later line and is not a copy of one. */
            if (cur->t.seq > s->exp_seq && moved_here(f, li, cur)) {
                finding(s, PK_AUDIT_REORDERED, f->path, line, cur->t.seq,
                        "record seq %" PRIu64 " is out of order: it belongs after seq %" PRIu64
                        ", which comes later in the file",
                        cur->t.seq, cur->t.seq - 1);
                return;
            }
            finding(s, PK_AUDIT_INSERTED, f->path, line, cur->t.seq,
                    "line %" PRIu64 " (seq %" PRIu64 ") is not part of the chain: the next line continues from line %" PRIu64,
                    line, cur->t.seq, s->last_line);
            return;
        }
    }
    /* (b) Two lines claim the same place: the earlier one was slipped in before this genuine one. */
    if (s->have_last && cur->t.seq == s->last_seq && strcmp(cur->prev_hex, s->last_prev_hex) == 0) {
        if (s->last_file == fi && s->last_len == len && memcmp(s->last_text, text, len) == 0)
            finding(s, PK_AUDIT_INSERTED, f->path, line, cur->t.seq,
                    "line %" PRIu64 " repeats line %" PRIu64 " (seq %" PRIu64 ")", line, s->last_line, cur->t.seq);
        else
            finding(s, PK_AUDIT_INSERTED, files[s->last_file].path, s->last_line, s->last_seq,
                    "line %" PRIu64 " (seq %" PRIu64 ") is not part of the chain: line %" PRIu64
                    " claims the same place and the chain continues from it",
                    s->last_line, s->last_seq, line);
        return;
    }
    /* (c) Right number, wrong link: the line before changed (or this line's prev did). */
    if (cur->t.seq == s->exp_seq) {
        if (!s->have_last || s->last_sealed_ok || s->last_file != fi)
            finding(s, PK_AUDIT_MODIFIED, f->path, line, cur->t.seq,
                    "record seq %" PRIu64 " was modified: its prev does not match %s", cur->t.seq,
                    s->have_last ? "the authenticated line before it" : "the genesis value");
        else
            finding(s, PK_AUDIT_MODIFIED, files[s->last_file].path, s->last_line, s->last_seq,
                    "record seq %" PRIu64 " was modified: its hash no longer matches the prev of seq %" PRIu64,
                    s->last_seq, cur->t.seq);
        return;
    }
    /* (d) A gap: deleted, unless the missing number turns up later (reordered). */
    if (cur->t.seq > s->exp_seq) {
        if (seq_later(f, li + 1, s->exp_seq))
            finding(s, PK_AUDIT_REORDERED, f->path, line, cur->t.seq,
                    "record seq %" PRIu64 " is out of order: seq %" PRIu64 " comes later in the file", cur->t.seq,
                    s->exp_seq);
        else
            finding(s, PK_AUDIT_DELETED, f->path, line, s->exp_seq,
                    "records seq %" PRIu64 "..%" PRIu64 " are missing before line %" PRIu64, s->exp_seq,
                    cur->t.seq - 1, line);
        return;
    }
    /* (e) A number from the past. */
    finding(s, PK_AUDIT_REORDERED, f->path, line, cur->t.seq,
            "record seq %" PRIu64 " is out of order: expected seq %" PRIu64, cur->t.seq, s->exp_seq);
}

/* ---- The pass ---- */

static pk_result check_seal(vstate *s, const vfile *f, size_t li, const vline *cur, bool *ok)
{
    size_t len, prefix;
    uint8_t want[PK_HMAC_LEN], got[PK_HMAC_LEN];
    const char *text = line_text(f, li, &len);

    *ok = false;
    if (!pk_audit_seal_split(text, len, &prefix, got)) {
        finding(s, PK_AUDIT_MALFORMED, f->path, li + 1, cur->t.seq, "seal seq %" PRIu64 " does not end with its mac",
                cur->t.seq);
        return PK_OK;
    }
    PK_GUARD(pk_audit_seal_mac(s->p11, s->key, text, prefix, want));
    if (!pk_ct_equal(want, got, PK_HMAC_LEN)) {
        finding(s, PK_AUDIT_BAD_SEAL, f->path, li + 1, cur->t.seq,
                "seal seq %" PRIu64 " does not verify: a record it covers (after seq %" PRIu64
                ") was changed and the chain recomputed, or the seal was forged",
                cur->t.seq, s->rep->last_sealed_seq);
        return PK_OK;
    }
    *ok = true;
    return PK_OK;
}

static void accept_line(vstate *s, size_t fi, const vfile *f, size_t li, const vline *cur, bool sealed_ok)
{
    size_t len;
    const char *text = line_text(f, li, &len);

    s->have_last = true;
    s->last_file = fi;
    s->last_line = li + 1;
    s->last_seq = cur->t.seq;
    s->last_text = text;
    s->last_len = len;
    snprintf(s->last_type, sizeof(s->last_type), "%s", cur->t.type);
    snprintf(s->last_reason, sizeof(s->last_reason), "%s", cur->t.reason);
    snprintf(s->last_prev_hex, sizeof(s->last_prev_hex), "%s", cur->prev_hex);
    s->last_sealed_ok = sealed_ok;
    s->exp_seq = cur->t.seq + 1;
    memcpy(s->last_hash, cur->t.hash, PK_SHA256_LEN);
    pk_hex_encode(s->last_hash, PK_SHA256_LEN, s->last_hash_hex);
    s->rep->records++;
    s->rep->last_seq = cur->t.seq;
    if (sealed_ok) {
        s->rep->seals++;
        s->rep->last_sealed_seq = cur->t.seq;
        s->unsealed_seq = 0;
    } else if (s->unsealed_seq == 0) {
        s->unsealed_file = fi;
        s->unsealed_line = li + 1;
        s->unsealed_seq = cur->t.seq;
    }
}

/* Line 1 of a file: does it link to the file before it in the series? */
static bool check_link(vstate *s, const vfile *files, size_t fi, const vline *cur)
{
    const char *want = fi > 0 ? pk_audit_basename(files[fi - 1].path) : NULL;

    if (strcmp(cur->t.type, PK_AUDIT_T_LINK) != 0) return true;
    if (strcmp(cur->t.reason, "recovered") == 0) {
        finding(s, PK_AUDIT_MISSING_FILE, files[fi].path, 1, cur->t.seq,
                "the log file that followed %s vanished before seq %" PRIu64
                "; its records are lost (the writer restarted the chain from %s)",
                cur->prev_file, cur->t.seq, cur->prev_file);
        return false;
    }
    if (want == NULL || strcmp(want, cur->prev_file) != 0) {
        finding(s, PK_AUDIT_MISSING_FILE, files[fi].path, 1, cur->t.seq,
                "%s continues from %s, which is missing from the series%s%s", pk_audit_basename(files[fi].path),
                cur->prev_file, want != NULL ? " (the file before it is " : "", want != NULL ? want : "");
        if (want != NULL) {
            size_t n = strlen(s->rep->detail);
            snprintf(s->rep->detail + n, sizeof(s->rep->detail) - n, ")");
        }
        return false;
    }
    return true;
}

/* Is unparsable line li an event line in its right place: right seq, and prev the hash of the line before? */
static bool framed_in_chain(const vstate *s, const vfile *f, size_t li, vline *cur)
{
    size_t len;
    const char *text = line_text(f, li, &len);
    return pk_audit_parse_event_frame(text, len, &cur->t, cur->prev_hex) && cur->t.seq == s->exp_seq &&
           strcmp(cur->prev_hex, s->last_hash_hex) == 0 && pk_ok(pk_sha256(text, len, cur->t.hash));
}

static pk_result verify_file(vstate *s, const vfile *files, size_t fi, size_t n)
{
    const vfile *f = &files[fi];

    if (fi > 0 && f->nlines == 0) {
        finding(s, PK_AUDIT_TRUNCATED, f->path, 1, s->exp_seq,
                "%s is empty: it should start with a link to %s", f->path, pk_audit_basename(files[fi - 1].path));
        return PK_OK;
    }
    for (size_t li = 0; li < f->nlines; li++) {
        vline cur;
        bool sealed_ok = false;

        parse_line(f, li, &cur);
        if (!cur.parsed && framed_in_chain(s, f, li, &cur)) {
            unreadable_in_chain(s, f->path, li + 1, cur.t.seq, cur.error);
            accept_line(s, fi, f, li, &cur, false);
            continue;
        }
        if (!cur.parsed) {
            finding(s, PK_AUDIT_MALFORMED, f->path, li + 1, s->exp_seq, "line %zu: %s", li + 1, cur.error);
            return PK_OK;
        }
        if (li == 0 && !check_link(s, files, fi, &cur)) return PK_OK;
        if (cur.t.seq != s->exp_seq || strcmp(cur.prev_hex, s->last_hash_hex) != 0) {
            classify_break(s, files, fi, li, &cur);
            return PK_OK;
        }
        if (strcmp(cur.t.type, PK_AUDIT_T_SEAL) == 0) {
            PK_GUARD(check_seal(s, f, li, &cur, &sealed_ok));
            if (!sealed_ok) return PK_OK;
        }
        accept_line(s, fi, f, li, &cur, sealed_ok);
    }
    if (f->torn) {
        finding(s, PK_AUDIT_TRUNCATED, f->path, f->nlines + 1, s->exp_seq,
                "line %zu is incomplete (no newline): the file was cut off", f->nlines + 1);
        return PK_OK;
    }
    if (fi + 1 < n && !(strcmp(s->last_type, PK_AUDIT_T_SEAL) == 0 && strcmp(s->last_reason, "rotate") == 0 &&
                        s->last_file == fi)) {
        finding(s, PK_AUDIT_TRUNCATED, f->path, f->nlines + 1, s->exp_seq,
                "%s does not end with its rotation seal: records after line %zu were cut off", f->path, f->nlines);
        return PK_OK;
    }
    return PK_OK;
}

pk_result pk_audit_verify(pk_p11 *p11, const pk_keyid *key, const char *const *paths, size_t n, unsigned flags,
                          pk_audit_report *report)
{
    vfile *files = NULL;
    vstate s;
    pk_keyid dflt = pk_audit_key_id();
    pk_result r = PK_OK;

    memset(report, 0, sizeof(*report));
    memset(&s, 0, sizeof(s));
    PK_ENSURE(n > 0, P11KMS_ERR_INVALID_ARGUMENT, "no audit files to verify");
    s.p11 = p11;
    s.key = key != NULL ? key : &dflt;
    s.flags = flags;
    s.rep = report;
    s.exp_seq = 1;
    snprintf(s.last_hash_hex, sizeof(s.last_hash_hex), "%s", PK_AUDIT_GENESIS);
    files = calloc(n, sizeof(*files));
    PK_CHECK_ALLOC(files);
    for (size_t i = 0; i < n; i++) PK_TRY(vfile_load(paths[i], &files[i]));
    report->files = n;
    for (size_t i = 0; i < n && !s.hard; i++) PK_TRY(verify_file(&s, files, i, n));
    if (!s.hard && s.unsealed_seq != 0) {
        report->unsealed = report->last_seq - s.unsealed_seq + 1;
        if (!(flags & PK_AUDIT_VERIFY_ALLOW_UNSEALED))
            finding(&s, PK_AUDIT_TRUNCATED, files[s.unsealed_file].path, s.unsealed_line, s.unsealed_seq,
                    "records seq %" PRIu64 "..%" PRIu64 " follow the last seal: the end of the log may have been cut "
                    "off or rewritten (or a writer is still running or crashed)",
                    s.unsealed_seq, report->last_seq);
    }
    pk_hex_encode(s.last_hash, PK_SHA256_LEN, report->head);
out:
    for (size_t i = 0; files != NULL && i < n; i++) vfile_free(&files[i]);
    free(files);
    return r;
}
