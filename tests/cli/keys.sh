#!/bin/bash
# CLI scenarios for customer-managed keys (issue 3): life cycle, rotation,
# encrypt/decrypt with context, data keys, re-encrypt, aliases, store
# integrity, independent PKCS#11 inspection, and no plaintext at rest.
. "${P11KMS_TOP_SRCDIR:-.}/tests/cli/lib.sh"

T=$WORK/tok
new_token "$T" p11kms
export P11KMS_CONFIG=$T/p11kms.conf
ADM=arn:aws:iam::111122223333:role/key-admin
OPR=arn:aws:iam::111122223333:role/flink-operator
SECRET1="checkpoint-plaintext-$RANDOM-alpha"
SECRET2="second-plaintext-$RANDOM-beta"
admin() { run "$P11KMS" --as "$ADM" "$@"; }
oper() { run "$P11KMS" --as "$OPR" "$@"; }
# oper_in TEXT ARGS...: the text on stdin (never argv of p11kms).
oper_in() { printf '%s' "$1" >"$WORK/.in"; shift; run_in "$WORK/.in" "$P11KMS" --as "$OPR" "$@"; }
# Key version inside a base64 blob: bytes 18..21, big-endian.
blob_version() { printf '%s' "$1" | base64 -d | od -An -tu1 -j18 -N4 | awk '{print $1*16777216+$2*65536+$3*256+$4}'; }

# Before init, every key command says what to do.
admin key list
expect_rc 3 "not initialised"; expect_err "p11kms: store $T/p11kms.db does not exist; run p11kms init" "not initialised"
run "$P11KMS" key list
expect_rc 2 "no principal"; expect_err "p11kms: usage: no principal: pass --as ARN or set P11KMS_PRINCIPAL (see p11kms --help)" "no principal"

# A fresh init must name who may use the service key: no silent Principal "*".
admin init
expect_rc 2 "init without --operator"
expect_err "p11kms: init: name the principals that may use the service key alias/p11kms/default (--operator ARN, repeatable; --operator '*' lets every principal use it)" "init without --operator"
admin init --operator '*'
expect_rc 0 "init"; expect_out_has "initialised the store and system keys; service key " "init"
[ "$(stat -c %a "$T/p11kms.db")" = 600 ] && ok || bad "store file mode"
admin init
expect_rc 0 "init again"; expect_out_has "already initialised; service key " "init is idempotent"

# Create with separation of duties and an alias.
admin key create --alias alias/checkpoints --description "Flink checkpoints" --admin "$ADM" --operator "$OPR"
expect_rc 0 "key create"; K1=$(cat "$OUT")
[[ "$K1" =~ ^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$ ]] && ok || bad "key id is a v4 UUID"
admin key create --alias alias/checkpoints --admin "$ADM" --operator "$OPR"
expect_rc 1 "alias taken"; expect_err "p11kms: alias alias/checkpoints already exists" "alias taken"
admin key create --admin "$ADM" --operator "$OPR" --description second
expect_rc 0 "second key"; K2=$(cat "$OUT")
admin key create --rotation-days 30
expect_rc 2 "rotation too short"; expect_err "p11kms: rotation period must be 90 to 2560 days (or 0 for off)" "rotation days"
admin key create --admin "$ADM" --operator "$ADM"
expect_rc 2 "same admin and operator"
expect_err "p11kms: default policy: $ADM cannot be both administrator and operator (separation of duties)" "SoD at create"

# Encrypt / decrypt with an encryption context, by alias and by id.
oper_in "$SECRET1" encrypt --key alias/checkpoints --context job=orders --context tenant=acme
expect_rc 0 "encrypt"; B1=$(cat "$OUT")
[ "$(blob_version "$B1")" = 1 ] && ok || bad "blob names version 1"
printf '%s\n' "$B1" >"$WORK/b1"
oper decrypt --in "$WORK/b1" --context tenant=acme --context job=orders
expect_rc 0 "decrypt (context order does not matter)"; expect_out "$SECRET1" "decrypt output"
oper decrypt --in "$WORK/b1" --context job=orders --context tenant=acme --out "$WORK/plain.out"
expect_rc 0 "decrypt --out"; [ "$(cat "$WORK/plain.out")" = "$SECRET1" ] && ok || bad "decrypt --out content"
[ "$(stat -c %a "$WORK/plain.out")" = 600 ] && ok || bad "decrypt --out mode 0600"
rm -f "$WORK/plain.out"

# Wrong context, flipped bit, truncated blob: one error, no output.
oper decrypt --in "$WORK/b1" --context job=orders --context tenant=evil
expect_rc 1 "wrong context"; expect_err "p11kms: ciphertext invalid or context mismatch" "wrong context"; expect_out "" "no output"
oper decrypt --in "$WORK/b1" --context job=orders
expect_rc 1 "missing context pair"; expect_err "p11kms: ciphertext invalid or context mismatch" "missing context pair"
# flip BLOB OFFSET: the blob with one bit of byte OFFSET inverted.
flip() {
    printf '%s' "$1" | base64 -d >"$WORK/.flip"
    byte=$(od -An -tu1 -j"$2" -N1 "$WORK/.flip" | tr -d ' ')
    printf "$(printf '\\%03o' $((byte ^ 1)))" | dd of="$WORK/.flip" bs=1 seek="$2" conv=notrunc 2>/dev/null
    base64 -w0 "$WORK/.flip"
}
for off in 0 5 20 30 40 50; do
    flip "$B1" $off >"$WORK/bf"
    oper decrypt --in "$WORK/bf" --context job=orders --context tenant=acme
    expect_rc 1 "flipped bit at byte $off"; expect_err "p11kms: ciphertext invalid or context mismatch" "flipped bit at $off"
done
printf '%s' "$B1" | base64 -d | head -c 40 | base64 -w0 >"$WORK/bt"
oper decrypt --in "$WORK/bt" --context job=orders --context tenant=acme
expect_rc 1 "truncated blob"; expect_err "p11kms: ciphertext invalid or context mismatch" "truncated blob"
printf 'not base64 at all!' >"$WORK/bj"
oper decrypt --in "$WORK/bj"
expect_rc 1 "garbage blob"; expect_err "p11kms: ciphertext invalid or context mismatch" "garbage blob"

# Input limits.
head -c 4097 /dev/zero | tr '\0' 'a' >"$WORK/big"
run "$P11KMS" --as "$OPR" encrypt --key "$K1" --in "$WORK/big"
expect_rc 2 "plaintext too large"
expect_err "p11kms: encrypt: plaintext is 4097 bytes; encrypt takes at most 4096 bytes: use 'p11kms datakey' for envelope encryption" "plaintext too large"
: >"$WORK/empty"
run "$P11KMS" --as "$OPR" encrypt --key "$K1" --in "$WORK/empty"
expect_rc 2 "empty plaintext"; expect_err "p11kms: plaintext must be 1 to 4096 bytes (got 0)" "empty plaintext"
oper_in x encrypt --key "$K1" --context a=1 --context a=2
expect_rc 2 "duplicate context key"; expect_err "p11kms: encryption context key 'a' is given twice" "duplicate context key"
oper_in x encrypt --key "$K1" --context novalue
expect_rc 2 "context without ="; expect_err "p11kms: usage: --context 'novalue': expected KEY=VALUE (see p11kms --help)" "context syntax"
oper_in x encrypt --key alias/nope
expect_rc 5 "unknown alias"; expect_err "p11kms: alias alias/nope not found" "unknown alias"
oper_in x encrypt --key 7d1c0a5e-0000-4000-8000-000000000000
expect_rc 5 "unknown key"; expect_err "p11kms: key 7d1c0a5e-0000-4000-8000-000000000000 not found" "unknown key"
oper_in x encrypt --key not-a-key
expect_rc 2 "malformed key"; expect_err "p11kms: invalid key 'not-a-key': use a key id, alias/NAME or a key ARN" "malformed key"
oper_in x encrypt --key "arn:aws:kms:local:000000000000:key/$K1"
expect_rc 0 "key ARN"

# Separation of duties at use time.
run_in "$WORK/b1" "$P11KMS" --as "$ADM" decrypt --context job=orders --context tenant=acme
expect_rc 4 "admin cannot decrypt"
expect_err "p11kms: $ADM is not authorized to perform kms:Decrypt on key $K1 (ImplicitlyDenied)" "admin cannot decrypt"
oper key disable "$K1"
expect_rc 4 "operator cannot disable"
expect_err "p11kms: $OPR is not authorized to perform kms:DisableKey on key $K1 (ImplicitlyDenied)" "operator cannot disable"

# Disable -> decrypt fails -> enable -> decrypt works.
admin key disable alias/checkpoints
expect_rc 0 "disable"; expect_out "key alias/checkpoints disabled" "disable"
oper decrypt --in "$WORK/b1" --context job=orders --context tenant=acme
expect_rc 1 "decrypt disabled"; expect_err "p11kms: key $K1 is disabled" "decrypt disabled"
oper_in x encrypt --key "$K1"
expect_rc 1 "encrypt disabled"; expect_err "p11kms: key $K1 is disabled" "encrypt disabled"
admin key rotate "$K1"
expect_rc 1 "rotate disabled"; expect_err "p11kms: key $K1 must be Enabled to rotate (it is Disabled)" "rotate disabled"
admin key enable "$K1"
expect_rc 0 "enable"
oper decrypt --in "$WORK/b1" --context job=orders --context tenant=acme
expect_rc 0 "decrypt re-enabled"; expect_out "$SECRET1" "decrypt re-enabled"

# Rotate: old blobs still decrypt, new blobs name version 2.
admin key rotate alias/checkpoints
expect_rc 0 "rotate"; expect_out "key alias/checkpoints rotated to version 2" "rotate"
oper decrypt --in "$WORK/b1" --context job=orders --context tenant=acme
expect_rc 0 "old blob after rotation"; expect_out "$SECRET1" "old blob after rotation"
oper_in "$SECRET2" encrypt --key "$K1"
expect_rc 0 "encrypt after rotation"; B2=$(cat "$OUT")
[ "$(blob_version "$B2")" = 2 ] && ok || bad "new blob names version 2"
admin key describe "$K1" --json
expect_out_has '"CurrentKeyVersion":2' "describe shows version 2"
expect_out_has '"Aliases":["alias/checkpoints"]' "describe shows alias"

# Data keys.
oper datakey --key "$K1" --context purpose=checkpoint
expect_rc 0 "datakey"; DK=$(cat "$OUT")
DK_PT=$(printf '%s' "$DK" | sed -n 's/.*"Plaintext":"\([^"]*\)".*/\1/p')
DK_CT=$(printf '%s' "$DK" | sed -n 's/.*"CiphertextBlob":"\([^"]*\)".*/\1/p')
[ "$(printf '%s' "$DK_PT" | base64 -d | wc -c)" = 32 ] && ok || bad "AES_256 data key is 32 bytes"
printf '%s\n' "$DK_CT" >"$WORK/dk"
oper decrypt --in "$WORK/dk" --context purpose=checkpoint
expect_rc 0 "datakey decrypts"
[ "$(base64 -w0 <"$OUT")" = "$DK_PT" ] && ok || bad "decrypted data key equals the plaintext data key"
oper datakey --key "$K1" --spec AES_128 --no-plaintext
expect_rc 0 "datakey without plaintext"; expect_out_has '"KeyVersion":2,"CiphertextBlob":"' "without plaintext"
if grep -q Plaintext "$OUT"; then bad "no Plaintext field"; else ok; fi
oper datakey --key "$K1" --bytes 1025
expect_rc 2 "datakey too large"; expect_err "p11kms: data key size must be 1 to 1024 bytes (AES_128 = 16, AES_256 = 32)" "datakey size"
oper datakey --key "$K1" --spec AES_512
expect_rc 2 "bad spec"; expect_err "p11kms: usage: datakey: --spec must be AES_256 or AES_128 (see p11kms --help)" "bad spec"

# Re-encrypt across keys, with a new context; the operator holds both grants.
oper re-encrypt --in "$WORK/b1" --context job=orders --context tenant=acme --key "$K2" --new-context job=moved
expect_rc 0 "re-encrypt"; printf '%s\n' "$(cat "$OUT")" >"$WORK/b3"
oper decrypt --in "$WORK/b3" --context job=moved
expect_rc 0 "re-encrypted blob decrypts"; expect_out "$SECRET1" "re-encrypted plaintext"
oper decrypt --in "$WORK/b3" --context job=orders --context tenant=acme
expect_rc 1 "old context no longer works"
# Re-encrypt to the newest version of the same key.
oper re-encrypt --in "$WORK/b1" --context job=orders --context tenant=acme --key "$K1" --new-context job=orders --new-context tenant=acme
expect_rc 0 "re-encrypt same key"; [ "$(blob_version "$(cat "$OUT")")" = 2 ] && ok || bad "re-encrypt moves to version 2"
admin re-encrypt --in "$WORK/b1" --context job=orders --context tenant=acme --key "$K2"
expect_rc 4 "admin cannot re-encrypt"
expect_err "p11kms: $ADM is not authorized to perform kms:ReEncryptFrom on key $K1 (ImplicitlyDenied)" "ReEncryptFrom checked"

# Aliases.
admin alias create alias/second "$K2"
expect_rc 0 "alias create"
oper_in x encrypt --key alias/second
expect_rc 0 "encrypt by new alias"
admin alias create alias/aws/x "$K2"
expect_rc 2 "reserved alias"; expect_err "p11kms: invalid alias 'alias/aws/x': the alias/aws/ prefix is reserved" "reserved alias"
admin alias create bad-alias "$K2"
expect_rc 2 "malformed alias"; expect_err "p11kms: invalid alias 'bad-alias': it must look like alias/NAME" "malformed alias"
admin alias list
expect_rc 0 "alias list"; expect_out_has "alias/second  $K2" "alias list"
admin alias delete alias/second
expect_rc 0 "alias delete"
oper_in x encrypt --key alias/second
expect_rc 5 "deleted alias"; expect_err "p11kms: alias alias/second not found" "deleted alias"
admin alias delete alias/second
expect_rc 5 "delete missing alias"

# Schedule deletion -> crypto fails -> cancel -> Disabled.
admin key schedule-deletion "$K2" --days 3
expect_rc 2 "deletion window too short"; expect_err "p11kms: the deletion waiting period must be 7 to 30 days" "window"
admin key schedule-deletion "$K2" --days 7
expect_rc 0 "schedule deletion"; expect_out_has "key $K2 is pending deletion; it will be destroyed after " "schedule"
oper decrypt --in "$WORK/b3" --context job=moved
expect_rc 1 "decrypt pending deletion"; expect_err "p11kms: key $K2 is pending deletion" "pending deletion"
admin key enable "$K2"
expect_rc 1 "enable pending"; expect_err "p11kms: key $K2 is pending deletion; cancel the deletion first" "enable pending"
admin key schedule-deletion "$K2"
expect_rc 1 "schedule twice"; expect_err "p11kms: key $K2 is already pending deletion" "schedule twice"
admin key describe "$K2"
expect_out_has "ScheduledBy            p11kms key purge (run it daily: contrib/systemd/p11kms-purge.timer or cron)" "describe names the job that deletes"
admin key cancel-deletion "$K2"
expect_rc 0 "cancel deletion"; expect_out "key $K2 deletion cancelled; the key is Disabled" "cancel"
admin key cancel-deletion "$K2"
expect_rc 1 "cancel twice"; expect_err "p11kms: key $K2 is not pending deletion" "cancel twice"
admin key describe "$K2" --json
expect_out_has '"KeyState":"Disabled"' "cancelled key is Disabled"
admin key enable "$K2"

# Purge with nothing due changes nothing (the window itself is tested in tests/test_keys.c).
admin key purge
expect_rc 0 "purge"; expect_out '{"destroyed":[],"rotated":[]}' "purge with nothing due"

# Independent inspection: every CMK version is sensitive and never extractable.
mod=$(sed -n 's/^module = //p' "$T/p11kms.conf")
inspect() {
    (sleep 0.3; cat "$T/user.pin"; echo) | script -qec \
        "pkcs11-tool --module $mod --token-label p11kms --login --list-objects --type secrkey" /dev/null
}
inspect >"$WORK/objects" 2>&1
n_cmk=$(grep -c 'label:      p11kms:cmk:' "$WORK/objects")
n_safe=$(grep -A3 'label:      p11kms:cmk:' "$WORK/objects" | grep -c 'Access:     sensitive, always sensitive, never extractable, local')
[ "$n_cmk" -ge 3 ] && [ "$n_cmk" = "$n_safe" ] && ok || bad "pkcs11-tool: $n_cmk CMK objects, $n_safe sensitive+never-extractable"

# A key record edited outside p11kms is refused, never used.
sqlite3 "$T/p11kms.db" "UPDATE records SET body = CAST(replace(CAST(body AS TEXT), '\"state\":\"Enabled\"', '\"state\":\"Disabled\"') AS BLOB) WHERE kind='key' AND id='$K1'"
oper decrypt --in "$WORK/b1" --context job=orders --context tenant=acme
expect_rc 1 "tampered record"
expect_err "p11kms: store record key/$K1 failed integrity check: it was changed outside p11kms; refusing to use it" "tampered record"
sqlite3 "$T/p11kms.db" "UPDATE records SET body = CAST(replace(CAST(body AS TEXT), '\"state\":\"Disabled\"', '\"state\":\"Enabled\"') AS BLOB) WHERE kind='key' AND id='$K1'"
oper decrypt --in "$WORK/b1" --context job=orders --context tenant=acme
expect_rc 0 "restored record accepted"
sqlite3 "$T/p11kms.db" "UPDATE records SET body = CAST(replace(CAST(body AS TEXT), ',[2,', ',[3,') AS BLOB) WHERE kind='key' AND id='$K1'"
oper decrypt --in "$WORK/b1" --context job=orders --context tenant=acme
expect_rc 1 "version list edited"; expect_err_has "failed integrity check" "version list edited"

# init against another token with this store: refused, nothing overwritten.
mod=$(sed -n 's/^module = //p' "$T/p11kms.conf")
"$P11KMS" token init --module "$mod" --label other --so-pin-file "$T/so.pin" --pin-file "$T/user.pin" >/dev/null
sed 's/^token = .*/token = pkcs11:token=other/' "$T/p11kms.conf" >"$T/other.conf"
run "$P11KMS" --config "$T/other.conf" --as "$ADM" init
expect_rc 1 "init on another token"
expect_err_has "p11kms: this store was initialised with token 'p11kms' (serial " "init names the store's token"
expect_err_has "not with token 'other' (serial " "init names the new token"
expect_err_has "refusing to use or overwrite it" "init refuses"
run "$P11KMS" --config "$T/other.conf" --as "$ADM" key list
expect_rc 1 "open on another token"; expect_err_has "refusing to use or overwrite it" "open refuses too"

# No plaintext or key bytes at rest.
if strings "$T/p11kms.db" "$T"/p11kms.db-wal 2>/dev/null | grep -qF -e "$SECRET1" -e "$SECRET2"; then bad "plaintext in the store"; else ok; fi
if grep -qF -e "$SECRET1" -e "$SECRET2" -e "$(cat "$T/user.pin")" "$WORK/.all-stderr"; then bad "secret on stderr"; else ok; fi

if grep -qF -e "$SECRET1" -e "$SECRET2" -e "$(cat "$T/user.pin")" -e "$DK_PT" "$T/audit.log"; then bad "secret in the audit log"; else ok; fi
n_events=$(grep -c '"type":"event"' "$T/audit.log")
[ "$n_events" -gt 60 ] && ok || bad "every operation that reached p11kms has an audit record (found $n_events)"

finish
