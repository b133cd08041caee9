#!/bin/bash
# p11kmsd's Secrets Manager (secretsmanager.*) and p11kms service
# (P11kmsService.*) targets over the Unix socket (issue 13): every operation
# field by field, every error with its exact __type and message, the
# operator reading and writing and the administrator denied with the action
# named, and no secret value in the daemon's stderr or audit log.
. "${P11KMS_TOP_SRCDIR:-.}/tests/cli/lib.sh"
. "$P11KMS_TOP_SRCDIR/tests/lib/daemon.sh"
need_root

T=$WORK/tok
new_token "$T" p11kms
C=$T/p11kms.conf
ADM=arn:aws:iam::111122223333:role/key-admin
OPR=arn:aws:iam::111122223333:role/flink-operator
OPUID=65534
SOCK=$WORK/run/kms.sock
MARK="smark-$RANDOM$RANDOM"
chmod 711 "$WORK"; mkdir -m 755 "$WORK/run"
run "$P11KMS" --config "$C" --as "$ADM" init --admin "$ADM" --operator "$OPR"; expect_rc 0 "init"
cat >>"$C" <<EOF
listen = unix:$SOCK
socket_mode = 0666
principal.uid.0 = $ADM
principal.uid.$OPUID = $OPR
EOF
start_daemon "$C"

sm() { kms_as "$1" "secretsmanager.$2" "$3"; }
svc() { kms_as "$1" "P11kmsService.$2" "$3"; }
# expect_error CODE TYPE 'exact message' DESCRIPTION
expect_error() {
    expect_http "$1" "$4"
    python3 - "$OUT" "$2" "$3" "$4" <<'PY' && ok || bad "$4: $(head -c 400 "$OUT")"
import json, sys
d = json.load(open(sys.argv[1]))
sys.exit(0 if set(d) == {'__type', 'message'} and d['__type'] == sys.argv[2] and d['message'] == sys.argv[3] else 1)
PY
}
# json_str 'PYTHON VALUE': a JSON string literal (for SecretString and friends)
json_str() { python3 -c 'import json,sys; print(json.dumps(sys.argv[1]))' "$1"; }

# The region and account the daemon puts in ARNs, from the service key's.
kms_as $OPUID DescribeKey '{"KeyId":"alias/p11kms/default"}'
expect_http 200 "DescribeKey service key"
SVCARN=$(jget "d['KeyMetadata']['Arn']")
REGION=$(echo "$SVCARN" | cut -d: -f4); ACCOUNT=$(echo "$SVCARN" | cut -d: -f5)
sm_arn() { python3 -c 'import base64,hashlib,sys
d = hashlib.sha256(b"p11kms-secret-arn" + sys.argv[1].encode()).digest()
print("arn:aws:secretsmanager:%s:%s:secret:%s-%s" % (sys.argv[2], sys.argv[3], sys.argv[1], base64.b32encode(d).decode().lower()[:6]))' \
    "$1" "$REGION" "$ACCOUNT"; }
A=$(sm_arn flink/orders-db)
VAL1=$(json_str "{\"user\":\"flink\",\"password\":\"pw1-$MARK\",\"quote\":\"\\\"\\\\\\n\u00e9\"}")

# --- CreateSecret ---
NOW=$(date +%s)
sm $OPUID CreateSecret "{\"Name\":\"flink/orders-db\",\"SecretString\":$VAL1,\"ClientRequestToken\":\"$(cat /proc/sys/kernel/random/uuid)\",\"Description\":\"orders\"}"
expect_http 200 "CreateSecret"
jq_is "set(d) == {'ARN','Name','VersionId'} and d['ARN'] == '$A' and d['Name'] == 'flink/orders-db'" "CreateSecret fields"
jq_is "__import__('re').fullmatch('00000001-0000-4000-8000-[0-9a-f]{12}', d['VersionId'])" "CreateSecret VersionId"
V1=$(jget "d['VersionId']")
sm $OPUID CreateSecret "{\"Name\":\"flink/orders-db\",\"SecretString\":$VAL1}"
expect_error 400 ResourceExistsException "secret flink/orders-db already exists" "CreateSecret taken"
sm $OPUID CreateSecret "{\"SecretString\":$VAL1}"
expect_error 400 InvalidParameterException "Name is required" "CreateSecret no Name"
sm $OPUID CreateSecret "{\"Name\":\"bad name\",\"SecretString\":$VAL1}"
expect_error 400 InvalidParameterException "Invalid name. Must be a valid name containing alphanumeric characters, or any of the following: -/_+=.@!" "CreateSecret bad Name"
sm $OPUID CreateSecret "{\"Name\":\"$(head -c 513 /dev/zero | tr '\0' n)\",\"SecretString\":$VAL1}"
expect_error 400 InvalidParameterException "Name must be 1 to 512 characters long" "CreateSecret long Name"
sm $OPUID CreateSecret "{\"Name\":7,\"SecretString\":$VAL1}"
expect_error 400 InvalidParameterException "Name must be a string" "CreateSecret Name type"
sm $OPUID CreateSecret "{\"Name\":\"/x\",\"SecretString\":$VAL1}"
expect_error 400 InvalidParameterException "the part of Name before its first '/' must be a namespace of 1 to 128 characters" "CreateSecret empty namespace"
sm $OPUID CreateSecret "{\"Name\":\"a+b/x\",\"SecretString\":$VAL1}"
expect_error 400 InvalidParameterException "invalid namespace 'a+b': use 1 to 128 letters, digits, '.', '_', '-' or '/'" "CreateSecret bad namespace"
sm $OPUID CreateSecret '{"Name":"flink/bin","SecretBinary":"AAEC"}'
expect_error 400 InvalidParameterException "p11kms secrets are JSON maps of strings: use SecretString" "SecretBinary"
sm $OPUID CreateSecret '{"Name":"flink/none"}'
expect_error 400 InvalidParameterException "SecretString is required" "no SecretString"
for bad in '"[\"a\"]"' '"{\"a\":{\"b\":\"c\"}}"' '"{\"a\":1}"' '"not json"'; do
    sm $OPUID CreateSecret "{\"Name\":\"flink/bad\",\"SecretString\":$bad}"
    expect_error 400 InvalidParameterException "SecretString must be a flat JSON object of strings (p11kms secrets are JSON maps of strings)" "SecretString $bad"
done
BIG=$(python3 -c 'import json; print(json.dumps(json.dumps({"k": "v" * 65530})))')
sm $OPUID CreateSecret "{\"Name\":\"flink/big\",\"SecretString\":$BIG}"
expect_error 400 InvalidParameterException "SecretString must be 1 to 65536 bytes of text" "SecretString limit"
sm $OPUID CreateSecret "{\"Name\":\"flink/tags\",\"SecretString\":$VAL1,\"Tags\":[]}"
expect_error 400 InvalidParameterException "p11kmsd does not support Tags or AddReplicaRegions" "Tags"
sm $OPUID CreateSecret "{\"Name\":\"flink/k\",\"SecretString\":$VAL1,\"KmsKeyId\":\"alias/none\"}"
expect_error 400 ResourceNotFoundException "alias alias/none not found" "CreateSecret unknown KmsKeyId"

# --- GetSecretValue, by Name and by ARN ---
for id in flink/orders-db "$A"; do
    sm $OPUID GetSecretValue "{\"SecretId\":\"$id\"}"
    expect_http 200 "GetSecretValue $id"
    jq_is "set(d) == {'ARN','Name','VersionId','SecretString','VersionStages','CreatedDate'}" "GetSecretValue fields"
    jq_is "d['ARN'] == '$A' and d['Name'] == 'flink/orders-db' and d['VersionId'] == '$V1' and d['VersionStages'] == ['AWSCURRENT']" "GetSecretValue ids"
    jq_is "json.loads(d['SecretString']) == json.loads($VAL1)" "GetSecretValue value"
    jq_is "isinstance(d['CreatedDate'], int) and abs(d['CreatedDate'] - $NOW) < 60" "GetSecretValue CreatedDate"
done
sm $OPUID GetSecretValue "{\"SecretId\":\"flink/orders-db\",\"VersionId\":\"$V1\",\"VersionStage\":\"AWSCURRENT\"}"
expect_http 200 "GetSecretValue current version"
sm $OPUID GetSecretValue '{"SecretId":"flink/orders-db","VersionStage":"AWSPREVIOUS"}'
expect_error 400 ResourceNotFoundException "Secrets Manager can't find the specified secret value for staging label: AWSPREVIOUS" "VersionStage"
sm $OPUID GetSecretValue '{"SecretId":"flink/orders-db","VersionId":"00000009-0000-4000-8000-000000000000"}'
expect_error 400 ResourceNotFoundException "Secrets Manager can't find the specified secret value for VersionId: 00000009-0000-4000-8000-000000000000" "VersionId"
sm $OPUID GetSecretValue '{"SecretId":"flink/nope"}'
expect_error 400 ResourceNotFoundException "secret flink/nope not found" "GetSecretValue unknown"
sm $OPUID GetSecretValue "{\"SecretId\":\"${A%??????}zzzzzz\"}"
expect_error 400 ResourceNotFoundException "secret ${A%??????}zzzzzz not found" "GetSecretValue wrong ARN suffix"
sm $OPUID GetSecretValue '{"SecretId":"bad id!"}'
expect_error 400 ResourceNotFoundException "secret bad id! not found" "GetSecretValue impossible name"
sm $OPUID GetSecretValue '{}'
expect_error 400 InvalidParameterException "SecretId is required" "GetSecretValue no SecretId"

# --- PutSecretValue and UpdateSecret: atomic replace ---
VAL2=$(json_str "{\"password\":\"pw2-$MARK\"}")
sm $OPUID PutSecretValue "{\"SecretId\":\"$A\",\"SecretString\":$VAL2,\"ClientRequestToken\":\"$(cat /proc/sys/kernel/random/uuid)\"}"
expect_http 200 "PutSecretValue"
jq_is "set(d) == {'ARN','Name','VersionId','VersionStages'} and d['ARN'] == '$A' and d['Name'] == 'flink/orders-db' and d['VersionStages'] == ['AWSCURRENT']" "PutSecretValue fields"
jq_is "d['VersionId'].startswith('00000002-') and d['VersionId'][8:] == '$V1'[8:]" "PutSecretValue VersionId"
V2=$(jget "d['VersionId']")
sm $OPUID GetSecretValue '{"SecretId":"flink/orders-db"}'
jq_is "json.loads(d['SecretString']) == json.loads($VAL2) and d['VersionId'] == '$V2'" "value replaced"
sm $OPUID PutSecretValue "{\"SecretId\":\"flink/orders-db\",\"SecretString\":$VAL2,\"VersionStages\":[\"X\"]}"
expect_error 400 InvalidParameterException "p11kmsd keeps one version per secret: VersionStages is not supported" "PutSecretValue VersionStages"
sm $OPUID PutSecretValue "{\"SecretId\":\"flink/nope\",\"SecretString\":$VAL2}"
expect_error 400 ResourceNotFoundException "secret flink/nope not found" "PutSecretValue unknown"
sm $OPUID PutSecretValue '{"SecretId":"flink/orders-db","SecretBinary":"AAEC"}'
expect_error 400 InvalidParameterException "p11kms secrets are JSON maps of strings: use SecretString" "PutSecretValue SecretBinary"
VAL3=$(json_str "{\"password\":\"pw3-$MARK\",\"user\":\"u3\"}")
sm $OPUID UpdateSecret "{\"SecretId\":\"flink/orders-db\",\"SecretString\":$VAL3,\"Description\":\"d\"}"
expect_http 200 "UpdateSecret"
jq_is "set(d) == {'ARN','Name','VersionId'} and d['ARN'] == '$A' and d['VersionId'].startswith('00000003-')" "UpdateSecret fields"
sm $OPUID UpdateSecret '{"SecretId":"flink/orders-db","Description":"only"}'
expect_http 200 "UpdateSecret without a value"
jq_is "d == {'ARN': '$A', 'Name': 'flink/orders-db'}" "UpdateSecret without a value: ARN and Name"
sm $OPUID UpdateSecret '{"SecretId":"flink/orders-db","KmsKeyId":"11111111-1111-1111-1111-111111111111"}'
expect_error 400 InvalidRequestException "p11kmsd cannot move a secret to another key: KmsKeyId must be the secret's key id or key ARN" "UpdateSecret other key"
sm $OPUID UpdateSecret "{\"SecretId\":\"flink/orders-db\",\"KmsKeyId\":\"$SVCARN\"}"
expect_http 200 "UpdateSecret same key"
sm $OPUID UpdateSecret '{"SecretId":"flink/nope"}'
expect_error 400 ResourceNotFoundException "secret flink/nope not found" "UpdateSecret unknown"
sm $OPUID GetSecretValue '{"SecretId":"flink/orders-db"}'
jq_is "json.loads(d['SecretString']) == json.loads($VAL3)" "UpdateSecret value"

# --- DescribeSecret: metadata, never the value ---
sm $OPUID DescribeSecret "{\"SecretId\":\"flink/orders-db\"}"
expect_http 200 "DescribeSecret"
jq_is "set(d) == {'ARN','Name','KmsKeyId','CreatedDate','LastChangedDate','VersionIdsToStages'}" "DescribeSecret fields"
jq_is "d['ARN'] == '$A' and d['Name'] == 'flink/orders-db' and d['KmsKeyId'] == '$SVCARN'" "DescribeSecret ids"
jq_is "list(d['VersionIdsToStages']) == [k for k in d['VersionIdsToStages']] and list(d['VersionIdsToStages'].values()) == [['AWSCURRENT']] and list(d['VersionIdsToStages'])[0].startswith('00000003-')" "DescribeSecret versions"
jq_is "abs(d['CreatedDate'] - $NOW) < 60 and d['LastChangedDate'] >= d['CreatedDate']" "DescribeSecret dates"
expect_out_lacks "$MARK" "DescribeSecret shows no value"
sm $OPUID DescribeSecret '{"SecretId":"flink/nope"}'
expect_error 400 ResourceNotFoundException "secret flink/nope not found" "DescribeSecret unknown"

# --- ListSecrets: sorted by Name, paged, name-prefix filter ---
for n in flink/b flink/a other/c plain; do
    sm $OPUID CreateSecret "{\"Name\":\"$n\",\"SecretString\":$VAL2}"; expect_http 200 "CreateSecret $n"
done
sm $OPUID ListSecrets '{}'
expect_http 200 "ListSecrets"
jq_is "[s['Name'] for s in d['SecretList']] == ['flink/a','flink/b','flink/orders-db','other/c','plain'] and 'NextToken' not in d" "ListSecrets names"
jq_is "all(set(s) == {'ARN','Name','KmsKeyId','CreatedDate','LastChangedDate','SecretVersionsToStages'} for s in d['SecretList'])" "ListSecrets fields"
jq_is "d['SecretList'][2]['ARN'] == '$A' and d['SecretList'][2]['KmsKeyId'] == '$SVCARN' and list(d['SecretList'][2]['SecretVersionsToStages'].values()) == [['AWSCURRENT']]" "ListSecrets entry"
expect_out_lacks "$MARK" "ListSecrets shows no value"
sm $OPUID ListSecrets '{"MaxResults":2}'
jq_is "[s['Name'] for s in d['SecretList']] == ['flink/a','flink/b'] and d['NextToken'] == 'flink/b'" "ListSecrets page 1"
sm $OPUID ListSecrets '{"MaxResults":2,"NextToken":"flink/b"}'
jq_is "[s['Name'] for s in d['SecretList']] == ['flink/orders-db','other/c'] and d['NextToken'] == 'other/c'" "ListSecrets page 2"
sm $OPUID ListSecrets '{"MaxResults":2,"NextToken":"other/c"}'
jq_is "[s['Name'] for s in d['SecretList']] == ['plain'] and 'NextToken' not in d" "ListSecrets last page"
sm $OPUID ListSecrets '{"Filters":[{"Key":"name","Values":["flink/","plain"]}]}'
jq_is "[s['Name'] for s in d['SecretList']] == ['flink/a','flink/b','flink/orders-db','plain']" "ListSecrets name filter"
sm $OPUID ListSecrets '{"Filters":[{"Key":"description","Values":["x"]}]}'
expect_error 400 InvalidParameterException "p11kmsd supports only the name filter" "ListSecrets other filter"
sm $OPUID ListSecrets '{"Filters":[{"Key":"name"}]}'
expect_error 400 InvalidParameterException "a filter needs a list of Values" "ListSecrets filter without values"
for m in 0 101 '"5"'; do
    sm $OPUID ListSecrets "{\"MaxResults\":$m}"
    expect_error 400 InvalidParameterException "MaxResults must be an integer from 1 to 100" "ListSecrets MaxResults $m"
done

# --- the administrator manages keys but reads and writes no secret ---
sm 0 GetSecretValue '{"SecretId":"flink/orders-db"}'
expect_http 400 "admin GetSecretValue"
jq_is "d['__type'] == 'AccessDeniedException' and d['message'].startswith('$ADM is not authorized to perform kms:Decrypt on key ')" "admin denied kms:Decrypt"
expect_out_lacks "$MARK" "denial shows no value"
sm 0 PutSecretValue "{\"SecretId\":\"flink/orders-db\",\"SecretString\":$VAL2}"
jq_is "d['__type'] == 'AccessDeniedException' and d['message'].startswith('$ADM is not authorized to perform kms:GenerateDataKey on key ')" "admin denied PutSecretValue"
sm 0 CreateSecret "{\"Name\":\"flink/adm\",\"SecretString\":$VAL2}"
jq_is "d['__type'] == 'AccessDeniedException' and 'kms:GenerateDataKey' in d['message']" "admin denied CreateSecret"
sm 0 DeleteSecret '{"SecretId":"flink/orders-db"}'
jq_is "d['__type'] == 'AccessDeniedException' and 'kms:GenerateDataKey' in d['message']" "admin denied DeleteSecret"
sm $OPUID GetSecretValue '{"SecretId":"flink/orders-db"}'
jq_is "json.loads(d['SecretString']) == json.loads($VAL3)" "the secret survived the admin"

# --- DeleteSecret: immediate ---
sm $OPUID DeleteSecret '{"SecretId":"flink/a","RecoveryWindowInDays":7,"ForceDeleteWithoutRecovery":true}'
expect_error 400 InvalidParameterException "You can't use ForceDeleteWithoutRecovery in conjunction with RecoveryWindowInDays." "DeleteSecret both"
sm $OPUID DeleteSecret '{"SecretId":"flink/a","RecoveryWindowInDays":3}'
expect_error 400 InvalidParameterException "RecoveryWindowInDays must be an integer from 7 to 30" "RecoveryWindowInDays"
sm $OPUID DeleteSecret '{"SecretId":"flink/a","ForceDeleteWithoutRecovery":"yes"}'
expect_error 400 InvalidParameterException "ForceDeleteWithoutRecovery must be a boolean" "ForceDeleteWithoutRecovery type"
sm $OPUID DeleteSecret "{\"SecretId\":\"$A\",\"RecoveryWindowInDays\":30}"
expect_http 200 "DeleteSecret"
jq_is "set(d) == {'ARN','Name','DeletionDate'} and d['ARN'] == '$A' and d['Name'] == 'flink/orders-db' and abs(d['DeletionDate'] - $(date +%s)) < 60" "DeleteSecret fields"
sm $OPUID GetSecretValue '{"SecretId":"flink/orders-db"}'
expect_error 400 ResourceNotFoundException "secret flink/orders-db not found" "deleted at once"
sm $OPUID DeleteSecret '{"SecretId":"flink/orders-db","ForceDeleteWithoutRecovery":true}'
expect_error 400 ResourceNotFoundException "secret flink/orders-db not found" "DeleteSecret again"
sm $OPUID CreateSecret "{\"Name\":\"flink/orders-db\",\"SecretString\":$VAL2}"
expect_http 200 "the name is free again"
sm $OPUID TagResource '{"SecretId":"flink/orders-db","Tags":[]}'
expect_error 400 UnsupportedOperationException "TagResource is not supported by p11kmsd" "TagResource"
kms_as $OPUID Bogus.GetSecretValue '{}'
expect_error 400 UnknownOperationException "X-Amz-Target must be TrentService.<Operation>" "unknown target prefix"

# --- P11kmsService: connections and render ---
svc $OPUID CreateConnection "{\"Name\":\"cat.db.kafka\",\"Type\":\"kafka\",\"Comment\":\"orders\",\"Namespace\":\"flink\",\"Options\":{\"bootstrap.servers\":\"k:9092\",\"password\":\"cpw-$MARK\"}}"
expect_http 200 "CreateConnection"; if [ ! -s "$OUT" ]; then ok; else bad "CreateConnection body: $(cat "$OUT")"; fi
svc $OPUID CreateConnection '{"Name":"cat.db.kafka","Options":{}}'
expect_error 409 AlreadyExistsException "connection cat.db.kafka already exists" "CreateConnection taken"
svc $OPUID CreateConnection '{"Name":"x","Options":{"a":1}}'
expect_error 400 ValidationException "Options must be a map of at most 256 strings" "CreateConnection option type"
svc $OPUID CreateConnection '{"Options":{}}'
expect_error 400 ValidationException "1 validation error detected: Value null at 'Name' failed to satisfy constraint: Member must not be null" "CreateConnection no Name"
svc $OPUID DescribeConnection '{"Name":"cat.db.kafka"}'
expect_http 200 "DescribeConnection"
jq_is "d['Name'] == 'cat.db.kafka' and d['Namespace'] == 'flink' and d['Comment'] == 'orders' and d['Options']['password'] == '****' and d['Options']['bootstrap.servers'] == 'k:9092' and d['Options']['type'] == 'kafka'" "DescribeConnection fields"
expect_out_lacks "$MARK" "DescribeConnection hides the password"
svc $OPUID ShowCreateConnection '{"Name":"cat.db.kafka"}'
jq_is "set(d) == {'Statement'} and d['Statement'].startswith('CREATE CONNECTION \`cat\`.\`db\`.\`kafka\`') and \"'password' = '****'\" in d['Statement']" "ShowCreateConnection"
svc $OPUID ResolveConnection '{"Name":"cat.db.kafka"}'
jq_is "d == {'Options': {'bootstrap.servers': 'k:9092', 'password': 'cpw-$MARK', 'type': 'kafka'}}" "ResolveConnection"
svc 0 ResolveConnection '{"Name":"cat.db.kafka"}'
jq_is "d['__type'] == 'AccessDeniedException' and d['message'].startswith('$ADM is not authorized to perform kms:Decrypt on key ')" "admin ResolveConnection denied"
svc $OPUID ListConnections '{"Like":"cat.%"}'
jq_is "d == [{'Name': 'cat.db.kafka', 'Type': 'kafka', 'Namespace': 'flink', 'Comment': 'orders'}]" "ListConnections"
svc $OPUID ListConnections '{"Like":"none%"}'
jq_is "d == []" "ListConnections empty"
svc $OPUID AlterConnection '{"Name":"cat.db.kafka","Set":{"group.id":"g1"},"Reset":["bootstrap.servers"],"Comment":"c2"}'
expect_http 200 "AlterConnection"
svc $OPUID DescribeConnection '{"Name":"cat.db.kafka"}'
jq_is "d['Comment'] == 'c2' and d['Options'].get('group.id') == 'g1' and 'bootstrap.servers' not in d['Options']" "AlterConnection applied"
svc $OPUID AlterConnection '{"Name":"cat.db.kafka","Reset":[1]}'
expect_error 400 ValidationException "Reset must be a list of option names" "AlterConnection Reset type"
TPL=$(json_str "db=\${connection:cat.db.kafka:password} s=\${secret:plain:password}")
svc $OPUID Render "{\"Template\":$TPL}"
expect_http 200 "Render"
jq_is "d == {'Output': 'db=cpw-$MARK s=' + json.loads($VAL2)['password']}" "Render output"
svc $OPUID Render '{"Template":"${secret:flink/none:x}"}'
expect_error 404 NotFoundException "render: line 1: secret flink/none not found" "Render unknown secret"
svc $OPUID Render '{"Template":7}'
expect_error 400 ValidationException "Template must be a string" "Render Template type"
svc 0 Render "{\"Template\":$TPL}"
jq_is "d['__type'] == 'AccessDeniedException' and 'kms:Decrypt' in d['message']" "admin Render denied"
expect_out_lacks "$MARK" "admin Render shows no value"
svc $OPUID DropConnection '{"Name":"cat.db.kafka"}'
expect_http 200 "DropConnection"
svc $OPUID DropConnection '{"Name":"cat.db.kafka"}'
expect_error 404 NotFoundException "connection cat.db.kafka not found" "DropConnection unknown"
svc $OPUID DescribeConnection '{"Name":"cat.db.kafka"}'
expect_error 404 NotFoundException "connection cat.db.kafka not found" "DescribeConnection unknown"
svc $OPUID Nope '{}'
expect_error 400 UnsupportedOperationException "Nope is not supported by p11kmsd" "P11kmsService unknown op"

# --- audit: the same actions and context as in-process; values nowhere ---
stop_daemon
grep -q '"p11kms:secret-id":"flink/orders-db"' "$T/audit.log" && ok || bad "audit lacks the secret-id context"
grep -q '"p11kms:namespace":"flink"' "$T/audit.log" && ok || bad "audit lacks the namespace context"
for f in "$DAEMON_ERR" "$T/audit.log"; do
    if grep -qaF -- "$MARK" "$f"; then bad "a secret value in $(basename "$f")"; else ok; fi
done
grep -q 'secretsmanager.GetSecretValue 200' "$DAEMON_ERR" && ok || bad "daemon log lacks the operation"
finish
