package org.p11kms.flink.client;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.SocketTimeoutException;
import java.nio.ByteBuffer;
import java.nio.channels.SelectionKey;
import java.nio.channels.Selector;
import java.nio.channels.SocketChannel;

/**
 * Streams over a non-blocking Unix socket channel with a read and write
 * timeout: the JDK has no SO_TIMEOUT for Unix sockets, and a hung daemon must
 * not hang every Flink thread.
 */
final class UnixStreams implements java.io.Closeable {
    private final SocketChannel ch;
    private final Selector selector;
    private final long timeoutMs;
    final InputStream in;
    final OutputStream out;

    UnixStreams(SocketChannel ch, long timeoutMs) throws IOException {
        this.ch = ch;
        this.timeoutMs = timeoutMs;
        ch.configureBlocking(false);
        selector = Selector.open();
        in = new InputStream() {
            @Override
            public int read() throws IOException {
                byte[] b = new byte[1];
                return read(b, 0, 1) < 0 ? -1 : b[0] & 0xff;
            }

            @Override
            public int read(byte[] b, int off, int len) throws IOException {
                if (len == 0) {
                    return 0;
                }
                ByteBuffer buf = ByteBuffer.wrap(b, off, len);
                for (;;) {
                    int n = ch.read(buf);
                    if (n != 0) {
                        return n;
                    }
                    await(SelectionKey.OP_READ);
                }
            }
        };
        out = new OutputStream() {
            @Override
            public void write(int b) throws IOException {
                write(new byte[] {(byte) b}, 0, 1);
            }

            @Override
            public void write(byte[] b, int off, int len) throws IOException {
                ByteBuffer buf = ByteBuffer.wrap(b, off, len);
                while (buf.hasRemaining()) {
                    if (ch.write(buf) == 0) {
                        await(SelectionKey.OP_WRITE);
                    }
                }
            }
        };
    }

    private void await(int op) throws IOException {
        SelectionKey key = ch.register(selector, op);
        try {
            if (selector.select(timeoutMs) == 0) {
                throw new SocketTimeoutException("no answer from p11kmsd within " + timeoutMs + " ms");
            }
        } finally {
            key.interestOps(0);
            selector.selectedKeys().clear();
        }
    }

    @Override
    public void close() throws IOException {
        try {
            selector.close();
        } finally {
            ch.close();
        }
    }
}
