#!/usr/bin/env python3
"""Write the seed corpora of tests/fuzz/corpus/ (run once; the seeds are checked in).

Seeds are small valid inputs of each target's format, so that the fuzzer
starts from the accepted language and mutates out of it. The audit seeds
carry seals "MACed" with the target's stand-in (SHA-256 of the prefix).
"""
import hashlib, json, os, shutil, struct, sys

top = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
out = os.path.join(top, "tests", "fuzz", "corpus")


def put(target, name, data):
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


# codec
for i, s in enumerate(["Zm9vYmFy", "Zm9vYg==\n", "Zm8=", "00ff10a0", "123e4567-e89b-42d3-a456-426614174000", ""]):
    put("codec", "seed-%d" % i, s)

# policy: the documents of the evaluation vectors, with one request each
REQ = "\0arn:aws:iam::111122223333:role/flink-operator\nkms:Decrypt\narn:aws:kms:local:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab\ndepartment=finance\n!aws:SourceIp=10.1.2.3\n2024-06-15T12:00:00Z\n"
n = 0
for fn in sorted(os.listdir(os.path.join(top, "tests", "vectors", "policy"))):
    if not fn.startswith("eval-"):
        continue
    for g in json.load(open(os.path.join(top, "tests", "vectors", "policy", fn)))["groups"]:
        put("policy", "seed-%02d" % n, json.dumps(g["policy"], separators=(",", ":")) + REQ)
        n += 1

# blob: version 1, flags 0, key id, key version 1, IV, ciphertext || tag; then a context
hdr = bytes([1, 0]) + bytes(range(16)) + struct.pack(">I", 1) + bytes(12)
put("blob", "seed-0", hdr + b"\x42" * 33)
put("blob", "seed-1", hdr + b"\x42" * 17 + b"\0purpose=test\nsch\xc3\xa9=v\xc3\xa9\n")

# conf
put("conf", "seed-0", "# p11kms\nmodule = /usr/lib/softhsm/libsofthsm2.so\ntoken = p11kms\npin = file:pin\nstore = store.db\n")
put("conf", "seed-1", "module=/usr/lib/softhsm/libsofthsm2.so\ntoken=p11kms\npin=env:PIN\nlisten = unix:/run/p11kmsd.sock\nlisten = 127.0.0.1:8443\nworkers = 4\nprincipal.uid.1000 = arn:aws:iam::111122223333:role/app\n")

# audit: a sealed chain, a rotated series of two files
def line(seq, typ, body, prev):
    return '{"v":1,"seq":%d,"type":"%s","time":"2025-06-01T12:00:00.123Z",%s"prev":"%s"' % (seq, typ, body, prev)

def chain(start, prevhash, n_events, seal_reason, first_link=None):
    lines, prev, seq = [], prevhash, start
    if first_link:
        l = line(seq, "link", '"reason":"rotate","file":2,"previous_file":"%s",' % first_link, prev) + "}"
        lines.append(l); prev = hashlib.sha256(l.encode()).hexdigest(); seq += 1
    for _ in range(n_events):
        l = line(seq, "event", '"request_id":"4f1c2a9e-6b7d-4e21-9a3b-0c5d8e7f6a10","principal":"arn:aws:iam::111122223333:role/payroll","action":"Encrypt","decision":"Allowed","result":"ok",', prev) + "}"
        lines.append(l); prev = hashlib.sha256(l.encode()).hexdigest(); seq += 1
    pre = line(seq, "seal", '"reason":"%s","sealed_seq":%d,' % (seal_reason, seq - 1), prev)
    l = pre + ',"mac":"%s"}' % hashlib.sha256(pre.encode()).hexdigest()
    lines.append(l); prev = hashlib.sha256(l.encode()).hexdigest(); seq += 1
    return lines, prev, seq

g = "0" * 64
a, prev, seq = chain(1, g, 3, "count")
put("audit", "seed-0", b"\x00" + ("\n".join(a) + "\n").encode())
b, prev2, _ = chain(seq, prev, 2, "close", first_link="audit.log.000001")
a2, p, s2 = chain(1, g, 2, "rotate")
b2, _, _ = chain(s2, p, 1, "close", first_link="audit.log.000001")
put("audit", "seed-1", b"\x02" + ("\n".join(a2) + "\n\f" + "\n".join(b2) + "\n").encode())
put("audit", "seed-2", b"\x01" + ("\n".join(a[:2]) + "\n").encode())

# secret_map: JSON and the binary encoding
put("secret_map", "seed-0", '{"password":"hunter2","user":"app"}')
put("secret_map", "seed-1", '{"k\\u00e9y":"v\\n\\"x\\"","a":""}')
enc = b"PKSM\x01" + struct.pack(">I", 2)
for k, v in ((b"password", b"hunter2"), (b"user", b"app")):
    enc += struct.pack(">I", len(k)) + k + struct.pack(">I", len(v)) + v
put("secret_map", "seed-2", b"B" + enc)

# http: one request, pipelined requests, a GET
body = '{"KeyId":"alias/app","Plaintext":"aGVsbG8="}'
req = ("POST / HTTP/1.1\r\nHost: localhost\r\nX-Amz-Target: TrentService.Encrypt\r\n"
       "Content-Type: application/x-amz-json-1.1\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
put("http", "seed-0", req)
put("http", "seed-1", req + req.replace("HTTP/1.1\r\n", "HTTP/1.1\r\nConnection: close\r\n", 1))
put("http", "seed-2", "GET /health HTTP/1.0\r\nConnection: keep-alive\r\nExpect: 100-continue\r\n\r\n")

# kms_fields: request bodies of the main operations
put("kms_fields", "seed-0", body)
put("kms_fields", "seed-1", '{"CiphertextBlob":"AQABAgMEBQYHCAkKCwwNDg8AAAABAAAAAAAAAAAAAAAAQkJCQkJCQkJCQkJCQkJCQkI=","EncryptionContext":{"purpose":"test"},"EncryptionAlgorithm":"SYMMETRIC_DEFAULT"}')
put("kms_fields", "seed-2", '{"KeyId":"1234abcd-12ab-34cd-56ef-1234567890ab","NumberOfBytes":32,"PendingWindowInDays":7,"BypassPolicyLockoutSafetyCheck":false,"ValidTo":"2025-06-01T12:00:00Z","DestinationEncryptionContext":{}}')

# sigv4: the AWS signing test suite's requests
sv = os.path.join(top, "tests", "vectors", "sigv4")
for case in sorted(os.listdir(sv)):
    f = os.path.join(sv, case, "header-signed-request.txt")
    if os.path.isfile(f):
        put("sigv4", case, open(f, "rb").read())

# esdk: the official SDK's messages (modes 0 and 1), and mode 2 inputs
for i, fn in enumerate(["sdk-js-0x0478.bin", "sdk-js-0x0578.bin"]):
    msg = open(os.path.join(top, "tests", "vectors", "esdk", fn), "rb").read()
    put("esdk", "seed-raw-%d" % i, b"\x00\xff" + msg)
    put("esdk", "seed-fixed-%d" % i, b"\x01\x3f" + msg)
put("esdk", "seed-build-0", b"\x02\x10\x00\x05\x00" + bytes(range(200)))
put("esdk", "seed-build-1", b"\x02\x03\x01\x00\x85" + b"plaintext" * 5)
