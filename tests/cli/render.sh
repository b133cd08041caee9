#!/bin/bash
# CLI scenarios for render's limits (issue item 14): one audit record per
# secret however often a template names it; the placeholder and
# template-size limits; no value in any message.
. "${P11KMS_TOP_SRCDIR:-.}/tests/cli/lib.sh"

T=$WORK/tok
new_token "$T" p11kms
export P11KMS_CONFIG=$T/p11kms.conf
ADM=arn:aws:iam::111122223333:role/key-admin
OPR=arn:aws:iam::111122223333:role/flink-operator
admin() { run "$P11KMS" --as "$ADM" "$@"; }
oper() { run "$P11KMS" --as "$OPR" "$@"; }
# Every value must be found nowhere but in rendered output.
MARK="nasty-$RANDOM-kilo"

admin init --admin "$ADM"
expect_rc 0 "init"

oper secret put "hash=Xy7 #9!q$MARK" "colon=a: b$MARK"
expect_rc 0 "put"; S=$(cat "$OUT")
mkdir "$WORK/out"

# One audit record per secret, however often the template names it.
decrypts() { grep -F "\"secret_id\":\"$S\"" "$T/audit.log" | grep -c '"action":"kms:Decrypt"'; }
before=$(decrypts)
for i in $(seq 1 200); do printf 'k%d: ${secret:%s:hash} ${secret:%s:colon}\n' "$i" "$S" "$S"; done >"$WORK/many.tmpl"
oper render "$WORK/many.tmpl" -o "$WORK/out/many.yaml"
expect_rc 0 "400 placeholders, one secret"
[ "$(($(decrypts) - before))" = 1 ] && ok || bad "one audit record for a secret named 400 times (got $(($(decrypts) - before)))"
[ "$(grep -c "Xy7 #9!q$MARK" "$WORK/out/many.yaml")" = 200 ] && ok || bad "every placeholder rendered"

# Limits: 1024 placeholders, 1 MiB of template; refused before anything is decrypted.
for i in $(seq 1 1024); do printf '${secret:%s:hash}\n' "$S"; done >"$WORK/limit.tmpl"
oper render "$WORK/limit.tmpl" -o "$WORK/out/limit.txt"
expect_rc 0 "1024 placeholders"
before=$(decrypts)
printf 'x: ${secret:%s:hash}\n' "$S" >>"$WORK/limit.tmpl"
oper render "$WORK/limit.tmpl" -o "$WORK/out/over.txt"
expect_rc 2 "1025 placeholders"
expect_err "p11kms: render: line 1025: more than 1024 placeholders; the limit is 1024 per template" "placeholder limit message"
[ "$(decrypts)" = "$before" ] && ok || bad "nothing decrypted for a refused template"
[ ! -e "$WORK/out/over.txt" ] && ok || bad "nothing written over the limit"
head -c 1048576 /dev/zero | tr '\0' 'a' >"$WORK/big.tmpl"
oper render "$WORK/big.tmpl" -o "$WORK/out/big.txt"
expect_rc 0 "a 1 MiB template"
printf 'b' >>"$WORK/big.tmpl"
oper render "$WORK/big.tmpl" -o "$WORK/out/big2.txt"
expect_rc 2 "a template over 1 MiB"
expect_err "p11kms: render: template larger than the limit of 1048576 bytes (1 MiB)" "template size message"
# A stream that does not end is refused once the limit is read, not read to its end.
mkfifo "$WORK/endless"
(head -c 2000000 /dev/zero; exec sleep 60) >"$WORK/endless" &
writer=$!
timeout 30 "$P11KMS" --as "$OPR" render - <"$WORK/endless" >"$OUT" 2>"$ERR"; RC=$?
kill "$writer" 2>/dev/null; wait "$writer" 2>/dev/null
expect_rc 2 "endless template on stdin"
expect_err "p11kms: render: template larger than the limit of 1048576 bytes (1 MiB)" "endless template message"

# No value in the audit log or on stderr.
for f in "$T/audit.log" "$WORK/.all-stderr"; do
    if grep -qF -- "$MARK" "$f"; then bad "a value found in $(basename "$f")"; else ok; fi
done

finish
