# SecretStore (FLIP-529), connections and rendering (docs/SECRETS.md).
libp11kms_core_la_SOURCES += \
	src/secrets/secrets.h src/secrets/secrets_impl.h src/secrets/secret_map.c src/secrets/secret_state.c \
	src/secrets/secret_ns.c src/secrets/secret_ns_use.c src/secrets/secret_record.c src/secrets/secret_rows.c src/secrets/connection.c \
	src/core/secret_ops.h src/core/api_secrets.c src/core/api_secrets_list.c src/core/api_secrets_rewrap.c src/core/api_connections.c src/core/api_connections_read.c
libp11kms_core_la_SOURCES += src/core/api_render.c
