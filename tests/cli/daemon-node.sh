#!/bin/bash
# p11kmsd from node (issue 12, items 2 and 3): @aws-sdk/client-kms does the
# data-plane calls and @aws-crypto/client-node's KmsKeyringNode encrypts and
# decrypts 1 MiB with an encryption context. The npm packages are installed
# once into the build tree (tests/node-cache); set P11KMS_NODE_MODULES to use
# a prepared node_modules instead. Skips loudly until `p11kms access-key` exists.
. "${P11KMS_TOP_SRCDIR:-.}/tests/cli/lib.sh"
. "$P11KMS_TOP_SRCDIR/tests/lib/daemon.sh"
. "$P11KMS_TOP_SRCDIR/tests/lib/tls.sh"
need_access_keys
command -v node >/dev/null && command -v npm >/dev/null || { echo "SKIP: $0 needs node and npm"; exit 77; }

node_modules_ready kms.mjs

https_token
https_listeners "$ADM"
access_key "$OPR"
start_daemon "$C"
kms_as "$(id -u)" CreateKey '{}'
K=$(jget "d['KeyMetadata']['KeyId']"); ARN=$(jget "d['KeyMetadata']['Arn']")
kms_as "$(id -u)" GetKeyPolicy "{\"KeyId\":\"$K\"}"
POLICY=$(jget "json.dumps(json.dumps({'Version':'2012-10-17','Statement':json.loads(d['Policy'])['Statement']+[{'Sid':'Use','Effect':'Allow','Principal':{'AWS':'$OPR'},'Action':['kms:Encrypt','kms:Decrypt','kms:GenerateDataKey','kms:GenerateDataKeyWithoutPlaintext','kms:ReEncryptFrom','kms:ReEncryptTo'],'Resource':'*'}]}))")
kms_as "$(id -u)" PutKeyPolicy "{\"KeyId\":\"$K\",\"Policy\":$POLICY}"
expect_http 200 "operator policy"

P11KMSD_URL=https://127.0.0.1:$PORT P11KMSD_CA=$T/pki/ca.pem KEY_ARN=$ARN AWS_REGION=$REGION \
    AWS_ACCESS_KEY_ID=$AKID AWS_SECRET_ACCESS_KEY=$SECRET run timeout 300 node "$CACHE/kms.mjs"
expect_rc 0 "node SDK and ESDK against p11kmsd"
expect_out_has "ok 9 ESDK data key with the wrong context fails" "all node checks ran"
cat "$OUT"
stop_daemon
if grep -qaF -- "$SECRET" "$DAEMON_ERR" "$T/audit.log"; then bad "secret access key leaked"; else ok; fi
finish
