bin_PROGRAMS += p11kms
p11kms_SOURCES = src/cli/cli.h src/cli/main.c src/cli/cli_util.c src/cli/cmd_token.c
p11kms_LDADD = libp11kms-core.la
