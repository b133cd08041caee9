package org.p11kms.flink.client;

import java.nio.charset.StandardCharsets;
import java.security.GeneralSecurityException;
import java.security.MessageDigest;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;
import java.util.SortedMap;
import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;

/**
 * AWS Signature Version 4, header form (AWS4-HMAC-SHA256), with javax.crypto.
 * The secret is held as the bytes of "AWS4"+secret and wiped by {@link #destroy};
 * the derived signing key is cached per (date, service).
 */
public final class SigV4 {
    private final String accessKeyId;
    private final String region;
    private byte[] kSecret; /* "AWS4" + secret access key, UTF-8 */
    private final Map<String, byte[]> signingKeys = new HashMap<>();

    /** Copies secret; the caller may wipe its array afterwards. */
    public SigV4(String accessKeyId, byte[] secret, String region) {
        this.accessKeyId = accessKeyId;
        this.region = region;
        kSecret = new byte[4 + secret.length];
        System.arraycopy("AWS4".getBytes(StandardCharsets.US_ASCII), 0, kSecret, 0, 4);
        System.arraycopy(secret, 0, kSecret, 4, secret.length);
    }

    /**
     * The Authorization header value. headers maps lowercase names to values and
     * must hold host and x-amz-date; all of them are signed.
     */
    public String authorization(String method, String path, String query, SortedMap<String, String> headers,
                                byte[] body, String amzDate, String service) {
        String date = amzDate.substring(0, 8);
        String scope = date + "/" + region + "/" + service + "/aws4_request";
        String canonical = canonicalRequest(method, path, query, headers, body);
        String toSign = "AWS4-HMAC-SHA256\n" + amzDate + "\n" + scope + "\n" + hex(sha256(utf8(canonical)));
        byte[] sig = hmac(signingKey(date, service), utf8(toSign));
        return "AWS4-HMAC-SHA256 Credential=" + accessKeyId + "/" + scope + ", SignedHeaders="
                + String.join(";", headers.keySet()) + ", Signature=" + hex(sig);
    }

    /** The canonical request (values trimmed, inner runs of spaces folded). */
    public static String canonicalRequest(String method, String path, String query,
                                          SortedMap<String, String> headers, byte[] body) {
        StringBuilder b = new StringBuilder();
        b.append(method).append('\n').append(path).append('\n').append(query).append('\n');
        for (Map.Entry<String, String> e : headers.entrySet()) {
            b.append(e.getKey()).append(':').append(e.getValue().trim().replaceAll(" +", " ")).append('\n');
        }
        b.append('\n').append(String.join(";", headers.keySet())).append('\n');
        b.append(hex(sha256(body)));
        return b.toString();
    }

    private synchronized byte[] signingKey(String date, String service) {
        if (kSecret == null) {
            throw new IllegalStateException("p11kms: the client is closed");
        }
        String k = date + "/" + service;
        byte[] key = signingKeys.get(k);
        if (key == null) {
            /* Keys of other days are never used again: wipe them. */
            for (byte[] old : signingKeys.values()) {
                Arrays.fill(old, (byte) 0);
            }
            signingKeys.clear();
            byte[] kDate = hmac(kSecret, utf8(date));
            byte[] kRegion = hmac(kDate, utf8(region));
            byte[] kService = hmac(kRegion, utf8(service));
            key = hmac(kService, utf8("aws4_request"));
            Arrays.fill(kDate, (byte) 0);
            Arrays.fill(kRegion, (byte) 0);
            Arrays.fill(kService, (byte) 0);
            signingKeys.put(k, key);
        }
        return key;
    }

    /** Wipes the secret and the cached signing keys. */
    public synchronized void destroy() {
        if (kSecret != null) {
            Arrays.fill(kSecret, (byte) 0);
            kSecret = null;
        }
        for (byte[] old : signingKeys.values()) {
            Arrays.fill(old, (byte) 0);
        }
        signingKeys.clear();
    }

    static byte[] hmac(byte[] key, byte[] data) {
        try {
            Mac mac = Mac.getInstance("HmacSHA256");
            mac.init(new SecretKeySpec(key, "HmacSHA256"));
            return mac.doFinal(data);
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException("HmacSHA256 unavailable", e);
        }
    }

    static byte[] sha256(byte[] data) {
        try {
            return MessageDigest.getInstance("SHA-256").digest(data);
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException("SHA-256 unavailable", e);
        }
    }

    private static byte[] utf8(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    static String hex(byte[] b) {
        StringBuilder s = new StringBuilder(b.length * 2);
        for (byte x : b) {
            s.append(Character.forDigit((x >> 4) & 15, 16)).append(Character.forDigit(x & 15, 16));
        }
        return s.toString();
    }
}
