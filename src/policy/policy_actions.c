/*
 * The one table of actions p11kms knows, with the role each plays for lint
 * (separation of duties). Add new actions here only; everything else
 * (evaluation masks, lint, docs checks) derives from it. At most
 * POL_ACTION_MAX entries, because statements keep a 64-bit mask.
 */
#include "config.h"

#include <strings.h>

#include "policy/policy_impl.h"

static const struct {
    const char *name;
    pk_action_class cls;
} actions[] = {
    {"kms:Encrypt", PK_ACTION_CRYPTO},
    {"kms:Decrypt", PK_ACTION_CRYPTO},
    {"kms:GenerateDataKey", PK_ACTION_CRYPTO},
    {"kms:GenerateDataKeyWithoutPlaintext", PK_ACTION_CRYPTO},
    {"kms:ReEncryptFrom", PK_ACTION_CRYPTO},
    {"kms:ReEncryptTo", PK_ACTION_CRYPTO},
    {"kms:DescribeKey", PK_ACTION_READ},
    {"kms:EnableKey", PK_ACTION_ADMIN},
    {"kms:DisableKey", PK_ACTION_ADMIN},
    {"kms:ScheduleKeyDeletion", PK_ACTION_ADMIN},
    {"kms:CancelKeyDeletion", PK_ACTION_ADMIN},
    {"kms:RotateKeyOnDemand", PK_ACTION_ADMIN},
    {"kms:PutKeyPolicy", PK_ACTION_ADMIN},
    {"kms:GetKeyPolicy", PK_ACTION_READ},
    {"kms:CreateAlias", PK_ACTION_ADMIN},
    {"kms:DeleteAlias", PK_ACTION_ADMIN},
    {"kms:ListAliases", PK_ACTION_READ},
    {"kms:ListKeys", PK_ACTION_READ},
    /* The AWS KMS protocol (p11kmsd, issue 12). */
    {"kms:EnableKeyRotation", PK_ACTION_ADMIN},
    {"kms:DisableKeyRotation", PK_ACTION_ADMIN},
    {"kms:GetKeyRotationStatus", PK_ACTION_READ},
    {"kms:UpdateAlias", PK_ACTION_ADMIN},
    {"kms:GenerateRandom", PK_ACTION_READ}, /* names no key: granted by the daemon's IAM-side rules, not a key policy */
};

_Static_assert(PK_ARRAY_LEN(actions) <= POL_ACTION_MAX, "action masks are 64 bits");

size_t pk_policy_action_count(void) { return PK_ARRAY_LEN(actions); }

const char *pk_policy_action_name(size_t i)
{
    return i < PK_ARRAY_LEN(actions) ? actions[i].name : NULL;
}

pk_action_class pk_policy_action_class(size_t i)
{
    return i < PK_ARRAY_LEN(actions) ? actions[i].cls : PK_ACTION_READ;
}

int pol_action_index(const char *action, size_t len)
{
    for (size_t i = 0; i < PK_ARRAY_LEN(actions); i++) {
        if (strncasecmp(actions[i].name, action, len) == 0 && actions[i].name[len] == '\0') return (int)i;
    }
    return -1;
}

bool pk_policy_action_known(const char *action)
{
    size_t len = 0;
    if (action == NULL) return false;
    while (action[len] != '\0') len++;
    return pol_action_index(action, len) >= 0;
}

uint64_t pol_action_pattern_mask(const char *lower_pat, size_t len)
{
    uint64_t m = 0;
    for (size_t i = 0; i < PK_ARRAY_LEN(actions); i++) {
        const char *n = actions[i].name;
        size_t nlen = 0;
        while (n[nlen] != '\0') nlen++;
        if (pol_glob(lower_pat, len, n, nlen, true)) m |= UINT64_C(1) << i;
    }
    return m;
}

uint64_t pol_action_all_mask(void)
{
    size_t n = PK_ARRAY_LEN(actions);
    return n == 64 ? UINT64_MAX : (UINT64_C(1) << n) - 1;
}

uint64_t pol_action_class_mask(pk_action_class c)
{
    uint64_t m = 0;
    for (size_t i = 0; i < PK_ARRAY_LEN(actions); i++) {
        if (actions[i].cls == c) m |= UINT64_C(1) << i;
    }
    return m;
}
