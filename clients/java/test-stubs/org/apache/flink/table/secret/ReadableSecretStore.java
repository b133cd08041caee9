/* Test stub: declares only the signature p11kms-flink uses from Apache Flink (apache/flink master, FLIP-529).
 * Compiled for the tests only, never into p11kms-flink.jar; the real class comes from Flink. */
package org.apache.flink.table.secret;

import java.util.Map;
import org.apache.flink.table.secret.exceptions.SecretNotFoundException;

public interface ReadableSecretStore extends SecretStore {
    Map<String, String> getSecret(String secretId) throws SecretNotFoundException;
}
