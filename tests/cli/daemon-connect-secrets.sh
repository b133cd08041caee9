# Sourced by daemon-connect.sh (its helpers and daemon): secret, connection
# and render commands with connect =, through p11kmsd's secretsmanager.*
# and P11kmsService.* targets (SM-CONTRACT.md). Until the daemon answers
# them this part is skipped loudly, naming what is missing.
probe() { # TARGET: does the daemon know it?
    curl -s --max-time 10 --unix-socket "$SOCK" http://p11kmsd/ -H "X-Amz-Target: $1" \
        -H 'Content-Type: application/x-amz-json-1.1' --data-binary '{}' | grep -qE 'UnknownOperation|UnsupportedOperation'
}
missing=""
probe secretsmanager.ListSecrets && missing="$missing secretsmanager.*"
probe P11kmsService.ListConnections && missing="$missing P11kmsService.*"
if [ -n "$missing" ]; then
    echo "SKIP: secret/connection/render with connect = not checked: p11kmsd does not answer$missing yet" >&2
    echo "SKIP: secret/connection/render with connect = not checked: p11kmsd does not answer$missing yet"
    return 0
fi

# The service key is the operator's: these secrets use the key both principals may use.
for cf in unix https; do
    # Secrets: a put through the daemon reads back in-process, and the reverse.
    printf 's3cr3t-%s\n' "$cf" >"$WORK/pw"
    run "$P11KMS" --config "$CL/$cf.conf" secret put --key "$CK" user=flink "password=@$WORK/pw"
    expect_rc 0 "secret put over $cf"; SID=$(cat "$OUT")
    same "$cf" "secret get" secret get "$SID"
    expect_out_has "s3cr3t-$cf" "secret get over $cf"
    same "$cf" "secret get --json" --json secret get "$SID"
    same "$cf" "secret get --field" secret get "$SID" --field password
    same "$cf" "secret get --field (missing)" secret get "$SID" --field none
    run "$P11KMS" --config "$CL/$cf.conf" secret update "$SID" user=flink2 password=rotated
    expect_rc 0 "secret update over $cf"
    run "${LOCAL[@]}" secret get "$SID" --field user; expect_out "flink2" "secret update over $cf reads back in-process"
    run "$P11KMS" --config "$CL/$cf.conf" secret put --namespace flink --key "$CK" "url=jdbc:x"
    expect_rc 0 "secret put --namespace over $cf"; NSID=$(cat "$OUT")
    case $NSID in flink/*) ok ;; *) bad "secret put --namespace over $cf: id $NSID lacks flink/" ;; esac
    same "$cf" "secret get (namespace)" --json secret get "$NSID"
    same "$cf" "secret list" secret list
    # NamespaceKeyVersion has no Secrets Manager field: the client leaves it out.
    for args in "" "--namespace flink"; do
        run "${LOCAL[@]}" --json secret list $args; sed -E 's/,"NamespaceKeyVersion":[0-9]+//g' "$OUT" >"$WORK/local.out"
        run "$P11KMS" --config "$CL/$cf.conf" --json secret list $args
        if [ "$RC" -eq 0 ] && [ "$(norm "$OUT")" = "$(norm "$WORK/local.out")" ]; then ok; else
            bad "secret list --json $args over $cf differs: $(norm "$OUT" | diff "$WORK/local.out" - | head -c 600)"; fi
    done
    run "$P11KMS" --config "$CL/$cf.conf" secret rm "$NSID"; expect_rc 0 "secret rm over $cf"
    same "$cf" "secret get (removed)" secret get "$NSID"
    expect_rc 5 "secret get (removed) over $cf"

    # Connections.
    run "$P11KMS" --config "$CL/$cf.conf" connection create "pg_$cf" --type jdbc --key "$CK" url=jdbc:postgresql://db/orders \
        user=flink "password=@$WORK/pw"
    expect_rc 0 "connection create over $cf"
    same "$cf" "connection describe" connection describe "pg_$cf"
    expect_out_lacks "s3cr3t" "connection describe over $cf"
    same "$cf" "connection show-create" connection show-create "pg_$cf"
    same "$cf" "connection show-create --json" --json connection show-create "pg_$cf"
    same "$cf" "connection list" connection list
    same "$cf" "connection list --json --like" --json connection list --like "pg_%"
    same "$cf" "connection resolve" connection resolve "pg_$cf"
    run "$P11KMS" --config "$CL/$cf.conf" connection alter "pg_$cf" password=new --reset url --comment "altered"
    expect_rc 0 "connection alter over $cf"
    same "$cf" "connection resolve (altered)" --json connection resolve "pg_$cf"
    same "$cf" "connection describe (unknown)" connection describe nope
    expect_rc 5 "connection describe (unknown) over $cf"

    # Render: the same file as in-process, 0600.
    printf 'user: ${secret:%s:user}\npassword: ${connection:pg_%s:password}\n' "$SID" "$cf" >"$WORK/t.tmpl"
    run "${LOCAL[@]}" render "$WORK/t.tmpl" -o "$WORK/local.yaml"; expect_rc 0 "render in-process"
    run "$P11KMS" --config "$CL/$cf.conf" render "$WORK/t.tmpl" -o "$WORK/remote.yaml"
    expect_rc 0 "render over $cf"
    if cmp -s "$WORK/local.yaml" "$WORK/remote.yaml"; then ok; else bad "render over $cf differs from in-process"; fi
    if [ "$(stat -c %a "$WORK/remote.yaml")" = 600 ]; then ok; else bad "render over $cf: mode not 0600"; fi
    printf 'x: ${secret:%s:user}\n' "00000000-0000-4000-8000-000000000000" >"$WORK/bad.tmpl"
    same "$cf" "render (unknown secret)" render "$WORK/bad.tmpl"

    run "$P11KMS" --config "$CL/$cf.conf" connection drop "pg_$cf"; expect_rc 0 "connection drop over $cf"
    run "$P11KMS" --config "$CL/$cf.conf" secret rm "$SID"; expect_rc 0 "secret rm over $cf"
done
# Written values never reach the daemon's log or the audit trail.
for f in "$DAEMON_ERR" "$T/audit.log"; do
    if grep -qF "s3cr3t" "$f"; then bad "a secret value in $f"; else ok; fi
done
