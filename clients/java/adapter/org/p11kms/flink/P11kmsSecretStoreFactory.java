package org.p11kms.flink;

import java.util.LinkedHashSet;
import java.util.Set;
import org.apache.flink.configuration.ConfigOption;
import org.apache.flink.configuration.ConfigOptions;
import org.apache.flink.table.catalog.exceptions.CatalogException;
import org.apache.flink.table.secret.SecretStore;
import org.apache.flink.table.secret.SecretStoreFactory;
import org.apache.flink.table.secret.exceptions.SecretException;
import org.p11kms.flink.client.P11kmsOptions;

/**
 * FLIP-529 factory "p11kms": table.secret-store.kind = p11kms, with its options
 * under table.secret-store.p11kms.* (Flink strips that prefix).
 */
public final class P11kmsSecretStoreFactory implements SecretStoreFactory {
    public static final String IDENTIFIER = "p11kms";

    public static final ConfigOption<String> ENDPOINT = ConfigOptions.key(P11kmsOptions.ENDPOINT).stringType()
            .noDefaultValue().withDescription("unix:/run/p11kms/p11kms.sock or https://HOST:PORT of p11kmsd");
    public static final ConfigOption<String> CA_FILE = ConfigOptions.key(P11kmsOptions.CA_FILE).stringType()
            .noDefaultValue().withDescription("PEM file of the CA that signed the daemon's certificate (https)");
    public static final ConfigOption<String> ACCESS_KEY_ID = ConfigOptions.key(P11kmsOptions.ACCESS_KEY_ID)
            .stringType().noDefaultValue().withDescription("SigV4 access key id (https)");
    public static final ConfigOption<String> SECRET_ACCESS_KEY_FILE = ConfigOptions
            .key(P11kmsOptions.SECRET_ACCESS_KEY_FILE).stringType().noDefaultValue()
            .withDescription("file holding the SigV4 secret access key (https)");
    public static final ConfigOption<String> KEY = ConfigOptions.key(P11kmsOptions.KEY).stringType()
            .noDefaultValue().withDescription("CMK (id, ARN or alias) that seals new secrets");
    public static final ConfigOption<String> NAMESPACE = ConfigOptions.key(P11kmsOptions.NAMESPACE).stringType()
            .noDefaultValue().withDescription("namespace: new secrets are named NAMESPACE/UUID");
    public static final ConfigOption<String> REGION = ConfigOptions.key(P11kmsOptions.REGION).stringType()
            .defaultValue(P11kmsOptions.DEFAULT_REGION).withDescription("region in the SigV4 scope (https)");

    private volatile P11kmsSecretStore store;

    @Override
    public String factoryIdentifier() {
        return IDENTIFIER;
    }

    @Override
    public Set<ConfigOption<?>> requiredOptions() {
        Set<ConfigOption<?>> s = new LinkedHashSet<>();
        s.add(ENDPOINT);
        return s;
    }

    @Override
    public Set<ConfigOption<?>> optionalOptions() {
        Set<ConfigOption<?>> s = new LinkedHashSet<>();
        s.add(CA_FILE);
        s.add(ACCESS_KEY_ID);
        s.add(SECRET_ACCESS_KEY_FILE);
        s.add(KEY);
        s.add(NAMESPACE);
        s.add(REGION);
        return s;
    }

    @Override
    public synchronized void open(Context context) throws SecretException {
        if (store != null) {
            throw new SecretException("p11kms: the secret store factory is already open");
        }
        store = P11kmsSecretStore.fromOptions(context.getOptions());
    }

    @Override
    public SecretStore createSecretStore() {
        P11kmsSecretStore s = store;
        if (s == null) {
            throw new SecretException("p11kms: open() the secret store factory before createSecretStore()");
        }
        return s;
    }

    @Override
    public synchronized void close() throws CatalogException {
        if (store != null) {
            store.close();
            store = null;
        }
    }
}
