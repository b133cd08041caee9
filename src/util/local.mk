libp11kms_core_la_SOURCES += \
	src/util/result.h src/util/error.c \
	src/util/bytes.h src/util/buf.c \
	src/util/secbuf.h src/util/secbuf.c \
	src/util/codec.h src/util/codec.c \
	src/util/json_out.h src/util/json_out.c \
	src/util/timefmt.h src/util/timefmt.c

libp11kms_core_la_SOURCES += src/util/lru_map.h src/util/lru_map.c
