/*
 * The tamper-evident audit trail (docs/AUDIT.md is the auditor's guide).
 *
 * One JSON line per operation, appended to the file named by `audit` in
 * p11kms.conf. Every line carries the SHA-256 of the line before it
 * ("prev"), so the lines form one hash chain across restarts, processes and
 * rotated files. The chain is sealed by seal records: HMAC-SHA256 computed
 * inside the HSM with the non-extractable audit key (PK_AUDIT_KEY_ID) over
 * the seal line, which itself names the hash of the last record. Seals are
 * written every `seal_every` records, at most `seal_interval_ms` after the
 * first unsealed record, on close and on rotation.
 *
 * What a record can hold is exactly what pk_audit_event has: names, ids,
 * the encryption context (not secret by design, as in AWS KMS), the policy
 * decision, the result code and public details. There is deliberately no
 * field for plaintext, ciphertext, key bytes, secret values or PINs, so no
 * caller can log one by mistake.
 *
 * Fail closed: when a record cannot be written (and, in `always` mode,
 * flushed to disk), pk_audit_write returns P11KMS_ERR_AUDIT_UNAVAILABLE
 * with "audit unavailable: cannot write PATH: REASON" and the caller must
 * not perform or report the operation.
 *
 * Thread safety: one pk_audit may be shared by all threads of a process
 * (a mutex guards the in-memory tail); processes sharing the file serialise
 * appends with flock(2). Do not use a pk_audit across fork(): open a new
 * one in the child.
 */
#ifndef PK_AUDIT_AUDIT_H
#define PK_AUDIT_AUDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "p11/p11.h"
#include "p11kms/p11kms.h"
#include "util/kv.h"
#include "util/result.h"

/* CKA_ID and label of the HMAC key that seals the chain (made by `p11kms init`). */
#define PK_AUDIT_KEY_ID "p11kms/sys/audit-mac"
#define PK_AUDIT_KEY_LABEL "p11kms:sys:audit-mac"

/* Longest record line accepted (bytes, without the newline). */
#define PK_AUDIT_MAX_LINE 32768
/* A request id is a UUID string; callers may pass their own (<= 64 chars). */
#define PK_AUDIT_REQUEST_ID_MAX 64
/* Hex SHA-256, the `prev` value of the very first record. */
#define PK_AUDIT_GENESIS "0000000000000000000000000000000000000000000000000000000000000000"
#define PK_AUDIT_HASH_HEX_LEN 64

/* Rotated files are PATH.NNNNNN, numbered from 000001 in chain order. */
#define PK_AUDIT_ROTATED_FMT "%s.%06lu"

typedef enum pk_audit_decision {
    PK_AUDIT_DECISION_NA = 0,       /* no policy evaluated: "n/a" */
    PK_AUDIT_DECISION_ALLOWED,      /* "Allowed" */
    PK_AUDIT_DECISION_EXPLICIT_DENY,/* "ExplicitlyDenied" */
    PK_AUDIT_DECISION_IMPLICIT_DENY /* "ImplicitlyDenied" */
} pk_audit_decision;

const char *pk_audit_decision_name(pk_audit_decision d);

/* A public key/value pair (encryption context entry, detail). Borrowed. */
typedef pk_kv pk_audit_kv;

/*
 * One operation. Every pointer is borrowed for the duration of the call and
 * may be NULL when it does not apply (then the field is omitted). The
 * struct has no field for plaintext, key bytes, secret values or PINs on
 * purpose: do not smuggle them into `details`, which is for public extra
 * data such as non-sensitive connection options.
 */
typedef struct pk_audit_event {
    const char *request_id;      /* NULL: a fresh UUID is generated */
    const char *principal;       /* caller ARN */
    const char *action;          /* "Encrypt", "CreateKey", ...; required */
    /* Resource, each optional. */
    const char *key_id;
    const char *key_version;
    const char *alias;           /* the alias the caller used, if any */
    const char *secret_id;
    const char *connection;
    /*
     * Encryption context, logged as given; a key repeated (after escaping)
     * is left out and counted in "duplicate_keys_dropped", and a record
     * longer than PK_AUDIT_MAX_LINE is cut down and marked "truncated".
     */
    const pk_audit_kv *context;
    size_t n_context;
    pk_audit_decision decision;
    const char *const *sids;     /* the deciding statement Sids */
    size_t n_sids;
    p11kms_rc result;            /* P11KMS_OK is logged as "ok", else the code name */
    bool pending;                /* a change about to be committed: "pending" (result is ignored) */
    const pk_audit_kv *details;  /* extra public data */
    size_t n_details;
    /* How the caller authenticated (p11kmsd): logged as "auth":{...} when method is set. */
    const char *auth_method;     /* "peer-uid", "sigv4", "certificate"; NULL: in-process, no member */
    const char *auth_id;         /* uid/gid, access key id or certificate subject */
    const char *auth_request_id; /* the daemon's request id (x-amzn-RequestId) */
} pk_audit_event;

typedef enum pk_audit_sync {
    PK_AUDIT_SYNC_BATCH = 0, /* write(2) per record; fdatasync at most flush_interval_ms later */
    PK_AUDIT_SYNC_ALWAYS     /* fdatasync (group commit) and seal before each write returns */
} pk_audit_sync;

typedef struct pk_audit_opts {
    /*
     * The log file. NULL disables auditing: every write succeeds and
     * nothing is recorded. For benchmarks and tests only; p11kms.conf has
     * no way to ask for it (pk_audit_open_conf requires `audit`).
     */
    const char *path;
    pk_p11 *p11;                 /* seals are computed here; required unless path is NULL */
    const pk_keyid *key;         /* NULL: PK_AUDIT_KEY_ID */
    pk_audit_sync sync;
    uint64_t max_bytes;          /* rotate when the file reaches this size; 0 = never */
    unsigned seal_every;         /* records per seal; 0 = default (batch 1000, always 1) */
    unsigned seal_interval_ms;   /* seal unsealed records after this long; 0 = default 1000 */
    unsigned flush_interval_ms;  /* batch: fdatasync period; 0 = default 2 */
} pk_audit_opts;

typedef struct pk_audit pk_audit;

/*
 * Open (or create, mode 0600) the log and continue its chain from the last
 * record, read from the end of the file. Fails with
 * P11KMS_ERR_AUDIT_UNAVAILABLE when the file cannot be opened or its last
 * line cannot be read, and when the audit key is missing from the token.
 */
PK_MUST_USE pk_result pk_audit_open(const pk_audit_opts *opts, pk_audit **out);
/*
 * Open with the settings of p11kms.conf: `audit` (required),
 * `audit_sync` (always | batch, default batch), `audit_max_bytes`.
 */
PK_MUST_USE pk_result pk_audit_open_conf(const p11kms_config *cfg, pk_p11 *p11, pk_audit **out);
/*
 * Seal what is unsealed, flush, and release. Always frees `a` (NULL is
 * fine); returns the seal/flush failure, if any.
 */
PK_MUST_USE pk_result pk_audit_close(pk_audit *a);

/*
 * Append one record; returns once it is written (batch) or on disk and
 * sealed (always). request_id_out, when not NULL, receives the request id
 * used (the caller's or the generated one).
 */
PK_MUST_USE pk_result pk_audit_write(pk_audit *a, const pk_audit_event *ev,
                                     char request_id_out[PK_AUDIT_REQUEST_ID_MAX + 1]);
/* Seal now (no-op when nothing is unsealed) and flush to disk. */
PK_MUST_USE pk_result pk_audit_flush(pk_audit *a);
/*
 * Whether the trail can take a record now: the file at the path is still
 * the one held (not removed or replaced) and no earlier flush failed.
 * Cheap (no seal, no fsync; within a batch lease no system call), so every
 * state-changing operation can ask before it touches the HSM.
 */
PK_MUST_USE pk_result pk_audit_check(pk_audit *a);
/*
 * Seal the current file, rename it to PATH.NNNNNN and start a new PATH
 * whose first record links to it. rotated_out (may be NULL) receives the
 * new name of the old file.
 */
PK_MUST_USE pk_result pk_audit_rotate(pk_audit *a, char *rotated_out, size_t rotated_size);
/*
 * The sequence number of the last record this handle made durable (0 before
 * its first flush): the audit head the store's freshness anchor records, so
 * `audit verify` can tell a trail cut back from a live one.
 */
uint64_t pk_audit_durable_seq(pk_audit *a);
/* The log path, or NULL when auditing is disabled. */
const char *pk_audit_path(const pk_audit *a);

/* Counters for tests and benchmarks. */
typedef struct pk_audit_stats {
    uint64_t records;    /* event records written by this handle */
    uint64_t seals;      /* seals written by this handle */
    uint64_t syncs;      /* fdatasync calls */
    uint64_t tail_reads; /* times the tail was re-read because another process appended */
    uint64_t rotations;
} pk_audit_stats;
void pk_audit_get_stats(pk_audit *a, pk_audit_stats *out);

/* ---- Verification ---- */

typedef enum pk_audit_problem {
    PK_AUDIT_OK = 0,
    PK_AUDIT_MODIFIED,     /* a record differs from what its successor or seal recorded */
    PK_AUDIT_DELETED,      /* sequence numbers are missing */
    PK_AUDIT_REORDERED,    /* a record is out of sequence order */
    PK_AUDIT_INSERTED,     /* a record that is not part of the chain */
    PK_AUDIT_TRUNCATED,    /* records after the last seal, a torn last line, or a rotated
                              file that does not end with its rotation seal */
    PK_AUDIT_MISSING_FILE, /* a file of the rotated series is absent */
    PK_AUDIT_BAD_SEAL,     /* a seal's HMAC does not verify */
    PK_AUDIT_MALFORMED     /* not a JSON object with the required fields */
} pk_audit_problem;

/* "ok", "modified", "deleted", "reordered", "inserted", "truncated", "missing-file", "bad-seal", "malformed". */
const char *pk_audit_problem_name(pk_audit_problem p);

/* Accept records after the last seal of the newest file (a live log). */
#define PK_AUDIT_VERIFY_ALLOW_UNSEALED 1u

typedef struct pk_audit_report {
    pk_audit_problem problem;    /* PK_AUDIT_OK when everything verified */
    char file[4096];             /* where the first problem is */
    uint64_t line;               /* 1-based line number in that file */
    uint64_t seq;                /* sequence number of the first bad record (see docs/AUDIT.md) */
    char detail[512];            /* one line for humans */
    /* Totals over what was read. */
    size_t files;
    uint64_t records;            /* lines of every type */
    uint64_t seals;
    uint64_t last_seq;
    uint64_t last_sealed_seq;
    uint64_t unsealed;           /* records after the last seal */
    uint64_t unreadable;         /* lines that are not valid JSON but still linked into the chain */
    char head[PK_AUDIT_HASH_HEX_LEN + 1]; /* hash of the last line */
} pk_audit_report;

/*
 * Verify files (oldest first) as one chain: JSON well-formedness, sequence
 * continuity, prev hashes, seals (HMAC recomputed in the HSM, compared in
 * constant time) and rotation links. Findings go to `report` (the first
 * one only) and are not errors; errors are reserved for not being able to
 * check (an unreadable file, an HSM failure). An event line that is not
 * valid JSON but is linked into the chain (right seq and prev) is a
 * `malformed` finding that does not end the pass: the lines after it are
 * verified from its hash, and a break found later takes its place.
 */
PK_MUST_USE pk_result pk_audit_verify(pk_p11 *p11, const pk_keyid *key, const char *const *files, size_t n,
                                      unsigned flags, pk_audit_report *report);

/*
 * The files of the series ending in `path`, oldest first: PATH.NNNNNN in
 * numeric order, then PATH when it exists. Free with pk_audit_series_free.
 */
PK_MUST_USE pk_result pk_audit_series(const char *path, char ***files, size_t *n);
void pk_audit_series_free(char **files, size_t n);

/* The audit key's CKA_ID. */
pk_keyid pk_audit_key_id(void);

#endif
