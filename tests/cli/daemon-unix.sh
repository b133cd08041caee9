#!/bin/bash
# p11kmsd on a Unix socket (issue 12): configuration checks, two uids mapped
# to the key administrator and the application operator, an unmapped uid,
# every operation's answer field by field, protocol errors, SIGHUP, SIGTERM,
# and no PIN or plaintext in the daemon's output, audit log or argv.
. "${P11KMS_TOP_SRCDIR:-.}/tests/cli/lib.sh"
. "$P11KMS_TOP_SRCDIR/tests/lib/daemon.sh"
need_root

T=$WORK/tok
new_token "$T" p11kms
C=$T/p11kms.conf
ADM=arn:aws:iam::111122223333:role/key-admin
OPR=arn:aws:iam::111122223333:role/flink-operator
OPUID=65534
STRANGER=65533
SOCK=$WORK/run/kms.sock
chmod 711 "$WORK"; mkdir -m 755 "$WORK/run"
run "$P11KMS" --config "$C" --as "$ADM" init --operator "$OPR"; expect_rc 0 "init"
cp "$C" "$WORK/base.conf"

# --- configuration keys are checked when the file is loaded ---
badconf() { cp "$WORK/base.conf" "$T/bad.conf"; printf '%s\n' "$@" >>"$T/bad.conf"; chmod 600 "$T/bad.conf"
            run timeout 20 "$P11KMSD" --config "$T/bad.conf"; }
badconf "listen = tcp://0.0.0.0:1"
expect_rc 3 "bad listen"; expect_err_has "$T/bad.conf:8: listen: 'tcp://0.0.0.0:1' must be unix:PATH or https://ADDR:PORT" "bad listen"
badconf "listen = unix:relative.sock"
expect_rc 3 "relative socket"; expect_err_has "listen: 'unix:relative.sock': unix: needs an absolute path" "relative socket"
badconf "listen = https://127.0.0.1:99999"
expect_rc 3 "bad port"; expect_err_has "the port must be 1 to 65535" "bad port"
badconf "socket_mode = 999"
expect_rc 3 "bad mode"; expect_err_has "socket_mode: '999' is not an octal mode such as 0660" "bad mode"
badconf "principal.uid.abc = $ADM"
expect_rc 3 "bad uid"; expect_err_has "principal.uid.abc: 'abc' is not a number" "bad uid"
badconf "principal.uid.1001 = flink"
expect_rc 3 "bad arn"; expect_err_has "principal.uid.1001: 'flink' is not a principal ARN" "bad arn"
badconf "principal.uid.1001 = $ADM" "principal.uid.1001 = $OPR"
expect_rc 3 "dup principal"; expect_err_has "'principal.uid.1001' is already set on line 8" "dup principal"
badconf "principal.uid.7 = arn:aws:iam::111122223333:role/$(head -c 2100 /dev/zero | tr '\0' r)"
expect_rc 3 "long arn"; expect_err_has "principal.uid.7: the ARN is longer than 2048 characters" "long arn"
badconf "listen = unix:$WORK/x.sock" "socket_owner = no-such-user-p11kms"
expect_rc 3 "unknown socket owner"; expect_err_has "socket_owner: no user 'no-such-user-p11kms'" "unknown socket owner"
badconf "workers = 0"
expect_rc 3 "workers 0"; expect_err_has "workers: 0 is out of range (1 to 256 threads)" "workers 0"
badconf "connect = unix:$WORK/other.sock"
expect_rc 3 "connect = in the daemon's config"
expect_err_has "$T/bad.conf: connect = makes the command a client of p11kmsd; p11kmsd holds the token itself: remove it" "connect refused"
badconf "principal.other.1 = $ADM"
expect_rc 3 "unknown family"; expect_err_has "unknown key 'principal.other.1'" "unknown family"
badconf "rate_limit = 0"
run "$P11KMSD" --config "$T/bad.conf"
expect_rc 3 "no listener"; expect_err_has "nothing to listen on: add listen = unix:PATH" "no listener"
run "$P11KMSD" --bogus
expect_rc 2 "usage"; expect_err "usage: p11kmsd --config FILE" "usage"

cat >>"$C" <<EOF
listen = unix:$SOCK
socket_mode = 0666
socket_group = 65534
principal.uid.0 = $ADM
principal.uid.$OPUID = $OPR
workers = 4
EOF
start_daemon "$C"
PID=$DAEMON_PID
if [ "$(stat -c %a:%g "$SOCK")" = 666:65534 ]; then ok; else bad "socket mode:group $(stat -c %a:%g "$SOCK")"; fi

# --- health ---
HTTP=$(curl -s -o "$OUT" -w '%{http_code}' --unix-socket "$SOCK" http://p11kmsd/health)
expect_http 200 "health"; jq_is "d['token'] == 'ok' and d['version'] == '$("$P11KMS" --version | awk '{print $NF}')' and len(d['service_key']) == 36" "health fields"
# GET /ping: liveness from the loop itself, for anyone who can connect (an unmapped uid too), pipelined in a loop
HTTP=$(setpriv --reuid=$STRANGER --regid=$STRANGER --clear-groups curl -s -o - -D - -w '%{http_code}' --unix-socket "$SOCK" http://p11kmsd/ping)
if printf '%s' "$HTTP" | grep -qiE '^x-amzn-RequestId: [0-9a-f-]{36}' && [ "$(printf '%s' "$HTTP" | tail -n 1)" = '{}200' ]; then ok; else bad "ping: $HTTP"; fi
run python3 -c 'import socket,sys
s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); n=3000
s.sendall(b"GET /ping HTTP/1.1\r\nHost: p\r\n\r\n"*n); got=b""
while got.count(b"\r\n\r\n{}")<n:
    b=s.recv(65536)
    if not b: break
    got+=b
print(got.count(b"HTTP/1.1 200 OK"))' "$SOCK"
expect_out "3000" "3000 pipelined pings answered"
if grep -qE " unix:uid=$STRANGER - ping 200 " "$DAEMON_ERR"; then ok; else bad "ping not in the log"; fi
# Pipelined operations, answered in order through the workers: the client reads nothing until it has sent
# them all, so the socket fills, workers' direct writes stop part-way and the loop sends the rest. Valid and
# invalid markers alternate: the statuses show the order.
run python3 -c 'import socket,sys,re
s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.settimeout(60); n=2000
body=[b"{\"Limit\":1,\"Marker\":\"%s\"}" % (b"9999" if i % 2 == 0 else b"bad") for i in range(n)]
s.sendall(b"".join(b"POST / HTTP/1.1\r\nHost: p\r\nX-Amz-Target: TrentService.ListKeys\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: %d\r\n\r\n%s" % (len(b), b) for b in body))
got=b""
while got.count(b"HTTP/1.1 ")<n or not got.endswith(b"}"):
    b=s.recv(1<<20)
    if not b: break
    got+=b
st=re.findall(rb"HTTP/1.1 (\d+)", got); print(len(st), st == [b"200", b"400"] * (n // 2))' "$SOCK"
expect_out "2000 True" "2000 pipelined requests answered in order"
# A client that pipelines and never reads: the daemon stops reading once 1 MiB of answers waits (not its whole
# input, answered and buffered). Without that, 3 s of pings (answers 4x the request) grow the daemon by ~100 MB.
RSS0=$(awk '/^VmRSS/{print $2}' /proc/"$PID"/status)
run python3 -c 'import socket,sys,time
s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.setblocking(False)
chunk=b"GET /ping HTTP/1.1\r\nHost: p\r\n\r\n"*2000; sent=0; end=time.monotonic()+3
while time.monotonic()<end:
    try: sent+=s.send(chunk)
    except BlockingIOError: time.sleep(0.01)
print("bounded" if sent < 8<<20 else "unbounded: %d bytes taken" % sent)
time.sleep(0.5); print(int(open("/proc/%s/status" % sys.argv[2]).read().split("VmRSS:")[1].split()[0]) - int(sys.argv[3]) < 32768)' "$SOCK" "$PID" "$RSS0"
expect_out "bounded
True" "a client that does not read is not buffered for"
HTTP=$(curl -s -o "$OUT" -w '%{http_code}' --unix-socket "$SOCK" http://p11kmsd/health)
expect_http 200 "others still served"

# --- the administrator creates and manages, the operator uses ---
kms_as 0 CreateKey '{"Description":"orders"}'
expect_http 200 "CreateKey"
jq_is "set(d['KeyMetadata']) >= {'KeyId','Arn','AWSAccountId','CreationDate','Enabled','KeyState','KeySpec','KeyUsage','Description','EncryptionAlgorithms'}" "CreateKey fields"
jq_is "d['KeyMetadata']['Arn'] == 'arn:aws:kms:local:000000000000:key/' + d['KeyMetadata']['KeyId']" "CreateKey Arn"
jq_is "d['KeyMetadata']['Enabled'] is True and d['KeyMetadata']['KeyState'] == 'Enabled' and d['KeyMetadata']['Description'] == 'orders'" "CreateKey state"
jq_is "isinstance(d['KeyMetadata']['CreationDate'], int) and d['KeyMetadata']['KeySpec'] == 'SYMMETRIC_DEFAULT'" "CreateKey types"
K=$(jget "d['KeyMetadata']['KeyId']"); ARN=$(jget "d['KeyMetadata']['Arn']")
kms_as 0 GetKeyPolicy "{\"KeyId\":\"$K\"}"
expect_http 200 "GetKeyPolicy"; jq_is "d['PolicyName'] == 'default' and json.loads(d['Policy'])['Statement']" "GetKeyPolicy fields"
# Grant the operator use of the key (the admin-only default policy plus an operator statement).
POLICY=$(jget "json.dumps(json.dumps({'Version':'2012-10-17','Statement':json.loads(d['Policy'])['Statement']+[{'Sid':'Use','Effect':'Allow','Principal':{'AWS':'$OPR'},'Action':['kms:Encrypt','kms:Decrypt','kms:GenerateDataKey','kms:GenerateDataKeyWithoutPlaintext','kms:ReEncryptFrom','kms:ReEncryptTo','kms:DescribeKey'],'Resource':'*'}]}))")
kms_as 0 PutKeyPolicy "{\"KeyId\":\"$K\",\"PolicyName\":\"default\",\"Policy\":$POLICY}"
expect_http 200 "PutKeyPolicy"; if [ ! -s "$OUT" ]; then ok; else bad "PutKeyPolicy body not empty"; fi
kms_as 0 DescribeKey "{\"KeyId\":\"$ARN\"}"
expect_http 200 "DescribeKey by ARN"; jq_is "d['KeyMetadata']['KeyId'] == '$K' and d['KeyMetadata']['Arn'] == '$ARN'" "DescribeKey"
kms_as 0 CreateAlias "{\"AliasName\":\"alias/orders\",\"TargetKeyId\":\"$K\"}"
expect_http 200 "CreateAlias"
kms_as 0 ListAliases '{}'
expect_http 200 "ListAliases"
jq_is "any(a['AliasName']=='alias/orders' and a['TargetKeyId']=='$K' and a['AliasArn']=='arn:aws:kms:local:000000000000:alias/orders' for a in d['Aliases']) and d['Truncated'] is False" "ListAliases fields"
kms_as 0 ListKeys '{"Limit":1}'
expect_http 200 "ListKeys page 1"; jq_is "len(d['Keys']) == 1 and d['Truncated'] is True and d['NextMarker'] and d['Keys'][0]['KeyArn'].endswith(d['Keys'][0]['KeyId'])" "ListKeys paging"
M=$(jget "d['NextMarker']")
kms_as 0 ListKeys "{\"Limit\":1000,\"Marker\":\"$M\"}"
expect_http 200 "ListKeys page 2"; jq_is "d['Truncated'] is False and len(d['Keys']) >= 1" "ListKeys last page"
kms_as 0 ListKeys '{"Limit":1001}'
expect_aws_error 400 ValidationException "between 1 and 1000" "ListKeys limit"

PT=$(printf 'order 4711' | base64)
kms_as $OPUID Encrypt "{\"KeyId\":\"alias/orders\",\"Plaintext\":\"$PT\",\"EncryptionContext\":{\"tenant\":\"t-1\"}}"
expect_http 200 "operator Encrypt"
jq_is "d['KeyId'] == '$ARN' and d['EncryptionAlgorithm'] == 'SYMMETRIC_DEFAULT' and len(base64.b64decode(d['CiphertextBlob'])) == 50 + 10" "Encrypt fields"
BLOB=$(jget "d['CiphertextBlob']")
kms_as $OPUID Decrypt "{\"CiphertextBlob\":\"$BLOB\",\"EncryptionContext\":{\"tenant\":\"t-1\"}}"
expect_http 200 "operator Decrypt"
jq_is "d['KeyId'] == '$ARN' and base64.b64decode(d['Plaintext']) == b'order 4711' and d['EncryptionAlgorithm'] == 'SYMMETRIC_DEFAULT'" "Decrypt fields"
kms_as $OPUID Decrypt "{\"CiphertextBlob\":\"$BLOB\",\"EncryptionContext\":{\"tenant\":\"t-2\"}}"
expect_aws_error 400 InvalidCiphertextException "" "wrong context"
kms_as $OPUID Decrypt "{\"CiphertextBlob\":\"$BLOB\",\"KeyId\":\"11111111-1111-1111-1111-111111111111\",\"EncryptionContext\":{\"tenant\":\"t-1\"}}"
expect_aws_error 400 IncorrectKeyException "not encrypted under the KeyId" "Decrypt with another KeyId"
kms_as $OPUID GenerateDataKey "{\"KeyId\":\"$K\",\"KeySpec\":\"AES_256\",\"EncryptionContext\":{\"a\":\"b\"}}"
expect_http 200 "GenerateDataKey"
jq_is "len(base64.b64decode(d['Plaintext'])) == 32 and d['KeyId'] == '$ARN' and len(base64.b64decode(d['CiphertextBlob'])) == 82" "GenerateDataKey fields"
DK=$(jget "d['Plaintext']"); DKBLOB=$(jget "d['CiphertextBlob']")
kms_as $OPUID Decrypt "{\"CiphertextBlob\":\"$DKBLOB\",\"EncryptionContext\":{\"a\":\"b\"}}"
jq_is "d['Plaintext'] == '$DK'" "data key decrypts"
kms_as $OPUID GenerateDataKeyWithoutPlaintext "{\"KeyId\":\"$K\",\"NumberOfBytes\":64}"
expect_http 200 "GenerateDataKeyWithoutPlaintext"
jq_is "'Plaintext' not in d and d['KeyId'] == '$ARN' and len(base64.b64decode(d['CiphertextBlob'])) == 50 + 64" "GDKWP fields"
kms_as $OPUID GenerateDataKey "{\"KeyId\":\"$K\",\"NumberOfBytes\":1025}"
expect_aws_error 400 ValidationException "between 1 and 1024" "NumberOfBytes limit"
kms_as $OPUID GenerateDataKey "{\"KeyId\":\"$K\"}"
expect_aws_error 400 ValidationException "either KeySpec or NumberOfBytes" "GDK without size"
kms_as $OPUID ReEncrypt "{\"CiphertextBlob\":\"$BLOB\",\"SourceEncryptionContext\":{\"tenant\":\"t-1\"},\"DestinationKeyId\":\"$K\",\"DestinationEncryptionContext\":{\"tenant\":\"t-9\"}}"
expect_http 200 "ReEncrypt"
jq_is "d['SourceKeyId'] == '$ARN' and d['KeyId'] == '$ARN' and d['CiphertextBlob'] != '$BLOB' and d['SourceEncryptionAlgorithm'] == 'SYMMETRIC_DEFAULT'" "ReEncrypt fields"
RBLOB=$(jget "d['CiphertextBlob']")
kms_as $OPUID Decrypt "{\"CiphertextBlob\":\"$RBLOB\",\"EncryptionContext\":{\"tenant\":\"t-9\"}}"
jq_is "base64.b64decode(d['Plaintext']) == b'order 4711'" "re-encrypted blob decrypts"
BIG=$(head -c 4097 /dev/zero | base64 -w0)
kms_as $OPUID Encrypt "{\"KeyId\":\"$K\",\"Plaintext\":\"$BIG\"}"
expect_aws_error 400 ValidationException "between 1 and 4096" "Plaintext limit"
kms_as $OPUID Encrypt "{\"KeyId\":\"$K\",\"Plaintext\":\"not base64!\"}"
expect_aws_error 400 SerializationException "Plaintext is not valid base64" "bad base64"
for b64 in 'AB==' 'AAAA====' 'AA=A' 'QUJD RA=='; do  # stray bits, extra padding, '=' inside, a space
    kms_as $OPUID Encrypt "{\"KeyId\":\"$K\",\"Plaintext\":\"$b64\"}"
    expect_aws_error 400 SerializationException "Plaintext is not valid base64" "strict base64: $b64"
done
kms_as $OPUID Encrypt "{\"Plaintext\":\"$PT\"}"
expect_aws_error 400 ValidationException "Value null at 'KeyId'" "missing KeyId"
kms_as $OPUID GenerateRandom '{"NumberOfBytes":24}'
expect_http 200 "GenerateRandom"; jq_is "len(base64.b64decode(d['Plaintext'])) == 24" "GenerateRandom fields"

# --- separation of duties: each denial names the action ---
kms_as $OPUID DisableKey "{\"KeyId\":\"$K\"}"
expect_aws_error 400 AccessDeniedException "is not authorized to perform kms:DisableKey" "operator DisableKey"
kms_as $OPUID PutKeyPolicy "{\"KeyId\":\"$K\",\"Policy\":$POLICY}"
expect_aws_error 400 AccessDeniedException "is not authorized to perform kms:PutKeyPolicy" "operator PutKeyPolicy"
kms_as 0 Decrypt "{\"CiphertextBlob\":\"$BLOB\",\"EncryptionContext\":{\"tenant\":\"t-1\"}}"
expect_aws_error 400 AccessDeniedException "$ADM is not authorized to perform kms:Decrypt" "admin Decrypt"
kms_as $STRANGER DescribeKey "{\"KeyId\":\"$K\"}"
expect_aws_error 400 AccessDeniedException "uid $STRANGER (gid $STRANGER) is not mapped to a principal" "unmapped uid"

# --- key state operations ---
kms_as 0 GetKeyRotationStatus "{\"KeyId\":\"$K\"}"
expect_http 200 "GetKeyRotationStatus"; jq_is "d['KeyRotationEnabled'] is False and d['KeyId'] == '$ARN'" "rotation status"
kms_as 0 RotateKeyOnDemand "{\"KeyId\":\"$K\"}"
expect_http 200 "RotateKeyOnDemand"; jq_is "d['KeyId'] == '$ARN'" "RotateKeyOnDemand fields"
kms_as 0 DisableKey "{\"KeyId\":\"$K\"}"
expect_http 200 "DisableKey"
kms_as $OPUID Decrypt "{\"CiphertextBlob\":\"$BLOB\",\"EncryptionContext\":{\"tenant\":\"t-1\"}}"
expect_aws_error 409 DisabledException "" "Decrypt with a disabled key"
kms_as 0 EnableKey "{\"KeyId\":\"$K\"}"
expect_http 200 "EnableKey"
kms_as 0 ScheduleKeyDeletion "{\"KeyId\":\"$K\",\"PendingWindowInDays\":7}"
expect_http 200 "ScheduleKeyDeletion"
jq_is "d['KeyId'] == '$ARN' and d['KeyState'] == 'PendingDeletion' and d['PendingWindowInDays'] == 7 and isinstance(d['DeletionDate'], int)" "ScheduleKeyDeletion fields"
kms_as 0 ScheduleKeyDeletion "{\"KeyId\":\"$K\",\"PendingWindowInDays\":6}"
expect_aws_error 400 ValidationException "between 7 and 30" "window limit"
kms_as $OPUID Encrypt "{\"KeyId\":\"$K\",\"Plaintext\":\"$PT\"}"
expect_aws_error 409 KMSInvalidStateException "" "Encrypt with a key pending deletion"
kms_as 0 CancelKeyDeletion "{\"KeyId\":\"$K\"}"
expect_http 200 "CancelKeyDeletion"; jq_is "d['KeyId'] == '$ARN'" "CancelKeyDeletion fields"
kms_as 0 DescribeKey "{\"KeyId\":\"$K\"}"
jq_is "d['KeyMetadata']['KeyState'] == 'Disabled' and d['KeyMetadata']['Enabled'] is False" "a cancelled deletion leaves the key disabled (as AWS)"
kms_as 0 EnableKey "{\"KeyId\":\"$K\"}"
kms_as 0 DeleteAlias '{"AliasName":"alias/orders"}'
expect_http 200 "DeleteAlias"
kms_as 0 DescribeKey '{"KeyId":"alias/orders"}'
expect_aws_error 404 NotFoundException "" "deleted alias"
kms_as 0 CreateAlias "{\"AliasName\":\"orders\",\"TargetKeyId\":\"$K\"}"
expect_aws_error 400 ValidationException "AliasName must begin with alias/" "alias name"

# --- protocol errors ---
kms_as 0 CreateGrant '{}'
expect_aws_error 400 UnsupportedOperationException "CreateGrant is not supported" "unknown operation"
kms_as 0 Encrypt '{"KeyId": '
expect_aws_error 400 SerializationException "not a JSON object" "malformed JSON"
kms_as 0 Encrypt '[1]'
expect_aws_error 400 SerializationException "not a JSON object" "JSON array"
kms_as 0 Encrypt "{\"KeyId\":5,\"Plaintext\":\"$PT\"}"
expect_aws_error 400 SerializationException "KeyId must be a string" "wrong type"
HTTP=$(curl -s -o "$OUT" -w '%{http_code}' --unix-socket "$SOCK" http://p11kmsd/ -H 'X-Amz-Target: TrentService.ListKeys' -H 'Content-Type: application/json' -d '{}')
expect_aws_error 400 SerializationException "Content-Type must be application/x-amz-json-1.1" "wrong content type"
HTTP=$(curl -s -o "$OUT" -w '%{http_code}' --unix-socket "$SOCK" http://p11kmsd/ -H 'Content-Type: application/x-amz-json-1.1' -d '{}')
expect_aws_error 400 UnknownOperationException "X-Amz-Target must be TrentService" "missing target"
HTTP=$(curl -s -o "$OUT" -w '%{http_code}' -D "$WORK/headers" --unix-socket "$SOCK" http://p11kmsd/other)
expect_aws_error 404 UnknownOperationException "p11kmsd answers POST /" "other path"
if grep -qiE '^x-amzn-RequestId: [0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}' "$WORK/headers"; then ok; else bad "x-amzn-RequestId missing"; fi
head -c 1100000 /dev/zero | tr '\0' 'a' >"$WORK/big"
HTTP=$(curl -s -o "$OUT" -w '%{http_code}' --unix-socket "$SOCK" http://p11kmsd/ -H 'X-Amz-Target: TrentService.Encrypt' -H 'Content-Type: application/x-amz-json-1.1' --data-binary @"$WORK/big")
expect_aws_error 413 ValidationException "larger than 1 MiB" "body over the limit"
HTTP=$(curl -s -o "$OUT" -w '%{http_code}' --unix-socket "$SOCK" http://p11kmsd/ -H 'X-Amz-Target: TrentService.ListKeys' -H 'Content-Type: application/x-amz-json-1.1' -H "X-Pad: $(head -c 17000 /dev/zero | tr '\0' a)" -d '{}')
expect_aws_error 431 ValidationException "larger than max_header_bytes" "headers over the limit"
printf 'POST / HTTP/1.1\r\nX-A: a\0b\r\nContent-Length: 2\r\n\r\n{}' >"$WORK/nul.req"
run python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(open(sys.argv[2],"rb").read()); print(s.recv(4096).decode().split("\r\n")[0])' "$SOCK" "$WORK/nul.req"
expect_out "HTTP/1.1 400 Bad Request" "NUL byte in the head"
printf 'POST / HTTP/1.1\r\nX-A: a\x01b\r\nContent-Length: 2\r\n\r\n{}' >"$WORK/ctl.req"
run python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(open(sys.argv[2],"rb").read()); print(s.recv(4096).decode().split("\r\n")[0])' "$SOCK" "$WORK/ctl.req"
expect_out "HTTP/1.1 400 Bad Request" "control character in a header value"
HTTP=$(curl -s -o "$OUT" -w '%{http_code}' --unix-socket "$SOCK" http://p11kmsd/health)
expect_http 200 "still serving after malformed heads"
hdrs=(); for i in $(seq 1 70); do hdrs+=(-H "X-H$i: v"); done
HTTP=$(curl -s -o "$OUT" -w '%{http_code}' --unix-socket "$SOCK" http://p11kmsd/ -H 'X-Amz-Target: TrentService.ListKeys' -H 'Content-Type: application/x-amz-json-1.1' "${hdrs[@]}" -d '{}')
expect_aws_error 431 ValidationException "too many headers" "more than 64 headers"

# --- SIGHUP re-reads the principals: the stranger is mapped now ---
echo "principal.uid.$STRANGER = $OPR" >>"$C"
kill -HUP "$PID"; sleep 0.5
kms_as $STRANGER Encrypt "{\"KeyId\":\"$K\",\"Plaintext\":\"$PT\"}"
expect_http 200 "stranger mapped after SIGHUP"
if grep -qF "SIGHUP: 3 principal mappings loaded" "$DAEMON_ERR"; then ok; else bad "SIGHUP not logged"; fi

# --- nothing secret in argv, the log or the audit trail ---
if tr '\0' ' ' </proc/"$PID"/cmdline | grep -qF "$(cat "$T/user.pin")"; then bad "PIN in cmdline"; else ok; fi
stop_daemon
if [ "$DAEMON_RC" -eq 0 ]; then ok; else bad "SIGTERM exit $DAEMON_RC"; fi
if grep -qF "stopped" "$DAEMON_ERR"; then ok; else bad "no clean stop"; fi
if [ ! -e "$SOCK" ]; then ok; else bad "socket left behind"; fi
for secret in "$(cat "$T/user.pin")" "order 4711" "$PT" "$DK"; do
    if grep -qaF -- "$secret" "$DAEMON_ERR" "$T/audit.log"; then bad "a secret leaked into stderr or the audit log"; else ok; fi
done
if [ "$(grep -c 'Encrypt 200' "$DAEMON_ERR")" -ge 2 ]; then ok; else bad "request lines missing from the log"; fi
run "$P11KMS" --config "$C" audit verify
expect_rc 0 "audit verify after SIGTERM"
finish
