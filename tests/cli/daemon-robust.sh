#!/bin/bash
# p11kmsd robustness (issue 12, item 5): malformed JSON, a wrong content
# type, a missing target, a body over the limit, clients that disconnect
# mid-request, a slow-loris client and 1,000 idle connections, each
# alongside a well-formed client that must see 100% success. Then kill -9
# under load, restart: every acknowledged change is there and the audit
# trail verifies.
. "${P11KMS_TOP_SRCDIR:-.}/tests/cli/lib.sh"
. "$P11KMS_TOP_SRCDIR/tests/lib/daemon.sh"
need_root
ulimit -n 4096 2>/dev/null || { echo "SKIP: cannot raise the open-files limit to 4096" >&2; exit 77; }

T=$WORK/tok
new_token "$T" p11kms
C=$T/p11kms.conf
ADM=arn:aws:iam::111122223333:role/key-admin
SOCK=$WORK/kms.sock
run "$P11KMS" --config "$C" --as "$ADM" init --operator arn:aws:iam::111122223333:role/op; expect_rc 0 "init"
cat >>"$C" <<EOF
listen = unix:$SOCK
principal.uid.0 = $ADM
max_connections = 1100
read_timeout_s = 2
EOF
start_daemon "$C"
# A key the administrator may also use (admin and operator of its own key).
kms_as 0 CreateKey '{}'
K=$(jget "d['KeyMetadata']['KeyId']")
kms_as 0 GetKeyPolicy "{\"KeyId\":\"$K\"}"
POLICY=$(jget "json.dumps(json.dumps({'Version':'2012-10-17','Statement':json.loads(d['Policy'])['Statement']+[{'Sid':'Use','Effect':'Allow','Principal':{'AWS':'$ADM'},'Action':['kms:Encrypt','kms:Decrypt'],'Resource':'*'}]}))")
kms_as 0 PutKeyPolicy "{\"KeyId\":\"$K\",\"Policy\":$POLICY}"
expect_http 200 "policy for the loop"

run timeout 120 python3 "$P11KMS_TOP_SRCDIR/tests/lib/kmsclient.py" robust "$SOCK" "$K"
expect_rc 0 "abusive clients beside a well-formed one"
expect_out_has "0 failed" "the well-formed client saw 100% success"
cat "$OUT"

# kill -9 under load, then restart.
timeout 60 python3 "$P11KMS_TOP_SRCDIR/tests/lib/kmsclient.py" churn "$SOCK" "$WORK/acked" 30 &
CHURN=$!
sleep 3
kill -9 "$DAEMON_PID"; wait "$DAEMON_PID" 2>/dev/null; DAEMON_PID=
sleep 0.5
start_daemon "$C"
wait "$CHURN"
run timeout 120 python3 "$P11KMS_TOP_SRCDIR/tests/lib/kmsclient.py" check "$SOCK" "$WORK/acked"
expect_rc 0 "every acknowledged CreateKey/DisableKey survived kill -9"
cat "$OUT"
# SIGTERM under load: in-flight requests are answered whole, then a clean exit.
run timeout 60 python3 "$P11KMS_TOP_SRCDIR/tests/lib/kmsclient.py" drain "$SOCK" "$K" "$DAEMON_PID"
expect_rc 0 "SIGTERM finishes in-flight requests"
cat "$OUT"
wait "$DAEMON_PID"; DAEMON_RC=$?; DAEMON_PID=
if [ "$DAEMON_RC" -eq 0 ]; then ok; else bad "exit $DAEMON_RC after SIGTERM under load"; fi
if grep -qE "signal 15: finishing [0-9]+ in-flight requests" "$DAEMON_ERR" && tail -1 "$DAEMON_ERR" | grep -qF stopped; then
    ok; else bad "drain not logged"; fi
run "$P11KMS" --config "$C" audit verify
expect_rc 0 "audit verify after kill -9, restart and SIGTERM"
finish
