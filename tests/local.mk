# Unit suites (CUnit, one program per area) and CLI scenarios (shell).
UNIT_TESTS =
TEST_LIB = tests/lib/fixture.h tests/lib/fixture.c
TEST_CFLAGS = $(AM_CFLAGS) $(CUNIT_CFLAGS) -I$(top_srcdir)/tests
TEST_LDADD = libp11kms-core.la $(CUNIT_LIBS)

check_PROGRAMS += tests/test_util tests/test_p11 tests/test_keys
UNIT_TESTS += tests/test_util tests/test_p11 tests/test_keys
tests_test_util_SOURCES = tests/test_util.c $(TEST_LIB)
tests_test_util_CFLAGS = $(TEST_CFLAGS)
tests_test_util_LDADD = $(TEST_LDADD)
tests_test_p11_SOURCES = tests/test_p11.c $(TEST_LIB)
tests_test_p11_CFLAGS = $(TEST_CFLAGS)
tests_test_p11_LDADD = $(TEST_LDADD)
tests_test_keys_SOURCES = tests/test_keys.c $(TEST_LIB)
tests_test_keys_CFLAGS = $(TEST_CFLAGS)
tests_test_keys_LDADD = $(TEST_LDADD)

CLI_SCENARIOS = tests/cli/token.sh tests/cli/keys.sh tests/cli/roles.sh tests/cli/layering.sh tests/cli/exports.sh
CLI_SCENARIOS += tests/cli/help.sh tests/cli/install.sh
CLI_SCENARIOS += tests/cli/fulldisk.sh tests/cli/nss.sh
CLI_SCENARIOS += tests/cli/cliinput.sh
CLI_SCENARIOS += tests/cli/hardening.sh
TESTS += $(UNIT_TESTS) $(CLI_SCENARIOS)
EXTRA_DIST += $(CLI_SCENARIOS) tests/cli/lib.sh tests/vectors tests/valgrind.supp

# A stub PKCS#11 module whose C_Initialize fails on demand (tests/cli/token.sh).
check_LTLIBRARIES = tests/lib/libfakep11.la
tests_lib_libfakep11_la_SOURCES = tests/lib/fake_p11.c
tests_lib_libfakep11_la_CFLAGS = $(AM_CFLAGS) $(P11KIT_CFLAGS)
tests_lib_libfakep11_la_LDFLAGS = -module -avoid-version -shared -rpath /nowhere
CLI_SCENARIOS += tests/cli/layering-plant.sh

# The fault-injecting PKCS#11 module around SoftHSM (issue 17; tests/cli/faults.sh).
check_LTLIBRARIES += tests/faulty-p11/libfaultyp11.la
tests_faulty_p11_libfaultyp11_la_SOURCES = tests/faulty-p11/faulty_p11.c
tests_faulty_p11_libfaultyp11_la_CFLAGS = $(AM_CFLAGS) $(P11KIT_CFLAGS)
tests_faulty_p11_libfaultyp11_la_LDFLAGS = -module -avoid-version -shared -rpath /nowhere
tests_faulty_p11_libfaultyp11_la_LIBADD = -ldl -lpthread
# The fault matrix: a rotated subset in make check; every cell, and docs/FAULTS.md, in make check-faults.
CLI_SCENARIOS += tests/cli/faults.sh tests/cli/faults-daemon.sh
check-faults: tests/faulty-p11/libfaultyp11.la p11kms
	$(AM_TESTS_ENVIRONMENT) FAULTS_FULL=1 FAULTS_TABLE=$(abs_top_srcdir)/docs/FAULTS.md \
	  $(SHELL) $(srcdir)/tests/cli/faults.sh
.PHONY: check-faults
