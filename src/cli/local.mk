bin_PROGRAMS += p11kms
p11kms_SOURCES = src/cli/cli.h src/cli/main.c src/cli/cli_help.h src/cli/cli_help.c src/cli/cli_util.c src/cli/cmd_token.c src/cli/cmd_policy.c \
	src/cli/cli_session.h src/cli/cli_session.c src/cli/cmd_init.c src/cli/cmd_key.c \
	src/cli/cmd_alias.c src/cli/cmd_crypto.c src/cli/cmd_report.c
p11kms_SOURCES += src/cli/cmd_access.c
# The command is a client of the exported library: only the p11kms_ calls of
# src/libp11kms.sym resolve (tests/cli/exports.sh checks the binary), plus
# the helpers of libp11kms-util.la.
p11kms_LDADD = libp11kms.la libp11kms-util.la
p11kms_SOURCES += src/cli/cli_remote.c
p11kms_SOURCES += src/cli/cmd_store.c
