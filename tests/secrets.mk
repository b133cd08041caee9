# SecretStore, connections and render: unit suite (real SoftHSM token) and
# CLI scenarios. tests/local.mk adds $(UNIT_TESTS) to TESTS, so only the
# scenarios are added here.
check_PROGRAMS += tests/test_secrets
UNIT_TESTS += tests/test_secrets
tests_test_secrets_SOURCES = tests/test_secrets.c $(TEST_LIB)
tests_test_secrets_CFLAGS = $(TEST_CFLAGS)
tests_test_secrets_LDADD = $(TEST_LDADD)
TESTS += tests/cli/secrets.sh tests/cli/crash.sh
EXTRA_DIST += tests/cli/secrets.sh tests/cli/crash.sh
# The command's subcommands. Here rather than in src/secrets/local.mk:
# automake needs src/cli/local.mk's `p11kms_SOURCES =` before any `+=`,
# and src/secrets/local.mk is included before it.
p11kms_SOURCES += src/cli/cmd_secret.c src/cli/cmd_connection.c src/cli/cmd_render.c
TESTS += tests/cli/render.sh
EXTRA_DIST += tests/cli/render.sh
