#!/bin/bash
# p11kmsd over HTTPS on 127.0.0.1 (issue 12): TLS 1.2 or later only, a
# client certificate mapped to a principal (principal.cert.CN), and a
# request without certificate or signature refused with AWS's error.
. "${P11KMS_TOP_SRCDIR:-.}/tests/cli/lib.sh"
. "$P11KMS_TOP_SRCDIR/tests/lib/daemon.sh"
. "$P11KMS_TOP_SRCDIR/tests/lib/tls.sh"

T=$WORK/tok
new_token "$T" p11kms
C=$T/p11kms.conf
ADM=arn:aws:iam::111122223333:role/key-admin
OPR=arn:aws:iam::111122223333:role/flink-operator
SOCK=$WORK/kms.sock
make_pki "$T/pki" || { echo "FAIL: openssl cannot make the test PKI"; exit 1; }
PORT=$(free_port)
run "$P11KMS" --config "$C" --as "$ADM" init --operator "$OPR"; expect_rc 0 "init"
cat >>"$C" <<EOF
listen = unix:$SOCK
listen = https://127.0.0.1:$PORT
tls_cert = pki/server.pem
tls_key = pki/server.key
tls_client_ca = pki/ca.pem
principal.uid.$(id -u) = $ADM
principal.cert.flink-taskmanager = $OPR
EOF
start_daemon "$C"
URL=https://127.0.0.1:$PORT/
https() { # https OP JSON [curl options...]
    op=$1 body=$2; shift 2
    HTTP=$(curl -s -o "$OUT" -w '%{http_code}' --max-time 20 --cacert "$T/pki/ca.pem" "$@" "$URL" \
        -H "X-Amz-Target: TrentService.$op" -H 'Content-Type: application/x-amz-json-1.1' --data-binary "$body")
}

# The administrator makes a key the certificate's principal may use.
kms_as "$(id -u)" CreateKey '{"Description":"over tls"}'
K=$(jget "d['KeyMetadata']['KeyId']"); ARN=$(jget "d['KeyMetadata']['Arn']")
kms_as "$(id -u)" GetKeyPolicy "{\"KeyId\":\"$K\"}"
POLICY=$(jget "json.dumps(json.dumps({'Version':'2012-10-17','Statement':json.loads(d['Policy'])['Statement']+[{'Sid':'Use','Effect':'Allow','Principal':{'AWS':'$OPR'},'Action':['kms:Encrypt','kms:Decrypt'],'Resource':'*'}]}))")
kms_as "$(id -u)" PutKeyPolicy "{\"KeyId\":\"$K\",\"Policy\":$POLICY}"
expect_http 200 "policy"

PT=$(printf 'tls bytes' | base64)
https Encrypt "{\"KeyId\":\"$K\",\"Plaintext\":\"$PT\"}" --cert "$T/pki/client.pem" --key "$T/pki/client.key"
expect_http 200 "Encrypt with a client certificate"; jq_is "d['KeyId'] == '$ARN'" "Encrypt over TLS names the key ARN"
BLOB=$(jget "d['CiphertextBlob']")
https Decrypt "{\"CiphertextBlob\":\"$BLOB\"}" --cert "$T/pki/client.pem" --key "$T/pki/client.key"
expect_http 200 "Decrypt with a client certificate"; jq_is "base64.b64decode(d['Plaintext']) == b'tls bytes'" "TLS round trip"
https DisableKey "{\"KeyId\":\"$K\"}" --cert "$T/pki/client.pem" --key "$T/pki/client.key"
expect_aws_error 400 AccessDeniedException "$OPR is not authorized to perform kms:DisableKey" "certificate principal is the operator"

https ListKeys '{}'
expect_aws_error 400 MissingAuthenticationTokenException "missing Authentication Token" "no certificate, no signature"
https ListKeys '{}' -D "$WORK/refused.h" -H 'Authorization: AWS4-HMAC-SHA256 Credential=AKIAUNKNOWNUNKNOWN00/20260101/local/kms/aws4_request, SignedHeaders=host;x-amz-date, Signature=00' -H 'X-Amz-Date: 20260101T000000Z'
jq_is "d['__type'] in ('UnrecognizedClientException', 'RequestExpired', 'IncompleteSignature', 'InvalidSignatureException')" "unknown access key refused"
expect_http 400 "unknown access key refused"
# The refusal's audit record names the request id the client got.
RID=$(tr -d '\r' <"$WORK/refused.h" | sed -n 's/^x-amzn-RequestId: //Ip')
if [ -n "$RID" ] && grep -F '"action":"p11kms:Authenticate"' "$T/audit.log" | grep -qF "\"request_id\":\"$RID\""; then ok
else bad "the SigV4 refusal's audit record lacks request id '$RID'"; fi

# TLS 1.1 is refused; TLS 1.2 and 1.3 are served.
run curl -s -o /dev/null --cacert "$T/pki/ca.pem" --tlsv1.1 --tls-max 1.1 "${URL}health"
if [ "$RC" -ne 0 ]; then ok; else bad "TLS 1.1 accepted"; fi
run curl -s -o /dev/null -w '%{http_code}' --cacert "$T/pki/ca.pem" --tlsv1.2 --tls-max 1.2 "${URL}health"
expect_out "200" "TLS 1.2 health"
run curl -s -o /dev/null -w '%{http_code}' --cacert "$T/pki/ca.pem" --tlsv1.3 "${URL}health"
expect_out "200" "TLS 1.3 health"
# Keep-alive over TLS answers at once: without TCP_NODELAY each answer's second record waited for a delayed ACK (~40 ms).
run python3 -c 'import http.client,ssl,sys,time
ctx=ssl.create_default_context(cafile=sys.argv[2]); ctx.load_cert_chain(sys.argv[3],sys.argv[4])
c=http.client.HTTPSConnection("127.0.0.1",int(sys.argv[1]),context=ctx,timeout=20)
h={"X-Amz-Target":"TrentService.Encrypt","Content-Type":"application/x-amz-json-1.1"}
def call():
    c.request("POST","/",sys.argv[5],h); r=c.getresponse(); r.read(); return r.status
call(); t=time.monotonic(); st=[call() for _ in range(30)]
print(st.count(200), "slow" if time.monotonic()-t > 0.6 else "prompt")' "$PORT" "$T/pki/ca.pem" "$T/pki/client.pem" "$T/pki/client.key" "{\"KeyId\":\"$K\",\"Plaintext\":\"$PT\"}"
expect_out "30 prompt" "30 keep-alive requests over TLS within 0.6 s"
stop_daemon
if grep -qaF "$(cat "$T/user.pin")" "$DAEMON_ERR" || grep -qaF "tls bytes" "$DAEMON_ERR" "$T/audit.log"; then
    bad "a secret in the daemon's stderr or audit log"; else ok; fi
finish
