/* Test stub: declares only the signature p11kms-flink uses from Apache Flink (apache/flink master, FLIP-529).
 * Compiled for the tests only, never into p11kms-flink.jar; the real class comes from Flink. */
package org.apache.flink.configuration;

import java.util.Optional;

public interface ReadableConfig {
    <T> T get(ConfigOption<T> option);

    <T> Optional<T> getOptional(ConfigOption<T> option);
}
