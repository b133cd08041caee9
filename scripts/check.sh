#!/bin/sh
# Install dependencies, build, and run every test: CUnit suites and CLI
# scenarios (make check), then make distcheck. Exit status is non-zero on
# any failure. Each test run uses fresh SoftHSM tokens in temporary folders.
set -eu
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
status=0
make -j"$(nproc)" check || status=$?
# Show each suite's summary, including on success.
for log in tests/*.log tests/cli/*.log; do
    [ -f "$log" ] || continue
    printf '%-28s ' "$(basename "$log" .log)"
    grep -E '^ *(tests|asserts) |passed, [0-9]+ failed' "$log" | tr -s ' ' | tr '\n' ' '
    echo
done
[ $status -eq 0 ] || { echo "make check failed" >&2; exit $status; }
if [ "${P11KMS_SKIP_DISTCHECK:-}" = "" ]; then
    make -j"$(nproc)" distcheck >/dev/null 2>distcheck.err || { cat distcheck.err >&2; echo "make distcheck failed" >&2; exit 1; }
    rm -f distcheck.err
    echo "make distcheck: ok"
fi
