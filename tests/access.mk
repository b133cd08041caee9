# Access keys and SigV4 verification (issue 12).
check_PROGRAMS += tests/test_access
UNIT_TESTS += tests/test_access
TESTS += tests/cli/access.sh
tests_test_access_SOURCES = tests/test_access.c $(TEST_LIB)
tests_test_access_CFLAGS = $(TEST_CFLAGS)
tests_test_access_LDADD = $(TEST_LDADD)
EXTRA_DIST += tests/cli/access.sh
