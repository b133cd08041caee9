/* p11kms store accept-restore --reason TEXT [--dry-run] */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli_session.h"
#include "json/json_in.h"

static uint64_t jnum(const pk_jv *doc, const char *k) { return (uint64_t)pk_jv_int(pk_jv_get(doc, k)); }

/* What is given up, one fact a line, before saying whether it was done. */
static void print_text(const pk_jv *rep)
{
    const pk_jv *kinds = pk_jv_get(rep, "changed_outside");
    uint64_t lost = jnum(rep, "lost_write_transactions");

    printf("store state %" PRIu64 ", anchored state %" PRIu64 "\n", jnum(rep, "store_state"),
           jnum(rep, "anchored_state"));
    if (lost > 0)
        printf("lost: the changes of %" PRIu64 " write transaction%s made after this copy of the store "
               "(the audit trail names them)\n", lost, lost == 1 ? "" : "s");
    for (size_t i = 0; i < pk_jv_size(kinds); i++) {
        const pk_jv *k = pk_jv_at(kinds, i);
        printf("lost: %s records changed outside p11kms: %" PRIu64 " in the store, %" PRIu64
               " in its recorded state\n", pk_jv_str(pk_jv_get(k, "kind")), jnum(k, "records"),
               jnum(k, "recorded_state_records"));
    }
    if (lost == 0 && pk_jv_size(kinds) == 0) printf("nothing is lost: the store matches its anchor\n");
    if (pk_jv_typeof(pk_jv_get(rep, "accepted")) == PK_JV_TRUE)
        printf("accepted: the store is anchored to its records as they are now\n");
    else
        printf("dry run: nothing changed\n");
}

static int accept_restore(pk_cli *cli, int argc, char **argv)
{
    const char *reason = NULL;
    unsigned flags = 0;
    p11kms_caller *caller = NULL;
    p11kms_config *cfg = NULL;
    char *json = NULL;
    pk_jv *doc = NULL;
    p11kms_rc rc;
    int ex;

    for (int i = 2; i < argc; i++) {
        if (pk_cli_optv(argc, argv, &i, "--reason", &reason)) {
            continue;
        } else if (strcmp(argv[i], "--dry-run") == 0) {
            flags |= P11KMS_ACCEPT_RESTORE_DRY_RUN;
        } else if (!pk_cli_common_opt(cli, argc, argv, &i)) {
            return pk_cli_usage("store accept-restore: unexpected '%s'", argv[i]);
        }
    }
    if (reason == NULL) return pk_cli_usage("store accept-restore: --reason TEXT is required (why the store goes back to an older state)");
    if ((ex = pk_cli_caller(cli, &caller)) != PK_EXIT_OK) return ex;
    if ((ex = pk_cli_load_config(cli, &cfg)) == PK_EXIT_OK) {
        rc = p11kms_store_accept_restore(cfg, caller, reason, flags, &json);
        if (rc != P11KMS_OK) {
            ex = pk_cli_fail(rc);
        } else if (cli->json) {
            ex = pk_cli_print_json(cli, json);
            json = NULL;
        } else if (pk_ok(pk_json_parse(json, strlen(json), P11KMS_ERR_INTERNAL, &doc))) {
            print_text(doc);
        } else {
            ex = pk_cli_fail(P11KMS_ERR_INTERNAL);
        }
    }
    pk_json_free(doc);
    p11kms_free(json);
    p11kms_config_free(cfg);
    p11kms_caller_free(caller);
    return ex;
}

int pk_cmd_store(pk_cli *cli, int argc, char **argv)
{
    if (argc < 2) return pk_cli_usage("store accept-restore --reason TEXT [--dry-run]");
    if (strcmp(argv[1], "accept-restore") == 0) return accept_restore(cli, argc, argv);
    return pk_cli_usage("unknown store command '%s'", argv[1]);
}
