#!/bin/sh
# The main job, end to end, on an embedded default: installs what is
# missing, builds, creates a SoftHSM token and an SQLite store under
# ./demo/, and runs p11kms against them as two people: a key administrator
# who manages keys but cannot use them, and the Flink application operator
# who uses them but cannot manage them.
set -eu
cd "$(dirname "$0")/.."
top=$(pwd)
scripts/install-deps.sh
scripts/build.sh
demo=$top/demo
rm -rf "$demo"
P11KMS_BIN=$top/p11kms tokens/softhsm-token.sh "$demo" p11kms >/dev/null
export SOFTHSM2_CONF="$demo/softhsm2.conf"
export P11KMS_CONFIG="$demo/p11kms.conf"
export PATH="$top:$PATH"
ADMIN=arn:aws:iam::111122223333:role/key-admin
FLINK=arn:aws:iam::111122223333:role/flink-operator
step() { printf '\n== %s\n' "$*"; }
as_admin() { echo "\$ p11kms --as key-admin $*"; p11kms --as "$ADMIN" "$@"; }
as_flink() { echo "\$ p11kms --as flink-operator $*"; p11kms --as "$FLINK" "$@"; }

step "1. The token p11kms found (SoftHSM in $demo/tokens)"
p11kms token info

step "2. Initialise the store, the system keys and the service key"
as_admin init --admin "$ADMIN" --operator "$FLINK"

step "3. The administrator creates a CMK for Flink checkpoints, with separation of duties"
KEY=$(p11kms --as "$ADMIN" key create --alias alias/flink-checkpoints \
      --description "Flink checkpoint data keys" --rotation-days 365 --admin "$ADMIN" --operator "$FLINK")
echo "created $KEY (alias/flink-checkpoints)"
as_admin key describe alias/flink-checkpoints

step "4. Flink encrypts and decrypts with an encryption context"
BLOB=$(printf 'jdbc-password-demo' | p11kms --as "$FLINK" encrypt --key alias/flink-checkpoints --context job=orders)
echo "ciphertext: $BLOB"
printf '%s\n' "$BLOB" | p11kms --as "$FLINK" decrypt --context job=orders
echo
echo "with the wrong context:"
printf '%s\n' "$BLOB" | p11kms --as "$FLINK" decrypt --context job=payments || echo "(refused, exit $?)"

step "5. Envelope encryption: a data key for a checkpoint file"
as_flink datakey --key alias/flink-checkpoints --spec AES_256 --context purpose=checkpoint --no-plaintext

step "6. Separation of duties: neither role can do the other's job"
printf '%s\n' "$BLOB" | p11kms --as "$ADMIN" decrypt --context job=orders || echo "(administrator refused, exit $?)"
p11kms --as "$FLINK" key disable alias/flink-checkpoints || echo "(operator refused, exit $?)"

step "7. Rotation: old ciphertexts still decrypt"
as_admin key rotate alias/flink-checkpoints
printf '%s\n' "$BLOB" | p11kms --as "$FLINK" decrypt --context job=orders
echo

step "8. The key policy, checked by the linter"
p11kms --as "$ADMIN" key get-policy alias/flink-checkpoints >"$demo/policy.json"
p11kms policy lint "$demo/policy.json"

step "9. Flink connection credentials: the password goes into the HSM-backed SecretStore"
umask 077
printf 's3cr3t-demo-db-password' >"$demo/db.password"
as_flink connection create catalog1.sales.orders_db --type jdbc --key alias/flink-checkpoints \
    url=jdbc:postgresql://db.internal:5432/orders username=flink password=@"$demo/db.password"
rm -f "$demo/db.password"
as_flink connection describe catalog1.sales.orders_db

step "10. Render a Flink configuration: secrets resolved at deploy time, written 0600"
cat >"$demo/flink-conf.template.yaml" <<'TEMPLATE'
# rendered by p11kms render; never commit the output
table.connection.orders.url: ${connection:catalog1.sales.orders_db:url}
table.connection.orders.username: ${connection:catalog1.sales.orders_db:username}
table.connection.orders.password: ${connection:catalog1.sales.orders_db:password}
TEMPLATE
as_flink render "$demo/flink-conf.template.yaml" -o "$demo/flink-conf.yaml"
ls -l "$demo/flink-conf.yaml"
echo "(the rendered file holds the password; the store, the audit log and this output do not)"

step "11. The keys in the store"
p11kms --as "$ADMIN" key list

step "12. The audit trail: every call above, chained and sealed in the HSM"
tail -n 2 "$demo/audit.log"
p11kms audit verify

step "13. Compliance reports an auditor runs from cron"
export P11KMS_PRINCIPAL=arn:aws:iam::111122223333:role/auditor
scripts/compliance/key-report
scripts/compliance/policy-report
scripts/compliance/audit-report

echo
echo "demo folder: $demo (config: $P11KMS_CONFIG)"
