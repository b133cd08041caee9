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
if grep -rn "#include" "$src/../include/p11kms/p11kms.h" | grep -vE '<std(def|int)\.h>'; then
    echo "FAIL: the public header includes more than stddef.h/stdint.h"; fail=1
fi
[ $fail -eq 0 ] && echo "1 passed, 0 failed" || echo "0 passed, 1 failed"
exit $fail
