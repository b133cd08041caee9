# Authentication of callers (issue 12): pure SigV4 canonicalisation, the
# access-key token objects, and their public API.
libp11kms_core_la_SOURCES += \
	src/auth/sigv4.h src/auth/sigv4.c \
	src/p11/p11_secret.c \
	src/core/access.h src/core/api_access.c src/core/api_sigv4.c src/core/api_keys_aws.c
