/*
 * The help table of the p11kms command and its printers. Every command
 * path has one row; the man page and the bash completion are checked
 * against it (tests/cli/help.sh), so a new option is added here first.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cli_help.h"

#define WIDTH 79
#define SUMMARY_COL 34

/* Compound literals at file scope have static storage: each row owns its option list. */
#define OPTS(...) ((const pk_help_opt[]){__VA_ARGS__, {NULL, NULL}})

static const pk_help_entry table[] = {
    {"token info", "token info", "module, token, login and probed mechanisms",
     "Show the PKCS#11 module, the token's label, serial, manufacturer and model,\n"
     "whether login with the configured PIN works, and whether the token offers\n"
     "each mechanism p11kms needs. Exit 3 when login fails or a mechanism is\n"
     "missing.",
     NULL, "p11kms --config /etc/p11kms/p11kms.conf token info"},
    {"token init", "token init --module PATH --label LABEL --so-pin-file FILE --pin-file FILE",
     "initialise a token (PINs only from files)",
     "Initialise the first free token of a PKCS#11 module and set its user PIN.\n"
     "Both PINs are read from files (mode 0600); p11kms never takes a PIN on the\n"
     "command line. Needs no configuration file.",
     OPTS({"--module PATH", "the PKCS#11 module (absolute path)"},
          {"--label LABEL", "the new token's label"},
          {"--so-pin-file FILE", "file holding the security officer PIN"},
          {"--pin-file FILE", "file holding the user PIN"}),
     "p11kms token init --module /usr/lib/softhsm/libsofthsm2.so --label p11kms --so-pin-file so.pin "
     "--pin-file user.pin"},
    {"init", "init [--admin P]... [--operator P]...", "create the store, system keys and service key",
     "Create the metadata store, the system keys and the service key\n"
     "(alias/p11kms/default). Running it again changes nothing. The service\n"
     "key is administered by the --admin principals (default: the caller) and\n"
     "used by the --operator principals (default: anyone, like an AWS-owned key).",
     OPTS({"--admin P", "administrator principal ARN (repeatable, max 16)"},
          {"--operator P", "operator principal ARN (repeatable, max 16)"}),
     "p11kms --as arn:aws:iam::111122223333:role/key-admin init --admin arn:aws:iam::111122223333:role/key-admin "
     "--operator arn:aws:iam::111122223333:role/flink-operator"},
    {"key create",
     "key create [--alias alias/NAME] [--description TEXT] [--rotation-days N] [--policy FILE "
     "[--bypass-lockout-check] [--bypass-lint] | --admin P... --operator P...]",
     "create a key in the HSM; prints its id",
     "Create a customer master key: a new AES-256 key in the HSM, and its\n"
     "record and policy in the store. Prints the key id. The policy comes from\n"
     "--policy FILE, or is the default policy built from --admin and --operator\n"
     "(administrators manage the key but cannot use it; operators use it but\n"
     "cannot manage it). --admin defaults to the caller.",
     OPTS({"--alias alias/NAME", "also create this alias for the key"},
          {"--description TEXT", "a description (not secret)"},
          {"--rotation-days N", "rotate every N days (90 to 2560; 0: off)"},
          {"--policy FILE", "the key policy (JSON; - for stdin)"},
          {"--bypass-lockout-check", "accept a policy that locks the caller out"},
          {"--bypass-lint", "accept a policy that has linter findings"},
          {"--admin P", "administrator principal ARN (repeatable, max 16)"},
          {"--operator P", "operator principal ARN (repeatable, max 16)"}),
     "p11kms key create --alias alias/flink --rotation-days 365 --admin arn:aws:iam::111122223333:role/key-admin "
     "--operator arn:aws:iam::111122223333:role/flink-operator"},
    {"key list", "key list", "every key: id, state, description",
     "List every key with its state and description.", NULL, "p11kms --json key list"},
    {"key describe", "key describe KEY", "a key's metadata",
     "Show a key's id, ARN, description, state, creation date, rotation period,\n"
     "last and next rotation, current version, deletion date and aliases.",
     NULL, "p11kms key describe alias/flink"},
    {"key enable", "key enable KEY", "allow the key's use again",
     "Set a Disabled key to Enabled.", NULL, "p11kms key enable alias/flink"},
    {"key disable", "key disable KEY", "refuse every use of the key",
     "Set a key to Disabled: it neither encrypts nor decrypts until enabled.", NULL, "p11kms key disable alias/flink"},
    {"key rotate", "key rotate KEY", "add a key version now",
     "Add a new version of the key in the HSM. New encryptions use it; older\n"
     "versions still decrypt. The key must be Enabled.",
     NULL, "p11kms key rotate alias/flink"},
    {"key schedule-deletion", "key schedule-deletion KEY [--days N]", "destroy the key after a waiting period",
     "Put the key in PendingDeletion: it is unusable at once and `key purge`\n"
     "destroys it in the HSM once the waiting period has passed.",
     OPTS({"--days N", "the waiting period, 7 to 30 days (default 30)"}),
     "p11kms key schedule-deletion alias/old --days 7"},
    {"key cancel-deletion", "key cancel-deletion KEY", "stop a scheduled deletion",
     "Cancel a scheduled deletion; the key becomes Disabled.", NULL, "p11kms key cancel-deletion alias/old"},
    {"key purge", "key purge", "destroy and rotate the keys that are due",
     "Destroy the keys whose deletion waiting period has passed and rotate the\n"
     "keys whose rotation period has passed. Automatic rotation and deletion\n"
     "happen only here: run it daily (contrib/systemd/p11kms-purge.timer or cron).\n"
     "Prints {\"destroyed\":[...],\"rotated\":[...]}.",
     NULL, "p11kms --as arn:aws:iam::111122223333:role/p11kms-maintenance key purge"},
    {"key get-policy", "key get-policy KEY", "print the key policy",
     "Print the key's policy document (JSON).", NULL, "p11kms key get-policy alias/flink >policy.json"},
    {"key put-policy", "key put-policy KEY FILE [--bypass-lockout-check] [--bypass-lint]", "replace the key policy",
     "Replace the key's policy with FILE (- for stdin). A policy that would lock\n"
     "the caller out of the key, or that has linter findings, is refused unless\n"
     "the matching --bypass option is given.",
     OPTS({"--bypass-lockout-check", "accept a policy that locks the caller out"},
          {"--bypass-lint", "accept a policy that has linter findings"}),
     "p11kms key put-policy alias/flink policy.json"},
    {"alias create", "alias create alias/NAME KEY", "name a key",
     "Create alias/NAME pointing at KEY.", NULL, "p11kms alias create alias/orders 1234abcd-12ab-34cd-56ef-1234567890ab"},
    {"alias delete", "alias delete alias/NAME", "remove an alias",
     "Delete an alias; the key is not touched.", NULL, "p11kms alias delete alias/orders"},
    {"alias list", "alias list [KEY]", "aliases, of every key or of KEY",
     "List aliases and the key each points at, of every key or of KEY.", NULL, "p11kms alias list alias/flink"},
    {"encrypt", "encrypt --key KEY [--context k=v]... [--in FILE]", "base64 blob on stdout",
     "Encrypt 1 to 4096 bytes of plaintext (stdin or FILE) in the HSM with\n"
     "AES-GCM under the key's current version. Prints the ciphertext blob in\n"
     "base64 (docs/FORMAT.md). The encryption context is bound to the blob and\n"
     "must be given again to decrypt.",
     OPTS({"--key KEY", "the key (id, alias/NAME or ARN)"},
          {"--context k=v", "an encryption context pair (repeatable)"},
          {"--in FILE", "read the plaintext from FILE (default: stdin)"}),
     "printf hello | p11kms encrypt --key alias/flink --context job=orders >blob"},
    {"decrypt", "decrypt [--context k=v]... [--in FILE] [--out FILE]", "plaintext (FILE: mode 0600)",
     "Decrypt a blob (base64, stdin or FILE). The key is named by the blob. The\n"
     "plaintext goes to stdout or to a new file of mode 0600.",
     OPTS({"--context k=v", "the context given to encrypt (repeatable)"},
          {"--in FILE", "read the blob from FILE (default: stdin)"},
          {"--out FILE", "write the plaintext to FILE, created with mode 0600"}),
     "p11kms decrypt --context job=orders --in blob"},
    {"datakey",
     "datakey --key KEY [--spec AES_256|AES_128 | --bytes N] [--no-plaintext] [--context k=v]... [--out FILE]",
     "a data key for envelope encryption",
     "Generate a data key and return it encrypted under KEY, and in plaintext\n"
     "unless --no-plaintext: {\"KeyId\",\"KeyVersion\",\"CiphertextBlob\",\"Plaintext\"}\n"
     "in base64.",
     OPTS({"--key KEY", "the key that encrypts the data key"},
          {"--spec AES_256|AES_128", "the data key's size (default AES_256)"},
          {"--bytes N", "the data key's size in bytes, instead of --spec"},
          {"--no-plaintext", "return only the encrypted data key"},
          {"--context k=v", "an encryption context pair (repeatable)"},
          {"--out FILE", "write the result to FILE, created with mode 0600"}),
     "p11kms datakey --key alias/flink --context job=orders --out dk.json"},
    {"re-encrypt", "re-encrypt --key KEY [--context k=v]... [--new-context k=v]... [--in FILE]",
     "move a blob to another key or version",
     "Decrypt a blob and encrypt its plaintext again under KEY (its newest\n"
     "version) inside p11kms; the plaintext is never printed. Prints the new blob.",
     OPTS({"--key KEY", "the key to encrypt under"},
          {"--context k=v", "the blob's current encryption context (repeatable)"},
          {"--new-context k=v", "the new blob's encryption context (repeatable)"},
          {"--in FILE", "read the blob from FILE (default: stdin)"}),
     "p11kms re-encrypt --key alias/flink --context job=orders --new-context job=orders --in blob >blob.new"},
    {"policy eval",
     "policy eval --policy FILE --principal ARN --action ACTION [--resource ARN] [--context K=V]... "
     "[--request-context KEY=VALUE]... [--time ISO8601|EPOCH] [--batch FILE.jsonl]",
     "what-if evaluation of a key policy",
     "Evaluate a key policy for one request, or for each JSON request line of\n"
     "--batch, and print the decision and the matching statements. Needs no\n"
     "token. Exit 0 whenever the evaluation ran, whatever the decision.",
     OPTS({"--policy FILE", "the policy document (JSON)"},
          {"--principal ARN", "the caller (default: --as or $P11KMS_PRINCIPAL)"},
          {"--action ACTION", "the action, e.g. kms:Decrypt"},
          {"--resource ARN", "the key ARN"},
          {"--context K=V", "an encryption context pair (repeatable)"},
          {"--request-context KEY=VALUE", "another condition key and value (repeatable)"},
          {"--time ISO8601|EPOCH", "evaluate at this time (default: now)"},
          {"--batch FILE.jsonl", "one JSON request a line; options are defaults"}),
     "p11kms policy eval --policy policy.json --principal arn:aws:iam::111122223333:role/flink-operator "
     "--action kms:Decrypt"},
    {"policy lint", "policy lint FILE", "a policy's findings",
     "Print a policy's findings: principals with both administration and\n"
     "cryptographic use, Allow to \"*\", kms:* grants, unknown actions and more\n"
     "(docs/POLICY.md). Needs no token. Exit 1 when there are findings.",
     NULL, "p11kms policy lint policy.json"},
    {"audit verify", "audit verify [FILE...] [--allow-unsealed]", "check the chain, seals and rotation links",
     "Verify the audit trail: the hash chain, the HSM seals and the links between\n"
     "rotated files, of the configured series or of the FILEs given. Exit 1 and\n"
     "one line naming file, line and record when it does not verify.",
     OPTS({"--allow-unsealed", "accept records after the last seal at the end"}),
     "p11kms audit verify"},
    {"audit rotate", "audit rotate", "seal, rename to AUDIT.NNNNNN, start anew",
     "Seal the audit log, rename it to AUDIT.NNNNNN and start a new file that\n"
     "links to it. The rotation is itself recorded.",
     NULL, "p11kms audit rotate"},
    {"audit files", "audit files", "list the rotated series, oldest first",
     "Print the files of the configured audit series, oldest first.", NULL, "p11kms audit files"},
    {"report keys", "report keys", "keys, rotation, live PKCS#11 attributes",
     "Report every key: state, versions, last rotation against its period,\n"
     "pending deletion, and the live PKCS#11 attributes of each version read\n"
     "from the token; token objects with a p11kms label unknown to the store.\n"
     "Exit 1 when there are findings. Wrapped by p11kms-key-report.",
     NULL, "p11kms --as arn:aws:iam::111122223333:role/p11kms-auditor report keys"},
    {"report policies", "report policies", "every key policy through the linter",
     "Run the policy linter over every key's policy and name each finding by\n"
     "key. Exit 1 when there are findings. Wrapped by p11kms-policy-report.",
     NULL, "p11kms --as arn:aws:iam::111122223333:role/p11kms-auditor --json report policies"},
    {"secret put", "secret put [--namespace NS] [--key KEY] k=v|k=@FILE... [--from-json FILE|-]", "prints the id",
     "Store a map of string values as a new secret and print its id. k=@FILE\n"
     "takes the value from FILE (one trailing newline removed) so that it never\n"
     "appears in argv; --from-json reads a flat JSON object, k=v pairs override it.",
     OPTS({"--namespace NS", "the namespace (default: default)"},
          {"--key KEY", "the namespace's key (default: the service key)"},
          {"--from-json FILE|-", "a flat JSON object of strings (- for stdin)"}),
     "p11kms secret put user=flink password=@/run/secrets/db-password"},
    {"secret get", "secret get ID [--field NAME]", "JSON map, or one value",
     "Print a secret as a JSON map, or one field's value.",
     OPTS({"--field NAME", "print only this field's value"}), "p11kms secret get 7f3c... --field password"},
    {"secret update", "secret update ID k=v|k=@FILE... [--from-json FILE|-]", "replace a secret's map",
     "Replace the secret's map atomically with a new version.",
     OPTS({"--from-json FILE|-", "a flat JSON object of strings (- for stdin)"}),
     "p11kms secret update 7f3c... user=flink password=@/run/secrets/db-password"},
    {"secret rm", "secret rm ID", "remove a secret", "Remove a secret.", NULL, "p11kms secret rm 7f3c..."},
    {"secret list", "secret list [--namespace NS]", "ids and metadata, never values",
     "List the secrets' ids, namespaces, versions and change dates (never values).",
     OPTS({"--namespace NS", "only this namespace"}), "p11kms secret list --namespace team-a"},
    {"secret rewrap", "secret rewrap [--namespace NS | --all] [--reencrypt]",
     "re-wrap namespace keys",
     "Re-wrap namespace keys under the newest version of their key; with\n"
     "--reencrypt, also move every secret to a new namespace-key version.\n"
     "Progress goes to stderr.",
     OPTS({"--namespace NS", "this namespace (default: default)"},
          {"--all", "every namespace"},
          {"--reencrypt", "also re-encrypt secrets under a new namespace key"}),
     "p11kms secret rewrap --all --reencrypt"},
    {"connection create", "connection create NAME [--comment C] [--type T] [--namespace NS] [--key KEY] opt=value...",
     "create a connection",
     "Create a FLIP-529 connection NAME ([catalog.][db.]name). Sensitive options\n"
     "(password, token, ...) are kept in one secret; opt=@FILE reads a value\n"
     "from FILE.",
     OPTS({"--comment C", "a comment"},
          {"--type T", "the connection type"},
          {"--namespace NS", "the namespace of its secret"},
          {"--key KEY", "the key that protects the namespace"}),
     "p11kms connection create pg --type jdbc url=jdbc:postgresql://db/orders user=flink "
     "password=@/run/secrets/db-password"},
    {"connection alter", "connection alter NAME [--comment C] [opt=value]... [--reset opt]...",
     "change a connection's options",
     "Set, change or remove (--reset) options of a connection, or its comment.",
     OPTS({"--comment C", "a new comment"}, {"--reset opt", "remove the option opt (repeatable)"}),
     "p11kms connection alter pg password=@/run/secrets/new-password --reset ssl"},
    {"connection drop", "connection drop NAME", "remove a connection", "Remove a connection and its secret.", NULL,
     "p11kms connection drop pg"},
    {"connection describe", "connection describe NAME", "a connection, sensitive values as ****",
     "Describe a connection (JSON); sensitive values are shown as ****.", NULL, "p11kms connection describe pg"},
    {"connection show-create", "connection show-create NAME", "the CREATE CONNECTION statement",
     "Print the CREATE CONNECTION statement; sensitive values are shown as ****.", NULL,
     "p11kms connection show-create pg"},
    {"connection resolve", "connection resolve NAME", "every option, secrets included",
     "Print every option as opt=value, sensitive values included, to stdout only\n"
     "(audited as kms:Decrypt).",
     NULL, "p11kms connection resolve pg"},
    {"connection list", "connection list [--like PATTERN]", "connections: name, type, namespace, comment",
     "List connections, optionally those whose name matches PATTERN.",
     OPTS({"--like PATTERN", "SQL LIKE pattern (% and _)"}), "p11kms connection list --like 'prod.%'"},
    {"render", "render TEMPLATE [-o OUT]", "fill in placeholders; OUT mode 0600",
     "Replace ${secret:ID:FIELD}, ${connection:NAME:OPTION} and ${kms:BLOB} in\n"
     "TEMPLATE. A placeholder may end in a filter that quotes the value for its\n"
     "file format: ${secret:ID:FIELD|yaml}, |json, |properties, |shell or |raw\n"
     "(as is). $${ is a literal ${. Nothing is written unless every placeholder\n"
     "resolves; OUT is replaced atomically and has mode 0600.",
     OPTS({"-o OUT, --out OUT", "write to OUT (default: stdout)"}),
     "p11kms render flink-conf.yaml.in -o flink-conf.yaml"},
    {"access-key create", "access-key create --principal ARN", "SigV4 access key for p11kmsd",
     "Create an access key for PRINCIPAL (at most two each, so keys can be\n"
     "rotated) and print its AccessKeyId and SecretAccessKey once. The secret\n"
     "lives only in the HSM, as a non-extractable key; it cannot be shown again.\n"
     "Only the service administrators (kms:PutKeyPolicy on alias/p11kms/default)\n"
     "may manage access keys.",
     OPTS({"--principal ARN", "the principal the key authenticates as"}),
     "p11kms access-key create --principal arn:aws:iam::111122223333:role/flink-operator"},
    {"access-key list", "access-key list [--principal ARN]", "access keys and their status",
     "List access keys (never their secrets): id, Active or Inactive, creation\n"
     "date and principal; all of them or those of one principal.",
     OPTS({"--principal ARN", "only this principal's keys"}), "p11kms access-key list"},
    {"access-key disable", "access-key disable ACCESS_KEY_ID", "refuse requests signed with a key",
     "Set an access key to Inactive: p11kmsd answers its requests with\n"
     "UnrecognizedClientException until it is enabled again.", NULL,
     "p11kms access-key disable AKIAIOSFODNN7EXAMPLE"},
    {"access-key enable", "access-key enable ACCESS_KEY_ID", "accept a disabled key again",
     "Set an Inactive access key to Active.", NULL, "p11kms access-key enable AKIAIOSFODNN7EXAMPLE"},
    {"access-key delete", "access-key delete ACCESS_KEY_ID", "remove a key and its HSM object",
     "Delete an access key: its record and the token object holding its secret.", NULL,
     "p11kms access-key delete AKIAIOSFODNN7EXAMPLE"},
    {"encrypt-file",
     "encrypt-file --key KEY [--context k=v]... [--frame-length N] [--suite 0x0478|0x0578] [--threads N] IN OUT",
     "encrypt a file of any size",
     "Encrypt IN into an AWS Encryption SDK message (format version 2, framed)\n"
     "that the official SDKs decrypt with a KMS keyring reaching this service.\n"
     "The data key comes from GenerateDataKey under KEY in the HSM. Suite\n"
     "0x0478 (default) commits to the key; 0x0578 also signs with ECDSA P-384.\n"
     "- is stdin/stdout; OUT is written to a temporary file, mode 0600, renamed\n"
     "at the end. --json prints the key ARN, context, bytes and frames.",
     OPTS({"--key KEY", "the key (id, alias/NAME or ARN)"},
          {"--context k=v", "encryption context pair (repeatable)"},
          {"--frame-length N", "plaintext bytes per frame (default 4096)"},
          {"--suite 0x0478|0x0578", "algorithm suite (default 0x0478)"},
          {"--threads N", "frames encrypted in parallel (1 to 64)"}),
     "p11kms encrypt-file --key alias/checkpoints --context job=etl chk-42 chk-42.esdk"},
    {"decrypt-file", "decrypt-file [--context k=v]... [--threads N] IN OUT",
     "decrypt a file made by encrypt-file or an SDK",
     "Decrypt a message of suite 0x0478 or 0x0578: the key commitment, header\n"
     "and every frame are verified, the signature too. Each --context pair must\n"
     "be in the message's context. A truncated, reordered or changed message is\n"
     "refused and OUT is not created.",
     OPTS({"--context k=v", "pair the message's context must hold (repeatable)"},
          {"--threads N", "frames decrypted in parallel (1 to 64)"}),
     "p11kms decrypt-file --context job=etl chk-42.esdk chk-42"},
    {"rewrap-file", "rewrap-file [--key KEY] IN OUT", "re-encrypt a message's data key only",
     "Re-encrypt the header's data key inside the HSM: to the newest version of\n"
     "its key, or to KEY. The body is copied unchanged. Suite 0x0578 messages\n"
     "cannot be rewrapped (their signature covers the header).",
     OPTS({"--key KEY", "the new key (default: the same key)"}),
     "p11kms rewrap-file chk-42.esdk chk-42.new"},
    {"store accept-restore", "store accept-restore --reason TEXT [--dry-run]",
     "put a restored (older) store back in service",
     "A store older than its anchor in the HSM (a restored backup, or rows put\n"
     "back outside p11kms) is refused at every open. This prints what is given\n"
     "up (the write transactions made after the copy, the kinds of records\n"
     "changed outside p11kms) and re-anchors the store to its records as they\n"
     "are. Only a key administrator of the service key; the reason is audited.",
     OPTS({"--reason TEXT", "why the store goes back (on the audit record)"},
          {"--dry-run", "only print what would be lost"}),
     "p11kms store accept-restore --reason \"restored backup of 2026-11-30, INC-4711\""},
    {"help", "help [--commands | COMMAND [SUBCOMMAND]]", "this help, or a command's",
     "Print the usage, options and an example of a command. --commands lists\n"
     "every command path, one a line. `p11kms COMMAND [SUBCOMMAND] --help` does\n"
     "the same.",
     OPTS({"--commands", "list every command path"}), "p11kms help key create"},
};

/* The sections of the top-level usage: a heading and the first words of its rows. */
static const struct {
    const char *heading;
    const char *words;
} sections[] = {
    {"Token:", "token"},
    {"Store and keys (KEY: key id, alias/NAME or key ARN):", "init key alias store"},
    {"Cryptography (in the HSM):", "encrypt decrypt datakey re-encrypt"},
    {"Compliance (exit 1 when there are findings):", "report"},
    {"Policies (no token needed):", "policy"},
    {"Audit log:", "audit"},
    {"Secrets (Flink FLIP-529; values as k=v, k=@FILE or --from-json FILE|-):", "secret"},
    {"Connections (NAME: [catalog.][db.]name; sensitive options kept in a secret):", "connection"},
    {"Rendering:", "render"},
    {"Access keys for p11kmsd (service administrators only):", "access-key"},
    {"Files (AWS Encryption SDK message format):", "encrypt-file decrypt-file rewrap-file"},
    {"Help:", "help"},
};

static const char usage_head[] = "usage: p11kms [--config FILE] [--as PRINCIPAL] [--json] COMMAND [ARGS...]\n";

static const char usage_tail[] =
    "\n"
    "Global options:\n"
    "  --config FILE    configuration (default: $P11KMS_CONFIG, ./p11kms.conf,\n"
    "                   /etc/p11kms/p11kms.conf)\n"
    "  --as PRINCIPAL   the caller's principal ARN (default: $P11KMS_PRINCIPAL)\n"
    "  --json           machine-readable output\n"
    "  --help, --version\n"
    "\n"
    "`p11kms help COMMAND [SUBCOMMAND]` or `p11kms COMMAND [SUBCOMMAND] --help`\n"
    "shows a command's options and an example; man p11kms has them all.\n"
    "\n"
    "The PIN is read from the file or environment variable named by `pin` in\n"
    "p11kms.conf; p11kms never takes a PIN on the command line. With `connect =`\n"
    "in p11kms.conf, p11kms is a client of p11kmsd: no token or PIN here, and\n"
    "the daemon, not --as, names the caller.\n"
    "\n"
    "Exit codes:\n"
    "  0  success\n"
    "  1  operation failed (HSM error, invalid ciphertext, key disabled, ...)\n"
    "  2  usage error or invalid input\n"
    "  3  configuration or token error (module, token URI, PIN, mechanisms)\n"
    "  4  access denied by key policy\n"
    "  5  not found\n";

/* Length of the first word of s. */
static size_t word_len(const char *s)
{
    return strcspn(s, " ");
}

/* Is the first word of path one of the space-separated words? */
static bool first_word_in(const char *path, const char *words)
{
    size_t n = word_len(path);
    for (const char *w = words; *w != '\0'; w += word_len(w) + (w[word_len(w)] == ' ')) {
        if (word_len(w) == n && strncmp(w, path, n) == 0) return true;
    }
    return false;
}

/* Print text word by word, breaking before WIDTH; continuation lines start at column indent. */
static void print_wrapped(const char *text, size_t col, size_t indent)
{
    const char *p = text;
    while (*p != '\0') {
        size_t n = word_len(p);
        if (col > indent && col + 1 + n > WIDTH) {
            printf("\n%*s", (int)indent, "");
            col = indent;
        } else if (p != text) {
            putchar(' ');
            col++;
        }
        printf("%.*s", (int)n, p);
        col += n;
        p += n;
        while (*p == ' ') p++;
    }
    putchar('\n');
}

/* "  SYNOPSIS   summary", or the summary on its own line when the synopsis is long. */
static void print_listing(const pk_help_entry *e)
{
    size_t len = strlen(e->synopsis);
    if (2 + len < SUMMARY_COL - 1) {
        printf("  %-*s%s\n", SUMMARY_COL - 2, e->synopsis, e->summary);
        return;
    }
    fputs("  ", stdout);
    print_wrapped(e->synopsis, 2, 2 + strlen(e->path) + 1);
    printf("%*s%s\n", SUMMARY_COL, "", e->summary);
}

int pk_help_usage(void)
{
    fputs(usage_head, stdout);
    for (size_t s = 0; s < PK_ARRAY_LEN(sections); s++) {
        printf("\n%s\n", sections[s].heading);
        for (size_t i = 0; i < PK_ARRAY_LEN(table); i++)
            if (first_word_in(table[i].path, sections[s].words)) print_listing(&table[i]);
    }
    fputs(usage_tail, stdout);
    return PK_EXIT_OK;
}

static void print_indented(const char *text)
{
    for (const char *p = text; *p != '\0';) {
        size_t n = strcspn(p, "\n");
        printf("  %.*s\n", (int)n, p);
        p += n + (p[n] == '\n');
    }
}

static int print_entry(const pk_help_entry *e)
{
    fputs("usage: p11kms ", stdout);
    print_wrapped(e->synopsis, 14, 14 + strlen(e->path) + 1);
    printf("\n");
    print_indented(e->description);
    if (e->opts != NULL) {
        printf("\nOptions:\n");
        for (const pk_help_opt *o = e->opts; o->flag != NULL; o++) {
            if (strlen(o->flag) + 2 < 28)
                printf("  %-26s%s\n", o->flag, o->text);
            else
                printf("  %s\n%28s%s\n", o->flag, "", o->text);
        }
    }
    printf("\nGlobal options: --config FILE, --as PRINCIPAL, --json (see p11kms --help)\n");
    printf("\nExample:\n  %s\n", e->example);
    return PK_EXIT_OK;
}

static const pk_help_entry *find(const char *path)
{
    for (size_t i = 0; i < PK_ARRAY_LEN(table); i++)
        if (strcmp(table[i].path, path) == 0) return &table[i];
    return NULL;
}

/* Does some row's path start with "word "? */
static bool is_group(const char *word)
{
    size_t n = strlen(word);
    for (size_t i = 0; i < PK_ARRAY_LEN(table); i++)
        if (strncmp(table[i].path, word, n) == 0 && table[i].path[n] == ' ') return true;
    return false;
}

static int print_group(const char *word)
{
    size_t n = strlen(word);
    printf("usage: p11kms %s SUBCOMMAND [ARGS...]\n\n", word);
    for (size_t i = 0; i < PK_ARRAY_LEN(table); i++)
        if (strncmp(table[i].path, word, n) == 0 && table[i].path[n] == ' ') print_listing(&table[i]);
    printf("\n`p11kms help %s SUBCOMMAND` shows a subcommand's options and an example.\n", word);
    return PK_EXIT_OK;
}

/* Help for the words cmd [sub]; sub NULL for the command itself. */
static int help_words(const char *cmd, const char *sub)
{
    char path[128];
    const pk_help_entry *e;

    if (sub == NULL) {
        if (is_group(cmd)) return print_group(cmd);
        e = find(cmd);
        return e != NULL ? print_entry(e) : pk_cli_usage("unknown command '%.60s'", cmd);
    }
    snprintf(path, sizeof(path), "%.60s %.60s", cmd, sub);
    e = is_group(cmd) ? find(path) : NULL;
    return e != NULL ? print_entry(e) : pk_cli_usage("unknown command '%s'", path);
}

int pk_help_cmd(int argc, char **argv)
{
    if (argc < 2) return pk_help_usage();
    if (strcmp(argv[1], "--commands") == 0 && argc == 2) {
        for (size_t i = 0; i < PK_ARRAY_LEN(table); i++) printf("%s\n", table[i].path);
        return PK_EXIT_OK;
    }
    if (argv[1][0] == '-') return pk_cli_usage("help: unexpected '%s'", argv[1]);
    if (argc > 3) return pk_cli_usage("help: unexpected '%s'", argv[3]);
    return help_words(argv[1], argc == 3 ? argv[2] : NULL);
}

bool pk_help_requested(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) return true;
    return false;
}

int pk_help_for(int argc, char **argv)
{
    /* The subcommand is the word after a group's name; options there mean the group itself. */
    if (is_group(argv[0]) && argc > 1 && argv[1][0] != '-') return help_words(argv[0], argv[1]);
    return help_words(argv[0], NULL);
}
