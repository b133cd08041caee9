package org.p11kms.flink.client;

/** The daemon's key policy denies the authenticated principal this operation. */
public class P11kmsAccessDeniedException extends P11kmsException {
    private static final long serialVersionUID = 1L;

    public P11kmsAccessDeniedException(String type, int status, String message) {
        super(type, status, message, null);
    }
}
