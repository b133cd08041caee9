libp11kms_core_la_SOURCES += src/crypto/crypto.h src/crypto/wipe.h src/crypto/crypto.c
