package org.p11kms.flink.client;

import java.io.ByteArrayOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;

/** HTTP/1.1 on a byte stream: one request out, one response in (Content-Length, chunked or until close). */
public final class HttpWire {
    static final int MAX_HEADER_LINE = 16 * 1024;
    static final int MAX_HEADERS = 100;
    static final int MAX_BODY = 16 * 1024 * 1024;

    private HttpWire() {
    }

    /** A parsed response; header names are lowercase. */
    public static final class Response {
        public final int status;
        public final Map<String, String> headers;
        public final byte[] body;
        /** False when the server said Connection: close or the body ran to end of stream. */
        public final boolean reusable;

        Response(int status, Map<String, String> headers, byte[] body, boolean reusable) {
            this.status = status;
            this.headers = headers;
            this.body = body;
            this.reusable = reusable;
        }

        public String bodyText() {
            return new String(body, StandardCharsets.UTF_8);
        }
    }

    /** Writes a POST / with the given headers (names as given), Content-Length and the body. */
    public static void writeRequest(OutputStream out, Map<String, String> headers, byte[] body) throws IOException {
        StringBuilder b = new StringBuilder("POST / HTTP/1.1\r\n");
        for (Map.Entry<String, String> e : headers.entrySet()) {
            b.append(e.getKey()).append(": ").append(e.getValue()).append("\r\n");
        }
        b.append("Content-Length: ").append(body.length).append("\r\n\r\n");
        out.write(b.toString().getBytes(StandardCharsets.ISO_8859_1));
        out.write(body);
        out.flush();
    }

    /** Reads one response. in must be buffered (this reads byte by byte for the head). */
    public static Response readResponse(InputStream in) throws IOException {
        String status = line(in, true);
        if (!status.startsWith("HTTP/1.") || status.length() < 12 || status.charAt(8) != ' ') {
            throw new IOException("p11kms: malformed HTTP status line");
        }
        int code;
        try {
            code = Integer.parseInt(status.substring(9, 12));
        } catch (NumberFormatException e) {
            throw new IOException("p11kms: malformed HTTP status code");
        }
        Map<String, String> headers = new TreeMap<>();
        for (int n = 0;; n++) {
            String h = line(in, false);
            if (h.isEmpty()) {
                break;
            }
            int colon = h.indexOf(':');
            if (colon <= 0 || n >= MAX_HEADERS) {
                throw new IOException("p11kms: malformed HTTP header");
            }
            String name = h.substring(0, colon).trim().toLowerCase(Locale.ROOT);
            String value = h.substring(colon + 1).trim();
            headers.merge(name, value, (a, v) -> a + ", " + v);
        }
        boolean close = "close".equalsIgnoreCase(headers.get("connection")) || status.startsWith("HTTP/1.0");
        String te = headers.get("transfer-encoding");
        String cl = headers.get("content-length");
        byte[] body;
        if (te != null && te.toLowerCase(Locale.ROOT).endsWith("chunked")) {
            body = chunked(in);
        } else if (cl != null) {
            long len;
            try {
                len = Long.parseLong(cl);
            } catch (NumberFormatException e) {
                throw new IOException("p11kms: malformed Content-Length");
            }
            if (len < 0 || len > MAX_BODY) {
                throw new IOException("p11kms: response body too large");
            }
            body = in.readNBytes((int) len);
            if (body.length != len) {
                throw new EOFException("p11kms: connection closed inside the response body");
            }
        } else if (code == 204 || code == 304 || code / 100 == 1) {
            body = new byte[0];
        } else {
            body = toEnd(in);
            close = true;
        }
        return new Response(code, headers, body, !close);
    }

    private static byte[] chunked(InputStream in) throws IOException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        for (;;) {
            String sz = line(in, false);
            int semi = sz.indexOf(';');
            if (semi >= 0) {
                sz = sz.substring(0, semi);
            }
            long n;
            try {
                n = Long.parseLong(sz.trim(), 16);
            } catch (NumberFormatException e) {
                throw new IOException("p11kms: malformed chunk size");
            }
            if (n < 0 || out.size() + n > MAX_BODY) {
                throw new IOException("p11kms: response body too large");
            }
            if (n == 0) {
                while (!line(in, false).isEmpty()) {
                    /* trailers: ignored */
                }
                return out.toByteArray();
            }
            byte[] chunk = in.readNBytes((int) n);
            if (chunk.length != n) {
                throw new EOFException("p11kms: connection closed inside a chunk");
            }
            out.write(chunk);
            if (!line(in, false).isEmpty()) {
                throw new IOException("p11kms: malformed chunk end");
            }
        }
    }

    private static byte[] toEnd(InputStream in) throws IOException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        byte[] buf = new byte[8192];
        for (int n; (n = in.read(buf)) > 0;) {
            if (out.size() + n > MAX_BODY) {
                throw new IOException("p11kms: response body too large");
            }
            out.write(buf, 0, n);
        }
        return out.toByteArray();
    }

    /** One CRLF-terminated line (a bare LF is accepted). first: EOF before any byte means a closed connection. */
    private static String line(InputStream in, boolean first) throws IOException {
        StringBuilder b = new StringBuilder();
        for (;;) {
            int c = in.read();
            if (c < 0) {
                throw new EOFException(first && b.length() == 0 ? "p11kms: connection closed by the server"
                        : "p11kms: connection closed inside the response head");
            }
            if (c == '\n') {
                int len = b.length();
                if (len > 0 && b.charAt(len - 1) == '\r') {
                    b.setLength(len - 1);
                }
                return b.toString();
            }
            if (b.length() >= MAX_HEADER_LINE) {
                throw new IOException("p11kms: HTTP header line too long");
            }
            b.append((char) c);
        }
    }
}
