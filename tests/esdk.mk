# AWS Encryption SDK message format and the file commands (docs/FILES.md).
check_PROGRAMS += tests/test_esdk
UNIT_TESTS += tests/test_esdk
tests_test_esdk_SOURCES = tests/test_esdk.c $(TEST_LIB)
tests_test_esdk_CFLAGS = $(TEST_CFLAGS)
tests_test_esdk_LDADD = $(TEST_LDADD)
