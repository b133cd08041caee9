#!/bin/sh
# The main job, end to end, on an embedded default: installs what is
# missing, builds, creates a SoftHSM token and store under ./demo/, and
# runs p11kms against it.
set -eu
cd "$(dirname "$0")/.."
top=$(pwd)
scripts/install-deps.sh
scripts/build.sh
demo=$top/demo
rm -rf "$demo"
P11KMS_BIN=$top/p11kms tokens/softhsm-token.sh "$demo" p11kms >/dev/null
export SOFTHSM2_CONF="$demo/softhsm2.conf"
export P11KMS_CONFIG="$demo/p11kms.conf"
p11kms() { "$top/p11kms" "$@"; }
step() { printf '\n== %s\n' "$*"; }

step "token: what p11kms found"
p11kms token info
echo
echo "demo folder: $demo (config: $P11KMS_CONFIG)"
