# p11kmsd: the AWS KMS JSON 1.1 service (docs/DAEMON.md). It links only the
# exported library; libevent and libssl are its own dependencies. For JSON it
# compiles in the project's read-only reader (src/json) and the writer and
# buffers of src/util (hidden symbols in libp11kms, so no clash).
sbin_PROGRAMS = p11kmsd
p11kmsd_SOURCES = src/daemon/daemon.h src/daemon/main.c src/daemon/settings.c \
	src/daemon/pool.c src/daemon/http.c src/daemon/listen.c src/daemon/tls.c src/daemon/kms_impl.h src/daemon/kms.c src/daemon/kms_fields.c src/daemon/kms_keys.c src/daemon/kms_crypto.c src/daemon/codec.c \
	src/daemon/result_shim.c src/json/json_in.c \
	src/daemon/sm_impl.h src/daemon/sm.c src/daemon/sm_list.c src/daemon/svc.c src/util/buf.c src/util/json_out.c src/util/wipe.c
p11kmsd_CFLAGS = $(AM_CFLAGS) $(LIBEVENT_CFLAGS) $(SSL_CFLAGS) $(JANSSON_CFLAGS)
p11kmsd_LDADD = libp11kms.la $(LIBEVENT_LIBS) $(SSL_LIBS) $(CRYPTO_LIBS) $(JANSSON_LIBS)
