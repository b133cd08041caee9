/* Internals shared by the audit files: record lines, tails, file helpers. */
#ifndef PK_AUDIT_AUDIT_IMPL_H
#define PK_AUDIT_AUDIT_IMPL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "audit/audit.h"
#include "crypto/crypto.h"
#include "util/bytes.h"

/* Domain separation for seal MACs: HMAC(key, PK_AUDIT_SEAL_DOMAIN || seal line up to ,"mac"). */
#define PK_AUDIT_SEAL_DOMAIN "p11kms-audit-seal-v1\n"
/* A seal line ends with this, 64 hex digits and "}. */
#define PK_AUDIT_MAC_MEMBER ",\"mac\":\""
#define PK_AUDIT_TIME_LEN 24 /* 2025-01-02T03:04:05.678Z */

/* The last line of a file, as much as a writer needs to continue the chain. */
typedef struct pk_audit_tail {
    uint64_t seq;                 /* 0: no record yet */
    uint8_t hash[PK_SHA256_LEN];  /* SHA-256 of that line (genesis: zero) */
    char type[8];                 /* "event", "seal", "link", "repair" or "" */
    char reason[16];              /* seal/link reason */
    uint64_t file_no;             /* link records: number of the file they start */
} pk_audit_tail;

/* Record types and seal/link reasons, as written. */
#define PK_AUDIT_T_EVENT "event"
#define PK_AUDIT_T_SEAL "seal"
#define PK_AUDIT_T_LINK "link"
#define PK_AUDIT_T_REPAIR "repair"

/* ---- audit_record.c ---- */
void pk_audit_now(char out[PK_AUDIT_TIME_LEN + 1]);
/* The event's members after "time" up to (not including) "prev", as a JSON fragment. */
PK_MUST_USE pk_result pk_audit_event_body(pk_buf *body, const pk_audit_event *ev, const char *request_id);
/* {"v":1,"seq":N,"type":T,"time":"..",  -- the common head of every line. */
PK_MUST_USE pk_result pk_audit_line_head(pk_buf *line, uint64_t seq, const char *type, const char *time);
/* ,"prev":"hex"} -- the common end of a non-seal line. */
PK_MUST_USE pk_result pk_audit_line_prev_end(pk_buf *line, const uint8_t prev[PK_SHA256_LEN]);
/* A whole seal line: MAC computed in the HSM over the line up to ,"mac". */
PK_MUST_USE pk_result pk_audit_seal_line(pk_buf *line, pk_p11 *p11, const pk_keyid *key, uint64_t seq,
                                         const char *time, const char *reason, const uint8_t prev[PK_SHA256_LEN]);
/* Compute the seal MAC over the part of a seal line before ,"mac". */
PK_MUST_USE pk_result pk_audit_seal_mac(pk_p11 *p11, const pk_keyid *key, const char *prefix, size_t n,
                                        uint8_t mac[PK_HMAC_LEN]);
/* Split a seal line into prefix and MAC; false when it does not end in ,"mac":"<64 hex>"}. */
bool pk_audit_seal_split(const char *line, size_t len, size_t *prefix_len, uint8_t mac[PK_HMAC_LEN]);
/* Parse the fields of one line that the chain needs (no plausibility beyond types). */
PK_MUST_USE pk_result pk_audit_parse_tail(const char *line, size_t len, pk_audit_tail *t, char *prev_hex,
                                          char *prev_file, size_t prev_file_size);
/*
 * Without a JSON parser: seq and prev of a line framed like an event line
 * ({"v":1,"seq":N,"type":"event", ... ,"prev":"<hex>"}). False otherwise.
 */
bool pk_audit_parse_event_frame(const char *line, size_t len, pk_audit_tail *t,
                                char prev_hex[PK_AUDIT_HASH_HEX_LEN + 1]);

/* ---- audit_file.c ---- */
/*
 * Read the last complete line of fd (size bytes long) by reading backwards
 * from the end: O(line length), not O(file size). *torn receives the
 * number of bytes after the last newline (a torn write). An empty file
 * gives seq 0 and the genesis hash.
 */
PK_MUST_USE pk_result pk_audit_read_tail(int fd, const char *path, off_t size, pk_audit_tail *t, off_t *torn);
/* The file number of the file: its first line's link record, or 1. */
PK_MUST_USE pk_result pk_audit_file_no(int fd, const char *path, uint64_t *file_no);
/* write(2) all of it or fail with errno set (no retry on ENOSPC). */
int pk_audit_write_all(int fd, const void *p, size_t n);
/* The fail-closed error: "audit unavailable: cannot write PATH: REASON". */
pk_result pk_audit_unavailable(const char *path, const char *why);
/*
 * open(2) a file of the series with O_NOFOLLOW (and O_CLOEXEC): whoever can
 * write the log folder must not make p11kms, often root, create or append
 * to another file through a link (issue 11).
 */
int pk_audit_open_nofollow(const char *path, int flags, mode_t mode);
/* The fail-closed error for a failed open; a symbolic link is named as such. */
pk_result pk_audit_open_failed(const char *path, int err);
/* Remove PATH.tmp-PID files that a crashed rotation left (PID gone, or this process). */
void pk_audit_remove_stale_tmp(const char *path);
/* "dir/base" -> "base". */
const char *pk_audit_basename(const char *path);

#endif
