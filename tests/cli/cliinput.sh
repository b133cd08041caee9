#!/bin/bash
# CLI input and output hardening: empty secret values, FIFOs and other
# non-regular files, unbounded stdin, atomic 0600 output files, datakey
# --out, the argv warning, non-dumpable process, --json on every command.
# Every command that could block or eat memory runs under `timeout 10`, so
# a regression fails instead of hanging.
. "${P11KMS_TOP_SRCDIR:-.}/tests/cli/lib.sh"

T=$WORK/tok
new_token "$T" p11kms
export P11KMS_CONFIG=$T/p11kms.conf
ADM=arn:aws:iam::111122223333:role/key-admin
OPR=arn:aws:iam::111122223333:role/flink-operator
PW="cliinput-pw-$RANDOM-kilo"
admin() { run timeout 10 "$P11KMS" --as "$ADM" "$@"; }
oper() { run timeout 10 "$P11KMS" --as "$OPR" "$@"; }
oper_in() { input=$1; shift; run_in "$input" timeout 10 "$P11KMS" --as "$OPR" "$@"; }
# is_json: stdout is one valid JSON document.
is_json() { if python3 -c 'import json,sys; json.load(sys.stdin)' <"$OUT" 2>/dev/null; then ok; else bad "$1: stdout is not JSON"; fi; }
# json_field NAME: a top-level field of the JSON on stdout.
json_field() { python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1" <"$OUT"; }
WARN_END="given on the command line is visible to other local users; use"

admin init --admin "$ADM" --operator '*'
expect_rc 0 "init"
admin key create --alias alias/in --admin "$ADM" --operator "$OPR"
expect_rc 0 "key create"; K=$(cat "$OUT")
printf '%s' "$PW" >"$WORK/pw"
oper encrypt --key "$K" --in "$WORK/pw"
expect_rc 0 "encrypt"; printf '%s\n' "$(cat "$OUT")" >"$WORK/blob"

# --- Empty secret values are refused, never stored silently.
: >"$WORK/empty"
oper_in "$WORK/empty" secret put password=@-
expect_rc 2 "password=@- with empty stdin"
expect_err "p11kms: the value of 'password' from standard input is empty; refusing to store an empty secret" "empty stdin"
expect_out "" "nothing stored for empty stdin"
oper secret put "password=@$WORK/empty"
expect_rc 2 "password=@FILE with an empty file"
expect_err "p11kms: the value of 'password' from $WORK/empty is empty; refusing to store an empty secret" "empty file"
printf '\n' >"$WORK/newline"
oper secret put "password=@$WORK/newline"
expect_rc 2 "a file holding only a newline"; expect_err_has "is empty; refusing to store an empty secret" "newline only"
oper connection create c.empty url=x "password=@$WORK/empty"
expect_rc 2 "connection option from an empty file"
expect_err "p11kms: the value of 'password' from $WORK/empty is empty; refusing to store an empty secret" "empty option"
oper_in "$WORK/pw" secret put password=@-
expect_rc 0 "password=@- from stdin"; expect_err "" "no warning for stdin"; S=$(cat "$OUT")
oper secret get "$S" --field password
expect_out "$PW" "stdin value stored"
# k= on the command line is a deliberate empty value: accepted, and nothing to warn about.
oper secret put note=
expect_rc 0 "explicit empty value"; expect_err "" "no warning for an empty argv value"
# From a terminal: a prompt, echo off; the typed value never appears on the terminal.
TTYPW="typed-$RANDOM-lima"
# --foreground keeps p11kms in the terminal's foreground process group: in a
# group of its own (plain timeout) its tcsetattr gets SIGTTOU and it stops.
(sleep 2; printf '%s\n' "$TTYPW"; sleep 3) | script -qec "timeout --foreground -k 5 10 $P11KMS --as $OPR secret put password=@-" /dev/null \
    >"$WORK/tty.out" 2>&1
grep -qF "p11kms: value for 'password' (not echoed): " "$WORK/tty.out" && ok || bad "terminal prompt: $(cat "$WORK/tty.out")"
if grep -qF "$TTYPW" "$WORK/tty.out"; then bad "typed value echoed on the terminal"; else ok; fi
S_TTY=$(tr -d '\r' <"$WORK/tty.out" | grep -Eo '^[0-9a-f]{8}-[0-9a-f-]{27}$')
oper secret get "$S_TTY" --field password
expect_rc 0 "get typed value"; expect_out "$TTYPW" "typed value stored"
# Killed at the prompt: the terminal gets its echo back.
ABS_P11KMS="$(cd "$(dirname "$P11KMS")" && pwd)/$(basename "$P11KMS")"
cat >"$WORK/ttysig.sh" <<EOF
"$ABS_P11KMS" --as "$OPR" secret put password=@- </dev/tty 2>/dev/null &
p=\$!
sleep 1
kill -TERM \$p; wait \$p
stty -a | tr ' ' '\n' | grep -x -- '-\?echo'
EOF
(sleep 4) | script -qec "sh $WORK/ttysig.sh" /dev/null >"$WORK/ttysig.out" 2>&1
[ "$(tr -d '\r' <"$WORK/ttysig.out" | tail -1)" = echo ] && ok || bad "echo restored after SIGTERM at the prompt: $(cat "$WORK/ttysig.out")"

# --- A secret value in argv: one warning line, and it still works.
oper secret put "password=$PW"
expect_rc 0 "argv value still works"
expect_err "p11kms: warning: secret value for 'password' $WARN_END password=@FILE or --from-json -" "argv warning"
oper connection create c.warn url=jdbc:x "password=$PW"
expect_rc 0 "connection with an argv password"
expect_err "p11kms: warning: secret value for 'password' $WARN_END password=@FILE" "connection argv warning"
oper connection alter c.warn url=jdbc:y
expect_rc 0 "alter a public option"; expect_err "" "no warning for public options"

# --- FIFOs and other non-regular files are refused, not waited on.
mkfifo "$WORK/fifo"
oper decrypt --in "$WORK/fifo"
expect_rc 2 "decrypt --in FIFO"
expect_err "p11kms: $WORK/fifo is not a regular file (use - to read standard input)" "--in FIFO"
oper encrypt --key "$K" --in "$WORK/fifo"
expect_rc 2 "encrypt --in FIFO"; expect_err_has "is not a regular file" "encrypt --in FIFO"
oper secret put "password=@$WORK/fifo"
expect_rc 2 "k=@FIFO"; expect_err "p11kms: $WORK/fifo is not a regular file (use - to read standard input)" "k=@FIFO"
run timeout 10 "$P11KMS" policy lint "$WORK/fifo"
expect_rc 2 "policy lint FIFO"; expect_err_has "is not a regular file" "policy lint FIFO"
admin key put-policy "$K" "$WORK/fifo"
expect_rc 2 "put-policy FIFO"; expect_err_has "is not a regular file" "put-policy FIFO"
oper decrypt --in /dev/zero
expect_rc 2 "a device as --in"; expect_err_has "/dev/zero is not a regular file" "device"
oper decrypt --in "$WORK/blob" --out "$WORK/fifo"
expect_rc 2 "decrypt --out FIFO"
expect_err "p11kms: $WORK/fifo exists and is not a regular file; refusing to replace it" "--out FIFO"
[ -p "$WORK/fifo" ] && ok || bad "the FIFO is left alone"

# --- decrypt --out: a new 0600 file, never written into an existing one.
printf 'someone else\n' >"$WORK/shared.out"; chmod 644 "$WORK/shared.out"
ln "$WORK/shared.out" "$WORK/other-link"
oper decrypt --in "$WORK/blob" --out "$WORK/shared.out"
expect_rc 0 "decrypt --out over an existing file"
[ "$(cat "$WORK/shared.out")" = "$PW" ] && ok || bad "--out content"
[ "$(stat -c %a "$WORK/shared.out")" = 600 ] && ok || bad "--out mode 0600 (was 0644)"
[ "$(cat "$WORK/other-link")" = "someone else" ] && ok || bad "the existing file (another link to it) never received plaintext"
ln -s "$WORK/target" "$WORK/link.out"; printf 'target\n' >"$WORK/target"
oper decrypt --in "$WORK/blob" --out "$WORK/link.out"
expect_rc 2 "--out a symlink"; expect_err_has "exists and is not a regular file" "--out symlink"
[ "$(cat "$WORK/target")" = target ] && ok || bad "symlink target untouched"
mkdir "$WORK/outdir"
oper decrypt --in "$WORK/blob" --out "$WORK/outdir/missing/x"
expect_rc 1 "--out in a missing folder"; expect_fail_clean "--out missing folder"
[ -z "$(ls -A "$WORK/outdir")" ] && ok || bad "no temp file left behind"

# --- datakey --out: the plaintext key in a new 0600 file, only the blob on stdout.
oper datakey --key "$K" --context p=1 --out "$WORK/dk.bin"
expect_rc 0 "datakey --out"; is_json "datakey --out"; expect_out_lacks Plaintext "datakey --out prints no plaintext"
[ "$(stat -c '%a %s' "$WORK/dk.bin")" = "600 32" ] && ok || bad "datakey --out file: mode 0600, 32 bytes"
[ "$(json_field KeyId)" = "$K" ] && ok || bad "datakey --out prints the key id"
json_field CiphertextBlob >"$WORK/dk.blob"
oper decrypt --in "$WORK/dk.blob" --context p=1 --out "$WORK/dk2.bin"
expect_rc 0 "datakey blob decrypts"; cmp -s "$WORK/dk.bin" "$WORK/dk2.bin" && ok || bad "--out holds the data key"
oper datakey --key "$K" --out "$WORK/dk3.bin" --no-plaintext
expect_rc 2 "--out with --no-plaintext"
expect_err "p11kms: usage: datakey: --out FILE takes the plaintext key; it cannot be combined with --no-plaintext or - (see p11kms --help)" "--out --no-plaintext"
[ ! -e "$WORK/dk3.bin" ] && ok || bad "no file for a usage error"

# --- Bounded reads: a too-large input stops at the limit with exit 2.
oper_in /dev/zero decrypt
expect_rc 2 "decrypt </dev/zero"
expect_err "p11kms: standard input is too large: a ciphertext blob is at most 6144 bytes (8192 base64 characters)" "decrypt bound"
oper_in /dev/zero re-encrypt --key "$K"
expect_rc 2 "re-encrypt </dev/zero"; expect_err_has "a ciphertext blob is at most 6144 bytes" "re-encrypt bound"
oper_in /dev/zero encrypt --key "$K"
expect_rc 2 "encrypt </dev/zero"
expect_err "p11kms: encrypt: plaintext is more than 4096 bytes; encrypt takes at most 4096 bytes: use 'p11kms datakey' for envelope encryption" "encrypt bound"
run_in /dev/zero timeout 10 "$P11KMS" policy lint -
expect_rc 2 "policy lint </dev/zero"
expect_err "p11kms: standard input is too large: a key policy is at most 32768 bytes" "policy lint bound"
head -c 40000 /dev/zero | tr '\0' ' ' >"$WORK/big-policy.json"
admin key put-policy "$K" "$WORK/big-policy.json"
expect_rc 2 "put-policy of 40000 bytes"
expect_err "p11kms: $WORK/big-policy.json is too large: a key policy is at most 32768 bytes" "put-policy bound"
admin key create --policy "$WORK/big-policy.json"
expect_rc 2 "key create --policy of 40000 bytes"; expect_err_has "a key policy is at most 32768 bytes" "create bound"
run_in /dev/zero timeout 10 "$P11KMS" --as "$OPR" secret put --from-json -
expect_rc 2 "--from-json </dev/zero"
# The memory bound itself: 256 MiB of address space is plenty for a bounded reader.
# (ASan maps terabytes of shadow memory up front: an ASan build checks this in the plain build only, said aloud.)
if [ -n "${P11KMS_SANITIZER_CFLAGS:-}" ]; then
    echo "note: ASan build: the 256 MiB address-space check is skipped (ASan's shadow memory does not fit)"
else
    (ulimit -v 262144; timeout 10 "$P11KMS" --as "$OPR" decrypt </dev/zero >/dev/null 2>"$WORK/ulimit.err"); RC=$?
    expect_rc 2 "decrypt </dev/zero within 256 MiB of address space"
fi

# --- The process is not dumpable while it holds secrets: SIGABRT while it
# waits for a secret on stdin leaves no core file. The control (a dumpable
# `sleep`) shows whether this machine writes core files at all.
# blocked_abort DIR CMD...: start CMD in DIR with stdin a FIFO we hold open,
# wait until it blocks reading that pipe, SIGABRT it, then close the FIFO.
blocked_abort() {
    local dir=$1 pid wchan=""; shift
    mkdir -p "$dir"; rm -f "$dir/fifo"; mkfifo "$dir/fifo"
    # The FIFO is opened read-write here first, so neither side can block on
    # open if the child fails before exec (a hard core limit of 0 refuses
    # `ulimit -c unlimited`: the child then runs without core files).
    exec 3<>"$dir/fifo"
    (cd "$dir" && { ulimit -c unlimited 2>/dev/null || :; } && exec "$@" <"$dir/fifo" >/dev/null 2>&1) &
    pid=$!
    # Up to 30 s: an ASan build on a loaded machine can take seconds to get there,
    # and a signal that comes before the read (and the hardening) proves nothing.
    for _ in $(seq 1 300); do
        wchan=$(cat "/proc/$pid/wchan" 2>/dev/null)
        # The libtool wrapper (a shell) also waits on a pipe, in a command substitution, before its exec.
        case $(readlink "/proc/$pid/exe" 2>/dev/null) in */bash | */sh | */dash) wchan="" ;; esac
        case $wchan in *pipe*) break ;; esac
        sleep 0.1
    done
    kill -ABRT "$pid"; exec 3>&-; wait "$pid" 2>/dev/null
    rm -f "$dir/fifo"
}
blocked_abort "$WORK/core-control" cat
if ls "$WORK/core-control" | grep -q '^core'; then
    blocked_abort "$WORK/core-p11kms" "$ABS_P11KMS" --as "$OPR" secret put --from-json -
    if ls "$WORK/core-p11kms" | grep -q '^core'; then bad "a core dump of p11kms holding a secret"; else ok; fi
else
    echo "note: this machine writes no core files (core_pattern $(cat /proc/sys/kernel/core_pattern)); dumpable check skipped"
fi

# --- --json on every command: one JSON document each.
oper --json encrypt --key "$K" --in "$WORK/pw"
expect_rc 0 "encrypt --json"; is_json "encrypt --json"
[ "$(json_field KeyId)" = "$K" ] && ok || bad "encrypt --json KeyId"
json_field CiphertextBlob >"$WORK/blob2"
oper --json decrypt --in "$WORK/blob2"
expect_rc 0 "decrypt --json"; is_json "decrypt --json"
[ "$(json_field Plaintext | base64 -d)" = "$PW" ] && ok || bad "decrypt --json Plaintext is the base64 plaintext"
[ "$(json_field KeyId)" = "$K" ] && ok || bad "decrypt --json KeyId"
oper --json decrypt --in "$WORK/blob2" --out "$WORK/pt.json.out"
expect_rc 0 "decrypt --json --out"; is_json "decrypt --json --out"; expect_out_lacks Plaintext "no plaintext with --out"
oper --json re-encrypt --in "$WORK/blob2" --key "$K"
expect_rc 0 "re-encrypt --json"; is_json "re-encrypt --json"
oper --json datakey --key "$K"
expect_rc 0 "datakey --json"; is_json "datakey --json"
admin --json key create --alias alias/json
expect_rc 0 "key create --json"; is_json "key create --json"; K2=$(json_field KeyId)
for sub in disable enable rotate; do
    admin --json key $sub "$K2"
    expect_rc 0 "key $sub --json"; is_json "key $sub --json"
done
admin --json key schedule-deletion "$K2" --days 7
expect_rc 0 "schedule-deletion --json"; is_json "schedule-deletion --json"
admin --json key cancel-deletion "$K2"
expect_rc 0 "cancel-deletion --json"; is_json "cancel-deletion --json"
admin --json key get-policy "$K2"
expect_rc 0 "get-policy"; cp "$OUT" "$WORK/pol.json"
admin --json key put-policy "$K2" "$WORK/pol.json"
expect_rc 0 "put-policy --json"; is_json "put-policy --json"
admin --json alias create alias/json2 "$K2"
expect_rc 0 "alias create --json"; is_json "alias create --json"
admin --json alias delete alias/json2
expect_rc 0 "alias delete --json"; is_json "alias delete --json"
oper_in "$WORK/pw" --json secret put password=@-
expect_rc 0 "secret put --json"; is_json "secret put --json"; SJ=$(json_field SecretId)
oper_in "$WORK/pw" --json secret update "$SJ" password=@-
expect_rc 0 "secret update --json"; is_json "secret update --json"
oper --json secret get "$SJ" --field password
expect_rc 0 "secret get --field --json"; is_json "secret get --field --json"
[ "$(json_field password)" = "$PW" ] && ok || bad "secret get --field --json value"
oper --json secret rm "$SJ"
expect_rc 0 "secret rm --json"; is_json "secret rm --json"
oper --json connection create c.json url=x
expect_rc 0 "connection create --json"; is_json "connection create --json"
oper --json connection alter c.json url=y
expect_rc 0 "connection alter --json"; is_json "connection alter --json"
oper --json connection show-create c.json
expect_rc 0 "connection show-create --json"; is_json "connection show-create --json"
oper --json connection drop c.json
expect_rc 0 "connection drop --json"; is_json "connection drop --json"
run "$P11KMS" --json audit files
expect_rc 0 "audit files --json"; is_json "audit files --json"
mod=$(sed -n 's/^module = //p' "$T/p11kms.conf")
run "$P11KMS" --json token init --module "$mod" --label json-token --so-pin-file "$T/so.pin" --pin-file "$T/user.pin"
expect_rc 0 "token init --json"; is_json "token init --json"
admin --json report keys
is_json "report keys --json"

# Nothing secret on stderr.
if grep -qF -e "$TTYPW" "$WORK/.all-stderr"; then bad "typed secret on stderr"; else ok; fi

finish
