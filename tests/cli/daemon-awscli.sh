#!/bin/bash
# The AWS CLI against p11kmsd over HTTPS with SigV4 access keys (issue 12,
# items 1 and 4): Debian's awscli with --endpoint-url and --ca-bundle, each
# answer checked field by field; tampered, unknown, disabled and stale
# signatures; the administrator's key cannot Decrypt, the operator's cannot
# DisableKey or PutKeyPolicy. Skips loudly until `p11kms access-key` exists.
. "${P11KMS_TOP_SRCDIR:-.}/tests/cli/lib.sh"
. "$P11KMS_TOP_SRCDIR/tests/lib/daemon.sh"
. "$P11KMS_TOP_SRCDIR/tests/lib/tls.sh"
need_access_keys
# Debian's awscli, not whatever else is called aws on PATH (a pyenv shim, a v1 from pip).
AWS=/usr/bin/aws
[ -x "$AWS" ] || { echo "SKIP: $0 needs Debian's awscli package (scripts/install-deps.sh)"; exit 77; }

https_token
https_listeners
access_key "$ADM"; ADM_AKID=$AKID; ADM_SECRET=$SECRET
access_key "$OPR"; OPR_AKID=$AKID; OPR_SECRET=$SECRET
start_daemon "$C"
URL=https://127.0.0.1:$PORT
export HOME=$WORK AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_EC2_METADATA_DISABLED=true \
    AWS_PAGER="" AWS_DEFAULT_REGION=$REGION
# A refused call: the CLI exits non-zero (254 or 255 by version) and names the error on stderr.
expect_aws_fail() { if [ "$RC" -ne 0 ]; then ok; else bad "$1: exit 0, want a failure"; fi; }
# awsk ADMIN|OPERATOR kms-subcommand args...
awsk() {
    who=$1; shift
    if [ "$who" = admin ]; then id=$ADM_AKID key=$ADM_SECRET; else id=$OPR_AKID key=$OPR_SECRET; fi
    AWS_ACCESS_KEY_ID=$id AWS_SECRET_ACCESS_KEY=$key run "$AWS" --endpoint-url "$URL" --ca-bundle "$T/pki/ca.pem" \
        --output json kms "$@"
}

cat >"$WORK/policy.json" <<EOF
{"Version":"2012-10-17","Statement":[
 {"Sid":"Admin","Effect":"Allow","Principal":{"AWS":"$ADM"},"Action":["kms:Describe*","kms:Get*","kms:List*","kms:Put*","kms:Create*","kms:Update*","kms:Enable*","kms:Disable*","kms:Delete*","kms:ScheduleKeyDeletion","kms:CancelKeyDeletion","kms:RotateKeyOnDemand"],"Resource":"*"},
 {"Sid":"Use","Effect":"Allow","Principal":{"AWS":"$OPR"},"Action":["kms:Encrypt","kms:Decrypt","kms:ReEncrypt*","kms:GenerateDataKey*","kms:DescribeKey"],"Resource":"*"}]}
EOF
awsk admin create-key --policy "file://$WORK/policy.json" --description "awscli key"
expect_rc 0 "create-key"
jq_is "d['KeyMetadata']['Arn'] == 'arn:aws:kms:$REGION:111122223333:key/' + d['KeyMetadata']['KeyId'] and d['KeyMetadata']['AWSAccountId'] == '111122223333'" "create-key ARN"
jq_is "d['KeyMetadata']['Enabled'] is True and d['KeyMetadata']['KeyState'] == 'Enabled' and d['KeyMetadata']['Description'] == 'awscli key' and d['KeyMetadata']['KeyUsage'] == 'ENCRYPT_DECRYPT'" "create-key metadata"
K=$(jget "d['KeyMetadata']['KeyId']"); ARN=$(jget "d['KeyMetadata']['Arn']")
awsk admin describe-key --key-id "$ARN"
expect_rc 0 "describe-key"; jq_is "d['KeyMetadata']['KeyId'] == '$K' and d['KeyMetadata']['Arn'] == '$ARN'" "describe-key fields"
awsk admin create-alias --alias-name alias/awscli --target-key-id "$K"
expect_rc 0 "create-alias"
awsk admin list-aliases
expect_rc 0 "list-aliases"
jq_is "any(a['AliasName']=='alias/awscli' and a['TargetKeyId']=='$K' and a['AliasArn']=='arn:aws:kms:$REGION:111122223333:alias/awscli' for a in d['Aliases'])" "list-aliases fields"

printf 'card 4111-1111' >"$WORK/pt.bin"
awsk operator encrypt --key-id alias/awscli --plaintext "fileb://$WORK/pt.bin" --encryption-context tenant=t-1
expect_rc 0 "encrypt"; jq_is "d['KeyId'] == '$ARN' and d['EncryptionAlgorithm'] == 'SYMMETRIC_DEFAULT'" "encrypt fields"
jget "d['CiphertextBlob']" | base64 -d >"$WORK/ct.bin"
awsk operator decrypt --ciphertext-blob "fileb://$WORK/ct.bin" --encryption-context tenant=t-1
expect_rc 0 "decrypt"; jq_is "d['KeyId'] == '$ARN' and base64.b64decode(d['Plaintext']) == b'card 4111-1111'" "decrypt fields"
awsk operator decrypt --ciphertext-blob "fileb://$WORK/ct.bin" --encryption-context tenant=t-2
expect_aws_fail "decrypt with the wrong context"; expect_err_has "InvalidCiphertextException" "wrong context error"
awsk operator generate-data-key --key-id "$K" --key-spec AES_256 --encryption-context a=b
expect_rc 0 "generate-data-key"
jq_is "len(base64.b64decode(d['Plaintext'])) == 32 and d['KeyId'] == '$ARN' and d['CiphertextBlob']" "generate-data-key fields"
awsk operator generate-data-key-without-plaintext --key-id "$K" --number-of-bytes 48
expect_rc 0 "generate-data-key-without-plaintext"
jq_is "'Plaintext' not in d and d['KeyId'] == '$ARN' and len(base64.b64decode(d['CiphertextBlob'])) == 98" "gdkwp fields"
awsk operator re-encrypt --ciphertext-blob "fileb://$WORK/ct.bin" --source-encryption-context tenant=t-1 \
    --destination-key-id "$K" --destination-encryption-context tenant=t-9
expect_rc 0 "re-encrypt"; jq_is "d['SourceKeyId'] == '$ARN' and d['KeyId'] == '$ARN' and d['CiphertextBlob']" "re-encrypt fields"

# Roles: each denial names the action.
awsk admin decrypt --ciphertext-blob "fileb://$WORK/ct.bin" --encryption-context tenant=t-1
expect_aws_fail "admin decrypt"; expect_err_has "AccessDeniedException" "admin decrypt"; expect_err_has "kms:Decrypt" "admin decrypt names the action"
awsk operator disable-key --key-id "$K"
expect_aws_fail "operator disable-key"; expect_err_has "kms:DisableKey" "operator disable-key names the action"
awsk admin get-key-policy --key-id "$K" --policy-name default
expect_rc 0 "get-key-policy"; jq_is "d.get('PolicyName', 'default') == 'default' and json.loads(d['Policy'])['Statement'][1]['Sid'] == 'Use'" "get-key-policy fields"
awsk operator put-key-policy --key-id "$K" --policy-name default --policy "file://$WORK/policy.json"
expect_aws_fail "operator put-key-policy"; expect_err_has "kms:PutKeyPolicy" "operator put-key-policy names the action"
awsk admin put-key-policy --key-id "$K" --policy-name default --policy "file://$WORK/policy.json"
expect_rc 0 "admin put-key-policy"

awsk admin disable-key --key-id "$K"
expect_rc 0 "disable-key"
awsk operator decrypt --ciphertext-blob "fileb://$WORK/ct.bin" --encryption-context tenant=t-1
expect_aws_fail "decrypt a disabled key"; expect_err_has "DisabledException" "DisabledException"
awsk admin schedule-key-deletion --key-id "$K" --pending-window-in-days 7
expect_rc 0 "schedule-key-deletion"
jq_is "d['KeyId'] == '$ARN' and d['KeyState'] == 'PendingDeletion' and d['PendingWindowInDays'] == 7 and d['DeletionDate']" "schedule-key-deletion fields"

# Refused signatures, each with AWS's error name.
SIG="python3 $P11KMS_TOP_SRCDIR/tests/lib/sigv4.py $URL $T/pki/ca.pem"
run $SIG "$OPR_AKID" "$OPR_SECRET" "$REGION" ListKeys '{}' tamper
expect_out_has "InvalidSignatureException" "tampered signature"
run $SIG AKIAAAAAAAAAAAAAAAAA "$OPR_SECRET" "$REGION" ListKeys '{}'
expect_out_has "UnrecognizedClientException" "unknown access key"
run $SIG "$OPR_AKID" "$OPR_SECRET" "$REGION" ListKeys '{}' stale
expect_out_has "RequestExpired" "stale timestamp"
run $SIG "$OPR_AKID" "$OPR_SECRET" "$REGION" ListKeys '{}' unsigned-date
expect_out_has "IncompleteSignature" "x-amz-date not signed"
run "$P11KMS" --config "$C" --as "$ADM" access-key disable "$OPR_AKID"
expect_rc 0 "access-key disable"
kill -HUP "$DAEMON_PID"; sleep 0.5
run $SIG "$OPR_AKID" "$OPR_SECRET" "$REGION" ListKeys '{}'
expect_out_has "UnrecognizedClientException" "disabled access key"
stop_daemon
for s in "$ADM_SECRET" "$OPR_SECRET" "card 4111" "$(cat "$T/user.pin")"; do
    if grep -qaF -- "$s" "$DAEMON_ERR" "$T/audit.log"; then bad "a secret in stderr or the audit log"; else ok; fi
done
run "$P11KMS" --config "$C" audit verify
expect_rc 0 "audit verify"
finish
