/*
 * p11kms secret put | get | update | rm | list | rewrap
 *
 * Secret values come from k=v arguments, k=@FILE (the file's content, one
 * trailing newline removed, so a value never has to be in argv) or
 * --from-json FILE|- (a flat JSON object of strings). They pass only
 * through locked memory and go only to stdout; errors name keys, never
 * values.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_session.h"
#include "json/json_in.h"

#define JSON_MAX (256 * 1024)

/* argv is world-readable in /proc: say so, but keep working (scripts rely on it). */
static void warn_argv(const char *key, const char *arg, void *ctx)
{
    char *hint = NULL;
    (void)arg;
    (void)ctx;
    if (asprintf(&hint, "%s=@FILE or --from-json -", key) >= 0) {
        pk_cli_warn_argv_secret(key, hint);
        free(hint);
    }
}

/* k=v or k=@FILE into m. */
static int add_pair(p11kms_secret_map *m, const char *arg)
{
    return pk_cli_map_add(m, arg, "secret values are given as KEY=VALUE or KEY=@FILE", warn_argv, NULL);
}

static int read_json(const char *path, p11kms_secret_map **m)
{
    pk_secbuf text = PK_SECBUF_INIT;
    p11kms_rc rc;
    int ex = pk_cli_read_secret(path, JSON_MAX, &text);
    if (ex != PK_EXIT_OK) return ex;
    if (text.len > JSON_MAX) {
        pk_secbuf_free(&text);
        return pk_cli_usage("--from-json: more than %d bytes", JSON_MAX);
    }
    rc = p11kms_secret_map_from_json((const char *)text.data, text.len, m);
    pk_secbuf_free(&text);
    return rc == P11KMS_OK ? PK_EXIT_OK : pk_cli_fail(rc);
}

typedef struct secret_args {
    const char *ns, *key, *json, *field;
    const char *pos[2];
    size_t npos;
    bool all, reencrypt;
    p11kms_secret_map *map;
} secret_args;

/* Options, positionals (up to npos_max) and k=v pairs (when pairs_ok). */
static int parse(pk_cli *cli, int argc, char **argv, size_t npos_max, bool pairs_ok, secret_args *a)
{
    const char *v;
    int ex;
    memset(a, 0, sizeof(*a));
    if (pairs_ok && p11kms_secret_map_new(&a->map) != P11KMS_OK) return pk_cli_fail(P11KMS_ERR_NO_MEMORY);
    for (int i = 1; i < argc; i++) {
        if (pk_cli_common_opt(cli, argc, argv, &i)) continue;
        if (pk_cli_optv(argc, argv, &i, "--namespace", &v)) a->ns = v;
        else if (pk_cli_optv(argc, argv, &i, "--key", &v)) a->key = v;
        else if (pk_cli_optv(argc, argv, &i, "--from-json", &v)) a->json = v;
        else if (pk_cli_optv(argc, argv, &i, "--field", &v)) a->field = v;
        else if (strcmp(argv[i], "--all") == 0) a->all = true;
        else if (strcmp(argv[i], "--reencrypt") == 0) a->reencrypt = true;
        else if (strncmp(argv[i], "--", 2) == 0) return pk_cli_usage("secret %s: unexpected '%s'", argv[0], argv[i]);
        else if (a->npos < npos_max) a->pos[a->npos++] = argv[i];
        else if (pairs_ok) {
            if ((ex = add_pair(a->map, argv[i])) != PK_EXIT_OK) return ex;
        } else
            return pk_cli_usage("secret %s: unexpected '%.40s'", argv[0], argv[i]);
    }
    return PK_EXIT_OK;
}

/* The map from --from-json, then k=v pairs on top. */
static int final_map(secret_args *a, p11kms_secret_map **out)
{
    p11kms_secret_map *m = NULL;
    int ex;
    if (a->json == NULL) {
        *out = a->map;
        a->map = NULL;
        return PK_EXIT_OK;
    }
    if ((ex = read_json(a->json, &m)) != PK_EXIT_OK) return ex;
    for (size_t i = 0; i < p11kms_secret_map_count(a->map); i++) {
        if (p11kms_secret_map_set(m, p11kms_secret_map_key_at(a->map, i), p11kms_secret_map_value_at(a->map, i)) !=
            P11KMS_OK) {
            p11kms_secret_map_free(m);
            return pk_cli_fail(P11KMS_ERR_INVALID_ARGUMENT);
        }
    }
    *out = m;
    return PK_EXIT_OK;
}

static void args_free(secret_args *a)
{
    p11kms_secret_map_free(a->map);
}

static int cmd_put(pk_cli *cli, int argc, char **argv)
{
    secret_args a;
    pk_cli_session s = {0};
    p11kms_secret_map *m = NULL;
    char *id = NULL;
    p11kms_rc rc;
    int ex;

    if ((ex = parse(cli, argc, argv, 0, true, &a)) != PK_EXIT_OK) goto out;
    if (p11kms_secret_map_count(a.map) == 0 && a.json == NULL) {
        ex = pk_cli_usage("secret put [--namespace NS] [--key KEY] k=v|k=@FILE... [--from-json FILE|-]");
        goto out;
    }
    if ((ex = final_map(&a, &m)) != PK_EXIT_OK) goto out;
    if ((ex = pk_cli_session_open(cli, &s)) != PK_EXIT_OK) goto out;
    rc = p11kms_secret_put(s.h, s.caller, a.ns, a.key, m, &id);
    if (rc != P11KMS_OK) ex = pk_cli_fail(rc);
    else if (cli->json) ex = pk_cli_print_obj("SecretId", id, NULL);
    else printf("%s\n", id);
out:
    p11kms_free(id);
    p11kms_secret_map_free(m);
    pk_cli_session_close(&s);
    args_free(&a);
    return ex;
}

/* --field NAME --json: {"NAME":"value"}, escaped by the library's map writer in locked memory. */
static int print_field_json(const char *field, const char *value)
{
    p11kms_secret_map *one = NULL;
    p11kms_buf *json = NULL;
    p11kms_rc rc = p11kms_secret_map_new(&one);
    int ex;
    if (rc == P11KMS_OK) rc = p11kms_secret_map_set(one, field, value);
    if (rc == P11KMS_OK) rc = p11kms_secret_map_to_json(one, &json);
    ex = rc == P11KMS_OK ? pk_cli_write_secret(NULL, p11kms_buf_data(json), p11kms_buf_len(json)) : pk_cli_fail(rc);
    if (ex == PK_EXIT_OK) ex = pk_cli_write_secret(NULL, (const uint8_t *)"\n", 1);
    p11kms_buf_free(json);
    p11kms_secret_map_free(one);
    return ex;
}

static int cmd_get(pk_cli *cli, int argc, char **argv)
{
    secret_args a;
    pk_cli_session s = {0};
    p11kms_secret_map *m = NULL;
    p11kms_buf *json = NULL;
    p11kms_rc rc;
    int ex;

    if ((ex = parse(cli, argc, argv, 1, false, &a)) != PK_EXIT_OK) goto out;
    if (a.npos != 1) {
        ex = pk_cli_usage("secret get ID [--field NAME]");
        goto out;
    }
    if ((ex = pk_cli_session_open(cli, &s)) != PK_EXIT_OK) goto out;
    rc = p11kms_secret_get(s.h, s.caller, a.pos[0], &m);
    if (rc != P11KMS_OK) {
        ex = pk_cli_fail(rc);
    } else if (a.field != NULL) {
        const char *v = p11kms_secret_map_get(m, a.field);
        if (v == NULL) {
            fprintf(stderr, "p11kms: secret %s has no field '%s'\n", a.pos[0], a.field);
            ex = PK_EXIT_NOT_FOUND;
        } else if (cli->json) {
            ex = print_field_json(a.field, v);
        } else if ((ex = pk_cli_write_secret(NULL, (const uint8_t *)v, strlen(v))) == PK_EXIT_OK) {
            ex = pk_cli_write_secret(NULL, (const uint8_t *)"\n", 1);
        }
    } else if ((rc = p11kms_secret_map_to_json(m, &json)) != P11KMS_OK) {
        ex = pk_cli_fail(rc);
    } else if ((ex = pk_cli_write_secret(NULL, p11kms_buf_data(json), p11kms_buf_len(json))) == PK_EXIT_OK) {
        ex = pk_cli_write_secret(NULL, (const uint8_t *)"\n", 1);
    }
out:
    p11kms_buf_free(json);
    p11kms_secret_map_free(m);
    pk_cli_session_close(&s);
    args_free(&a);
    return ex;
}

static int cmd_update(pk_cli *cli, int argc, char **argv)
{
    secret_args a;
    pk_cli_session s = {0};
    p11kms_secret_map *m = NULL;
    p11kms_rc rc;
    int ex;

    if ((ex = parse(cli, argc, argv, 1, true, &a)) != PK_EXIT_OK) goto out;
    if (a.npos != 1 || (p11kms_secret_map_count(a.map) == 0 && a.json == NULL)) {
        ex = pk_cli_usage("secret update ID k=v|k=@FILE... [--from-json FILE|-]");
        goto out;
    }
    if ((ex = final_map(&a, &m)) != PK_EXIT_OK) goto out;
    if ((ex = pk_cli_session_open(cli, &s)) != PK_EXIT_OK) goto out;
    rc = p11kms_secret_update(s.h, s.caller, a.pos[0], m);
    if (rc != P11KMS_OK) ex = pk_cli_fail(rc);
    else if (!cli->json) printf("secret %s updated\n", a.pos[0]);
    else ex = pk_cli_print_obj("SecretId", a.pos[0], "Result", "updated", NULL);
out:
    p11kms_secret_map_free(m);
    pk_cli_session_close(&s);
    args_free(&a);
    return ex;
}

static int cmd_rm(pk_cli *cli, int argc, char **argv)
{
    secret_args a;
    pk_cli_session s = {0};
    p11kms_rc rc;
    int ex;

    if ((ex = parse(cli, argc, argv, 1, false, &a)) != PK_EXIT_OK) goto out;
    if (a.npos != 1) {
        ex = pk_cli_usage("secret rm ID");
        goto out;
    }
    if ((ex = pk_cli_session_open(cli, &s)) != PK_EXIT_OK) goto out;
    rc = p11kms_secret_remove(s.h, s.caller, a.pos[0]);
    if (rc != P11KMS_OK) ex = pk_cli_fail(rc);
    else if (cli->json) ex = pk_cli_print_obj("SecretId", a.pos[0], "Result", "removed", NULL);
    else printf("secret %s removed\n", a.pos[0]);
out:
    pk_cli_session_close(&s);
    args_free(&a);
    return ex;
}

/* One line per secret: id, namespace, version, last change. Never values (the list has none). */
static int print_list(const char *json)
{
    pk_jv *doc = NULL;
    if (pk_failed(pk_json_parse(json, strlen(json), P11KMS_ERR_INTERNAL, &doc))) return pk_cli_fail(P11KMS_ERR_INTERNAL);
    for (size_t i = 0; i < pk_jv_size(doc); i++) {
        const pk_jv *e = pk_jv_at(doc, i);
        printf("%s  %-16s v%-4lld %s\n", pk_jv_str(pk_jv_get(e, "SecretId")), pk_jv_str(pk_jv_get(e, "Namespace")),
               (long long)pk_jv_int(pk_jv_get(e, "Version")), pk_jv_str(pk_jv_get(e, "LastChangedDate")));
    }
    pk_json_free(doc);
    return PK_EXIT_OK;
}

static int cmd_list(pk_cli *cli, int argc, char **argv)
{
    secret_args a;
    pk_cli_session s = {0};
    char *json = NULL;
    p11kms_rc rc;
    int ex;

    if ((ex = parse(cli, argc, argv, 0, false, &a)) != PK_EXIT_OK) goto out;
    if ((ex = pk_cli_session_open(cli, &s)) != PK_EXIT_OK) goto out;
    rc = p11kms_secret_list(s.h, s.caller, a.ns, &json);
    if (rc != P11KMS_OK) {
        ex = pk_cli_fail(rc);
    } else if (cli->json) {
        ex = pk_cli_print_json(cli, json);
        json = NULL;
    } else {
        ex = print_list(json);
    }
out:
    p11kms_free(json);
    pk_cli_session_close(&s);
    args_free(&a);
    return ex;
}

static void progress(void *ctx, const char *what, const char *item, size_t done, size_t total)
{
    (void)ctx;
    fprintf(stderr, "p11kms: %s %zu/%zu: %s\n", what, done, total, item);
}

/* "KeysRewrapped":N out of the summary JSON (our own output, fixed layout). */
static long summary_field(const char *json, const char *name)
{
    char needle[64];
    const char *p;
    snprintf(needle, sizeof(needle), "\"%s\":", name);
    p = strstr(json, needle);
    return p ? strtol(p + strlen(needle), NULL, 10) : 0;
}

static int cmd_rewrap(pk_cli *cli, int argc, char **argv)
{
    secret_args a;
    pk_cli_session s = {0};
    char *json = NULL;
    p11kms_rc rc;
    int ex;

    if ((ex = parse(cli, argc, argv, 0, false, &a)) != PK_EXIT_OK) goto out;
    if (a.all && a.ns != NULL) {
        ex = pk_cli_usage("secret rewrap [--namespace NS | --all] [--reencrypt]");
        goto out;
    }
    if ((ex = pk_cli_session_open(cli, &s)) != PK_EXIT_OK) goto out;
    rc = p11kms_secret_rewrap(s.h, s.caller, a.all ? NULL : (a.ns ? a.ns : "default"), a.all, a.reencrypt, progress,
                              NULL, &json);
    if (rc != P11KMS_OK) {
        ex = pk_cli_fail(rc);
    } else if (cli->json) {
        ex = pk_cli_print_json(cli, json);
        json = NULL;
    } else {
        printf("rewrapped %ld namespace key versions (%ld already current); re-encrypted %ld secrets\n",
               summary_field(json, "KeysRewrapped"), summary_field(json, "KeysAlreadyCurrent"),
               summary_field(json, "SecretsReencrypted"));
    }
out:
    p11kms_free(json);
    pk_cli_session_close(&s);
    args_free(&a);
    return ex;
}

int pk_cmd_secret(pk_cli *cli, int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*fn)(pk_cli *, int, char **);
    } subs[] = {
        {"put", cmd_put}, {"get", cmd_get}, {"update", cmd_update}, {"rm", cmd_rm},
        {"list", cmd_list}, {"rewrap", cmd_rewrap},
    };
    if (argc < 2) return pk_cli_usage("secret put|get|update|rm|list|rewrap");
    for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++)
        if (strcmp(argv[1], subs[i].name) == 0) return subs[i].fn(cli, argc - 1, argv + 1);
    return pk_cli_usage("secret: unknown subcommand '%s'", argv[1]);
}
