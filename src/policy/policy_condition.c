/*
 * Condition evaluation, following AWS's documented rules
 * (IAM User Guide, "Condition operators", "IfExists", "Single-valued vs.
 * multivalued context keys"):
 *
 *   - several values for one key in the policy are OR'ed; a negated
 *     operator (StringNotEquals, NotIpAddress, ArnNotLike, ...) is the NOT of
 *     that OR: it matches when no policy value matches;
 *   - key absent: positive operators are false, negated operators true,
 *     ...IfExists true; ForAllValues true; ForAnyValue false (true with
 *     IfExists); Null tests presence only;
 *   - a multi-valued request key with an operator that has no set
 *     qualifier never matches (AWS requires ForAllValues/ForAnyValue);
 *   - ForAllValues: every request value satisfies the (possibly negated)
 *     operator; ForAnyValue: at least one does.
 *
 * Nothing here allocates: request values are pointers into the request or
 * into a small buffer in the iterator.
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "policy/policy_impl.h"

typedef struct rval {
    const char *s;
    size_t len;
    bool has_ms; /* a time key: ms is authoritative for Date operators */
    int64_t ms;
} rval;

typedef struct kiter {
    const pol_cond *c;
    const pol_req *r;
    size_t pos;
    char buf[32];
} kiter;

static bool is_date_op(pol_op op)
{
    return op == POL_OP_DATE_EQ || op == POL_OP_DATE_LT || op == POL_OP_DATE_LE || op == POL_OP_DATE_GT ||
           op == POL_OP_DATE_GE;
}

static bool key_eq_icase(const char *a, size_t alen, const char *b)
{
    return strncasecmp(a, b, alen) == 0 && b[alen] == '\0';
}

/* Produce the next request value of the condition's key, if any. */
static bool kiter_next(kiter *it, rval *v)
{
    const pol_cond *c = it->c;
    const pk_policy_request *q = it->r->req;

    v->has_ms = false;
    switch (c->kind) {
    case POL_KEY_EC:
        /* The <k> of kms:EncryptionContext:<k> is case-sensitive, as the context is. */
        if (it->pos++ != 0) return false;
        for (size_t i = 0; i < q->context_len; i++) {
            const char *k = q->context[i].key;
            if (strncmp(k, c->ec_key, c->ec_key_len) == 0 && k[c->ec_key_len] == '\0') {
                v->s = q->context[i].value;
                v->len = strlen(v->s);
                return true;
            }
        }
        return false;
    case POL_KEY_EC_KEYS:
        if (it->pos >= q->context_len) return false;
        v->s = q->context[it->pos++].key;
        v->len = strlen(v->s);
        return true;
    case POL_KEY_CALLER_ACCOUNT:
        if (it->pos++ != 0 || it->r->account == NULL) return false;
        v->s = it->r->account;
        v->len = it->r->account_len;
        return true;
    case POL_KEY_PRINCIPAL_ARN:
        if (it->pos++ != 0) return false;
        v->s = q->principal;
        v->len = it->r->principal_len;
        return true;
    case POL_KEY_CURRENT_TIME:
    case POL_KEY_EPOCH_TIME:
        if (it->pos++ != 0) return false;
        v->has_ms = true;
        v->ms = it->r->now_ms;
        v->s = it->buf;
        v->len = 0;
        if (is_date_op(c->op)) return true; /* text not needed */
        if (c->kind == POL_KEY_CURRENT_TIME) {
            pol_format_date(it->r->now_ms, it->buf, sizeof(it->buf));
        } else {
            snprintf(it->buf, sizeof(it->buf), "%" PRId64, it->r->now_ms / 1000);
        }
        v->len = strlen(it->buf);
        return true;
    case POL_KEY_EXTRA:
    default:
        for (; it->pos < q->extra_len; it->pos++) {
            if (key_eq_icase(c->key, c->key_len, q->extra[it->pos].key)) {
                v->s = q->extra[it->pos++].value;
                v->len = strlen(v->s);
                return true;
            }
        }
        return false;
    }
}

static bool cmp_num(pol_op op, double req, double pol)
{
    switch (op) {
    case POL_OP_NUMERIC_EQ: return req == pol;
    case POL_OP_NUMERIC_LT: return req < pol;
    case POL_OP_NUMERIC_LE: return req <= pol;
    case POL_OP_NUMERIC_GT: return req > pol;
    case POL_OP_NUMERIC_GE: return req >= pol;
    default: return false;
    }
}

static bool cmp_date(pol_op op, int64_t req, int64_t pol)
{
    switch (op) {
    case POL_OP_DATE_EQ: return req == pol;
    case POL_OP_DATE_LT: return req < pol;
    case POL_OP_DATE_LE: return req <= pol;
    case POL_OP_DATE_GT: return req > pol;
    case POL_OP_DATE_GE: return req >= pol;
    default: return false;
    }
}

/*
 * Whether any policy value matches one request value under the positive
 * form of the operator. A request value of the wrong type (not a number,
 * date, address, ARN or boolean) matches no policy value.
 */
static bool any_value_matches(const pol_cond *c, const rval *v)
{
    const pol_value *pv = c->values;
    size_t n = c->nvalues;

    switch (c->op) {
    case POL_OP_STRING_EQUALS:
        for (size_t i = 0; i < n; i++) {
            if (pv[i].len == v->len && memcmp(pv[i].s, v->s, v->len) == 0) return true;
        }
        return false;
    case POL_OP_STRING_EQUALS_IC:
        for (size_t i = 0; i < n; i++) {
            if (pv[i].len == v->len && strncasecmp(pv[i].s, v->s, v->len) == 0) return true;
        }
        return false;
    case POL_OP_STRING_LIKE:
        for (size_t i = 0; i < n; i++) {
            if (pol_glob(pv[i].s, pv[i].len, v->s, v->len, false)) return true;
        }
        return false;
    case POL_OP_NUMERIC_EQ:
    case POL_OP_NUMERIC_LT:
    case POL_OP_NUMERIC_LE:
    case POL_OP_NUMERIC_GT:
    case POL_OP_NUMERIC_GE: {
        double d;
        if (!pol_parse_number(v->s, v->len, &d)) return false;
        for (size_t i = 0; i < n; i++) {
            if (cmp_num(c->op, d, pv[i].u.num)) return true;
        }
        return false;
    }
    case POL_OP_DATE_EQ:
    case POL_OP_DATE_LT:
    case POL_OP_DATE_LE:
    case POL_OP_DATE_GT:
    case POL_OP_DATE_GE: {
        int64_t ms = v->ms;
        if (!v->has_ms && !pol_parse_date(v->s, v->len, &ms)) return false;
        for (size_t i = 0; i < n; i++) {
            if (cmp_date(c->op, ms, pv[i].u.ms)) return true;
        }
        return false;
    }
    case POL_OP_BOOL: {
        bool b;
        if (!pol_parse_bool(v->s, v->len, &b)) return false;
        for (size_t i = 0; i < n; i++) {
            if (pv[i].u.b == b) return true;
        }
        return false;
    }
    case POL_OP_IP: {
        pol_cidr ip;
        if (!pol_parse_ip(v->s, v->len, &ip)) return false;
        for (size_t i = 0; i < n; i++) {
            if (pol_cidr_contains(&pv[i].u.cidr, &ip)) return true;
        }
        return false;
    }
    case POL_OP_ARN: {
        pol_arn arn;
        if (!pol_arn_split(v->s, v->len, &arn)) return false;
        for (size_t i = 0; i < n; i++) {
            if (pol_arn_match(&pv[i].u.arn, &arn)) return true;
        }
        return false;
    }
    case POL_OP_NULL:
    default:
        return false;
    }
}

static bool value_satisfies(const pol_cond *c, const rval *v)
{
    bool m = any_value_matches(c, v);
    return c->negated ? !m : m;
}

/*
 * Null asks only whether the key is present: "true" matches an absent key,
 * "false" a present one. Set qualifiers and IfExists do not change that.
 */
static bool null_matches(const pol_cond *c, bool present)
{
    for (size_t i = 0; i < c->nvalues; i++) {
        if (c->values[i].u.b == !present) return true;
    }
    return false;
}

bool pol_cond_eval(const pol_cond *c, const pol_req *r)
{
    kiter it = {.c = c, .r = r, .pos = 0};
    rval v, extra;
    bool present = kiter_next(&it, &v);

    if (c->op == POL_OP_NULL) return null_matches(c, present);
    switch (c->set) {
    case POL_SET_FOR_ALL:
        if (!present) return true;
        do {
            if (!value_satisfies(c, &v)) return false;
        } while (kiter_next(&it, &v));
        return true;
    case POL_SET_FOR_ANY:
        if (!present) return c->if_exists;
        do {
            if (value_satisfies(c, &v)) return true;
        } while (kiter_next(&it, &v));
        return false;
    case POL_SET_NONE:
    default:
        if (!present) return c->if_exists || c->negated;
        if (c->multi_valued_key) return false;
        {
            /* Compare before reading on: the next value may reuse it.buf. */
            bool ok = value_satisfies(c, &v);
            if (kiter_next(&it, &extra)) return false; /* a repeated extra key is multi-valued */
            return ok;
        }
    }
}
