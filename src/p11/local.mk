libp11kms_core_la_SOURCES += \
	src/p11/p11.h src/p11/p11_internal.h \
	src/p11/p11_errors.c src/p11/p11_token.c src/p11/p11_pool.c \
	src/p11/p11_cache.c src/p11/p11_keys.c src/p11/p11_crypto.c src/p11/p11_probe.c
libp11kms_core_la_SOURCES += src/p11/p11_data.c
