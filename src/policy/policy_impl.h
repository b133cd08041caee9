/*
 * The compiled form of a key policy, shared by the policy_*.c files only.
 *
 * Everything a policy owns lives in one arena, so compile allocates in a
 * few large blocks and free is a walk over blocks. Evaluation reads these
 * structures and never writes or allocates.
 */
#ifndef PK_POLICY_POLICY_IMPL_H
#define PK_POLICY_POLICY_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "policy/policy.h"

/* ---- Arena ---------------------------------------------------------- */

typedef struct pol_block pol_block;
typedef struct pol_arena {
    pol_block *head;
} pol_arena;

/* Zeroed, 16-byte aligned memory that lives until pol_arena_free. */
void *pol_arena_alloc(pol_arena *a, size_t n);
char *pol_arena_strndup(pol_arena *a, const char *s, size_t n);
void pol_arena_free(pol_arena *a);

/* ---- Matching (policy_match.c) --------------------------------------- */

/*
 * IAM wildcard match: '*' any run (also empty), '?' one character. With
 * icase the pattern must already be lower-case; the subject is folded as
 * it is read (ASCII only, as AWS).
 */
bool pol_glob(const char *pat, size_t plen, const char *s, size_t slen, bool icase);

/* The six colon-separated parts of an ARN; the last keeps any colons. */
typedef struct pol_arn {
    const char *part[6];
    size_t len[6];
} pol_arn;

/* Split "arn:partition:service:region:account:resource". False if not 6 parts. */
bool pol_arn_split(const char *s, size_t len, pol_arn *out);
/* Segment-wise wildcard match (ArnLike and Resource semantics). */
bool pol_arn_match(const pol_arn *pat, const pol_arn *subject);

/* ---- Scalars (policy_scalar.c) -------------------------------------- */

/* "-12", "3.5": no exponent, no spaces, no sign other than a leading '-'. */
bool pol_parse_number(const char *s, size_t len, double *out);
/* W3C ISO 8601 profile or epoch seconds ("1700000000"), to ms since the epoch. */
bool pol_parse_date(const char *s, size_t len, int64_t *out_ms);
/* Write ms (floored to seconds) as "YYYY-MM-DDThh:mm:ssZ"; buf needs 32 bytes. */
void pol_format_date(int64_t ms, char *buf, size_t cap);

typedef struct pol_cidr {
    uint8_t family; /* 4 or 6 */
    uint8_t prefix; /* bits */
    uint8_t addr[16];
} pol_cidr;

/* "10.0.0.0/8", "2001:db8::/32", or a bare address (full-length prefix). */
bool pol_parse_cidr(const char *s, size_t len, pol_cidr *out);
/* A bare IPv4 or IPv6 address as a full-length pol_cidr. */
bool pol_parse_ip(const char *s, size_t len, pol_cidr *out);
bool pol_cidr_contains(const pol_cidr *net, const pol_cidr *ip);
/* "true"/"false", any case. */
bool pol_parse_bool(const char *s, size_t len, bool *out);

/* ---- Actions (policy_actions.c) --------------------------------------- */

#define POL_ACTION_MAX 64
/* Index of a known action (case-insensitive), or -1. */
int pol_action_index(const char *action, size_t len);
/* Bit mask of the known actions a lower-case pattern matches. */
uint64_t pol_action_pattern_mask(const char *lower_pat, size_t len);
/* Mask of every known action, and of one class. */
uint64_t pol_action_all_mask(void);
uint64_t pol_action_class_mask(pk_action_class c);

/* ---- Conditions ------------------------------------------------------ */

typedef enum pol_op {
    POL_OP_STRING_EQUALS,
    POL_OP_STRING_EQUALS_IC,
    POL_OP_STRING_LIKE,
    POL_OP_NUMERIC_EQ,
    POL_OP_NUMERIC_LT,
    POL_OP_NUMERIC_LE,
    POL_OP_NUMERIC_GT,
    POL_OP_NUMERIC_GE,
    POL_OP_DATE_EQ,
    POL_OP_DATE_LT,
    POL_OP_DATE_LE,
    POL_OP_DATE_GT,
    POL_OP_DATE_GE,
    POL_OP_BOOL,
    POL_OP_IP,
    POL_OP_ARN,
    POL_OP_NULL
} pol_op;

typedef enum pol_set {
    POL_SET_NONE,
    POL_SET_FOR_ALL,
    POL_SET_FOR_ANY
} pol_set;

/* Where a condition key's request values come from. */
typedef enum pol_key_kind {
    POL_KEY_EC,           /* kms:EncryptionContext:<k>: one value from the context */
    POL_KEY_EC_KEYS,      /* kms:EncryptionContextKeys: the context's keys */
    POL_KEY_CALLER_ACCOUNT,
    POL_KEY_PRINCIPAL_ARN,
    POL_KEY_CURRENT_TIME,
    POL_KEY_EPOCH_TIME,
    POL_KEY_EXTRA         /* anything else: looked up in request extra */
} pol_key_kind;

typedef struct pol_value {
    const char *s; /* the policy value as text */
    size_t len;
    union {
        double num;
        int64_t ms;
        bool b;
        pol_cidr cidr;
        pol_arn arn;
    } u;
} pol_value;

typedef struct pol_cond {
    pol_op op;
    pol_set set;
    bool negated;
    bool if_exists;
    pol_key_kind kind;
    bool multi_valued_key;  /* the key is multi-valued by definition */
    const char *op_name;    /* as written, for lint and messages */
    const char *key;        /* as written */
    const char *ec_key;     /* the <k> of kms:EncryptionContext:<k> */
    size_t ec_key_len;
    size_t key_len;
    pol_value *values;
    size_t nvalues;
} pol_cond;

typedef struct pol_resource {
    bool any;   /* "*" */
    bool never; /* an ARN with fewer than six parts and no wildcard */
    const char *text;
    pol_arn arn;
} pol_resource;

typedef struct pol_stmt {
    const char *sid;   /* NULL when absent */
    const char *label; /* sid, or "Statement[i]" */
    size_t index;
    bool deny;

    bool not_principal;
    bool principal_any; /* "*" or {"AWS":"*"} among the principals */
    const char **principals;
    size_t nprincipals;

    bool not_action;
    bool action_any;        /* a "*" pattern */
    uint64_t action_mask;   /* known actions the patterns match */
    const char **actions;   /* lower-cased patterns */
    size_t *action_lens;
    const char **actions_raw; /* as written, for lint */
    size_t nactions;

    bool not_resource;
    pol_resource *resources;
    size_t nresources;

    pol_cond *conds;
    size_t nconds;
    bool has_variables; /* "${" in a Resource or Condition value */
} pol_stmt;

struct pk_policy {
    pol_arena arena;
    const char *id;
    pol_stmt *stmts;
    size_t nstmts;
};

/* The request as the evaluator sees it: derived values computed once. */
typedef struct pol_req {
    const pk_policy_request *req;
    size_t principal_len;
    size_t action_len;
    int action_index;       /* -1 when unknown */
    const char *resource;
    size_t resource_len;
    bool resource_is_arn;
    pol_arn resource_arn;
    const char *account;    /* 5th field of the principal ARN */
    size_t account_len;
    int64_t now_ms;         /* floored to whole seconds, as aws:CurrentTime is */
} pol_req;

/* policy_eval.c */
void pol_req_init(pol_req *r, const pk_policy_request *req);
/* Principal/Action/Resource test (no conditions). */
bool pol_stmt_targets(const pol_stmt *s, const pol_req *r);
/* policy_condition.c */
bool pol_cond_eval(const pol_cond *c, const pol_req *r);
/* Classify a condition key name (case-insensitive prefix rules). */
pol_key_kind pol_key_classify(const char *key, size_t len, bool *multi_valued, bool *single_valued);
/* Whether AWS defines a condition key of this name (global aws: keys, kms: keys, tag prefixes). */
bool pol_key_known(const char *key, size_t len);

#endif
