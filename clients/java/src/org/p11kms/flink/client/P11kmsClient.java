package org.p11kms.flink.client;

import java.io.IOException;
import java.io.InputStream;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.nio.file.attribute.PosixFilePermission;
import java.security.GeneralSecurityException;
import java.security.KeyStore;
import java.security.cert.Certificate;
import java.security.cert.CertificateFactory;
import java.util.Arrays;
import java.util.Base64;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;
import java.util.UUID;
import javax.net.ssl.SSLContext;
import javax.net.ssl.TrustManagerFactory;

/**
 * The p11kmsd client without any Flink type: secrets through the daemon's
 * Secrets Manager JSON 1.1 operations, data keys through its KMS operations.
 * Thread-safe; one instance is meant to be shared by all threads of a JVM.
 */
public final class P11kmsClient implements AutoCloseable {
    private static final String SM = "secretsmanager";
    private static final String KMS = "kms";

    private final Transport transport;
    private final String key;
    private final String namespace;

    private P11kmsClient(Transport transport, String key, String namespace) {
        this.transport = transport;
        this.key = key;
        this.namespace = namespace;
    }

    /** Builds a client from the store's options (see {@link P11kmsOptions}). */
    public static P11kmsClient create(Map<String, String> options) {
        P11kmsOptions o = P11kmsOptions.of(options);
        String ep = o.get(P11kmsOptions.ENDPOINT);
        Transport t;
        if (ep.startsWith("unix:")) {
            t = new Transport(Paths.get(ep.substring("unix:".length())));
        } else {
            URI uri = URI.create(ep);
            if (uri.getHost() == null || !(uri.getPath() == null || uri.getPath().isEmpty() || uri.getPath().equals("/"))) {
                throw new IllegalArgumentException("p11kms: endpoint must be https://HOST:PORT with no path");
            }
            byte[] secret = readSecretFile(o.get(P11kmsOptions.SECRET_ACCESS_KEY_FILE));
            try {
                t = new Transport(uri, tlsContext(o.get(P11kmsOptions.CA_FILE)).getSocketFactory(),
                        new SigV4(o.get(P11kmsOptions.ACCESS_KEY_ID), secret, o.region()));
            } finally {
                Arrays.fill(secret, (byte) 0);
            }
        }
        return new P11kmsClient(t, o.get(P11kmsOptions.KEY), o.get(P11kmsOptions.NAMESPACE));
    }

    /** Reads the secret access key file (trailing whitespace dropped); refuses a world-readable file. */
    static byte[] readSecretFile(String file) {
        Path p = Paths.get(file);
        try {
            try {
                Set<PosixFilePermission> perms = Files.getPosixFilePermissions(p);
                if (perms.contains(PosixFilePermission.OTHERS_READ)) {
                    throw new IllegalArgumentException("p11kms: " + file + " is readable by others; chmod o-r it");
                }
            } catch (UnsupportedOperationException ignored) {
                /* not a POSIX file system */
            }
            byte[] b = Files.readAllBytes(p);
            int n = b.length;
            while (n > 0 && (b[n - 1] == '\n' || b[n - 1] == '\r' || b[n - 1] == ' ' || b[n - 1] == '\t')) {
                n--;
            }
            byte[] s = Arrays.copyOf(b, n);
            Arrays.fill(b, (byte) 0);
            if (n == 0) {
                throw new IllegalArgumentException("p11kms: " + file + " is empty");
            }
            return s;
        } catch (IOException e) {
            throw new IllegalArgumentException("p11kms: cannot read secret-access-key-file " + file + ": " + e, e);
        }
    }

    /** Trusts exactly the PEM certificates of caFile, or the JDK's default roots without one. */
    static SSLContext tlsContext(String caFile) {
        try {
            SSLContext ctx = SSLContext.getInstance("TLS");
            if (caFile == null) {
                ctx.init(null, null, null);
                return ctx;
            }
            KeyStore ks = KeyStore.getInstance(KeyStore.getDefaultType());
            ks.load(null, null);
            int i = 0;
            try (InputStream in = Files.newInputStream(Paths.get(caFile))) {
                for (Certificate c : CertificateFactory.getInstance("X.509").generateCertificates(in)) {
                    ks.setCertificateEntry("ca" + i++, c);
                }
            }
            if (i == 0) {
                throw new IllegalArgumentException("p11kms: ca-file " + caFile + " holds no certificate");
            }
            TrustManagerFactory tmf = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
            tmf.init(ks);
            ctx.init(null, tmf.getTrustManagers(), null);
            return ctx;
        } catch (IOException | GeneralSecurityException e) {
            throw new IllegalArgumentException("p11kms: cannot load ca-file " + caFile + ": " + e.getMessage(), e);
        }
    }

    /** The secret's map; P11kmsNotFoundException when there is no such secret. */
    public Map<String, String> getSecret(String id) {
        Map<String, Object> r = call(SM, "GetSecretValue", obj("SecretId", id), true);
        Object s = r.get("SecretString");
        if (!(s instanceof String)) {
            throw new P11kmsException("InvalidResponse", 200, "p11kms: GetSecretValue returned no SecretString", null);
        }
        return Json.parseStringMap((String) s);
    }

    /** A secret is a map of non-null strings: a null would not read back as the map written. */
    private static void checkMap(Map<String, String> data) {
        if (data == null) {
            throw new IllegalArgumentException("p11kms: secret data must not be null");
        }
        for (Map.Entry<String, String> e : data.entrySet()) {
            if (e.getKey() == null || e.getValue() == null) {
                throw new IllegalArgumentException("p11kms: secret data has a null "
                        + (e.getKey() == null ? "key" : "value for '" + e.getKey() + "'"));
            }
        }
    }

    /** Stores a new secret under a generated name ("NAMESPACE/UUID") and returns that id. */
    public String storeSecret(Map<String, String> data) {
        checkMap(data);
        String name = (namespace == null ? "" : namespace + "/") + UUID.randomUUID();
        Map<String, Object> req = obj("Name", name);
        req.put("SecretString", Json.write(data));
        req.put("ClientRequestToken", UUID.randomUUID().toString());
        if (key != null) {
            req.put("KmsKeyId", key);
        }
        Map<String, Object> r = call(SM, "CreateSecret", req, false);
        Object n = r.get("Name");
        return n instanceof String ? (String) n : name;
    }

    /** Replaces the whole map in one step on the daemon (PutSecretValue). */
    public void updateSecret(String id, Map<String, String> data) {
        checkMap(data);
        Map<String, Object> req = obj("SecretId", id);
        req.put("SecretString", Json.write(data));
        req.put("ClientRequestToken", UUID.randomUUID().toString());
        call(SM, "PutSecretValue", req, false);
    }

    /** Deletes the secret at once (no recovery window). */
    public void removeSecret(String id) {
        Map<String, Object> req = obj("SecretId", id);
        req.put("ForceDeleteWithoutRecovery", Boolean.TRUE);
        call(SM, "DeleteSecret", req, false);
    }

    /** The secret's metadata (DescribeSecret), never its value. */
    public Map<String, Object> describeSecret(String id) {
        return call(SM, "DescribeSecret", obj("SecretId", id), true);
    }

    /** A new AES-256 data key under keyId, bound to the encryption context. Clear its plaintext when done. */
    public DataKey generateDataKey(String keyId, Map<String, String> context) {
        Map<String, Object> req = obj("KeyId", keyId);
        req.put("KeySpec", "AES_256");
        if (context != null && !context.isEmpty()) {
            req.put("EncryptionContext", context);
        }
        Map<String, Object> r = call(KMS, "GenerateDataKey", req, false);
        return new DataKey(blob(r, "Plaintext"), blob(r, "CiphertextBlob"), (String) r.get("KeyId"));
    }

    /** Decrypts an encrypted data key (or other KMS ciphertext). The caller must clear the returned array. */
    public byte[] decrypt(byte[] ciphertext, Map<String, String> context) {
        Map<String, Object> req = obj("CiphertextBlob", Base64.getEncoder().encodeToString(ciphertext));
        if (context != null && !context.isEmpty()) {
            req.put("EncryptionContext", context);
        }
        return blob(call(KMS, "Decrypt", req, true), "Plaintext");
    }

    private static byte[] blob(Map<String, Object> r, String field) {
        Object v = r.get(field);
        if (!(v instanceof String)) {
            throw new P11kmsException("InvalidResponse", 200, "p11kms: response lacks " + field, null);
        }
        return Base64.getDecoder().decode((String) v);
    }

    private static Map<String, Object> obj(String k, Object v) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put(k, v);
        return m;
    }

    /** One operation; an AWS error becomes a P11kmsException named after its __type. */
    Map<String, Object> call(String service, String op, Map<String, Object> req, boolean idempotent) {
        String target = (service.equals(SM) ? "secretsmanager." : "TrentService.") + op;
        byte[] body = Json.write(req).getBytes(StandardCharsets.UTF_8);
        HttpWire.Response r;
        try {
            r = transport.post(target, service, body, idempotent);
        } catch (IOException e) {
            throw new P11kmsException("IOException", 0, "p11kms: " + op + ": " + e.getMessage(), e);
        } finally {
            Arrays.fill(body, (byte) 0);
        }
        Map<String, Object> parsed = parseBody(op, r);
        if (r.status == 200) {
            return parsed;
        }
        Object type = parsed.get("__type");
        String t = type instanceof String ? shortType((String) type) : "HTTP" + r.status;
        Object msg = parsed.containsKey("message") ? parsed.get("message") : parsed.get("Message");
        throw P11kmsException.of(t, r.status, msg instanceof String ? (String) msg : "HTTP status " + r.status);
    }

    private static Map<String, Object> parseBody(String op, HttpWire.Response r) {
        String text = r.bodyText();
        if (text.trim().isEmpty()) {
            return new LinkedHashMap<>();
        }
        try {
            Object v = Json.parse(text);
            if (v instanceof Map) {
                return Json.asObject(v);
            }
        } catch (IllegalArgumentException e) {
            /* fall through: reported without echoing the body */
        }
        throw new P11kmsException("InvalidResponse", r.status, "p11kms: " + op + ": HTTP " + r.status
                + " with a body that is not a JSON object", null);
    }

    /** "aws.protocoltests#Foo:http://..." → "Foo", as botocore does. */
    static String shortType(String t) {
        int colon = t.indexOf(':');
        if (colon >= 0) {
            t = t.substring(0, colon);
        }
        int hash = t.lastIndexOf('#');
        return hash >= 0 ? t.substring(hash + 1) : t;
    }

    /** Closes pooled connections and wipes the secret access key and its signing keys. */
    @Override
    public void close() {
        transport.close();
    }
}
