#!/bin/sh
# Build the libFuzzer targets of tests/fuzz/ with clang
# (-fsanitize=fuzzer,address,undefined) in a separate build folder and run
# each for FUZZ_SECONDS seconds, starting from its seed corpus in
# tests/fuzz/corpus/TARGET/. Prints, per target, the executions, coverage
# (libFuzzer's final cov/ft) and findings; exits 1 when any target found a
# crash, leak or timeout (the input is kept in FUZZ_BUILD/artifacts/).
#   FUZZ_SECONDS=N   seconds per target (default 60; 0: only replay the corpus)
#   FUZZ_TARGETS="a b"  a subset (names without fuzz_)
#   FUZZ_BUILD=DIR   build folder (default _fuzz in the source tree)
#   CLANG=clang      the compiler
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
seconds=${FUZZ_SECONDS:-60}
build=${FUZZ_BUILD:-$top/_fuzz}
cc=${CLANG:-clang}
san="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
command -v "$cc" >/dev/null 2>&1 || { echo "fuzz.sh: $cc not found: run scripts/install-deps.sh" >&2; exit 3; }

# The libraries, instrumented for coverage (fuzzer-no-link) and sanitized.
cflags="-g -O1 -fsanitize=fuzzer-no-link $san"
mkdir -p "$build"
[ -x "$top/configure" ] || (cd "$top" && ./autogen.sh >/dev/null)
# configure refuses to build out of tree from a configured source tree:
# then build from a copy of the distributed files (make distdir keeps
# their times, so unchanged files are not compiled again).
src=$top
if [ -f "$top/config.status" ]; then
    rm -rf "$build/src"
    make -C "$top" distdir distdir="$build/src" >/dev/null
    src=$build/src
fi
obj=$build/obj
mkdir -p "$obj"
# Configure again when the compiler, flags or source folder changed since the last run.
if [ ! -f "$obj/Makefile" ] || [ "$(cat "$obj/fuzz-flags" 2>/dev/null)" != "$cc $cflags $src" ]; then
    (cd "$obj" && CC="$cc" CFLAGS="$cflags" "$src/configure" -q --disable-shared --without-java >/dev/null)
    make -C "$obj" clean >/dev/null
    echo "$cc $cflags $src" >"$obj/fuzz-flags"
fi
make -C "$obj" -j"$(nproc)" libp11kms-core.la >/dev/null

deps=$(pkg-config --libs p11-kit-1 libcrypto jansson sqlite3 libcurl)
incs="-I$top/include -I$top/src -I$top/tests -I$obj $(pkg-config --cflags p11-kit-1 jansson libevent)"
mkdir -p "$build/bin" "$build/artifacts" "$build/corpus"
targets=${FUZZ_TARGETS:-$(cd "$top/tests/fuzz" && ls fuzz_*.c | sed 's/^fuzz_//; s/\.c$//')}
for t in $targets; do
    src="$top/tests/fuzz/fuzz_$t.c"
    # "fuzz-sources:" and "fuzz-libs:" lines in the target name what it needs besides the core library.
    extra=$(sed -n 's/^ \* fuzz-sources: //p' "$src" | sed "s|[^ ]*|$top/&|g")
    libs=$(sed -n 's/^ \* fuzz-libs: //p' "$src")
    # shellcheck disable=SC2086
    "$cc" -g -O1 -fsanitize=fuzzer $san -pthread -DP11KMS_FUZZ $incs -o "$build/bin/fuzz_$t" "$src" $extra \
        "$obj/.libs/libp11kms-core.a" $libs $deps
done

status=0
printf '%-12s %12s %8s %8s %s\n' target execs cov ft findings
for t in $targets; do
    bin="$build/bin/fuzz_$t"
    seeds="$top/tests/fuzz/corpus/$t"
    work="$build/corpus/$t"
    log="$build/fuzz_$t.log"
    mkdir -p "$work"
    rm -f "$build/artifacts/$t-"*
    if [ "$seconds" -eq 0 ]; then
        set -- -runs=0
    else
        set -- -max_total_time="$seconds" "$work"
    fi
    # Leaks are findings too; -timeout catches an input that takes 10 s.
    rc=0
    ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1} UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1} \
        "$bin" "$@" "$seeds" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="$build/artifacts/$t-" >"$log" 2>&1 || rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 | cut -d' ' -f2)
    ft=$(grep -o 'ft: [0-9]*' "$log" | tail -n 1 | cut -d' ' -f2)
    # A UBSan report that did not stop the run still counts.
    found=$(ls "$build/artifacts/$t-"* 2>/dev/null | wc -l)
    [ "$found" -ne 0 ] || found=$(grep -c "runtime error:" "$log" || :)
    if [ "$rc" -ne 0 ] || [ "$found" -ne 0 ]; then
        status=1
        note="$found ($(ls "$build/artifacts/$t-"* 2>/dev/null | xargs -r -n1 basename | tr '\n' ' ')exit $rc; see $log)"
    else
        note=0
    fi
    printf '%-12s %12s %8s %8s %s\n' "$t" "${execs:--}" "${cov:--}" "${ft:--}" "$note"
done
exit $status
