#!/bin/sh
# Install the Debian 12 packages p11kms needs to build, test and run.
# Runs as root (apt-get); does nothing when everything is present.
set -eu
pkgs="build-essential autoconf automake libtool pkg-config
      libp11-kit-dev p11-kit softhsm2 libssl-dev libjansson-dev libcunit1-dev
      libsqlite3-dev sqlite3 opensc valgrind faketime mandoc libnss3 libnss3-tools"
# tests/cli/render.sh reads rendered YAML back with PyYAML.
pkgs="$pkgs python3 python3-yaml"
# libFuzzer targets (scripts/fuzz.sh): clang and its fuzzer runtime.
pkgs="$pkgs clang libclang-rt-14-dev"
# p11kmsd: libevent; its tests drive it with curl, the AWS CLI and node (tests/node).
pkgs="$pkgs libevent-dev curl awscli"
# The command with connect = (src/remote): libcurl.
pkgs="$pkgs libcurl4-openssl-dev"
# Node and npm run the AWS SDK tests; a machine that already has a node
# (e.g. from NodeSource) keeps it, otherwise Debian's.
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || pkgs="$pkgs nodejs npm"
# clients/java (p11kms-flink.jar) and its tests: a JDK 17.
pkgs="$pkgs openjdk-17-jdk-headless"
missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps.sh: missing packages:$missing; run as root or: sudo apt-get install$missing" >&2
    exit 1
fi
echo "installing:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing
