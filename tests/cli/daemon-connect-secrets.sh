# Sourced by daemon-connect.sh: secret, connection and render verbs with connect =.
# They need p11kmsd to answer secretsmanager.* and P11kmsService.* (SM-CONTRACT.md).
echo "SKIP: secret/connection/render with connect = are not checked yet (p11kmsd lacks secretsmanager.* and P11kmsService.*)" >&2
echo "SKIP: secret/connection/render with connect = are not checked yet (p11kmsd lacks secretsmanager.* and P11kmsService.*)"
