libp11kms_core_la_SOURCES += src/conf/conf.h src/conf/conf.c
