#!/bin/bash
# Crash loop (issue 17): kill -9 at random points across mixed operations,
# CRASHLOOP_KILLS times (60 here; 1000 for the full run in
# docs/BENCHMARKS.md), within CRASHLOOP_SECONDS (600). Each round is one of
#   - p11kms secret update (logs in to the token),
#   - p11kms key disable / key enable,
#   - p11kms audit rotate,
#   - p11kms encrypt-file (1 MiB),
#   - p11kms secret update with `connect =` (through the daemon: no login),
#   - PutSecretValue to p11kmsd in a loop, the daemon killed,
#   - DisableKey / EnableKey to p11kmsd in a loop, the daemon killed;
# the command is killed after a random delay within its measured run time.
# After each kill: the store opens, every secret holds its last acknowledged
# value or the one in flight, every key's state likewise, an encrypt-file
# output is absent or decrypts to its input, and `audit verify` passes.
# SoftHSM 2.6.1 rewrites token.object at every C_Login; a kill then leaves
# it torn and the token gone. That is SoftHSM, not p11kms: the loop counts
# it as "token lost", restores the file from a backup and goes on.
. "${P11KMS_TOP_SRCDIR:-.}/tests/cli/lib.sh"
. "$P11KMS_TOP_SRCDIR/tests/lib/daemon.sh"
need_root

KILLS=${CRASHLOOP_KILLS:-60}
LIMIT=${CRASHLOOP_SECONDS:-600}
T=$WORK/tok
new_token "$T" p11kms
C=$T/p11kms.conf
P=arn:aws:iam::111122223333:role/key-admin
SOCK=$WORK/kms.sock
p11() { run "$P11KMS" --config "$C" --as "$P" "$@"; }

p11 init --operator '*'; expect_rc 0 "init"
printf 'listen = unix:%s\nprincipal.uid.0 = %s\n' "$SOCK" "$P" >>"$C"
# The same store through the daemon: a command with connect = never logs in.
CR=$T/remote.conf
printf 'connect = unix:%s\n' "$SOCK" >"$CR"; chmod 600 "$CR"
start_daemon "$C"

p11 secret put --namespace crash a=v0; expect_rc 0 "secret put"; S1=$(cat "$OUT")
kms_as 0 secretsmanager.CreateSecret '{"Name":"crash/daemon","SecretString":"{\"a\":\"d0\"}"}'
expect_http 200 "CreateSecret"
p11 key create; expect_rc 0 "key create K1"; K1=$(cat "$OUT")
p11 key create; expect_rc 0 "key create K2"; K2=$(cat "$OUT")
head -c 1048576 /dev/urandom >"$WORK/plain"
s1='{"a":"v0"}'; s2='{"a":"d0"}'; k1=Enabled

TOKOBJ=$(ls "$T"/tokens/*/token.object)
cp -p "$TOKOBJ" "$WORK/token.object.bak"
token_lost=0
# A login rewrites token.object whole (same size, some bytes change); one
# of another size after a kill is torn: count it and put the backup back.
guard_token() {
    if [ "$(stat -c %s "$TOKOBJ")" = "$(stat -c %s "$WORK/token.object.bak")" ]; then
        cp -p "$TOKOBJ" "$WORK/token.object.bak"; return 0
    fi
    token_lost=$((token_lost + 1))
    echo "token lost after round $round ($1): token.object $(stat -c %s "$TOKOBJ") bytes, restored"
    cp -p "$WORK/token.object.bak" "$TOKOBJ"
}

ms() { echo $(($(date +%s%N) / 1000000)); }
# calibrate NAME CMD...: the run time of one unkilled CMD, in ms.
declare -A RUNMS
calibrate() {
    name=$1; shift
    t0=$(ms); "$@" >/dev/null 2>>"$WORK/.all-stderr"; RUNMS[$name]=$(($(ms) - t0 + 5))
}
calibrate secret "$P11KMS" --config "$C" --as "$P" secret update "$S1" a=v0
calibrate key "$P11KMS" --config "$C" --as "$P" key enable "$K1"
calibrate rotate "$P11KMS" --config "$C" --as "$P" audit rotate
calibrate file "$P11KMS" --config "$C" --as "$P" encrypt-file --key alias/p11kms/default "$WORK/plain" "$WORK/cal.enc"
calibrate remote "$P11KMS" --config "$CR" secret update "$S1" a=v0
echo "run times (ms): secret ${RUNMS[secret]}, key ${RUNMS[key]}, rotate ${RUNMS[rotate]}, file ${RUNMS[file]}, remote ${RUNMS[remote]}"

# kill_cmd NAME CMD...: start CMD, SIGKILL it after a random delay within
# its run time; KILLED=1 when it was still running.
kill_cmd() {
    name=$1; shift
    "$@" >/dev/null 2>>"$WORK/.all-stderr" &
    pid=$!
    sleep "$(awk -v m="${RUNMS[$name]}" -v r="$RANDOM" 'BEGIN { printf "%.3f", m * r / 32768 / 1000 }')"
    KILLED=0; kill -9 "$pid" 2>/dev/null && KILLED=1
    wait "$pid" 2>/dev/null
}

# daemon_loop TARGET BODY-TEMPLATE: requests in a loop (@N@ = the request's
# number; TARGET toggle: DisableKey when N is odd, EnableKey when even), each logged as "try N" before and "ack N" after a 200; the daemon
# is killed after 0-300 ms and restarted.
daemon_loop() {
    (
        for n in $(seq 1 400); do
            echo "try $n" >>"$WORK/dl"
            target=$1
            [ "$1" = toggle ] && target=TrentService.$([ $((n % 2)) -eq 1 ] && echo DisableKey || echo EnableKey)
            code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 --unix-socket "$SOCK" http://p11kmsd/ \
                -H "X-Amz-Target: $target" -H 'Content-Type: application/x-amz-json-1.1' --data-binary "${2//@N@/$n}")
            [ "$code" = 200 ] || exit 0
            echo "ack $n" >>"$WORK/dl"
        done
    ) &
    loop=$!
    sleep "0.$(printf '%03d' $((RANDOM % 300)))"
    kill -9 "$DAEMON_PID"; wait "$DAEMON_PID" 2>/dev/null; DAEMON_PID=
    wait "$loop"
    KILLED=1
    TRY=$(sed -n 's/^try //p' "$WORK/dl" | tail -1); ACK=$(sed -n 's/^ack //p' "$WORK/dl" | tail -1)
    rm -f "$WORK/dl"
    start_daemon "$C"
}

# one_of WHAT GOT A B: GOT must be A or B.
one_of() {
    if [ "$2" = "$3" ] || [ "$2" = "$4" ]; then return 0; fi
    bad_states=$((bad_states + 1)); bad "round $round ($op): $1 is '$2', neither '$3' nor '$4'"; return 1
}
key_state() { p11 --json key describe "$1"; python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["KeyState"])' "$OUT" 2>/dev/null; }
other() { [ "$1" = Enabled ] && echo Disabled || echo Enabled; }

kills=0; rounds=0; bad_states=0; partial_files=0; start=$(date +%s)
declare -A BYOP RNDS
OPS=(secret key rotate file remote dsecret dkey)
while [ "$kills" -lt "$KILLS" ] && [ "$rounds" -lt $((KILLS * 4)) ] && [ $(($(date +%s) - start)) -lt "$LIMIT" ]; do
    rounds=$((rounds + 1)); round=$rounds
    op=${OPS[$((RANDOM % ${#OPS[@]}))]}
    new_s1=$s1; new_s2=$s2; new_k1=$k1
    case $op in
    secret) new_s1="{\"a\":\"v$round\"}"
        kill_cmd secret "$P11KMS" --config "$C" --as "$P" secret update "$S1" "a=v$round" ;;
    remote) new_s1="{\"a\":\"r$round\"}"
        kill_cmd remote "$P11KMS" --config "$CR" secret update "$S1" "a=r$round" ;;
    key) new_k1=$(other "$k1")
        kill_cmd key "$P11KMS" --config "$C" --as "$P" key "$([ "$k1" = Enabled ] && echo disable || echo enable)" "$K1" ;;
    rotate) kill_cmd rotate "$P11KMS" --config "$C" --as "$P" audit rotate ;;
    file) rm -f "$WORK/out.enc"
        kill_cmd file "$P11KMS" --config "$C" --as "$P" encrypt-file --key alias/p11kms/default "$WORK/plain" "$WORK/out.enc" ;;
    dsecret) daemon_loop secretsmanager.PutSecretValue "{\"SecretId\":\"crash/daemon\",\"SecretString\":\"{\\\"a\\\":\\\"d$round-@N@\\\"}\"}"
        [ -n "$ACK" ] && s2="{\"a\":\"d$round-$ACK\"}"
        [ -n "$TRY" ] && new_s2="{\"a\":\"d$round-$TRY\"}" ;;
    dkey) # odd requests disable, even ones enable (K2 starts each loop enabled)
        p11 key enable "$K2"; [ "$RC" -eq 0 ] || bad "round $round: key enable K2 before the loop"
        daemon_loop toggle "{\"KeyId\":\"$K2\"}" ;;
    esac
    RNDS[$op]=$((${RNDS[$op]:-0} + 1))
    [ "$KILLED" -eq 1 ] && { kills=$((kills + 1)); BYOP[$op]=$((${BYOP[$op]:-0} + 1)); }
    guard_token "$op"

    # The store opens; every secret and key is old or new; audit verifies.
    p11 secret get "$S1"
    [ "$RC" -eq 0 ] || { bad "round $round ($op): the store does not open"; bad_states=$((bad_states + 1)); }
    one_of "secret S1" "$(cat "$OUT")" "$s1" "$new_s1" && s1=$(cat "$OUT")
    p11 secret get crash/daemon
    one_of "secret crash/daemon" "$(cat "$OUT")" "$s2" "$new_s2" && s2=$(cat "$OUT")
    got=$(key_state "$K1"); one_of "key K1" "$got" "$k1" "$new_k1" && k1=$got
    got=$(key_state "$K2")
    if [ "$op" = dkey ]; then
        # Enabled before, after an even number of acknowledged requests; the one in flight may have landed.
        want=$([ $((${ACK:-0} % 2)) -eq 1 ] && echo Disabled || echo Enabled)
        one_of "key K2" "$got" "$want" "$([ $((${TRY:-0} % 2)) -eq 1 ] && echo Disabled || echo Enabled)"
    fi
    if [ "$op" = file ] && [ -e "$WORK/out.enc" ]; then
        p11 decrypt-file "$WORK/out.enc" "$WORK/out.dec"
        if [ "$RC" -eq 0 ] && cmp -s "$WORK/plain" "$WORK/out.dec"; then :; else
            bad_states=$((bad_states + 1)); bad "round $round: encrypt-file left an OUT that does not decrypt to IN"; fi
        rm -f "$WORK/out.dec"
    fi
    for f in "$WORK"/*out.enc?*; do [ -e "$f" ] && { partial_files=$((partial_files + 1)); rm -f "$f"; }; done
    run "$P11KMS" --config "$C" audit verify
    [ "$RC" -eq 0 ] || { bad_states=$((bad_states + 1)); bad "round $round ($op): audit verify after the kill"; }
done
[ "$bad_states" -eq 0 ] && ok || bad "$bad_states inconsistent states"
summary=""; for o in "${OPS[@]}"; do summary="$summary $o ${BYOP[$o]:-0}/${RNDS[$o]:-0},"; done
echo "crashloop: $kills kills in $rounds rounds, $(($(date +%s) - start)) s (kills/rounds by operation:${summary%,});" \
     "token lost (SoftHSM token.object torn at C_Login) $token_lost times, restored; $partial_files temporary files left by killed encrypt-file"
[ "$kills" -ge "$KILLS" ] && ok || bad "only $kills of $KILLS kills within $LIMIT s / $((KILLS * 4)) rounds"
run sqlite3 "$T/p11kms.db" "PRAGMA integrity_check"
expect_out "ok" "SQLite integrity check"
finish
