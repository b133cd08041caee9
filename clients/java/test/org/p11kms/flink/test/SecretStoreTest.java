package org.p11kms.flink.test;

import java.io.FileInputStream;
import java.io.InputStream;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.flink.configuration.ReadableConfig;
import org.apache.flink.table.secret.SecretStore;
import org.apache.flink.table.secret.SecretStoreFactory;
import org.apache.flink.table.secret.exceptions.SecretException;
import org.apache.flink.table.secret.exceptions.SecretNotFoundException;
import org.p11kms.flink.P11kmsSecretStore;
import org.p11kms.flink.P11kmsSecretStoreFactory;
import org.p11kms.flink.client.DataKey;
import org.p11kms.flink.client.P11kmsAccessDeniedException;
import org.p11kms.flink.client.P11kmsClient;
import org.p11kms.flink.client.P11kmsException;

/**
 * Against a real p11kmsd (tests/cli/java.sh): java SecretStoreTest probe|run FILE.
 * FILE is a properties file (never the command line) with unix_endpoint,
 * https_endpoint, ca_file, opr_akid, opr_secret_file, adm_akid, adm_secret_file,
 * marker (every secret value contains it, so the script can grep for leaks) and
 * optionally kms_key and region (of the SigV4 scope). Never prints a secret value. Exit 0 ok, 1 failed, 77 skip.
 */
public final class SecretStoreTest {
    private static Properties p;
    private static String marker;

    private SecretStoreTest() {
    }

    public static void main(String[] args) throws Exception {
        p = new Properties();
        try (InputStream in = new FileInputStream(args[1])) {
            p.load(in);
        }
        marker = p.getProperty("marker");
        if (args[0].equals("probe")) {
            System.exit(probe());
        }
        unixRoundTrip();
        httpsRoundTrip();
        noTornReads();
        adminDenied();
        dataKeys();
        System.out.println("SecretStoreTest: " + UnitTest.passedCount() + " passed, " + UnitTest.failedCount()
                + " failed");
        System.exit(UnitTest.failedCount() == 0 ? 0 : 1);
    }

    static Map<String, String> unixOptions() {
        Map<String, String> o = new HashMap<>();
        o.put("table.secret-store.kind", "p11kms");
        o.put("table.secret-store.p11kms.endpoint", p.getProperty("unix_endpoint"));
        o.put("table.secret-store.p11kms.namespace", "jtest");
        return o;
    }

    static Map<String, String> httpsOptions(String who) {
        Map<String, String> o = new HashMap<>();
        o.put("endpoint", p.getProperty("https_endpoint"));
        o.put("ca-file", p.getProperty("ca_file"));
        o.put("access-key-id", p.getProperty(who + "_akid"));
        o.put("secret-access-key-file", p.getProperty(who + "_secret_file"));
        if (p.getProperty("region") != null) {
            o.put("region", p.getProperty("region"));
        }
        return o;
    }

    /** 77 when the daemon does not serve secretsmanager.* yet. */
    static int probe() {
        try (P11kmsClient c = P11kmsClient.create(unixOptions())) {
            Map<String, String> m = new HashMap<>();
            m.put("probe", "probe");
            c.removeSecret(c.storeSecret(m));
            return 0;
        } catch (P11kmsException e) {
            if (e.getErrorType().contains("UnsupportedOperation") || e.getErrorType().contains("UnknownOperation")) {
                System.out.println("p11kmsd does not serve secretsmanager.* yet: " + e.getMessage());
                return 77;
            }
            System.out.println("FAIL: probe CreateSecret: " + e.getMessage());
            return 1;
        }
    }

    static Map<String, String> map(String... kv) {
        Map<String, String> m = new LinkedHashMap<>();
        for (int i = 0; i < kv.length; i += 2) {
            m.put(kv[i], kv[i + 1]);
        }
        return m;
    }

    /** The FLIP-529 contract on one store. */
    static void roundTrip(P11kmsSecretStore s, String how) throws Exception {
        Map<String, String> v1 = map("user", "flink", "password", "pw1-" + marker, "quote", "\"\\\n\u00e9\ud83d\ude00");
        String id = s.storeSecret(v1);
        UnitTest.check(id != null && !id.isEmpty(), how + ": storeSecret returns an id");
        UnitTest.check(s.getSecret(id).equals(v1), how + ": getSecret returns the stored map");
        Map<String, String> v2 = map("password", "pw2-" + marker);
        s.updateSecret(id, v2);
        UnitTest.check(s.getSecret(id).equals(v2), how + ": updateSecret replaces the whole map");
        s.removeSecret(id);
        try {
            s.getSecret(id);
            UnitTest.check(false, how + ": getSecret after removeSecret");
        } catch (SecretNotFoundException e) {
            UnitTest.check(e.getMessage().equals("p11kms: secret " + id + " not found"), how + ": not found message");
        }
        try {
            s.updateSecret(id, v2);
            UnitTest.check(false, how + ": updateSecret of a removed secret");
        } catch (SecretNotFoundException e) {
            UnitTest.check(true, how);
        }
        try {
            s.getSecret("jtest/no-such-secret");
            UnitTest.check(false, how + ": unknown id");
        } catch (SecretNotFoundException e) {
            UnitTest.check(true, how);
        }
    }

    /** Through the factory, as Flink does it, from a Map of table.secret-store.p11kms.* options. */
    static void unixRoundTrip() throws Exception {
        P11kmsSecretStoreFactory f = new P11kmsSecretStoreFactory();
        UnitTest.check(f.factoryIdentifier().equals("p11kms"), "factory identifier");
        f.open(new SecretStoreFactory.Context() {
            @Override
            public Map<String, String> getOptions() {
                return unixOptions();
            }

            @Override
            public ReadableConfig getConfiguration() {
                return null;
            }

            @Override
            public ClassLoader getClassLoader() {
                return SecretStoreTest.class.getClassLoader();
            }
        });
        SecretStore s = f.createSecretStore();
        roundTrip((P11kmsSecretStore) s, "unix");
        String id = ((P11kmsSecretStore) s).storeSecret(map("k", "v-" + marker));
        UnitTest.check(id.startsWith("jtest/"), "namespace prefix in the generated name");
        ((P11kmsSecretStore) s).removeSecret(id);
        f.close();
        UnitTest.log("unix socket round trip through the factory");
    }

    static void httpsRoundTrip() throws Exception {
        try (P11kmsSecretStore s = P11kmsSecretStore.fromOptions(httpsOptions("opr"))) {
            roundTrip(s, "https");
        }
        UnitTest.log("https round trip with SigV4");
    }

    /** 16 threads on one store: 4 update, 12 read; every read is a whole map some writer wrote. */
    static void noTornReads() throws Exception {
        try (P11kmsSecretStore s = P11kmsSecretStore.fromOptions(unixOptions())) {
            Set<String> written = ConcurrentHashMap.newKeySet();
            written.add("0");
            String id = s.storeSecret(gen("0"));
            long end = System.nanoTime() + Long.parseLong(p.getProperty("torn_seconds", "3")) * 1_000_000_000L;
            AtomicInteger torn = new AtomicInteger();
            AtomicInteger errors = new AtomicInteger();
            AtomicLong reads = new AtomicLong();
            AtomicLong writes = new AtomicLong();
            Thread[] t = new Thread[16];
            for (int i = 0; i < t.length; i++) {
                final int n = i;
                t[i] = new Thread(() -> {
                    int k = 0;
                    while (System.nanoTime() < end) {
                        try {
                            if (n < 4) {
                                String g = n + "." + k++;
                                written.add(g);
                                s.updateSecret(id, gen(g));
                                writes.incrementAndGet();
                            } else {
                                Map<String, String> m = s.getSecret(id);
                                String g = m.get("gen");
                                if (g == null || !written.contains(g) || !m.equals(gen(g))) {
                                    torn.incrementAndGet();
                                }
                                reads.incrementAndGet();
                            }
                        } catch (Exception e) {
                            if (errors.getAndIncrement() < 3) {
                                System.out.println("thread " + n + ": " + e);
                            }
                        }
                    }
                });
                t[i].start();
            }
            for (Thread x : t) {
                x.join();
            }
            UnitTest.check(torn.get() == 0, "torn reads: " + torn.get());
            UnitTest.check(errors.get() == 0, "errors under concurrency: " + errors.get());
            UnitTest.check(reads.get() > 0 && writes.get() > 0, "threads made progress");
            if (torn.get() == 0 && errors.get() == 0) {
                UnitTest.log("16 threads: " + reads.get() + " reads, " + writes.get() + " updates, no torn read");
            }
            s.removeSecret(id);
        }
    }

    static Map<String, String> gen(String g) {
        return map("gen", g, "user", "u-" + g, "password", "pw-" + g + "-" + marker, "url", "jdbc://h/" + g);
    }

    /** The operator reads; the administrator's credentials are denied with AccessDeniedException. */
    static void adminDenied() throws Exception {
        try (P11kmsSecretStore opr = P11kmsSecretStore.fromOptions(httpsOptions("opr"));
             P11kmsSecretStore adm = P11kmsSecretStore.fromOptions(httpsOptions("adm"))) {
            Map<String, String> v = map("password", "adm-" + marker);
            String id = opr.storeSecret(v);
            UnitTest.check(opr.getSecret(id).equals(v), "operator reads the secret");
            try {
                adm.getSecret(id);
                UnitTest.check(false, "administrator read a secret");
            } catch (SecretException e) {
                UnitTest.check(e.getCause() instanceof P11kmsAccessDeniedException
                        && e.getMessage().startsWith("p11kms: AccessDeniedException: ")
                        && !e.getMessage().contains(marker), "administrator denied clearly: " + e.getMessage());
            }
            opr.removeSecret(id);
        }
        UnitTest.log("operator reads, administrator denied");
    }

    /** GenerateDataKey / Decrypt for checkpoint code, when the script named a key. */
    static void dataKeys() {
        String key = p.getProperty("kms_key");
        if (key == null) {
            return;
        }
        Map<String, String> ctx = map("flink:job", "j1");
        try (P11kmsSecretStore s = P11kmsSecretStore.fromOptions(unixOptions());
             DataKey dk = s.generateDataKey(key, ctx)) {
            byte[] pt = s.decrypt(dk.ciphertext(), ctx);
            UnitTest.check(pt.length == 32 && Arrays.equals(pt, dk.plaintext()), "data key round trip");
            Arrays.fill(pt, (byte) 0);
            try {
                s.decrypt(dk.ciphertext(), map("flink:job", "other"));
                UnitTest.check(false, "decrypt with another context");
            } catch (P11kmsException e) {
                UnitTest.check(true, "context bound");
            }
        }
        UnitTest.log("GenerateDataKey and Decrypt");
    }
}
