#!/bin/bash
# The fault matrix (issue 17): every PKCS#11 function p11kms calls x every
# injected fault, through tests/faulty-p11 around SoftHSM, against real
# operations (encrypt, decrypt, datakey, key create, secret put/get). Each
# operation must succeed after recovery or fail cleanly (exit 1 or 3, one
# line on stderr) -- never crash, hang or answer wrongly -- and after every
# cell, with faults off, the store opens, earlier blobs and secrets read back
# and `audit verify` passes.
#
# make check runs a subset: every function once, the faults rotated over
# them. FAULTS_FULL=1 (make check-faults) runs every cell; FAULTS_TABLE=FILE
# writes the function x fault table in Markdown (docs/FAULTS.md).
. "${P11KMS_TOP_SRCDIR:-.}/tests/cli/lib.sh"

FAULTY=$P11KMS_TOP_BUILDDIR/tests/faulty-p11/.libs/libfaultyp11.so
REAL=${P11KMS_SOFTHSM_MODULE:-/usr/lib/softhsm/libsofthsm2.so}
[ -r "$FAULTY" ] || { echo "FAIL: $FAULTY not built (make check builds it)"; exit 1; }

T=$WORK/tok
new_token "$T" p11kms
sed -i "s|^module = .*|module = $FAULTY|" "$T/p11kms.conf"
export P11KMS_CONFIG=$T/p11kms.conf P11KMS_FAULTY_MODULE=$REAL
unset P11KMS_FAULTS P11KMS_FAULTS_LOG
ADM=arn:aws:iam::111122223333:role/key-admin
OPR=arn:aws:iam::111122223333:role/flink-operator
LOG=$WORK/faults.log
PLAIN="fault-matrix-plaintext-$RANDOM"
SECVAL="fault-matrix-secret-$RANDOM"

# The functions p11kms calls (src/p11), and the faults of issue 17.
FUNCS="C_Initialize C_Finalize C_GetSlotList C_GetTokenInfo C_GetMechanismList C_OpenSession C_CloseSession
C_Login C_CreateObject C_CopyObject C_DestroyObject C_GetAttributeValue C_FindObjectsInit C_FindObjects
C_FindObjectsFinal C_EncryptInit C_Encrypt C_DecryptInit C_Decrypt C_SignInit C_Sign C_GenerateKey C_WrapKey
C_UnwrapKey C_GenerateRandom C_SetAttributeValue"
# FAULTS_FUNCS="C_X ..." runs the matrix for those functions only.
FUNCS=${FAULTS_FUNCS:-$FUNCS}
FAULTS="CKR_DEVICE_ERROR CKR_DEVICE_REMOVED CKR_TOKEN_NOT_PRESENT CKR_SESSION_HANDLE_INVALID CKR_SESSION_CLOSED
CKR_DEVICE_MEMORY CKR_GENERAL_ERROR CKR_CRYPTOKI_NOT_INITIALIZED CKR_FUNCTION_FAILED sleep=20ms"
# Only `token init` calls these; it runs alone, without a store, and is never
# retried (C_InitToken erases a token). C_CloseAllSessions is a test hook.
TI_FUNCS="C_InitToken C_InitPIN C_Logout"

# pk ARGS...: p11kms as the operator, bounded in time; sets RC.
pk() {
    timeout --kill-after=5 30 "$P11KMS" --as "$OPR" "$@" >"$OUT" 2>"$ERR" </dev/null
    RC=$?
    cat "$ERR" >>"$WORK/.all-stderr"
}
pk_in() {
    input=$1; shift
    timeout --kill-after=5 30 "$P11KMS" --as "$OPR" "$@" >"$OUT" 2>"$ERR" <"$input"
    RC=$?
    cat "$ERR" >>"$WORK/.all-stderr"
}

run "$P11KMS" --as "$ADM" init --operator "$OPR"
expect_rc 0 "init through the faulty module"
printf '%s' "$PLAIN" >"$WORK/plain"
printf '%s' "$SECVAL" >"$WORK/secval"
pk_in "$WORK/plain" encrypt --key alias/p11kms/default
expect_rc 0 "reference encrypt"; cp "$OUT" "$WORK/ref.blob"
pk secret put "v=@$WORK/secval"
expect_rc 0 "reference secret"; REFSEC=$(cat "$OUT")

# A typo in the spec must not silently test nothing.
P11KMS_FAULTS=C_Encrypt:CKR_NO_SUCH run "$P11KMS" --as "$OPR" key list
expect_rc 3 "bad fault spec refuses to start"
expect_err_has "faulty-p11: bad rule in P11KMS_FAULTS: C_Encrypt:CKR_NO_SUCH" "bad fault spec names the rule"

# The fault fires: an injected C_Encrypt failure reaches the caller as one line.
P11KMS_FAULTS=C_Encrypt:CKR_FUNCTION_FAILED@1 pk_in "$WORK/plain" encrypt --key alias/p11kms/default
expect_rc 1 "injected C_Encrypt failure"; expect_err "p11kms: C_Encrypt: CKR_FUNCTION_FAILED" "injected failure message"

# A device that stays broken: a bounded number of tries, then one clean line.
t0=$(date +%s%N)
P11KMS_FAULTS=C_Encrypt:CKR_DEVICE_ERROR@1+ P11KMS_FAULTS_LOG=$LOG pk_in "$WORK/plain" encrypt --key alias/p11kms/default
t1=$(date +%s%N)
expect_rc 1 "persistent device error"
expect_err "p11kms: token still failing after reconnecting: C_Encrypt: CKR_DEVICE_ERROR" "persistent device error message"
[ "$(grep -c '^C_Encrypt' "$LOG")" -eq 2 ] && ok || bad "persistent device error: C_Encrypt tried $(grep -c '^C_Encrypt' "$LOG") times, want 2 (one retry)"
[ $(( (t1 - t0) / 1000000 )) -lt 10000 ] && ok || bad "persistent device error took $(( (t1 - t0) / 1000000 )) ms"
rm -f "$LOG"
P11KMS_FAULTS=C_OpenSession:CKR_DEVICE_REMOVED@1+ P11KMS_FAULTS_LOG=$LOG pk key list
expect_rc 3 "token gone at open"; expect_err "p11kms: C_OpenSession: CKR_DEVICE_REMOVED" "token gone at open message"
[ "$(grep -c '^C_OpenSession' "$LOG")" -eq 4 ] && ok || bad "token gone at open: $(grep -c '^C_OpenSession' "$LOG") opens, want 4"
rm -f "$LOG"

# A token that cannot read attributes is failing, not foreign: the store must
# not be called another token's.
P11KMS_FAULTS=C_GetAttributeValue:CKR_DEVICE_ERROR@1+ pk key list
expect_rc 1 "attributes unreadable"
expect_err "p11kms: token still failing after reconnecting: C_GetAttributeValue: CKR_DEVICE_ERROR" "attributes unreadable message"

# Recovery leaks nothing: reconnect after a lost session and a removed
# device, re-initialise, and report an unknown outcome, under valgrind.
if [ -n "${P11KMS_SANITIZER_CFLAGS:-}" ]; then
    # valgrind cannot run an ASan binary; LeakSanitizer covers these paths there.
    echo "note: ASan build: the valgrind leak checks of recovery are left to LeakSanitizer"
elif command -v valgrind >/dev/null; then
    VG="$P11KMS_TOP_BUILDDIR/libtool --mode=execute valgrind -q --error-exitcode=99 --leak-check=full
        --errors-for-leak-kinds=definite --suppressions=$P11KMS_TOP_SRCDIR/tests/valgrind.supp"
    P11KMS_FAULTS=C_OpenSession:CKR_DEVICE_ERROR@1,C_Sign:CKR_DEVICE_REMOVED@1,C_Encrypt:CKR_SESSION_CLOSED@1 \
        run_in "$WORK/plain" $VG "$P11KMS" --as "$OPR" encrypt --key alias/p11kms/default
    expect_rc 0 "no leak on recovery"
    P11KMS_FAULTS=C_GenerateKey:CKR_DEVICE_ERROR@1 \
        run $VG "$P11KMS" --as "$ADM" key create --admin "$ADM" --operator "$OPR"
    expect_rc 1 "no leak on an unknown outcome"
else
    echo "SKIP: valgrind absent (scripts/install-deps.sh installs it)"
fi

# A refused PIN is tried once, never again (each try may count towards locking it).
P11KMS_FAULTS=C_Login:CKR_PIN_INCORRECT@1+ P11KMS_FAULTS_LOG=$LOG pk key list
expect_rc 3 "PIN refused"
expect_err_has "p11kms: C_Login: CKR_PIN_INCORRECT: wrong user PIN for token 'p11kms'" "PIN refused message"
[ "$(grep -c '^C_Login' "$LOG")" -eq 1 ] && ok || bad "PIN refused: C_Login tried $(grep -c '^C_Login' "$LOG") times"
rm -f "$LOG"
P11KMS_FAULTS=C_Login:CKR_PIN_LOCKED@1+ P11KMS_FAULTS_LOG=$LOG pk key list
expect_rc 3 "PIN locked"; expect_err "p11kms: C_Login: CKR_PIN_LOCKED: the user PIN of token 'p11kms' is locked" "PIN locked"
[ "$(grep -c '^C_Login' "$LOG")" -eq 1 ] && ok || bad "PIN locked: C_Login tried $(grep -c '^C_Login' "$LOG") times"
rm -f "$LOG"

# A key generation the device may have done before failing is reported, not repeated.
P11KMS_FAULTS=C_GenerateKey:CKR_DEVICE_ERROR@1~after P11KMS_FAULTS_LOG=$LOG \
    run "$P11KMS" --as "$ADM" key create --admin "$ADM" --operator "$OPR"
expect_rc 1 "key create, unknown outcome"
expect_err "p11kms: lost the token connection; the operation may or may not have taken effect: C_GenerateKey: CKR_DEVICE_ERROR" "unknown outcome message"
[ "$(grep -c '^C_GenerateKey' "$LOG")" -eq 1 ] && ok || bad "key create was repeated"
rm -f "$LOG"
run "$P11KMS" --as "$ADM" audit verify
expect_rc 0 "audit verify after an unknown outcome"

# outcome OP CHECK: classify the last run of OP under the current fault.
# R: succeeded after the fault; L: succeeded under latency; E<rc>: clean
# error; -: the fault never fired in this operation; X: a violation.
outcome() {
    fired=0
    [ -s "$LOG" ] && fired=1
    rm -f "$LOG"
    if [ "$RC" -eq 0 ]; then
        if [ -n "$2" ] && ! eval "$2"; then
            bad "$CELL $1: succeeded with a wrong answer"; CODE=X; return
        fi
        ok
        if [ $fired -eq 0 ]; then CODE=-; elif [ "$FAULT" = "${FAULT#sleep}" ]; then CODE=R; else CODE=L; fi
        return
    fi
    if [ $fired -eq 0 ] || [ "$FAULT" != "${FAULT#sleep}" ]; then
        bad "$CELL $1: failed without a fault"; CODE=X; return
    fi
    if ! { [ "$RC" -eq 1 ] || [ "$RC" -eq 3 ]; } || [ "$(wc -l <"$ERR")" -ne 1 ]; then
        bad "$CELL $1: not a clean failure (want exit 1 or 3 and one line)"; CODE=X
    elif [ "$PHASE" != every ] && [ "$PHASE" != once ] && recoverable "$FAULT"; then
        # A lost session or device heals by reconnecting; only a create may not be repeated.
        if { [ "$1" = key-create ] || [ "$1" = secret-put ]; } &&
            grep -qF "the operation may or may not have taken effect" "$ERR"; then
            ok; CODE=U
        else
            bad "$CELL $1: a transient $FAULT was not recovered"; CODE=X
        fi
    else
        ok; CODE=E$RC
    fi
}
recoverable() {
    case $1 in CKR_GENERAL_ERROR | CKR_FUNCTION_FAILED) return 1 ;; *) return 0 ;; esac
}

OPS="encrypt decrypt datakey key-create secret-put secret-get"
# op_run OP: one operation (faults come from the environment); sets RC.
op_run() {
    case $1 in
    encrypt) pk_in "$WORK/plain" encrypt --key alias/p11kms/default ;;
    decrypt) pk decrypt --in "$WORK/ref.blob" ;;
    datakey) pk datakey --key alias/p11kms/default ;;
    key-create)
        timeout --kill-after=5 30 "$P11KMS" --as "$ADM" key create --admin "$ADM" --operator "$OPR" \
            >"$OUT" 2>"$ERR" </dev/null
        RC=$? ;;
    secret-put) pk secret put "v=@$WORK/secval" ;;
    secret-get) pk secret get "$REFSEC" --field v ;;
    esac
}
# What a success must have answered.
op_check() {
    case $1 in
    decrypt) echo '[ "$(cat "$OUT")" = "$PLAIN" ]' ;;
    datakey) echo 'grep -q CiphertextBlob "$OUT"' ;;
    secret-get) echo '[ "$(cat "$OUT")" = "$SECVAL" ]' ;;
    *) echo "" ;;
    esac
}

# How often each operation calls each function without faults: the "last"
# phase fails the last of those calls, which falls in the operation proper
# rather than in opening the token and store.
for op in $OPS; do
    P11KMS_FAULTS_TRACE=$WORK/trace op_run "$op"
    [ "$RC" -eq 0 ] && ok || bad "calibration run of $op"
    sort "$WORK/trace" | uniq -c | awk -v op="$op" '{print op, $2, $1}' >>"$WORK/counts"
    rm -f "$WORK/trace"
done
calls_of() { awk -v op="$1" -v f="$2" '$1 == op && $2 == f {print $3}' "$WORK/counts"; }

# cell FUNC FAULT PHASE: every operation under the fault, then checks without it.
# PHASE first: the function's first call fails; last: its last call; every: sleeps.
cell() {
    FUNC=$1 FAULT=$2 PHASE=$3 CELL="$1 x $2 ($3)"
    codes=""
    for op in $OPS; do
        n=$(calls_of "$op" "$FUNC")
        case $PHASE in
        first) when=@1 ;;
        last) when=@${n:-0}; [ "${n:-0}" -le 1 ] && { codes="$codes ="; continue; } ;;
        every) when="" ;;
        esac
        rm -f "$LOG"
        export P11KMS_FAULTS="$FUNC:$FAULT$when" P11KMS_FAULTS_LOG=$LOG
        op_run "$op"
        [ "$RC" -eq 0 ] && case $op in
            encrypt) cp "$OUT" "$WORK/new.blob"; newblob=1 ;;
            secret-put) newsec=$(cat "$OUT") ;;
            esac
        unset P11KMS_FAULTS P11KMS_FAULTS_LOG
        outcome "$op" "$(op_check "$op")"; codes="$codes $CODE"
    done
}

# tokinit_cell FUNC FAULT: `token init` of a fresh token under the fault; a
# success must leave a token that logs in, a failure must be clean.
TI=$WORK/ti; mkdir -p "$TI/tokens"
printf 'directories.tokendir = %s/tokens\nobjectstore.backend = file\n' "$TI" >"$TI/softhsm2.conf"
printf '%s' "$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')" >"$TI/so.pin"
printf '%s' "$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')" >"$TI/user.pin"
chmod 600 "$TI/so.pin" "$TI/user.pin"
ti_n=0
tokinit_cell() {
    FUNC=$1 FAULT=$2 PHASE=once CELL="$1 x $2 (token init)"
    ti_n=$((ti_n + 1))
    rm -f "$LOG"
    when=@1; [ "$FAULT" = "${FAULT#sleep}" ] || when=""
    P11KMS_FAULTS="$FUNC:$FAULT$when" P11KMS_FAULTS_LOG=$LOG SOFTHSM2_CONF=$TI/softhsm2.conf \
        timeout --kill-after=5 30 "$P11KMS" token init --module "$FAULTY" --label "ti$ti_n" \
        --so-pin-file "$TI/so.pin" --pin-file "$TI/user.pin" >"$OUT" 2>"$ERR" </dev/null
    RC=$?
    outcome "token init" ""
    if [ "$RC" -eq 0 ]; then
        printf 'module = %s\ntoken = pkcs11:token=ti%s\npin = file:%s\n' "$FAULTY" "$ti_n" "$TI/user.pin" >"$TI/p.conf"
        SOFTHSM2_CONF=$TI/softhsm2.conf run "$P11KMS" --config "$TI/p.conf" token info
        expect_out_has "login:         ok" "$CELL: the new token logs in"
    fi
    printf '%s x %s: token-init: %s\n' "$1" "$2" "$CODE" >>"$WORK/detail"
    printf '%s %s %s\n' "$1" "$2" "$CODE" >>"$WORK/results"
}

# matrix FUNC FAULT: the cell in each phase, the checks, one table entry.
matrix() {
    newblob="" newsec=""
    if [ "$2" = "${2#sleep}" ]; then
        cell "$1" "$2" first; first=$(summarise $codes); d1="$codes"
        cell "$1" "$2" last; last=$(summarise $codes); d2="$codes"
        entry="$first ; $last"
        printf '%s x %s: first:%s  last:%s\n' "$1" "$2" "$d1" "$d2" >>"$WORK/detail"
    else
        cell "$1" "$2" every; entry=$(summarise $codes)
        printf '%s x %s: every:%s\n' "$1" "$2" "$codes" >>"$WORK/detail"
    fi
    after_checks "$newblob" "$newsec"
    printf '%s %s %s\n' "$1" "$2" "$(echo "$entry" | tr ' ' '_')" >>"$WORK/results"
}

# Without faults: the store opens, what the cell wrote reads back, audit verifies.
after_checks() {
    pk decrypt --in "$WORK/ref.blob"
    [ "$RC" -eq 0 ] && [ "$(cat "$OUT")" = "$PLAIN" ] && ok || bad "$CELL: reference blob after the cell"
    if [ -n "$1" ]; then
        pk decrypt --in "$WORK/new.blob"
        [ "$RC" -eq 0 ] && [ "$(cat "$OUT")" = "$PLAIN" ] && ok || bad "$CELL: blob made under the fault"
    fi
    if [ -n "$2" ]; then
        pk secret get "$2" --field v
        [ "$RC" -eq 0 ] && [ "$(cat "$OUT")" = "$SECVAL" ] && ok || bad "$CELL: secret stored under the fault"
    fi
    run "$P11KMS" --as "$ADM" audit verify
    expect_rc 0 "$CELL: audit verify"
}

# Distinct codes in order of first appearance, e.g. "R E3".
summarise() {
    local seen=""
    for c in "$@"; do [ "$c" = "=" ] && continue; case " $seen " in *" $c "*) ;; *) seen="$seen $c" ;; esac; done
    seen="${seen# }"
    echo "${seen:-n/a}" | tr ' ' '/'
}

START=$(date +%s)
if [ -n "${FAULTS_FULL:-}" ]; then
    for f in $FUNCS; do for x in $FAULTS; do matrix "$f" "$x"; done; done
    for f in $TI_FUNCS; do for x in $FAULTS; do tokinit_cell "$f" "$x"; done; done
else
    # Every function once and every fault at least twice, rotated.
    set -- $FAULTS; nf=$#
    i=0
    for f in $FUNCS; do
        set -- $FAULTS; shift $((i % nf)); matrix "$f" "$1"; i=$((i + 1))
    done
    for f in $TI_FUNCS; do
        set -- $FAULTS; shift $((i % nf)); tokinit_cell "$f" "$1"; i=$((i + 1))
    done
fi
ELAPSED=$(( $(date +%s) - START ))
cells=$(wc -l <"$WORK/results")
echo "fault matrix: $cells cells in ${ELAPSED}s"
grep -q ' X' "$WORK/detail" && { echo "violations:"; grep ' X' "$WORK/detail"; }

if [ -n "${FAULTS_TABLE:-}" ]; then
    {
        echo "<!-- Generated by tests/cli/faults.sh (make check-faults); do not edit. -->"
        echo "# Fault matrix"
        echo
        echo "Each cell injects one fault into one PKCS#11 function through tests/faulty-p11/ around SoftHSM"
        echo "and runs six operations, each in its own \`p11kms\` process: $OPS."
        echo "A cell reads \`first ; last\`: **first** fails the function's first call in each process (mostly"
        echo "while opening the token and store); **last** fails its last call, counted in a fault-free run,"
        echo "which falls in the operation proper. Latency: every call of the function sleeps 20 ms."
        echo "After each cell, without faults, the reference blob and secret and whatever the cell wrote"
        echo "read back and \`audit verify\` passes. The last three rows are \`token init\` of a fresh token"
        echo "(the only caller of C_InitToken, C_InitPIN and C_Logout), failing the first call; it is never"
        echo "retried, since C_InitToken erases a token, and a success must leave a token that logs in."
        echo
        echo "Outcomes, in the order the operations first showed them:"
        echo "- **R**: the fault fired and the operation succeeded after recovery, with the right answer;"
        echo "- **L**: succeeded under the injected latency;"
        echo "- **U**: a create (key create, secret put) whose outcome is unknown failed cleanly with exit 1"
        echo "  or 3 and \"the operation may or may not have taken effect\"; it is never repeated blindly;"
        echo "- **E1** / **E3**: a clean failure, one line on stderr, exit 1 (HSM operation failed) or"
        echo "  3 (token unavailable): only for CKR_GENERAL_ERROR and CKR_FUNCTION_FAILED, which are not retried;"
        echo "- **-**: the operation never called the function;"
        echo "- **X**: a violation (crash, hang, wrong answer, unclean message, store or audit damage)."
        echo
        echo "$cells cells, $(grep -c ' X' "$WORK/detail" || true) with a violation; the run took ${ELAPSED}s."
        echo
        printf '| function |'; for x in $FAULTS; do printf ' %s |' "${x#CKR_}"; done; echo
        printf '|---|'; for x in $FAULTS; do printf -- '---|'; done; echo
        for f in $FUNCS $TI_FUNCS; do
            printf '| %s |' "$f"
            for x in $FAULTS; do printf ' %s |' "$(awk -v f="$f" -v x="$x" '$1 == f && $2 == x {print $3}' "$WORK/results" | tr '_' ' ')"; done
            echo
        done
        echo
        echo "Per operation ($OPS; = : the operation calls the function once, so \"last\" is \"first\"):"
        echo
        echo '```'
        cat "$WORK/detail"
        echo '```'
    } >"$FAULTS_TABLE"
fi

# Nothing secret reached stderr on any path.
grep -qF "$PLAIN" "$WORK/.all-stderr" && bad "plaintext on stderr" || ok
grep -qF "$SECVAL" "$WORK/.all-stderr" && bad "secret on stderr" || ok
finish
