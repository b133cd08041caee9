# What `make install` puts where, besides the library, header and command.

# p11kms(1) and p11kms.conf(5), checked against the help table by tests/cli/help.sh.
dist_man_MANS = docs/man/p11kms.1 docs/man/p11kms.conf.5

bashcompletiondir = $(datadir)/bash-completion/completions
dist_bashcompletion_DATA = contrib/bash-completion/p11kms
