#!/bin/bash
# CLI scenarios for the audit trail: verify a clean series, name tampering
# by file, line and sequence number (text and --json), rotate, and detect a
# missing rotated file. Needs `p11kms init` (it creates the audit key);
# until the command exists this scenario is skipped (exit 77).
. "${P11KMS_TOP_SRCDIR:-.}/tests/cli/lib.sh"

if ! "$P11KMS" --help 2>/dev/null | grep -qE '^  init( |$)'; then
    echo "SKIP: p11kms has no init command yet (it creates the audit key)"
    echo "0 passed, 0 failed"
    exit 77
fi

T=$WORK/tok
new_token "$T"
C="--config $T/p11kms.conf"
ALICE=arn:aws:iam::111122223333:user/alice

run "$P11KMS" $C --as "$ALICE" init --operator '*'
expect_rc 0 "init creates the audit key"

# Usage errors.
run "$P11KMS" $C audit
expect_rc 2 "audit without subcommand"
expect_err "p11kms: usage: audit verify [FILE...] [--allow-unsealed] | audit rotate | audit files (see p11kms --help)" "audit usage"
run "$P11KMS" $C audit frob
expect_rc 2 "unknown audit subcommand"; expect_err "p11kms: usage: unknown audit command 'frob' (see p11kms --help)" "unknown audit subcommand"
run "$P11KMS" $C audit verify --bogus
expect_rc 2 "unknown verify option"; expect_err "p11kms: usage: audit verify: unexpected '--bogus' (see p11kms --help)" "unknown verify option"

# Rotation: each rotate records who asked, seals, renames and links.
run "$P11KMS" $C --as "$ALICE" audit rotate
expect_rc 0 "first rotate"; expect_out "rotated $T/audit.log to $T/audit.log.000001" "first rotate names the file"
run "$P11KMS" $C --as "$ALICE" audit rotate --json
expect_rc 0 "second rotate"; expect_out "{\"path\":\"$T/audit.log\",\"rotated\":\"$T/audit.log.000002\"}" "rotate --json"
run "$P11KMS" $C audit files
expect_rc 0 "audit files"
expect_out "$(printf '%s\n' "$T/audit.log.000001" "$T/audit.log.000002" "$T/audit.log")" "audit files lists the series"

# A clean series verifies.
run "$P11KMS" $C audit verify
expect_rc 0 "verify clean series"; expect_out_has "audit log verified: 3 files," "verify summary"
run "$P11KMS" $C audit verify --json
expect_rc 0 "verify --json clean"; expect_out_has '{"ok":true,"files":3,' "verify --json ok"
expect_out_has '"unreadable":0,' "verify --json counts unreadable lines"
grep -q '"action":"RotateAuditLog"' "$T/audit.log.000002" && ok || bad "rotation is itself audited"
grep -q "\"principal\":\"$ALICE\"" "$T/audit.log.000002" && ok || bad "rotation names the principal"
if grep -qF "$(cat "$T/user.pin")" "$T"/audit.log*; then bad "the PIN appears in the audit log"; else ok; fi

# Tampering with one field is found at its line, with its sequence number.
F=$T/audit.log.000002
cp "$F" "$WORK/backup"
line=$(grep -n '"action":"RotateAuditLog"' "$F" | head -1 | cut -d: -f1)
seq=$(sed -n "${line}p" "$F" | sed 's/^{"v":1,"seq":\([0-9]*\),.*/\1/')
sed -i "${line}s|user/alice|user/mallory|" "$F"
run "$P11KMS" $C audit verify
expect_rc 1 "verify finds a modified record"
expect_err_has "p11kms: audit: $F:$line: seq $seq: modified: " "finding names file, line and seq"
expect_fail_clean "modified: one-line finding"
run "$P11KMS" $C audit verify --json
expect_rc 1 "verify --json finds a modified record"
expect_out_has "{\"ok\":false,\"problem\":\"modified\",\"file\":\"$F\",\"line\":$line,\"seq\":$seq,\"detail\":\"" "verify --json finding"
cp "$WORK/backup" "$F"
run "$P11KMS" $C audit verify
expect_rc 0 "restored series verifies"

# Deleting a line is named as deleted.
sed -i "${line}d" "$F"
run "$P11KMS" $C audit verify
expect_rc 1 "verify finds a deleted record"; expect_err_has ": seq $seq: deleted: " "deleted record"
cp "$WORK/backup" "$F"

# A rotated file that is missing from the series.
mv "$T/audit.log.000001" "$WORK/moved"
run "$P11KMS" $C audit verify
expect_rc 1 "verify finds a missing file"
expect_err_has "p11kms: audit: $T/audit.log.000002:1: seq " "missing file: where"
expect_err_has ": missing-file: audit.log.000002 continues from audit.log.000001, which is missing from the series" "missing file: what"
run "$P11KMS" $C audit verify --json
expect_out_has '"problem":"missing-file"' "missing file --json"
mv "$WORK/moved" "$T/audit.log.000001"

# Explicit files are checked as one series, oldest first.
run "$P11KMS" $C audit verify "$T/audit.log.000001" "$T/audit.log.000002" "$T/audit.log"
expect_rc 0 "explicit series"
run "$P11KMS" $C audit verify "$T/audit.log.000001" "$T/audit.log"
expect_rc 1 "explicit series with a gap"; expect_err_has "missing-file" "explicit gap"

# Issue 1: a refused request with a duplicate or empty context key, or
# invalid UTF-8, by a caller named in no policy, is recorded without the
# context, and the trail still verifies.
ANY=arn:aws:iam::999999999999:role/anyone
printf x >"$WORK/x"
run_in "$WORK/x" "$P11KMS" $C --as "$ANY" encrypt --key alias/p11kms/default --context a=1 --context a=2
expect_rc 2 "duplicate context key refused"; expect_err "p11kms: encryption context key 'a' is given twice" "duplicate key message"
run_in "$WORK/x" "$P11KMS" $C --as "$ANY" encrypt --key alias/p11kms/default --context "$(printf 'k\377')=v"
expect_rc 2 "invalid UTF-8 context refused"; expect_err "p11kms: encryption context must be valid UTF-8" "UTF-8 message"
printf 'bm90IGEgYmxvYg==' >"$WORK/blob"
run "$P11KMS" $C --as "$ANY" decrypt --in "$WORK/blob" --context b=1 --context b=2
expect_rc 2 "decrypt with a duplicate context key refused"; expect_err "p11kms: encryption context key 'b' is given twice" "decrypt: duplicate key message"
run_in "$WORK/x" "$P11KMS" $C --as "$ANY" encrypt --key alias/p11kms/default --context "=v"
expect_rc 2 "empty context key refused"
line=$(tail -n 2 "$T/audit.log" | head -n 1)
case $line in
*'"action":"kms:Decrypt","resource":{},"context":{},'*'"details":{"context_invalid":"true"}'*) ok ;;
*) bad "the refused decrypt is recorded without its context: $line" ;;
esac
grep -q '"context":{"a":"1","a":"2"}' "$T/audit.log" && bad "a duplicate key reached the audit log" || ok
run "$P11KMS" $C audit verify
expect_rc 0 "refused contexts leave a trail that verifies"

# Issue 16: a denied request whose record would exceed 32 KB (8,000 control
# characters escape to 48,000 bytes) is recorded, cut down and marked.
DENYKEY=$("$P11KMS" $C --as "$ALICE" key create)
run_in "$WORK/x" "$P11KMS" $C --as "$ANY" encrypt --key "$DENYKEY" --context "k=$(head -c 8000 /dev/zero | tr '\0' '\001')"
expect_rc 4 "the oversized request is denied"
line=$(tail -n 2 "$T/audit.log" | head -n 1)
case $line in
*'"action":"kms:Encrypt"'*'"decision":"ImplicitlyDenied"'*'"result":"P11KMS_ERR_ACCESS_DENIED","truncated":true,"prev":'*) ok ;;
*) bad "the denied oversized request is recorded and marked truncated: ${line:0:300}" ;;
esac
[ "${#line}" -lt 32768 ] && ok || bad "the record fits in a line (${#line} bytes)"
run "$P11KMS" $C audit verify
expect_rc 0 "the trail with a truncated record verifies"

# A truncated tail (the closing seal cut off) is found.
head -n -1 "$T/audit.log" >"$WORK/cut" && cat "$WORK/cut" >"$T/audit.log"
run "$P11KMS" $C audit verify
expect_rc 1 "verify finds a truncated tail"; expect_err_has ": truncated: " "truncated tail"
run "$P11KMS" $C audit verify --allow-unsealed
expect_rc 0 "a live log may be checked with --allow-unsealed"

# Issue 11: an audit log that is a symbolic link is refused, and what it
# points at is neither created nor written.
mv "$T/audit.log" "$WORK/real.log"
ln -s "$WORK/victim" "$T/audit.log"
run_in "$WORK/x" "$P11KMS" $C --as "$ALICE" encrypt --key alias/p11kms/default
expect_rc 1 "a symlinked audit log is refused"
expect_err "p11kms: audit unavailable: cannot write $T/audit.log: it is a symbolic link (the audit trail never follows links: replace it with the log file itself)" "symlink message"
[ -e "$WORK/victim" ] && bad "the link target was created" || ok
rm "$T/audit.log"; mv "$WORK/real.log" "$T/audit.log"

# Issue 12: a change is recorded "pending" just before its commit, naming
# its resource (CreateKey: the new key), and its outcome after the commit
# under the same request id; "ok" stands only for what was committed.
run "$P11KMS" $C --as "$ALICE" key create
expect_rc 0 "key create"; NEWKEY=$(cat "$OUT")
pending=$(grep -F '"action":"kms:CreateKey"' "$T/audit.log" | grep -F '"result":"pending"' | tail -n 1)
outcome=$(grep -F '"action":"kms:CreateKey"' "$T/audit.log" | grep -F '"result":"ok"' | tail -n 1)
rid() { printf '%s\n' "$1" | sed -n 's/.*"request_id":"\([^"]*\)".*/\1/p'; }
case $pending in *"\"resource\":{\"key_id\":\"$NEWKEY\",\"key_version\":\"1\"}"*) ok ;; *) bad "the pending CreateKey record names the key: $pending" ;; esac
case $outcome in *"\"resource\":{\"key_id\":\"$NEWKEY\",\"key_version\":\"1\"}"*) ok ;; *) bad "the CreateKey outcome names the key: $outcome" ;; esac
[ -n "$(rid "$pending")" ] && [ "$(rid "$pending")" = "$(rid "$outcome")" ] && ok || bad "pending and outcome share the request id"
grep -q '"action":"kms:CreateKey","resource":{}' "$T/audit.log" && bad "a CreateKey record without its key" || ok

# The store's disk full at commit: the key is not created, and no "ok" says it was.
FULL=$WORK/full
mkdir -p "$FULL"
if mount -t tmpfs -o size=256k tmpfs "$FULL" 2>/dev/null; then
    trap 'umount "$FULL" 2>/dev/null; cleanup' EXIT
    T2=$WORK/tok2
    new_token "$T2"
    sed -i "s|^store = .*|store = sqlite:$FULL/p11kms.db|" "$T2/p11kms.conf"
    C2="--config $T2/p11kms.conf"
    "$P11KMS" $C2 --as "$ALICE" init --operator '*' >/dev/null 2>&1
    # Leave room to open the store but not to commit a 2,000-byte description.
    for room in 32 36 40 44; do
        rm -f "$FULL/filler"
        free=$(df -k --output=avail "$FULL" | tail -n 1)
        dd if=/dev/zero of="$FULL/filler" bs=1k count=$((free - room)) 2>/dev/null
        run "$P11KMS" $C2 --as "$ALICE" key create --description "$(head -c 2000 /dev/zero | tr '\0' d)"
        grep -q "store commit" "$ERR" && break
    done
    expect_rc 1 "key create fails when its commit does not fit"
    expect_err_has "p11kms: store commit: disk full: no space for " "the commit failure is reported"
    rm -f "$FULL/filler"
    last=$(grep -F '"action":"kms:CreateKey"' "$T2/audit.log" | tail -n 1)
    case $last in *'"result":"P11KMS_ERR_STORE"'*) ok ;; *) bad "the failed commit is recorded with its error: $last" ;; esac
    K2=$(printf '%s\n' "$last" | sed -n 's/.*"resource":{"key_id":"\([^"]*\)".*/\1/p')
    [ -n "$K2" ] && ok || bad "the failed CreateKey names its key"
    [ "$(grep -F "\"key_id\":\"$K2\"" "$T2/audit.log" | grep -c '"result":"pending"')" -eq 1 ] && ok || bad "one pending record for $K2"
    grep -F "\"key_id\":\"$K2\"" "$T2/audit.log" | grep -q '"result":"ok"' && bad "an ok record for the key that was not created" || ok
    run "$P11KMS" $C2 --as "$ALICE" key describe "$K2"
    expect_rc 5 "the key of the failed commit does not exist"
    run "$P11KMS" $C2 audit verify
    expect_rc 0 "the trail verifies after a failed commit"
    umount "$FULL"
else
    echo "SKIP: full-disk CreateKey (cannot mount a tmpfs here)"
fi

# No audit path configured.
grep -v '^audit' "$T/p11kms.conf" >"$WORK/noaudit.conf"
run "$P11KMS" --config "$WORK/noaudit.conf" audit verify
expect_rc 3 "no audit path"; expect_err "p11kms: $WORK/noaudit.conf: no \`audit\` path set" "no audit path"

finish
