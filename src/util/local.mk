# The dependency-light helpers (buffers, codecs, secure buffers, JSON writer,
# times) and the read-only JSON reader: one convenience library that both
# libp11kms-core and the p11kms command link, so the command need not reach
# into core. util/ stands on nothing: it defines no p11kms_ symbol (the
# public error calls are core/api_errors.c) and calls no other folder.
noinst_LTLIBRARIES += libp11kms-util.la
libp11kms_util_la_SOURCES = \
	src/util/result.h src/util/error.c \
	src/util/wipe.h src/util/wipe.c \
	src/util/bytes.h src/util/buf.c \
	src/util/secbuf.h src/util/secbuf.c \
	src/util/codec.h src/util/codec.c \
	src/util/json_out.h src/util/json_out.c \
	src/util/timefmt.h src/util/timefmt.c \
	src/util/forkgen.h src/util/forkgen.c \
	src/util/group_commit.h src/util/group_commit.c \
	src/util/lru_map.h src/util/lru_map.c \
	src/util/kv.h
libp11kms_util_la_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS)
libp11kms_util_la_LIBADD = $(JANSSON_LIBS)
libp11kms_core_la_LIBADD += libp11kms-util.la
