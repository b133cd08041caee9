#!/bin/bash
# The compliance scripts (issue 6) each find a seeded problem, and report
# nothing on a clean store: key-report (an extractable object made with
# pkcs11-tool under a p11kms label; a key past its rotation period),
# policy-report (an administrator granted Decrypt), audit-report (a
# tampered audit line).
. "${P11KMS_TOP_SRCDIR:-.}/tests/cli/lib.sh"

C=$P11KMS_TOP_SRCDIR/scripts/compliance
T=$WORK/tok
new_token "$T" p11kms
export P11KMS_CONFIG=$T/p11kms.conf
ADM=arn:aws:iam::111122223333:role/key-admin
OPR=arn:aws:iam::111122223333:role/flink-operator
"$P11KMS" --as "$ADM" init --admin "$ADM" --operator "$OPR" >/dev/null
K=$("$P11KMS" --as "$ADM" key create --admin "$ADM" --operator "$OPR" --rotation-days 365)
printf 'x' | "$P11KMS" --as "$OPR" encrypt --key "$K" >/dev/null

# Clean: nothing to report.
run "$C/key-report"
expect_rc 0 "key-report clean"; expect_out_has "key report for token 'p11kms': 2 keys, 0 unknown token objects, 0 findings" "key-report clean"
expect_out_has "token objects 1/1 sensitive+never-extractable" "key-report shows live attributes"
run "$C/policy-report"
expect_rc 0 "policy-report clean"; expect_out_has "policy report: 2 keys, 0 findings" "policy-report clean"
run "$C/audit-report"
expect_rc 0 "audit-report clean"
run "$C/key-report" --json
expect_rc 0 "key-report --json"; expect_out_has '"CKA_NEVER_EXTRACTABLE":true' "json attributes"; expect_out_has '"findings":[]' "json no findings"

# Refused attempts are denials, not use: they do not make anyone an administrator using keys.
"$P11KMS" --as "$OPR" key disable "$K" 2>/dev/null
printf 'z' | "$P11KMS" --as "$OPR" encrypt --key "$K" >"$WORK/zb"
"$P11KMS" --as "$ADM" decrypt --in "$WORK/zb" >/dev/null 2>&1
run "$C/audit-report"
expect_rc 0 "denied attempts are not findings"
expect_out_has "  $OPR  DisableKey  1" "the refused DisableKey is listed as a denial"

# Seeded: an extractable, non-sensitive key made behind p11kms's back under a p11kms label.
mod=$(sed -n 's/^module = //p' "$T/p11kms.conf")
(sleep 0.3; cat "$T/user.pin"; echo) | script -qec "pkcs11-tool --module $mod --token-label p11kms --login \
    --keygen --key-type AES:32 --label p11kms:cmk:rogue --id 72616f677565 --extractable" /dev/null >"$WORK/rogue.out" 2>&1
grep -q "Key generated" "$WORK/rogue.out" && ok || bad "pkcs11-tool made the rogue key: $(cat "$WORK/rogue.out")"
run "$C/key-report"
expect_rc 1 "key-report finds the rogue object"
expect_out_has "FINDING UnknownTokenObject" "unknown object finding"
expect_out_has "token object 'p11kms:cmk:rogue' (CKA_ID 72616f677565) carries a p11kms label but the store does not know it" "names the object"
run "$C/key-report" --json
expect_out_has '"Label":"p11kms:cmk:rogue","Id":"72616f677565","CKA_SENSITIVE":false,"CKA_EXTRACTABLE":true' "rogue attributes read from the token"

# Seeded: a key created 400 days ago with a 365-day period, never rotated.
# (faketime's LD_PRELOAD cannot load into an ASan build; there it is skipped, said aloud.)
if faketime -f '-400d' "$P11KMS" --version >/dev/null 2>&1; then
    K2=$(faketime -f '-400d' "$P11KMS" --as "$ADM" key create --admin "$ADM" --operator "$OPR" --rotation-days 365)
    run "$C/key-report"
    expect_rc 1 "key-report finds the overdue key"
    expect_out_has "FINDING RotationOverdue" "overdue finding"
    expect_out_has "key $K2 was last rotated 400 days ago; its rotation period is 365 days" "overdue message"
    "$P11KMS" --as "$ADM" key purge >/dev/null
    run "$C/key-report" --json
    if grep -q "\"key\":\"$K2\"" "$OUT"; then bad "purge rotated the overdue key"; else ok; fi
else
    echo "SKIP: overdue rotation (faketime cannot run this build)"
fi

# Seeded: a policy granting the administrator Decrypt.
"$P11KMS" --as "$ADM" key get-policy "$K" | sed 's/"kms:PutKeyPolicy",/"kms:PutKeyPolicy", "kms:Decrypt",/' >"$WORK/sod.json"
"$P11KMS" --as "$ADM" key put-policy "$K" "$WORK/sod.json" >/dev/null
run "$C/policy-report"
expect_rc 1 "policy-report finds SoD"
expect_out_has "FINDING SeparationOfDuties" "SoD finding"
expect_out_has "$ADM" "names the principal"
expect_out_has "  $K: " "names the key"
run "$C/policy-report" --json
expect_out_has "\"KeyId\":\"$K\",\"ServiceKey\":false,\"findings\":[{\"kind\":\"SeparationOfDuties\"" "json SoD"

# --state: the trail is remembered between runs, and cutting it back to a
# seal boundary (which verifies) is a finding.
S=$WORK/state/audit.state
mkdir -p "$WORK/state"
run "$C/audit-report" --state "$S"
expect_rc 0 "first run with --state"; expect_out_has "state: no earlier run; now seq " "first run says so"
[ "$(stat -c %a "$S")" = 600 ] && ok || bad "state file is mode 0600"
seq1=$(cut -d' ' -f2 "$S")
grep -qE '^p11kms-audit-state-v1 [0-9]+ [0-9a-f]{64}$' "$S" && ok || bad "state file format: $(cat "$S")"
[ "$(cut -d' ' -f3 "$S")" = "$(tail -n 1 "$T/audit.log" | tr -d '\n' | sha256sum | cut -d' ' -f1)" ] && ok || bad "state head is the hash of the last line"
cp "$T/audit.log" "$WORK/audit.before"
printf 'w' | "$P11KMS" --as "$OPR" encrypt --key "$K" >/dev/null
run "$C/audit-report" --state "$S"
expect_rc 0 "a grown trail is no finding"; expect_out_has "state: last run ended at seq $seq1; now seq " "growth shown"
seq2=$(cut -d' ' -f2 "$S")
[ "$seq2" -gt "$seq1" ] && ok || bad "state advanced ($seq1 -> $seq2)"
ls "$WORK/state" | grep -v '^audit.state$' && bad "temporary state files left behind" || ok
# Cut back to the earlier close seal: the files alone still verify.
cat "$WORK/audit.before" >"$T/audit.log"
run "$C/audit-report" --state "$S"
expect_rc 1 "cut-back trail is a finding"
expect_out_has "FINDING: audit trail cut back: it ends at seq $seq1, but the last run (state $S) saw it reach seq $seq2" "cut-back finding"
expect_out_has "verification: ok" "the cut trail itself verifies"
run "$C/audit-report" --state "$S" --json
expect_rc 1 "the finding stays until someone looks"; expect_out_has "\"findings\":[\"audit trail cut back: " "json cut-back finding"
[ "$(cut -d' ' -f2 "$S")" = "$seq2" ] && ok || bad "the state keeps the remembered seq after a cut-back"
# The same seq with another hash: rewritten.
printf 'p11kms-audit-state-v1 %s %s\n' "$seq1" "$(printf '%064d' 0)" >"$S"
run "$C/audit-report" --state "$S"
expect_rc 1 "rewritten line is a finding"
expect_out_has "FINDING: audit trail cut back or rewritten: the line at seq $seq1 no longer has the hash the last run (state $S) saw" "rewritten finding"
printf 'garbage\n' >"$S"
run "$C/audit-report" --state "$S"
expect_rc 2 "bad state file"; expect_err "audit-report: $S is not an audit-report state file (expected 'p11kms-audit-state-v1 SEQ HEAD')" "bad state message"
run "$C/audit-report" --state
expect_rc 2 "--state needs a file"

# Seeded: a tampered audit line.
printf 'y' | "$P11KMS" --as "$OPR" encrypt --key "$K" --context app=one >/dev/null
sed -i '0,/"context":{"app":"one"}/s//"context":{"app":"two"}/' "$T/audit.log"
run "$C/audit-report"
expect_rc 1 "audit-report finds tampering"
expect_out_has "modified" "audit-report names the tampering"

# Usage and missing tool.
run "$C/key-report" --bogus
expect_rc 2 "key-report usage"
run env P11KMS_BIN=/nonexistent "$C/policy-report"
expect_rc 3 "policy-report without p11kms"
# --help prints the header comment and nothing of the script below it.
for s in key-report policy-report audit-report; do
    run "$C/$s" --help
    expect_rc 0 "$s --help"; expect_out_has "$s: a compliance" "$s --help names itself"
    expect_out_lacks "set -u" "$s --help stops at the code"
done
finish
