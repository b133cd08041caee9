#!/usr/bin/env python3
"""Robustness clients for p11kmsd over its Unix socket (stdlib only).

  kmsclient.py robust SOCK KEY        abusive clients alongside a well-formed loop
  kmsclient.py churn SOCK LOG SECONDS create/disable keys, log each acknowledged one
  kmsclient.py check SOCK LOG         every acknowledged change is there

Prints one line per failure and exits 1 when any check fails.
"""
import base64
import http.client
import json
import socket
import sys
import threading
import time


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=30):
        super().__init__("p11kmsd", timeout=timeout)
        self.path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.path)
        self.sock = s


def call(conn, op, body):
    conn.request("POST", "/", body=json.dumps(body),
                 headers={"X-Amz-Target": "TrentService." + op,
                          "Content-Type": "application/x-amz-json-1.1"})
    r = conn.getresponse()
    data = r.read()
    return r.status, (json.loads(data) if data else {})


def raw(path, data, read=True, timeout=10):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(path)
    try:
        s.sendall(data)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the daemon refused early (413): its answer is still queued for us
    out = b""
    if read:
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
        except (socket.timeout, ConnectionResetError):
            pass
    s.close()
    return out


def request(op, body, ctype="application/x-amz-json-1.1", target=True):
    head = "POST / HTTP/1.1\r\nHost: p11kmsd\r\nContent-Type: %s\r\n" % ctype
    if target:
        head += "X-Amz-Target: TrentService.%s\r\n" % op
    head += "Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body)
    return head.encode() + body


failures = []


def fail(msg):
    failures.append(msg)
    print("FAIL: " + msg, flush=True)


def good_loop(sock, key, stop, stats):
    """Well-formed Encrypt/Decrypt on one keep-alive connection; every answer must be right."""
    conn = UnixConnection(sock)
    pt = base64.b64encode(b"well-formed").decode()
    while not stop.is_set():
        try:
            st, d = call(conn, "Encrypt", {"KeyId": key, "Plaintext": pt})
            ok = st == 200
            if ok:
                st, d = call(conn, "Decrypt", {"CiphertextBlob": d["CiphertextBlob"]})
                ok = st == 200 and d["Plaintext"] == pt
            stats["ok" if ok else "bad"] += 1
            if not ok:
                fail("well-formed client got %d %s" % (st, d))
        except Exception as e:  # noqa: BLE001 - any transport error is a failure here
            stats["bad"] += 1
            fail("well-formed client: %r" % e)
            conn = UnixConnection(sock)


def expect(name, resp, status, etype):
    text = resp.decode(errors="replace")
    if (" %d " % status) not in text.split("\r\n", 1)[0] or etype not in text:
        fail("%s: want %d %s, got %r" % (name, status, etype, text[:200]))


def robust(sock, key):
    stop = threading.Event()
    stats = {"ok": 0, "bad": 0}
    loop = threading.Thread(target=good_loop, args=(sock, key, stop, stats))
    loop.start()
    try:
        abuse(sock, stats)
    finally:
        stop.set()
        loop.join()
    print("well-formed client: %d ok, %d failed" % (stats["ok"], stats["bad"]))
    if stats["ok"] < 10:
        fail("well-formed client made only %d requests" % stats["ok"])


def abuse(sock, stats):
    time.sleep(0.5)
    expect("malformed JSON", raw(sock, request("Encrypt", b'{"KeyId": ')), 400, "SerializationException")
    expect("wrong content type", raw(sock, request("ListKeys", b"{}", ctype="text/plain")), 400,
           "SerializationException")
    expect("missing target", raw(sock, request("ListKeys", b"{}", target=False)), 400, "UnknownOperationException")
    expect("body over the limit", raw(sock, request("Encrypt", b"a" * (1024 * 1024 + 1))), 413,
           "ValidationException")
    # A client that disconnects mid-request, before and after the headers end.
    for _ in range(20):
        raw(sock, request("Encrypt", b'{"KeyId": "x", "Plaintext": "AAAA"}')[:60], read=False)
        raw(sock, request("Encrypt", b'{"KeyId": "x", "Plaintext": "AAAA"}')[:-5], read=False)
    # Slow loris: one header byte a second; the daemon must close it (read_timeout_s).
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sock)
    t0 = time.time()
    closed = False
    try:
        for b in b"POST / HTTP/1.1\r\nHost: p11kmsd\r\nX-Slow: " + b"a" * 30:
            s.send(bytes([b]))
            time.sleep(0.2)
    except (BrokenPipeError, ConnectionResetError):
        closed = True
    if not closed:
        s.settimeout(5)
        try:
            closed = b"408" in s.recv(4096) or True
        except socket.timeout:
            closed = False
    s.close()
    if not closed or time.time() - t0 > 8:
        fail("slow-loris client was not cut off by read_timeout_s")
    # 1,000 idle connections: the well-formed client keeps working.
    idle = []
    for _ in range(1000):
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        c.connect(sock)
        idle.append(c)
    time.sleep(1.0)
    before = stats["ok"]
    time.sleep(1.0)
    if stats["ok"] <= before:
        fail("well-formed client made no progress with 1,000 idle connections")
    for c in idle:
        c.close()
    time.sleep(0.5)


def churn(sock, log, seconds):
    """CreateKey then DisableKey in a loop; log a change only once it is acknowledged."""
    end = time.time() + float(seconds)
    with open(log, "a", buffering=1) as f:
        conn = UnixConnection(sock)
        while time.time() < end:
            try:
                st, d = call(conn, "CreateKey", {"Description": "churn"})
                if st != 200:
                    continue
                k = d["KeyMetadata"]["KeyId"]
                f.write("created %s\n" % k)
                st, d = call(conn, "DisableKey", {"KeyId": k})
                if st == 200:
                    f.write("disabled %s\n" % k)
            except Exception:  # noqa: BLE001 - the daemon is killed under us on purpose
                time.sleep(0.05)
                conn = UnixConnection(sock)


def drain(sock, key, pidfile_pid):
    """Keep-alive Encrypt loops while SIGTERM arrives: every answer that comes is whole and right."""
    import os
    import signal
    stop = threading.Event()
    stats = {"ok": 0, "gone": 0}
    lock = threading.Lock()
    pt = base64.b64encode(b"in flight").decode()

    def loop():
        conn = UnixConnection(sock)
        while not stop.is_set():
            try:
                st, d = call(conn, "Encrypt", {"KeyId": key, "Plaintext": pt})
                if st != 200 or "CiphertextBlob" not in d:
                    fail("in-flight request answered %d %s" % (st, d))
                with lock:
                    stats["ok"] += 1
            except http.client.IncompleteRead as e:
                fail("a response was cut short: %r" % e)
                return
            except (ConnectionError, FileNotFoundError, http.client.RemoteDisconnected, OSError):
                with lock:
                    stats["gone"] += 1  # not acknowledged: the daemon stopped accepting
                time.sleep(0.05)
                conn = UnixConnection(sock)

    threads = [threading.Thread(target=loop) for _ in range(8)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    os.kill(int(pidfile_pid), signal.SIGTERM)
    time.sleep(1.5)
    stop.set()
    for t in threads:
        t.join()
    print("in-flight: %d answered, %d not accepted after SIGTERM" % (stats["ok"], stats["gone"]))
    if stats["ok"] < 8:
        fail("too few requests answered before SIGTERM")


def check(sock, log):
    conn = UnixConnection(sock)
    created = disabled = 0
    for line in open(log):
        what, k = line.split()
        st, d = call(conn, "DescribeKey", {"KeyId": k})
        if st != 200:
            fail("acknowledged key %s is missing: %d %s" % (k, st, d))
            continue
        created += what == "created"
        if what == "disabled":
            disabled += 1
            if d["KeyMetadata"]["KeyState"] != "Disabled":
                fail("acknowledged DisableKey of %s lost: %s" % (k, d["KeyMetadata"]["KeyState"]))
    print("checked %d created and %d disabled keys" % (created, disabled))
    if created == 0:
        fail("no key was acknowledged before the kill")


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "robust":
        robust(sys.argv[2], sys.argv[3])
    elif cmd == "churn":
        churn(sys.argv[2], sys.argv[3], sys.argv[4])
    elif cmd == "drain":
        drain(sys.argv[2], sys.argv[3], sys.argv[4])
    elif cmd == "check":
        check(sys.argv[2], sys.argv[3])
    sys.exit(1 if failures else 0)
