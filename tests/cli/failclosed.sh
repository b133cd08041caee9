#!/bin/bash
# Fail closed (issue 6): when the audit record cannot be written, the
# operation does not happen and the caller gets "audit unavailable":
# no plaintext or ciphertext is returned and no state changes.
. "${P11KMS_TOP_SRCDIR:-.}/tests/cli/lib.sh"

T=$WORK/tok
new_token "$T" p11kms
ADM=arn:aws:iam::111122223333:role/key-admin
OPR=arn:aws:iam::111122223333:role/flink-operator
FULL=$WORK/full
mkdir -p "$FULL"
if ! mount -t tmpfs -o size=64k tmpfs "$FULL" 2>/dev/null; then
    echo "SKIP: cannot mount a small tmpfs here (needs root); the module-level tests cover ENOSPC"
    exit 77
fi
trap 'umount "$FULL" 2>/dev/null; cleanup' EXIT
sed -i "s|^audit = .*|audit = $FULL/audit.log|" "$T/p11kms.conf"
export P11KMS_CONFIG=$T/p11kms.conf
"$P11KMS" --as "$ADM" init --admin "$ADM" --operator "$OPR" >/dev/null
K=$("$P11KMS" --as "$ADM" key create --admin "$ADM" --operator "$OPR")
printf 'fail-closed-plaintext' >"$WORK/pt"
run_in "$WORK/pt" "$P11KMS" --as "$OPR" encrypt --key "$K"
expect_rc 0 "encrypt while the trail has room"; cp "$OUT" "$WORK/blob"

# Fill the file system that holds the trail. Appends still fit in the
# file's last page for a while, so keep asking until the trail is full.
dd if=/dev/zero of="$FULL/filler" bs=1k count=100 2>/dev/null || true
for i in $(seq 1 60); do
    run_in "$WORK/pt" "$P11KMS" --as "$OPR" encrypt --key "$K"
    [ "$RC" -ne 0 ] && break
done
expect_rc 1 "encrypt with a full trail"; expect_out "" "no ciphertext returned"
expect_err_has "p11kms: audit unavailable" "encrypt: audit unavailable"
run "$P11KMS" --as "$OPR" decrypt --in "$WORK/blob"
expect_rc 1 "decrypt with a full trail"; expect_out "" "no plaintext returned"
expect_err_has "p11kms: audit unavailable" "decrypt: audit unavailable"
run "$P11KMS" --as "$ADM" key disable "$K"
expect_rc 1 "disable with a full trail"; expect_err_has "p11kms: audit unavailable" "disable: audit unavailable"

# Room again: the key was never disabled, and the blob still decrypts.
rm -f "$FULL/filler"
run "$P11KMS" --as "$ADM" key describe "$K" --json
expect_rc 0 "describe after"; expect_out_has '"KeyState":"Enabled"' "the refused disable changed nothing"
run "$P11KMS" --as "$OPR" decrypt --in "$WORK/blob"
expect_rc 0 "decrypt after"; expect_out "fail-closed-plaintext" "decrypt after"
run "$P11KMS" --as "$ADM" audit verify --allow-unsealed
expect_rc 0 "the trail still verifies"
if grep -q "fail-closed-plaintext" "$FULL/audit.log"; then bad "plaintext in the audit log"; else ok; fi
finish
