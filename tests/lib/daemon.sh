# Helpers for p11kmsd scenarios (source after tests/cli/lib.sh).
# start_daemon CONF: run p11kmsd in the background (stderr to $DAEMON_ERR),
# wait until GET /health answers on $SOCK; the EXIT trap always kills it.
P11KMSD=${P11KMSD_BIN:-$P11KMS_TOP_BUILDDIR/p11kmsd}
DAEMON_ERR=$WORK/daemon.err
DAEMON_PID=
KMSCLIENT="python3 $P11KMS_TOP_SRCDIR/tests/lib/kmsclient.py"

daemon_cleanup() {
    [ -n "$DAEMON_PID" ] && kill -9 "$DAEMON_PID" 2>/dev/null
    cleanup
}
trap daemon_cleanup EXIT

# need_root: the scenarios run clients as other uids (setpriv).
need_root() {
    if [ "$(id -u)" -ne 0 ]; then
        echo "SKIP: $0 runs clients as other uids and needs root (CI runs as root)" >&2
        exit 77
    fi
}

start_daemon() {
    "$P11KMSD" --config "$1" 2>>"$DAEMON_ERR" &
    DAEMON_PID=$!
    for _ in $(seq 1 100); do
        if [ -S "$SOCK" ] && curl -s --max-time 2 --unix-socket "$SOCK" http://p11kmsd/health >/dev/null 2>&1; then
            return 0
        fi
        kill -0 "$DAEMON_PID" 2>/dev/null || break
        sleep 0.1
    done
    echo "FAIL: p11kmsd did not start:"; cat "$DAEMON_ERR"; exit 1
}

stop_daemon() {
    kill -TERM "$DAEMON_PID" 2>/dev/null
    wait "$DAEMON_PID" 2>/dev/null
    DAEMON_RC=$?
    DAEMON_PID=
}

# kms_as UID OP JSON: POST one operation over the Unix socket as UID (OP with a
# '.' is a whole target, e.g. secretsmanager.GetSecretValue);
# $OUT gets the body, $HTTP the status line's code, $RC curl's exit code.
kms_as() {
    uid=$1 op=$2 body=$3
    case $op in *.*) ;; *) op=TrentService.$op ;; esac
    if [ "$uid" = "$(id -u)" ]; then pre=""; else pre="setpriv --reuid=$uid --regid=$uid --clear-groups"; fi
    # shellcheck disable=SC2086
    # The shell (not the client's uid) writes the files: the body to $OUT, the status via stderr.
    $pre curl -s -o - -w '%{stderr}%{http_code}' --max-time 30 --unix-socket "$SOCK" http://p11kmsd/ \
        -H "X-Amz-Target: $op" -H 'Content-Type: application/x-amz-json-1.1' --data-binary "$body" \
        >"$OUT" 2>"$ERR"
    RC=$?
    HTTP=$(cat "$ERR")
}

# expect_http CODE DESCRIPTION
expect_http() { if [ "$HTTP" = "$1" ]; then ok; else bad "$2: HTTP $HTTP, want $1"; fi; }
# jq_is 'PYTHON EXPRESSION over d (the response JSON)' DESCRIPTION
jq_is() {
    if python3 -c 'import json,sys,base64; d=json.load(open(sys.argv[1])); sys.exit(0 if eval(sys.argv[2]) else 1)' \
        "$OUT" "$1" 2>/dev/null; then ok; else bad "$2: not true: $1"; fi
}
# jget 'PYTHON EXPRESSION': print a value of the response
jget() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$OUT" "$1"; }
# expect_aws_error CODE TYPE 'message substring' DESCRIPTION
expect_aws_error() {
    expect_http "$1" "$4"
    jq_is "d['__type'] == '$2'" "$4"
    if grep -qF -- "$3" "$OUT"; then ok; else bad "$4: message lacks: $3"; fi
}
