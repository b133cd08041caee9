#!/bin/sh
# Create a fresh SoftHSM token under DIR for p11kms, and a ready p11kms.conf.
#
#   tokens/softhsm-token.sh DIR [LABEL]
#
# Writes DIR/softhsm2.conf, DIR/tokens/, DIR/user.pin and DIR/so.pin (mode
# 0600, random), and DIR/p11kms.conf; prints the SOFTHSM2_CONF export line.
# The system token directory is never touched. PINs never appear in argv.
set -eu

usage() { echo "usage: $0 DIR [LABEL]" >&2; exit 2; }
[ $# -ge 1 ] && [ $# -le 2 ] || usage
dir=$1
label=${2:-p11kms}
here=$(cd "$(dirname "$0")" && pwd)
module=${P11KMS_SOFTHSM_MODULE:-/usr/lib/softhsm/libsofthsm2.so}

if [ -n "${P11KMS_BIN:-}" ]; then
    p11kms=$P11KMS_BIN
elif [ -x "$here/../p11kms" ]; then
    p11kms=$here/../p11kms
elif command -v p11kms >/dev/null 2>&1; then
    p11kms=$(command -v p11kms)
else
    echo "softhsm-token.sh: cannot find the p11kms command (set P11KMS_BIN)" >&2
    exit 3
fi
[ -r "$module" ] || { echo "softhsm-token.sh: SoftHSM module $module not found; apt-get install softhsm2" >&2; exit 3; }
[ -e "$dir/softhsm2.conf" ] && { echo "softhsm-token.sh: $dir already holds a token; choose an empty folder" >&2; exit 1; }

umask 077
mkdir -p "$dir/tokens"
dir=$(cd "$dir" && pwd)
sed "s|@TOKENDIR@|$dir/tokens|" "$here/softhsm2.conf.in" > "$dir/softhsm2.conf"

# 32 hex characters from the kernel RNG; written straight to 0600 files.
random_pin() { od -An -N16 -tx1 /dev/urandom | tr -d ' \n'; }
random_pin > "$dir/so.pin"
random_pin > "$dir/user.pin"
chmod 600 "$dir/so.pin" "$dir/user.pin"

SOFTHSM2_CONF=$dir/softhsm2.conf "$p11kms" token init --module "$module" --label "$label" \
    --so-pin-file "$dir/so.pin" --pin-file "$dir/user.pin" >/dev/null

cat > "$dir/p11kms.conf" <<CONF
# p11kms configuration written by tokens/softhsm-token.sh.
# Relative paths are resolved against this file's folder.
module = $module
token = pkcs11:token=$label
pin = file:user.pin
store = sqlite:p11kms.db
audit = audit.log
CONF
chmod 600 "$dir/p11kms.conf"

echo "export SOFTHSM2_CONF=$dir/softhsm2.conf"
