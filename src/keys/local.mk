libp11kms_core_la_SOURCES += \
	src/keys/keys.h src/keys/nonce_window.h src/keys/key_id.c src/keys/key_record.c src/keys/key_cache.c \
	src/keys/key_lifecycle.c src/keys/key_alias.c src/keys/blob.c src/keys/key_crypto.c
