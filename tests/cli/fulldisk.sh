#!/bin/bash
# A full disk fails commands cleanly, never kills them by a signal, and loses
# nothing acknowledged. The store and audit log live on a 16 MiB ext4 loop
# volume (1 KiB blocks, so SQLite's -shm file would stay sparse) that a
# filler file keeps full, with a little space freed every few commands.
# Before store_vfs.c, the -shm page faults died with SIGBUS here.
. "${P11KMS_TOP_SRCDIR:-.}/tests/cli/lib.sh"

if [ "$(id -u)" -ne 0 ]; then
    echo "SKIP: fulldisk.sh needs root (losetup, mount)"; exit 77
fi
M=$WORK/mnt
LOOP=
unmount() {
    umount "$M" 2>/dev/null || umount -l "$M" 2>/dev/null
    [ -n "$LOOP" ] && losetup -d "$LOOP" 2>/dev/null
    cleanup
}
trap unmount EXIT
mkdir -p "$M"
dd if=/dev/zero of="$WORK/img" bs=1M count=16 status=none
if ! mkfs.ext4 -q -F "$WORK/img" >/dev/null 2>&1 || ! LOOP=$(losetup -f --show "$WORK/img" 2>/dev/null) ||
    ! mount "$LOOP" "$M" 2>/dev/null; then
    echo "SKIP: fulldisk.sh cannot make a loop-mounted ext4 (mkfs.ext4, losetup, mount)"; exit 77
fi

T=$WORK/tok
new_token "$T" p11kms
sed -e "s|^store = .*|store = sqlite:$M/p11kms.db|" -e "s|^audit = .*|audit = $M/audit.log|" \
    -e "s|^pin = .*|pin = file:$T/user.pin|" "$T/p11kms.conf" >"$WORK/p11kms.conf"
chmod 600 "$WORK/p11kms.conf"
export P11KMS_CONFIG=$WORK/p11kms.conf
ADM=arn:aws:iam::111122223333:role/key-admin
OPR=arn:aws:iam::111122223333:role/flink-operator
run "$P11KMS" --as "$ADM" init --admin "$ADM" --operator "$OPR"
expect_rc 0 "init on the small volume"
run "$P11KMS" --as "$ADM" key create --alias alias/app --admin "$ADM" --operator "$OPR"
expect_rc 0 "key create"
printf 'plain text\n' >"$WORK/plain"

dd if=/dev/zero of="$M/fill" bs=4k status=none 2>/dev/null
[ "$(df --output=avail "$M" | tail -1)" -eq 0 ] && ok || bad "the volume is full"

: >"$WORK/acked"
failures=0
for i in $(seq 1 120); do
    # Free 24 KiB every 10 commands: enough to get half way into a commit.
    [ $((i % 10)) -eq 1 ] && truncate -s -24K "$M/fill"
    case $((i % 3)) in
    0) printf '{"n":"%s","v":"value-%s"}' "$i" "$i" >"$WORK/s.json"
       run "$P11KMS" --as "$OPR" secret put --from-json "$WORK/s.json" ;;
    1) run "$P11KMS" --as "$ADM" key create ;;
    2) run "$P11KMS" --as "$OPR" encrypt --key alias/app --in "$WORK/plain" ;;
    esac
    if [ "$RC" -ge 128 ]; then bad "command $i died by signal $((RC - 128))"; continue; fi
    ok
    if [ "$RC" -eq 0 ]; then
        [ $((i % 3)) -eq 0 ] && printf '%s %s\n' "$(cat "$OUT")" "$i" >>"$WORK/acked"
        continue
    fi
    failures=$((failures + 1))
    # One line naming the store or the audit log, with the documented exit code.
    expect_fail_clean "command $i"
    expect_rc 1 "command $i exit code"
    if grep -qE "^p11kms: (store [^:]+: disk full: no space for $M/p11kms.db or its -wal/-shm files( \(SQLite 13\))?|audit unavailable: [^:]+ $M/audit.log: No space left on device)$" "$ERR"; then
        ok
    else
        bad "command $i: not a clean disk-full message"
    fi
done
[ "$failures" -gt 0 ] && ok || bad "the full disk made some command fail"
[ "$(wc -l <"$WORK/acked")" -gt 0 ] && ok || bad "some secret put was acknowledged"
echo "fulldisk: $failures of 120 commands failed cleanly; $(wc -l <"$WORK/acked") secrets acknowledged"

# Space back: every acknowledged secret reads back, and writes work again.
rm -f "$M/fill"
while read -r id n; do
    run "$P11KMS" --as "$OPR" secret get "$id" --field v
    expect_rc 0 "acknowledged secret $id readable"; expect_out "value-$n" "acknowledged secret $id value"
done <"$WORK/acked"
printf '{"v":"after"}' >"$WORK/s.json"
run "$P11KMS" --as "$OPR" secret put --from-json "$WORK/s.json"
expect_rc 0 "writes work once there is space"

finish
