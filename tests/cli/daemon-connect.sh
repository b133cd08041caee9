#!/bin/bash
# The command as a client of p11kmsd (`connect =`, issue 12/13): a client
# config with no module, PIN or store talks to a real daemon over its Unix
# socket (peer uid) and over HTTPS (SigV4 access keys read from files), and
# every command prints what the same command prints in-process.
. "${P11KMS_TOP_SRCDIR:-.}/tests/cli/lib.sh"
. "$P11KMS_TOP_SRCDIR/tests/lib/daemon.sh"
. "$P11KMS_TOP_SRCDIR/tests/lib/tls.sh"

https_token
https_listeners "$ADM"
# Access keys for the administrator (every verb) and the operator (a denial).
access_key "$ADM"; ADM_AKID=$AKID; ADM_SECRET=$SECRET
access_key "$OPR"; OPR_AKID=$AKID; OPR_SECRET=$SECRET
start_daemon "$C"

# The client's folder: configs and secret files only.
CL=$WORK/client
mkdir -m 700 "$CL"
umask 077
printf '%s\n' "$ADM_SECRET" >"$CL/adm.secret"
printf '%s\n' "$OPR_SECRET" >"$CL/opr.secret"
printf 'connect = unix:%s\n' "$SOCK" >"$CL/unix.conf"
client_https() { # NAME AKID SECRET-FILE
    printf 'connect = https://127.0.0.1:%s\nca_file = %s\naccess_key_id = %s\nsecret_access_key_file = %s\nregion = %s\n' \
        "$PORT" "$T/pki/ca.pem" "$2" "$3" "$REGION" >"$CL/$1.conf"
}
client_https https "$ADM_AKID" adm.secret
client_https opr "$OPR_AKID" opr.secret
umask 022

if grep -qE '^(module|token|pin|store|audit)' "$CL"/*.conf; then bad "a client config names a token, PIN or store"; else ok; fi
if [ -z "$(find "$CL" -iname '*pin*')" ]; then ok; else bad "a PIN file in the client's folder"; fi

LOCAL=("$P11KMS" --config "$C" --as "$ADM")
# A key both principals may use for cryptography (this uid is the administrator on the socket).
printf '{"Version":"2012-10-17","Statement":[{"Sid":"All","Effect":"Allow","Principal":{"AWS":["%s","%s"]},"Action":"kms:*","Resource":"*"}]}' \
    "$ADM" "$OPR" >"$WORK/both.json"
run "${LOCAL[@]}" key create --description "for both" --policy "$WORK/both.json"; expect_rc 0 "a key for both"; CK=$(cat "$OUT")
# Times over the wire are AWS epoch seconds: milliseconds are compared as .000.
norm() { sed -E 's/\.[0-9]{3}Z/.000Z/g' "$1"; }
# Two keys made seconds apart: their times are compared by shape only.
tnorm() { norm "$1" | sed -E 's/[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}\.000Z/TIME/g'; }

# same CONF DESCRIPTION ARGS...: the command through CONF and in-process agree (stdout and exit code).
same() {
    conf=$1 what=$2; shift 2
    run "${LOCAL[@]}" "$@"; lrc=$RC; norm "$OUT" >"$WORK/local.out"; cp "$ERR" "$WORK/local.err"
    run "$P11KMS" --config "$CL/$conf.conf" "$@"
    if [ "$RC" -eq "$lrc" ] && [ "$(norm "$OUT")" = "$(cat "$WORK/local.out")" ]; then ok; else
        bad "$what over $conf differs from in-process (exit $lrc): $(norm "$OUT" | diff "$WORK/local.out" - | head -c 600) $(head -c 200 "$WORK/local.err")"
    fi
    if cmp -s "$ERR" "$WORK/local.err"; then ok; else bad "$what over $conf: stderr differs from in-process: $(cat "$WORK/local.err")"; fi
}
# twin CONF DESCRIPTION ARGS... with @K@: run on key KR through CONF and on key KL in-process; outputs agree with the key named KEY.
twin() {
    conf=$1 what=$2; shift 2
    run "${LOCAL[@]}" "${@//@K@/$KL}"; lrc=$RC; tnorm "$OUT" | sed "s/$KL/KEY/g" >"$WORK/local.out"
    run "$P11KMS" --config "$CL/$conf.conf" "${@//@K@/$KR}"
    if [ "$RC" -eq "$lrc" ] && [ "$(tnorm "$OUT" | sed "s/$KR/KEY/g")" = "$(cat "$WORK/local.out")" ]; then ok; else
        bad "$what over $conf differs from in-process (exit $lrc): $(tnorm "$OUT" | sed "s/$KR/KEY/g" | diff "$WORK/local.out" - | head -c 600)"
    fi
}

verbs() { # CONF: every key verb through CONF, each compared with in-process
    cf=$1
    run "$P11KMS" --config "$CL/$cf.conf" key create --description "made over $cf" --admin "$ADM" --operator "$OPR"
    expect_rc 0 "key create over $cf"; KR=$(cat "$OUT")
    run "${LOCAL[@]}" key create --description "made over $cf" --admin "$ADM" --operator "$OPR"; KL=$(cat "$OUT")
    for j in "" --json; do
        twin "$cf" "key describe $j" $j key describe @K@
        same "$cf" "key get-policy $j" $j key get-policy "$KR"
        same "$cf" "alias list $j" $j alias list
    done
    same "$cf" "key list" key list
    same "$cf" "key list --json" --json key list
    twin "$cf" "key disable" key disable @K@
    twin "$cf" "key describe (disabled)" --json key describe @K@
    twin "$cf" "key enable --json" --json key enable @K@
    twin "$cf" "key rotate" key rotate @K@
    twin "$cf" "key rotate --json" --json key rotate @K@
    twin "$cf" "key describe (rotated)" key describe @K@
    same "$cf" "key describe (rotated, same key)" key describe "$KR"
    same "$cf" "key describe --json (rotated, same key)" --json key describe "$KR"
    twin "$cf" "alias create" alias create "alias/$cf-@K@" @K@
    twin "$cf" "alias list KEY --json" --json alias list @K@
    twin "$cf" "alias delete --json" --json alias delete "alias/$cf-@K@"
    run "${LOCAL[@]}" key get-policy "$KR"; cp "$OUT" "$WORK/policy.json"
    twin "$cf" "key put-policy" key put-policy @K@ "$WORK/policy.json"
    twin "$cf" "key schedule-deletion" key schedule-deletion @K@ --days 7
    twin "$cf" "key describe (pending deletion)" --json key describe @K@
    same "$cf" "key describe (pending deletion, same key)" --json key describe "$KR"
    twin "$cf" "key cancel-deletion" key cancel-deletion @K@
    twin "$cf" "key enable" key enable @K@
    # Automatic rotation set at creation (CreateKey, then EnableKeyRotation).
    KR0=$KR KL0=$KL
    run "$P11KMS" --config "$CL/$cf.conf" key create --rotation-days 180 --admin "$ADM" --operator "$OPR"
    expect_rc 0 "key create --rotation-days over $cf"; KR=$(cat "$OUT")
    run "${LOCAL[@]}" key create --rotation-days 180 --admin "$ADM" --operator "$OPR"; KL=$(cat "$OUT")
    twin "$cf" "key describe (rotation on)" --json key describe @K@
    same "$cf" "key describe (rotation on, same key)" key describe "$KR"
    KR=$KR0 KL=$KL0
    run "$P11KMS" --config "$CL/$cf.conf" --json key create --alias "alias/made-$cf" --admin "$ADM" --operator "$OPR"
    expect_rc 0 "key create --alias over $cf"; jq_is "d['Alias'] == 'alias/made-$cf'" "key create --alias over $cf"
    same "$cf" "alias list (after key create --alias)" alias list "alias/made-$cf"
    same "$cf" "key create with a taken alias" key create --alias "alias/made-$cf" --admin "$ADM"
    # Cryptography: what one side encrypts the other decrypts.
    printf 'hello over %s' "$cf" >"$WORK/pt"
    run "$P11KMS" --config "$CL/$cf.conf" encrypt --key "$CK" --context app=test --in "$WORK/pt"
    expect_rc 0 "encrypt over $cf"; cp "$OUT" "$WORK/blob"
    same "$cf" "decrypt" decrypt --context app=test --in "$WORK/blob"
    if [ "$(cat "$OUT")" = "hello over $cf" ]; then ok; else bad "decrypt over $cf: wrong plaintext"; fi
    same "$cf" "decrypt --json" --json decrypt --context app=test --in "$WORK/blob"
    same "$cf" "decrypt, wrong context" decrypt --context app=other --in "$WORK/blob"
    run "$P11KMS" --config "$CL/$cf.conf" --json encrypt --key "$CK" --in "$WORK/pt"
    expect_rc 0 "encrypt --json over $cf"; expect_out_has "\"KeyId\"" "encrypt --json over $cf"
    run "$P11KMS" --config "$CL/$cf.conf" re-encrypt --key "$CK" --context app=test --new-context app=new --in "$WORK/blob"
    expect_rc 0 "re-encrypt over $cf"; cp "$OUT" "$WORK/blob2"
    same "$cf" "decrypt re-encrypted" decrypt --context app=new --in "$WORK/blob2"
    run "$P11KMS" --config "$CL/$cf.conf" datakey --key "$CK" --spec AES_128 --context app=dk
    expect_rc 0 "datakey over $cf"
    python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); open(sys.argv[2],"w").write(d["CiphertextBlob"]); print(d["Plaintext"])' \
        "$OUT" "$WORK/dk.blob" >"$WORK/dk.pt"
    jq_is "d['KeyId'] == '$CK' and d['KeyVersion'] == 1 and len(base64.b64decode(d['Plaintext'])) == 16" "datakey over $cf"
    run "${LOCAL[@]}" decrypt --context app=dk --in "$WORK/dk.blob"
    if [ "$(base64 -w0 <"$OUT")" = "$(cat "$WORK/dk.pt")" ]; then ok; else bad "datakey over $cf: in-process decrypt differs"; fi
    run "$P11KMS" --config "$CL/$cf.conf" datakey --key "$CK" --no-plaintext
    expect_rc 0 "datakey --no-plaintext over $cf"; expect_out_lacks '"Plaintext"' "datakey --no-plaintext over $cf"
    # Refusals and errors, as in-process.
    same "$cf" "unknown key" key describe 00000000-0000-4000-8000-000000000000
    expect_rc 5 "unknown key over $cf"
    same "$cf" "unknown alias" encrypt --key alias/none --in "$WORK/pt"
    same "$cf" "a bad rotation period" key create --rotation-days 5
}

verbs unix
verbs https

# The daemon names the caller: --as is refused, $P11KMS_PRINCIPAL ignored.
run "$P11KMS" --config "$CL/unix.conf" --as "$ADM" key list
expect_rc 2 "--as with connect ="
expect_err "p11kms: --as is not used with connect =: the daemon authenticates this host's caller" "--as with connect ="
run env P11KMS_PRINCIPAL="$OPR" "$P11KMS" --config "$CL/unix.conf" key disable "$KR"
expect_rc 0 "the peer uid decides, not \$P11KMS_PRINCIPAL"

# A denial names the action (the operator's access key).
run "$P11KMS" --config "$CL/opr.conf" key disable "$KR"
expect_rc 4 "denied over https"
expect_err "p11kms: $OPR is not authorized to perform kms:DisableKey on key $KR (ImplicitlyDenied)" "denied over https"

# What needs the token is refused on the client.
for cmd in "token info" "init --operator $OPR" "access-key list" "key purge" "secret rewrap --all" "audit verify" \
    "report keys" "store accept-restore --reason restored"; do
    name=${cmd%% -*}; case $name in init*) name=${name%% *} ;; esac
    run "$P11KMS" --config "$CL/unix.conf" $cmd
    expect_rc 2 "$name with connect ="
    expect_err "p11kms: $name needs the token: run it on the daemon's host (connect = is set)" "$name with connect ="
done
# Files in the ESDK format: the data key comes from GenerateDataKey / Decrypt /
# ReEncrypt; what one side writes the other reads, and the summaries agree.
head -c 300000 /dev/urandom >"$WORK/big"
for cf in unix https; do
    run "$P11KMS" --config "$CL/$cf.conf" --json encrypt-file --key "$CK" --context job=etl "$WORK/big" "$WORK/big.$cf"
    expect_rc 0 "encrypt-file over $cf"; cp "$OUT" "$WORK/enc.json"
    same "$cf" "decrypt-file" --json decrypt-file --context job=etl "$WORK/big.$cf" "$WORK/big.out"
    if cmp -s "$WORK/big" "$WORK/big.out"; then ok; else bad "decrypt-file over $cf: wrong plaintext"; fi
    run "${LOCAL[@]}" --json encrypt-file --key "$CK" --context job=etl "$WORK/big" "$WORK/big.local"
    if [ "$(cat "$OUT")" = "$(cat "$WORK/enc.json")" ]; then ok; else bad "encrypt-file over $cf: summary differs from in-process"; fi
    run "$P11KMS" --config "$CL/$cf.conf" decrypt-file --context job=etl "$WORK/big.local" "$WORK/big.out2"
    expect_rc 0 "decrypt-file over $cf of an in-process file"
    if cmp -s "$WORK/big" "$WORK/big.out2"; then ok; else bad "decrypt-file over $cf: wrong plaintext"; fi
    same "$cf" "decrypt-file, a context pair missing" decrypt-file --context job=other "$WORK/big.$cf" "$WORK/big.out3"
    run "$P11KMS" --config "$CL/$cf.conf" rewrap-file "$WORK/big.$cf" "$WORK/big.rw"
    expect_rc 0 "rewrap-file over $cf"
    run "${LOCAL[@]}" decrypt-file "$WORK/big.rw" "$WORK/big.out4"
    if [ "$RC" -eq 0 ] && cmp -s "$WORK/big" "$WORK/big.out4"; then ok; else bad "rewrap-file over $cf: in-process decrypt fails"; fi
done

# policy lint / eval stay local.
printf '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"%s"},"Action":"kms:*","Resource":"*"}]}' \
    "$ADM" >"$WORK/p.json"
run "$P11KMS" policy lint "$WORK/p.json"; cp "$OUT" "$WORK/lint.out"; lrc=$RC
run "$P11KMS" --config "$CL/unix.conf" policy lint "$WORK/p.json"
if [ "$RC" -eq "$lrc" ] && cmp -s "$OUT" "$WORK/lint.out" && [ -s "$OUT" ]; then ok; else bad "policy lint with connect ="; fi

# A secret access key file others may read is refused, like a PIN file.
chmod 644 "$CL/adm.secret"
run "$P11KMS" --config "$CL/https.conf" key list
expect_rc 3 "readable secret_access_key_file"
expect_err "p11kms: secret_access_key_file $CL/adm.secret is accessible by group or others (mode 0644); run: chmod 600 $CL/adm.secret" \
    "readable secret_access_key_file"
chmod 600 "$CL/adm.secret"

# Malformed client settings name their line (exit 3).
bad_conf() { # TEXT MESSAGE
    printf '%s\n' "$1" >"$CL/bad.conf"; chmod 600 "$CL/bad.conf"
    run "$P11KMS" --config "$CL/bad.conf" key list
    expect_rc 3 "config: $1"; expect_err "p11kms: $2" "config: $1"
}
bad_conf "connect = ftp://127.0.0.1:21" "$CL/bad.conf:1: connect: 'ftp://127.0.0.1:21' must be unix:PATH or https://HOST:PORT"
bad_conf "connect = https://127.0.0.1" "$CL/bad.conf:1: connect: 'https://127.0.0.1' must be https://HOST:PORT (port 1 to 65535, no path)"
bad_conf "connect = https://127.0.0.1:$PORT" "$CL/bad.conf: connect = https://127.0.0.1:$PORT needs access_key_id and secret_access_key_file (SigV4)"
bad_conf "access_key_id = akia-lower" "$CL/bad.conf:1: access_key_id: 'akia-lower' is not an access key id (16 to 128 upper-case letters and digits)"
printf 'connect = https://127.0.0.1:%s\naccess_key_id = %s\nsecret_access_key_file = none.secret\n' "$PORT" "$ADM_AKID" >"$CL/bad.conf"
run "$P11KMS" --config "$CL/bad.conf" key list
expect_rc 3 "missing secret_access_key_file"
expect_err "p11kms: cannot read secret_access_key_file $CL/none.secret: No such file or directory" "missing secret_access_key_file"

# A wrong CA: the TLS failure names the endpoint (exit 3).
printf 'connect = https://127.0.0.1:%s\naccess_key_id = %s\nsecret_access_key_file = adm.secret\nregion = %s\n' \
    "$PORT" "$ADM_AKID" "$REGION" >"$CL/noca.conf"
chmod 600 "$CL/noca.conf"
run "$P11KMS" --config "$CL/noca.conf" key list
expect_rc 3 "untrusted daemon certificate"
expect_err_has "p11kms: cannot reach p11kmsd at https://127.0.0.1:$PORT: SSL certificate problem" "untrusted daemon certificate"

# A p11kmsd whose config says connect = must not become a confused deputy that
# acts for its own callers with its own identity: it refuses to start (and the
# library refuses a caller passed to a connect = handle).
printf 'connect = unix:%s\nlisten = unix:%s\nprincipal.uid.%s = %s\n' "$SOCK" "$WORK/proxy.sock" "$(id -u)" "$OPR" \
    >"$CL/proxy.conf"
chmod 600 "$CL/proxy.conf"
run timeout 20 "$P11KMSD" --config "$CL/proxy.conf"
expect_rc 3 "a p11kmsd with connect ="
expect_err_has "$CL/proxy.conf: connect = makes the command a client of p11kmsd; p11kmsd holds the token itself: remove it" \
    "a p11kmsd with connect ="
[ ! -e "$WORK/proxy.sock" ] && ok || bad "the refused p11kmsd made its socket"

# Secrets, connections and render: through secretsmanager.* and P11kmsService.*.
. "$P11KMS_TOP_SRCDIR/tests/cli/daemon-connect-secrets.sh"

# The daemon stopped: exit 3 naming the endpoint.
stop_daemon
run "$P11KMS" --config "$CL/unix.conf" key list
expect_rc 3 "daemon stopped"
expect_err "p11kms: cannot reach p11kmsd at unix:$SOCK: Couldn't connect to server" "daemon stopped"
run "$P11KMS" --config "$CL/https.conf" key list
expect_rc 3 "daemon stopped (https)"
expect_err_has "p11kms: cannot reach p11kmsd at https://127.0.0.1:$PORT: " "daemon stopped (https)"

# No secret in the daemon's log, the audit trail or any stderr.
for s in "$ADM_SECRET" "$OPR_SECRET"; do
    for f in "$DAEMON_ERR" "$T"/audit* "$WORK/.all-stderr"; do
        [ -f "$f" ] || continue
        if grep -qF -- "$s" "$f"; then bad "a secret access key in $f"; else ok; fi
    done
done
finish
