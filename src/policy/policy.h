/*
 * Key policies: the AWS KMS key-policy language (Version 2012-10-17),
 * compiled once and evaluated without allocation.
 *
 * The meaning is that of an AWS KMS key policy deciding alone: there is no
 * IAM layer, so a principal is matched exactly as written (an account
 * principal "111122223333" stands for arn:aws:iam::111122223333:root only).
 * docs/POLICY.md is the user-facing reference; the comments here state the
 * contracts callers rely on.
 *
 * Threads: a compiled pk_policy is immutable. Any number of threads may call
 * pk_policy_eval on one policy at once. Compile and free are not concurrent
 * with evaluation of the same policy (ordinary ownership rules).
 */
#ifndef PK_POLICY_POLICY_H
#define PK_POLICY_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/bytes.h"
#include "util/kv.h"
#include "util/result.h"

/* AWS caps a key policy at 32 KiB; so do we, which also bounds evaluation. */
#define PK_POLICY_MAX_BYTES 32768
/* Sids reported per decision; more matching statements set sids_truncated. */
#define PK_POLICY_MAX_SIDS 8

typedef struct pk_policy pk_policy;

/*
 * Parse and compile a policy document. On failure the code is
 * P11KMS_ERR_POLICY_INVALID and the detail names the JSON path, e.g.
 * "Statement[2].Condition.StringEqual: unknown operator". *out is set only
 * on success; release it with pk_policy_free.
 */
PK_MUST_USE pk_result pk_policy_compile(const char *json, size_t len, pk_policy **out);
void pk_policy_free(pk_policy *p); /* NULL is fine */

/* Number of statements and the Id element (or NULL). */
size_t pk_policy_statement_count(const pk_policy *p);
const char *pk_policy_id(const pk_policy *p);

typedef enum pk_decision {
    PK_DECISION_ALLOWED,
    PK_DECISION_EXPLICIT_DENY,
    PK_DECISION_IMPLICIT_DENY
} pk_decision;

/* "Allowed", "ExplicitlyDenied", "ImplicitlyDenied". Never NULL. */
const char *pk_decision_name(pk_decision d);

/* One request key/value. Strings are NUL-terminated and borrowed. */
typedef pk_kv pk_policy_kv;

typedef struct pk_policy_request {
    const char *principal;         /* caller ARN, required */
    const char *action;            /* "kms:Encrypt", required (case-insensitive) */
    const char *resource;          /* key ARN; NULL matches only Resource "*" */
    const pk_policy_kv *context;   /* encryption context: key -> value, keys unique */
    size_t context_len;
    const pk_policy_kv *extra;     /* other request keys (aws:SourceIp, kms:RequestAlias ...);
                                      a repeated key is one multi-valued key */
    size_t extra_len;
    int64_t now_ms;                /* request time (ms since the epoch, UTC) */
} pk_policy_request;

/*
 * Outcome. sids name the statements that decided: the matching Deny
 * statements for ExplicitlyDenied, the matching Allow statements for
 * Allowed, none for ImplicitlyDenied. A statement without a Sid is named
 * "Statement[i]" (0-based). The pointers live as long as the policy.
 */
typedef struct pk_policy_result {
    pk_decision decision;
    const char *sids[PK_POLICY_MAX_SIDS];
    size_t nsids;
    bool sids_truncated;
} pk_policy_result;

/*
 * Evaluate. Does no heap allocation and no parsing of the policy. Fails
 * (P11KMS_ERR_INVALID_ARGUMENT) only for a malformed request: missing
 * principal or action, NULL keys or values, or an extra key that the
 * engine derives itself (kms:EncryptionContext:*, kms:EncryptionContextKeys,
 * kms:CallerAccount, aws:PrincipalArn, aws:CurrentTime, aws:EpochTime).
 * A denied decision is a successful evaluation.
 */
PK_MUST_USE pk_result pk_policy_eval(const pk_policy *p, const pk_policy_request *req, pk_policy_result *out);

/*
 * A request time as Date operators read it: ISO 8601 (W3C profile, e.g.
 * "2024-06-15T12:00:00Z") or epoch seconds ("1718452800"). For --time.
 */
bool pk_policy_parse_time(const char *s, int64_t *out_ms);

/*
 * Whether s names a caller the way IAM does: arn:PARTITION:iam::ACCOUNT:...
 * or arn:PARTITION:sts::ACCOUNT:assumed-role/..., with a 12-digit account
 * and no wildcard or white space.
 */
bool pk_principal_arn_valid(const char *s);

/* ---- Actions -------------------------------------------------------- */

typedef enum pk_action_class {
    PK_ACTION_READ,   /* DescribeKey, GetKeyPolicy, List*: neither role */
    PK_ACTION_ADMIN,  /* key management */
    PK_ACTION_CRYPTO  /* cryptographic use */
} pk_action_class;

/* Whether an action name is one p11kms knows (case-insensitive). */
bool pk_policy_action_known(const char *action);
/* The table of known actions, in a stable order. */
size_t pk_policy_action_count(void);
const char *pk_policy_action_name(size_t i);
pk_action_class pk_policy_action_class(size_t i);

/* ---- Lint ----------------------------------------------------------- */

typedef enum pk_lint_kind {
    PK_LINT_SEPARATION_OF_DUTIES,  /* a principal gets administration and crypto use */
    PK_LINT_WILDCARD_PRINCIPAL,    /* Allow to "*" (or Allow with NotPrincipal) */
    PK_LINT_WILDCARD_ACTION,       /* Allow whose actions cover every kms action */
    PK_LINT_OVERLY_PERMISSIVE_CONDITION, /* ForAllValues on a single-valued key */
    PK_LINT_UNKNOWN_ACTION,        /* an action name or pattern matching no known action */
    PK_LINT_NO_ADMINISTRATOR,      /* nobody can call kms:PutKeyPolicy */
    PK_LINT_POLICY_VARIABLE,       /* "${" found: variables are not expanded */
    PK_LINT_UNKNOWN_CONDITION_KEY  /* a condition key AWS KMS does not define: it never matches */
} pk_lint_kind;

/* Stable names: "SeparationOfDuties", "WildcardPrincipal", ... */
const char *pk_lint_kind_name(pk_lint_kind k);
/*
 * Whether a finding of this kind makes a policy wrong rather than risky:
 * an unknown action or condition key silently grants or denies nothing.
 * put-policy and create refuse such policies unless the caller bypasses lint.
 */
bool pk_lint_kind_is_error(pk_lint_kind k);

typedef struct pk_lint_finding {
    pk_lint_kind kind;
    long statement;      /* 0-based statement index, or -1 for the whole policy */
    const char *sid;     /* statement's Sid or NULL; points into the policy */
    char *message;       /* one line, owned by the report */
} pk_lint_finding;

typedef struct pk_lint_report {
    pk_lint_finding *items;
    size_t n;
    size_t cap;
} pk_lint_report;

/* Append the findings for p to report (which starts zeroed). */
PK_MUST_USE pk_result pk_policy_lint(const pk_policy *p, pk_lint_report *report);
void pk_lint_report_free(pk_lint_report *report);
/*
 * Lint p and fail with P11KMS_ERR_POLICY_INVALID naming the first error
 * finding (pk_lint_kind_is_error) and the way out (--bypass-lint).
 * Warnings do not fail.
 */
PK_MUST_USE pk_result pk_policy_lint_refuse_errors(const pk_policy *p);

/* ---- Defaults and safety checks ------------------------------------- */

typedef enum pk_policy_template {
    PK_POLICY_TEMPLATE_KEY_ADMINISTRATOR,  /* tokens/policies/key-administrator.json */
    PK_POLICY_TEMPLATE_APPLICATION_OPERATOR /* tokens/policies/application-operator.json */
} pk_policy_template;

/* Placeholder in the templates that pk_policy_default replaces. */
#define PK_POLICY_PRINCIPALS_PLACEHOLDER "\"__PRINCIPALS__\""

/* The built-in text of a template (byte-identical to the shipped file). */
const char *pk_policy_template_text(pk_policy_template t);

/*
 * Build the default key policy: one statement from the key-administrator
 * template for the admins, one from the application-operator template for
 * the operators (omitted when there are none). At least one administrator
 * is required, and a principal may not be both (separation of duties).
 * Principals are ARNs or 12-digit account ids. The result is compiled
 * before it is returned, so it is always a valid policy. Appends to out_json.
 */
PK_MUST_USE pk_result pk_policy_default(const char *const *admins, size_t nadmins,
                                        const char *const *operators, size_t noperators,
                                        pk_buf *out_json);

/*
 * Lockout check (AWS's "policy lockout safety check"): true unless p allows
 * principal to call kms:PutKeyPolicy on resource. The request carries only
 * principal, action, resource and the current time, so a grant that needs
 * other request keys (aws:SourceIp, an encryption context) does not count:
 * the check errs towards reporting a lockout. policy/ reads no clock: the
 * caller passes the time of the request (ms since the epoch).
 */
bool pk_policy_would_lock_out(const pk_policy *p, const char *principal, const char *resource, int64_t now_ms);

/* ---- Requests as JSON (CLI --batch lines, test vectors) --------------- */

/*
 * A request read from a JSON object (docs/POLICY.md, "Batch format"):
 *   {"principal": "arn:...", "action": "kms:Encrypt", "resource": "arn:..." | null,
 *    "context": {"k": "v"}, "request_context": {"aws:SourceIp": "v" | ["v", ...]},
 *    "time": "2024-06-15T12:00:00Z" | "1718452800" | 1718452800}
 * Fields left out keep what the caller put in doc->req beforehand, so a
 * caller can pre-fill defaults. Strings stay owned by the JSON document.
 */
typedef struct pk_policy_request_doc {
    pk_policy_request req;
    pk_policy_kv *kv; /* context entries, then request_context entries */
    struct pk_jv *json;   /* set when the doc parsed the text itself */
} pk_policy_request_doc;

/* Parse text (one JSON object). ignore: NULL-terminated member names to skip, or NULL. */
PK_MUST_USE pk_result pk_policy_request_parse(const char *text, size_t len, const char *const *ignore,
                                              pk_policy_request_doc *doc);
/* Read from an already-parsed object (which must outlive doc). */
PK_MUST_USE pk_result pk_policy_request_from_json(const struct pk_jv *obj, const char *const *ignore,
                                                  pk_policy_request_doc *doc);
/* Free what the doc owns (not doc itself); req is cleared. */
void pk_policy_request_doc_free(pk_policy_request_doc *doc);

#endif
