#!/bin/sh
# tests/cli/layering.sh breaks loudly: in a scratch copy of the tree (src/,
# include/, bench/ and the object files of the build) it first passes, then
# fails naming the file and line of each planted violation: an include up
# into core/, a call down-to-up made with a hand-written prototype (no
# include to see), and an outside library outside its folder.
set -u
top=${P11KMS_TOP_SRCDIR:-.}
build=${P11KMS_TOP_BUILDDIR:-.}
. "$top/tests/cli/lib.sh"
check=$top/tests/cli/layering.sh
copy=$WORK/top
objs=$WORK/build

mkdir -p "$copy" "$objs"
cp -pR "$top/src" "$top/include" "$top/bench" "$copy/"
(cd "$build" && find src bench -name '*.o' ! -path '*/.libs/*') | while read -r o; do
    mkdir -p "$objs/$(dirname "$o")" && cp -p "$build/$o" "$objs/$o"
done

run sh "$check" "$copy" "$objs"
expect_rc 0 "the unplanted copy passes"
expect_out_has "1 passed, 0 failed" "the unplanted copy reports a pass"

# 1. util/ includes core/ (line 2 of buf.c).
sed -i '1a #include "core/core.h"' "$copy/src/util/buf.c"
# 2. util/ calls keys/ without including it (line 4 of plant.c).
cat > "$copy/src/util/plant.c" <<'EOF'
/* planted by tests/cli/layering-plant.sh */
int pk_key_get(void *h, const char *id, void **out);
int pk_plant(void);
int pk_plant(void) { return pk_key_get(0, "k", 0); }
EOF
${CC:-cc} -c -o "$objs/src/util/libp11kms_util_la-plant.o" "$copy/src/util/plant.c"
# 3. SQLite outside store/.
sed -i '1a #include <sqlite3.h>' "$copy/src/policy/policy_arena.c"

run sh "$check" "$copy" "$objs"
expect_rc 1 "a planted violation fails the check"
expect_out_has "src/util/buf.c:2: includes core/core.h but util/ may only use:" "names the include's file and line"
expect_out_has "src/util/plant.c:4: calls pk_key_get (keys/) but util/ may only use:" "names the call's file and line"
expect_out_has "src/policy/policy_arena.c:2:#include <sqlite3.h>" "names the outside library's file and line"
expect_out_has "0 passed, 1 failed" "reports the failure"
finish
