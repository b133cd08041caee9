#!/bin/bash
# p11kmsd's GET /health asks the token itself (issue 12): with the token's
# folder taken away while the daemon runs, health answers 503 and names the
# failure (the detail only in the log). SoftHSM does not take the token's
# objects back when the folder returns: a restarted daemon reports ok again.
. "${P11KMS_TOP_SRCDIR:-.}/tests/cli/lib.sh"
. "$P11KMS_TOP_SRCDIR/tests/lib/daemon.sh"

T=$WORK/tok
new_token "$T" p11kms
C=$T/p11kms.conf
ADM=arn:aws:iam::111122223333:role/key-admin
SOCK=$WORK/kms.sock
run "$P11KMS" --config "$C" --as "$ADM" init --operator '*'; expect_rc 0 "init"
printf 'listen = unix:%s\nprincipal.uid.%s = %s\n' "$SOCK" "$(id -u)" "$ADM" >>"$C"
start_daemon "$C"
health() { HTTP=$(curl -s -o "$OUT" -w '%{http_code}' --max-time 20 --unix-socket "$SOCK" http://p11kmsd/health); }

health
expect_http 200 "health with the token"; jq_is "d['token'] == 'ok' and len(d['service_key']) == 36" "token ok"
# The module's token goes away under the running daemon (SoftHSM keeps it in this folder).
mv "$T/tokens" "$T/tokens.away"
health
expect_http 503 "health without the token"; jq_is "d['token'] == 'HSM operation failed'" "token failure reported"
if grep -q CKR_ "$OUT"; then bad "the PKCS#11 detail reached an unauthenticated caller"; else ok; fi
if grep -qE 'health: C_[A-Za-z]+: CKR_' "$DAEMON_ERR"; then ok; else bad "the failure's detail is not in the log"; fi
HTTP=$(curl -s -o "$OUT" -w '%{http_code}' --max-time 20 --unix-socket "$SOCK" http://p11kmsd/ping)
expect_http 200 "the loop still answers"
mv "$T/tokens.away" "$T/tokens"
stop_daemon
if [ "$DAEMON_RC" -eq 0 ]; then ok; else bad "SIGTERM exit $DAEMON_RC"; fi
start_daemon "$C"
health
expect_http 200 "health after a restart with the token back"; jq_is "d['token'] == 'ok'" "token ok again"
stop_daemon
finish
