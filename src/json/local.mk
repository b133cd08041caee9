libp11kms_core_la_SOURCES += src/json/json_in.h src/json/json_in.c
