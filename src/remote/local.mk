# The command as a client of p11kmsd (`connect =`): the only libcurl user.
libp11kms_core_la_SOURCES += src/remote/remote.h src/remote/remote_impl.h src/remote/remote_http.c \
	src/remote/remote_keys.c src/remote/remote_crypto.c src/remote/remote_secrets.c
libp11kms_core_la_CFLAGS += $(CURL_CFLAGS)
libp11kms_core_la_LIBADD += $(CURL_LIBS)
