/* Test stub: declares only the signature p11kms-flink uses from Apache Flink (apache/flink master, FLIP-529).
 * Compiled for the tests only, never into p11kms-flink.jar; the real class comes from Flink. */
package org.apache.flink.configuration;

public class ConfigOptions {
    public static OptionBuilder key(String key) {
        return new OptionBuilder(key);
    }

    public static final class OptionBuilder {
        private final String key;

        OptionBuilder(String key) {
            this.key = key;
        }

        public TypedConfigOptionBuilder<String> stringType() {
            return new TypedConfigOptionBuilder<>(key);
        }
    }

    public static class TypedConfigOptionBuilder<T> {
        private final String key;

        TypedConfigOptionBuilder(String key) {
            this.key = key;
        }

        public ConfigOption<T> defaultValue(T value) {
            return new ConfigOption<>(key, value, "");
        }

        public ConfigOption<T> noDefaultValue() {
            return new ConfigOption<>(key, null, "");
        }
    }
}
