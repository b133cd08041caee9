bin_PROGRAMS += p11kms
p11kms_SOURCES = src/cli/cli.h src/cli/main.c src/cli/cli_help.h src/cli/cli_help.c src/cli/cli_util.c src/cli/cmd_token.c src/cli/cmd_policy.c \
	src/cli/cli_session.h src/cli/cli_session.c src/cli/cmd_init.c src/cli/cmd_key.c \
	src/cli/cmd_alias.c src/cli/cmd_crypto.c src/cli/cmd_report.c
p11kms_SOURCES += src/cli/cmd_access.c
# The command is a client of the exported library: only the p11kms_ calls of
# src/libp11kms.sym resolve (tests/cli/exports.sh checks the binary), plus
# the helpers of libp11kms-util.la.
p11kms_LDADD = libp11kms.la libp11kms-util.la libp11kms-cliaux.la

# Until util/ stands on nothing (pk_fail in util/error.c, pk_wipe and
# pk_random in crypto/), the command links its own copies of those. The
# public calls error.c also defines are renamed so that p11kms_last_error
# and friends resolve to the library, where the details are kept.
noinst_LTLIBRARIES += libp11kms-cliaux.la
libp11kms_cliaux_la_SOURCES = src/util/error.c src/crypto/crypto.c
libp11kms_cliaux_la_CPPFLAGS = $(AM_CPPFLAGS) -Dp11kms_strerror=pk_cliaux_strerror \
	-Dp11kms_rc_name=pk_cliaux_rc_name -Dp11kms_exit_code=pk_cliaux_exit_code \
	-Dp11kms_last_error=pk_cliaux_last_error -Dp11kms_version=pk_cliaux_version
libp11kms_cliaux_la_CFLAGS = $(AM_CFLAGS) $(CRYPTO_CFLAGS)
libp11kms_cliaux_la_LIBADD = $(CRYPTO_LIBS)
