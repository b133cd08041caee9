/*
 * p11kms access-key create --principal ARN | list [--principal ARN] |
 * disable ID | enable ID | delete ID: SigV4 access keys for p11kmsd
 * (docs/AUTH.md). The secret is printed once, with write(2), and never kept.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "cli/cli_session.h"
#include "json/json_in.h"
#include "util/json_out.h"

typedef struct access_args {
    const char *principal;
    const char *id;
} access_args;

static int parse(pk_cli *cli, int argc, char **argv, const char *sub, access_args *a)
{
    bool want_id = strcmp(sub, "create") != 0 && strcmp(sub, "list") != 0;
    for (int i = 2; i < argc; i++) {
        if (pk_cli_common_opt(cli, argc, argv, &i)) continue;
        if (!want_id && strcmp(argv[i], "--principal") == 0 && i + 1 < argc) {
            a->principal = argv[++i];
        } else if (want_id && argv[i][0] != '-' && a->id == NULL) {
            a->id = argv[i];
        } else {
            return pk_cli_usage("access-key %s: unexpected '%s'", sub, argv[i]);
        }
    }
    if (strcmp(sub, "create") == 0 && a->principal == NULL)
        return pk_cli_usage("access-key create --principal ARN");
    if (want_id && a->id == NULL) return pk_cli_usage("access-key %s ACCESS_KEY_ID", sub);
    return PK_EXIT_OK;
}

/* The secret goes to stdout through write(2) only (no stdio copy); it is base64 characters, JSON-safe. */
static int print_created(pk_cli *cli, const char *id, const char *principal, const p11kms_buf *secret)
{
    pk_buf head = {0};
    pk_json_out j;
    int ex = PK_EXIT_OK;

    if (cli->json) {
        pk_jo_init(&j, &head);
        pk_jo_obj_begin(&j);
        pk_jo_kstr(&j, "AccessKeyId", id);
        pk_jo_kstr(&j, "Principal", principal);
        pk_jo_key(&j, "SecretAccessKey");
        if (pk_failed(pk_jo_result(&j))) {
            pk_buf_free(&head);
            return pk_cli_fail(P11KMS_ERR_NO_MEMORY);
        }
        ex = pk_cli_write_stdout(head.data, head.len);
        if (ex == PK_EXIT_OK) ex = pk_cli_write_stdout("\"", 1);
    } else {
        printf("AccessKeyId: %s\nSecretAccessKey: ", id);
        ex = PK_EXIT_OK;
    }
    if (ex == PK_EXIT_OK) ex = pk_cli_write_stdout(p11kms_buf_data(secret), p11kms_buf_len(secret));
    if (ex == PK_EXIT_OK) ex = cli->json ? pk_cli_write_stdout("\"}\n", 3) : pk_cli_write_stdout("\n", 1);
    if (ex == PK_EXIT_OK && !cli->json)
        fprintf(stderr, "p11kms: store the secret access key now: it is shown only once\n");
    pk_buf_free(&head);
    return ex;
}

static void print_list(const char *json)
{
    pk_jv *doc = NULL;
    if (pk_failed(pk_json_parse(json, strlen(json), P11KMS_ERR_INTERNAL, &doc))) return;
    for (size_t i = 0; i < pk_jv_size(doc); i++) {
        const pk_jv *k = pk_jv_at(doc, i);
        printf("%s  %-8s  %s  %s\n", pk_jv_str(pk_jv_get(k, "AccessKeyId")), pk_jv_str(pk_jv_get(k, "Status")),
               pk_jv_str(pk_jv_get(k, "CreateDate")), pk_jv_str(pk_jv_get(k, "Principal")));
    }
    pk_json_free(doc);
}

static p11kms_rc run(pk_cli *cli, pk_cli_session *s, const char *sub, const access_args *a, int *ex)
{
    char *id = NULL, *json = NULL;
    p11kms_buf *secret = NULL;
    p11kms_rc rc;

    if (strcmp(sub, "create") == 0) {
        rc = p11kms_access_key_create(s->h, s->caller, a->principal, &id, &secret);
        if (rc == P11KMS_OK) *ex = print_created(cli, id, a->principal, secret);
    } else if (strcmp(sub, "list") == 0) {
        rc = p11kms_access_key_list(s->h, s->caller, a->principal, &json);
        if (rc == P11KMS_OK && cli->json) {
            *ex = pk_cli_print_json(cli, json);
            json = NULL;
        } else if (rc == P11KMS_OK) {
            print_list(json);
        }
    } else {
        const char *done = strcmp(sub, "delete") == 0 ? "deleted" : strcmp(sub, "enable") == 0 ? "enabled" : "disabled";
        rc = strcmp(sub, "delete") == 0 ? p11kms_access_key_delete(s->h, s->caller, a->id)
                                        : p11kms_access_key_set_enabled(s->h, s->caller, a->id,
                                                                        strcmp(sub, "enable") == 0);
        if (rc == P11KMS_OK && cli->json) *ex = pk_cli_print_obj("AccessKeyId", a->id, "Result", done, NULL);
        if (rc == P11KMS_OK && !cli->json) printf("access key %s %s\n", a->id, done);
    }
    p11kms_buf_free(secret); /* wipes */
    p11kms_free(id);
    p11kms_free(json);
    return rc;
}

int pk_cmd_access_key(pk_cli *cli, int argc, char **argv)
{
    static const char *const subs[] = {"create", "list", "disable", "enable", "delete"};
    const char *sub = argc >= 2 ? argv[1] : "";
    access_args a = {NULL, NULL};
    pk_cli_session s;
    bool known = false;
    p11kms_rc rc;
    int ex;

    for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) known = known || strcmp(sub, subs[i]) == 0;
    if (!known) return pk_cli_usage("unknown access-key command '%s'", sub);
    if ((ex = parse(cli, argc, argv, sub, &a)) != PK_EXIT_OK) return ex;
    if ((ex = pk_cli_session_open(cli, &s)) != PK_EXIT_OK) return ex;
    rc = run(cli, &s, sub, &a, &ex);
    if (rc != P11KMS_OK) ex = pk_cli_fail(rc);
    pk_cli_session_close(&s);
    return ex;
}
