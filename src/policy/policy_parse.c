/*
 * Policy compiler: JSON document -> pk_policy.
 *
 * The grammar is AWS's (IAM JSON policy element reference) restricted to
 * what a KMS key policy may contain. Everything evaluation needs is
 * precomputed here: lower-cased action patterns and their known-action
 * masks, split resource ARNs, parsed numbers, dates, networks, booleans and
 * ARNs in conditions, classified condition keys. Every error names the JSON
 * path of the offending element, and any error refuses the whole policy.
 */
#include "config.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "json/json_in.h"
#include "policy/policy_impl.h"

#define POL_VERSION "2012-10-17"

typedef struct pctx {
    pol_arena *a;
    char path[256];
    size_t plen;
} pctx;

/* Append a path segment; returns the length to restore with path_pop. */
static size_t path_push(pctx *c, const char *fmt, ...) PK_PRINTF(2, 3);
static size_t path_push(pctx *c, const char *fmt, ...)
{
    size_t old = c->plen;
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(c->path + c->plen, sizeof(c->path) - c->plen, fmt, ap);
    va_end(ap);
    if (n > 0) c->plen += (size_t)n;
    if (c->plen >= sizeof(c->path)) c->plen = sizeof(c->path) - 1;
    return old;
}

static void path_pop(pctx *c, size_t old)
{
    c->plen = old;
    c->path[old] = '\0';
}

static pk_result perr(const pctx *c, const char *fmt, ...) PK_PRINTF(2, 3);
static pk_result perr(const pctx *c, const char *fmt, ...)
{
    char msg[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (c->plen == 0) return pk_fail(P11KMS_ERR_POLICY_INVALID, "%s", msg);
    return pk_fail(P11KMS_ERR_POLICY_INVALID, "%s: %s", c->path, msg);
}

static pk_result dup(pctx *c, const char *s, size_t n, const char **out)
{
    char *p = pol_arena_strndup(c->a, s, n);
    PK_ENSURE_ALLOC(p);
    *out = p;
    return PK_OK;
}

static pk_result alloc_array(pctx *c, size_t n, size_t elem, void **out)
{
    void *p;
    PK_ENSURE(n <= SIZE_MAX / elem, P11KMS_ERR_LIMIT, "policy too large");
    p = pol_arena_alloc(c->a, n * elem);
    PK_ENSURE_ALLOC(p);
    *out = p;
    return PK_OK;
}

static bool has_wildcard(const char *s, size_t n)
{
    return memchr(s, '*', n) != NULL || memchr(s, '?', n) != NULL;
}

static bool has_variable(const char *s, size_t n)
{
    for (size_t i = 0; i + 1 < n; i++) {
        if (s[i] == '$' && s[i + 1] == '{') return true;
    }
    return false;
}

/*
 * Shared shape of Principal.AWS, Action and Resource: a string or a
 * non-empty array of strings. *items receives the strings in order.
 */
static pk_result string_list(pctx *c, const pk_jv *v, const char ***items, size_t **lens, size_t *n)
{
    size_t count = pk_jv_typeof(v) == PK_JV_ARRAY ? pk_jv_size(v) : 1;

    if (pk_jv_typeof(v) != PK_JV_STRING && pk_jv_typeof(v) != PK_JV_ARRAY)
        return perr(c, "must be a string or an array of strings");
    if (count == 0) return perr(c, "must not be an empty array");
    PK_GUARD(alloc_array(c, count, sizeof(**items), (void **)items));
    PK_GUARD(alloc_array(c, count, sizeof(**lens), (void **)lens));
    for (size_t i = 0; i < count; i++) {
        const pk_jv *e = pk_jv_typeof(v) == PK_JV_ARRAY ? pk_jv_at(v, i) : v;
        if (pk_jv_typeof(e) != PK_JV_STRING) {
            size_t old = path_push(c, "[%zu]", i);
            pk_result r = perr(c, "must be a string, not %s", pk_jv_type_name(e));
            path_pop(c, old);
            return r;
        }
        (*items)[i] = pk_jv_str(e);
        (*lens)[i] = pk_jv_strlen(e);
    }
    *n = count;
    return PK_OK;
}

/* Path suffix for element i of a list that may have been a single string. */
static size_t push_elem(pctx *c, const pk_jv *v, size_t i)
{
    return pk_jv_typeof(v) == PK_JV_ARRAY ? path_push(c, "[%zu]", i) : c->plen;
}

static bool all_digits(const char *s, size_t n)
{
    if (n == 0) return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return false;
    }
    return true;
}

/*
 * One principal. AWS allows "*" alone, a 12-digit account id (which means
 * the account's root principal) or an IAM/STS principal ARN; it does not
 * allow wildcards inside a principal, and neither do we (a literal '*'
 * would otherwise silently never match).
 */
static pk_result compile_principal(pctx *c, pol_stmt *st, const char *s, size_t n, size_t slot)
{
    pol_arn arn;
    char buf[64];

    if (n == 1 && s[0] == '*') {
        st->principal_any = true;
        return dup(c, s, n, &st->principals[slot]);
    }
    if (has_wildcard(s, n)) return perr(c, "wildcards are not allowed in a principal (use \"*\" alone)");
    if (n == 12 && all_digits(s, n)) {
        snprintf(buf, sizeof(buf), "arn:aws:iam::%.12s:root", s);
        return dup(c, buf, strlen(buf), &st->principals[slot]);
    }
    if (!pol_arn_split(s, n, &arn) || arn.len[0] != 3 || memcmp(arn.part[0], "arn", 3) != 0 ||
        arn.len[1] == 0 || arn.len[5] == 0 ||
        !((arn.len[2] == 3 && memcmp(arn.part[2], "iam", 3) == 0) ||
          (arn.len[2] == 3 && memcmp(arn.part[2], "sts", 3) == 0)) ||
        !(arn.len[4] == 12 && all_digits(arn.part[4], 12)))
        return perr(c, "\"%.*s\" is not an account id or an IAM principal ARN", (int)(n > 80 ? 80 : n), s);
    return dup(c, s, n, &st->principals[slot]);
}

static pk_result compile_principals(pctx *c, pol_stmt *st, const pk_jv *v)
{
    void *it = NULL;
    const char *key;
    const pk_jv *val;
    const char **items;
    size_t *lens, n;

    if (pk_jv_typeof(v) == PK_JV_STRING) {
        if (strcmp(pk_jv_str(v), "*") != 0)
            return perr(c, "must be \"*\" or an object such as {\"AWS\": \"arn:...\"}");
        PK_GUARD(alloc_array(c, 1, sizeof(*st->principals), (void **)&st->principals));
        st->nprincipals = 1;
        return compile_principal(c, st, "*", 1, 0);
    }
    if (pk_jv_typeof(v) != PK_JV_OBJECT) return perr(c, "must be \"*\" or an object");
    if (pk_jv_size(v) == 0) return perr(c, "must name at least one principal");
    while (pk_jv_next(v, &it, &key, &val)) {
        size_t old = path_push(c, ".%s", key);
        if (strcmp(key, "AWS") != 0) {
            pk_result r = perr(c, "unsupported principal type (only \"AWS\" principals are supported)");
            path_pop(c, old);
            return r;
        }
        PK_GUARD(string_list(c, val, &items, &lens, &n));
        PK_GUARD(alloc_array(c, n, sizeof(*st->principals), (void **)&st->principals));
        st->nprincipals = n;
        for (size_t i = 0; i < n; i++) {
            size_t o2 = push_elem(c, val, i);
            PK_GUARD(compile_principal(c, st, items[i], lens[i], i));
            path_pop(c, o2);
        }
        path_pop(c, old);
    }
    return PK_OK;
}

/* Action names are "service:pattern" or "*"; matching is case-insensitive. */
static pk_result compile_actions(pctx *c, pol_stmt *st, const pk_jv *v)
{
    const char **items;
    size_t *lens, n;

    PK_GUARD(string_list(c, v, &items, &lens, &n));
    PK_GUARD(alloc_array(c, n, sizeof(*st->actions), (void **)&st->actions));
    PK_GUARD(alloc_array(c, n, sizeof(*st->actions_raw), (void **)&st->actions_raw));
    PK_GUARD(alloc_array(c, n, sizeof(*st->action_lens), (void **)&st->action_lens));
    st->nactions = n;
    for (size_t i = 0; i < n; i++) {
        const char *colon = memchr(items[i], ':', lens[i]);
        char *lower;
        if (!(lens[i] == 1 && items[i][0] == '*') &&
            (colon == NULL || colon == items[i] || colon == items[i] + lens[i] - 1)) {
            size_t old = push_elem(c, v, i);
            pk_result r = perr(c, "\"%.*s\" is not an action (expected service:Action, e.g. kms:Encrypt)",
                               (int)(lens[i] > 80 ? 80 : lens[i]), items[i]);
            path_pop(c, old);
            return r;
        }
        lower = pol_arena_strndup(c->a, items[i], lens[i]);
        PK_ENSURE_ALLOC(lower);
        for (size_t k = 0; k < lens[i]; k++) {
            if (lower[k] >= 'A' && lower[k] <= 'Z') lower[k] = (char)(lower[k] - 'A' + 'a');
        }
        st->actions[i] = lower;
        st->action_lens[i] = lens[i];
        PK_GUARD(dup(c, items[i], lens[i], &st->actions_raw[i]));
        st->action_mask |= pol_action_pattern_mask(lower, lens[i]);
        if (lens[i] == 1 && lower[0] == '*') st->action_any = true;
    }
    return PK_OK;
}

/*
 * Resources are "*" or ARNs, matched part by part. An ARN with fewer than
 * six parts is padded with "*" parts when it has a wildcard and never
 * matches otherwise (AWS's rule for resource-based policies).
 */
static pk_result compile_resources(pctx *c, pol_stmt *st, const pk_jv *v)
{
    const char **items;
    size_t *lens, n;

    PK_GUARD(string_list(c, v, &items, &lens, &n));
    PK_GUARD(alloc_array(c, n, sizeof(*st->resources), (void **)&st->resources));
    st->nresources = n;
    for (size_t i = 0; i < n; i++) {
        pol_resource *res = &st->resources[i];
        const char *text = NULL;
        size_t parts = 1;

        PK_GUARD(dup(c, items[i], lens[i], &text));
        res->text = text;
        if (has_variable(text, lens[i])) st->has_variables = true;
        if (lens[i] == 1 && text[0] == '*') {
            res->any = true;
            continue;
        }
        if (lens[i] < 4 || memcmp(text, "arn:", 4) != 0) {
            size_t old = push_elem(c, v, i);
            pk_result r = perr(c, "\"%.*s\" must be \"*\" or an ARN", (int)(lens[i] > 80 ? 80 : lens[i]), text);
            path_pop(c, old);
            return r;
        }
        if (pol_arn_split(text, lens[i], &res->arn)) continue;
        if (!has_wildcard(text, lens[i])) {
            res->never = true;
            continue;
        }
        /* Pad a short wildcard ARN: "arn:aws:kms:*" reads as arn:aws:kms:*:*:*. */
        res->arn.part[0] = text;
        for (size_t k = 0, start = 0; k <= lens[i]; k++) {
            if (k == lens[i] || text[k] == ':') {
                res->arn.part[parts - 1] = text + start;
                res->arn.len[parts - 1] = k - start;
                start = k + 1;
                if (k < lens[i]) parts++;
            }
        }
        for (; parts < 6; parts++) {
            res->arn.part[parts] = "*";
            res->arn.len[parts] = 1;
        }
    }
    return PK_OK;
}

/* ---- Conditions ----------------------------------------------------- */

static const struct {
    const char *name;
    pol_op op;
    bool negated;
} op_table[] = {
    {"StringEquals", POL_OP_STRING_EQUALS, false},
    {"StringNotEquals", POL_OP_STRING_EQUALS, true},
    {"StringEqualsIgnoreCase", POL_OP_STRING_EQUALS_IC, false},
    {"StringNotEqualsIgnoreCase", POL_OP_STRING_EQUALS_IC, true},
    {"StringLike", POL_OP_STRING_LIKE, false},
    {"StringNotLike", POL_OP_STRING_LIKE, true},
    {"NumericEquals", POL_OP_NUMERIC_EQ, false},
    {"NumericNotEquals", POL_OP_NUMERIC_EQ, true},
    {"NumericLessThan", POL_OP_NUMERIC_LT, false},
    {"NumericLessThanEquals", POL_OP_NUMERIC_LE, false},
    {"NumericGreaterThan", POL_OP_NUMERIC_GT, false},
    {"NumericGreaterThanEquals", POL_OP_NUMERIC_GE, false},
    {"DateEquals", POL_OP_DATE_EQ, false},
    {"DateNotEquals", POL_OP_DATE_EQ, true},
    {"DateLessThan", POL_OP_DATE_LT, false},
    {"DateLessThanEquals", POL_OP_DATE_LE, false},
    {"DateGreaterThan", POL_OP_DATE_GT, false},
    {"DateGreaterThanEquals", POL_OP_DATE_GE, false},
    {"Bool", POL_OP_BOOL, false},
    {"IpAddress", POL_OP_IP, false},
    {"NotIpAddress", POL_OP_IP, true},
    {"ArnEquals", POL_OP_ARN, false},
    {"ArnLike", POL_OP_ARN, false},
    {"ArnNotEquals", POL_OP_ARN, true},
    {"ArnNotLike", POL_OP_ARN, true},
    {"Null", POL_OP_NULL, false},
};

/*
 * "[ForAllValues:|ForAnyValue:]<Operator>[IfExists]". Operator names are
 * matched without regard to case, as AWS's evaluator does.
 */
static bool parse_operator(const char *name, pol_cond *cond)
{
    size_t len = strlen(name);

    cond->set = POL_SET_NONE;
    if (len > 13 && strncasecmp(name, "ForAllValues:", 13) == 0) {
        cond->set = POL_SET_FOR_ALL;
        name += 13;
        len -= 13;
    } else if (len > 12 && strncasecmp(name, "ForAnyValue:", 12) == 0) {
        cond->set = POL_SET_FOR_ANY;
        name += 12;
        len -= 12;
    }
    cond->if_exists = false;
    if (len > 8 && strncasecmp(name + len - 8, "IfExists", 8) == 0) {
        cond->if_exists = true;
        len -= 8;
    }
    for (size_t i = 0; i < PK_ARRAY_LEN(op_table); i++) {
        if (strlen(op_table[i].name) == len && strncasecmp(op_table[i].name, name, len) == 0) {
            cond->op = op_table[i].op;
            cond->negated = op_table[i].negated;
            return true;
        }
    }
    return false;
}

/* Keys AWS defines as multi-valued (a single-valued operator on them never matches). */
static const char *const multi_valued_keys[] = {
    "kms:EncryptionContextKeys", "aws:TagKeys", "aws:CalledVia", "aws:PrincipalServiceNamesList",
    "aws:PrincipalOrgPaths", "kms:ResourceAliases",
};
/* Keys that are single-valued (ForAllValues on them is overly permissive). */
static const char *const single_valued_keys[] = {
    "kms:CallerAccount", "aws:PrincipalArn", "aws:CurrentTime", "aws:EpochTime", "aws:SourceIp",
    "kms:RequestAlias", "aws:PrincipalAccount", "aws:SecureTransport", "aws:SourceVpc",
    "aws:SourceVpce", "aws:userid", "aws:username", "kms:ViaService", "kms:KeyOrigin", "kms:KeySpec",
    "kms:KeyUsage", "kms:EncryptionAlgorithm", "kms:GrantIsForAWSResource", "kms:RequestAlias",
};

#define EC_PREFIX "kms:EncryptionContext:"
#define EC_PREFIX_LEN (sizeof(EC_PREFIX) - 1)

static bool key_is(const char *key, size_t len, const char *name)
{
    return strlen(name) == len && strncasecmp(key, name, len) == 0;
}

pol_key_kind pol_key_classify(const char *key, size_t len, bool *multi_valued, bool *single_valued)
{
    *multi_valued = false;
    *single_valued = false;
    for (size_t i = 0; i < PK_ARRAY_LEN(multi_valued_keys); i++) {
        if (key_is(key, len, multi_valued_keys[i])) *multi_valued = true;
    }
    for (size_t i = 0; i < PK_ARRAY_LEN(single_valued_keys); i++) {
        if (key_is(key, len, single_valued_keys[i])) *single_valued = true;
    }
    if (len > EC_PREFIX_LEN && strncasecmp(key, EC_PREFIX, EC_PREFIX_LEN) == 0) {
        *single_valued = true;
        return POL_KEY_EC;
    }
    if (key_is(key, len, "kms:EncryptionContextKeys")) return POL_KEY_EC_KEYS;
    if (key_is(key, len, "kms:CallerAccount")) return POL_KEY_CALLER_ACCOUNT;
    if (key_is(key, len, "aws:PrincipalArn")) return POL_KEY_PRINCIPAL_ARN;
    if (key_is(key, len, "aws:CurrentTime")) return POL_KEY_CURRENT_TIME;
    if (key_is(key, len, "aws:EpochTime")) return POL_KEY_EPOCH_TIME;
    return POL_KEY_EXTRA;
}

/* Condition keys AWS documents besides the two lists above (IAM global keys, KMS keys). */
static const char *const other_known_keys[] = {
    "aws:PrincipalType", "aws:PrincipalOrgID", "aws:PrincipalIsAWSService", "aws:SourceAccount", "aws:SourceArn",
    "aws:SourceOrgID", "aws:SourceOrgPaths", "aws:SourceIdentity", "aws:RequestedRegion", "aws:ResourceAccount",
    "aws:ResourceOrgID", "aws:ResourceOrgPaths", "aws:MultiFactorAuthPresent", "aws:MultiFactorAuthAge",
    "aws:TokenIssueTime", "aws:ViaAWSService", "aws:CalledViaFirst", "aws:CalledViaLast", "aws:UserAgent",
    "aws:Referer", "aws:FederatedProvider", "aws:Ec2InstanceSourceVpc", "aws:Ec2InstanceSourcePrivateIPv4",
    "aws:VpcSourceIp", "kms:BypassPolicyLockoutSafetyCheck", "kms:CustomerMasterKeySpec",
    "kms:CustomerMasterKeyUsage", "kms:DataKeyPairSpec", "kms:ExpirationModel", "kms:GrantConstraintType",
    "kms:GrantOperations", "kms:GranteePrincipal", "kms:KeyAgreementAlgorithm", "kms:MacAlgorithm",
    "kms:MessageType", "kms:MultiRegion", "kms:MultiRegionKeyType", "kms:PrimaryRegion", "kms:ReplicaRegion",
    "kms:RetiringPrincipal", "kms:RotationPeriodInDays", "kms:ScheduleKeyDeletionPendingWindowInDays",
    "kms:SigningAlgorithm", "kms:ValidTo", "kms:WrappingAlgorithm", "kms:WrappingKeySpec",
};
/* Families whose last part is free: tags and attestation documents. */
static const char *const known_key_prefixes[] = {
    "aws:RequestTag/", "aws:ResourceTag/", "aws:PrincipalTag/", "kms:RecipientAttestation:",
};

static bool key_in(const char *key, size_t len, const char *const *names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (key_is(key, len, names[i])) return true;
    return false;
}

bool pol_key_known(const char *key, size_t len)
{
    bool multi, single;
    if (pol_key_classify(key, len, &multi, &single) != POL_KEY_EXTRA || multi || single) return true;
    if (key_in(key, len, other_known_keys, PK_ARRAY_LEN(other_known_keys))) return true;
    for (size_t i = 0; i < PK_ARRAY_LEN(known_key_prefixes); i++) {
        size_t plen = strlen(known_key_prefixes[i]);
        if (len > plen && strncasecmp(key, known_key_prefixes[i], plen) == 0) return true;
    }
    return false;
}

/* The text form of a JSON scalar condition value (AWS compares text). */
static pk_result value_text(pctx *c, const pk_jv *e, const char **s, size_t *n)
{
    char buf[32];
    char *dumped;

    switch (pk_jv_typeof(e)) {
    case PK_JV_STRING:
        *s = pk_jv_str(e);
        *n = pk_jv_strlen(e);
        return PK_OK;
    case PK_JV_INTEGER:
        snprintf(buf, sizeof(buf), "%" PRId64, pk_jv_int(e));
        PK_GUARD(dup(c, buf, strlen(buf), s));
        *n = strlen(*s);
        return PK_OK;
    case PK_JV_REAL:
        dumped = pk_jv_dump(e);
        PK_ENSURE_ALLOC(dumped);
        {
            pk_result r = dup(c, dumped, strlen(dumped), s);
            free(dumped);
            PK_GUARD(r);
        }
        *n = strlen(*s);
        return PK_OK;
    case PK_JV_TRUE:
        *s = "true";
        *n = 4;
        return PK_OK;
    case PK_JV_FALSE:
        *s = "false";
        *n = 5;
        return PK_OK;
    case PK_JV_OBJECT:
    case PK_JV_ARRAY:
    case PK_JV_NULL:
    default:
        return perr(c, "condition values must be strings, numbers or booleans, not %s", pk_jv_type_name(e));
    }
}

static pk_result compile_value(pctx *c, pol_cond *cond, pol_value *pv, const char *s, size_t n)
{
    const char *copy = NULL;
    int w = (int)(n > 80 ? 80 : n);

    PK_GUARD(dup(c, s, n, &copy));
    pv->s = copy;
    pv->len = n;
    switch (cond->op) {
    case POL_OP_STRING_EQUALS:
    case POL_OP_STRING_EQUALS_IC:
    case POL_OP_STRING_LIKE:
        return PK_OK;
    case POL_OP_NUMERIC_EQ:
    case POL_OP_NUMERIC_LT:
    case POL_OP_NUMERIC_LE:
    case POL_OP_NUMERIC_GT:
    case POL_OP_NUMERIC_GE:
        if (!pol_parse_number(copy, n, &pv->u.num)) return perr(c, "\"%.*s\" is not a number", w, copy);
        return PK_OK;
    case POL_OP_DATE_EQ:
    case POL_OP_DATE_LT:
    case POL_OP_DATE_LE:
    case POL_OP_DATE_GT:
    case POL_OP_DATE_GE:
        if (!pol_parse_date(copy, n, &pv->u.ms))
            return perr(c, "\"%.*s\" is not an ISO 8601 date or epoch seconds", w, copy);
        return PK_OK;
    case POL_OP_BOOL:
    case POL_OP_NULL:
        if (!pol_parse_bool(copy, n, &pv->u.b)) return perr(c, "\"%.*s\" must be \"true\" or \"false\"", w, copy);
        return PK_OK;
    case POL_OP_IP:
        if (!pol_parse_cidr(copy, n, &pv->u.cidr))
            return perr(c, "\"%.*s\" is not an IPv4 or IPv6 address or CIDR block", w, copy);
        return PK_OK;
    case POL_OP_ARN:
        if (!pol_arn_split(copy, n, &pv->u.arn) || pv->u.arn.len[0] != 3 || memcmp(copy, "arn", 3) != 0)
            return perr(c, "\"%.*s\" is not an ARN (arn:partition:service:region:account:resource)", w, copy);
        return PK_OK;
    default:
        return pk_fail(P11KMS_ERR_INTERNAL, "unhandled condition operator");
    }
}

static pk_result compile_cond(pctx *c, pol_stmt *st, pol_cond *cond, const char *key, const pk_jv *v)
{
    size_t klen = strlen(key), n;
    const char *colon = strchr(key, ':');

    if (colon == NULL || colon == key || colon[1] == '\0')
        return perr(c, "condition key must look like prefix:name (e.g. kms:CallerAccount)");
    PK_GUARD(dup(c, key, klen, &cond->key));
    cond->key_len = klen;
    {
        bool single;
        cond->kind = pol_key_classify(key, klen, &cond->multi_valued_key, &single);
    }
    if (cond->kind == POL_KEY_EC) {
        cond->ec_key = cond->key + EC_PREFIX_LEN;
        cond->ec_key_len = klen - EC_PREFIX_LEN;
    } else if (klen == EC_PREFIX_LEN && strncasecmp(key, EC_PREFIX, EC_PREFIX_LEN) == 0) {
        return perr(c, "the encryption context key after kms:EncryptionContext: is empty");
    }
    if (pk_jv_typeof(v) == PK_JV_ARRAY) {
        n = pk_jv_size(v);
        if (n == 0) return perr(c, "must not be an empty array");
    } else {
        n = 1;
    }
    PK_GUARD(alloc_array(c, n, sizeof(*cond->values), (void **)&cond->values));
    cond->nvalues = n;
    for (size_t i = 0; i < n; i++) {
        const pk_jv *e = pk_jv_typeof(v) == PK_JV_ARRAY ? pk_jv_at(v, i) : v;
        size_t old = push_elem(c, v, i);
        const char *s = NULL;
        size_t slen = 0;
        PK_GUARD(value_text(c, e, &s, &slen));
        PK_GUARD(compile_value(c, cond, &cond->values[i], s, slen));
        if (has_variable(s, slen)) st->has_variables = true;
        path_pop(c, old);
    }
    return PK_OK;
}

static pk_result compile_conditions(pctx *c, pol_stmt *st, const pk_jv *v)
{
    void *it = NULL, *it2;
    const char *opname, *key;
    const pk_jv *block, *val;
    size_t total = 0, k = 0;

    if (pk_jv_typeof(v) != PK_JV_OBJECT) return perr(c, "must be an object");
    while (pk_jv_next(v, &it, &opname, &block)) {
        pol_cond probe;
        size_t old = path_push(c, ".%s", opname);
        if (!parse_operator(opname, &probe)) return perr(c, "unknown operator");
        if (pk_jv_typeof(block) != PK_JV_OBJECT) return perr(c, "must be an object of condition keys");
        if (pk_jv_size(block) == 0) return perr(c, "must name at least one condition key");
        total += pk_jv_size(block);
        path_pop(c, old);
    }
    PK_GUARD(alloc_array(c, total ? total : 1, sizeof(*st->conds), (void **)&st->conds));
    it = NULL;
    while (pk_jv_next(v, &it, &opname, &block)) {
        size_t old = path_push(c, ".%s", opname);
        const char *opcopy = NULL;
        PK_GUARD(dup(c, opname, strlen(opname), &opcopy));
        it2 = NULL;
        while (pk_jv_next(block, &it2, &key, &val)) {
            pol_cond *cond = &st->conds[k++];
            size_t old2 = path_push(c, ".%s", key);
            if (!parse_operator(opname, cond)) return perr(c, "unknown operator");
            cond->op_name = opcopy;
            PK_GUARD(compile_cond(c, st, cond, key, val));
            path_pop(c, old2);
        }
        path_pop(c, old);
    }
    st->nconds = k;
    return PK_OK;
}

/* ---- Statements ----------------------------------------------------- */

static const char *const stmt_keys[] = {
    "Sid", "Effect", "Principal", "NotPrincipal", "Action", "NotAction", "Resource", "NotResource", "Condition",
};

static pk_result exactly_one(pctx *c, const pk_jv *s, const char *a, const char *b, bool *use_b)
{
    bool ha = pk_jv_get(s, a) != NULL, hb = pk_jv_get(s, b) != NULL;
    if (ha && hb) return perr(c, "%s and %s cannot both be present", a, b);
    if (!ha && !hb) return perr(c, "%s or %s is required", a, b);
    *use_b = hb;
    return PK_OK;
}

static pk_result compile_statement(pctx *c, pol_stmt *st, const pk_jv *s, size_t index)
{
    void *it = NULL;
    const char *key, *effect;
    const pk_jv *val, *e;
    char label[32];
    size_t old;

    st->index = index;
    if (pk_jv_typeof(s) != PK_JV_OBJECT) return perr(c, "must be an object");
    while (pk_jv_next(s, &it, &key, &val)) {
        bool known = false;
        for (size_t i = 0; i < PK_ARRAY_LEN(stmt_keys); i++) known = known || strcmp(key, stmt_keys[i]) == 0;
        if (!known) {
            old = path_push(c, ".%s", key);
            return perr(c, "unknown key");
        }
    }
    if ((e = pk_jv_get(s, "Sid")) != NULL) {
        old = path_push(c, ".Sid");
        if (pk_jv_typeof(e) != PK_JV_STRING) return perr(c, "must be a string");
        PK_GUARD(dup(c, pk_jv_str(e), pk_jv_strlen(e), &st->sid));
        path_pop(c, old);
    }
    if (st->sid != NULL && st->sid[0] != '\0') {
        st->label = st->sid;
    } else {
        snprintf(label, sizeof(label), "Statement[%zu]", index);
        PK_GUARD(dup(c, label, strlen(label), &st->label));
    }

    e = pk_jv_get(s, "Effect");
    if (e == NULL) return perr(c, "Effect is required");
    old = path_push(c, ".Effect");
    effect = pk_jv_str(e);
    if (effect == NULL || (strcmp(effect, "Allow") != 0 && strcmp(effect, "Deny") != 0))
        return perr(c, "must be \"Allow\" or \"Deny\"");
    st->deny = strcmp(effect, "Deny") == 0;
    path_pop(c, old);

    PK_GUARD(exactly_one(c, s, "Principal", "NotPrincipal", &st->not_principal));
    old = path_push(c, ".%s", st->not_principal ? "NotPrincipal" : "Principal");
    PK_GUARD(compile_principals(c, st, pk_jv_get(s, st->not_principal ? "NotPrincipal" : "Principal")));
    path_pop(c, old);

    PK_GUARD(exactly_one(c, s, "Action", "NotAction", &st->not_action));
    old = path_push(c, ".%s", st->not_action ? "NotAction" : "Action");
    PK_GUARD(compile_actions(c, st, pk_jv_get(s, st->not_action ? "NotAction" : "Action")));
    path_pop(c, old);

    PK_GUARD(exactly_one(c, s, "Resource", "NotResource", &st->not_resource));
    old = path_push(c, ".%s", st->not_resource ? "NotResource" : "Resource");
    PK_GUARD(compile_resources(c, st, pk_jv_get(s, st->not_resource ? "NotResource" : "Resource")));
    path_pop(c, old);

    if ((e = pk_jv_get(s, "Condition")) != NULL) {
        old = path_push(c, ".Condition");
        PK_GUARD(compile_conditions(c, st, e));
        path_pop(c, old);
    }
    return PK_OK;
}

static pk_result compile_document(pctx *c, pk_policy *p, const pk_jv *doc)
{
    void *it = NULL;
    const char *key;
    const pk_jv *val, *v, *stmts;
    size_t n;

    if (pk_jv_typeof(doc) != PK_JV_OBJECT) return perr(c, "a policy must be a JSON object");
    while (pk_jv_next(doc, &it, &key, &val)) {
        if (strcmp(key, "Version") != 0 && strcmp(key, "Id") != 0 && strcmp(key, "Statement") != 0) {
            path_push(c, "%s", key);
            return perr(c, "unknown key");
        }
    }
    v = pk_jv_get(doc, "Version");
    if (v == NULL) return perr(c, "Version is required (\"" POL_VERSION "\")");
    path_push(c, "Version");
    if (pk_jv_str(v) == NULL || strcmp(pk_jv_str(v), POL_VERSION) != 0)
        return perr(c, "must be \"" POL_VERSION "\"");
    path_pop(c, 0);
    if ((v = pk_jv_get(doc, "Id")) != NULL) {
        path_push(c, "Id");
        if (pk_jv_typeof(v) != PK_JV_STRING) return perr(c, "must be a string");
        PK_GUARD(dup(c, pk_jv_str(v), pk_jv_strlen(v), &p->id));
        path_pop(c, 0);
    }
    stmts = pk_jv_get(doc, "Statement");
    if (stmts == NULL) return perr(c, "Statement is required");
    path_push(c, "Statement");
    if (pk_jv_typeof(stmts) == PK_JV_ARRAY) {
        n = pk_jv_size(stmts);
        if (n == 0) return perr(c, "must not be an empty array");
    } else if (pk_jv_typeof(stmts) == PK_JV_OBJECT) {
        n = 1;
    } else {
        return perr(c, "must be an object or an array of objects");
    }
    PK_GUARD(alloc_array(c, n, sizeof(*p->stmts), (void **)&p->stmts));
    p->nstmts = n;
    for (size_t i = 0; i < n; i++) {
        const pk_jv *s = pk_jv_typeof(stmts) == PK_JV_ARRAY ? pk_jv_at(stmts, i) : stmts;
        size_t old = push_elem(c, stmts, i);
        PK_GUARD(compile_statement(c, &p->stmts[i], s, i));
        path_pop(c, old);
    }
    return PK_OK;
}

pk_result pk_policy_compile(const char *json, size_t len, pk_policy **out)
{
    pk_result r = PK_OK;
    pk_jv *doc = NULL;
    pk_policy *p = NULL;
    pctx c;

    PK_CHECK(json != NULL && out != NULL, P11KMS_ERR_INVALID_ARGUMENT, "policy: no document");
    PK_CHECK(len <= PK_POLICY_MAX_BYTES, P11KMS_ERR_POLICY_INVALID,
             "policy is %zu bytes; the limit is %d", len, PK_POLICY_MAX_BYTES);
    PK_TRY(pk_json_parse(json, len, P11KMS_ERR_POLICY_INVALID, &doc));
    p = calloc(1, sizeof(*p));
    PK_CHECK_ALLOC(p);
    memset(&c, 0, sizeof(c));
    c.a = &p->arena;
    PK_TRY(compile_document(&c, p, doc));
    *out = p;
    p = NULL;
out:
    pk_json_free(doc);
    pk_policy_free(p);
    return r;
}

void pk_policy_free(pk_policy *p)
{
    if (p == NULL) return;
    pol_arena_free(&p->arena);
    free(p);
}

size_t pk_policy_statement_count(const pk_policy *p) { return p != NULL ? p->nstmts : 0; }
const char *pk_policy_id(const pk_policy *p) { return p != NULL ? p->id : NULL; }
