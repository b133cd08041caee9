/* p11kms: the command-line front end of libp11kms. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

static const char usage_text[] =
    "usage: p11kms [--config FILE] [--as PRINCIPAL] [--json] COMMAND [ARGS...]\n"
    "\n"
    "Token:\n"
    "  token info                      module, token, login and probed mechanisms\n"
    "  token init --module PATH --label LABEL --so-pin-file FILE --pin-file FILE\n"
    "                                  initialise a token (PINs only from files)\n"
    "\n"
    "Store and keys (KEY: key id, alias/NAME or key ARN):\n"
    "  init [--admin P]... [--operator P]...   create the store, system keys and service key\n"
    "  key create [--alias alias/NAME] [--description TEXT] [--rotation-days N]\n"
    "             [--policy FILE [--bypass-lockout-check] | --admin P... --operator P...]\n"
    "  key list | key describe KEY\n"
    "  key enable KEY | key disable KEY | key rotate KEY\n"
    "  key schedule-deletion KEY [--days N] | key cancel-deletion KEY | key purge\n"
    "  key get-policy KEY | key put-policy KEY FILE [--bypass-lockout-check]\n"
    "  alias create alias/NAME KEY | alias delete alias/NAME | alias list [KEY]\n"
    "\n"
    "Cryptography (in the HSM):\n"
    "  encrypt --key KEY [--context k=v]... [--in FILE]          base64 blob on stdout\n"
    "  decrypt [--context k=v]... [--in FILE] [--out FILE]       plaintext (FILE: mode 0600)\n"
    "  datakey --key KEY [--spec AES_256|AES_128 | --bytes N] [--no-plaintext] [--context k=v]...\n"
    "  re-encrypt --key KEY [--context k=v]... [--new-context k=v]... [--in FILE]\n"
    "\n"
    "Compliance (exit 1 when there are findings):\n"
    "  report keys                     keys, versions, rotation, live PKCS#11 attributes, unknown objects\n"
    "  report policies                 every key policy through the linter\n"
    "\n"
    "Policies (no token needed):\n"
    "  policy eval --policy FILE --principal P --action A [--resource ARN]\n"
    "              [--context k=v]... [--request-context k=v]... [--batch FILE.jsonl]\n"
    "  policy lint FILE\n"
    "\n"
    "Audit log:\n"
    "  audit verify [FILE...] [--allow-unsealed]\n"
    "                                  check the chain, seals and rotation links\n"
    "  audit rotate                    seal, rename to AUDIT.NNNNNN, start a new file\n"
    "  audit files                     list the rotated series, oldest first\n"
    "\n"
    "Secrets (Flink FLIP-529 SecretStore; values as k=v, k=@FILE or --from-json FILE|-):\n"
    "  secret put [--namespace NS] [--key KEY] k=v... [--from-json FILE]   prints the id\n"
    "  secret get ID [--field NAME]    JSON map, or one value\n"
    "  secret update ID k=v... [--from-json FILE] | secret rm ID\n"
    "  secret list [--namespace NS]\n"
    "  secret rewrap [--namespace NS | --all] [--reencrypt]\n"
    "\n"
    "Connections (NAME: [catalog.][db.]name; sensitive options kept in a secret):\n"
    "  connection create NAME [--comment C] [--type T] [--namespace NS] [--key KEY] opt=value...\n"
    "  connection alter NAME [--comment C] [opt=value]... [--reset opt]...\n"
    "  connection drop NAME | describe NAME | show-create NAME | list [--like PATTERN]\n"
    "  connection resolve NAME         every option, secrets included (audited as kms:Decrypt)\n"
    "\n"
    "Rendering:\n"
    "  render TEMPLATE [-o OUT]        replace ${secret:ID:FIELD}, ${connection:NAME:OPTION},\n"
    "                                  ${kms:BLOB}; $${ is a literal ${; OUT is written 0600\n"
    "\n"
    "Global options:\n"
    "  --config FILE    configuration (default: $P11KMS_CONFIG, ./p11kms.conf,\n"
    "                   /etc/p11kms/p11kms.conf)\n"
    "  --as PRINCIPAL   the caller's principal ARN (default: $P11KMS_PRINCIPAL)\n"
    "  --json           machine-readable output\n"
    "  --help, --version\n"
    "\n"
    "The PIN is read from the file or environment variable named by `pin` in\n"
    "p11kms.conf; p11kms never takes a PIN on the command line.\n"
    "\n"
    "Exit codes:\n"
    "  0  success\n"
    "  1  operation failed (HSM error, invalid ciphertext, key disabled, ...)\n"
    "  2  usage error or invalid input\n"
    "  3  configuration or token error (module, token URI, PIN, mechanisms)\n"
    "  4  access denied by key policy\n"
    "  5  not found\n";

typedef struct command {
    const char *name;
    int (*fn)(pk_cli *cli, int argc, char **argv);
} command;

static const command commands[] = {
    {"token", pk_cmd_token},
    {"init", pk_cmd_init},
    {"key", pk_cmd_key},
    {"alias", pk_cmd_alias},
    {"encrypt", pk_cmd_encrypt},
    {"decrypt", pk_cmd_decrypt},
    {"datakey", pk_cmd_datakey},
    {"re-encrypt", pk_cmd_reencrypt},
    {"policy", pk_cmd_policy},
    {"audit", pk_cmd_audit},
    {"report", pk_cmd_report},
    {"secret", pk_cmd_secret},
    {"connection", pk_cmd_connection},
    {"render", pk_cmd_render},
};

int main(int argc, char **argv)
{
    pk_cli cli = {0};
    int i = 1;

    cli.principal = getenv("P11KMS_PRINCIPAL");
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage_text, stdout);
            return PK_EXIT_OK;
        }
        if (strcmp(argv[i], "--version") == 0) {
            printf("p11kms %s\n", p11kms_version());
            return PK_EXIT_OK;
        }
        if (!pk_cli_common_opt(&cli, argc, argv, &i)) return pk_cli_usage("unknown option '%s'", argv[i]);
    }
    if (i >= argc) return pk_cli_usage("no command given");
    for (size_t c = 0; c < PK_ARRAY_LEN(commands); c++)
        if (strcmp(argv[i], commands[c].name) == 0) return commands[c].fn(&cli, argc - i, argv + i);
    return pk_cli_usage("unknown command '%s'", argv[i]);
}
