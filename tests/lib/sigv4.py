#!/usr/bin/env python3
"""Send one SigV4-signed KMS request, optionally broken on purpose (stdlib only).

  sigv4.py URL CA AKID SECRET REGION OP JSON [good|tamper|stale|unsigned-date]
Prints the HTTP status and the body.
"""
import datetime
import hashlib
import hmac
import http.client
import ssl
import sys
import urllib.parse


def sign(key, msg):
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def main():
    url, ca, akid, secret, region, op, body, mode = (sys.argv[1:] + ["good"])[:8]
    u = urllib.parse.urlparse(url)
    host = u.netloc
    now = datetime.datetime.now(datetime.timezone.utc)
    if mode == "stale":
        now -= datetime.timedelta(minutes=20)
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    day = amz_date[:8]
    headers = {"content-type": "application/x-amz-json-1.1", "host": host, "x-amz-date": amz_date,
               "x-amz-target": "TrentService." + op}
    signed = sorted(h for h in headers if not (mode == "unsigned-date" and h == "x-amz-date"))
    canonical = "\n".join(["POST", "/", "", "".join("%s:%s\n" % (h, headers[h]) for h in signed), ";".join(signed),
                           hashlib.sha256(body.encode()).hexdigest()])
    scope = "%s/%s/kms/aws4_request" % (day, region)
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    k = sign(sign(sign(sign(("AWS4" + secret).encode(), day), region), "kms"), "aws4_request")
    sig = hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()
    if mode == "tamper":
        sig = sig[:-1] + ("0" if sig[-1] != "0" else "1")
    headers["authorization"] = "AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s" % (
        akid, scope, ";".join(signed), sig)
    ctx = ssl.create_default_context(cafile=ca)
    c = http.client.HTTPSConnection(u.hostname, u.port, context=ctx, timeout=20)
    c.request("POST", "/", body=body, headers=headers)
    r = c.getresponse()
    print(r.status)
    print(r.read().decode())


main()
