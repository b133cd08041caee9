# Metadata store: unit suite (temporary SQLite databases, no token).
# tests/local.mk already adds $(UNIT_TESTS) to TESTS; listing tests/test_store
# in TESTS as well made automake run and count it twice.
check_PROGRAMS += tests/test_store
UNIT_TESTS += tests/test_store
tests_test_store_SOURCES = tests/test_store.c $(TEST_LIB)
tests_test_store_CFLAGS = $(TEST_CFLAGS)
tests_test_store_LDADD = $(TEST_LDADD)

# Store freshness (issue 15): the digest and the anchor, rollbacks refused, kill -9 loop.
check_PROGRAMS += tests/test_fresh
UNIT_TESTS += tests/test_fresh
tests_test_fresh_SOURCES = tests/test_fresh.c $(TEST_LIB)
tests_test_fresh_CFLAGS = $(TEST_CFLAGS)
tests_test_fresh_LDADD = $(TEST_LDADD)
TESTS += tests/cli/freshness.sh tests/cli/freshness-crash.sh
EXTRA_DIST += tests/cli/freshness.sh tests/cli/freshness-crash.sh
