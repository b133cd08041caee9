# The tamper-evident audit trail (docs/AUDIT.md) and its CLI command.
libp11kms_core_la_SOURCES += \
	src/audit/audit.h src/audit/audit_impl.h \
	src/audit/audit_record.c \
	src/audit/audit_file.c \
	src/audit/audit_log.c \
	src/audit/audit_verify.c
p11kms_SOURCES += src/cli/cmd_audit.c
