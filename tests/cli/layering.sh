#!/bin/sh
# Each outside library is confined to one folder (docs/DESIGN.md). This
# fails when a header of PKCS#11/p11-kit, OpenSSL, jansson or SQLite is
# included anywhere else.
set -u
src=${P11KMS_TOP_SRCDIR:-.}/src
fail=0
check() { # PATTERN ALLOWED-FOLDER [ALLOWED-FILE]
    bad=$(grep -rlE "#include *<($1)" "$src" | grep -v "^$src/$2/" | grep -vxF "$src/${3:-/}" || true)
    if [ -n "$bad" ]; then echo "FAIL: <$1> included outside src/$2: $bad"; fail=1; fi
}
check 'p11-kit/|pkcs11' p11
# p11kmsd terminates TLS for its own listeners: one file, not the library.
check 'openssl/' crypto daemon/tls.c
check 'jansson' json
check 'sqlite3' store
# src/auth (SigV4 canonicalisation) is pure: it calls only crypto and util, never up into core.
bad=$(grep -lE '#include "(core|keys|store|p11|audit|secrets|policy|cli)/' "$src"/auth/*.[ch] 2>/dev/null || true)
if [ -n "$bad" ]; then echo "FAIL: src/auth includes a higher layer: $bad"; fail=1; fi
if grep -rn "#include" "$src/../include/p11kms/p11kms.h" | grep -vE '<std(def|int)\.h>'; then
    echo "FAIL: the public header includes more than stddef.h/stdint.h"; fail=1
fi
# The command is a client of the public header: besides its own folder it
# may include only the helpers of libp11kms-util (util/ without error.c's
# internals, and the JSON reader).
bad=$(grep -nE '^#include "' "$src"/cli/*.c "$src"/cli/*.h |
      grep -vE '#include "(config\.h|cli/[a-z_]+\.h|p11kms/p11kms\.h|util/(bytes|codec|json_out|secbuf|timefmt|result)\.h|json/json_in\.h)"' || true)
if [ -n "$bad" ]; then echo "FAIL: src/cli includes internal headers:"; echo "$bad"; fail=1; fi
[ $fail -eq 0 ] && echo "1 passed, 0 failed" || echo "0 passed, 1 failed"
exit $fail
