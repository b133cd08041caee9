/*
 * p11kms connection create | alter | drop | describe | show-create |
 * resolve | list (FLIP-529 connections).
 *
 * Option values come from opt=value or opt=@FILE (one trailing newline
 * removed); they are held in locked memory. describe and show-create show
 * sensitive values as ****; resolve prints them (stdout only).
 */
#include "config.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_session.h"
#include "json/json_in.h"

#define MAX_RESET 64

#define MAX_ARGV_OPTS 256

typedef struct conn_args {
    const char *name, *comment, *type, *ns, *key, *like;
    const char *reset[MAX_RESET];
    size_t nreset;
    p11kms_secret_map *opts;
    const char *argv_opts[MAX_ARGV_OPTS]; /* OPTION=VALUE given on the command line */
    size_t nargv_opts;
} conn_args;

/* Keep the command-line pairs: they are checked once the config is known. */
static void note_argv(const char *key, const char *arg, void *ctx)
{
    conn_args *a = ctx;
    (void)key;
    if (a->nargv_opts < MAX_ARGV_OPTS) a->argv_opts[a->nargv_opts++] = arg;
}

static int add_opt(conn_args *a, const char *arg)
{
    return pk_cli_map_add(a->opts, arg, "connection options are given as OPTION=VALUE or OPTION=@FILE", note_argv, a);
}

/*
 * argv is world-readable in /proc: say so for sensitive options (the
 * library's rule, with the config's sensitive_options when it loads), but
 * keep working. After the parse, so --config may come anywhere.
 */
static void warn_argv_secrets(const pk_cli *cli, const conn_args *a)
{
    p11kms_config *cfg = NULL;
    if (a->nargv_opts > 0 && p11kms_config_load(cli->config_path, &cfg) != P11KMS_OK) cfg = NULL;
    for (size_t i = 0; i < a->nargv_opts; i++) {
        const char *arg = a->argv_opts[i];
        char *key = strndup(arg, (size_t)(strchr(arg, '=') - arg)), *hint = NULL;
        if (key != NULL && p11kms_connection_option_sensitive(cfg, key) && asprintf(&hint, "%s=@FILE", key) >= 0) {
            pk_cli_warn_argv_secret(key, hint);
            free(hint);
        }
        free(key);
    }
    p11kms_config_free(cfg);
}

static int parse(pk_cli *cli, int argc, char **argv, bool opts_ok, conn_args *a)
{
    const char *v;
    int ex;
    memset(a, 0, sizeof(*a));
    if (p11kms_secret_map_new(&a->opts) != P11KMS_OK) return pk_cli_fail(P11KMS_ERR_NO_MEMORY);
    for (int i = 1; i < argc; i++) {
        if (pk_cli_common_opt(cli, argc, argv, &i)) continue;
        if (pk_cli_optv(argc, argv, &i, "--comment", &v)) a->comment = v;
        else if (pk_cli_optv(argc, argv, &i, "--type", &v)) a->type = v;
        else if (pk_cli_optv(argc, argv, &i, "--namespace", &v)) a->ns = v;
        else if (pk_cli_optv(argc, argv, &i, "--key", &v)) a->key = v;
        else if (pk_cli_optv(argc, argv, &i, "--like", &v)) a->like = v;
        else if (pk_cli_optv(argc, argv, &i, "--reset", &v)) {
            if (a->nreset >= MAX_RESET) return pk_cli_usage("at most %d --reset options", MAX_RESET);
            a->reset[a->nreset++] = v;
        } else if (strncmp(argv[i], "--", 2) == 0) return pk_cli_usage("connection %s: unexpected '%s'", argv[0], argv[i]);
        else if (a->name == NULL && strchr(argv[i], '=') == NULL) a->name = argv[i];
        else if (opts_ok) {
            if ((ex = add_opt(a, argv[i])) != PK_EXIT_OK) return ex;
        } else
            return pk_cli_usage("connection %s: unexpected argument", argv[0]);
    }
    warn_argv_secrets(cli, a);
    return PK_EXIT_OK;
}

static int need_name(const conn_args *a, const char *usage)
{
    return a->name != NULL ? PK_EXIT_OK : pk_cli_usage("%s", usage);
}

static int print_map(pk_cli *cli, const p11kms_secret_map *m)
{
    int ex = PK_EXIT_OK;
    if (cli->json) {
        p11kms_buf *b = NULL;
        p11kms_rc rc = p11kms_secret_map_to_json(m, &b);
        if (rc != P11KMS_OK) return pk_cli_fail(rc);
        ex = pk_cli_write_secret(NULL, p11kms_buf_data(b), p11kms_buf_len(b));
        if (ex == PK_EXIT_OK) ex = pk_cli_write_secret(NULL, (const uint8_t *)"\n", 1);
        p11kms_buf_free(b);
        return ex;
    }
    for (size_t i = 0; i < p11kms_secret_map_count(m) && ex == PK_EXIT_OK; i++) {
        const char *k = p11kms_secret_map_key_at(m, i), *v = p11kms_secret_map_value_at(m, i);
        ex = pk_cli_write_secret(NULL, (const uint8_t *)k, strlen(k));
        if (ex == PK_EXIT_OK) ex = pk_cli_write_secret(NULL, (const uint8_t *)"=", 1);
        if (ex == PK_EXIT_OK) ex = pk_cli_write_secret(NULL, (const uint8_t *)v, strlen(v));
        if (ex == PK_EXIT_OK) ex = pk_cli_write_secret(NULL, (const uint8_t *)"\n", 1);
    }
    return ex;
}

/* One line per connection: name, type, namespace, comment. */
static int print_list(const char *json)
{
    pk_jv *doc = NULL;
    if (pk_failed(pk_json_parse(json, strlen(json), P11KMS_ERR_INTERNAL, &doc))) return pk_cli_fail(P11KMS_ERR_INTERNAL);
    for (size_t i = 0; i < pk_jv_size(doc); i++) {
        const pk_jv *e = pk_jv_at(doc, i);
        printf("%-40s %-12s %-16s %s\n", pk_jv_str(pk_jv_get(e, "Name")), pk_jv_str(pk_jv_get(e, "Type")),
               pk_jv_str(pk_jv_get(e, "Namespace")), pk_jv_str(pk_jv_get(e, "Comment")));
    }
    pk_json_free(doc);
    return PK_EXIT_OK;
}

/* "connection NAME created", or {"Name":..,"Result":"created"} with --json. */
static int print_done(const pk_cli *cli, const char *name, const char *what)
{
    if (cli->json) return pk_cli_print_obj("Name", name, "Result", what, NULL);
    printf("connection %s %s\n", name, what);
    return PK_EXIT_OK;
}

int pk_cmd_connection(pk_cli *cli, int argc, char **argv)
{
    conn_args a;
    pk_cli_session s = {0};
    p11kms_secret_map *m = NULL;
    char *text = NULL;
    p11kms_rc rc = P11KMS_OK;
    const char *sub;
    int ex;

    memset(&a, 0, sizeof(a));
    if (argc < 2) return pk_cli_usage("connection create|alter|drop|describe|show-create|resolve|list");
    sub = argv[1];
    if (strcmp(sub, "create") != 0 && strcmp(sub, "alter") != 0 && strcmp(sub, "drop") != 0 &&
        strcmp(sub, "describe") != 0 && strcmp(sub, "show-create") != 0 && strcmp(sub, "resolve") != 0 &&
        strcmp(sub, "list") != 0)
        return pk_cli_usage("connection: unknown subcommand '%s'", sub);
    if ((ex = parse(cli, argc - 1, argv + 1, strcmp(sub, "create") == 0 || strcmp(sub, "alter") == 0, &a)) !=
        PK_EXIT_OK)
        goto out;
    if (strcmp(sub, "list") != 0 &&
        (ex = need_name(&a, "connection create|alter|drop|describe|show-create|resolve NAME ...")) != PK_EXIT_OK)
        goto out;
    if ((ex = pk_cli_session_open(cli, &s)) != PK_EXIT_OK) goto out;
    if (strcmp(sub, "create") == 0) {
        p11kms_connection_spec spec = {sizeof(spec), a.type, a.comment, a.ns, a.key, a.opts};
        rc = p11kms_connection_create(s.h, s.caller, a.name, &spec);
        if (rc == P11KMS_OK) ex = print_done(cli, a.name, "created");
    } else if (strcmp(sub, "alter") == 0) {
        if (p11kms_secret_map_count(a.opts) == 0 && a.nreset == 0 && a.comment == NULL) {
            ex = pk_cli_usage("connection alter NAME [--comment C] [opt=value]... [--reset opt]...");
            goto out;
        }
        rc = p11kms_connection_alter(s.h, s.caller, a.name, a.opts, a.reset, a.nreset, a.comment);
        if (rc == P11KMS_OK) ex = print_done(cli, a.name, "altered");
    } else if (strcmp(sub, "drop") == 0) {
        rc = p11kms_connection_drop(s.h, s.caller, a.name);
        if (rc == P11KMS_OK) ex = print_done(cli, a.name, "dropped");
    } else if (strcmp(sub, "describe") == 0) {
        rc = p11kms_connection_describe(s.h, s.caller, a.name, &text);
    } else if (strcmp(sub, "show-create") == 0) {
        rc = p11kms_connection_show_create(s.h, s.caller, a.name, &text);
    } else if (strcmp(sub, "list") == 0) {
        rc = p11kms_connection_list(s.h, s.caller, a.like, &text);
    } else {
        rc = p11kms_connection_resolve(s.h, s.caller, a.name, &m);
        if (rc == P11KMS_OK) ex = print_map(cli, m);
    }
    if (rc != P11KMS_OK) {
        ex = pk_cli_fail(rc);
    } else if (text != NULL && strcmp(sub, "list") == 0 && !cli->json) {
        ex = print_list(text);
    } else if (text != NULL && strcmp(sub, "show-create") == 0 && cli->json) {
        ex = pk_cli_print_obj("Name", a.name, "CreateStatement", text, NULL);
    } else if (text != NULL) {
        ex = pk_cli_print_json(cli, text);
        text = NULL;
    }
out:
    p11kms_free(text);
    p11kms_secret_map_free(m);
    p11kms_secret_map_free(a.opts);
    pk_cli_session_close(&s);
    return ex;
}
