libp11kms_core_la_SOURCES += \
	src/core/core.h src/core/op.h src/core/op.c src/core/integrity.c src/core/store_flush.c src/core/handle.c \
	src/core/api_keys.c src/core/api_crypto.c src/core/api_report.c src/core/token_info.c \
	src/core/api_audit.c src/core/api_token.c src/core/api_policy.c
libp11kms_core_la_SOURCES += src/core/api_file.c
libp11kms_core_la_SOURCES += src/core/api_errors.c
libp11kms_core_la_SOURCES += src/core/remote_fwd.h src/core/api_remote.c src/core/api_remote_secrets.c
libp11kms_core_la_SOURCES += src/core/api_health.c
libp11kms_core_la_SOURCES += src/core/freshness.h src/core/freshness.c src/core/fresh_store.c
libp11kms_core_la_SOURCES += src/core/api_store.c
