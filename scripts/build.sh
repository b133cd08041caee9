#!/bin/sh
# Configure and build p11kms in the source tree (used by check.sh and demo.sh).
set -eu
cd "$(dirname "$0")/.."
[ -x configure ] || ./autogen.sh >/dev/null
[ -f Makefile ] || ./configure -q "$@"
make -j"$(nproc)" >/dev/null
