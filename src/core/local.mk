libp11kms_core_la_SOURCES += src/core/token_info.c
