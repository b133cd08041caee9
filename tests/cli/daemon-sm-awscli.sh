#!/bin/bash
# Debian's awscli runs the Secrets Manager API against p11kmsd over HTTPS
# with SigV4 (issue 13, item 1): create-secret, get-secret-value,
# put-secret-value, describe-secret, list-secrets and delete-secret, each
# answer checked field by field; a missing secret is
# ResourceNotFoundException; a request signed for kms is refused; the
# administrator's key cannot read; no value in the daemon's log or audit.
. "${P11KMS_TOP_SRCDIR:-.}/tests/cli/lib.sh"
. "$P11KMS_TOP_SRCDIR/tests/lib/daemon.sh"
. "$P11KMS_TOP_SRCDIR/tests/lib/tls.sh"
need_access_keys
AWS=/usr/bin/aws
[ -x "$AWS" ] || { echo "SKIP: $0 needs Debian's awscli package (scripts/install-deps.sh)"; exit 77; }

https_token
https_listeners
access_key "$ADM"; ADM_AKID=$AKID; ADM_SECRET=$SECRET
access_key "$OPR"; OPR_AKID=$AKID; OPR_SECRET=$SECRET
start_daemon "$C"
URL=https://127.0.0.1:$PORT
MARK="awsmark-$RANDOM$RANDOM"
export HOME=$WORK AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_EC2_METADATA_DISABLED=true \
    AWS_PAGER="" AWS_DEFAULT_REGION=$REGION
expect_aws_fail() { if [ "$RC" -ne 0 ]; then ok; else bad "$1: exit 0, want a failure"; fi; }
# awss admin|operator secretsmanager-subcommand args...
awss() {
    who=$1; shift
    if [ "$who" = admin ]; then id=$ADM_AKID key=$ADM_SECRET; else id=$OPR_AKID key=$OPR_SECRET; fi
    AWS_ACCESS_KEY_ID=$id AWS_SECRET_ACCESS_KEY=$key run "$AWS" --endpoint-url "$URL" --ca-bundle "$T/pki/ca.pem" \
        --output json secretsmanager "$@"
}
sm_arn() { python3 -c 'import base64,hashlib,sys
d = hashlib.sha256(b"p11kms-secret-arn" + sys.argv[1].encode()).digest()
print("arn:aws:secretsmanager:%s:111122223333:secret:%s-%s" % (sys.argv[2], sys.argv[1], base64.b32encode(d).decode().lower()[:6]))' \
    "$1" "$REGION"; }
# epoch DATE: awscli prints timestamps as ISO 8601 text
epoch_is_recent() { jq_is "abs(__import__('datetime').datetime.fromisoformat(d['$1']).timestamp() - $(date +%s)) < 120" "$2"; }

A=$(sm_arn flink/orders-db)
SVC=$(AWS_ACCESS_KEY_ID=$OPR_AKID AWS_SECRET_ACCESS_KEY=$OPR_SECRET "$AWS" --endpoint-url "$URL" \
    --ca-bundle "$T/pki/ca.pem" --output text kms describe-key --key-id alias/p11kms/default \
    --query KeyMetadata.Arn 2>/dev/null)
case $SVC in arn:aws:kms:*) ok ;; *) bad "describe-key of the service key: $SVC" ;; esac

printf '{"user":"flink","password":"pw1-%s"}' "$MARK" >"$WORK/v1.json"
awss operator create-secret --name flink/orders-db --secret-string "file://$WORK/v1.json" --description orders
expect_rc 0 "create-secret"
jq_is "set(d) == {'ARN','Name','VersionId'} and d['ARN'] == '$A' and d['Name'] == 'flink/orders-db'" "create-secret fields"
jq_is "__import__('re').fullmatch('00000001-0000-4000-8000-[0-9a-f]{12}', d['VersionId'])" "create-secret VersionId"
V1=$(jget "d['VersionId']")
awss operator create-secret --name flink/orders-db --secret-string "file://$WORK/v1.json"
expect_aws_fail "create-secret taken"; expect_err_has "ResourceExistsException" "create-secret taken"
expect_err_has "secret flink/orders-db already exists" "create-secret taken message"

awss operator get-secret-value --secret-id flink/orders-db
expect_rc 0 "get-secret-value"
jq_is "set(d) == {'ARN','Name','VersionId','SecretString','VersionStages','CreatedDate'}" "get-secret-value fields"
jq_is "d['ARN'] == '$A' and d['Name'] == 'flink/orders-db' and d['VersionId'] == '$V1' and d['VersionStages'] == ['AWSCURRENT']" "get-secret-value ids"
jq_is "json.loads(d['SecretString']) == {'user': 'flink', 'password': 'pw1-$MARK'}" "get-secret-value value"
epoch_is_recent CreatedDate "get-secret-value CreatedDate"
awss operator get-secret-value --secret-id "$A"
expect_rc 0 "get-secret-value by ARN"; jq_is "d['Name'] == 'flink/orders-db'" "get-secret-value by ARN"

printf '{"password":"pw2-%s"}' "$MARK" >"$WORK/v2.json"
awss operator put-secret-value --secret-id flink/orders-db --secret-string "file://$WORK/v2.json"
expect_rc 0 "put-secret-value"
jq_is "set(d) == {'ARN','Name','VersionId','VersionStages'} and d['ARN'] == '$A' and d['VersionStages'] == ['AWSCURRENT']" "put-secret-value fields"
jq_is "d['VersionId'].startswith('00000002-') and d['VersionId'] != '$V1'" "put-secret-value VersionId"
V2=$(jget "d['VersionId']")
awss operator get-secret-value --secret-id flink/orders-db
jq_is "json.loads(d['SecretString']) == {'password': 'pw2-$MARK'} and d['VersionId'] == '$V2'" "value replaced"

awss operator describe-secret --secret-id flink/orders-db
expect_rc 0 "describe-secret"
jq_is "set(d) == {'ARN','Name','KmsKeyId','CreatedDate','LastChangedDate','VersionIdsToStages'}" "describe-secret fields"
jq_is "d['ARN'] == '$A' and d['Name'] == 'flink/orders-db' and d['KmsKeyId'] == '$SVC' and d['VersionIdsToStages'] == {'$V2': ['AWSCURRENT']}" "describe-secret ids"
epoch_is_recent LastChangedDate "describe-secret LastChangedDate"
expect_out_lacks "$MARK" "describe-secret shows no value"

awss operator create-secret --name flink/other --secret-string "file://$WORK/v2.json"
expect_rc 0 "create-secret 2"
awss operator list-secrets
expect_rc 0 "list-secrets"
jq_is "[s['Name'] for s in d['SecretList']] == ['flink/orders-db', 'flink/other']" "list-secrets names"
jq_is "d['SecretList'][0]['ARN'] == '$A' and d['SecretList'][0]['KmsKeyId'] == '$SVC' and d['SecretList'][0]['SecretVersionsToStages'] == {'$V2': ['AWSCURRENT']}" "list-secrets entry"
expect_out_lacks "$MARK" "list-secrets shows no value"
# The CLI pages by itself: one secret per page, both come back.
awss operator list-secrets --max-items 5 --page-size 1
expect_rc 0 "list-secrets paged"; jq_is "[s['Name'] for s in d['SecretList']] == ['flink/orders-db', 'flink/other']" "list-secrets paged names"
awss operator list-secrets --filters Key=name,Values=flink/ot
jq_is "[s['Name'] for s in d['SecretList']] == ['flink/other']" "list-secrets name filter"

# The administrator's key describes but cannot read, each denial naming the action.
awss admin get-secret-value --secret-id flink/orders-db
expect_aws_fail "admin get-secret-value"; expect_err_has "AccessDeniedException" "admin get-secret-value"
expect_err_has "is not authorized to perform kms:Decrypt" "admin denial names the action"
awss admin put-secret-value --secret-id flink/orders-db --secret-string "file://$WORK/v1.json"
expect_aws_fail "admin put-secret-value"; expect_err_has "kms:GenerateDataKey" "admin put-secret-value names the action"

# signed SERVICE COUNT: COUNT GetSecretValue requests on one keep-alive HTTPS connection,
# signed with the signing name SERVICE (stdlib SigV4); $OUT gets the last body, $MEDIAN_MS the median latency.
cat >"$WORK/signed.py" <<'PY'
import datetime, hashlib, hmac, http.client, os, ssl, sys, time, urllib.parse
url, ca, region, service, count = sys.argv[1:6]
u = urllib.parse.urlparse(url)
body = '{"SecretId":"flink/orders-db"}'
c = http.client.HTTPSConnection(u.hostname, u.port, context=ssl.create_default_context(cafile=ca))
lat = []
for _ in range(int(count)):
    amz = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    h = {"content-type": "application/x-amz-json-1.1", "host": u.netloc, "x-amz-date": amz,
         "x-amz-target": "secretsmanager.GetSecretValue"}
    names = ";".join(sorted(h))
    canon = "\n".join(["POST", "/", ""] + ["%s:%s" % (k, h[k]) for k in sorted(h)] +
                      ["", names, hashlib.sha256(body.encode()).hexdigest()])
    scope = "%s/%s/%s/aws4_request" % (amz[:8], region, service)
    sts = "\n".join(["AWS4-HMAC-SHA256", amz, scope, hashlib.sha256(canon.encode()).hexdigest()])
    k = ("AWS4" + os.environ["AWS_SECRET_ACCESS_KEY"]).encode()
    for part in (amz[:8], region, service, "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    h["authorization"] = "AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s" % (
        os.environ["AWS_ACCESS_KEY_ID"], scope, names, hmac.new(k, sts.encode(), hashlib.sha256).hexdigest())
    t0 = time.monotonic()
    c.request("POST", "/", body=body, headers=h)
    text = c.getresponse().read().decode()
    lat.append((time.monotonic() - t0) * 1000)
print(text)
print("%.1f" % sorted(lat)[len(lat) // 2], file=sys.stderr)
PY
signed() {
    AWS_ACCESS_KEY_ID=$OPR_AKID AWS_SECRET_ACCESS_KEY=$OPR_SECRET python3 "$WORK/signed.py" "$URL" "$T/pki/ca.pem" \
        "$REGION" "$1" "$2" >"$OUT" 2>"$ERR"
    MEDIAN_MS=$(tail -1 "$ERR")
}
# The daemon sends each response at once (TCP_NODELAY): on a keep-alive connection a request
# does not wait for the client's delayed ACK (40 ms).
signed secretsmanager 30
jq_is "json.loads(d['SecretString']) == {'password': 'pw2-$MARK'}" "keep-alive SigV4 GetSecretValue"
if python3 -c "import sys; sys.exit(0 if float('$MEDIAN_MS') < 20 else 1)" 2>/dev/null; then ok
else bad "keep-alive HTTPS request median ${MEDIAN_MS} ms (Nagle waiting for a delayed ACK?)"; fi
# A signature scoped to kms does not open secretsmanager.
signed kms 1
jq_is "d.get('__type') == 'InvalidSignatureException' and d['message'] == 'the credential is scoped to service kms, not secretsmanager'" "kms-scoped signature refused"

awss operator delete-secret --secret-id flink/orders-db --force-delete-without-recovery
expect_rc 0 "delete-secret"
jq_is "set(d) == {'ARN','Name','DeletionDate'} and d['ARN'] == '$A' and d['Name'] == 'flink/orders-db'" "delete-secret fields"
epoch_is_recent DeletionDate "delete-secret DeletionDate"
awss operator get-secret-value --secret-id flink/orders-db
expect_aws_fail "get-secret-value after delete"; expect_err_has "ResourceNotFoundException" "missing secret"
expect_err_has "secret flink/orders-db not found" "missing secret message"
awss operator describe-secret --secret-id flink/nothing-here
expect_aws_fail "describe-secret missing"; expect_err_has "ResourceNotFoundException" "describe-secret missing"
awss operator delete-secret --secret-id flink/other --recovery-window-in-days 7
expect_rc 0 "delete-secret with a recovery window (immediate)"
awss operator list-secrets
jq_is "d['SecretList'] == []" "both secrets gone"

stop_daemon
for f in "$DAEMON_ERR" "$T/audit.log"; do
    if grep -qaF -- "$MARK" "$f"; then bad "a secret value in $(basename "$f")"; else ok; fi
done
grep -q 'secretsmanager.GetSecretValue 200' "$DAEMON_ERR" && ok || bad "daemon log lacks the operation"
finish
