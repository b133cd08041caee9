libp11kms_core_la_SOURCES += src/crypto/crypto.h src/crypto/wipe.h src/crypto/crypto.c
libp11kms_core_la_SOURCES += src/crypto/crypto_esdk.h src/crypto/crypto_esdk.c
