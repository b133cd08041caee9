/*
 * The default key policy, built from the two statement templates shipped
 * in tokens/policies/ (the strings below are byte-identical copies; the
 * test suite compares them with the files). Separation of duties is the
 * point: administrators manage the key but cannot use it, operators use it
 * but cannot manage it.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "policy/policy_impl.h"
#include "util/json_out.h"

static const char tmpl_admin[] =
    "{\n"
    "  \"Sid\": \"KeyAdministration\",\n"
    "  \"Effect\": \"Allow\",\n"
    "  \"Principal\": {\"AWS\": \"__PRINCIPALS__\"},\n"
    "  \"Action\": [\n"
    "    \"kms:DescribeKey\",\n"
    "    \"kms:GetKeyPolicy\",\n"
    "    \"kms:PutKeyPolicy\",\n"
    "    \"kms:EnableKey\",\n"
    "    \"kms:DisableKey\",\n"
    "    \"kms:RotateKeyOnDemand\",\n"
    "    \"kms:EnableKeyRotation\",\n"
    "    \"kms:DisableKeyRotation\",\n"
    "    \"kms:GetKeyRotationStatus\",\n"
    "    \"kms:ScheduleKeyDeletion\",\n"
    "    \"kms:CancelKeyDeletion\",\n"
    "    \"kms:CreateAlias\",\n"
    "    \"kms:DeleteAlias\",\n"
    "    \"kms:UpdateAlias\",\n"
    "    \"kms:ListAliases\"\n"
    "  ],\n"
    "  \"Resource\": \"*\"\n"
    "}\n";

static const char tmpl_operator[] =
    "{\n"
    "  \"Sid\": \"KeyUse\",\n"
    "  \"Effect\": \"Allow\",\n"
    "  \"Principal\": {\"AWS\": \"__PRINCIPALS__\"},\n"
    "  \"Action\": [\n"
    "    \"kms:Encrypt\",\n"
    "    \"kms:Decrypt\",\n"
    "    \"kms:ReEncrypt*\",\n"
    "    \"kms:GenerateDataKey*\",\n"
    "    \"kms:DescribeKey\"\n"
    "  ],\n"
    "  \"Resource\": \"*\"\n"
    "}\n";

const char *pk_policy_template_text(pk_policy_template t)
{
    switch (t) {
    case PK_POLICY_TEMPLATE_KEY_ADMINISTRATOR: return tmpl_admin;
    case PK_POLICY_TEMPLATE_APPLICATION_OPERATOR: return tmpl_operator;
    default: return "";
    }
}

/* "111122223333" and arn:aws:iam::111122223333:root are one principal. */
static bool same_principal(const char *a, const char *b)
{
    char ra[64], rb[64];
    size_t la = strlen(a), lb = strlen(b);

    if (la == 12 && strspn(a, "0123456789") == 12) {
        snprintf(ra, sizeof(ra), "arn:aws:iam::%s:root", a);
        a = ra;
    }
    if (lb == 12 && strspn(b, "0123456789") == 12) {
        snprintf(rb, sizeof(rb), "arn:aws:iam::%s:root", b);
        b = rb;
    }
    return strcmp(a, b) == 0;
}

/* Copy a template, indenting it and replacing the placeholder with principals. */
static pk_result emit_statement(pk_buf *out, const char *tmpl, const char *const *principals, size_t n)
{
    const char *ph = strstr(tmpl, PK_POLICY_PRINCIPALS_PLACEHOLDER);
    const char *p = tmpl;
    pk_json_out j;
    pk_buf list = {0};
    pk_result r = PK_OK;

    PK_CHECK(ph != NULL, P11KMS_ERR_INTERNAL, "policy template lacks %s", PK_POLICY_PRINCIPALS_PLACEHOLDER);
    pk_jo_init(&j, &list);
    pk_jo_arr_begin(&j);
    for (size_t i = 0; i < n; i++) pk_jo_str(&j, principals[i]);
    pk_jo_arr_end(&j);
    PK_TRY(pk_jo_result(&j));
    PK_TRY(pk_buf_append_str(out, "    "));
    for (; *p != '\0'; p++) {
        if (p == ph) {
            PK_TRY(pk_buf_append(out, list.data, list.len));
            p += strlen(PK_POLICY_PRINCIPALS_PLACEHOLDER) - 1;
            continue;
        }
        if (*p == '\n' && p[1] == '\0') break; /* the caller places the separator */
        PK_TRY(pk_buf_append(out, p, 1));
        if (*p == '\n') PK_TRY(pk_buf_append_str(out, "    "));
    }
out:
    pk_buf_free(&list);
    return r;
}

pk_result pk_policy_default(const char *const *admins, size_t nadmins, const char *const *operators,
                            size_t noperators, pk_buf *out_json)
{
    pk_buf doc = {0};
    pk_policy *check = NULL;
    pk_result r = PK_OK;

    PK_CHECK(out_json != NULL && (nadmins == 0 || admins != NULL) && (noperators == 0 || operators != NULL),
             P11KMS_ERR_INVALID_ARGUMENT, "default policy: NULL argument");
    PK_CHECK(nadmins > 0, P11KMS_ERR_INVALID_ARGUMENT,
             "default policy: at least one key administrator is required (nobody could manage the key)");
    for (size_t i = 0; i < nadmins; i++) {
        PK_CHECK(admins[i] != NULL && admins[i][0] != '\0', P11KMS_ERR_INVALID_ARGUMENT,
                 "default policy: administrator %zu is empty", i);
        for (size_t k = 0; k < noperators; k++) {
            PK_CHECK(operators[k] != NULL && operators[k][0] != '\0', P11KMS_ERR_INVALID_ARGUMENT,
                     "default policy: operator %zu is empty", k);
            PK_CHECK(!same_principal(admins[i], operators[k]), P11KMS_ERR_INVALID_ARGUMENT,
                     "default policy: %s cannot be both administrator and operator (separation of duties)",
                     admins[i]);
        }
    }
    PK_TRY(pk_buf_append_str(&doc, "{\n  \"Version\": \"2012-10-17\",\n  \"Id\": \"p11kms-default\",\n"
                                   "  \"Statement\": [\n"));
    PK_TRY(emit_statement(&doc, tmpl_admin, admins, nadmins));
    if (noperators > 0) {
        PK_TRY(pk_buf_append_str(&doc, ",\n"));
        PK_TRY(emit_statement(&doc, tmpl_operator, operators, noperators));
    }
    PK_TRY(pk_buf_append_str(&doc, "\n  ]\n}\n"));
    /* Compiling proves the principals are well formed before anyone stores the policy. */
    r = pk_policy_compile((const char *)doc.data, doc.len, &check);
    if (pk_failed(r)) {
        r = pk_annotate(pk_recode(r, P11KMS_ERR_INVALID_ARGUMENT), "default policy: ");
        goto out;
    }
    PK_TRY(pk_buf_append(out_json, doc.data, doc.len));
out:
    pk_policy_free(check);
    pk_buf_free(&doc);
    return r;
}

bool pk_policy_would_lock_out(const pk_policy *p, const char *principal, const char *resource, int64_t now_ms)
{
    pk_policy_request req = {0};
    pk_policy_result res;

    if (p == NULL || principal == NULL) return true;
    req.principal = principal;
    req.action = "kms:PutKeyPolicy";
    req.resource = resource;
    req.now_ms = now_ms;
    if (pk_failed(pk_policy_eval(p, &req, &res))) return true;
    return res.decision != PK_DECISION_ALLOWED;
}
