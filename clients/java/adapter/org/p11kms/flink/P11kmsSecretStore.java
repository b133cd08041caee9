package org.p11kms.flink;

import java.util.Map;
import org.apache.flink.table.secret.ReadableSecretStore;
import org.apache.flink.table.secret.WritableSecretStore;
import org.apache.flink.table.secret.exceptions.SecretException;
import org.apache.flink.table.secret.exceptions.SecretNotFoundException;
import org.p11kms.flink.client.DataKey;
import org.p11kms.flink.client.P11kmsClient;
import org.p11kms.flink.client.P11kmsException;
import org.p11kms.flink.client.P11kmsNotFoundException;

/**
 * Flink's FLIP-529 secret store backed by p11kmsd: secrets are sealed by the
 * HSM's keys and read through the daemon's Secrets Manager protocol. One
 * instance is shared by all threads of a TaskManager.
 */
public final class P11kmsSecretStore implements ReadableSecretStore, WritableSecretStore, AutoCloseable {
    private final P11kmsClient client;

    public P11kmsSecretStore(P11kmsClient client) {
        this.client = client;
    }

    /** A store from options, full ("table.secret-store.p11kms.endpoint") or prefix-stripped ("endpoint"). */
    public static P11kmsSecretStore fromOptions(Map<String, String> options) {
        try {
            return new P11kmsSecretStore(P11kmsClient.create(options));
        } catch (IllegalArgumentException e) {
            throw new SecretException(e.getMessage(), e);
        }
    }

    @Override
    public Map<String, String> getSecret(String secretId) throws SecretNotFoundException {
        try {
            return client.getSecret(secretId);
        } catch (P11kmsNotFoundException e) {
            throw new SecretNotFoundException("p11kms: secret " + secretId + " not found", e);
        } catch (P11kmsException | IllegalArgumentException e) {
            throw new SecretException(e.getMessage(), e);
        }
    }

    @Override
    public String storeSecret(Map<String, String> secretData) throws SecretException {
        try {
            return client.storeSecret(secretData);
        } catch (P11kmsException | IllegalArgumentException e) {
            throw new SecretException(e.getMessage(), e);
        }
    }

    @Override
    public void removeSecret(String secretId) throws SecretException {
        try {
            client.removeSecret(secretId);
        } catch (P11kmsException e) {
            throw new SecretException(e.getMessage(), e);
        }
    }

    @Override
    public void updateSecret(String secretId, Map<String, String> newSecretData)
            throws SecretNotFoundException, SecretException {
        try {
            client.updateSecret(secretId, newSecretData);
        } catch (P11kmsNotFoundException e) {
            throw new SecretNotFoundException("p11kms: secret " + secretId + " not found", e);
        } catch (P11kmsException | IllegalArgumentException e) {
            throw new SecretException(e.getMessage(), e);
        }
    }

    /** For checkpoint code: a fresh data key; clear its plaintext when done. */
    public DataKey generateDataKey(String keyId, Map<String, String> context) {
        return client.generateDataKey(keyId, context);
    }

    /** For checkpoint code: the data key's plaintext; the caller must clear the array. */
    public byte[] decrypt(byte[] ciphertext, Map<String, String> context) {
        return client.decrypt(ciphertext, context);
    }

    /** The core client, for callers that want its exceptions rather than Flink's. */
    public P11kmsClient client() {
        return client;
    }

    @Override
    public void close() {
        client.close();
    }
}
