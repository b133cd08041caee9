#!/bin/bash
# p11kmsd limits and startup (issue 12): socket activation (LISTEN_FDS),
# the per-principal rate limit (ThrottlingException), max_connections.
. "${P11KMS_TOP_SRCDIR:-.}/tests/cli/lib.sh"
. "$P11KMS_TOP_SRCDIR/tests/lib/daemon.sh"

T=$WORK/tok
new_token "$T" p11kms
C=$T/p11kms.conf
ADM=arn:aws:iam::111122223333:role/key-admin
SOCK=$WORK/activated.sock
run "$P11KMS" --config "$C" --as "$ADM" init --operator arn:aws:iam::111122223333:role/op; expect_rc 0 "init"
cat >>"$C" <<EOF
listen = unix:$WORK/unused.sock
principal.uid.$(id -u) = $ADM
rate_limit = 2
rate_burst = 3
max_connections = 5
EOF

# Socket activation: systemd's protocol, done by a tiny launcher (fd 3, LISTEN_PID = the daemon's pid).
DAEMON_PID=$(python3 - "$SOCK" "$P11KMSD" "$C" 2>>"$DAEMON_ERR" <<'PY'
import os, socket, sys
path, daemon, conf = sys.argv[1:]
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(path)
s.listen(16)
if s.fileno() != 3:
    os.dup2(s.fileno(), 3)
os.set_inheritable(3, True)
pid = os.fork()
if pid == 0:
    os.environ["LISTEN_PID"] = str(os.getpid())
    os.environ["LISTEN_FDS"] = "1"
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.execv(daemon, [daemon, "--config", conf])
print(pid)
PY
)
for _ in $(seq 1 100); do
    curl -s --max-time 2 --unix-socket "$SOCK" http://p11kmsd/health >/dev/null 2>&1 && break
    sleep 0.1
done
HTTP=$(curl -s -o "$OUT" -w '%{http_code}' --unix-socket "$SOCK" http://p11kmsd/health)
expect_http 200 "health on the activated socket"
if [ ! -e "$WORK/unused.sock" ]; then ok; else bad "listen lines used despite socket activation"; fi

# rate_limit 2/s with a burst of 3: the first three pass, a fast fourth to sixth is throttled.
codes=""
for i in 1 2 3 4 5 6; do kms_as "$(id -u)" ListKeys '{}'; codes="$codes $HTTP"; [ "$HTTP" = 400 ] && cp "$OUT" "$WORK/throttled"; done
case "$codes" in " 200 200 200"*400*) ok ;; *) bad "rate limit: statuses$codes" ;; esac
OUT=$WORK/throttled jq_is "d['__type'] == 'ThrottlingException' and d['message'] == 'Rate exceeded'" "ThrottlingException"
sleep 1.5
kms_as "$(id -u)" ListKeys '{}'
expect_http 200 "the bucket refills"

# max_connections 5: a sixth connection is closed at once; after they go, requests pass again.
cat >"$WORK/maxconn.py" <<'PY'
import socket, sys, time
held = []
for _ in range(5):
    c = socket.socket(socket.AF_UNIX); c.connect(sys.argv[1]); held.append(c)
time.sleep(0.3)
extra = socket.socket(socket.AF_UNIX); extra.connect(sys.argv[1]); extra.settimeout(3)
try:
    print("closed" if extra.recv(1) == b"" else "open")
except socket.timeout:
    print("open")
PY
run python3 "$WORK/maxconn.py" "$SOCK"
expect_out "closed" "the connection over max_connections is closed"
sleep 1.5
kms_as "$(id -u)" ListKeys '{}'
expect_http 200 "served again below max_connections"
if grep -qF "refused: max_connections reached" "$DAEMON_ERR"; then ok; else bad "refusal not logged"; fi
# Not our child (the launcher forked it): wait for it to go.
kill -TERM "$DAEMON_PID"
for _ in $(seq 1 100); do kill -0 "$DAEMON_PID" 2>/dev/null || break; sleep 0.1; done
if ! kill -0 "$DAEMON_PID" 2>/dev/null && grep -qF stopped "$DAEMON_ERR"; then ok; else bad "no clean stop"; fi
DAEMON_PID=
finish
