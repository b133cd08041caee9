libp11kms_core_la_SOURCES += src/store/store.h src/store/store.c src/store/store_sqlite.c src/store/store_vfs.c \
	src/store/store_sqlite_impl.h src/store/store_tx.c src/store/store_ops.c src/store/store_sync.c src/store/store_schema.c
libp11kms_core_la_SOURCES += src/store/records.h
