#!/bin/bash
# CLI scenarios for encrypt-file / decrypt-file / rewrap-file (issue 14):
# round trips, stdin/stdout, --json, usage errors, a distinct message per
# tampering kind, every byte of the header and of one frame flipped with
# no output left behind, rewrap after rotation and to another key with the
# body unchanged, --threads, and flat memory for a large stream.
. "${P11KMS_TOP_SRCDIR:-.}/tests/cli/lib.sh"

T=$WORK/tok
new_token "$T" p11kms
export P11KMS_CONFIG=$T/p11kms.conf
ADM=arn:aws:iam::111122223333:role/key-admin
OPR=arn:aws:iam::111122223333:role/flink-operator
admin() { run "$P11KMS" --as "$ADM" "$@"; }
oper() { run "$P11KMS" --as "$OPR" "$@"; }
admin init --operator '*'
expect_rc 0 "init"
admin key create --admin "$ADM" --operator "$OPR"
expect_rc 0 "key 1"; K1=$(cat "$OUT")
admin key create --admin "$ADM" --operator "$OPR"
expect_rc 0 "key 2"; K2=$(cat "$OUT")
D=$WORK/d
mkdir "$D"
# Nothing but the expected files in $D: no temporary file, no partial output.
only_files() {
    local got
    got=$(cd "$D" && ls -A | sort | tr '\n' ' ')
    [ "$got" = "$1" ] && ok || bad "$2: files in the folder: '$got', want '$1'"
}
# Header length of an ESDK v2 message (to cut out frames and compare bodies).
hdr_len() {
    python3 - "$1" <<'PY'
import sys
b = open(sys.argv[1], 'rb').read()
o = 35
aad = int.from_bytes(b[o:o+2], 'big'); o += 2 + aad
n = int.from_bytes(b[o:o+2], 'big'); o += 2
for _ in range(3 * n):
    o += 2 + int.from_bytes(b[o:o+2], 'big')
print(o + 1 + 4 + 32 + 16)
PY
}
body_hash() { tail -c +$(($(hdr_len "$1") + 1)) "$1" | sha256sum | cut -d' ' -f1; }

# Round trips at the frame boundaries, both suites.
head -c 200000 /dev/urandom >"$WORK/rand"
for suite in 0x0478 0x0578; do
    for size in 0 1 4095 4096 4097 102400; do
        head -c "$size" "$WORK/rand" >"$WORK/p"
        oper encrypt-file --key "$K1" --context tenant=a --suite "$suite" "$WORK/p" "$D/c"
        expect_rc 0 "encrypt $suite $size"
        [ "$(stat -c %a "$D/c")" = 600 ] && ok || bad "ciphertext mode 0600"
        oper decrypt-file --context tenant=a "$D/c" "$D/p"
        expect_rc 0 "decrypt $suite $size"
        cmp -s "$D/p" "$WORK/p" && ok || bad "plaintext $suite $size"
        [ "$(stat -c %a "$D/p")" = 600 ] && ok || bad "plaintext mode 0600"
    done
done
only_files "c p " "round trips"
# stdin and stdout.
run_in "$WORK/rand" "$P11KMS" --as "$OPR" encrypt-file --key "$K1" - -
expect_rc 0 "encrypt stdin to stdout"; cp "$OUT" "$WORK/c"
run_in "$WORK/c" "$P11KMS" --as "$OPR" decrypt-file - -
expect_rc 0 "decrypt stdin to stdout"
cmp -s "$OUT" "$WORK/rand" && ok || bad "stdin/stdout round trip"
# --json summaries.
ARN1=arn:aws:kms:local:000000000000:key/$K1
oper --json encrypt-file --key "$K1" --context tenant=a --frame-length 1000 "$WORK/rand" "$D/c"
expect_rc 0 "encrypt --json"
expect_out "{\"KeyArn\":\"$ARN1\",\"EncryptionContext\":{\"tenant\":\"a\"},\"Bytes\":200000,\"Frames\":200,\"Suite\":\"0x0478\",\"FrameLength\":1000}" "encrypt --json"
oper --json decrypt-file --threads 2 "$D/c" "$D/p"
expect_rc 0 "decrypt --json"
expect_out "{\"KeyArn\":\"$ARN1\",\"EncryptionContext\":{\"tenant\":\"a\"},\"Bytes\":200000,\"Frames\":200,\"Suite\":\"0x0478\",\"FrameLength\":1000}" "decrypt --json"

# Usage errors.
oper encrypt-file "$WORK/rand" "$D/x"
expect_rc 2 "no key"; expect_err "p11kms: usage: encrypt-file: --key is required (see p11kms --help)" "no key"
oper encrypt-file --key "$K1" --suite 0x0178 "$WORK/rand" "$D/x"
expect_rc 2 "bad suite"; expect_err "p11kms: usage: encrypt-file: --suite must be 0x0478 or 0x0578 (see p11kms --help)" "bad suite"
oper encrypt-file --key "$K1" --frame-length 0 "$WORK/rand" "$D/x"
expect_rc 2 "bad frame"; expect_err "p11kms: usage: encrypt-file: --frame-length must be a number in 1..67108864 (see p11kms --help)" "bad frame"
oper decrypt-file --threads 65 "$D/c" "$D/x"
expect_rc 2 "bad threads"; expect_err "p11kms: usage: decrypt-file: --threads must be a number in 1..64 (see p11kms --help)" "bad threads"
oper --json decrypt-file "$D/c" -
expect_rc 2 "json to stdout"; expect_err "p11kms: usage: decrypt-file: --json needs an OUT file: standard output carries the data (see p11kms --help)" "json to stdout"
oper decrypt-file "$D/c"
expect_rc 2 "no OUT"; expect_err "p11kms: usage: decrypt-file: IN and OUT are required (- for stdin/stdout) (see p11kms --help)" "no OUT"
oper rewrap-file --frame-length 5 "$D/c" "$D/x"
expect_rc 2 "rewrap option"; expect_err "p11kms: usage: rewrap-file: unexpected '--frame-length' (see p11kms --help)" "rewrap option"
oper encrypt-file --key "$K1" --context aws-crypto-x=1 "$WORK/rand" "$D/x"
expect_rc 2 "reserved context"; expect_err "p11kms: encryption context key 'aws-crypto-x' is reserved (aws-crypto- prefix)" "reserved context"
oper decrypt-file "$WORK/rand" "$D/x"
expect_rc 1 "not a message"; expect_err_has "p11kms: not an AWS Encryption SDK message (version byte 0x" "not a message"
mkfifo "$D/fifo"
oper encrypt-file --key "$K1" "$WORK/rand" "$D/fifo"
expect_rc 2 "fifo output"; expect_err "p11kms: $D/fifo exists and is not a regular file" "fifo output"
rm -f "$D/fifo" "$D/p"
only_files "c " "usage errors leave nothing"

# Denied (exit 4) and unknown key (exit 5): one line, nothing left behind.
NOBODY=arn:aws:iam::111122223333:role/nobody
run "$P11KMS" --as "$NOBODY" encrypt-file --key "$K1" "$WORK/rand" "$D/x"
expect_rc 4 "encrypt denied"; expect_err "p11kms: $NOBODY is not authorized to perform kms:GenerateDataKey on key $K1 (ImplicitlyDenied)" "encrypt denied"
run "$P11KMS" --as "$NOBODY" decrypt-file "$D/c" "$D/x"
expect_rc 4 "decrypt denied"; expect_err "p11kms: cannot decrypt the message's data key: $NOBODY is not authorized to perform kms:Decrypt on key $K1 (ImplicitlyDenied)" "decrypt denied"
oper encrypt-file --key alias/none "$WORK/rand" "$D/x"
expect_rc 5 "unknown key"; expect_err "p11kms: alias alias/none not found" "unknown key"
oper rewrap-file --key alias/none "$D/c" "$D/x"
expect_rc 5 "rewrap to an unknown key"; expect_err_has "p11kms: cannot re-encrypt the message's data key: " "rewrap to an unknown key"
only_files "c " "refusals leave nothing"

# A distinct message for each tampering kind (frames of 100 bytes: 4 regular + final).
head -c 450 "$WORK/rand" >"$WORK/p"
oper encrypt-file --key "$K1" --context tenant=a --frame-length 100 "$WORK/p" "$WORK/m"
expect_rc 0 "small message"
H=$(hdr_len "$WORK/m"); F=132
frames() { # frames OUT N...: the header then the listed regular frames (1..4) then the final frame
    local out=$1; shift
    head -c "$H" "$WORK/m" >"$out"
    for n in "$@"; do tail -c +$((H + (n - 1) * F + 1)) "$WORK/m" | head -c $F >>"$out"; done
    tail -c +$((H + 4 * F + 1)) "$WORK/m" >>"$out"
}
refused() { # refused FILE MESSAGE: decrypting fails with exactly MESSAGE and leaves no output
    oper decrypt-file "$1" "$D/out"
    expect_rc 1 "$2"; expect_err "p11kms: $2" "$2"
    only_files "c " "$2: no output"
}
head -c $((H - 10)) "$WORK/m" >"$WORK/t"; refused "$WORK/t" "truncated message: the header is incomplete"
head -c $((H + F + 50)) "$WORK/m" >"$WORK/t"; refused "$WORK/t" "truncated message: frame 2 is incomplete"
head -c $((H + 4 * F)) "$WORK/m" >"$WORK/t"; refused "$WORK/t" "truncated message: the final frame is missing"
head -c -5 "$WORK/m" >"$WORK/t"; refused "$WORK/t" "truncated message: the final frame is incomplete"
frames "$WORK/t" 1 3 2 4; refused "$WORK/t" "frames out of order: frame 3 where frame 2 was expected (reordered frames)"
frames "$WORK/t" 1 2 2 3 4; refused "$WORK/t" "frame 2 appears twice (duplicated frame)"
frames "$WORK/t" 1 3 4; refused "$WORK/t" "frame 2 is missing (dropped frame)"
cp "$WORK/m" "$WORK/t"; printf 'x' >>"$WORK/t"; refused "$WORK/t" "trailing data after the end of the message"
python3 -c "import sys; b=bytearray(open(sys.argv[1],'rb').read()); b[int(sys.argv[2])-50]^=1; open(sys.argv[3],'wb').write(b)" "$WORK/m" "$H" "$WORK/t"
refused "$WORK/t" "message header failed authentication (the header was changed)"
python3 -c "import sys; b=bytearray(open(sys.argv[1],'rb').read()); b[int(sys.argv[2])+60]^=1; open(sys.argv[3],'wb').write(b)" "$WORK/m" "$H" "$WORK/t"
refused "$WORK/t" "frame 1 failed authentication (changed ciphertext)"
# The context in the header changed (tenant=a -> b): the HSM refuses the data key.
python3 -c "import sys; b=open(sys.argv[1],'rb').read(); open(sys.argv[2],'wb').write(b.replace(b'tenant\x00\x01a', b'tenant\x00\x01b', 1))" "$WORK/m" "$WORK/t"
oper decrypt-file "$WORK/t" "$D/out"
expect_rc 1 "changed context"; expect_err_has "p11kms: cannot decrypt the message's data key: " "changed context"
only_files "c " "changed context: no output"
oper decrypt-file --context tenant=b "$WORK/m" "$D/out"
expect_rc 1 "wrong context"; expect_err "p11kms: encryption context mismatch: the message's 'tenant' has another value" "wrong context"
oper decrypt-file --context job=x "$WORK/m" "$D/out"
expect_rc 1 "missing context"; expect_err "p11kms: encryption context mismatch: the message has no 'job' pair" "missing context"
only_files "c " "context checks leave nothing"

# Every byte of the header and of frame 1 flipped, one at a time: refused, nothing left.
python3 - "$WORK/m" "$((H + F))" "$WORK/flips" <<'PY'
import os, sys
b = open(sys.argv[1], 'rb').read()
os.mkdir(sys.argv[3])
for i in range(int(sys.argv[2])):
    x = bytearray(b); x[i] ^= 0x5a
    open(os.path.join(sys.argv[3], '%05d' % i), 'wb').write(x)
PY
accepted=0; left=0; unclean=0
for f in "$WORK"/flips/*; do
    "$P11KMS" --as "$OPR" decrypt-file "$f" "$D/out" >/dev/null 2>"$ERR" </dev/null
    rc=$?
    [ "$rc" -eq 0 ] && accepted=$((accepted + 1))
    { [ "$rc" -ge 128 ] || [ "$(wc -l <"$ERR")" -ne 1 ]; } && unclean=$((unclean + 1))
    [ "$(cd "$D" && ls -A | tr -d '\n')" = c ] || { left=$((left + 1)); rm -f "$D/out" "$D"/.out.*; }
done
RC=0
[ "$accepted" -eq 0 ] && ok || bad "byte flips: $accepted of $((H + F)) accepted"
[ "$left" -eq 0 ] && ok || bad "byte flips: $left left output behind"
[ "$unclean" -eq 0 ] && ok || bad "byte flips: $unclean not a clean one-line failure"

# Rewrap after rotation, and to another key: same body, still decrypts, the EDK names the new key.
oper encrypt-file --key "$K1" --context tenant=a "$WORK/rand" "$D/r0"
B0=$(body_hash "$D/r0")
admin key rotate "$K1"
expect_rc 0 "rotate"
oper rewrap-file "$D/r0" "$D/r1"
expect_rc 0 "rewrap to the newest version"
[ "$(body_hash "$D/r1")" = "$B0" ] && ok || bad "rewrap after rotate: body changed"
cmp -s "$D/r0" "$D/r1" && bad "rewrap after rotate: header unchanged" || ok
oper decrypt-file "$D/r1" "$D/p"
expect_rc 0 "decrypt rewrapped"; cmp -s "$D/p" "$WORK/rand" && ok || bad "rewrapped plaintext"
oper --json rewrap-file --key "$K2" "$D/r1" "$D/r2"
expect_rc 0 "rewrap to another key"; expect_out_has "\"KeyArn\":\"arn:aws:kms:local:000000000000:key/$K2\"" "rewrap --json"
[ "$(body_hash "$D/r2")" = "$B0" ] && ok || bad "rewrap to another key: body changed"
grep -qF "key/$K2" "$D/r2" && ok || bad "EDK provider info names key 2"
oper --json decrypt-file "$D/r2" "$D/p"
expect_rc 0 "decrypt after rewrap to key 2"; expect_out_has "key/$K2" "decrypted by key 2"
cmp -s "$D/p" "$WORK/rand" && ok || bad "rewrap key 2 plaintext"
oper encrypt-file --key "$K1" --suite 0x0578 "$WORK/p" "$D/s"
oper rewrap-file "$D/s" "$D/s2"
expect_rc 2 "rewrap signed"; expect_err "p11kms: suite 0x0578 messages are signed over the header: rewrapping would break the signature" "rewrap signed"
[ ! -e "$D/s2" ] && ok || bad "rewrap signed left output"
rm -f "$D"/r0 "$D"/r1 "$D"/r2 "$D"/s "$D"/p

# --threads: same plaintext, same layout (size and frame count) as one thread.
head -c $((5 << 20)) /dev/urandom >"$WORK/big"
oper --json encrypt-file --key "$K1" --threads 2 "$WORK/big" "$D/t2"
expect_rc 0 "encrypt 2 threads"; J2=$(sed 's/"KeyArn":"[^"]*",//' "$OUT")
oper --json encrypt-file --key "$K1" "$WORK/big" "$D/t1"
expect_rc 0 "encrypt 1 thread"; J1=$(sed 's/"KeyArn":"[^"]*",//' "$OUT")
[ "$J1" = "$J2" ] && ok || bad "summaries differ: $J1 / $J2"
[ "$(stat -c %s "$D/t1")" = "$(stat -c %s "$D/t2")" ] && ok || bad "sizes differ between 1 and 2 threads"
oper decrypt-file --threads 2 "$D/t1" "$D/p"
expect_rc 0 "decrypt 2 threads"; cmp -s "$D/p" "$WORK/big" && ok || bad "2-thread plaintext"
rm -f "$D"/t1 "$D"/t2 "$D"/p

# A progress line on a terminal for inputs from 64 MiB, none when stderr is not a terminal.
head -c $((64 << 20)) /dev/zero >"$WORK/p64"
if command -v script >/dev/null; then
    script -qc "'$P11KMS' --as '$OPR' encrypt-file --key '$K1' '$WORK/p64' '$D/c64'" /dev/null >"$WORK/tty.out" 2>&1
    tr '\r' '\n' <"$WORK/tty.out" | grep -q "^p11kms: encrypt-file: 64.0 MiB done" && ok || bad "no progress line on a terminal"
fi
oper encrypt-file --key "$K1" "$WORK/p64" "$D/c64"
expect_rc 0 "64 MiB without a terminal"; expect_err "" "no progress line without a terminal"
rm -f "$D/c64" "$WORK/p64"

# Flat memory: peak RSS of a 1 MiB and of a large stream (P11KMS_TEST_BIG_MB, 512 by default) differ by a few MB.
BIG=${P11KMS_TEST_BIG_MB:-512}
rss() { # rss MB: peak KB of encrypt-file and decrypt-file over an MB stream, stdin to stdout
    head -c $(($1 << 20)) /dev/zero | /usr/bin/time -f %M -o "$WORK/rss.e" "$P11KMS" --as "$OPR" encrypt-file --key "$K1" - - |
        /usr/bin/time -f %M -o "$WORK/rss.d" "$P11KMS" --as "$OPR" decrypt-file - - | wc -c >"$WORK/rss.n"
    echo "$(tail -1 "$WORK/rss.e") $(tail -1 "$WORK/rss.d") $(cat "$WORK/rss.n")"
}
read -r e1 d1 n1 <<<"$(rss 1)"
read -r eb db nb <<<"$(rss "$BIG")"
echo "peak RSS KB: 1 MiB: encrypt $e1 decrypt $d1; $BIG MiB: encrypt $eb decrypt $db"
[ "$n1" -eq $((1 << 20)) ] && [ "$nb" -eq $((BIG << 20)) ] && ok || bad "large stream round trip: $n1 / $nb bytes"
[ $((eb - e1)) -lt 4096 ] && [ $((db - d1)) -lt 4096 ] && ok || bad "peak RSS grows: $e1 -> $eb, $d1 -> $db KB"
finish
