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

# access_key PRINCIPAL: sets AKID and SECRET from `p11kms access-key create` (after the merge).
access_key() {
    "$P11KMS" --config "$C" --as "$ADM" access-key create --principal "$1" >"$WORK/.ak" 2>"$WORK/.ak.err" || {
        echo "FAIL: access-key create: $(cat "$WORK/.ak.err")"; exit 1; }
    read -r AKID SECRET < <(python3 - "$WORK/.ak" <<'PY'
import json, re, sys
t = open(sys.argv[1]).read()
try:
    d = json.loads(t)
    print(d["AccessKeyId"], d["SecretAccessKey"])
except ValueError:
    akid = re.search(r"\b(AKIA[A-Z0-9]{16})\b", t).group(1)
    secret = re.search(r"Secret\w*\W+([A-Za-z0-9+/=_-]{40})\b", t).group(1)
    print(akid, secret)
PY
)
}

# need_access_keys: SigV4 scenarios skip loudly until the library has access keys.
need_access_keys() {
    if ! "$P11KMS" help access-key >/dev/null 2>&1 && ! "$P11KMS" access-key --help >/dev/null 2>&1; then
        echo "SKIP: $0 needs SigV4 access keys, and 'p11kms access-key' is not a command of $P11KMS yet" >&2
        echo "SKIP: $0 needs SigV4 access keys, and 'p11kms access-key' is not a command of $P11KMS yet"
        exit 77
    fi
}
