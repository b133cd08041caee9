#!/bin/bash
# `make install` puts what an auditor runs where the documentation says
# (README.md, "Install"), and the installed pieces work from a minimal
# environment such as cron's: a fresh token made by the installed token
# script, `p11kms init`, then the installed compliance scripts with
# `env -i`. Installs into a DESTDIR under the test's temp dir; works in
# distcheck's VPATH build, whatever the prefix.
. "${P11KMS_TOP_SRCDIR:-.}/tests/cli/lib.sh"

D=$WORK/root
# Our own make, not the one running the tests: their flags (-j, TESTS=) are not for it.
run env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL "${MAKE:-make}" -C "$P11KMS_TOP_BUILDDIR" install DESTDIR="$D"
expect_rc 0 "make install DESTDIR"
[ "$RC" -eq 0 ] || { tail -n 20 "$OUT" "$ERR"; finish; }

# Where things went, relative to the configured prefix.
bin=$(find "$D" -path '*/bin/p11kms' -type f)
if [ -n "$bin" ] && [ -x "$bin" ]; then ok; else bad "no bin/p11kms under $D"; finish; fi
B=$(dirname "$bin")
P=$(dirname "$B")
bindir=${B#"$D"}
share=$P/share
installed() { if [ -e "$1" ]; then ok; else bad "not installed: ${1#"$D"}"; fi; }
same() { if cmp -s "$1" "$2"; then ok; else bad "${2#"$D"} differs from ${1#"$P11KMS_TOP_SRCDIR/"}"; fi; }

S=$P11KMS_TOP_SRCDIR
same "$S/docs/man/p11kms.1" "$share/man/man1/p11kms.1"
same "$S/docs/man/p11kms.conf.5" "$share/man/man5/p11kms.conf.5"
same "$S/contrib/bash-completion/p11kms" "$share/bash-completion/completions/p11kms"
for s in key-report policy-report audit-report; do
    same "$S/scripts/compliance/$s" "$B/p11kms-$s"
    if [ -x "$B/p11kms-$s" ]; then ok; else bad "p11kms-$s is not executable"; fi
done
same "$S/tokens/softhsm-token.sh" "$share/p11kms/tokens/softhsm-token.sh"
if [ -x "$share/p11kms/tokens/softhsm-token.sh" ]; then ok; else bad "softhsm-token.sh is not executable"; fi
same "$S/tokens/softhsm2.conf.in" "$share/p11kms/tokens/softhsm2.conf.in"
for f in application-operator key-administrator; do same "$S/tokens/policies/$f.json" "$share/p11kms/policies/$f.json"; done
installed "$share/doc/p11kms/p11kms-purge.timer"
installed "$share/doc/p11kms/p11kms.cron"
if grep -qx "ExecStart=$bindir/p11kms --as arn:aws:iam::000000000000:role/p11kms-maintenance key purge" \
    "$share/doc/p11kms/p11kms-purge.service"; then ok; else bad "p11kms-purge.service does not run $bindir/p11kms key purge"; fi
if grep -qx "PATH=$bindir:/usr/bin:/bin" "$share/doc/p11kms/p11kms.cron"; then ok; else bad "p11kms.cron lacks PATH=$bindir:..."; fi

# The installed pieces in cron's environment. The command links libp11kms
# statically today; LD_LIBRARY_PATH keeps the test right if it links the
# shared library one day (that lives in the DESTDIR, not yet in $libdir).
T=$WORK/tok
ENV="env -i PATH=$B:/usr/bin:/bin LD_LIBRARY_PATH=$P/lib P11KMS_SOFTHSM_MODULE=$P11KMS_SOFTHSM_MODULE"
run $ENV sh "$share/p11kms/tokens/softhsm-token.sh" "$T" p11kms
expect_rc 0 "installed softhsm-token.sh (p11kms on PATH)"; expect_out "export SOFTHSM2_CONF=$T/softhsm2.conf" "token script output"
ENV="env -i PATH=$B:/usr/bin:/bin LD_LIBRARY_PATH=$P/lib P11KMS_CONFIG=$T/p11kms.conf SOFTHSM2_CONF=$T/softhsm2.conf"
ADM=arn:aws:iam::111122223333:role/key-admin
OPR=arn:aws:iam::111122223333:role/flink-operator
run $ENV p11kms --as "$ADM" init --admin "$ADM" --operator "$OPR"
expect_rc 0 "installed p11kms init"; expect_out_has "initialised the store and system keys" "init"

run $ENV p11kms-audit-report
expect_rc 0 "installed p11kms-audit-report"; expect_out_has "verification: ok: audit log verified" "audit-report verifies"
expect_out_has "findings: 0" "audit-report summary"
run $ENV p11kms-key-report
expect_rc 0 "installed p11kms-key-report"
expect_out_has "key report for token 'p11kms': 1 keys, 0 unknown token objects, 0 findings" "key-report summary"
run $ENV p11kms-policy-report
expect_rc 0 "installed p11kms-policy-report"; expect_out_has "policy report: 1 keys, 0 findings" "policy-report summary"

# examples/envelope.c builds against the installed header and p11kms.pc alone
# (the sysroot variable maps the .pc's paths into the DESTDIR), and runs.
pcdir=$(dirname "$(find "$D" -name p11kms.pc | head -n 1)")
run env PKG_CONFIG_PATH="$pcdir" PKG_CONFIG_SYSROOT_DIR="$D" pkg-config --cflags --libs p11kms
expect_rc 0 "pkg-config finds the installed p11kms.pc"
flags=$(cat "$OUT")
# An ASan build's library needs the ASan runtime in the program too.
run ${CC:-cc} -Wall -Wextra -Werror ${P11KMS_SANITIZER_CFLAGS:-} -o "$WORK/envelope" "$S/examples/envelope.c" $flags
expect_rc 0 "examples/envelope.c builds against the installed header and pkg-config file"
run $ENV "$WORK/envelope" "$OPR" alias/p11kms/default "hello from the example"
expect_rc 0 "example runs"
expect_out_has "decrypts to: hello from the example" "example round trip"
run $ENV "$WORK/envelope" "$ADM" alias/p11kms/default "x"
expect_rc 4 "example: the administrator may not encrypt"
expect_err_has "envelope: encrypt: access denied" "example reports the denial"

# Without p11kms on PATH, a script runs the p11kms installed next to it.
run env -i PATH=/usr/bin:/bin LD_LIBRARY_PATH="$P/lib" P11KMS_CONFIG="$T/p11kms.conf" SOFTHSM2_CONF="$T/softhsm2.conf" \
    "$B/p11kms-audit-report"
expect_rc 0 "p11kms-audit-report beside p11kms, not on PATH"; expect_out_has "findings: 0" "audit-report beside p11kms"
# Neither: exit 3 and one line.
mkdir "$WORK/alone" && cp "$B/p11kms-key-report" "$WORK/alone/"
run env -i PATH=/usr/bin:/bin "$WORK/alone/p11kms-key-report"
expect_rc 3 "no p11kms anywhere"; expect_err "p11kms-key-report: cannot find the p11kms command (set P11KMS_BIN)" "no p11kms anywhere"

# The installed command has its help and finds the man page's synopsis.
run $ENV p11kms help key purge
expect_rc 0 "installed help"; expect_out_has "usage: p11kms key purge" "installed help"

# make uninstall takes it all away again.
run env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL "${MAKE:-make}" -C "$P11KMS_TOP_BUILDDIR" uninstall DESTDIR="$D"
expect_rc 0 "make uninstall DESTDIR"
left=$(find "$D" -type f | sed "s|^$D||")
if [ -z "$left" ]; then ok; else bad "make uninstall left: $left"; fi
finish
