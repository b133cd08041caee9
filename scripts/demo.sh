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
# quote ARG: ARG as the shell reads it back (single quotes when needed).
quote() {
    case $1 in
    '' | *[!A-Za-z0-9_./:=@%+,-]*) printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")" ;;
    *) printf '%s' "$1" ;;
    esac
}
# x CMD...: print exactly the command line it runs ("+ " first, full ARNs,
# pasteable into a shell with this script's environment), then run it.
x() {
    printf '+'
    for a in "$@"; do printf ' '; quote "$a"; done
    printf '\n'
    "$@"
}
# x_to FILE CMD...: the same, with stdout into FILE ("+ CMD > FILE").
x_to() {
    out=$1; shift
    printf '+'
    for a in "$@"; do printf ' '; quote "$a"; done
    printf ' > '; quote "$out"; printf '\n'
    "$@" >"$out"
}
# x_or_refused CMD...: a command expected to be refused; prints the exit code.
x_or_refused() { x "$@" || echo "(refused, exit $?)"; }
echo "+ export SOFTHSM2_CONF=$(quote "$SOFTHSM2_CONF") P11KMS_CONFIG=$(quote "$P11KMS_CONFIG") PATH=$(quote "$top"):\$PATH"

step "1. The token p11kms found (SoftHSM in $demo/tokens)"
x p11kms token info

step "2. Initialise the store, the system keys and the service key"
x p11kms --as "$ADMIN" init --admin "$ADMIN" --operator "$FLINK"

step "3. The administrator creates a CMK for Flink checkpoints, with separation of duties"
x p11kms --as "$ADMIN" key create --alias alias/flink-checkpoints \
    --description "Flink checkpoint data keys" --rotation-days 365 --admin "$ADMIN" --operator "$FLINK"
x p11kms --as "$ADMIN" key describe alias/flink-checkpoints

step "4. Flink encrypts and decrypts with an encryption context"
umask 077
x_to "$demo/plain.txt" printf 'jdbc-password-demo'
x_to "$demo/blob.b64" p11kms --as "$FLINK" encrypt --key alias/flink-checkpoints --context job=orders \
    --in "$demo/plain.txt"
echo "ciphertext: $(cat "$demo/blob.b64")"
x p11kms --as "$FLINK" decrypt --context job=orders --in "$demo/blob.b64"
echo
echo "with the wrong context:"
x_or_refused p11kms --as "$FLINK" decrypt --context job=payments --in "$demo/blob.b64"

step "5. Envelope encryption: a data key for a checkpoint file (plaintext key in a new 0600 file)"
x p11kms --as "$FLINK" datakey --key alias/flink-checkpoints --spec AES_256 --context purpose=checkpoint \
    --out "$demo/checkpoint.key"
x ls -l "$demo/checkpoint.key"

step "6. Separation of duties: neither role can do the other's job"
x_or_refused p11kms --as "$ADMIN" decrypt --context job=orders --in "$demo/blob.b64"
x_or_refused p11kms --as "$FLINK" key disable alias/flink-checkpoints

step "7. Rotation: old ciphertexts still decrypt"
x p11kms --as "$ADMIN" key rotate alias/flink-checkpoints
x p11kms --as "$FLINK" decrypt --context job=orders --in "$demo/blob.b64"
echo

step "8. The key policy, checked by the linter"
x_to "$demo/policy.json" p11kms --as "$ADMIN" key get-policy alias/flink-checkpoints
x p11kms policy lint "$demo/policy.json"

step "9. Flink connection credentials: the password goes into the HSM-backed SecretStore"
printf 's3cr3t-demo-db-password' >"$demo/db.password"
x p11kms --as "$FLINK" connection create catalog1.sales.orders_db --type jdbc --key alias/flink-checkpoints \
    url=jdbc:postgresql://db.internal:5432/orders username=flink password=@"$demo/db.password"
x rm -f "$demo/db.password"
x p11kms --as "$FLINK" connection describe catalog1.sales.orders_db

step "10. Render a Flink configuration: secrets resolved at deploy time, written 0600"
cat >"$demo/flink-conf.template.yaml" <<'TEMPLATE'
# rendered by p11kms render; never commit the output
table.connection.orders.url: ${connection:catalog1.sales.orders_db:url}
table.connection.orders.username: ${connection:catalog1.sales.orders_db:username}
table.connection.orders.password: ${connection:catalog1.sales.orders_db:password|yaml}
TEMPLATE
x p11kms --as "$FLINK" render "$demo/flink-conf.template.yaml" -o "$demo/flink-conf.yaml"
x ls -l "$demo/flink-conf.yaml"
echo "(the rendered file holds the password; the store, the audit log and this output do not)"

step "11. The keys in the store"
x p11kms --as "$ADMIN" key list

step "12. The audit trail: every call above, chained and sealed in the HSM"
x tail -n 2 "$demo/audit.log"
x p11kms audit verify

step "13. Compliance reports an auditor runs from cron"
export P11KMS_PRINCIPAL=arn:aws:iam::111122223333:role/auditor
echo "+ export P11KMS_PRINCIPAL=$P11KMS_PRINCIPAL"
x scripts/compliance/key-report
x scripts/compliance/policy-report
x scripts/compliance/audit-report

step "14. p11kmsd: the service holds the PIN; the AWS CLI talks to it with only the endpoint changed"
# A throwaway CA and server certificate for https://127.0.0.1 (a real deployment uses its own PKI).
mkdir -p "$demo/pki"
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=p11kms-demo-ca \
    -keyout "$demo/pki/ca.key" -out "$demo/pki/ca.pem" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout "$demo/pki/server.key" \
    -out "$demo/pki/server.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' >"$demo/pki/server.ext"
openssl x509 -req -in "$demo/pki/server.csr" -CA "$demo/pki/ca.pem" -CAkey "$demo/pki/ca.key" \
    -CAcreateserial -days 1 -extfile "$demo/pki/server.ext" -out "$demo/pki/server.pem" 2>/dev/null
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# The daemon's configuration: the same file plus listeners and who a local uid is.
{ cat "$P11KMS_CONFIG"
  echo "listen = unix:$demo/p11kmsd.sock"
  echo "listen = https://127.0.0.1:$port"
  echo "tls_cert = $demo/pki/server.pem"
  echo "tls_key = $demo/pki/server.key"
  echo "principal.uid.$(id -u) = $FLINK"; } >"$demo/p11kmsd.conf"
chmod 600 "$demo/p11kmsd.conf"
x cat "$demo/p11kmsd.conf"
# An access key for Flink, made by the key administrator; the secret goes to a 0600 file, never to this output.
x_to "$demo/flink.access-key.json" p11kms --as "$ADMIN" --json access-key create --principal "$FLINK"
AKID=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["AccessKeyId"])' "$demo/flink.access-key.json")
python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["SecretAccessKey"])' "$demo/flink.access-key.json" \
    >"$demo/flink.secret-key"
rm -f "$demo/flink.access-key.json"
echo "+ p11kmsd --config $(quote "$demo/p11kmsd.conf") &"
p11kmsd --config "$demo/p11kmsd.conf" 2>"$demo/p11kmsd.log" &
daemon=$!
trap 'kill "$daemon" 2>/dev/null' EXIT
for _ in $(seq 1 100); do
    curl -s --max-time 2 --unix-socket "$demo/p11kmsd.sock" http://p11kmsd/health >/dev/null 2>&1 && break
    sleep 0.1
done
x curl -s --unix-socket "$demo/p11kmsd.sock" http://p11kmsd/health
echo
export AWS_ACCESS_KEY_ID="$AKID" AWS_SECRET_ACCESS_KEY="$(cat "$demo/flink.secret-key")" AWS_DEFAULT_REGION=local
echo "+ export AWS_ACCESS_KEY_ID=$AKID AWS_SECRET_ACCESS_KEY=\$(cat $(quote "$demo/flink.secret-key")) AWS_DEFAULT_REGION=local"
AWS="/usr/bin/aws --endpoint-url https://127.0.0.1:$port --ca-bundle $demo/pki/ca.pem"
x_to "$demo/aws-encrypt.json" $AWS kms encrypt --key-id alias/flink-checkpoints \
    --plaintext fileb://"$demo/plain.txt" --encryption-context job=orders
x python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print("KeyId:", d["KeyId"])' "$demo/aws-encrypt.json"
python3 -c 'import json,sys,base64; open(sys.argv[2],"wb").write(base64.b64decode(json.load(open(sys.argv[1]))["CiphertextBlob"]))' \
    "$demo/aws-encrypt.json" "$demo/aws-blob.bin"
x $AWS kms decrypt --ciphertext-blob fileb://"$demo/aws-blob.bin" --encryption-context job=orders \
    --query Plaintext --output text
echo "(base64 of the plaintext; the same blob format as p11kms encrypt, so either side decrypts the other's)"
echo "Flink may not manage keys, over the wire either:"
x_or_refused $AWS kms disable-key --key-id alias/flink-checkpoints
echo "+ kill -TERM \$daemon   (seals the audit trail)"
kill -TERM "$daemon"; wait "$daemon" 2>/dev/null || true
trap - EXIT
x p11kms audit verify

echo
echo "demo folder: $demo (config: $P11KMS_CONFIG)"
