/* Test stub: declares only the signature p11kms-flink uses from Apache Flink (apache/flink master, FLIP-529).
 * Compiled for the tests only, never into p11kms-flink.jar; the real class comes from Flink. */
package org.apache.flink.table.secret;

import java.util.Map;
import org.apache.flink.configuration.ReadableConfig;
import org.apache.flink.table.catalog.exceptions.CatalogException;
import org.apache.flink.table.factories.Factory;
import org.apache.flink.table.secret.exceptions.SecretException;

public interface SecretStoreFactory extends Factory {
    SecretStore createSecretStore();

    void open(Context context) throws SecretException;

    void close() throws CatalogException;

    interface Context {
        Map<String, String> getOptions();

        ReadableConfig getConfiguration();

        ClassLoader getClassLoader();
    }
}
