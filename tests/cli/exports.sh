#!/bin/bash
# The shared library exports only p11kms_ symbols, and exactly the ones in
# src/libp11kms.sym.
set -u
top=${P11KMS_TOP_BUILDDIR:-.}
lib=$top/.libs/libp11kms.so
[ -f "$lib" ] || { echo "FAIL: $lib not built"; echo "0 passed, 1 failed"; exit 1; }
syms=$(nm -D --defined-only "$lib" | awk '$2 ~ /^[TDBR]$/ {print $3}' | sort)
bad=$(printf '%s\n' "$syms" | grep -v '^p11kms_' || true)
if [ -n "$bad" ]; then
    echo "FAIL: non-p11kms symbols exported:"; printf '%s\n' "$bad"
    echo "0 passed, 1 failed"; exit 1
fi
want=$(sort "${P11KMS_TOP_SRCDIR:-.}/src/libp11kms.sym")
if [ "$syms" != "$want" ]; then
    echo "FAIL: exported symbols differ from src/libp11kms.sym:"
    diff <(printf '%s\n' "$want") <(printf '%s\n' "$syms") 2>/dev/null || true
    echo "0 passed, 1 failed"; exit 1
fi
# Every function the public header declares is in the list (and so exported).
declared=$(grep -oE 'p11kms_[a-z0-9_]+\(' "${P11KMS_TOP_SRCDIR:-.}/include/p11kms/p11kms.h" | tr -d '(' | sort -u)
if [ "$declared" != "$want" ]; then
    echo "FAIL: src/libp11kms.sym differs from the functions in include/p11kms/p11kms.h:"
    diff <(printf '%s\n' "$declared") <(printf '%s\n' "$want") || true
    echo "0 passed, 1 failed"; exit 1
fi
# A static link needs the dependency libraries: Libs.private lists them.
pc=$top/p11kms.pc
static=$(pkg-config --static --libs "$pc" 2>&1)
for l in -lp11kms -lp11-kit -lcrypto -ljansson -lsqlite3; do
    case " $static " in
    *" $l "*) ;;
    *) echo "FAIL: pkg-config --static --libs $pc lacks $l: $static"; echo "0 passed, 1 failed"; exit 1 ;;
    esac
done
# The command is a client of the exported library only: every symbol it
# takes from libp11kms is a p11kms_ call of src/libp11kms.sym, and it holds
# no copy of core (operations, keys, secrets, audit, PKCS#11, store, policy).
bin=$top/.libs/lt-p11kms; [ -f "$bin" ] || bin=$top/.libs/p11kms; [ -f "$bin" ] || bin=$top/p11kms
if ! ldd "$bin" 2>/dev/null | grep -q 'libp11kms\.so'; then
    echo "FAIL: $bin does not link libp11kms.so"; echo "0 passed, 1 failed"; exit 1
fi
used=$(nm -D --undefined-only "$bin" | awk '{print $NF}' | grep '^p11kms_' | sort -u)
[ -n "$used" ] || { echo "FAIL: $bin takes no p11kms_ symbol from the library"; echo "0 passed, 1 failed"; exit 1; }
stray=$(comm -23 <(printf '%s\n' "$used") <(printf '%s\n' "$want"))
if [ -n "$stray" ]; then
    echo "FAIL: $bin uses symbols not in src/libp11kms.sym:"; printf '%s\n' "$stray"
    echo "0 passed, 1 failed"; exit 1
fi
own=$(nm "$bin" | awk '$2 ~ /^[TtDdBbRr]$/ {print $3}' |
      grep -E '^(p11kms_|pk_(op|key|keys|secret|secrets|conn|audit|p11|store|policy|conf|record|rows)_)' || true)
if [ -n "$own" ]; then
    echo "FAIL: $bin defines library symbols itself:"; printf '%s\n' "$own" | head -20
    echo "0 passed, 1 failed"; exit 1
fi
echo "exported: $(printf '%s\n' "$syms" | wc -l) p11kms_ symbols; p11kms uses $(printf '%s\n' "$used" | wc -l)"
echo "1 passed, 0 failed"
