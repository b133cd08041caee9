/* Test stub: declares only the signature p11kms-flink uses from Apache Flink (apache/flink master, FLIP-529).
 * Compiled for the tests only, never into p11kms-flink.jar; the real class comes from Flink. */
package org.apache.flink.table.secret.exceptions;

public class SecretException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    public SecretException(String message) {
        super(message);
    }

    public SecretException(String message, Throwable cause) {
        super(message, cause);
    }

    public SecretException(Throwable cause) {
        super(cause);
    }
}
