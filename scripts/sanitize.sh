#!/bin/sh
# The sanitizer stage of scripts/check.sh (skip it with P11KMS_SKIP_SANITIZE=1):
#   1. the whole `make check` again, built out of tree in _sanitize/ with
#      ASan + UBSan (-fno-sanitize-recover=all);
#   2. the unit suites under valgrind (`make memcheck` in the main build);
#   3. each libFuzzer target for P11KMS_FUZZ_SECONDS (default 20) seconds.
# Every sanitizer report of every process (also one whose exit status a test
# expected to be non-zero, or a daemon killed at the end of a test) is
# written under _sanitize/reports/; any report fails the stage. Prints the
# time of each step.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
build=$top/_sanitize/build
reports=$top/_sanitize/reports
jobs=$(nproc)
cd "$top"
t0=$(date +%s)

# configure refuses to build out of tree from a configured source tree, and
# make would take that tree's test logs for its own: build from a copy of
# the distributed files (make distdir keeps their times).
# As in distcheck, the build folder sits below the copy and configure is
# called by a relative path, so that __FILE__ in P11KMS_DEBUG lines reads
# (../)*src/... as tests/cli/token.sh expects.
src=../..
if [ -f "$top/config.status" ]; then
    rm -rf "$top/_sanitize/src"
    mkdir -p "$top/_sanitize" # make distdir makes only the last folder
    make distdir distdir="$top/_sanitize/src" >/dev/null
    build=$top/_sanitize/src/_build
    src=..
fi
mkdir -p "$build"
if [ ! -f "$build/Makefile" ] || [ "$(cat "$build/sanitize-src" 2>/dev/null)" != "$src" ]; then
    (cd "$build" && "$src/configure" -q --enable-sanitizers CFLAGS="-g -O1 -fno-sanitize-recover=all")
    make -C "$build" clean >/dev/null
    echo "$src" >"$build/sanitize-src"
fi
make -C "$build" -j"$jobs" >/dev/null
rm -rf "$reports"
mkdir -p "$reports"
# detect_leaks stays on; tests/lsan.supp names the leaks that are not ours.
# halt_on_error: the first error ends the process, as -fno-sanitize-recover does for UBSan.
ASAN_OPTIONS="log_path=$reports/asan:detect_leaks=1:halt_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1"
LSAN_OPTIONS="suppressions=$top/tests/lsan.supp:print_suppressions=0"
UBSAN_OPTIONS="log_path=$reports/ubsan:print_stacktrace=1:halt_on_error=1"
export ASAN_OPTIONS LSAN_OPTIONS UBSAN_OPTIONS
status=0
make -C "$build" -j"$jobs" check >/dev/null 2>&1 || status=$?
unset ASAN_OPTIONS LSAN_OPTIONS UBSAN_OPTIONS
t1=$(date +%s)
if [ $status -ne 0 ]; then
    for trs in $(grep -l -E '^:test-result: (FAIL|ERROR)' "$build"/tests/*.trs "$build"/tests/cli/*.trs 2>/dev/null); do
        echo "---- ${trs%.trs}.log" >&2
        tail -n 60 "${trs%.trs}.log" >&2
    done
    echo "sanitize: make check failed in the ASan/UBSan build" >&2
fi
# An empty log file is a process that reported nothing (ASan opens it early).
find "$reports" -type f -size 0 -delete
# LeakSanitizer stops the world with ptrace, which a process that made itself
# non-dumpable (p11kms hardening, PR_SET_DUMPABLE 0) may refuse at exit: that
# one line says the leak check could not run, not that something leaked.
for f in "$reports"/*; do
    [ -f "$f" ] || continue
    grep -qv 'Unable to get registers from thread' "$f" || rm -f "$f"
done
if [ -n "$(ls "$reports")" ]; then
    for f in "$reports"/*; do
        echo "---- $f" >&2
        head -n 40 "$f" >&2
    done
    echo "sanitize: $(ls "$reports" | wc -l) sanitizer report(s) in $reports" >&2
    status=1
fi
echo "sanitize: make check under ASan+UBSan: $([ $status -eq 0 ] && echo ok || echo FAILED) ($((t1 - t0)) s)"

step=ok
make -j"$jobs" memcheck >"$build/memcheck.log" 2>&1 || {
    tail -n 60 "$build/memcheck.log" >&2
    step=FAILED
    status=1
}
t2=$(date +%s)
echo "sanitize: make memcheck (valgrind): $step ($((t2 - t1)) s)"

step=ok
FUZZ_SECONDS=${P11KMS_FUZZ_SECONDS:-20} scripts/fuzz.sh || {
    echo "sanitize: a fuzz target found a crash (the input is in _fuzz/artifacts/)" >&2
    step=FAILED
    status=1
}
t3=$(date +%s)
echo "sanitize: fuzz: $step ($((t3 - t2)) s); sanitizer stage in all: $((t3 - t0)) s"
exit $status
