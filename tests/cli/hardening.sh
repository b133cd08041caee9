#!/bin/bash
# The built p11kms and libp11kms.so carry the hardening that configure turns
# on by default: full RELRO (GNU_RELRO + BIND_NOW), PIE, the stack protector
# and fortified libc calls. Skipped (77) when configured --disable-hardening.
. "${P11KMS_TOP_SRCDIR:-.}/tests/cli/lib.sh"

top=$P11KMS_TOP_BUILDDIR
if ! grep -q '^HARDEN_CFLAGS = .*-fstack-protector' "$top/Makefile"; then
    echo "SKIP: hardening is off (configured with --disable-hardening or the compiler refused the flags)"
    exit 77
fi
command -v readelf >/dev/null || { echo "SKIP: readelf not installed (binutils)"; exit 77; }
lib=$(readlink -f "$top/.libs/libp11kms.so")
[ -f "$lib" ] && ok || bad "libp11kms.so not built"

# The command links the shared library, so in the build tree p11kms is
# libtool's wrapper script; the ELF file is under .libs.
bin=$top/.libs/lt-p11kms; [ -f "$bin" ] || bin=$top/.libs/p11kms; [ -f "$bin" ] || bin=$P11KMS
for f in "$bin" "$lib"; do
    n=$(basename "$f")
    readelf -lW "$f" | grep -q GNU_RELRO && ok || bad "$n: no GNU_RELRO segment"
    readelf -dW "$f" | grep -qE 'BIND_NOW|Flags: .*NOW' && ok || bad "$n: not BIND_NOW (partial RELRO)"
    syms=$(readelf --dyn-syms -W "$f")
    grep -q '__stack_chk_fail' <<<"$syms" && ok || bad "$n: __stack_chk_fail not referenced (no stack protector)"
    grep -qE '__(memcpy|snprintf|vsnprintf|printf|fprintf)_chk' <<<"$syms" && ok || bad "$n: no fortified __*_chk calls"
done
readelf -hW "$bin" | grep -qE 'Type: +DYN' && ok || bad "p11kms is not PIE (ELF type is not DYN)"
readelf -dW "$bin" | grep -qE 'Flags: .*PIE' && ok || bad "p11kms lacks the PIE flag"

finish
