package org.p11kms.flink.client;

/** The secret or key does not exist (ResourceNotFoundException, NotFoundException). */
public class P11kmsNotFoundException extends P11kmsException {
    private static final long serialVersionUID = 1L;

    public P11kmsNotFoundException(String type, int status, String message) {
        super(type, status, message, null);
    }
}
