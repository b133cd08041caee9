#!/bin/bash
# Crash safety (issue 5): SIGKILL `secret update` and `connection alter` at
# random points, many times. Afterwards the store opens, every secret
# decrypts, and each updated secret holds either its old or its new value,
# never a mix and never nothing. The first half of the rounds runs with
# store_sync = always (the default), the second with store_sync = batch:
# a killed process loses nothing its commit completed either way, because
# committed pages are in the kernel's page cache.
. "${P11KMS_TOP_SRCDIR:-.}/tests/cli/lib.sh"

T=$WORK/tok
new_token "$T" p11kms
export P11KMS_CONFIG=$T/p11kms.conf
OPR=arn:aws:iam::111122223333:role/flink-operator
ITER=${P11KMS_CRASH_ITERATIONS:-40}
oper() { run "$P11KMS" --as "$OPR" "$@"; }

run "$P11KMS" --as "$OPR" init --operator '*'
expect_rc 0 "init"
oper secret put --namespace crash a=v0 b=v0
expect_rc 0 "put"; S=$(cat "$OUT")
oper connection create crashconn url=u0 password=p0
expect_rc 0 "connection create"
old_s='{"a":"v0","b":"v0"}'
old_c='p0'
killed=0; completed=0; bad_states=0

# SoftHSM's token.object can be emptied by a kill during C_Login (lib.sh): counted apart.
token_guard_start "$T"

# A delay in microseconds spread over one command's run time (about 30 ms).
rand_delay() { echo "0.0$(printf '%05d' $((RANDOM % 40000)))"; }

for i in $(seq 1 "$ITER"); do
    [ "$i" -eq $((ITER / 2 + 1)) ] && echo "store_sync = batch" >>"$P11KMS_CONFIG"
    new_s="{\"a\":\"v$i\",\"b\":\"v$i\"}"
    run_and_kill "$(rand_delay)" --as "$OPR" secret update "$S" "a=v$i" "b=v$i"
    [ "$kill_rc" -eq 0 ] && completed=$((completed + 1))
    oper secret get "$S"
    got=$(cat "$OUT")
    if [ "$RC" -eq 0 ] && { [ "$got" = "$old_s" ] || [ "$got" = "$new_s" ]; }; then
        old_s=$got
    else
        bad_states=$((bad_states + 1)); bad "secret after kill $i: exit $RC, '$got' is neither old nor new"
    fi

    run_and_kill "$(rand_delay)" --as "$OPR" connection alter crashconn "password=p$i" "url=u$i"
    oper connection resolve crashconn
    pw=$(sed -n 's/^password=//p' "$OUT"); url=$(sed -n 's/^url=//p' "$OUT")
    if [ "$RC" -eq 0 ] && { { [ "$pw" = "$old_c" ] && [ "$url" = "u${old_c#p}" ]; } || { [ "$pw" = "p$i" ] && [ "$url" = "u$i" ]; }; }; then
        old_c=$pw
    else
        bad_states=$((bad_states + 1)); bad "connection after kill $i: exit $RC, password '$pw' url '$url' (old $old_c)"
    fi
done
[ "$bad_states" -eq 0 ] && ok || bad "$bad_states inconsistent states"
echo "crash: $ITER rounds (half with store_sync = batch), $killed processes killed mid-run, $completed secret updates completed," \
     "$token_hits kills emptied SoftHSM's token.object during C_Login (restored)"
[ "$killed" -gt 0 ] && ok || bad "no process was killed mid-run; the test proves nothing"

# The store opens and every secret decrypts.
oper secret list --json
expect_rc 0 "store opens after the crashes"
ids=$(grep -o '"SecretId":"[^"]*"' "$OUT" | cut -d'"' -f4)
[ "$(printf '%s\n' "$ids" | grep -c .)" -eq 2 ] && ok || bad "two secrets listed"
for id in $ids; do
    oper secret get "$id"
    expect_rc 0 "secret $id decrypts after the crashes"
done
run sqlite3 "$T/p11kms.db" "PRAGMA integrity_check"
expect_out "ok" "SQLite integrity check"

finish
