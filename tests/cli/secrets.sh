#!/bin/bash
# CLI scenarios for the SecretStore and connections (issue 5): put/get/
# update/rm/list, not found, k=@FILE and --from-json -, concurrent updates
# from several processes, the swapped-ciphertext attack, a namespace
# restricted by a policy condition, connections, render, and no secret
# value in the store file, the audit log or anything printed on stderr.
. "${P11KMS_TOP_SRCDIR:-.}/tests/cli/lib.sh"

T=$WORK/tok
new_token "$T" p11kms
export P11KMS_CONFIG=$T/p11kms.conf
ADM=arn:aws:iam::111122223333:role/key-admin
OPR=arn:aws:iam::111122223333:role/flink-operator
DB=$T/p11kms.db
# Secret values: each must never appear outside stdout.
PW1="pw1-$RANDOM-alpha-zeta"
PW2="pw2-$RANDOM-bravo-yankee"
FILEPW="filepw-$RANDOM-charlie"
JSONPW="jsonpw-$RANDOM-delta"
CONNPW="connpw-$RANDOM-echo"
CONNPW2="connpw2-$RANDOM-foxtrot"
KMSPW="kmspw-$RANDOM-golf"
ALLSECRETS="$PW1 $PW2 $FILEPW $JSONPW $CONNPW $CONNPW2 $KMSPW"
admin() { run "$P11KMS" --as "$ADM" "$@"; }
# bg_oper ARGS...: for concurrent runs. Every SoftHSM login rewrites the
# token's token.object, and a process that opens the token meanwhile may see
# no token or fail C_Login (exit 3: "tokens present: none" or
# "C_Login: CKR_GENERAL_ERROR"). That is a token-open race, not a store one:
# retry only exit 3.
bg_oper() {
    local errf rc=0
    errf=$(mktemp "$WORK/.bg.XXXXXX")
    for _try in $(seq 1 40); do
        "$P11KMS" --as "$OPR" "$@" >/dev/null 2>"$errf"; rc=$?
        if [ $rc -eq 3 ]; then sleep 0.$((RANDOM % 3 + 1)); continue; fi
        break
    done
    cat "$errf" >>"$WORK/.all-stderr"
    [ $rc -eq 0 ] || echo "bg_oper $* failed ($rc): $(cat "$errf")"
    rm -f "$errf"
    return $rc
}
oper() { run "$P11KMS" --as "$OPR" "$@"; }
# argv_warning KEY [conn]: the warning for a secret value given in argv.
argv_warning() {
    hint="$1=@FILE or --from-json -"; [ "${2:-}" = conn ] && hint="$1=@FILE"
    echo "p11kms: warning: secret value for '$1' given on the command line is visible to other local users; use $hint"
}

admin init --admin "$ADM" --operator '*'
expect_rc 0 "init"

# put / get / update / list / rm
oper secret put user=flink "password=$PW1"
expect_rc 0 "put"; S1=$(cat "$OUT")
[[ "$S1" =~ ^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$ ]] && ok || bad "secret id is a UUID"
oper secret get "$S1"
expect_rc 0 "get"; expect_out "{\"password\":\"$PW1\",\"user\":\"flink\"}" "get prints the map"
oper secret get "$S1" --field password
expect_rc 0 "get --field"; expect_out "$PW1" "get --field prints one value"
oper secret get "$S1" --field nope
expect_rc 5 "get missing field"; expect_err "p11kms: secret $S1 has no field 'nope'" "missing field"
oper secret update "$S1" "password=$PW2"
expect_rc 0 "update"; expect_out "secret $S1 updated" "update"
oper secret get "$S1"
expect_rc 0 "get after update"; expect_out "{\"password\":\"$PW2\"}" "update replaces the map"
oper secret list --namespace default
expect_rc 0 "list (text)"; expect_out_has "$S1  default" "list shows the id and namespace"
oper secret list --namespace default --json
expect_rc 0 "list"; expect_out_has "\"SecretId\":\"$S1\",\"Namespace\":\"default\"" "list shows the id"
expect_out_has '"Version":2' "list shows the version"; expect_out_lacks "$PW2" "list never shows values"
oper secret rm "$S1"
expect_rc 0 "rm"; expect_out "secret $S1 removed" "rm"
oper secret get "$S1"
expect_rc 5 "get removed"; expect_err "p11kms: secret $S1 not found" "not found after rm"
oper secret get 7d1c0a5e-0000-4000-8000-000000000000
expect_rc 5 "unknown id"; expect_err "p11kms: secret 7d1c0a5e-0000-4000-8000-000000000000 not found" "unknown id"
oper secret update 7d1c0a5e-0000-4000-8000-000000000000 a=b
expect_rc 5 "update unknown"
expect_err "$(argv_warning a)
p11kms: secret 7d1c0a5e-0000-4000-8000-000000000000 not found" "update unknown"
oper secret rm 7d1c0a5e-0000-4000-8000-000000000000
expect_rc 5 "rm unknown"
oper secret put
expect_rc 2 "put without pairs"
oper secret put justavalue
expect_rc 2 "put with a bare word"; expect_err "p11kms: usage: secret values are given as KEY=VALUE or KEY=@FILE (see p11kms --help)" "bare word not echoed"

# k=@FILE (the value never in argv) and --from-json - (stdin)
printf '%s\n' "$FILEPW" >"$WORK/pw.txt"; chmod 600 "$WORK/pw.txt"
oper secret put --namespace files "password=@$WORK/pw.txt" user=svc
expect_rc 0 "put k=@FILE"; S2=$(cat "$OUT")
oper secret get "$S2" --field password
expect_rc 0 "get file value"; expect_out "$FILEPW" "k=@FILE value (trailing newline removed)"
printf '{"password": "%s", "user": "json\\u00e9"}' "$JSONPW" >"$WORK/in.json"
run_in "$WORK/in.json" "$P11KMS" --as "$OPR" secret put --namespace json --from-json -
expect_rc 0 "put --from-json -"; S3=$(cat "$OUT")
oper secret get "$S3"
expect_rc 0 "get json secret"; expect_out "{\"password\":\"$JSONPW\",\"user\":\"jsoné\"}" "--from-json map"
printf '{"a": 1}' >"$WORK/bad.json"
run_in "$WORK/bad.json" "$P11KMS" --as "$OPR" secret put --from-json -
expect_rc 2 "non-string JSON value"; expect_err "p11kms: secret JSON: the value of 'a' must be a string" "strict JSON"

# Concurrent updates from 6 processes: no lost update, the result is one full map.
oper secret put --namespace conc v=start
expect_rc 0 "put for concurrency"; S4=$(cat "$OUT")
pids=""
for n in 1 2 3 4 5 6; do
    bg_oper secret update "$S4" "writer=$n" "value=v$n" &
    pids="$pids $!"
done
fails=0; for p in $pids; do wait "$p" || fails=$((fails + 1)); done
[ "$fails" -eq 0 ] && ok || bad "concurrent updates: $fails failed"
oper secret get "$S4"
expect_rc 0 "get after concurrent updates"
w=$(sed -n 's/.*"writer":"\([0-9]\)".*/\1/p' "$OUT")
[ -n "$w" ] && [ "$(cat "$OUT")" = "{\"value\":\"v$w\",\"writer\":\"$w\"}" ] && ok || bad "secret equals exactly one writer's map"
oper secret list --namespace conc --json
expect_out_has '"Version":7' "all 6 updates applied (version 1 + 6)"

# The swapped-ciphertext attack on the store: copy one secret's row body into another's.
oper secret put --namespace aad p=one
SA=$(cat "$OUT")
oper secret put --namespace aad p=two
SB=$(cat "$OUT")
sqlite3 "$DB" "UPDATE records SET body=(SELECT body FROM records WHERE kind='secret' AND id='$SA') WHERE kind='secret' AND id='$SB';"
oper secret get "$SB"
expect_rc 1 "swapped ciphertext refused"
expect_err "p11kms: store record secret/$SB failed integrity check: it was changed outside p11kms; refusing to use it" "swapped ciphertext"
expect_out "" "no output for a swapped ciphertext"
# ... and with the MAC copied too (a whole-row swap under the other id): the AAD binds the id.
sqlite3 "$DB" "ATTACH '$WORK/sb.db' AS s; CREATE TABLE s.r AS SELECT * FROM records WHERE kind='secret' AND id='$SB'"
sqlite3 "$DB" "UPDATE records SET body=(SELECT body FROM records WHERE kind='secret' AND id='$SA'), mac=(SELECT mac FROM records WHERE kind='secret' AND id='$SA') WHERE kind='secret' AND id='$SB';"
oper secret get "$SB"
expect_rc 1 "whole-row swap refused"; expect_fail_clean "whole-row swap"
# SB's own row is gone, so the store no longer matches its anchor (issue 15): refused until it is back.
expect_err_has "p11kms: store rolled back: " "whole-row swap"
sqlite3 "$DB" "ATTACH '$WORK/sb.db' AS s; DELETE FROM records WHERE kind='secret' AND id='$SB'; INSERT INTO records SELECT * FROM s.r"
oper secret get "$SA"
expect_rc 0 "the source secret still reads"; expect_out '{"p":"one"}' "source intact"

# A namespace restricted by a policy condition.
cat >"$WORK/ns-policy.json" <<EOF
{"Version":"2012-10-17","Statement":[
 {"Sid":"Admin","Effect":"Allow","Principal":{"AWS":"$ADM"},"Action":["kms:Describe*","kms:Get*","kms:Put*",
  "kms:Enable*","kms:Disable*","kms:RotateKeyOnDemand","kms:ScheduleKeyDeletion","kms:CancelKeyDeletion",
  "kms:CreateAlias","kms:DeleteAlias","kms:List*"],"Resource":"*"},
 {"Sid":"TeamA","Effect":"Allow","Principal":{"AWS":"$OPR"},
  "Action":["kms:GenerateDataKey","kms:Decrypt","kms:DescribeKey","kms:ReEncrypt*"],"Resource":"*",
  "Condition":{"StringEquals":{"kms:EncryptionContext:p11kms:namespace":"team-a"}}}]}
EOF
admin key create --policy "$WORK/ns-policy.json" --description "team-a secrets"
expect_rc 0 "key with namespace condition"; KA=$(cat "$OUT")
oper secret put --namespace team-a --key "$KA" token=ta
expect_rc 0 "put in the allowed namespace"; S5=$(cat "$OUT")
oper secret put --namespace team-b --key "$KA" token=tb
expect_rc 4 "put in another namespace"
expect_err "$(argv_warning token)
p11kms: $OPR is not authorized to perform kms:GenerateDataKey on key $KA (ImplicitlyDenied)" "namespace condition"
admin secret get "$S5"
expect_rc 4 "admin cannot read"; expect_err "p11kms: $ADM is not authorized to perform kms:Decrypt on key $KA (ImplicitlyDenied)" "admin denied"

# Connections.
printf '%s' "$CONNPW" >"$WORK/connpw"
oper connection create cat.db.orders --comment "orders db" --type jdbc url=jdbc:postgresql://db/x username=flink "password=@$WORK/connpw"
expect_rc 0 "connection create"; expect_out "connection cat.db.orders created" "create"
oper connection create cat.db.orders url=x
expect_rc 1 "create twice"; expect_err "p11kms: connection cat.db.orders already exists" "create twice"
oper connection create bad "__flink.encrypted-secret-key__=x"
expect_rc 2 "reserved key refused"
expect_err "$(argv_warning __flink.encrypted-secret-key__ conn)
p11kms: option '__flink.encrypted-secret-key__' is reserved for the secret reference; it cannot be set" "reserved key"
# The argv warning also knows the config's sensitive_options, wherever --config stands.
cp -p "$P11KMS_CONFIG" "$T/sens.conf"; echo "sensitive_options = apitok" >>"$T/sens.conf"
oper connection create cat.sens "my.apitok=v1" --config "$T/sens.conf"
expect_rc 0 "create with a config-sensitive option in argv"
expect_err "$(argv_warning my.apitok conn)" "argv warning for sensitive_options"
oper connection drop cat.sens
expect_rc 0 "drop cat.sens"
oper connection describe cat.db.orders
expect_rc 0 "describe"; expect_out_has '"password":"****"' "describe redacts"; expect_out_lacks "$CONNPW" "describe hides the value"
expect_out_has '"username":"flink"' "describe shows public options"
oper connection show-create cat.db.orders
expect_rc 0 "show-create"; expect_out_has "CREATE CONNECTION \`cat\`.\`db\`.\`orders\`" "show-create"
expect_out_has "'password' = '****'" "show-create redacts"; expect_out_lacks "$CONNPW" "show-create hides"
oper --json connection resolve cat.db.orders
expect_rc 0 "resolve"
expect_out "{\"password\":\"$CONNPW\",\"type\":\"jdbc\",\"url\":\"jdbc:postgresql://db/x\",\"username\":\"flink\"}" "resolve --json"
SID=$(sqlite3 "$DB" "SELECT count(*) FROM records WHERE kind='secret' AND ref='default'")
printf '%s' "$CONNPW2" >"$WORK/connpw2"
oper connection alter cat.db.orders "password=@$WORK/connpw2" username=flink2
expect_rc 0 "alter"; expect_out "connection cat.db.orders altered" "alter"
oper connection resolve cat.db.orders
expect_rc 0 "resolve after alter"; expect_out_has "password=$CONNPW2" "new password"; expect_out_has "username=flink2" "new user"
[ "$(sqlite3 "$DB" "SELECT count(*) FROM records WHERE kind='secret' AND ref='default'")" = "$SID" ] && ok || bad "alter keeps one secret"
oper connection list --like 'cat.%'
expect_rc 0 "list (text)"; expect_out_has "cat.db.orders" "list names the connection"; expect_out_lacks '{"Name"' "text, not JSON"
oper connection list --like 'cat.%' --json
expect_rc 0 "list"; expect_out_has '{"Name":"cat.db.orders","Type":"jdbc","Namespace":"default","Comment":"orders db"}' "list --like"
# Concurrent alters: the result is one writer's password.
pids=""
for n in 1 2 3 4; do
    bg_oper connection alter cat.db.orders "password=conc-$n" &
    pids="$pids $!"
done
fails=0; for p in $pids; do wait "$p" || fails=$((fails + 1)); done
[ "$fails" -eq 0 ] && ok || bad "concurrent alters: $fails failed"
oper connection resolve cat.db.orders
grep -qE '^password=conc-[1-4]$' "$OUT" && ok || bad "after concurrent alters the password is one writer's"
oper connection drop cat.db.orders
expect_rc 0 "drop"; expect_out "connection cat.db.orders dropped" "drop"
oper connection resolve cat.db.orders
expect_rc 5 "resolve dropped"; expect_err "p11kms: connection cat.db.orders not found" "dropped"
[ "$(sqlite3 "$DB" "SELECT count(*) FROM records WHERE kind='secret' AND ref='default'")" = "$((SID - 1))" ] && ok || bad "drop removes the secret"

# Render: every placeholder kind, $${ escaping, atomic 0600 output, all-or-nothing.
oper secret put --namespace render "password=$PW1"
S6=$(cat "$OUT")
oper connection create kafka "sasl.jaas.config=$PW2" bootstrap=k:9092
expect_rc 0 "connection for render"
printf '%s' "$KMSPW" >"$WORK/kmspw"
oper encrypt --key alias/p11kms/default --in "$WORK/kmspw"
expect_rc 0 "kms blob"; BLOB=$(cat "$OUT")
cat >"$WORK/flink.tmpl" <<EOF
a: \${secret:$S6:password}
b: \${connection:kafka:sasl.jaas.config} \${connection:kafka:bootstrap}
c: \${kms:$BLOB}
d: \$\${not.a.placeholder} \$HOME
EOF
oper render "$WORK/flink.tmpl" -o "$WORK/out/flink-conf.yaml"
expect_rc 1 "render into a missing folder"
mkdir "$WORK/out"
oper render "$WORK/flink.tmpl" -o "$WORK/out/flink-conf.yaml"
expect_rc 0 "render"; expect_out "" "render -o prints nothing"
printf 'a: %s\nb: %s k:9092\nc: %s\nd: ${not.a.placeholder} $HOME\n' "$PW1" "$PW2" "$KMSPW" >"$WORK/want"
cmp -s "$WORK/want" "$WORK/out/flink-conf.yaml" && ok || bad "rendered file content"
[ "$(stat -c %a "$WORK/out/flink-conf.yaml")" = 600 ] && ok || bad "rendered file mode 0600"
oper render "$WORK/flink.tmpl"
expect_rc 0 "render to stdout"; cmp -s "$WORK/want" "$OUT" && ok || bad "render stdout content"
printf 'x: ${secret:%s:password}\ny: ${vault:a:b}\n' "$S6" >"$WORK/bad.tmpl"
oper render "$WORK/bad.tmpl" -o "$WORK/out/bad.yaml"
expect_rc 2 "unknown placeholder"
expect_err "p11kms: render: line 2: unknown placeholder '\${vault:a:b}': use \${secret:ID:FIELD}, \${connection:NAME:OPTION} or \${kms:BLOB}" "unknown placeholder"
[ ! -e "$WORK/out/bad.yaml" ] && ok || bad "no output file after a failed render"
[ -z "$(ls -A "$WORK/out" | grep -v '^flink-conf.yaml$')" ] && ok || bad "no temp file left"
oper render "$WORK/bad.tmpl"
expect_rc 2 "unknown placeholder to stdout"; expect_out "" "nothing printed before everything resolved"
printf 'x: ${secret:%s:token}\n' "$S5" >"$WORK/denied.tmpl"
admin render "$WORK/denied.tmpl" -o "$WORK/out/denied.yaml"
expect_rc 4 "denied placeholder"; [ ! -e "$WORK/out/denied.yaml" ] && ok || bad "no output after a denied placeholder"

# Rewrap after a rotation.
admin key rotate "$KA"
expect_rc 0 "rotate"
oper secret rewrap --namespace team-a
expect_rc 0 "rewrap"; expect_out "rewrapped 1 namespace key versions (0 already current); re-encrypted 0 secrets" "rewrap summary"
expect_err "p11kms: rewrap 1/1: team-a (key $KA)" "rewrap progress"
oper secret get "$S5" --field token
expect_rc 0 "get after rewrap"; expect_out "ta" "value after rewrap"

# Nothing secret at rest, in the audit log or on stderr.
for f in "$DB" "$DB-wal" "$T/audit.log" "$WORK/.all-stderr"; do
    [ -e "$f" ] || continue
    for v in $ALLSECRETS; do
        if strings "$f" | grep -qF -- "$v"; then bad "secret value found in $(basename "$f")"; else ok; fi
    done
done

finish
