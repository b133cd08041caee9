# Metadata store: unit suite (temporary SQLite databases, no token).
# tests/local.mk already adds $(UNIT_TESTS) to TESTS; listing tests/test_store
# in TESTS as well made automake run and count it twice.
check_PROGRAMS += tests/test_store
UNIT_TESTS += tests/test_store
tests_test_store_SOURCES = tests/test_store.c $(TEST_LIB)
tests_test_store_CFLAGS = $(TEST_CFLAGS)
tests_test_store_LDADD = $(TEST_LDADD)
