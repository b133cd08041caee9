libp11kms_core_la_SOURCES += src/esdk/esdk.h src/esdk/esdk_impl.h src/esdk/esdk_format.c src/esdk/esdk_pool.c src/esdk/esdk_encrypt.c src/esdk/esdk_decrypt.c
