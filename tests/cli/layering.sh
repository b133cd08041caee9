#!/bin/sh
# Layers call only downward (docs/DESIGN.md, "Layers"). Checks, folder by
# folder against the matrix below:
#  1. includes: every `#include "x/..."` in src/*/ and bench/ names a folder
#     the including folder may use;  FILE:LINE: includes x/y.h but F may only use ...
#  2. calls: every symbol an object file of a folder takes from another
#     folder (nm, undefined symbols resolved to the folder whose objects
#     define them) belongs to a folder it may use, so a call made with a
#     hand-written prototype is caught too;  FILE:LINE: calls sym (x/) but ...
#  3. outside libraries stay in their folder, and the public header includes
#     only stddef.h/stdint.h.
# Usage: layering.sh [TOP_SRCDIR [TOP_BUILDDIR]] (default: the test environment).
# tests/cli/layering-plant.sh plants violations in a copy and expects failure.
set -u
top=${1:-${P11KMS_TOP_SRCDIR:-.}}
build=${2:-${P11KMS_TOP_BUILDDIR:-$top}}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/layering.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT

# Folder: the folders it may use besides itself. "api" is the public
# header include/p11kms/p11kms.h and every exported p11kms_ call: every
# folder may include the header (for p11kms_rc); a client that has "api"
# may call any p11kms_ symbol, other folders only those of the folders they
# may use (p11kms_config_get is conf/'s). Rule: util/ stands on nothing; crypto/ and json/ each
# wrap one outside library and stand on util/; conf/ stands on util/; above
# them each layer uses only layers below it.
# bench/ may also use esdk/: p11kms-file-bench measures the frame layer with a
# raw data key against openssl speed (the HSM call per file is not the figure).
cat > "$tmp/matrix" <<'EOF'
util:
crypto: util
json: util
conf: util
p11: util crypto conf
store: util crypto
policy: util json
auth: util crypto
audit: util crypto json conf p11
keys: util crypto json conf p11 store policy
secrets: util crypto json conf p11 store policy keys
esdk: util crypto json
core: util crypto json conf p11 store policy auth audit keys secrets esdk api remote
cli: util json api
daemon: util json api
bench: util json api esdk
remote: util json
EOF

fail=0
report() { echo "FAIL: $*"; fail=1; }

# ---- 1. includes ----
{ grep -nE '^[[:space:]]*#[[:space:]]*include[[:space:]]*"[a-z0-9_]+/' \
      "$top"/src/*/*.[ch] "$top"/bench/*.c 2>/dev/null || true; } |
    sed "s#^$top/##" > "$tmp/includes"
awk -v M="$tmp/matrix" '
BEGIN {
    while ((getline l < M) > 0) { split(l, p, ":"); may[p[1]] = " " p[2] " "; gsub(/  +/, " ", may[p[1]]); if (may[p[1]] == " ") may[p[1]] = " nothing"; }
}
{
    # FILE:LINE:#include "x/y.h"
    file = $0; sub(/:.*/, "", file);
    rest = substr($0, length(file) + 2); line = rest; sub(/:.*/, "", line);
    hdr = rest; sub(/^[^"]*"/, "", hdr); sub(/".*/, "", hdr);
    n = split(file, fp, "/"); folder = (fp[1] == "bench") ? "bench" : fp[2];
    target = hdr; sub(/\/.*/, "", target);
    if (target == "p11kms") target = "api";
    if (target == folder) next;
    if (!(folder in may)) { printf "%s:%s: folder %s is not in the layering matrix\n", file, line, folder; next; }
    if (target == "api" || index(may[folder], " " target " ")) next;
    printf "%s:%s: includes %s but %s/ may only use:%s\n", file, line, hdr, folder, may[folder];
}' "$tmp/includes" > "$tmp/bad-includes"
[ -s "$tmp/bad-includes" ] && report "includes across a wall:" && cat "$tmp/bad-includes"

# ---- 2. calls ----
# Objects of src/<folder>/ and bench/; an object older than its source is
# stale (make would rebuild it) and is skipped.
: > "$tmp/objects"
for o in $(find "$build/src" "$build/bench" -name '*.o' ! -path '*/.libs/*' 2>/dev/null | sort); do
    rel=${o#"$build"/}
    base=$(basename "$o" .o)
    srcf=$(dirname "$rel")/${base#*-}.c
    [ -f "$top/$srcf" ] || continue
    [ "$o" -ot "$top/$srcf" ] && continue
    echo "$o $srcf" >> "$tmp/objects"
done
if [ ! -s "$tmp/objects" ]; then
    report "no object files under $build/src: build first (the call check needs them)"
else
    while read -r o srcf; do
        nm -P "$o" 2>/dev/null | awk -v f="$srcf" '{ print f, $1, $2 }'
    done < "$tmp/objects" > "$tmp/symbols"
    awk -v M="$tmp/matrix" '
    BEGIN {
        while ((getline l < M) > 0) { split(l, p, ":"); may[p[1]] = " " p[2] " "; gsub(/  +/, " ", may[p[1]]); if (may[p[1]] == " ") may[p[1]] = " nothing"; }
        }
    function folder_of(file,  fp) { split(file, fp, "/"); return fp[1] == "bench" ? "bench" : fp[2]; }
    # First pass: who defines what (a symbol may be defined in several folders).
    NR == FNR {
        if ($3 ~ /^[TDBRCWV]$/) {
            g = folder_of($1);
            if (index(def[$2], " " g " ") == 0) def[$2] = def[$2] " " g " ";
        }
        next;
    }
    $3 == "U" && ($2 in def) {
        folder = folder_of($1);
        if (index(def[$2], " " folder " ")) next;          # its own folder
        if (!(folder in may)) next;                        # reported by the include check
        if ($2 ~ /^p11kms_/ && index(may[folder], " api ")) next; # a client calls the exported API
        n = split(def[$2], d, " "); ok = 0;
        for (i = 1; i <= n; i++)
            if (index(may[folder], " " d[i] " ")) ok = 1;
        if (!ok) print $1, $2, d[1], folder, may[folder];
    }' "$tmp/symbols" "$tmp/symbols" | sort -u > "$tmp/bad-calls"
    if [ -s "$tmp/bad-calls" ]; then
        report "calls across a wall:"
        while read -r f sym target folder may; do
            # The first call: a line naming "sym(" that is not a top-level prototype.
            line=$(grep -nE "(^|[^A-Za-z0-9_])$sym[[:space:]]*\(" "$top/$f" 2>/dev/null |
                   grep -vE '^[0-9]+:[A-Za-z_].*;[[:space:]]*$' | head -n 1 | cut -d: -f1)
            echo "$f${line:+:$line}: calls $sym ($target/) but $folder/ may only use: $may"
        done < "$tmp/bad-calls"
    fi
fi

# ---- 3. outside libraries, each in its folder ----
# bench/ measures raw PKCS#11 and OpenSSL EVP baselines: it may use both.
check_lib() { # PATTERN FOLDERS...
    pat=$1; shift
    grep -rnE "^[[:space:]]*#[[:space:]]*include[[:space:]]*<($pat)" "$top/src" --include='*.[ch]' |
        sed "s#^$top/##" > "$tmp/lib" || true
    for f in "$@"; do grep -v "^src/$f/" "$tmp/lib" > "$tmp/lib2"; mv "$tmp/lib2" "$tmp/lib"; done
    if [ -s "$tmp/lib" ]; then report "<$pat> included outside src/{$*}:"; sed 's/^/  /' "$tmp/lib"; fi
}
check_lib 'p11-kit/|pkcs11' p11
check_lib 'openssl/' crypto daemon # the daemon's TLS (libssl) is its own dependency
check_lib 'jansson' json
check_lib 'sqlite3' store
check_lib 'event2?/' daemon
check_lib 'curl/' remote # libcurl: the command as a client of p11kmsd (connect =)
if grep -n "#include" "$top/include/p11kms/p11kms.h" | grep -vE '<std(def|int)\.h>'; then
    report "the public header includes more than stddef.h/stdint.h"
fi

[ $fail -eq 0 ] && echo "1 passed, 0 failed" || echo "0 passed, 1 failed"
exit $fail
