package org.p11kms.flink.client;

/**
 * A failed call. errorType is AWS's short error name from the daemon
 * (AccessDeniedException, ResourceNotFoundException, ...) or "IOException" for
 * transport failures; status the HTTP status (0 without a response). The message
 * never carries a secret value.
 */
public class P11kmsException extends RuntimeException {
    private static final long serialVersionUID = 1L;
    private final String errorType;
    private final int status;

    public P11kmsException(String errorType, int status, String message, Throwable cause) {
        super(message, cause);
        this.errorType = errorType;
        this.status = status;
    }

    public String getErrorType() {
        return errorType;
    }

    public int getStatus() {
        return status;
    }

    /** Maps the daemon's error to the most specific exception. */
    static P11kmsException of(String type, int status, String message) {
        String m = "p11kms: " + type + ": " + message;
        switch (type) {
            case "ResourceNotFoundException":
            case "NotFoundException":
                return new P11kmsNotFoundException(type, status, m);
            case "AccessDeniedException":
                return new P11kmsAccessDeniedException(type, status, m);
            default:
                return new P11kmsException(type, status, m, null);
        }
    }
}
