#!/bin/bash
# CLI scenario: p11kms policy eval / lint. Asserts exact stdout, stderr and
# exit codes. Needs no token. Run by make check with P11KMS_TOP_SRCDIR and
# P11KMS_TOP_BUILDDIR set.
set -u

top_src=${P11KMS_TOP_SRCDIR:-.}
top_build=${P11KMS_TOP_BUILDDIR:-.}
P11KMS="$top_build/p11kms"
BENCH="$top_src/tests/vectors/policy/bench-10-statements.json"
OP=arn:aws:iam::111122223333:role/flink-operator
ADMIN=arn:aws:iam::111122223333:role/key-admin
KEY=arn:aws:kms:local:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab

unset P11KMS_PRINCIPAL P11KMS_CONFIG

if [ ! -x "$P11KMS" ]; then
    echo "policy.sh: $P11KMS not built" >&2
    exit 99
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/p11kms-policy.XXXXXX") || exit 99
trap 'rm -rf "$work"' EXIT
cd "$work" || exit 99

failures=0
ran=0

# check NAME RC STDOUT STDERR -- COMMAND...
# STDOUT and STDERR are the exact expected contents ("" for empty).
check() {
    local name=$1 want_rc=$2 want_out=$3 want_err=$4
    shift 5
    local rc
    "$@" >out.txt 2>err.txt
    rc=$?
    ran=$((ran + 1))
    local got_out got_err
    got_out=$(cat out.txt)
    got_err=$(cat err.txt)
    if [ "$rc" != "$want_rc" ] || [ "$got_out" != "$want_out" ] || [ "$got_err" != "$want_err" ]; then
        failures=$((failures + 1))
        echo "FAIL: $name"
        echo "  exit:   want $want_rc, got $rc"
        [ "$got_out" != "$want_out" ] && printf '  stdout: want [%s]\n          got  [%s]\n' "$want_out" "$got_out"
        [ "$got_err" != "$want_err" ] && printf '  stderr: want [%s]\n          got  [%s]\n' "$want_err" "$got_err"
    else
        echo "ok: $name"
    fi
}

# ---- eval ----------------------------------------------------------------

check "eval allowed (text)" 0 "Allowed: OperatorCrypto" "" -- \
    "$P11KMS" policy eval --policy "$BENCH" --principal "$OP" --action kms:Encrypt --resource "$KEY" \
    --context app=flink --context tenant=t-42 --request-context aws:SourceIp=10.1.2.3 --time 2024-06-15T12:00:00Z

check "eval allowed (json)" 0 '{"decision":"Allowed","matched":["OperatorCrypto"]}' "" -- \
    "$P11KMS" --json policy eval --policy "$BENCH" --principal "$OP" --action kms:Decrypt --resource "$KEY" \
    --context app=flink --context tenant=t-1 --request-context aws:SourceIp=10.9.9.9

check "eval explicit deny names both deny Sids (json)" 0 \
    '{"decision":"ExplicitlyDenied","matched":["DenyOutsideNetwork","DenyForeignAccounts"]}' "" -- \
    "$P11KMS" --json policy eval --policy "$BENCH" --principal arn:aws:iam::444455556666:role/x \
    --action kms:Decrypt --resource "$KEY" --request-context aws:SourceIp=8.8.8.8

check "eval implicit deny (json)" 0 '{"decision":"ImplicitlyDenied","matched":[]}' "" -- \
    "$P11KMS" --json policy eval --policy "$BENCH" --principal "$ADMIN" --action kms:Decrypt \
    --resource "$KEY" --request-context aws:SourceIp=10.0.0.1

check "eval denied decision still exits 0 (text)" 0 "ExplicitlyDenied: DenyDeletionAfterDeadline" "" -- \
    "$P11KMS" policy eval --policy "$BENCH" --principal "$ADMIN" --action kms:ScheduleKeyDeletion \
    --resource "$KEY" --request-context aws:SourceIp=10.0.0.1 --time 1924992000

check "eval --name=value form" 0 "ImplicitlyDenied" "" -- \
    "$P11KMS" policy eval --policy="$BENCH" --principal="$OP" --action=kms:Encrypt --resource="$KEY" \
    --request-context=aws:SourceIp=10.1.2.3

cat >batch.jsonl <<EOB
{"principal":"$OP","action":"kms:Encrypt","resource":"$KEY","context":{"app":"flink","tenant":"t-7"},"request_context":{"aws:SourceIp":["10.0.0.5"]}}

{"principal":"$OP","action":"kms:Encrypt","resource":"$KEY","context":{"app":"flink","tenant":"t-7"},"request_context":{"aws:SourceIp":"192.0.2.1"}}
{"principal":"$ADMIN","action":"kms:ScheduleKeyDeletion","request_context":{"aws:SourceIp":"10.0.0.1"},"time":"2031-01-01T00:00:00Z"}
EOB
check "eval --batch (json lines)" 0 '{"decision":"Allowed","matched":["OperatorCrypto"]}
{"decision":"ExplicitlyDenied","matched":["DenyOutsideNetwork"]}
{"decision":"ExplicitlyDenied","matched":["DenyDeletionAfterDeadline"]}' "" -- \
    "$P11KMS" --json policy eval --policy "$BENCH" --batch batch.jsonl

check "eval --batch (text)" 0 'Allowed: OperatorCrypto
ExplicitlyDenied: DenyOutsideNetwork
ExplicitlyDenied: DenyDeletionAfterDeadline' "" -- \
    "$P11KMS" policy eval --policy "$BENCH" --batch batch.jsonl

printf '{"principal":"%s","action":"kms:Encrypt","resource":"%s"}\n{"principal":"%s","acton":"kms:Encrypt"}\n' \
    "$OP" "$KEY" "$OP" >badbatch.jsonl
check "eval --batch stops at a malformed line" 2 "ExplicitlyDenied: DenyOutsideNetwork" \
    "p11kms: badbatch.jsonl:2: acton: unknown request field" -- \
    "$P11KMS" policy eval --policy "$BENCH" --batch badbatch.jsonl

check "eval without --action" 2 "" \
    "p11kms: usage: policy eval needs --principal and --action (or --batch FILE) (see p11kms --help)" -- \
    "$P11KMS" policy eval --policy "$BENCH" --principal "$OP"

check "eval bad --context" 2 "" "p11kms: usage: --context needs KEY=VALUE (see p11kms --help)" -- \
    "$P11KMS" policy eval --policy "$BENCH" --principal "$OP" --action kms:Encrypt --context app

check "eval bad --time" 2 "" "p11kms: usage: --time: 'tomorrow' is not an ISO 8601 date or epoch seconds (see p11kms --help)" -- \
    "$P11KMS" policy eval --policy "$BENCH" --principal "$OP" --action kms:Encrypt --time tomorrow

check "eval derived key in --request-context" 2 "" \
    "p11kms: policy request: kms:CallerAccount is derived from the request and cannot be given" -- \
    "$P11KMS" policy eval --policy "$BENCH" --principal "$OP" --action kms:Encrypt \
    --request-context kms:CallerAccount=111122223333

# ---- malformed policies ------------------------------------------------------

printf '{"Version":"2012-10-17","Statement":[\n' >bad-op.json
for i in 0 1; do
    printf '{"Effect":"Allow","Principal":"*","Action":"kms:DescribeKey","Resource":"*"},\n' >>bad-op.json
done
printf '{"Effect":"Allow","Principal":"*","Action":"kms:Encrypt","Resource":"*","Condition":{"StringEqual":{"kms:CallerAccount":"111122223333"}}}]}\n' >>bad-op.json
check "eval refuses an unknown operator, naming its path" 2 "" \
    "p11kms: bad-op.json: Statement[2].Condition.StringEqual: unknown operator" -- \
    "$P11KMS" policy eval --policy bad-op.json --principal "$OP" --action kms:Encrypt

printf '{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":"*","Action":"kms:Encrypt","Resource":"*","Extra":1}}' >bad-key.json
check "lint refuses an unknown statement key (exit 2)" 2 "" \
    "p11kms: bad-key.json: Statement.Extra: unknown key" -- \
    "$P11KMS" policy lint bad-key.json

printf '{"Version":"2012-10-17",' >truncated.json
check "lint refuses broken JSON (exit 2)" 2 "" \
    "p11kms: truncated.json: invalid JSON at line 1 column 24: string or '}' expected near end of file" -- \
    "$P11KMS" policy lint truncated.json

# ---- lint -----------------------------------------------------------------

check "lint clean policy" 0 "no findings" "" -- "$P11KMS" policy lint "$BENCH"
check "lint clean policy (json)" 0 "[]" "" -- "$P11KMS" --json policy lint "$BENCH"

cat >open.json <<'EOP'
{
  "Version": "2012-10-17",
  "Statement": [
    {"Sid": "Open", "Effect": "Allow", "Principal": "*", "Action": "kms:*", "Resource": "*"},
    {"Sid": "Typo", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:role/app"},
     "Action": "kms:Encrypto", "Resource": "*"}
  ]
}
EOP
check "lint findings exit 1" 1 'WildcardPrincipal: Statement[0] (Sid "Open"): Allow with Principal "*" grants access to every principal
WildcardAction: Statement[0] (Sid "Open"): Allow covers every kms action (kms:*); list the actions the principals need
UnknownAction: Statement[1] (Sid "Typo"): unknown action "kms:Encrypto"
SeparationOfDuties: principal arn:aws:iam::111122223333:role/app is granted both key administration (kms:EnableKey, kms:DisableKey, kms:ScheduleKeyDeletion, kms:CancelKeyDeletion, ...) and cryptographic use (kms:Encrypt, kms:Decrypt, kms:GenerateDataKey, kms:GenerateDataKeyWithoutPlaintext, ...)
SeparationOfDuties: principal "*" (every principal) is granted both key administration (kms:EnableKey, kms:DisableKey, kms:ScheduleKeyDeletion, kms:CancelKeyDeletion, ...) and cryptographic use (kms:Encrypt, kms:Decrypt, kms:GenerateDataKey, kms:GenerateDataKeyWithoutPlaintext, ...)' "" -- \
    "$P11KMS" policy lint open.json

cat >noadmin.json <<'EOP'
{"Version": "2012-10-17", "Statement": {"Sid": "Use", "Effect": "Allow",
 "Principal": {"AWS": "arn:aws:iam::111122223333:role/app"}, "Action": "kms:Decrypt", "Resource": "*"}}
EOP
check "lint lockout finding (json)" 1 \
    '[{"kind":"NoKeyAdministrator","statement":null,"sid":null,"message":"no principal is allowed kms:PutKeyPolicy: nobody could change this policy (key lockout)"}]' "" -- \
    "$P11KMS" --json policy lint noadmin.json

cat >forall.json <<'EOP'
{"Version": "2012-10-17", "Statement": [
 {"Sid": "Admin", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:role/admin"},
  "Action": "kms:PutKeyPolicy", "Resource": "*"},
 {"Sid": "Use", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:role/app"},
  "Action": "kms:Decrypt", "Resource": "*",
  "Condition": {"ForAllValues:StringEquals": {"kms:EncryptionContext:app": "orders"}}}]}
EOP
check "lint ForAllValues on a single-valued key (json)" 1 \
    '[{"kind":"OverlyPermissiveCondition","statement":1,"sid":"Use","message":"Statement[1] (Sid \"Use\"): ForAllValues:StringEquals on single-valued key kms:EncryptionContext:app also matches when the key is absent; use the operator without ForAllValues:"}]' "" -- \
    "$P11KMS" --json policy lint forall.json

check "global --json after the subcommand" 0 "[]" "" -- "$P11KMS" policy lint --json "$BENCH"

check "lint without a file" 2 "" "p11kms: usage: policy lint FILE (see p11kms --help)" -- "$P11KMS" policy lint
check "unknown policy subcommand" 2 "" "p11kms: usage: policy: unknown subcommand 'show' (eval, lint) (see p11kms --help)" -- \
    "$P11KMS" policy show

echo "$((ran - failures)) passed, $failures failed"
[ "$failures" -eq 0 ]
