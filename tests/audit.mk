check_PROGRAMS += tests/test_audit
UNIT_TESTS += tests/test_audit
TESTS += tests/cli/audit.sh tests/cli/compliance.sh tests/cli/failclosed.sh
tests_test_audit_SOURCES = tests/test_audit.c $(TEST_LIB)
tests_test_audit_CFLAGS = $(TEST_CFLAGS)
tests_test_audit_LDADD = $(TEST_LDADD)
EXTRA_DIST += tests/cli/audit.sh tests/cli/compliance.sh tests/cli/failclosed.sh scripts/compliance/audit-report scripts/compliance/key-report scripts/compliance/policy-report
