#!/bin/bash
# CLI scenarios for SigV4 access keys (issue 12): only the service
# administrators manage them, the secret is printed once and rests nowhere
# outside the HSM (not in the store, the audit log or a listing), two per
# principal, and every refusal is one line with the documented exit code.
. "${P11KMS_TOP_SRCDIR:-.}/tests/cli/lib.sh"

T=$WORK/tok
new_token "$T" p11kms
export P11KMS_CONFIG=$T/p11kms.conf
ADM=arn:aws:iam::111122223333:role/key-admin
OPR=arn:aws:iam::111122223333:role/flink-operator
as() { who=$1; shift; run "$P11KMS" --as "$who" "$@"; }

as "$ADM" init --operator "$OPR" >/dev/null
SK=$(sed -n 's/.*"KeyId":"\([^"]*\)".*/\1/p' <<<"$("$P11KMS" --as "$ADM" --json key describe alias/p11kms/default)")

# An operator cannot create, list or change access keys.
as "$OPR" access-key create --principal "$OPR"
expect_rc 4 "operator create"
expect_err "p11kms: $OPR is not authorized to perform kms:PutKeyPolicy on key $SK (ImplicitlyDenied)" "operator create"
expect_out "" "operator create: no stdout"
as "$OPR" access-key list
expect_rc 4 "operator list"

# The administrator creates one: id and secret once, on stdout.
as "$ADM" access-key create --principal "$OPR"
expect_rc 0 "admin create"
expect_err "p11kms: store the secret access key now: it is shown only once" "admin create: the reminder"
AKID=$(sed -n 's/^AccessKeyId: //p' "$OUT")
SECRET=$(sed -n 's/^SecretAccessKey: //p' "$OUT")
if [[ $AKID =~ ^AKIA[A-Z2-7]{16}$ ]]; then ok; else bad "access key id '$AKID' is not AKIA + 16"; fi
if [[ $SECRET =~ ^[A-Za-z0-9+/]{40}$ ]]; then ok; else bad "secret is not 40 base64 characters"; fi

# --json: the same fields.
as "$ADM" --json access-key create --principal "$OPR"
expect_rc 0 "admin create --json"
expect_out_has "\"Principal\":\"$OPR\"" "create --json: principal"
AKID2=$(sed -n 's/.*"AccessKeyId":"\([^"]*\)".*/\1/p' "$OUT")
SECRET2=$(sed -n 's/.*"SecretAccessKey":"\([^"]*\)".*/\1/p' "$OUT")
if [ ${#SECRET2} -eq 40 ]; then ok; else bad "create --json: no 40-character secret"; fi

# Two per principal.
as "$ADM" access-key create --principal "$OPR"
expect_rc 1 "third key"
expect_err "p11kms: $OPR already has 2 access keys; delete one before creating another" "third key"

# list shows ids and status, never secrets.
as "$ADM" access-key list --principal "$OPR"
expect_rc 0 "list"
expect_out_has "$AKID  Active" "list: first key"
expect_out_has "$AKID2  Active" "list: second key"
expect_out_lacks "$SECRET" "list: no secret"

as "$ADM" access-key disable "$AKID"
expect_rc 0 "disable"; expect_out "access key $AKID disabled" "disable"
as "$ADM" --json access-key list
expect_out_has "{\"AccessKeyId\":\"$AKID\",\"Principal\":\"$OPR\",\"Status\":\"Inactive\"" "list --json: inactive"
as "$ADM" access-key enable "$AKID"
expect_rc 0 "enable"; expect_out "access key $AKID enabled" "enable"
as "$ADM" access-key delete "$AKID2"
expect_rc 0 "delete"; expect_out "access key $AKID2 deleted" "delete"
as "$ADM" access-key delete "$AKID2"
expect_rc 5 "delete again"; expect_err "p11kms: access key $AKID2 not found" "delete again"

# Usage errors.
as "$ADM" access-key create
expect_rc 2 "create without principal"; expect_err "p11kms: usage: access-key create --principal ARN (see p11kms --help)" "create without principal"
as "$ADM" access-key disable
expect_rc 2 "disable without id"; expect_err "p11kms: usage: access-key disable ACCESS_KEY_ID (see p11kms --help)" "disable without id"
as "$ADM" access-key create --principal not-an-arn
expect_rc 2 "bad principal"
expect_err "p11kms: principal must be an IAM-style ARN (arn:aws:iam::ACCOUNT:...), e.g. arn:aws:iam::111122223333:role/flink-operator" "bad principal"
as "$ADM" access-key disable 'akia-lower'
expect_rc 2 "bad id"; expect_err "p11kms: an access key id is 1 to 128 upper-case letters and digits" "bad id"
as "$ADM" access-key rotate x
expect_rc 2 "unknown subcommand"; expect_err "p11kms: usage: unknown access-key command 'rotate' (see p11kms --help)" "unknown subcommand"

# The secrets rest nowhere on disk, and the audit log names every change.
for f in "$T"/p11kms.db* "$T"/audit.log*; do
    if grep -qaF -- "$SECRET" "$f" || grep -qaF -- "$SECRET2" "$f"; then bad "a secret is in $f"; else ok; fi
done
for a in CreateAccessKey DisableAccessKey EnableAccessKey DeleteAccessKey; do
    if grep -qF "\"action\":\"p11kms:$a\"" "$T/audit.log"; then ok; else bad "audit log lacks p11kms:$a"; fi
done
run "$P11KMS" audit verify
expect_rc 0 "audit verify"

# An access key's token object is known to the compliance report: no finding.
as "$ADM" report keys
expect_rc 0 "report keys with access keys"; expect_out_lacks "UnknownTokenObject" "report keys: no unknown object"
finish
