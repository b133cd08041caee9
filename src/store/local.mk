libp11kms_core_la_SOURCES += src/store/store.h src/store/store.c src/store/store_sqlite.c src/store/store_vfs.c
