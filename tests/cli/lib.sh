# Shared helpers for CLI scenario scripts: run a command, then assert its
# exact exit code, stdout and stderr. Each scenario ends with `finish`,
# which prints "N passed, M failed" and sets the exit status.
set -u

: "${P11KMS_TOP_BUILDDIR:=.}"
: "${P11KMS_TOP_SRCDIR:=.}"
P11KMS=${P11KMS_BIN:-$P11KMS_TOP_BUILDDIR/p11kms}
export P11KMS_BIN=$P11KMS
unset P11KMS_CONFIG P11KMS_PRINCIPAL

passed=0
failed=0
WORK=$(mktemp -d /tmp/p11kms-cli-XXXXXX)
cleanup() { [ -n "${P11KMS_KEEP_TEST_DIR:-}" ] || rm -rf "$WORK"; }
trap cleanup EXIT
OUT=$WORK/.out
ERR=$WORK/.err

# run CMD... : runs it, keeping stdout/stderr/exit code for the checks below.
run() {
    "$@" >"$OUT" 2>"$ERR" </dev/null
    RC=$?
    # Every stderr line, all runs: scenarios grep it for secrets at the end.
    cat "$ERR" >>"$WORK/.all-stderr"
}
# run_in INPUT-FILE CMD...
run_in() {
    input=$1; shift
    "$@" >"$OUT" 2>"$ERR" <"$input"
    RC=$?
    cat "$ERR" >>"$WORK/.all-stderr"
}

ok() { passed=$((passed + 1)); }
bad() {
    failed=$((failed + 1))
    echo "FAIL: $1"
    echo "  exit: $RC"
    echo "  stdout: $(head -c 600 "$OUT")"
    echo "  stderr: $(head -c 600 "$ERR")"
}

# expect_rc N DESCRIPTION
expect_rc() { if [ "$RC" -eq "$1" ]; then ok; else bad "$2: exit $RC, want $1"; fi; }
# expect_err "exact stderr" DESCRIPTION
expect_err() { if [ "$(cat "$ERR")" = "$1" ]; then ok; else bad "$2: stderr differs; want: $1"; fi; }
# expect_err_has "substring" DESCRIPTION
expect_err_has() { if grep -qF -- "$1" "$ERR"; then ok; else bad "$2: stderr lacks: $1"; fi; }
# expect_out "exact stdout" DESCRIPTION
expect_out() { if [ "$(cat "$OUT")" = "$1" ]; then ok; else bad "$2: stdout differs; want: $1"; fi; }
# expect_out_has "substring" DESCRIPTION
expect_out_has() { if grep -qF -- "$1" "$OUT"; then ok; else bad "$2: stdout lacks: $1"; fi; }
expect_out_lacks() { if grep -qF -- "$1" "$OUT"; then bad "$2: stdout has: $1"; else ok; fi; }
# expect_fail_clean DESCRIPTION: non-zero, no crash signal, one-line message.
expect_fail_clean() {
    if [ "$RC" -ne 0 ] && [ "$RC" -lt 128 ] && [ "$(wc -l <"$ERR")" -eq 1 ]; then ok; else bad "$1: not a clean one-line failure"; fi
}

# new_token DIR [LABEL]: a fresh SoftHSM token and p11kms.conf under DIR.
new_token() {
    "$P11KMS_TOP_SRCDIR/tokens/softhsm-token.sh" "$1" "${2:-p11kms}" >"$WORK/.export" || {
        echo "FAIL: cannot create token in $1"; exit 1; }
    export SOFTHSM2_CONF=$1/softhsm2.conf
}

finish() {
    echo "$passed passed, $failed failed"
    [ "$failed" -eq 0 ]
    exit $?
}

# SoftHSM 2.6 rewrites token.object in place (truncate + write) on every
# C_Login; a SIGKILL inside that write leaves it empty and the token
# uninitialised. That is the token's file store, not p11kms's store (see
# docs/SECRETS.md "Crash safety"). Kill loops (crash.sh, freshness-crash.sh)
# keep a copy after token_guard_start TOKEN_DIR and call guard_token after
# each kill, which restores it and counts such hits in token_hits.
token_guard_start() {
    TOKOBJ=$(ls "$1"/tokens/*/token.object)
    cp -p "$TOKOBJ" "$WORK/token.object.bak"
    token_hits=0
}
guard_token() {
    if ! cmp -s "$TOKOBJ" "$WORK/token.object.bak"; then
        [ -s "$TOKOBJ" ] || token_hits=$((token_hits + 1))
        cp -p "$WORK/token.object.bak" "$TOKOBJ"
    fi
}
# Kill loops: run p11kms ARGS in the background and SIGKILL it after DELAY
# seconds, then guard_token. Counts `killed`; kill_rc is the process's status.
run_and_kill() {
    local delay=$1 pid
    shift
    "$P11KMS" "$@" >/dev/null 2>>"$WORK/.all-stderr" &
    pid=$!
    sleep "$delay"
    if kill -9 "$pid" 2>/dev/null; then killed=$((killed + 1)); fi
    wait "$pid" 2>/dev/null
    kill_rc=$?
    guard_token
}
