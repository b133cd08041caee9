#!/bin/bash
# The message format against the official AWS Encryption SDK for
# JavaScript, offline: both directions under a Raw AES keyring (the format
# layer with a raw data key, tests/esdk_raw), plaintexts of 0, 1, frame-1,
# frame, frame+1 bytes and 8 MiB, an empty context and non-ASCII keys, both
# suites. The KMS keyring half needs p11kmsd (tests/node/esdk-interop.test.js).
# Skips (77) loudly when node/npm or the package are unavailable.
. "${P11KMS_TOP_SRCDIR:-.}/tests/cli/lib.sh"

RAW=$P11KMS_TOP_BUILDDIR/tests/esdk_raw
JS=$P11KMS_TOP_SRCDIR/tests/node/esdk-raw.cjs
MODS=${P11KMS_NODE_MODULES:-${XDG_CACHE_HOME:-$HOME/.cache}/p11kms-node}
skip() { echo "SKIP: $1: the format check against the official SDK did NOT run"; exit 77; }
command -v node >/dev/null || skip "node is not installed"
if [ ! -d "$MODS/node_modules/@aws-crypto/client-node" ]; then
    command -v npm >/dev/null || skip "npm is not installed"
    mkdir -p "$MODS" && timeout 180 npm install --prefix "$MODS" --no-audit --no-fund @aws-crypto/client-node@5 \
        >"$WORK/npm.log" 2>&1 || skip "npm install @aws-crypto/client-node failed (no network?): $(tail -1 "$WORK/npm.log")"
fi
export NODE_PATH=$MODS/node_modules

KEY=000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
head -c $((8 << 20)) /dev/urandom >"$WORK/big"
for suite in 0x0478 0x0578; do
    for size in 0 1 4095 4096 4097 big; do
        if [ "$size" = big ]; then cp "$WORK/big" "$WORK/p"; else head -c "$size" "$WORK/big" >"$WORK/p"; fi
        for ctx in "" "tenant=a sch$(printf '\xc3\xa9')ma=v$(printf '\xc3\xa9') $(printf '\xe6\x97\xa5')=x"; do
            # shellcheck disable=SC2086
            run_in "$WORK/p" "$RAW" encrypt "$KEY" "$suite" 4096 2 $ctx
            cp "$OUT" "$WORK/c"
            run_in "$WORK/c" node "$JS" decrypt "$KEY"
            expect_rc 0 "SDK decrypts p11kms $suite $size [$ctx]"
            cmp -s "$OUT" "$WORK/p" && ok || bad "SDK plaintext $suite $size"
            # shellcheck disable=SC2086
            run_in "$WORK/p" node "$JS" encrypt "$KEY" "$suite" 4096 $ctx
            expect_rc 0 "SDK encrypts $suite $size"
            cp "$OUT" "$WORK/n"
            run_in "$WORK/n" "$RAW" decrypt "$KEY" 2
            expect_rc 0 "p11kms decrypts SDK $suite $size [$ctx]"
            cmp -s "$OUT" "$WORK/p" && ok || bad "p11kms plaintext $suite $size"
        done
    done
done
# A changed byte of an SDK message is refused.
printf 'hello' >"$WORK/p"
run_in "$WORK/p" node "$JS" encrypt "$KEY" 0x0478 4096 a=b
head -c -20 "$OUT" >"$WORK/n"
run_in "$WORK/n" "$RAW" decrypt "$KEY" 1
expect_rc 1 "truncated SDK message"; expect_err "esdk_raw: decrypt: truncated message: the final frame is incomplete" "truncated SDK message"
finish
