#!/bin/bash
# CLI scenarios for key policies (issue 4): separation of duties between the
# key administrator and the application operator, the lockout check,
# conditions on the encryption context, explicit deny, and deny messages
# that never reveal context values.
. "${P11KMS_TOP_SRCDIR:-.}/tests/cli/lib.sh"

T=$WORK/tok
new_token "$T" p11kms
export P11KMS_CONFIG=$T/p11kms.conf
ADM=arn:aws:iam::111122223333:role/key-admin
OPR=arn:aws:iam::111122223333:role/flink-operator
OTHER=arn:aws:iam::444455556666:role/stranger
as() { who=$1; shift; run "$P11KMS" --as "$who" "$@"; }
as_in() { who=$1; text=$2; shift 2; printf '%s' "$text" >"$WORK/.in"; run_in "$WORK/.in" "$P11KMS" --as "$who" "$@"; }
deny_msg() { echo "p11kms: $1 is not authorized to perform $2 on key $3 (${4:-ImplicitlyDenied})"; }

as "$ADM" init --operator '*' >/dev/null
as "$ADM" key create --admin "$ADM" --operator "$OPR" --alias alias/state
K=$(cat "$OUT")
as_in "$OPR" "state-bytes" encrypt --key "$K" --context tenant=t-1
printf '%s\n' "$(cat "$OUT")" >"$WORK/blob"

# The key administrator manages but cannot use the key.
as_in "$ADM" x encrypt --key "$K"
expect_rc 4 "admin encrypt"; expect_err "$(deny_msg "$ADM" kms:Encrypt "$K")" "admin encrypt"
run_in "$WORK/blob" "$P11KMS" --as "$ADM" decrypt --context tenant=t-1
expect_rc 4 "admin decrypt"; expect_err "$(deny_msg "$ADM" kms:Decrypt "$K")" "admin decrypt"
as "$ADM" datakey --key "$K"
expect_rc 4 "admin datakey"; expect_err "$(deny_msg "$ADM" kms:GenerateDataKey "$K")" "admin datakey"
as "$ADM" key rotate "$K"
expect_rc 0 "admin rotates"
as "$ADM" key describe "$K"
expect_rc 0 "admin describes"

# The application operator uses but cannot manage the key.
for cmd in "key disable:kms:DisableKey" "key rotate:kms:RotateKeyOnDemand" \
           "key schedule-deletion:kms:ScheduleKeyDeletion" "key get-policy:kms:GetKeyPolicy"; do
    sub=${cmd%%:kms:*}; action=kms:${cmd#*:kms:}
    # shellcheck disable=SC2086
    as "$OPR" $sub "$K"
    expect_rc 4 "operator $sub"; expect_err "$(deny_msg "$OPR" "$action" "$K")" "operator $sub"
done
as "$ADM" key get-policy "$K"; cp "$OUT" "$WORK/policy.json"
as "$OPR" key put-policy "$K" "$WORK/policy.json"
expect_rc 4 "operator put-policy"; expect_err "$(deny_msg "$OPR" kms:PutKeyPolicy "$K")" "operator put-policy"
as "$OPR" alias create alias/mine "$K"
expect_rc 4 "operator alias"; expect_err "$(deny_msg "$OPR" kms:CreateAlias "$K")" "operator alias"
run_in "$WORK/blob" "$P11KMS" --as "$OPR" decrypt --context tenant=t-1
expect_rc 0 "operator decrypts"; expect_out "state-bytes" "operator decrypts"

# A principal the policy does not name gets nothing; the alias is named in the request.
as_in "$OTHER" x encrypt --key alias/state
expect_rc 4 "stranger"; expect_err "$(deny_msg "$OTHER" kms:Encrypt "$K")" "stranger"

# The lockout check refuses a policy under which the caller could not change it again.
cat >"$WORK/locking.json" <<JSON
{"Version": "2012-10-17", "Statement": [
  {"Sid": "UseOnly", "Effect": "Allow", "Principal": {"AWS": "$OPR"},
   "Action": ["kms:Encrypt", "kms:Decrypt"], "Resource": "*"}]}
JSON
as "$ADM" key put-policy "$K" "$WORK/locking.json"
expect_rc 2 "lockout check"
expect_err "p11kms: the new policy would lock $ADM out of kms:PutKeyPolicy on key $K; fix the policy or pass --bypass-lockout-check" "lockout check"
as "$ADM" key create --policy "$WORK/locking.json"
expect_rc 2 "lockout check at create"
expect_err "p11kms: the policy does not allow $ADM to call kms:PutKeyPolicy, so nobody could change it; fix the policy or pass --bypass-lockout-check" "lockout at create"
printf '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "kms:Encrypt", "Resource": "*", "Condition": {"StringEqual": {"a": "b"}}}]}' >"$WORK/bad.json"
as "$ADM" key put-policy "$K" "$WORK/bad.json"
expect_rc 2 "malformed policy"; expect_err "p11kms: Statement[0].Condition.StringEqual: unknown operator" "malformed policy path"

# What policy lint calls an error is refused; --bypass-lint applies it anyway; warnings never block.
cat >"$WORK/typo.json" <<JSON
{"Version": "2012-10-17", "Statement": [
  {"Sid": "Admin", "Effect": "Allow", "Principal": {"AWS": "$ADM"},
   "Action": ["kms:PutKeyPolicy", "kms:GetKeyPolicy", "kms:DescribeKey"], "Resource": "*"},
  {"Sid": "Use", "Effect": "Allow", "Principal": {"AWS": "$OPR"}, "Action": ["kms:Encrypt", "kms:Decrpyt"], "Resource": "*"}]}
JSON
as "$ADM" key put-policy "$K" "$WORK/typo.json"
expect_rc 2 "put-policy with an unknown action"
expect_err "p11kms: policy lint: Statement[1] (Sid \"Use\"): unknown action \"kms:Decrpyt\"; fix the policy or pass --bypass-lint" "lint error refused"
as "$ADM" key create --policy "$WORK/typo.json"
expect_rc 2 "create with an unknown action"; expect_err_has "unknown action \"kms:Decrpyt\"" "lint error refused at create"
as "$ADM" key get-policy "$K"
expect_out_lacks "Decrpyt" "the refused policy was not applied"
as "$ADM" key put-policy "$K" "$WORK/typo.json" --bypass-lint
expect_rc 0 "--bypass-lint"
expect_err "p11kms: warning: UnknownAction: Statement[1] (Sid \"Use\"): unknown action \"kms:Decrpyt\"" "bypassed finding shown"
if [ "$(grep -c '"action":"kms:PutKeyPolicy".*"result":"ok".*"bypassed":"lint"' "$T/audit.log")" -eq 1 ]; then ok; else
    bad "the audit trail records the lint bypass once"; fi
sed 's/kms:Decrpyt/kms:Decrypt/; s/"Principal": {"AWS": "$OPR"}/"Principal": "*"/' "$WORK/typo.json" >"$WORK/open.json"
sed -i "s|\"Principal\": {\"AWS\": \"$OPR\"}|\"Principal\": \"*\"|" "$WORK/open.json"
as "$ADM" key put-policy "$K" "$WORK/open.json"
expect_rc 0 "a warning does not block"
expect_err "p11kms: warning: WildcardPrincipal: Statement[1] (Sid \"Use\"): Allow with Principal \"*\" grants access to every principal
p11kms: warning: SeparationOfDuties: principal $ADM is granted both key administration (kms:PutKeyPolicy) and cryptographic use (kms:Encrypt, kms:Decrypt)" "warnings printed"

# Conditions on the encryption context, and an explicit deny that wins.
cat >"$WORK/tenant.json" <<JSON
{"Version": "2012-10-17", "Statement": [
  {"Sid": "Admin", "Effect": "Allow", "Principal": {"AWS": "$ADM"},
   "Action": ["kms:PutKeyPolicy", "kms:GetKeyPolicy", "kms:DescribeKey", "kms:EnableKey", "kms:DisableKey"], "Resource": "*"},
  {"Sid": "TenantOne", "Effect": "Allow", "Principal": {"AWS": "$OPR"},
   "Action": ["kms:Encrypt", "kms:Decrypt"], "Resource": "*",
   "Condition": {"StringEquals": {"kms:EncryptionContext:tenant": "t-1"}}},
  {"Sid": "NoLegacy", "Effect": "Deny", "Principal": "*", "Action": "kms:*", "Resource": "*",
   "Condition": {"StringLike": {"kms:EncryptionContext:app": "legacy-*"}}}]}
JSON
as "$ADM" key put-policy "$K" "$WORK/tenant.json"
expect_rc 0 "put-policy"
as_in "$OPR" x encrypt --key "$K" --context tenant=t-1
expect_rc 0 "tenant t-1 allowed"
as_in "$OPR" x encrypt --key "$K" --context tenant=t-2-confidential-name
expect_rc 4 "tenant t-2 denied"; expect_err "$(deny_msg "$OPR" kms:Encrypt "$K")" "tenant t-2 denied"
if grep -q "t-2-confidential-name" "$ERR"; then bad "deny message leaks a context value"; else ok; fi
as_in "$OPR" x encrypt --key "$K" --context tenant=t-1 --context app=legacy-billing
expect_rc 4 "explicit deny"; expect_err "$(deny_msg "$OPR" kms:Encrypt "$K" "ExplicitlyDenied by NoLegacy")" "explicit deny"
as "$ADM" key get-policy "$K"
expect_rc 0 "get-policy"; expect_out_has '"Sid": "TenantOne"' "policy stored as given"

# --bypass-lockout-check does what it says.
as "$ADM" key create --admin "$ADM" --operator "$OPR"
K2=$(cat "$OUT")
as "$ADM" key put-policy "$K2" "$WORK/locking.json" --bypass-lockout-check
expect_rc 0 "bypass lockout"
as "$ADM" key describe "$K2"
expect_rc 4 "locked out after bypass"

# The what-if tool agrees with enforcement (no token needed).
run "$P11KMS" policy eval --policy "$WORK/tenant.json" --principal "$OPR" --action kms:Encrypt \
    --resource "arn:aws:kms:local:000000000000:key/$K" --context tenant=t-1 --json
expect_rc 0 "policy eval"; expect_out '{"decision":"Allowed","matched":["TenantOne"]}' "policy eval allowed"
run "$P11KMS" policy lint "$WORK/tenant.json"
expect_rc 0 "lint: a Deny to * is not a finding"; expect_out "no findings" "lint clean"
sed 's/"kms:PutKeyPolicy", /"kms:PutKeyPolicy", "kms:Decrypt", /' "$WORK/tenant.json" >"$WORK/sod.json"
run "$P11KMS" policy lint "$WORK/sod.json"
expect_rc 1 "lint: admin with Decrypt"; expect_out_has "SeparationOfDuties" "lint names the finding"
expect_out_has "$ADM" "lint names the principal"
# Both refusals are on record as denied, with the deciding outcome.
grep -F "\"principal\":\"$ADM\",\"action\":\"kms:Encrypt\"" "$T/audit.log" | grep -q '"decision":"ImplicitlyDenied"' && ok || bad "admin encrypt audited as denied"
grep -F "\"principal\":\"$OPR\",\"action\":\"kms:DisableKey\"" "$T/audit.log" | grep -q '"result":"P11KMS_ERR_ACCESS_DENIED"' && ok || bad "operator disable audited as denied"
grep -F '"sids":["NoLegacy"]' "$T/audit.log" | grep -q '"decision":"ExplicitlyDenied"' && ok || bad "explicit deny audited with its Sid"
run "$P11KMS" --as "$ADM" audit verify --allow-unsealed
expect_rc 0 "audit trail verifies"

finish
