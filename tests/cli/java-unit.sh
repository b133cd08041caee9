#!/bin/bash
# The Java client's daemon-free checks (issue 13): SigV4 against the AWS test
# suite, the strict JSON reader, the HTTP response parser, option parsing.
. "${P11KMS_TOP_SRCDIR:-.}/tests/cli/lib.sh"

CLASSES=$P11KMS_TOP_BUILDDIR/clients/java/test-classes
if [ -z "${P11KMS_JAVA:-}" ] || [ ! -d "$CLASSES" ]; then
    echo "SKIP: $0: no JDK found by configure (or --without-java): the Java client is not built"
    exit 77
fi
run "$P11KMS_JAVA" -cp "$CLASSES" org.p11kms.flink.test.UnitTest
expect_rc 0 "UnitTest"; expect_out_has "0 failed" "UnitTest: $(cat "$OUT")"
[ "$RC" -eq 0 ] || cat "$OUT"
finish
