libp11kms_core_la_SOURCES += \
	src/policy/policy.h src/policy/policy_impl.h \
	src/policy/policy_arena.c \
	src/policy/policy_actions.c \
	src/policy/policy_match.c \
	src/policy/policy_scalar.c \
	src/policy/policy_parse.c \
	src/policy/policy_condition.c \
	src/policy/policy_eval.c \
	src/policy/policy_lint.c \
	src/policy/policy_default.c \
	src/policy/policy_request.c
