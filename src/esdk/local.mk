libp11kms_core_la_SOURCES += src/esdk/esdk.h src/esdk/esdk_format.c src/esdk/esdk_stream.c
