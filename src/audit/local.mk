# The tamper-evident audit trail (docs/AUDIT.md) and its CLI command.
libp11kms_core_la_SOURCES += \
	src/audit/audit.h src/audit/audit_impl.h \
	src/audit/audit_record.c \
	src/audit/audit_file.c \
	src/audit/audit_log.c \
	src/audit/audit_log_impl.h src/audit/audit_append.c src/audit/audit_lock.c src/audit/audit_rotate.c src/audit/audit_flush.c \
	src/audit/audit_verify.c
p11kms_SOURCES += src/cli/cmd_audit.c
