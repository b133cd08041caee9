libp11kms_util_la_SOURCES += src/json/json_in.h src/json/json_in.c
