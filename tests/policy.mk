# Key-policy engine: unit suite (vectors in tests/vectors/policy/) and CLI scenario.
# tests/local.mk adds $(UNIT_TESTS) to TESTS, so only the scenario is added here
# (listing tests/test_policy in TESTS as well made automake count it twice).
check_PROGRAMS += tests/test_policy
UNIT_TESTS += tests/test_policy
TESTS += tests/cli/policy.sh
tests_test_policy_SOURCES = tests/test_policy.c
tests_test_policy_CFLAGS = $(AM_CFLAGS) $(CUNIT_CFLAGS)
tests_test_policy_LDADD = libp11kms-core.la $(CUNIT_LIBS)
EXTRA_DIST += tests/vectors/policy tests/cli/policy.sh
