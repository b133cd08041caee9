package org.p11kms.flink.test;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.ServiceLoader;
import java.util.stream.Collectors;
import org.apache.flink.configuration.ConfigOption;
import org.apache.flink.configuration.ReadableConfig;
import org.apache.flink.table.factories.Factory;
import org.apache.flink.table.secret.SecretStoreFactory;
import org.apache.flink.table.secret.exceptions.SecretException;
import org.p11kms.flink.P11kmsSecretStoreFactory;
import org.p11kms.flink.client.HttpWire;
import org.p11kms.flink.client.Json;
import org.p11kms.flink.client.P11kmsOptions;
import org.p11kms.flink.client.SigV4;

/**
 * Daemon-free checks, always run by make check: SigV4 against the AWS test
 * suite (awslabs/aws-c-auth tests/aws-signing-test-suite/v4/, also in
 * tests/vectors/sigv4/), the JSON reader on tricky input, the HTTP response parser
 * and the option parsing. Exit 0 when all pass, 1 otherwise.
 */
public final class UnitTest {
    private static int passed;
    private static int failed;

    private UnitTest() {
    }

    static void check(boolean cond, String what) {
        if (cond) {
            passed++;
        } else {
            failed++;
            System.out.println("FAIL: " + what);
        }
    }

    static int passedCount() {
        return passed;
    }

    static int failedCount() {
        return failed;
    }

    private static int failedAtLastLog;

    /** Ends a section: "ok: WHAT" when none of its checks failed. */
    static void log(String what) {
        System.out.println((failed == failedAtLastLog ? "ok: " : "FAILED: ") + what);
        failedAtLastLog = failed;
    }

    static void throwsIae(Runnable r, String messagePart, String what) {
        try {
            r.run();
            check(false, what + ": no exception");
        } catch (IllegalArgumentException e) {
            check(e.getMessage().contains(messagePart), what + ": message '" + e.getMessage() + "' lacks '"
                    + messagePart + "'");
        }
    }

    public static void main(String[] args) throws Exception {
        sigv4();
        json();
        http();
        options();
        factory();
        retries();
        timeout();
        nullValues();
        System.out.println("UnitTest: " + passed + " passed, " + failed + " failed");
        System.exit(failed == 0 ? 0 : 1);
    }

    static void sigv4() {
        byte[] secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".getBytes(StandardCharsets.US_ASCII);
        SigV4 s = new SigV4("AKIDEXAMPLE", secret, "us-east-1");
        TreeMap<String, String> h = new TreeMap<>();
        h.put("host", "example.amazonaws.com");
        h.put("x-amz-date", "20150830T123600Z");
        String prefix = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
                + "SignedHeaders=host;x-amz-date, Signature=";
        check(SigV4.canonicalRequest("POST", "/", "", h, new byte[0]).equals("POST\n/\n\nhost:example.amazonaws.com\n"
                + "x-amz-date:20150830T123600Z\n\nhost;x-amz-date\n"
                + "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"), "post-vanilla canonical request");
        check(s.authorization("POST", "/", "", h, new byte[0], "20150830T123600Z", "service").equals(prefix
                + "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"), "post-vanilla signature");
        check(s.authorization("GET", "/", "", h, new byte[0], "20150830T123600Z", "service").equals(prefix
                + "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"), "get-vanilla signature");
        /* The cached signing key gives the same answer the second time. */
        check(s.authorization("GET", "/", "", h, new byte[0], "20150830T123600Z", "service").endsWith(
                "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"), "get-vanilla, cached key");
        /* The headers Transport signs, with a body: the signature botocore 1.43's SigV4Auth gives. */
        SigV4 sm = new SigV4("AKIDEXAMPLE", secret, "local");
        TreeMap<String, String> t = new TreeMap<>();
        t.put("content-type", "application/x-amz-json-1.1");
        t.put("host", "127.0.0.1:8443");
        t.put("x-amz-date", "20261203T105229Z");
        t.put("x-amz-target", "secretsmanager.GetSecretValue");
        check(sm.authorization("POST", "/", "", t, "{\"SecretId\":\"flink/x\"}".getBytes(StandardCharsets.UTF_8),
                "20261203T105229Z", "secretsmanager").equals("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261203/local/"
                + "secretsmanager/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-target, "
                + "Signature=d3d96105725af42967c389cb2bcdf763cf01540fcd1ce0b8212e2d2c34569b7e"),
                "secretsmanager request with a body, as botocore signs it");
        sm.destroy();
        s.destroy();
        try {
            s.authorization("GET", "/", "", h, new byte[0], "20150830T123600Z", "service");
            check(false, "a destroyed signer still signs");
        } catch (IllegalStateException e) {
            check(true, "destroyed");
        }
    }

    static void json() {
        Map<String, String> m = Json.parseStringMap(
                "{ \"a\\\"b\" : \"x\\\\y\\/z\\b\\f\\n\\r\\t\", \"e\":\"\\u00e9\\uD83D\\uDE00\", \"raw\":\"\u00e9\ud83d\ude00\"}");
        check(m.get("a\"b").equals("x\\y/z\b\f\n\r\t"), "escapes");
        check(m.get("e").equals("\u00e9\ud83d\ude00"), "\\u escapes with a surrogate pair");
        check(m.get("raw").equals("\u00e9\ud83d\ude00"), "raw UTF-16");
        Map<String, Object> o = Json.asMap(Json.parse("{\"n\":-1.5e3,\"t\":true,\"z\":null,\"l\":[1,{}]}"));
        check(o.get("n").toString().equals("-1.5E+3"), "number");
        check(o.get("t") == Boolean.TRUE && o.get("z") == Json.NULL && ((List<?>) o.get("l")).size() == 2, "literals");
        String[] bad = {"", "{", "{\"a\":\"b\",}", "{\"a\" \"b\"}", "[1,]", "{\"a\":01}", "{\"a\":\"\\x\"}",
            "{\"a\":\"\\uD83D\"}", "{\"a\":\"\\uDE00x\"}", "{\"a\":\"\\uD83D\\u0041\"}", "{\"a\":\"\u0001\"}",
            "{\"a\":\"b\"} x", "{\"a\":1,\"a\":2}", "tru", "{\"a\":\"\\u12\"}", "\"\ud83d\"", "-", "1.", "1e"};
        for (String b : bad) {
            throwsIae(() -> Json.parse(b), "JSON:", "rejects " + b.replace("\n", "\\n"));
        }
        throwsIae(() -> Json.parseStringMap("{\"a\":1}"), "not a string", "non-string value in a secret map");
        throwsIae(() -> Json.parseStringMap("[]"), "object", "array for a secret map");
        StringBuilder deep = new StringBuilder();
        for (int i = 0; i < 100; i++) {
            deep.append('[');
        }
        throwsIae(() -> Json.parse(deep.toString()), "too deep", "nesting limit");
        Map<String, String> w = new HashMap<>();
        w.put("k\"\\\n\u0001", "v\u00e9\ud83d\ude00\t");
        w.put("b", "");
        String text = Json.write(w);
        check(text.equals("{\"b\":\"\",\"k\\\"\\\\\\n\\u0001\":\"v\u00e9\ud83d\ude00\\t\"}"), "writer escapes: " + text);
        check(Json.parseStringMap(text).equals(w), "write then read round trip");
        Map<String, String> lone = new HashMap<>();
        lone.put("a", "\ud83d");
        throwsIae(() -> Json.write(lone), "surrogate", "writer refuses a lone surrogate");
    }

    static HttpWire.Response parse(String wire) throws Exception {
        return HttpWire.readResponse(new ByteArrayInputStream(wire.getBytes(StandardCharsets.ISO_8859_1)));
    }

    static void http() throws Exception {
        HttpWire.Response r = parse("HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.1\r\n"
                + "Content-Length: 7\r\nx-amzn-RequestId: r1\r\n\r\n{\"a\":1}HTTP/1.1");
        check(r.status == 200 && r.bodyText().equals("{\"a\":1}") && r.reusable, "content-length");
        check("r1".equals(r.headers.get("x-amzn-requestid")), "headers are lowercase");
        r = parse("HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\n\r\n4;ext=1\r\n{\"__\r\n"
                + "a\r\ntype\":\"X\"}\r\n0\r\nTrailer: t\r\n\r\n");
        check(r.status == 400 && r.bodyText().equals("{\"__type\":\"X\"}") && r.reusable, "chunked with trailer");
        r = parse("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end");
        check(r.bodyText().equals("until the end") && !r.reusable, "body until close");
        r = parse("HTTP/1.1 200 OK\nContent-Length: 0\n\n");
        check(r.body.length == 0, "bare LF and empty body");
        String[] bad = {"", "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort", "HTTP/1.1 2x0 OK\r\n\r\n",
            "SMTP 200\r\n\r\n", "HTTP/1.1 200 OK\r\nno colon\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "HTTP/1.1 200 OK\r\nTransfer-Encoding: "
            + "chunked\r\n\r\n3\r\nabcX\r\n0\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\n"};
        for (String b : bad) {
            try {
                parse(b);
                check(false, "HTTP parser accepts: " + b.replace("\r\n", "|"));
            } catch (java.io.IOException e) {
                check(e.getMessage().startsWith("p11kms: "), "HTTP error message: " + e.getMessage());
            }
        }
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        Map<String, String> h = new java.util.LinkedHashMap<>();
        h.put("Host", "p11kmsd");
        h.put("X-Amz-Target", "secretsmanager.GetSecretValue");
        HttpWire.writeRequest(out, h, "{}".getBytes(StandardCharsets.UTF_8));
        check(out.toString(StandardCharsets.ISO_8859_1).equals("POST / HTTP/1.1\r\nHost: p11kmsd\r\nX-Amz-Target: "
                + "secretsmanager.GetSecretValue\r\nContent-Length: 2\r\n\r\n{}"), "request writer");
    }

    /** The factory is found by Flink's ServiceLoader lookup and refuses bad options clearly. */
    static void factory() {
        P11kmsSecretStoreFactory found = null;
        for (Factory f : ServiceLoader.load(Factory.class)) {
            if (f.factoryIdentifier().equals("p11kms")) {
                found = (P11kmsSecretStoreFactory) f;
            }
        }
        check(found != null, "ServiceLoader finds the p11kms factory");
        if (found == null) {
            return;
        }
        check(found.requiredOptions().stream().map(ConfigOption::key).collect(Collectors.toList())
                .equals(List.of("endpoint")), "required options");
        check(found.optionalOptions().stream().map(ConfigOption::key).collect(Collectors.toList()).equals(List.of(
                "ca-file", "access-key-id", "secret-access-key-file", "key", "namespace", "region")), "optional options");
        try {
            found.createSecretStore();
            check(false, "createSecretStore before open");
        } catch (SecretException e) {
            check(e.getMessage().equals("p11kms: open() the secret store factory before createSecretStore()"),
                    "createSecretStore before open: " + e.getMessage());
        }
        Map<String, String> bad = new HashMap<>();
        bad.put("endpoint", "https://127.0.0.1:1");
        try {
            found.open(new SecretStoreFactory.Context() {
                @Override
                public Map<String, String> getOptions() {
                    return bad;
                }

                @Override
                public ReadableConfig getConfiguration() {
                    return null;
                }

                @Override
                public ClassLoader getClassLoader() {
                    return UnitTest.class.getClassLoader();
                }
            });
            check(false, "open with an https endpoint and no credentials");
        } catch (SecretException e) {
            check(e.getMessage().equals("p11kms: an https endpoint needs 'access-key-id' and 'secret-access-key-file'"),
                    "open refuses missing credentials: " + e.getMessage());
        }
    }

    /**
     * A server that answers one request per connection and then closes it, as a
     * daemon closing idle connections does: a pooled read is retried once on a
     * new connection; a write is not (it might have been applied).
     */
    static void retries() throws Exception {
        java.nio.file.Path dir = java.nio.file.Files.createTempDirectory("p11kms-java-");
        java.nio.file.Path sock = dir.resolve("s.sock");
        java.util.concurrent.atomic.AtomicInteger served = new java.util.concurrent.atomic.AtomicInteger();
        try (java.nio.channels.ServerSocketChannel srv =
                     java.nio.channels.ServerSocketChannel.open(java.net.StandardProtocolFamily.UNIX)) {
            srv.bind(java.net.UnixDomainSocketAddress.of(sock));
            Thread t = new Thread(() -> {
                for (;;) {
                    try (java.nio.channels.SocketChannel c = srv.accept()) {
                        java.io.InputStream in = new java.io.BufferedInputStream(
                                java.nio.channels.Channels.newInputStream(c));
                        int len = 0;
                        for (String line; !(line = readLine(in)).isEmpty();) {
                            if (line.toLowerCase().startsWith("content-length:")) {
                                len = Integer.parseInt(line.substring(15).trim());
                            }
                        }
                        in.readNBytes(len);
                        served.incrementAndGet();
                        byte[] body = "{\"Name\":\"n\",\"SecretString\":\"{\\\"a\\\":\\\"b\\\"}\"}"
                                .getBytes(StandardCharsets.UTF_8);
                        c.write(java.nio.ByteBuffer.wrap(("HTTP/1.1 200 OK\r\nContent-Length: " + body.length
                                + "\r\n\r\n").getBytes(StandardCharsets.ISO_8859_1)));
                        c.write(java.nio.ByteBuffer.wrap(body));
                    } catch (java.io.IOException e) {
                        return; /* the server socket was closed */
                    }
                }
            });
            t.setDaemon(true);
            t.start();
            Map<String, String> o = new HashMap<>();
            o.put("endpoint", "unix:" + sock);
            try (org.p11kms.flink.client.P11kmsClient c = org.p11kms.flink.client.P11kmsClient.create(o)) {
                c.storeSecret(Map.of("a", "b"));
                Thread.sleep(200); /* let the server close the pooled connection */
                check(c.getSecret("n").equals(Map.of("a", "b")), "a read on a closed pooled connection is retried");
                check(served.get() == 2, "the read reached the server once: " + served.get());
                Thread.sleep(200);
                try {
                    c.updateSecret("n", Map.of("a", "c"));
                    check(false, "a write on a closed pooled connection was retried");
                } catch (org.p11kms.flink.client.P11kmsException e) {
                    check(e.getErrorType().equals("IOException") && e.getMessage().startsWith("p11kms: PutSecretValue: "),
                            "a write is not retried: " + e.getMessage());
                }
                check(served.get() == 2, "the write was not sent again: " + served.get());
            }
        } finally {
            java.nio.file.Files.deleteIfExists(sock);
            java.nio.file.Files.deleteIfExists(dir);
        }
    }

    /** A daemon that accepts and never answers: the call fails after the read timeout, not never. */
    static void timeout() throws Exception {
        java.nio.file.Path dir = java.nio.file.Files.createTempDirectory("p11kms-java-");
        java.nio.file.Path sock = dir.resolve("s.sock");
        System.setProperty("p11kms.flink.read-timeout-ms", "300");
        try (java.nio.channels.ServerSocketChannel srv =
                     java.nio.channels.ServerSocketChannel.open(java.net.StandardProtocolFamily.UNIX)) {
            srv.bind(java.net.UnixDomainSocketAddress.of(sock));
            Map<String, String> o = new HashMap<>();
            o.put("endpoint", "unix:" + sock);
            try (org.p11kms.flink.client.P11kmsClient c = org.p11kms.flink.client.P11kmsClient.create(o)) {
                long t0 = System.nanoTime();
                try {
                    c.updateSecret("n", Map.of("a", "b"));
                    check(false, "a silent daemon answered");
                } catch (org.p11kms.flink.client.P11kmsException e) {
                    long ms = (System.nanoTime() - t0) / 1_000_000;
                    check(e.getMessage().equals("p11kms: PutSecretValue: no answer from p11kmsd within 300 ms")
                            && ms >= 250 && ms < 5000, "read timeout: " + e.getMessage() + " after " + ms + " ms");
                }
            }
        } finally {
            System.clearProperty("p11kms.flink.read-timeout-ms");
            java.nio.file.Files.deleteIfExists(sock);
            java.nio.file.Files.deleteIfExists(dir);
        }
    }

    /** Null keys or values are refused before anything is sent. */
    static void nullValues() {
        Map<String, String> o = new HashMap<>();
        o.put("endpoint", "unix:/nonexistent/p11kms.sock");
        try (org.p11kms.flink.client.P11kmsClient c = org.p11kms.flink.client.P11kmsClient.create(o)) {
            Map<String, String> m = new HashMap<>();
            m.put("user", null);
            throwsIae(() -> c.storeSecret(m), "p11kms: secret data has a null value for 'user'", "null value");
            Map<String, String> k = new HashMap<>();
            k.put(null, "v");
            throwsIae(() -> c.updateSecret("id", k), "p11kms: secret data has a null key", "null key");
            throwsIae(() -> c.storeSecret(null), "p11kms: secret data must not be null", "null map");
        }
    }

    static String readLine(java.io.InputStream in) throws java.io.IOException {
        StringBuilder b = new StringBuilder();
        for (int c; (c = in.read()) != '\n';) {
            if (c < 0) {
                throw new java.io.EOFException();
            }
            if (c != '\r') {
                b.append((char) c);
            }
        }
        return b.toString();
    }

    static void options() {
        Map<String, String> o = new HashMap<>();
        o.put("table.secret-store.p11kms.endpoint", "unix:/run/p11kms/p11kms.sock");
        o.put("namespace", "flink");
        o.put("table.secret-store.kind", "p11kms");
        P11kmsOptions p = P11kmsOptions.of(o);
        check(p.get("endpoint").equals("unix:/run/p11kms/p11kms.sock") && p.get("namespace").equals("flink"),
                "full and stripped keys");
        check(p.region().equals("us-east-1"), "default region");
        Map<String, String> u = new HashMap<>(o);
        u.put("table.secret-store.p11kms.endpiont", "x");
        throwsIae(() -> P11kmsOptions.of(u), "unknown option 'table.secret-store.p11kms.endpiont'", "typo refused");
        Map<String, String> twice = new HashMap<>(o);
        twice.put("endpoint", "unix:/x");
        throwsIae(() -> P11kmsOptions.of(twice), "given twice", "same option twice");
        Map<String, String> h = new HashMap<>();
        h.put("endpoint", "https://127.0.0.1:8443");
        throwsIae(() -> P11kmsOptions.of(h), "needs 'access-key-id'", "https without credentials");
        h.put("endpoint", "http://127.0.0.1:8443");
        throwsIae(() -> P11kmsOptions.of(h), "endpoint must be", "plain http refused");
        Map<String, String> ns = new HashMap<>(o);
        ns.put("namespace", "a/b");
        throwsIae(() -> P11kmsOptions.of(ns), "namespace must be", "namespace with a slash");
        throwsIae(() -> P11kmsOptions.of(new HashMap<>()), "'endpoint' is required", "no endpoint");
    }
}
