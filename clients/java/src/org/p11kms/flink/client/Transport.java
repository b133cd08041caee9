package org.p11kms.flink.client;

import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
import java.io.Closeable;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.URI;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.SocketChannel;
import java.nio.file.Path;
import java.time.ZoneOffset;
import java.time.ZonedDateTime;
import java.time.format.DateTimeFormatter;
import java.util.ArrayDeque;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.TreeMap;
import javax.net.ssl.SSLParameters;
import javax.net.ssl.SSLSocket;
import javax.net.ssl.SSLSocketFactory;

/**
 * POSTs JSON 1.1 requests to p11kmsd over a Unix socket or HTTPS, on a small
 * pool of keep-alive connections shared by all threads. HTTPS requests are
 * signed with SigV4; on the Unix socket the daemon authenticates the peer uid.
 */
final class Transport implements Closeable {
    static final int MAX_IDLE = 8;
    /* A connection idle longer than this may have been closed by the daemon: drop it. */
    static final long MAX_IDLE_NANOS = 15_000_000_000L;
    static final int CONNECT_TIMEOUT_MS = 10_000;
    /* How long to wait for the daemon's answer; the system property is for tests and slow HSMs. */
    static final String READ_TIMEOUT_PROPERTY = "p11kms.flink.read-timeout-ms";
    static final long READ_TIMEOUT_MS = 60_000;
    private static final DateTimeFormatter AMZ_DATE = DateTimeFormatter.ofPattern("yyyyMMdd'T'HHmmss'Z'");

    private final Path unixPath;        /* set for unix: endpoints */
    private final URI https;            /* set for https: endpoints */
    private final SSLSocketFactory tls;
    private final SigV4 signer;         /* https only */
    private final String host;
    private final ArrayDeque<Conn> idle = new ArrayDeque<>();
    private boolean closed;

    private static final class Conn implements Closeable {
        final Closeable socket;
        final InputStream in;
        final OutputStream out;
        long idleSince;

        Conn(Closeable socket, InputStream in, OutputStream out) {
            this.socket = socket;
            this.in = new BufferedInputStream(in, 16384);
            this.out = new BufferedOutputStream(out, 16384);
        }

        @Override
        public void close() {
            try {
                socket.close();
            } catch (IOException ignored) {
                /* nothing to do */
            }
        }
    }

    Transport(Path unixPath) {
        this.unixPath = unixPath;
        this.https = null;
        this.tls = null;
        this.signer = null;
        this.host = "p11kmsd";
    }

    Transport(URI https, SSLSocketFactory tls, SigV4 signer) {
        this.unixPath = null;
        this.https = https;
        this.tls = tls;
        this.signer = signer;
        int port = https.getPort();
        this.host = port < 0 || port == 443 ? https.getHost() : https.getHost() + ":" + port;
    }

    /**
     * Sends one operation. Failed I/O on a connection is retried once, on a new
     * connection, only when idempotent (reads): a write may have been applied.
     */
    HttpWire.Response post(String target, String service, byte[] body, boolean idempotent) throws IOException {
        try {
            return once(target, service, body);
        } catch (IOException e) {
            if (!idempotent) {
                throw e;
            }
            return once(target, service, body);
        }
    }

    private HttpWire.Response once(String target, String service, byte[] body) throws IOException {
        Conn c = take();
        boolean ok = false;
        try {
            HttpWire.writeRequest(c.out, headers(target, service, body), body);
            HttpWire.Response r = HttpWire.readResponse(c.in);
            ok = r.reusable;
            return r;
        } finally {
            if (ok) {
                give(c);
            } else {
                c.close();
            }
        }
    }

    private Map<String, String> headers(String target, String service, byte[] body) {
        Map<String, String> h = new LinkedHashMap<>();
        h.put("Host", host);
        h.put("Content-Type", "application/x-amz-json-1.1");
        h.put("X-Amz-Target", target);
        h.put("Connection", "keep-alive");
        if (signer != null) {
            String date = ZonedDateTime.now(ZoneOffset.UTC).format(AMZ_DATE);
            h.put("X-Amz-Date", date);
            TreeMap<String, String> signed = new TreeMap<>();
            signed.put("content-type", "application/x-amz-json-1.1");
            signed.put("host", host);
            signed.put("x-amz-date", date);
            signed.put("x-amz-target", target);
            h.put("Authorization", signer.authorization("POST", "/", "", signed, body, date, service));
        }
        return h;
    }

    private Conn take() throws IOException {
        synchronized (this) {
            if (closed) {
                throw new IOException("p11kms: the client is closed");
            }
            long now = System.nanoTime();
            while (!idle.isEmpty()) {
                Conn c = idle.pollLast();
                if (now - c.idleSince < MAX_IDLE_NANOS) {
                    return c;
                }
                c.close();
            }
        }
        return open();
    }

    private void give(Conn c) {
        synchronized (this) {
            if (!closed && idle.size() < MAX_IDLE) {
                c.idleSince = System.nanoTime();
                idle.addLast(c);
                return;
            }
        }
        c.close();
    }

    private Conn open() throws IOException {
        if (unixPath != null) {
            SocketChannel ch = SocketChannel.open(UnixDomainSocketAddress.of(unixPath));
            try {
                UnixStreams u = new UnixStreams(ch, readTimeoutMs());
                return new Conn(u, u.in, u.out);
            } catch (IOException e) {
                ch.close();
                throw e;
            }
        }
        int port = https.getPort() < 0 ? 443 : https.getPort();
        Socket raw = new Socket();
        try {
            raw.connect(new InetSocketAddress(https.getHost(), port), CONNECT_TIMEOUT_MS);
            raw.setSoTimeout((int) readTimeoutMs());
            raw.setTcpNoDelay(true);
            SSLSocket s = (SSLSocket) tls.createSocket(raw, https.getHost(), port, true);
            SSLParameters p = s.getSSLParameters();
            p.setEndpointIdentificationAlgorithm("HTTPS"); /* the name or IP must match the certificate */
            p.setProtocols(new String[] {"TLSv1.3", "TLSv1.2"});
            s.setSSLParameters(p);
            s.startHandshake();
            return new Conn(s, s.getInputStream(), s.getOutputStream());
        } catch (IOException e) {
            raw.close();
            throw e;
        }
    }

    static long readTimeoutMs() {
        return Math.max(1, Long.getLong(READ_TIMEOUT_PROPERTY, READ_TIMEOUT_MS));
    }

    @Override
    public void close() {
        synchronized (this) {
            closed = true;
            for (Conn c : idle) {
                c.close();
            }
            idle.clear();
        }
        if (signer != null) {
            signer.destroy();
        }
    }
}
