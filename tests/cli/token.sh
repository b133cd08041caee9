#!/bin/bash
# CLI scenarios for issue-2 behaviour: version/help, token creation,
# `token info`, and every configuration/token error a user can reach.
. "${P11KMS_TOP_SRCDIR:-.}/tests/cli/lib.sh"

run "$P11KMS" --version
expect_rc 0 "--version"; expect_out "p11kms 0.1.0" "--version"
run "$P11KMS" --help
expect_rc 0 "--help"; expect_out_has "Exit codes:" "--help"; expect_out_has "5  not found" "--help exit codes"
run "$P11KMS"
expect_rc 2 "no command"; expect_err "p11kms: usage: no command given (see p11kms --help)" "no command"
run "$P11KMS" frobnicate
expect_rc 2 "unknown command"; expect_err "p11kms: usage: unknown command 'frobnicate' (see p11kms --help)" "unknown command"
run "$P11KMS" --pin 1234 token info
expect_rc 2 "--pin refused"; expect_err "p11kms: usage: unknown option '--pin' (see p11kms --help)" "--pin refused"

# A new user's path: make a token, then look at it.
T=$WORK/tok
run "$P11KMS_TOP_SRCDIR/tokens/softhsm-token.sh" "$T" p11kms
expect_rc 0 "softhsm-token.sh"; expect_out "export SOFTHSM2_CONF=$T/softhsm2.conf" "export line"
export SOFTHSM2_CONF=$T/softhsm2.conf
[ "$(stat -c %a "$T/user.pin")" = 600 ] && ok || bad "user.pin mode"
[ "$(wc -c <"$T/user.pin")" -eq 32 ] && ok || bad "user.pin length"
grep -q "^tokendir\|directories.tokendir = $T/tokens" "$T/softhsm2.conf" && ok || bad "token dir in softhsm2.conf"
run "$P11KMS_TOP_SRCDIR/tokens/softhsm-token.sh" "$T" p11kms
expect_rc 1 "token dir reused"; expect_err "softhsm-token.sh: $T already holds a token; choose an empty folder" "token dir reused"

run "$P11KMS" --config "$T/p11kms.conf" token info
expect_rc 0 "token info"
expect_out_has "token label:   p11kms" "token info label"
expect_out_has "login:         ok" "token info login"
expect_out_has "aes-kwp         CKM_AES_KEY_WRAP_PAD         yes" "token info kwp probe"
expect_out_has "manufacturer:  SoftHSM project" "token info manufacturer"
run env P11KMS_CONFIG="$T/p11kms.conf" "$P11KMS" token info --json
expect_rc 0 "token info --json via P11KMS_CONFIG"
expect_out_has '"label":"p11kms","serial":"' "json label"
expect_out_has '"login":true' "json login"
expect_out_has '{"role":"aes-gcm","mechanism":"CKM_AES_GCM","present":true}' "json mechanism"
(cd "$T" && "$P11KMS" token info >"$OUT" 2>"$ERR"); RC=$?
expect_rc 0 "token info via ./p11kms.conf"

# Configuration errors name the file and line.
conf() { cp "$T/p11kms.conf" "$WORK/$1"; shift; }
mk() { name=$1; shift; printf '%s\n' "$@" >"$WORK/$name"; }
mod=$(sed -n 's/^module = //p' "$T/p11kms.conf")

mk unknown.conf "module = $mod" "token = pkcs11:token=p11kms" "colour = blue" "pin = file:$T/user.pin"
run "$P11KMS" --config "$WORK/unknown.conf" token info
expect_rc 3 "unknown key"; expect_err "p11kms: $WORK/unknown.conf:3: unknown key 'colour'" "unknown key"
mk noeq.conf "# p11kms" "module = $mod" "token pkcs11"
run "$P11KMS" --config "$WORK/noeq.conf" token info
expect_rc 3 "line without ="; expect_err "p11kms: $WORK/noeq.conf:3: expected 'key = value'" "line without ="
run "$P11KMS" --config "$WORK/absent.conf" token info
expect_rc 3 "missing config"; expect_err "p11kms: cannot open configuration $WORK/absent.conf: No such file or directory" "missing config"
mkdir -p "$WORK/empty"
(cd "$WORK/empty" && "$P11KMS" token info >"$OUT" 2>"$ERR"); RC=$?
expect_rc 3 "no config anywhere"
expect_err "p11kms: no configuration file: pass --config FILE or set P11KMS_CONFIG (also looked for ./p11kms.conf and /etc/p11kms/p11kms.conf)" "no config anywhere"

# Module errors.
mk nomod.conf "module = /nonexistent/libvendor.so" "token = pkcs11:token=p11kms" "pin = file:$T/user.pin"
run "$P11KMS" --config "$WORK/nomod.conf" token info
expect_rc 3 "module missing"; expect_err "p11kms: PKCS#11 module /nonexistent/libvendor.so not found or not readable" "module missing"
mk notmod.conf "module = $T/softhsm2.conf" "token = pkcs11:token=p11kms" "pin = file:$T/user.pin"
run "$P11KMS" --config "$WORK/notmod.conf" token info
expect_rc 3 "not a module"; expect_err_has "p11kms: $T/softhsm2.conf is not a loadable PKCS#11 module:" "not a module"; expect_fail_clean "not a module"
mk relmod.conf "module = lib/libsofthsm2.so" "token = pkcs11:token=p11kms" "pin = file:$T/user.pin"
run "$P11KMS" --config "$WORK/relmod.conf" token info
expect_rc 3 "relative module"; expect_err "p11kms: $WORK/relmod.conf:1: module: 'lib/libsofthsm2.so' must be an absolute path or a p11-kit module name" "relative module"

# Token URI errors.
mk baduri.conf "module = $mod" "token = pkcs11:token=%zz" "pin = file:$T/user.pin"
run "$P11KMS" --config "$WORK/baduri.conf" token info
expect_rc 3 "malformed URI"; expect_err "p11kms: $WORK/baduri.conf:2: token: malformed token URI 'pkcs11:token=%zz': '%' must be followed by two hex digits" "malformed URI"; expect_fail_clean "malformed URI"
mk nouri.conf "module = $mod" "token = pkcs11:token=absent" "pin = file:$T/user.pin"
run "$P11KMS" --config "$WORK/nouri.conf" token info
expect_rc 3 "URI matches nothing"
expect_err_has "p11kms: no token matches pkcs11:token=absent (tokens present: 'p11kms' (serial " "URI matches nothing"

# PIN errors: the PIN itself never appears in any message.
printf '0000\n' >"$WORK/wrong.pin"; chmod 600 "$WORK/wrong.pin"
mk wrongpin.conf "module = $mod" "token = pkcs11:token=p11kms" "pin = file:$WORK/wrong.pin"
run "$P11KMS" --config "$WORK/wrongpin.conf" token info
expect_rc 3 "wrong PIN"
expect_out_has "login:         failed (C_Login: CKR_PIN_INCORRECT: wrong user PIN for token 'p11kms'; few attempts are left before the PIN locks)" "wrong PIN shown"
expect_err "p11kms: C_Login: CKR_PIN_INCORRECT: wrong user PIN for token 'p11kms'; few attempts are left before the PIN locks" "wrong PIN"
chmod 644 "$WORK/wrong.pin"
run "$P11KMS" --config "$WORK/wrongpin.conf" token info
expect_rc 3 "PIN file readable by others"
expect_out_has "login:         failed (PIN file $WORK/wrong.pin is accessible by group or others (mode 0644); run: chmod 600 $WORK/wrong.pin)" "PIN file mode"
mk nopin.conf "module = $mod" "token = pkcs11:token=p11kms" "pin = file:$WORK/none.pin"
run "$P11KMS" --config "$WORK/nopin.conf" token info
expect_rc 3 "PIN file missing"; expect_err "p11kms: cannot read PIN file $WORK/none.pin: No such file or directory" "PIN file missing"
mk litpin.conf "module = $mod" "token = pkcs11:token=p11kms" "pin = 123456"
run "$P11KMS" --config "$WORK/litpin.conf" token info
expect_rc 3 "literal PIN"; expect_err "p11kms: $WORK/litpin.conf:3: pin: must be file:PATH or env:NAME (a literal PIN is not accepted)" "literal PIN"
mk envpin.conf "module = $mod" "token = pkcs11:token=p11kms" "pin = env:P11KMS_TEST_PIN"
run env P11KMS_TEST_PIN="$(cat "$T/user.pin")" "$P11KMS" --config "$WORK/envpin.conf" token info
expect_rc 0 "PIN from environment"
if grep -qF "$(cat "$T/user.pin")" "$WORK/.all-stderr" "$OUT"; then bad "PIN leaked to output"; else ok; fi

# Two tokens matching one URI: refused, with a hint.
SOFTHSM2_CONF=$T/softhsm2.conf "$P11KMS" token init --module "$mod" --label p11kms-b \
    --so-pin-file "$T/so.pin" --pin-file "$T/user.pin" >/dev/null
mk twouri.conf "module = $mod" "token = pkcs11:manufacturer=SoftHSM%20project" "pin = file:$T/user.pin"
run "$P11KMS" --config "$WORK/twouri.conf" token info
expect_rc 3 "ambiguous URI"
# Slot order follows the random serials, so check each token separately.
expect_err_has "p11kms: 2 tokens match pkcs11:manufacturer=SoftHSM%20project: '" "ambiguous URI"
expect_err_has "'p11kms' (serial " "ambiguous URI names the first token"
expect_err_has "'p11kms-b' (serial " "ambiguous URI names the second token"
expect_err_has "; add serial=... to the URI to choose one" "ambiguous URI hint"
run "$P11KMS" token init --module "$mod" --label p11kms-b --so-pin-file "$T/so.pin" --pin-file "$T/user.pin"
expect_rc 1 "duplicate token label"; expect_err "p11kms: a token labelled 'p11kms-b' already exists" "duplicate token label"
run "$P11KMS" token init --module "$mod" --label x
expect_rc 2 "token init usage"

# A token that hides RFC 5649 key wrap (like a smaller HSM) is refused by name.
H=$WORK/hidden
new_token "$H" small
printf 'slots.mechanisms = -,CKM_AES_KEY_WRAP_PAD\n' >>"$H/softhsm2.conf"
run "$P11KMS" --config "$H/p11kms.conf" token info
expect_rc 3 "missing mechanism"
expect_out_has "aes-kwp         CKM_AES_KEY_WRAP_KWP         MISSING" "missing mechanism shown"
expect_err "p11kms: token 'small' lacks CKM_AES_KEY_WRAP_KWP (aes-kwp), which p11kms needs" "missing mechanism"

# Every value is checked when the file is loaded, naming the line (exit 3),
# even for a command that would not read it.
export SOFTHSM2_CONF=$T/softhsm2.conf
base() { printf '%s\n' "module = $mod" "token = pkcs11:token=p11kms" "pin = file:$T/user.pin"; }
badval() { # NAME "key = value" EXPECTED-DETAIL
    { base; printf '%s\n' "$2"; } >"$WORK/$1.conf"
    run "$P11KMS" --config "$WORK/$1.conf" token info
    expect_rc 3 "$1"; expect_err "p11kms: $WORK/$1.conf:4: $3" "$1"
}
badval ttl "cache_ttl_s = 10m" "cache_ttl_s: '10m' is not a whole number of seconds"
badval ttlneg "cache_ttl_s = -1" "cache_ttl_s: '-1' is not a whole number of seconds"
badval ttlbig "cache_ttl_s = 604801" "cache_ttl_s: 604801 is out of range (0 to 604800 seconds)"
badval entries "cache_max_entries = 0" "cache_max_entries: 0 is out of range (1 to 1000000 entries)"
badval uses "cache_max_uses = 4294967296" "cache_max_uses: 4294967296 is out of range (0 to 4294967295 uses)"
badval uses2 "cache_max_uses = 99999999999999999999999" "cache_max_uses: '99999999999999999999999' is not a whole number of uses"
badval amax "audit_max_bytes = 1e6" "audit_max_bytes: '1e6' is not a whole number of bytes"
badval sess "sessions = 0" "sessions: 0 is out of range (1 to 256 sessions)"
badval ssync "store_sync = sometimes" "store_sync: must be always or batch, not 'sometimes'"
badval async "audit_sync = Always" "audit_sync: must be always or batch, not 'Always'"
badval acct "account = 12345" "account: '12345' is not a 12-digit account id"
badval region "region = EU_West" "region: 'EU_West' must be lower-case letters, digits and '-'"
badval region2 "region = abcdefghijabcdefghijabcdefghijab" "region: 'abcdefghijabcdefghijabcdefghijab' is longer than 31 characters"
badval store "store = p11kms.db" "store: 'p11kms.db' is not a store URI: use sqlite:PATH"
badval store2 "store = postgres://u:hunter2@db/kms" "store: unsupported store 'postgres:...': use sqlite:PATH"
if grep -q hunter2 "$ERR"; then bad "store password echoed"; else ok; fi
badval store3 "store = sqlite:" "store: sqlite: needs a path (sqlite:PATH)"
badval sens "sensitive_options = password,,token" "sensitive_options: item 2 of the list is empty"
badval sens2 "sensitive_options = pass word" "sensitive_options: 'pass word' is not an option name (letters, digits, '.', '_', '-')"
{ printf '%s\n' "module = $mod" "token = p11kms" "pin = file:$T/user.pin"; } >"$WORK/nopkcs.conf"
run "$P11KMS" --config "$WORK/nopkcs.conf" token info
expect_rc 3 "token not a URI"; expect_err "p11kms: $WORK/nopkcs.conf:2: token: 'p11kms' is not a PKCS#11 URI (expected pkcs11:token=LABEL, RFC 7512)" "token not a URI"
{ printf '%s\n' "module = $mod" "token = pkcs11:p11kms" "pin = file:$T/user.pin"; } >"$WORK/noattr.conf"
run "$P11KMS" --config "$WORK/noattr.conf" token info
expect_rc 3 "URI attribute"; expect_err "p11kms: $WORK/noattr.conf:2: token: malformed token URI 'pkcs11:p11kms': 'p11kms' is not NAME=VALUE" "URI attribute"
{ printf '%s\n' "module = $mod" "token = pkcs11:token=p11kms" "pin = env:1X"; } >"$WORK/envname.conf"
run "$P11KMS" --config "$WORK/envname.conf" token info
expect_rc 3 "pin env name"; expect_err "p11kms: $WORK/envname.conf:3: pin: env: needs an environment variable name (env:NAME)" "pin env name"
{ base; printf '%s\n' "cache_ttl_s = 60" "cache_max_entries = 10" "cache_max_uses = 0" "sessions = 8" "store_sync = batch" \
    "audit_sync = always" "account = 123456789012" "region = eu-west-1" "sensitive_options = api.key, x_token" \
    "store = sqlite:s.db" "audit_max_bytes = 1048576"; } >"$WORK/good.conf"
run "$P11KMS" --config "$WORK/good.conf" token info
expect_rc 0 "every key with a good value"

# The configuration names the code to load: refuse one others can write or own.
cp "$T/p11kms.conf" "$WORK/perm.conf"; chmod 664 "$WORK/perm.conf"
run "$P11KMS" --config "$WORK/perm.conf" token info
expect_rc 3 "group-writable config"
expect_err "p11kms: configuration $WORK/perm.conf is writable by group or others (mode 0664); its 'module' line loads code: run chmod go-w $WORK/perm.conf" "group-writable config"
chmod 602 "$WORK/perm.conf"
run "$P11KMS" --config "$WORK/perm.conf" token info
expect_rc 3 "world-writable config"; expect_err_has "(mode 0602)" "world-writable config"
chmod 600 "$WORK/perm.conf"
if [ "$(id -u)" -eq 0 ]; then
    chown 65534 "$WORK/perm.conf"
    run "$P11KMS" --config "$WORK/perm.conf" token info
    expect_rc 3 "config owned by another user"
    expect_err "p11kms: configuration $WORK/perm.conf is owned by uid 65534, not by the running user (uid 0) or root; its 'module' line loads code" "config owned by another user"
    cp "$T/user.pin" "$WORK/other.pin"; chmod 600 "$WORK/other.pin"; chown 65534 "$WORK/other.pin"
    { printf '%s\n' "module = $mod" "token = pkcs11:token=p11kms" "pin = file:$WORK/other.pin"; } >"$WORK/otherpin.conf"
    run "$P11KMS" --config "$WORK/otherpin.conf" token info
    expect_rc 3 "PIN file owned by another user"
    expect_out_has "login:         failed (PIN file $WORK/other.pin is owned by uid 65534, not by the running user (uid 0) or root)" "PIN file owner"
else
    echo "SKIP: ownership checks need root"
fi

# Module and token failures exit 3 and say what to check.
E=$WORK/emptytok; mkdir -p "$E/tokens"
printf 'directories.tokendir = %s/tokens\nobjectstore.backend = file\n' "$E" >"$E/softhsm2.conf"
run env SOFTHSM2_CONF="$E/softhsm2.conf" "$P11KMS" --config "$T/p11kms.conf" token info
expect_rc 3 "no tokens present"
expect_err "p11kms: no token matches pkcs11:token=p11kms (tokens present: none; is SOFTHSM2_CONF set to the token's softhsm2.conf?)" "no tokens present"
FAKE=$P11KMS_TOP_BUILDDIR/tests/lib/.libs/libfakep11.so
mk fake.conf "module = $FAKE" "token = pkcs11:token=p11kms" "pin = file:$T/user.pin"
run env FAKE_P11_INIT_RV=0x0A "$P11KMS" --config "$WORK/fake.conf" token info
expect_rc 3 "CKR_CANT_LOCK"
expect_err "p11kms: C_Initialize: CKR_CANT_LOCK: the module cannot use OS locking, which p11kms needs (see tokens/README.md)" "CKR_CANT_LOCK"
run env FAKE_P11_INIT_RV=0x06 "$P11KMS" --config "$WORK/fake.conf" token info
expect_rc 3 "CKR_FUNCTION_FAILED at C_Initialize"; expect_err "p11kms: C_Initialize: CKR_FUNCTION_FAILED" "C_Initialize failure"
NSS_MOD=/usr/lib/x86_64-linux-gnu/libsoftokn3.so
if [ -r "$NSS_MOD" ]; then
    # NSS softokn without its configdir arguments answers CKR_ARGUMENTS_BAD.
    mk nss.conf "module = $NSS_MOD" "token = pkcs11:token=NSS%20Certificate%20DB" "pin = file:$T/user.pin"
    run "$P11KMS" --config "$WORK/nss.conf" token info
    expect_rc 3 "CKR_ARGUMENTS_BAD"
    expect_err "p11kms: C_Initialize: CKR_ARGUMENTS_BAD: the module rejected its initialisation arguments; does it need module_args in p11kms.conf? (see tokens/README.md)" "CKR_ARGUMENTS_BAD"
else
    echo "SKIP: $NSS_MOD absent (scripts/install-deps.sh installs libnss3)"
fi


# P11KMS_DEBUG=1 shows where a failure arose (file:line of the PKCS#11 call,
# not the error helper); without it stderr has only the one-line message.
printf '0000\n' >"$WORK/debug.pin"; chmod 600 "$WORK/debug.pin"
mk debugpin.conf "module = $mod" "token = pkcs11:token=p11kms" "pin = file:$WORK/debug.pin"
P11KMS_DEBUG=1 run "$P11KMS" --config "$WORK/debugpin.conf" --as arn:aws:iam::111122223333:role/ops key list
expect_rc 3 "debug wrong PIN"
# (a VPATH build such as distcheck names the file ../../src/...)
grep -qE '^p11kms debug: (\.\./)*src/p11/p11_[a-z]+\.c:[0-9]+: .*C_Login: CKR_PIN_INCORRECT' "$ERR" && ok || bad "debug line names the p11 call site"
grep -q 'p11_errors\.c' "$ERR" && bad "debug origin is the error helper" || ok
run "$P11KMS" --config "$WORK/debugpin.conf" --as arn:aws:iam::111122223333:role/ops key list
expect_rc 3 "no debug wrong PIN"
grep -q 'p11kms debug' "$ERR" && bad "debug line without P11KMS_DEBUG" || ok

finish
