package org.p11kms.flink.client;

import java.util.Arrays;

/**
 * A data key from GenerateDataKey. The plaintext is the caller's to clear
 * ({@link #clear}, or try-with-resources) as soon as it has keyed its cipher.
 */
public final class DataKey implements AutoCloseable {
    private final byte[] plaintext;
    private final byte[] ciphertext;
    private final String keyId;

    DataKey(byte[] plaintext, byte[] ciphertext, String keyId) {
        this.plaintext = plaintext;
        this.ciphertext = ciphertext;
        this.keyId = keyId;
    }

    /** The key bytes themselves (not a copy): clear them when done. */
    public byte[] plaintext() {
        return plaintext;
    }

    /** The encrypted data key to store beside the data; give it to decrypt() later. */
    public byte[] ciphertext() {
        return ciphertext.clone();
    }

    /** The ARN of the CMK that encrypted the data key. */
    public String keyId() {
        return keyId;
    }

    /** Zeroes the plaintext key. */
    public void clear() {
        Arrays.fill(plaintext, (byte) 0);
    }

    @Override
    public void close() {
        clear();
    }
}
