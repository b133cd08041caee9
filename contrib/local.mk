# What `make install` puts where, besides the library, header and command
# (README.md, "Install"); tests/cli/install.sh installs into a DESTDIR and
# runs what an auditor runs.

# p11kms(1) and p11kms.conf(5), checked against the help table by tests/cli/help.sh.
dist_man_MANS = docs/man/p11kms.1 docs/man/p11kms.conf.5

bashcompletiondir = $(datadir)/bash-completion/completions
dist_bashcompletion_DATA = contrib/bash-completion/p11kms

# The compliance scripts under the names an auditor types. They run the
# p11kms installed next to them, so the copies in the build tree run ./p11kms.
compliance_scripts = p11kms-key-report p11kms-policy-report p11kms-audit-report
bin_SCRIPTS = $(compliance_scripts)
CLEANFILES += $(compliance_scripts)
p11kms-key-report: $(srcdir)/scripts/compliance/key-report
	$(AM_V_GEN)cp $(srcdir)/scripts/compliance/key-report $@ && chmod +x $@
p11kms-policy-report: $(srcdir)/scripts/compliance/policy-report
	$(AM_V_GEN)cp $(srcdir)/scripts/compliance/policy-report $@ && chmod +x $@
p11kms-audit-report: $(srcdir)/scripts/compliance/audit-report
	$(AM_V_GEN)cp $(srcdir)/scripts/compliance/audit-report $@ && chmod +x $@

# The SoftHSM token script with its template, and the policy templates
# (the default policy itself is compiled in: src/policy/policy_default.c).
tokensdir = $(pkgdatadir)/tokens
dist_tokens_SCRIPTS = tokens/softhsm-token.sh
dist_tokens_DATA = tokens/softhsm2.conf.in tokens/README.md
policiesdir = $(pkgdatadir)/policies
dist_policies_DATA = tokens/policies/application-operator.json tokens/policies/key-administrator.json

# Daily `p11kms key purge` (automatic rotation and deletion): systemd units
# and a cron example, as documentation: the administrator installs them.
doc_DATA = contrib/systemd/p11kms-purge.service contrib/cron/p11kms.cron
dist_doc_DATA = contrib/systemd/p11kms-purge.timer
CLEANFILES += $(doc_DATA)
EXTRA_DIST += contrib/systemd/p11kms-purge.service.in contrib/cron/p11kms.cron.in
contrib/systemd/p11kms-purge.service: $(srcdir)/contrib/systemd/p11kms-purge.service.in Makefile
	$(AM_V_GEN)$(MKDIR_P) contrib/systemd && sed 's|@bindir[@]|$(bindir)|g' $(srcdir)/contrib/systemd/p11kms-purge.service.in >$@
contrib/cron/p11kms.cron: $(srcdir)/contrib/cron/p11kms.cron.in Makefile
	$(AM_V_GEN)$(MKDIR_P) contrib/cron && sed 's|@bindir[@]|$(bindir)|g' $(srcdir)/contrib/cron/p11kms.cron.in >$@

# p11kmsd: its service and socket units, documentation like the purge units.
doc_DATA += contrib/systemd/p11kmsd.service
dist_doc_DATA += contrib/systemd/p11kmsd.socket
EXTRA_DIST += contrib/systemd/p11kmsd.service.in
contrib/systemd/p11kmsd.service: $(srcdir)/contrib/systemd/p11kmsd.service.in Makefile
	$(AM_V_GEN)$(MKDIR_P) contrib/systemd && sed 's|@sbindir[@]|$(sbindir)|g' $(srcdir)/contrib/systemd/p11kmsd.service.in >$@
dist_man_MANS += docs/man/p11kmsd.8
