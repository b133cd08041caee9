/* Key identities: CKA_IDs and labels of versions, ARNs, aliases, references. */
#include "config.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keys/keys.h"

#define ALIAS_PREFIX "alias/"
#define RESERVED_ALIAS_PREFIX "alias/p11kms/"

void pk_key_version_id(const uint8_t uuid[PK_UUID_LEN], uint32_t version, pk_keyid *out)
{
    memset(out, 0, sizeof(*out));
    out->bytes[0] = 'K';
    memcpy(out->bytes + 1, uuid, PK_UUID_LEN);
    pk_store_be32(out->bytes + 1 + PK_UUID_LEN, version);
    out->len = 1 + PK_UUID_LEN + 4;
}

void pk_key_version_label(const char *key_id, uint32_t version, char *out, size_t size)
{
    snprintf(out, size, "p11kms:cmk:%s:v%u", key_id, version);
}

void pk_key_arn(const pk_env *env, const char *key_id, char *out, size_t size)
{
    snprintf(out, size, "arn:aws:kms:%s:%s:key/%s", env->region, env->account, key_id);
}

pk_result pk_alias_validate(const char *alias, bool reserved_ok)
{
    size_t n = strlen(alias);
    PK_ENSURE(strncmp(alias, ALIAS_PREFIX, strlen(ALIAS_PREFIX)) == 0 && n > strlen(ALIAS_PREFIX),
              P11KMS_ERR_INVALID_ARGUMENT, "invalid alias '%s': it must look like alias/NAME", alias);
    PK_ENSURE(n <= PK_ALIAS_MAX, P11KMS_ERR_INVALID_ARGUMENT, "invalid alias: longer than %d characters", PK_ALIAS_MAX);
    for (size_t i = strlen(ALIAS_PREFIX); i < n; i++) {
        unsigned char c = (unsigned char)alias[i];
        PK_ENSURE(isalnum(c) || c == '/' || c == '_' || c == '-', P11KMS_ERR_INVALID_ARGUMENT,
                  "invalid alias '%s': use only letters, digits, '/', '_' and '-'", alias);
    }
    PK_ENSURE(strncmp(alias, "alias/aws/", 10) != 0, P11KMS_ERR_INVALID_ARGUMENT,
              "invalid alias '%s': the alias/aws/ prefix is reserved", alias);
    PK_ENSURE(reserved_ok || strncmp(alias, RESERVED_ALIAS_PREFIX, strlen(RESERVED_ALIAS_PREFIX)) != 0,
              P11KMS_ERR_INVALID_ARGUMENT, "invalid alias '%s': the alias/p11kms/ prefix is reserved", alias);
    return PK_OK;
}

/* Split a ":vN" version suffix off a key id. */
static pk_result split_version(char *s, bool allow_version, uint32_t *version)
{
    char *colon = strchr(s, ':');
    char *end = NULL;
    unsigned long v;

    *version = 0;
    if (colon == NULL) return PK_OK;
    PK_ENSURE(allow_version, P11KMS_ERR_INVALID_ARGUMENT, "a key version suffix is not allowed here");
    PK_ENSURE(colon[1] == 'v', P11KMS_ERR_INVALID_ARGUMENT, "invalid key version suffix '%s': use KEY:vN", colon);
    v = strtoul(colon + 2, &end, 10);
    PK_ENSURE(end != colon + 2 && *end == '\0' && v >= 1 && v <= PK_KEY_MAX_VERSIONS, P11KMS_ERR_INVALID_ARGUMENT,
              "invalid key version suffix '%s': use KEY:vN", colon);
    *colon = '\0';
    *version = (uint32_t)v;
    return PK_OK;
}

static pk_result resolve_alias(pk_env *env, const char *alias, pk_key_ref *out)
{
    pk_record rec = {0};
    bool found = false;
    pk_result r;
    const char *key_id;

    PK_GUARD(pk_alias_validate(alias, true));
    if (pk_alias_cached(env, alias, out->key_id)) {
        snprintf(out->alias, sizeof(out->alias), "%s", alias);
        return PK_OK;
    }
    pk_records_lock(env->rs);
    r = pk_records_load(env->rs, "alias", alias, &rec, &found);
    pk_records_unlock(env->rs);
    if (pk_ok(r) && !found) r = pk_fail(P11KMS_ERR_NOT_FOUND, "alias %s not found", alias);
    if (pk_ok(r)) {
        /* The alias record's ref is its key id; the MAC covers it. */
        key_id = rec.ref;
        if (strlen(key_id) != PK_UUID_STR_LEN)
            r = pk_fail(P11KMS_ERR_INTEGRITY, "store record alias/%s names no key", alias);
        else {
            memcpy(out->key_id, key_id, PK_UUID_STR_LEN + 1);
            pk_alias_remember(env, alias, out->key_id);
        }
        snprintf(out->alias, sizeof(out->alias), "%s", alias);
    }
    pk_record_clear(&rec);
    return r;
}

pk_result pk_key_resolve(pk_env *env, const char *ref, bool allow_version, pk_key_ref *out)
{
    char buf[PK_ALIAS_MAX + 64];
    const char *s = ref;
    uint8_t uuid[PK_UUID_LEN];
    char prefix[96];

    memset(out, 0, sizeof(*out));
    PK_ENSURE(ref != NULL && *ref != '\0', P11KMS_ERR_INVALID_ARGUMENT, "no key given");
    PK_ENSURE(strlen(ref) < sizeof(buf), P11KMS_ERR_INVALID_ARGUMENT, "key reference too long");
    /* ARNs of this store: arn:aws:kms:REGION:ACCOUNT:key/ID or :alias/NAME. */
    snprintf(prefix, sizeof(prefix), "arn:aws:kms:%s:%s:", env->region, env->account);
    if (strncmp(s, "arn:", 4) == 0) {
        PK_ENSURE(strncmp(s, prefix, strlen(prefix)) == 0, P11KMS_ERR_NOT_FOUND,
                  "key ARN '%s' is not in this store (expected %s...)", ref, prefix);
        s += strlen(prefix);
        if (strncmp(s, "key/", 4) == 0) s += 4;
    }
    if (strncmp(s, ALIAS_PREFIX, strlen(ALIAS_PREFIX)) == 0) return resolve_alias(env, s, out);
    snprintf(buf, sizeof(buf), "%s", s);
    PK_GUARD(split_version(buf, allow_version, &out->version));
    PK_ENSURE(pk_uuid_parse(buf, uuid), P11KMS_ERR_INVALID_ARGUMENT,
              "invalid key '%s': use a key id, alias/NAME or a key ARN", ref);
    /* Canonical lower case, whatever the caller typed. */
    pk_uuid_format(uuid, out->key_id);
    return PK_OK;
}
