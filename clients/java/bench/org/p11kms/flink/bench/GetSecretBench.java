package org.p11kms.flink.bench;

import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;
import org.p11kms.flink.client.P11kmsClient;

/**
 * getSecret rate and p99 from one JVM: java -cp p11kms-flink.jar:bench-classes
 * org.p11kms.flink.bench.GetSecretBench ENDPOINT [SECONDS] [THREADS] [key=value options...].
 * It stores one secret, reads it from THREADS threads (default 8) for SECONDS
 * (default 10, at most 300), removes it and prints the rate and latencies.
 */
public final class GetSecretBench {
    private GetSecretBench() {
    }

    public static void main(String[] args) throws Exception {
        if (args.length < 1) {
            System.err.println("usage: GetSecretBench ENDPOINT [SECONDS] [THREADS] [option=value...]");
            System.exit(2);
        }
        int seconds = Math.min(300, args.length > 1 ? Integer.parseInt(args[1]) : 10);
        int threads = args.length > 2 ? Integer.parseInt(args[2]) : 8;
        Map<String, String> o = new HashMap<>();
        o.put("endpoint", args[0]);
        for (int i = 3; i < args.length; i++) {
            int eq = args[i].indexOf('=');
            o.put(args[i].substring(0, eq), args[i].substring(eq + 1));
        }
        try (P11kmsClient c = P11kmsClient.create(o)) {
            Map<String, String> v = new HashMap<>();
            v.put("user", "bench");
            v.put("password", "bench-not-a-secret");
            String id = c.storeSecret(v);
            long[][] lat = new long[threads][];
            int[] n = new int[threads];
            long end = System.nanoTime() + seconds * 1_000_000_000L;
            Thread[] t = new Thread[threads];
            long start = System.nanoTime();
            for (int i = 0; i < threads; i++) {
                final int k = i;
                lat[k] = new long[1 << 16];
                t[i] = new Thread(() -> {
                    while (System.nanoTime() < end) {
                        long a = System.nanoTime();
                        c.getSecret(id);
                        long d = System.nanoTime() - a;
                        if (n[k] == lat[k].length) {
                            lat[k] = Arrays.copyOf(lat[k], n[k] * 2);
                        }
                        lat[k][n[k]++] = d;
                    }
                });
                t[i].start();
            }
            for (Thread x : t) {
                x.join();
            }
            double secs = (System.nanoTime() - start) / 1e9;
            c.removeSecret(id);
            int total = Arrays.stream(n).sum();
            if (total == 0) {
                System.err.println("GetSecretBench: no request completed");
                System.exit(1);
            }
            long[] all = new long[total];
            int off = 0;
            for (int i = 0; i < threads; i++) {
                System.arraycopy(lat[i], 0, all, off, n[i]);
                off += n[i];
            }
            Arrays.sort(all);
            System.out.printf("getSecret %s threads=%d: %d requests in %.1f s = %.0f/s, p50 %.3f ms, p99 %.3f ms%n",
                    args[0].startsWith("unix:") ? "unix" : "https", threads, total, secs, total / secs,
                    all[total / 2] / 1e6, all[(int) (total * 0.99)] / 1e6);
        }
    }
}
