#!/bin/bash
# The Java FLIP-529 client against a real p11kmsd on a fresh token (issue 13):
# store/get/update/remove over the Unix socket (through the factory, from a
# Map of table.secret-store.p11kms.* options) and over HTTPS with SigV4,
# SecretNotFoundException, 16 threads with no torn read, the operator reading
# and the administrator denied, and no secret value in the daemon's stderr,
# its audit log, the JVM's command line or the test's output.
# Skips loudly (77) until p11kmsd is built and serves secretsmanager.*.
. "${P11KMS_TOP_SRCDIR:-.}/tests/cli/lib.sh"

skip() {
    [ -n "${DAEMON_PID:-}" ] && kill -TERM "$DAEMON_PID" 2>/dev/null && wait "$DAEMON_PID" 2>/dev/null
    DAEMON_PID=
    echo "SKIP: $0: $1"; echo "SKIP: $0: $1" >&2; exit 77
}
CLASSES=$P11KMS_TOP_BUILDDIR/clients/java/test-classes
P11KMSD=${P11KMSD_BIN:-$P11KMS_TOP_BUILDDIR/p11kmsd}
[ -n "${P11KMS_JAVA:-}" ] && [ -d "$CLASSES" ] || skip "no JDK found by configure (or --without-java)"
[ -x "$P11KMSD" ] || skip "p11kmsd is not built ($P11KMSD)"
command -v curl >/dev/null && command -v openssl >/dev/null || skip "needs curl and openssl"

DAEMON_PID=
java_cleanup() { [ -n "$DAEMON_PID" ] && kill -9 "$DAEMON_PID" 2>/dev/null; cleanup; }
trap java_cleanup EXIT

T=$WORK/tok
new_token "$T" p11kms
C=$T/p11kms.conf
ADM=arn:aws:iam::111122223333:role/key-admin
OPR=arn:aws:iam::111122223333:role/flink-operator
SOCK=$WORK/kms.sock
MARK="jmark-$RANDOM$RANDOM-secret"
run "$P11KMS" --config "$C" --as "$ADM" init --admin "$ADM" --operator "$OPR"; expect_rc 0 "init"

# Access keys: the secrets go straight from the command's stdout into 0600 files.
access_key() { # access_key PRINCIPAL NAME: sets AKID, writes $WORK/NAME.secret
    umask 077
    "$P11KMS" --config "$C" --as "$ADM" access-key create --principal "$1" >"$WORK/.ak" 2>"$WORK/.ak.err" ||
        skip "p11kms access-key create failed: $(cat "$WORK/.ak.err")"
    AKID=$(awk '/^AccessKeyId:/ {print $2}' "$WORK/.ak")
    awk '/^SecretAccessKey:/ {print $2}' "$WORK/.ak" >"$WORK/$2.secret"
    rm -f "$WORK/.ak"
    umask 022
}
access_key "$OPR" opr; OPR_AKID=$AKID
access_key "$ADM" adm; ADM_AKID=$AKID

# A throwaway CA and a server certificate for 127.0.0.1.
P=$T/pki; mkdir -p "$P"
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=p11kms-java-ca -keyout "$P/ca.key" -out "$P/ca.pem" \
    2>/dev/null && openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout "$P/server.key" \
    -out "$P/server.csr" 2>/dev/null && printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' >"$P/ext" &&
    openssl x509 -req -in "$P/server.csr" -CA "$P/ca.pem" -CAkey "$P/ca.key" -CAcreateserial -days 1 \
    -extfile "$P/ext" -out "$P/server.pem" 2>/dev/null || { echo "FAIL: openssl cannot make the test PKI"; exit 1; }
chmod 600 "$P"/*.key
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
cat >>"$C" <<EOF2
listen = unix:$SOCK
listen = https://127.0.0.1:$PORT
tls_cert = pki/server.pem
tls_key = pki/server.key
principal.uid.$(id -u) = $OPR
EOF2

"$P11KMSD" --config "$C" 2>>"$WORK/daemon.err" &
DAEMON_PID=$!
for _ in $(seq 1 100); do
    [ -S "$SOCK" ] && curl -s --max-time 2 --unix-socket "$SOCK" http://p11kmsd/health >/dev/null 2>&1 && break
    kill -0 "$DAEMON_PID" 2>/dev/null || { echo "FAIL: p11kmsd did not start:"; cat "$WORK/daemon.err"; exit 1; }
    sleep 0.1
done

# A CMK for the data-key checks, whose policy lets the operator (this uid) use it.
POL=$(python3 -c 'import json,sys; print(json.dumps(json.dumps({"Version":"2012-10-17","Statement":[{"Sid":"Op",
"Effect":"Allow","Principal":{"AWS":sys.argv[1]},"Action":["kms:*"],"Resource":"*"}]})))' "$OPR")
curl -s --max-time 30 --unix-socket "$SOCK" http://p11kmsd/ -H 'X-Amz-Target: TrentService.CreateKey' \
    -H 'Content-Type: application/x-amz-json-1.1' --data-binary "{\"Description\":\"java\",\"Policy\":$POL}" \
    >"$WORK/key.json"
KEY=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["KeyMetadata"]["Arn"])' "$WORK/key.json" 2>/dev/null)
if [ -n "$KEY" ]; then ok; else bad "CreateKey for the data-key checks: $(head -c 300 "$WORK/key.json")"; fi

# Everything the JVM needs is in a file: nothing secret on its command line.
PROPS=$WORK/java.properties
{
    echo "unix_endpoint=unix:$SOCK"
    echo "https_endpoint=https://127.0.0.1:$PORT"
    echo "ca_file=$P/ca.pem"
    echo "opr_akid=$OPR_AKID"; echo "opr_secret_file=$WORK/opr.secret"
    echo "adm_akid=$ADM_AKID"; echo "adm_secret_file=$WORK/adm.secret"
    echo "marker=$MARK"
    # The SigV4 scope's region: the daemon's, as its ARNs show it.
    [ -n "$KEY" ] && echo "region=$(echo "$KEY" | cut -d: -f4)"
    [ -n "$KEY" ] && echo "kms_key=$KEY"
} >"$PROPS"

JOUT=$WORK/java.out
"$P11KMS_JAVA" -cp "$CLASSES" org.p11kms.flink.test.SecretStoreTest probe "$PROPS" >"$JOUT" 2>&1
RC=$?
if [ $RC -eq 77 ]; then skip "$(cat "$JOUT")"; fi
if [ $RC -ne 0 ]; then echo "FAIL: probe: $(cat "$JOUT")"; exit 1; fi

"$P11KMS_JAVA" -cp "$CLASSES" org.p11kms.flink.test.SecretStoreTest run "$PROPS" >"$JOUT" 2>&1 &
JPID=$!
# The JVM's command line, once bash has exec'd it.
for _ in $(seq 1 100); do
    tr '\0' ' ' <"/proc/$JPID/cmdline" >"$WORK/jvm.cmdline" 2>/dev/null
    grep -q SecretStoreTest "$WORK/jvm.cmdline" && break
    sleep 0.05
done
wait $JPID
RC=$?
cat "$JOUT"
if [ $RC -eq 0 ] && grep -q ' 0 failed' "$JOUT"; then ok; else bad "SecretStoreTest: exit $RC"; fi
grep -q 'SecretStoreTest' "$WORK/jvm.cmdline" && ok || bad "the JVM's command line was not captured"

kill -TERM "$DAEMON_PID"; wait "$DAEMON_PID"; DAEMON_PID=
AUDIT=$(ls "$T"/audit*.log "$T"/*.audit 2>/dev/null)
for f in "$WORK/daemon.err" $AUDIT "$WORK/jvm.cmdline" "$JOUT" "$WORK/.all-stderr" "$T/p11kms.db"; do
    [ -f "$f" ] || continue
    if grep -qaF -- "$MARK" "$f"; then bad "a secret value in $(basename "$f")"; else ok; fi
done
for s in opr adm; do
    if grep -qaF -- "$(cat "$WORK/$s.secret")" "$WORK/daemon.err" "$WORK/jvm.cmdline" "$JOUT" $AUDIT; then
        bad "the $s secret access key leaked"; else ok; fi
done
finish
