# AWS Encryption SDK message format and the file commands (docs/FILES.md).
check_PROGRAMS += tests/test_esdk
UNIT_TESTS += tests/test_esdk
tests_test_esdk_SOURCES = tests/test_esdk.c $(TEST_LIB)
tests_test_esdk_CFLAGS = $(TEST_CFLAGS)
tests_test_esdk_LDADD = $(TEST_LDADD)
# The commands (after src/cli/local.mk's `p11kms_SOURCES =`, as tests/secrets.mk does).
p11kms_SOURCES += src/cli/cmd_file.h src/cli/cmd_file.c
# Raw AES keyring tool for the offline check against the official SDK.
check_PROGRAMS += tests/esdk_raw
tests_esdk_raw_SOURCES = tests/esdk_raw.c
tests_esdk_raw_CFLAGS = $(AM_CFLAGS) -I$(top_srcdir)/tests
tests_esdk_raw_LDADD = libp11kms-core.la
TESTS += tests/cli/esdk-node.sh
EXTRA_DIST += tests/cli/esdk-node.sh tests/node/esdk-raw.cjs
TESTS += tests/cli/files.sh
EXTRA_DIST += tests/cli/files.sh
TESTS += tests/cli/esdk-interop.sh
EXTRA_DIST += tests/cli/esdk-interop.sh tests/node/esdk-interop.test.js
