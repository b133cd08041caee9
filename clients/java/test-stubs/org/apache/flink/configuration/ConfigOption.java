/* Test stub: declares only the signature p11kms-flink uses from Apache Flink (apache/flink master, FLIP-529).
 * Compiled for the tests only, never into p11kms-flink.jar; the real class comes from Flink. */
package org.apache.flink.configuration;

public class ConfigOption<T> {
    private final String key;
    private final T defaultValue;
    private final String description;

    ConfigOption(String key, T defaultValue, String description) {
        this.key = key;
        this.defaultValue = defaultValue;
        this.description = description;
    }

    public String key() {
        return key;
    }

    public T defaultValue() {
        return defaultValue;
    }

    public boolean hasDefaultValue() {
        return defaultValue != null;
    }

    public ConfigOption<T> withDescription(String d) {
        return new ConfigOption<>(key, defaultValue, d);
    }
}
