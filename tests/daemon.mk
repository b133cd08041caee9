# p11kmsd scenarios: a real daemon on a fresh SoftHSM token, on a Unix
# socket in a temp dir or on 127.0.0.1 (tests/lib/daemon.sh starts it and
# always kills it). The AWS CLI and node SDK scenarios need SigV4 access
# keys and skip (exit 77, loudly) while `p11kms access-key` does not exist.
DAEMON_SCENARIOS = tests/cli/daemon-unix.sh tests/cli/daemon-robust.sh tests/cli/daemon-https.sh \
	tests/cli/daemon-limits.sh tests/cli/daemon-awscli.sh tests/cli/daemon-node.sh
DAEMON_SCENARIOS += tests/cli/daemon-health.sh
TESTS += $(DAEMON_SCENARIOS)
EXTRA_DIST += $(DAEMON_SCENARIOS) tests/lib/daemon.sh tests/lib/kmsclient.py tests/lib/tls.sh tests/lib/sigv4.py \
	tests/node/package.json tests/node/kms.mjs
# tests/cli/daemon-node.sh installs its npm packages once into the build tree.
clean-local: clean-local-daemon-node
clean-local-daemon-node:
	-rm -rf tests/node-cache
.PHONY: clean-local-daemon-node
# The command with connect = (its secret/connection/render part is a sourced file).
TESTS += tests/cli/daemon-connect.sh
EXTRA_DIST += tests/cli/daemon-connect.sh tests/cli/daemon-connect-secrets.sh
# Issue 13: Secrets Manager and P11kmsService targets (curl, awscli).
SM_SCENARIOS = tests/cli/daemon-secrets.sh tests/cli/daemon-sm-awscli.sh
TESTS += $(SM_SCENARIOS)
EXTRA_DIST += $(SM_SCENARIOS)
# Issue 17: kill -9 across daemon and command operations (CRASHLOOP_KILLS=1000 for the full run).
TESTS += tests/cli/crashloop.sh
EXTRA_DIST += tests/cli/crashloop.sh
