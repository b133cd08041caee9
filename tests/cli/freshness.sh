#!/bin/bash
# Freshness (issue 15): a store rolled back outside p11kms, one row or the
# whole file, is refused with the integrity error naming what is stale, and
# `store accept-restore` is the only way back. Rows are saved and put back
# with the sqlite3 shell, as someone who can write the file but has no PIN.
. "${P11KMS_TOP_SRCDIR:-.}/tests/cli/lib.sh"

T=$WORK/tok
new_token "$T" p11kms
export P11KMS_CONFIG=$T/p11kms.conf
DB=$T/p11kms.db
ADM=arn:aws:iam::111122223333:role/key-admin
OPR=arn:aws:iam::111122223333:role/flink-operator
adm() { run "$P11KMS" --as "$ADM" "$@"; }
oper() { run "$P11KMS" --as "$OPR" "$@"; }
HINT="refusing the store; if a backup was restored on purpose, run p11kms store accept-restore"

# save NAME KIND ID / restore NAME KIND ID: one row, kept in a side database.
save() { sqlite3 "$DB" "ATTACH '$WORK/$1.db' AS s; CREATE TABLE s.r AS SELECT * FROM records WHERE kind='$2' AND id='$3'"; }
restore() {
    sqlite3 "$DB" "ATTACH '$WORK/$1.db' AS s; DELETE FROM records WHERE kind='$2' AND id='$3';
                   INSERT INTO records SELECT * FROM s.r"
}
# rollback NAME KIND ID WHAT: put the saved row back, expect the refusal, then undo it.
refused() {
    local kind=$1 msg=$2 what=$3
    oper decrypt --in "$WORK/blob" --context job=orders
    expect_rc 1 "$what: decrypt"
    expect_err "p11kms: store rolled back: $msg; $HINT" "$what: decrypt"
    adm key describe "$K"
    expect_rc 1 "$what: describe"
}
earlier() { echo "an earlier row of a $1 record was put back (the $1 records differ from the store's anchored state)"; }

adm init --admin "$ADM" --operator "$OPR"
expect_rc 0 "init"
adm key create --alias alias/orders --admin "$ADM" --operator "$OPR"
expect_rc 0 "key create"; K=$(cat "$OUT")
adm key create --admin "$ADM" --operator "$OPR"
expect_rc 0 "key create 2"; K2=$(cat "$OUT")
printf 'payload' >"$WORK/pt"
oper encrypt --key "$K" --context job=orders --in "$WORK/pt"
expect_rc 0 "encrypt"; cp "$OUT" "$WORK/blob"

# 1. A disabled key's earlier (Enabled) row.
save key0 key "$K"
adm key disable "$K"
expect_rc 0 "disable"
save key1 key "$K"
restore key0 key "$K"
refused key "$(earlier key)" "disabled key"
restore key1 key "$K"
adm key enable "$K"
expect_rc 0 "store back as it was: enable"

# 2. A key policy: the earlier policy (with the operator) comes back after it was replaced.
save pol0 key "$K"
cat >"$WORK/policy.json" <<POL
{"Version":"2012-10-17","Statement":[{"Sid":"admin","Effect":"Allow","Principal":{"AWS":"$ADM"},"Action":"kms:*","Resource":"*"}]}
POL
adm key put-policy "$K" "$WORK/policy.json"
expect_rc 0 "put-policy"
save pol1 key "$K"
restore pol0 key "$K"
refused key "$(earlier key)" "key policy"
restore pol1 key "$K"

# 3. An alias moved to another key, and its earlier row put back.
save al0 alias alias/orders
adm alias delete alias/orders
expect_rc 0 "alias delete"
adm alias create alias/orders "$K2"
expect_rc 0 "alias move"
save al1 alias alias/orders
restore al0 alias alias/orders
refused alias "$(earlier alias)" "alias"
restore al1 alias alias/orders

# 4. A rotated secret's old value, and 5. a removed secret put back.
oper secret put --namespace app password=old
expect_rc 0 "secret put"; S=$(cat "$OUT")
save sec0 secret "$S"
oper secret update "$S" password=new
expect_rc 0 "secret update"
save sec1 secret "$S"
restore sec0 secret "$S"
oper secret get "$S"
expect_rc 1 "updated secret: get"
expect_err "p11kms: store rolled back: $(earlier secret); $HINT" "updated secret: get"
restore sec1 secret "$S"
oper secret get "$S" --field password
expect_rc 0 "secret back as it was"; expect_out "new" "secret back as it was"
oper secret rm "$S"
expect_rc 0 "secret rm"
restore sec1 secret "$S"
oper secret get "$S"
expect_rc 1 "removed secret: get"
expect_err "p11kms: store rolled back: a deleted secret record was put back (1 secret records, its anchored state has 0); $HINT" "removed secret: get"
sqlite3 "$DB" "DELETE FROM records WHERE kind='secret' AND id='$S'"

# 6. A connection's earlier row.
oper connection create db1 url=u0 password=p0
expect_rc 0 "connection create"
save conn0 conn db1
oper connection alter db1 password=p1
expect_rc 0 "connection alter"
save conn1 conn db1
restore conn0 conn db1
oper connection resolve db1
expect_rc 1 "connection: resolve"
expect_err "p11kms: store rolled back: $(earlier conn); $HINT" "connection: resolve"
restore conn1 conn db1

# A deleted record: the connection's row removed.
save conn2 conn db1
sqlite3 "$DB" "DELETE FROM records WHERE kind='conn' AND id='db1'"
oper connection list
expect_rc 1 "deleted connection"
expect_err "p11kms: store rolled back: a conn record was deleted outside p11kms (0 conn records, its anchored state has 1); $HINT" "deleted connection"
restore conn2 conn db1
oper connection list
expect_rc 0 "store back as it was"

# 7. The whole store file replaced by an older copy (a backup).
sqlite3 "$DB" "PRAGMA wal_checkpoint(TRUNCATE)" >/dev/null
cp "$DB" "$WORK/backup.db"
adm key disable "$K2"
expect_rc 0 "disable after the backup"
oper secret put --namespace app token=t1
expect_rc 0 "secret put after the backup"
sqlite3 "$DB" "PRAGMA wal_checkpoint(TRUNCATE)" >/dev/null
cp "$DB" "$WORK/current.db"
cp "$WORK/backup.db" "$DB"; rm -f "$DB-wal" "$DB-shm"
adm key describe "$K2"
expect_rc 1 "whole file"
expect_err_has "p11kms: store rolled back: the whole store is older than its anchor in the HSM (store state " "whole file"
expect_err_has "): an older copy of the store was put in place; $HINT" "whole file"
STATE=$(sed -n 's/.*(store state \([0-9]*\), anchored state \([0-9]*\)).*/\1/p' "$ERR")
ANCHORED=$(sed -n 's/.*(store state \([0-9]*\), anchored state \([0-9]*\)).*/\2/p' "$ERR")
oper secret list
expect_rc 1 "whole file stays refused"
cp "$WORK/current.db" "$DB"; rm -f "$DB-wal" "$DB-shm"
adm key describe "$K2"
expect_rc 0 "current file accepted again"; expect_out_has "Disabled" "current file accepted again"

# 8. store accept-restore: the backup back into service, on purpose, by a key administrator.
cp "$WORK/backup.db" "$DB"; rm -f "$DB-wal" "$DB-shm"
run "$P11KMS" --as "$ADM" store accept-restore
expect_rc 2 "accept-restore without a reason"
expect_err "p11kms: usage: store accept-restore: --reason TEXT is required (why the store goes back to an older state) (see p11kms --help)" "no reason"
run "$P11KMS" --as "$ADM" store accept-restore --reason
expect_rc 2 "--reason without its text"
expect_err "p11kms: usage: --reason needs a value (see p11kms --help)" "--reason without its text"
adm store accept-restore --reason ""
expect_rc 2 "empty reason"
expect_err "p11kms: store accept-restore: --reason TEXT is required (why the store goes back to an older state)" "empty reason"
adm store accept-restore --reason "$(printf 'two\nlines')"
expect_rc 2 "reason on two lines"
expect_err "p11kms: store accept-restore: --reason must be printable text on one line" "reason on two lines"
oper store accept-restore --reason "restored backup"
expect_rc 4 "accept-restore by an operator"
expect_err_has "is not authorized to perform kms:PutKeyPolicy" "accept-restore by an operator"
adm store accept-restore --reason "restored backup" --dry-run
expect_rc 0 "dry run"
expect_out "store state $((STATE)), anchored state $((ANCHORED))
lost: the changes of $((ANCHORED - STATE)) write transactions made after this copy of the store (the audit trail names them)
dry run: nothing changed" "dry run prints what would be lost"
adm key describe "$K2"
expect_rc 1 "still refused after a dry run"
adm store accept-restore --reason "restored backup INC-4711"
expect_rc 0 "accept-restore"
expect_out_has "lost: the changes of $((ANCHORED - STATE)) write transactions" "accept-restore names the loss"
expect_out_has "accepted: the store is anchored to its records as they are now" "accept-restore"
adm key describe "$K2"
expect_rc 0 "restored store in service"; expect_out_has "Enabled" "the backup's state is back"
grep '"p11kms:AcceptRestore"' "$T/audit.log" >"$WORK/accept.rec"
grep -q '"reason":"restored backup INC-4711"' "$WORK/accept.rec" && grep -q '"result":"ok"' "$WORK/accept.rec" &&
    grep -q "\"lost_write_transactions\":\"$((ANCHORED - STATE))\"" "$WORK/accept.rec" && ok ||
    bad "audit record of accept-restore: $(cat "$WORK/accept.rec")"
run "$P11KMS" audit verify
expect_rc 0 "audit trail verifies"
# The newer file is now the stale one.
sqlite3 "$DB" "PRAGMA wal_checkpoint(TRUNCATE)" >/dev/null
cp "$DB" "$WORK/accepted.db"
cp "$WORK/current.db" "$DB"; rm -f "$DB-wal" "$DB-shm"
adm key describe "$K2"
expect_rc 1 "the newer copy is refused after accept-restore"
expect_err_has "store rolled back: the whole store is older than its anchor in the HSM" "the newer copy is refused"
cp "$WORK/accepted.db" "$DB"; rm -f "$DB-wal" "$DB-shm"

# 9. The HSM enforces the key state: disable takes the key's usage away in the token, so even a
#    disabled key's Enabled row accepted back (accept-restore) cannot make the HSM use it.
adm key create --admin "$ADM" --operator "$OPR"
expect_rc 0 "key create 3"; K3=$(cat "$OUT")
oper encrypt --key "$K3" --context job=k3 --in "$WORK/pt"
expect_rc 0 "encrypt under K3"; cp "$OUT" "$WORK/blob3"
usage() {
    pkcs11-tool --module "$(sed -n 's/^module = //p' "$P11KMS_CONFIG")" --login --pin "$(cat "$T/user.pin")" \
        --list-objects --type secrkey 2>/dev/null | grep -A2 "cmk:$K3:v1" | sed -n 's/^ *Usage: *//p'
}
[ "$(usage)" = "encrypt, decrypt, wrap, unwrap" ] && ok || bad "K3 usage before disable: $(usage)"
save k3on key "$K3"
adm key disable "$K3"
expect_rc 0 "disable K3"
[ "$(usage)" = "none" ] && ok || bad "K3 usage after disable: $(usage)"
restore k3on key "$K3"
adm store accept-restore --reason "test: the HSM still refuses"
expect_rc 0 "accept the Enabled row"
adm key describe "$K3"
expect_out_has "Enabled" "the store says Enabled"
oper decrypt --in "$WORK/blob3" --context job=k3
expect_rc 1 "the HSM refuses the key"; expect_err_has "CKR_KEY_FUNCTION_NOT_PERMITTED" "the HSM refuses the key"
adm key disable "$K3"
adm key enable "$K3"
expect_rc 0 "enable K3"
[ "$(usage)" = "encrypt, decrypt, wrap, unwrap" ] && ok || bad "K3 usage after enable: $(usage)"
oper decrypt --in "$WORK/blob3" --context job=k3
expect_rc 0 "decrypt after enable"
adm key schedule-deletion "$K3" --days 7
expect_rc 0 "schedule deletion"
[ "$(usage)" = "none" ] && ok || bad "K3 usage after schedule-deletion: $(usage)"

# 10. The audit trail against the head anchored with the store.
AUDIT=$T/audit.log
run "$P11KMS" audit verify
expect_rc 0 "trail verifies"
cp "$AUDIT" "$WORK/audit.cut"   # a seal boundary: every command seals its records when it closes
adm key cancel-deletion "$K3"
expect_rc 0 "more changes"
adm key enable "$K3"
expect_rc 0 "more changes 2"
cp "$AUDIT" "$WORK/audit.full"
cp "$WORK/audit.cut" "$AUDIT"
run "$P11KMS" audit verify
expect_rc 1 "trail cut back to a seal boundary"
expect_err_has "truncated: the trail ends at seq " "cut back"
expect_err_has "before the head anchored in the HSM (seq " "cut back"
run "$P11KMS" --json audit verify
expect_out_has '"problem":"truncated"' "cut back: json"
cp "$WORK/audit.full" "$AUDIT"
run "$P11KMS" audit verify
expect_rc 0 "the whole trail verifies again"
run "$P11KMS" audit rotate
expect_rc 0 "rotate 1"
adm key disable "$K3"
run "$P11KMS" audit rotate
expect_rc 0 "rotate 2"
adm key enable "$K3"
newest=$(ls "$AUDIT".* | sort | tail -n 1)
rm -f "$newest" "$AUDIT"
run "$P11KMS" audit verify
expect_rc 1 "newest files deleted"
expect_err_has "truncated: the trail ends at seq " "newest files deleted"

# 11. Migration: a store from before freshness (no meta/fresh, no anchor in the token) opens, and its
#     first open with the PIN anchors it; its pre-migration copy is refused afterwards.
T2=$WORK/tok2
new_token "$T2" p11kms
export P11KMS_CONFIG=$T2/p11kms.conf
DB2=$T2/p11kms.db
adm init --admin "$ADM" --operator "$OPR"
expect_rc 0 "init 2"
adm key create --admin "$ADM" --operator "$OPR"
expect_rc 0 "key create on store 2"; K4=$(cat "$OUT")
SVC=$(run "$P11KMS" --as "$ADM" key describe alias/p11kms/default >/dev/null; sed -n 's/^KeyId *//p' "$OUT")
MOD=$(sed -n 's/^module = //p' "$P11KMS_CONFIG")
for slot in 0 1; do
    id=$(printf 'p11kms-anchor-%s %s' "$slot" "$SVC" | od -An -tx1 | tr -d ' \n')
    pkcs11-tool --module "$MOD" --login --pin "$(cat "$T2/user.pin")" --delete-object --type secrkey --id "$id" >/dev/null 2>&1 ||
        bad "delete anchor slot $slot"
done
sqlite3 "$DB2" "DELETE FROM records WHERE kind='meta' AND id='fresh'; PRAGMA wal_checkpoint(TRUNCATE);" >/dev/null
cp "$DB2" "$WORK/old-format.db"
adm key describe "$K4"
expect_rc 0 "an old store opens"; expect_out_has "Enabled" "an old store opens"
[ "$(sqlite3 "$DB2" "SELECT count(*) FROM records WHERE kind='meta' AND id='fresh'")" = 1 ] && ok || bad "meta/fresh written at the first open"
adm key disable "$K4"
expect_rc 0 "disable on the migrated store"
cp "$WORK/old-format.db" "$DB2"; rm -f "$DB2-wal" "$DB2-shm"
adm key describe "$K4"
expect_rc 1 "the pre-migration copy is refused"
expect_err "p11kms: store rolled back: the whole store is older than its anchor in the HSM (it has no freshness record, anchored state 3): an older copy of the store was put in place; $HINT" "the pre-migration copy is refused"

finish
