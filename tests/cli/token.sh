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
expect_rc 3 "relative module"; expect_err "p11kms: module 'lib/libsofthsm2.so' must be an absolute path or a p11-kit module name" "relative module"

# Token URI errors.
mk baduri.conf "module = $mod" "token = pkcs11:token=%zz" "pin = file:$T/user.pin"
run "$P11KMS" --config "$WORK/baduri.conf" token info
expect_rc 3 "malformed URI"; expect_err_has "p11kms: malformed token URI 'pkcs11:token=%zz': " "malformed URI"; expect_fail_clean "malformed URI"
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
expect_rc 3 "literal PIN"; expect_err "p11kms: $WORK/litpin.conf: 'pin' must be file:PATH or env:NAME (a literal PIN is not accepted)" "literal PIN"
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

finish
