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
# show_failures DIR: the end of the log of each test that failed under DIR.
show_failures() {
    for trs in $(grep -l -E '^:test-result: (FAIL|ERROR)' "$1"/tests/*.trs "$1"/tests/cli/*.trs 2>/dev/null); do
        echo "---- ${trs%.trs}.log" >&2
        tail -n 60 "${trs%.trs}.log" >&2
    done
}
[ $status -eq 0 ] || { show_failures .; echo "make check failed" >&2; exit $status; }
# ASan+UBSan build of the whole suite, valgrind on the unit suites, and a
# bounded fuzz run (scripts/sanitize.sh; docs/FUZZING.md).
if [ "${P11KMS_SKIP_SANITIZE:-}" = "" ]; then
    scripts/sanitize.sh || exit 1
fi
if [ "${P11KMS_SKIP_DISTCHECK:-}" = "" ]; then
    if ! make -j"$(nproc)" distcheck >/dev/null 2>distcheck.err; then
        cat distcheck.err >&2
        # distcheck leaves its build tree behind on failure.
        for dir in p11kms-*/_build/sub; do show_failures "$dir"; done
        echo "make distcheck failed" >&2
        exit 1
    fi
    rm -f distcheck.err
    echo "make distcheck: ok"
fi
