/* p11kms key create|list|describe|enable|disable|rotate|schedule-deletion|cancel-deletion|purge|get-policy|put-policy */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_session.h"
#include "json/json_in.h"
#include "util/json_out.h"
#include "util/timefmt.h"

#define MAX_PRINCIPALS 16
/* AWS KMS's key policy limit. */
#define POLICY_MAX (32 * 1024)
#define POLICY_LIMIT "a key policy is at most 32768 bytes"

static int parse_uint(const char *opt, const char *v, unsigned *out)
{
    char *end = NULL;
    unsigned long n;
    if (v == NULL || *v == '\0' || *v == '-') return pk_cli_usage("%s needs a number", opt);
    n = strtoul(v, &end, 10);
    if (*end != '\0' || n > 100000) return pk_cli_usage("%s: '%s' is not a valid number", opt, v);
    *out = (unsigned)n;
    return PK_EXIT_OK;
}

static int key_create(pk_cli *cli, int argc, char **argv)
{
    const char *alias = NULL, *policy_file = NULL, *v;
    const char *admins[MAX_PRINCIPALS], *operators[MAX_PRINCIPALS];
    p11kms_key_spec spec;
    pk_cli_session s;
    pk_buf policy = {0};
    char *id = NULL;
    int ex;
    p11kms_rc rc;

    memset(&spec, 0, sizeof(spec));

    spec.struct_size = sizeof(spec);
    for (int i = 2; i < argc; i++) {
        if (pk_cli_optv(argc, argv, &i, "--alias", &v)) alias = v;
        else if (pk_cli_optv(argc, argv, &i, "--description", &v)) spec.description = v;
        else if (pk_cli_optv(argc, argv, &i, "--policy", &v)) policy_file = v;
        else if (pk_cli_optv(argc, argv, &i, "--rotation-days", &v)) {
            if ((ex = parse_uint("--rotation-days", v, &spec.rotation_days)) != PK_EXIT_OK) return ex;
        } else if (pk_cli_optv(argc, argv, &i, "--admin", &v)) {
            if (spec.nadmins == MAX_PRINCIPALS) return pk_cli_usage("at most %d --admin", MAX_PRINCIPALS);
            admins[spec.nadmins++] = v;
        } else if (pk_cli_optv(argc, argv, &i, "--operator", &v)) {
            if (spec.noperators == MAX_PRINCIPALS) return pk_cli_usage("at most %d --operator", MAX_PRINCIPALS);
            operators[spec.noperators++] = v;
        } else if (strcmp(argv[i], "--bypass-lockout-check") == 0) {
            spec.bypass_lockout_check = 1;
        } else if (strcmp(argv[i], "--bypass-lint") == 0) {
            spec.bypass_lint = 1;
        } else if (!pk_cli_common_opt(cli, argc, argv, &i)) {
            return pk_cli_usage("key create: unexpected '%s'", argv[i]);
        }
    }
    spec.admins = admins;
    spec.operators = operators;
    if (policy_file != NULL) {
        if ((ex = pk_cli_read_file(policy_file, POLICY_MAX, POLICY_LIMIT, &policy)) != PK_EXIT_OK) {
            pk_buf_free(&policy);
            return ex;
        }
        spec.policy_json = (const char *)policy.data;
    }
    if ((ex = pk_cli_session_open(cli, &s)) != PK_EXIT_OK) {
        pk_buf_free(&policy);
        return ex;
    }
    if (alias != NULL) {
        /* Check the alias first so a taken name does not leave an unnamed key behind. */
        char *json = NULL;
        rc = p11kms_alias_list(s.h, s.caller, NULL, &json);
        if (rc == P11KMS_OK && json != NULL) {
            char needle[300];
            snprintf(needle, sizeof(needle), "\"AliasName\":\"%s\"", alias);
            if (strstr(json, needle) != NULL) {
                fprintf(stderr, "p11kms: alias %s already exists\n", alias);
                p11kms_free(json);
                pk_cli_session_close(&s);
                pk_buf_free(&policy);
                return PK_EXIT_FAILED;
            }
        }
        p11kms_free(json);
    }
    rc = p11kms_key_create(s.h, s.caller, &spec, &id);
    if (rc == P11KMS_OK && spec.policy_json != NULL) pk_cli_policy_warnings(spec.policy_json, policy.len);
    if (rc == P11KMS_OK && alias != NULL) rc = p11kms_alias_create(s.h, s.caller, alias, id);
    if (rc != P11KMS_OK) {
        ex = pk_cli_fail(rc);
        if (id != NULL) fprintf(stderr, "p11kms: the key was created as %s without the alias\n", id);
    } else if (cli->json) {
        ex = alias ? pk_cli_print_obj("KeyId", id, "Alias", alias, NULL) : pk_cli_print_obj("KeyId", id, NULL);
    } else {
        printf("%s\n", id);
        ex = PK_EXIT_OK;
    }
    free(id);
    pk_cli_session_close(&s);
    pk_buf_free(&policy);
    return ex;
}

/* KEY as the single positional argument, plus global options. */
static int one_key(pk_cli *cli, int argc, char **argv, const char **key)
{
    *key = NULL;
    for (int i = 2; i < argc; i++) {
        if (pk_cli_common_opt(cli, argc, argv, &i)) continue;
        if (argv[i][0] == '-' || *key != NULL) return pk_cli_usage("key %s: unexpected '%s'", argv[1], argv[i]);
        *key = argv[i];
    }
    if (*key == NULL) return pk_cli_usage("key %s KEY", argv[1]);
    return PK_EXIT_OK;
}

static void print_describe_text(const char *json)
{
    pk_jv *doc = NULL;
    static const char *const fields[] = {"KeyId", "Arn", "Description", "KeyState", "KeyManager", "CreationDate",
                                         "DeletionDate", "RotationPeriodInDays", "LastRotationDate",
                                         "NextRotationDate", "CurrentKeyVersion", "ScheduledBy"};
    if (pk_failed(pk_json_parse(json, strlen(json), P11KMS_ERR_INTERNAL, &doc))) {
        puts(json);
        return;
    }
    for (size_t i = 0; i < PK_ARRAY_LEN(fields); i++) {
        const pk_jv *v = pk_jv_get(doc, fields[i]);
        if (v == NULL) continue;
        if (pk_jv_typeof(v) == PK_JV_STRING)
            printf("%-22s %s\n", fields[i], pk_jv_str(v));
        else
            printf("%-22s %lld\n", fields[i], (long long)pk_jv_int(v));
    }
    printf("%-22s", "Aliases");
    for (size_t i = 0; i < pk_jv_size(pk_jv_get(doc, "Aliases")); i++)
        printf(" %s", pk_jv_str(pk_jv_at(pk_jv_get(doc, "Aliases"), i)));
    printf("\n");
    pk_json_free(doc);
}

static void print_list_text(const char *json)
{
    pk_jv *doc = NULL;
    if (pk_failed(pk_json_parse(json, strlen(json), P11KMS_ERR_INTERNAL, &doc))) return;
    for (size_t i = 0; i < pk_jv_size(doc); i++) {
        const pk_jv *k = pk_jv_at(doc, i);
        printf("%s  %-15s  %s\n", pk_jv_str(pk_jv_get(k, "KeyId")), pk_jv_str(pk_jv_get(k, "KeyState")),
               pk_jv_str(pk_jv_get(k, "Description")));
    }
    pk_json_free(doc);
}

typedef enum simple_kind { SIMPLE_ENABLE, SIMPLE_DISABLE, SIMPLE_ROTATE, SIMPLE_CANCEL } simple_kind;

static int key_simple(pk_cli *cli, int argc, char **argv, simple_kind kind)
{
    const char *key;
    pk_cli_session s;
    unsigned version = 0;
    p11kms_rc rc;
    int ex;
    static const char *const done[] = {"enabled", "disabled", "rotated", "deletion cancelled; the key is Disabled"};

    if ((ex = one_key(cli, argc, argv, &key)) != PK_EXIT_OK) return ex;
    if ((ex = pk_cli_session_open(cli, &s)) != PK_EXIT_OK) return ex;
    switch (kind) {
    case SIMPLE_ENABLE: rc = p11kms_key_enable(s.h, s.caller, key); break;
    case SIMPLE_DISABLE: rc = p11kms_key_disable(s.h, s.caller, key); break;
    case SIMPLE_ROTATE: rc = p11kms_key_rotate(s.h, s.caller, key, &version); break;
    case SIMPLE_CANCEL:
    default: rc = p11kms_key_cancel_deletion(s.h, s.caller, key); break;
    }
    if (rc != P11KMS_OK) {
        ex = pk_cli_fail(rc);
    } else if (cli->json && kind == SIMPLE_ROTATE) {
        pk_buf b = {0};
        pk_json_out j;
        pk_jo_init(&j, &b);
        pk_jo_obj_begin(&j);
        pk_jo_kstr(&j, "Key", key);
        pk_jo_kint(&j, "CurrentKeyVersion", version);
        pk_jo_obj_end(&j);
        ex = pk_cli_print_jo(&j);
    } else if (cli->json) {
        ex = pk_cli_print_obj("Key", key, "Result", kind == SIMPLE_CANCEL ? "Disabled" : done[kind], NULL);
    } else if (kind == SIMPLE_ROTATE) {
        printf("key %s rotated to version %u\n", key, version);
    } else {
        printf("key %s %s\n", key, done[kind]);
    }
    pk_cli_session_close(&s);
    return ex;
}

static int key_schedule(pk_cli *cli, int argc, char **argv)
{
    const char *key = NULL, *v;
    unsigned days = 0;
    int64_t when = 0;
    pk_cli_session s;
    char t[PK_TIME_STR_LEN];
    p11kms_rc rc;
    int ex;

    for (int i = 2; i < argc; i++) {
        if (pk_cli_optv(argc, argv, &i, "--days", &v)) {
            if ((ex = parse_uint("--days", v, &days)) != PK_EXIT_OK) return ex;
            if (days == 0) return pk_cli_usage("--days must be 7 to 30");
        } else if (pk_cli_common_opt(cli, argc, argv, &i)) {
            continue;
        } else if (argv[i][0] == '-' || key != NULL) {
            return pk_cli_usage("key schedule-deletion: unexpected '%s'", argv[i]);
        } else {
            key = argv[i];
        }
    }
    if (key == NULL) return pk_cli_usage("key schedule-deletion KEY [--days N]");
    if ((ex = pk_cli_session_open(cli, &s)) != PK_EXIT_OK) return ex;
    rc = p11kms_key_schedule_deletion(s.h, s.caller, key, days, &when);
    pk_time_rfc3339(when, t);
    if (rc != P11KMS_OK)
        ex = pk_cli_fail(rc);
    else if (cli->json)
        ex = pk_cli_print_obj("Key", key, "KeyState", "PendingDeletion", "DeletionDate", t, NULL);
    else
        printf("key %s is pending deletion; it will be destroyed after %s\n", key, t);
    pk_cli_session_close(&s);
    return ex;
}

/* Commands whose result is a JSON document from the library. */
typedef enum json_kind { JSON_LIST, JSON_DESCRIBE, JSON_PURGE, JSON_GET_POLICY } json_kind;

static int key_json(pk_cli *cli, int argc, char **argv, json_kind kind)
{
    const char *key = NULL;
    pk_cli_session s;
    char *json = NULL;
    p11kms_rc rc;
    int ex;

    if (kind == JSON_DESCRIBE || kind == JSON_GET_POLICY) {
        if ((ex = one_key(cli, argc, argv, &key)) != PK_EXIT_OK) return ex;
    } else {
        for (int i = 2; i < argc; i++)
            if (!pk_cli_common_opt(cli, argc, argv, &i)) return pk_cli_usage("key %s: unexpected '%s'", argv[1], argv[i]);
    }
    if ((ex = pk_cli_session_open(cli, &s)) != PK_EXIT_OK) return ex;
    switch (kind) {
    case JSON_LIST: rc = p11kms_key_list(s.h, s.caller, &json); break;
    case JSON_DESCRIBE: rc = p11kms_key_describe(s.h, s.caller, key, &json); break;
    case JSON_PURGE: rc = p11kms_key_purge(s.h, s.caller, &json); break;
    case JSON_GET_POLICY:
    default: rc = p11kms_key_get_policy(s.h, s.caller, key, &json); break;
    }
    if (rc != P11KMS_OK) {
        ex = pk_cli_fail(rc);
    } else if (cli->json || kind == JSON_GET_POLICY || kind == JSON_PURGE) {
        ex = pk_cli_print_json(cli, json);
        json = NULL;
    } else if (kind == JSON_DESCRIBE) {
        print_describe_text(json);
    } else {
        print_list_text(json);
    }
    p11kms_free(json);
    pk_cli_session_close(&s);
    return ex;
}

static int key_put_policy(pk_cli *cli, int argc, char **argv)
{
    const char *pos[2] = {NULL, NULL};
    size_t npos = 0;
    unsigned flags = 0;
    int ex;
    pk_buf policy = {0};
    pk_cli_session s;
    p11kms_rc rc;

    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--bypass-lockout-check") == 0) flags |= P11KMS_POLICY_BYPASS_LOCKOUT_CHECK;
        else if (strcmp(argv[i], "--bypass-lint") == 0) flags |= P11KMS_POLICY_BYPASS_LINT;
        else if (pk_cli_common_opt(cli, argc, argv, &i)) continue;
        else if (argv[i][0] == '-' && strcmp(argv[i], "-") != 0) return pk_cli_usage("key put-policy: unexpected '%s'", argv[i]);
        else if (npos < 2) pos[npos++] = argv[i];
        else return pk_cli_usage("key put-policy: unexpected '%s'", argv[i]);
    }
    if (npos != 2) return pk_cli_usage("key put-policy KEY FILE [--bypass-lockout-check] [--bypass-lint]");
    if ((ex = pk_cli_read_file(pos[1], POLICY_MAX, POLICY_LIMIT, &policy)) != PK_EXIT_OK) {
        pk_buf_free(&policy);
        return ex;
    }
    if ((ex = pk_cli_session_open(cli, &s)) == PK_EXIT_OK) {
        rc = p11kms_key_put_policy(s.h, s.caller, pos[0], (const char *)policy.data, flags);
        if (rc != P11KMS_OK) {
            ex = pk_cli_fail(rc);
        } else {
            pk_cli_policy_warnings((const char *)policy.data, policy.len);
            if (cli->json)
                ex = pk_cli_print_obj("Key", pos[0], "Result", "policy replaced", NULL);
            else
                printf("key %s: policy replaced\n", pos[0]);
        }
        pk_cli_session_close(&s);
    }
    pk_buf_free(&policy);
    return ex;
}

int pk_cmd_key(pk_cli *cli, int argc, char **argv)
{
    const char *sub = argc >= 2 ? argv[1] : "";
    if (strcmp(sub, "create") == 0) return key_create(cli, argc, argv);
    if (strcmp(sub, "list") == 0) return key_json(cli, argc, argv, JSON_LIST);
    if (strcmp(sub, "describe") == 0) return key_json(cli, argc, argv, JSON_DESCRIBE);
    if (strcmp(sub, "enable") == 0) return key_simple(cli, argc, argv, SIMPLE_ENABLE);
    if (strcmp(sub, "disable") == 0) return key_simple(cli, argc, argv, SIMPLE_DISABLE);
    if (strcmp(sub, "rotate") == 0) return key_simple(cli, argc, argv, SIMPLE_ROTATE);
    if (strcmp(sub, "schedule-deletion") == 0) return key_schedule(cli, argc, argv);
    if (strcmp(sub, "cancel-deletion") == 0) return key_simple(cli, argc, argv, SIMPLE_CANCEL);
    if (strcmp(sub, "purge") == 0) return key_json(cli, argc, argv, JSON_PURGE);
    if (strcmp(sub, "get-policy") == 0) return key_json(cli, argc, argv, JSON_GET_POLICY);
    if (strcmp(sub, "put-policy") == 0) return key_put_policy(cli, argc, argv);
    return pk_cli_usage("unknown key command '%s'", sub);
}
