/*
 * Lint: findings that do not make a policy invalid but make it risky.
 * Modelled on IAM Access Analyzer's policy checks where AWS has one
 * (OverlyPermissiveCondition), plus the separation of duties that the
 * key-administrator / application-operator templates encode.
 *
 * Reachability here is deliberately generous: an Allow statement counts for
 * a principal whatever its conditions, and only an unconditional Deny on
 * every resource takes a grant away. Lint asks "could this principal ever
 * get the action", so conditions never hide a finding.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/policy_impl.h"

const char *pk_lint_kind_name(pk_lint_kind k)
{
    switch (k) {
    case PK_LINT_SEPARATION_OF_DUTIES: return "SeparationOfDuties";
    case PK_LINT_WILDCARD_PRINCIPAL: return "WildcardPrincipal";
    case PK_LINT_WILDCARD_ACTION: return "WildcardAction";
    case PK_LINT_OVERLY_PERMISSIVE_CONDITION: return "OverlyPermissiveCondition";
    case PK_LINT_UNKNOWN_ACTION: return "UnknownAction";
    case PK_LINT_UNKNOWN_CONDITION_KEY: return "UnknownConditionKey";
    case PK_LINT_NO_ADMINISTRATOR: return "NoKeyAdministrator";
    case PK_LINT_POLICY_VARIABLE: return "PolicyVariable";
    default: return "Unknown";
    }
}

bool pk_lint_kind_is_error(pk_lint_kind k)
{
    return k == PK_LINT_UNKNOWN_ACTION || k == PK_LINT_UNKNOWN_CONDITION_KEY;
}

static pk_result add(pk_lint_report *rep, pk_lint_kind kind, const pol_stmt *st, const char *fmt, ...)
    PK_PRINTF(4, 5);
static pk_result add(pk_lint_report *rep, pk_lint_kind kind, const pol_stmt *st, const char *fmt, ...)
{
    pk_lint_finding *f;
    char *msg;
    char prefix[160] = "";
    va_list ap;
    int n, m;

    if (rep->n == rep->cap) {
        size_t cap = rep->cap ? rep->cap * 2 : 8;
        pk_lint_finding *items = realloc(rep->items, cap * sizeof(*items));
        PK_ENSURE_ALLOC(items);
        rep->items = items;
        rep->cap = cap;
    }
    if (st != NULL) {
        if (st->sid != NULL && st->sid[0] != '\0') {
            snprintf(prefix, sizeof(prefix), "Statement[%zu] (Sid \"%.100s\"): ", st->index, st->sid);
        } else {
            snprintf(prefix, sizeof(prefix), "Statement[%zu]: ", st->index);
        }
    }
    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    PK_ENSURE(n >= 0, P11KMS_ERR_INTERNAL, "format error");
    m = (int)strlen(prefix);
    msg = malloc((size_t)m + (size_t)n + 1);
    PK_ENSURE_ALLOC(msg);
    memcpy(msg, prefix, (size_t)m);
    va_start(ap, fmt);
    vsnprintf(msg + m, (size_t)n + 1, fmt, ap);
    va_end(ap);
    f = &rep->items[rep->n++];
    f->kind = kind;
    f->statement = st != NULL ? (long)st->index : -1;
    f->sid = st != NULL ? st->sid : NULL;
    f->message = msg;
    return PK_OK;
}

void pk_lint_report_free(pk_lint_report *rep)
{
    if (rep == NULL) return;
    for (size_t i = 0; i < rep->n; i++) free(rep->items[i].message);
    free(rep->items);
    memset(rep, 0, sizeof(*rep));
}

/* Known actions a statement's Action/NotAction element covers. */
static uint64_t stmt_actions(const pol_stmt *st)
{
    return st->not_action ? (~st->action_mask & pol_action_all_mask()) : st->action_mask;
}

static bool has_any_resource(const pol_stmt *st)
{
    if (st->not_resource) return false;
    for (size_t i = 0; i < st->nresources; i++) {
        if (st->resources[i].any) return true;
    }
    return false;
}

/*
 * Whether statement st names principal p. p == NULL stands for "some
 * principal no statement names", which "*" and NotPrincipal reach.
 */
static bool stmt_names(const pol_stmt *st, const char *p)
{
    bool listed = st->principal_any;
    for (size_t i = 0; p != NULL && !listed && i < st->nprincipals; i++) listed = strcmp(st->principals[i], p) == 0;
    return st->not_principal ? (p == NULL ? !st->principal_any : !listed) : listed;
}

static uint64_t reachable(const pk_policy *pol, const char *p)
{
    uint64_t allow = 0, deny = 0;
    for (size_t i = 0; i < pol->nstmts; i++) {
        const pol_stmt *st = &pol->stmts[i];
        if (!stmt_names(st, p)) continue;
        if (!st->deny) {
            allow |= stmt_actions(st);
        } else if (st->nconds == 0 && has_any_resource(st)) {
            deny |= stmt_actions(st);
        }
    }
    return allow & ~deny;
}

/* "kms:Encrypt, kms:Decrypt" for the actions in mask (at most four). */
static void mask_names(uint64_t mask, char *buf, size_t cap)
{
    size_t used = 0, shown = 0, total = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < pk_policy_action_count(); i++) {
        if (!((mask >> i) & 1u)) continue;
        total++;
        if (shown == 4) continue;
        used += (size_t)snprintf(buf + used, used < cap ? cap - used : 0, "%s%s", shown ? ", " : "",
                                 pk_policy_action_name(i));
        shown++;
    }
    if (total > shown && used < cap) snprintf(buf + used, cap - used, ", ...");
}

/* Distinct principals Allow statements name; NULL stands for "anyone else". */
static pk_result candidates(const pk_policy *pol, const char ***out, size_t *n)
{
    size_t cap = 1, k = 0;
    const char **list;
    bool anyone = false;

    for (size_t i = 0; i < pol->nstmts; i++) cap += pol->stmts[i].nprincipals;
    list = calloc(cap, sizeof(*list));
    PK_ENSURE_ALLOC(list);
    for (size_t i = 0; i < pol->nstmts; i++) {
        const pol_stmt *st = &pol->stmts[i];
        if (st->deny) continue;
        if (st->principal_any || st->not_principal) anyone = true;
        for (size_t j = 0; j < st->nprincipals && !st->not_principal; j++) {
            bool seen = strcmp(st->principals[j], "*") == 0;
            for (size_t q = 0; q < k && !seen; q++) seen = strcmp(list[q], st->principals[j]) == 0;
            if (!seen) list[k++] = st->principals[j];
        }
    }
    if (anyone) list[k++] = NULL;
    *out = list;
    *n = k;
    return PK_OK;
}

static pk_result lint_roles(const pk_policy *pol, pk_lint_report *rep)
{
    uint64_t admin = pol_action_class_mask(PK_ACTION_ADMIN), crypto = pol_action_class_mask(PK_ACTION_CRYPTO);
    uint64_t put = UINT64_C(1) << pol_action_index("kms:PutKeyPolicy", 16);
    bool anyone_admin = false;
    const char **list = NULL;
    size_t n = 0;
    char a[160], c[160];
    pk_result r = PK_OK;

    PK_TRY(candidates(pol, &list, &n));
    for (size_t i = 0; i < n; i++) {
        uint64_t m = reachable(pol, list[i]);
        if (m & put) anyone_admin = true;
        if ((m & admin) && (m & crypto)) {
            mask_names(m & admin, a, sizeof(a));
            mask_names(m & crypto, c, sizeof(c));
            PK_TRY(add(rep, PK_LINT_SEPARATION_OF_DUTIES, NULL,
                       "principal %s is granted both key administration (%s) and cryptographic use (%s)",
                       list[i] != NULL ? list[i] : "\"*\" (every principal)", a, c));
        }
    }
    if (!anyone_admin) {
        PK_TRY(add(rep, PK_LINT_NO_ADMINISTRATOR, NULL,
                   "no principal is allowed kms:PutKeyPolicy: nobody could change this policy (key lockout)"));
    }
out:
    free(list);
    return r;
}

static pk_result lint_statement(const pol_stmt *st, pk_lint_report *rep)
{
    if (!st->deny && !st->not_principal && st->principal_any) {
        PK_GUARD(add(rep, PK_LINT_WILDCARD_PRINCIPAL, st, "Allow with Principal \"*\" grants access to every principal"));
    }
    if (!st->deny && st->not_principal) {
        PK_GUARD(add(rep, PK_LINT_WILDCARD_PRINCIPAL, st,
                     "Allow with NotPrincipal grants access to every principal not listed"));
    }
    if (!st->deny && stmt_actions(st) == pol_action_all_mask()) {
        PK_GUARD(add(rep, PK_LINT_WILDCARD_ACTION, st,
                     "Allow covers every kms action (%s%s); list the actions the principals need",
                     st->not_action ? "NotAction " : "", st->actions_raw[0]));
    }
    for (size_t i = 0; i < st->nactions; i++) {
        const char *a = st->actions_raw[i];
        size_t len = st->action_lens[i];
        bool wild = memchr(a, '*', len) != NULL || memchr(a, '?', len) != NULL;
        if (!wild && pol_action_index(a, len) < 0) {
            PK_GUARD(add(rep, PK_LINT_UNKNOWN_ACTION, st, "unknown action \"%s\"", a));
        } else if (wild && pol_action_pattern_mask(st->actions[i], len) == 0) {
            PK_GUARD(add(rep, PK_LINT_UNKNOWN_ACTION, st, "action pattern \"%s\" matches no known action", a));
        }
    }
    for (size_t i = 0; i < st->nconds; i++) {
        const pol_cond *c = &st->conds[i];
        bool multi, single;
        (void)pol_key_classify(c->key, c->key_len, &multi, &single);
        if (!pol_key_known(c->key, c->key_len)) {
            PK_GUARD(add(rep, PK_LINT_UNKNOWN_CONDITION_KEY, st,
                         "unknown condition key \"%.*s\": a request never carries it", (int)c->key_len, c->key));
        }
        if (!st->deny && c->set == POL_SET_FOR_ALL && single) {
            PK_GUARD(add(rep, PK_LINT_OVERLY_PERMISSIVE_CONDITION, st,
                         "%s on single-valued key %s also matches when the key is absent; "
                         "use the operator without ForAllValues:",
                         c->op_name, c->key));
        }
    }
    if (st->has_variables) {
        PK_GUARD(add(rep, PK_LINT_POLICY_VARIABLE, st,
                     "\"${\" is compared literally: p11kms does not expand policy variables"));
    }
    return PK_OK;
}

pk_result pk_policy_lint(const pk_policy *p, pk_lint_report *report)
{
    PK_ENSURE(p != NULL && report != NULL, P11KMS_ERR_INVALID_ARGUMENT, "policy lint: NULL argument");
    for (size_t i = 0; i < p->nstmts; i++) PK_GUARD(lint_statement(&p->stmts[i], report));
    return lint_roles(p, report);
}

pk_result pk_policy_lint_refuse_errors(const pk_policy *p)
{
    pk_lint_report rep = {0};
    pk_result r = pk_policy_lint(p, &rep);
    size_t nerr = 0, first = 0;
    for (size_t i = 0; pk_ok(r) && i < rep.n; i++) {
        if (!pk_lint_kind_is_error(rep.items[i].kind)) continue;
        if (nerr++ == 0) first = i;
    }
    if (pk_ok(r) && nerr > 0) {
        r = pk_fail(P11KMS_ERR_POLICY_INVALID, "policy lint: %s%s; fix the policy or pass --bypass-lint",
                    rep.items[first].message, nerr > 1 ? " (and more: run p11kms policy lint)" : "");
    }
    pk_lint_report_free(&rep);
    return r;
}
