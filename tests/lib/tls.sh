# make_pki DIR: a throwaway CA, a server certificate for 127.0.0.1 and a
# client certificate (CN=flink-taskmanager), all signed by the CA.
make_pki() {
    d=$1
    mkdir -p "$d"
    openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=p11kms-test-ca -keyout "$d/ca.key" \
        -out "$d/ca.pem" 2>/dev/null || return 1
    openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout "$d/server.key" -out "$d/server.csr" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' >"$d/server.ext"
    openssl x509 -req -in "$d/server.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial -days 1 \
        -extfile "$d/server.ext" -out "$d/server.pem" 2>/dev/null || return 1
    openssl req -newkey rsa:2048 -nodes -subj /CN=flink-taskmanager -keyout "$d/client.key" -out "$d/client.csr" 2>/dev/null
    printf 'basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n' >"$d/client.ext"
    openssl x509 -req -in "$d/client.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial -days 1 \
        -extfile "$d/client.ext" -out "$d/client.pem" 2>/dev/null || return 1
    chmod 600 "$d"/*.key
}

# free_port: a TCP port on 127.0.0.1 nobody listens on now.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# access_key PRINCIPAL: sets AKID and SECRET from `p11kms --json access-key
# create`. A secret may begin or end with '+' or '/', so it is read from the
# JSON document, never matched out of the text form.
access_key() {
    "$P11KMS" --config "$C" --as "$ADM" --json access-key create --principal "$1" >"$WORK/.ak" 2>"$WORK/.ak.err" || {
        echo "FAIL: access-key create: $(cat "$WORK/.ak.err")"; exit 1; }
    read -r AKID SECRET < <(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["AccessKeyId"], d["SecretAccessKey"])' "$WORK/.ak")
    [ ${#SECRET} -eq 40 ] || { echo "FAIL: access-key create printed no 40-character secret"; exit 1; }
}

# need_access_keys: SigV4 scenarios skip loudly until the library has access keys.
need_access_keys() {
    if ! "$P11KMS" help access-key >/dev/null 2>&1 && ! "$P11KMS" access-key --help >/dev/null 2>&1; then
        echo "SKIP: $0 needs SigV4 access keys, and 'p11kms access-key' is not a command of $P11KMS yet" >&2
        echo "SKIP: $0 needs SigV4 access keys, and 'p11kms access-key' is not a command of $P11KMS yet"
        exit 77
    fi
}

# node_modules_ready FILE...: the npm packages of tests/node/package.json in
# the shared cache (tests/node-cache in the build tree, or
# $P11KMS_NODE_MODULES), installed once under a lock so that parallel
# scenarios do not run npm into the same folder; then FILE... from
# tests/node are copied next to them. Sets CACHE. A failed install fails
# the scenario: these tests must run wherever the npm registry is reachable.
node_modules_ready() {
    CACHE=${P11KMS_NODE_MODULES:-$P11KMS_TOP_BUILDDIR/tests/node-cache}
    mkdir -p "$CACHE" || exit 1
    (
        flock 9
        if [ ! -d "$CACHE/node_modules/@aws-crypto/client-node" ]; then
            cp "$P11KMS_TOP_SRCDIR/tests/node/package.json" "$CACHE/" &&
                (cd "$CACHE" && timeout 600 npm install --no-audit --no-fund --silent >"$WORK/npm.log" 2>&1) || {
                echo "FAIL: npm install failed:"; tail -20 "$WORK/npm.log"; exit 1; }
        fi
    ) 9>"$CACHE/.lock" || exit 1
    for f in "$@"; do # a .js test runs as an ES module: copied as .mjs
        case $f in *.js) dst=${f%.js}.mjs ;; *) dst=$f ;; esac
        cp "$P11KMS_TOP_SRCDIR/tests/node/$f" "$CACHE/$dst" || exit 1
    done
}

# https_token: a fresh token and store for a daemon scenario, the test PKI
# and a free port; sets T, C, ADM, OPR, REGION, SOCK, PORT and runs init
# (ADM administers the service key, OPR uses it).
https_token() {
    T=$WORK/tok
    new_token "$T" p11kms
    C=$T/p11kms.conf
    ADM=arn:aws:iam::111122223333:role/key-admin
    OPR=arn:aws:iam::111122223333:role/flink-operator
    REGION=eu-west-1
    SOCK=$WORK/kms.sock
    make_pki "$T/pki" || { echo "FAIL: openssl cannot make the test PKI"; exit 1; }
    PORT=$(free_port)
    printf 'account = 111122223333\nregion = %s\n' "$REGION" >>"$C"
    run "$P11KMS" --config "$C" --as "$ADM" init --operator "$OPR"; expect_rc 0 "init"
}

# https_listeners [ARN]: the Unix socket and https://127.0.0.1:PORT listeners
# in $C, and ARN (if given) as the principal of this process's uid.
https_listeners() {
    printf 'listen = unix:%s\nlisten = https://127.0.0.1:%s\ntls_cert = pki/server.pem\ntls_key = pki/server.key\n' \
        "$SOCK" "$PORT" >>"$C"
    [ $# -eq 0 ] || printf 'principal.uid.%s = %s\n' "$(id -u)" "$1" >>"$C"
}
