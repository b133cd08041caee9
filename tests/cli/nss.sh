#!/bin/bash
# NSS softokn, a second independent token, through module_args: the module
# reads its database location from C_Initialize's pReserved string
# (tokens/README.md). token info, a bad configdir, a wrong PIN, and a
# secret round trip.
. "${P11KMS_TOP_SRCDIR:-.}/tests/cli/lib.sh"

NSS_MOD=${P11KMS_NSS_MODULE:-/usr/lib/x86_64-linux-gnu/libsoftokn3.so}
if ! command -v certutil >/dev/null || [ ! -r "$NSS_MOD" ]; then
    echo "SKIP: nss.sh needs certutil (libnss3-tools) and $NSS_MOD (libnss3); see scripts/install-deps.sh"
    exit 77
fi
D=$WORK/nss
mkdir -p "$D/db"
printf 'nss-test-%s\n' "$RANDOM$RANDOM" >"$D/user.pin"; chmod 600 "$D/user.pin"
certutil -N -d "sql:$D/db" -f "$D/user.pin" >/dev/null 2>&1 && ok || bad "certutil -N"
conf() { # FILE CONFIGDIR PIN-FILE [more lines]
    local f=$1 dir=$2 pin=$3; shift 3
    printf '%s\n' "module = $NSS_MOD" \
        "module_args = configdir='sql:$dir' certPrefix='' keyPrefix='' secmod='secmod.db' flags=" \
        "token = pkcs11:token=NSS%20Certificate%20DB" "pin = file:$pin" "$@" >"$f"
    chmod 600 "$f"
}
conf "$D/p11kms.conf" "$D/db" "$D/user.pin" "store = sqlite:p11kms.db" "audit = audit.log"

run "$P11KMS" --config "$D/p11kms.conf" token info
expect_rc 0 "token info on NSS softokn"
expect_out "module:        $NSS_MOD
token label:   NSS Certificate DB
serial:        0000000000000000
manufacturer:  Mozilla Foundation
model:         NSS 3
login:         ok
mechanisms:
  aes-keygen      CKM_AES_KEY_GEN              yes
  aes-gcm         CKM_AES_GCM                  yes
  aes-kwp         CKM_AES_KEY_WRAP_KWP         yes
  hmac-sha256     CKM_SHA256_HMAC              yes
  generic-keygen  CKM_GENERIC_SECRET_KEY_GEN   yes" "token info output"

# A configdir that holds no NSS database: named, exit 3.
conf "$WORK/nodb.conf" "$WORK/nodb" "$D/user.pin"
run "$P11KMS" --config "$WORK/nodb.conf" token info
expect_rc 3 "configdir without a database"
expect_err "p11kms: C_Initialize: CKR_NSS_CERTDB_FAILED: the module could not start; check module_args in p11kms.conf (for NSS softokn: does configdir name an NSS database?)" "configdir without a database"

# A wrong password is a login failure, shown by token info.
printf 'wrong\n' >"$WORK/wrong.pin"; chmod 600 "$WORK/wrong.pin"
conf "$WORK/wrong.conf" "$D/db" "$WORK/wrong.pin"
run "$P11KMS" --config "$WORK/wrong.conf" token info
expect_rc 3 "wrong NSS password"
expect_err_has "p11kms: C_Login: CKR_PIN_INCORRECT: wrong user PIN for token 'NSS Certificate DB'" "wrong NSS password"

# The whole path works on NSS: init, then a secret round trip.
export P11KMS_CONFIG=$D/p11kms.conf
ADM=arn:aws:iam::111122223333:role/key-admin
OPR=arn:aws:iam::111122223333:role/flink-operator
run "$P11KMS" --as "$ADM" init --admin "$ADM" --operator "$OPR"
expect_rc 0 "init on NSS"
run "$P11KMS" --as "$OPR" secret put user=flink password=nss-secret
expect_rc 0 "secret put on NSS"; S=$(cat "$OUT")
run "$P11KMS" --as "$OPR" secret get "$S" --field password
expect_rc 0 "secret get on NSS"; expect_out "nss-secret" "secret value from NSS"

finish
