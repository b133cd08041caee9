package org.p11kms.flink.client;

import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * The store's options. Flink hands them over prefix-stripped ("endpoint"); the
 * full keys ("table.secret-store.p11kms.endpoint") are accepted too.
 */
public final class P11kmsOptions {
    public static final String PREFIX = "table.secret-store.p11kms.";
    public static final String ENDPOINT = "endpoint";
    public static final String CA_FILE = "ca-file";
    public static final String ACCESS_KEY_ID = "access-key-id";
    public static final String SECRET_ACCESS_KEY_FILE = "secret-access-key-file";
    public static final String KEY = "key";
    public static final String NAMESPACE = "namespace";
    public static final String REGION = "region";
    public static final String DEFAULT_REGION = "us-east-1";
    public static final List<String> ALL = Arrays.asList(ENDPOINT, CA_FILE, ACCESS_KEY_ID, SECRET_ACCESS_KEY_FILE,
            KEY, NAMESPACE, REGION);

    private final Map<String, String> values;

    private P11kmsOptions(Map<String, String> values) {
        this.values = values;
    }

    /** Normalises and checks the options; unknown ones are refused so that typos do not go unnoticed. */
    public static P11kmsOptions of(Map<String, String> raw) {
        Map<String, String> v = new TreeMap<>();
        for (Map.Entry<String, String> e : raw.entrySet()) {
            String k = e.getKey();
            if (k.equals("table.secret-store.kind")) {
                continue;
            }
            if (k.startsWith(PREFIX)) {
                k = k.substring(PREFIX.length());
            }
            if (!ALL.contains(k)) {
                throw new IllegalArgumentException("p11kms: unknown option '" + e.getKey() + "' (known: "
                        + String.join(", ", ALL) + ")");
            }
            if (v.put(k, e.getValue()) != null) {
                throw new IllegalArgumentException("p11kms: option '" + k + "' given twice");
            }
        }
        String ep = v.get(ENDPOINT);
        if (ep == null || ep.isEmpty()) {
            throw new IllegalArgumentException("p11kms: option 'endpoint' is required "
                    + "(unix:/run/p11kms/p11kms.sock or https://HOST:PORT)");
        }
        if (ep.startsWith("https://")) {
            if (v.get(ACCESS_KEY_ID) == null || v.get(SECRET_ACCESS_KEY_FILE) == null) {
                throw new IllegalArgumentException("p11kms: an https endpoint needs 'access-key-id' and "
                        + "'secret-access-key-file'");
            }
        } else if (!ep.startsWith("unix:/")) {
            throw new IllegalArgumentException("p11kms: endpoint must be unix:/ABSOLUTE/PATH or https://HOST:PORT");
        }
        String ns = v.get(NAMESPACE);
        if (ns != null && !ns.matches("[A-Za-z0-9_.-]{1,64}")) {
            throw new IllegalArgumentException("p11kms: namespace must be 1 to 64 of A-Z a-z 0-9 _ . -");
        }
        return new P11kmsOptions(v);
    }

    public String get(String name) {
        return values.get(name);
    }

    public String region() {
        return values.getOrDefault(REGION, DEFAULT_REGION);
    }
}
