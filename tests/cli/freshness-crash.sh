#!/bin/bash
# Freshness under crashes (issue 15): SIGKILL secret updates, key disables
# and enables, and policy puts at random points, at least 300 times (bounded
# in time). The anchor in the HSM is written only after the state it names
# is durable, so a process killed between its commit and the anchor update
# leaves a store ahead of its anchor, which the next open accepts and
# re-anchors: the store always opens and is never reported as rolled back.
. "${P11KMS_TOP_SRCDIR:-.}/tests/cli/lib.sh"

T=$WORK/tok
new_token "$T" p11kms
export P11KMS_CONFIG=$T/p11kms.conf
ADM=arn:aws:iam::111122223333:role/key-admin
OPR=arn:aws:iam::111122223333:role/flink-operator
KILLS=${P11KMS_FRESH_KILLS:-300}
DEADLINE=$((SECONDS + ${P11KMS_FRESH_SECONDS:-600}))
adm() { run "$P11KMS" --as "$ADM" "$@"; }

adm init --admin "$ADM" --operator "$OPR"
expect_rc 0 "init"
adm key create --admin "$ADM" --operator "$OPR"
expect_rc 0 "key create"; K=$(cat "$OUT")
run "$P11KMS" --as "$OPR" secret put --namespace crash a=v0
expect_rc 0 "secret put"; S=$(cat "$OUT")
cat >"$WORK/p1.json" <<POL
{"Version":"2012-10-17","Statement":[{"Sid":"a","Effect":"Allow","Principal":{"AWS":"$ADM"},"Action":"kms:*","Resource":"*"},
{"Sid":"o","Effect":"Allow","Principal":{"AWS":"$OPR"},"Action":["kms:Encrypt","kms:Decrypt"],"Resource":"*"}]}
POL
cat >"$WORK/p2.json" <<POL
{"Version":"2012-10-17","Statement":[{"Sid":"a","Effect":"Allow","Principal":{"AWS":"$ADM"},"Action":"kms:*","Resource":"*"}]}
POL

# SoftHSM's token.object can be emptied by a kill during C_Login (lib.sh): counted apart.
token_guard_start "$T"
rand_delay() { printf '0.%03d' $((RANDOM % 150)); }

killed=0; completed=0; rounds=0; rolled=0; refused=0
while [ "$killed" -lt "$KILLS" ] && [ "$SECONDS" -lt "$DEADLINE" ]; do
    rounds=$((rounds + 1))
    case $((RANDOM % 4)) in
    0) set -- --as "$OPR" secret update "$S" "a=v$rounds" ;;
    1) set -- --as "$ADM" key disable "$K" ;;
    2) set -- --as "$ADM" key enable "$K" ;;
    3) set -- --as "$ADM" key put-policy "$K" "$WORK/p$((RANDOM % 2 + 1)).json" --bypass-lockout-check ;;
    esac
    run_and_kill "$(rand_delay)" "$@"
    [ "$kill_rc" -eq 0 ] && completed=$((completed + 1))
    adm key describe "$K"
    if grep -q "rolled back" "$ERR"; then
        rolled=$((rolled + 1)); bad "after kill $killed: $(cat "$ERR")"
    elif [ "$RC" -ne 0 ]; then
        refused=$((refused + 1)); bad "after kill $killed: the store does not open: $(cat "$ERR")"
    fi
done
echo "freshness-crash: $rounds rounds, $killed processes killed mid-run, $completed completed, $rolled reported as rolled back," \
     "$refused failed to open, $token_hits kills emptied SoftHSM's token.object during C_Login (restored)"
[ "$killed" -ge "$KILLS" ] && ok || bad "only $killed kills in the time allowed (want $KILLS)"
[ "$rolled" -eq 0 ] && [ "$refused" -eq 0 ] && ok || bad "$rolled rollbacks and $refused refusals reported after crashes"
grep -q "rolled back" "$WORK/.all-stderr" && bad "a killed command reported a rollback" || ok

# The store still works, and a real rollback is still refused after all this.
run "$P11KMS" --as "$ADM" key enable "$K"
run "$P11KMS" --as "$OPR" secret update "$S" a=final
expect_rc 0 "secret update after the crashes"
sqlite3 "$T/p11kms.db" "ATTACH '$WORK/s.db' AS s; CREATE TABLE s.r AS SELECT * FROM records WHERE kind='secret' AND id='$S'"
run "$P11KMS" --as "$OPR" secret update "$S" a=later
expect_rc 0 "another update"
sqlite3 "$T/p11kms.db" "ATTACH '$WORK/s.db' AS s; DELETE FROM records WHERE kind='secret' AND id='$S'; INSERT INTO records SELECT * FROM s.r"
run "$P11KMS" --as "$OPR" secret get "$S"
expect_rc 1 "rollback after the crashes"; expect_err_has "store rolled back: an earlier row of a secret record" "rollback after the crashes"
run sqlite3 "$T/p11kms.db" "PRAGMA integrity_check"
expect_out "ok" "SQLite integrity check"

finish
