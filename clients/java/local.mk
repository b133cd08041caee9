# The Java FLIP-529 client (clients/java, issue 13): p11kms-flink.jar, built
# with javac and jar into the build tree when configure found a JDK.
JAVA_CORE_SRC = \
	clients/java/src/org/p11kms/flink/client/DataKey.java \
	clients/java/src/org/p11kms/flink/client/HttpWire.java \
	clients/java/src/org/p11kms/flink/client/Json.java \
	clients/java/src/org/p11kms/flink/client/P11kmsAccessDeniedException.java \
	clients/java/src/org/p11kms/flink/client/P11kmsClient.java \
	clients/java/src/org/p11kms/flink/client/P11kmsException.java \
	clients/java/src/org/p11kms/flink/client/P11kmsNotFoundException.java \
	clients/java/src/org/p11kms/flink/client/P11kmsOptions.java \
	clients/java/src/org/p11kms/flink/client/SigV4.java \
	clients/java/src/org/p11kms/flink/client/Transport.java \
	clients/java/src/org/p11kms/flink/client/UnixStreams.java
# The Flink adapter: compiled against real Flink jars (--with-flink-jars) or the test stubs.
JAVA_ADAPTER_SRC = \
	clients/java/adapter/org/p11kms/flink/P11kmsSecretStore.java \
	clients/java/adapter/org/p11kms/flink/P11kmsSecretStoreFactory.java
JAVA_ADAPTER_SERVICES = clients/java/adapter/META-INF/services/org.apache.flink.table.factories.Factory
# Stand-ins for the FLIP-529 interfaces, for the tests only: never in the jar.
JAVA_STUB_SRC = \
	clients/java/test-stubs/org/apache/flink/configuration/ConfigOption.java \
	clients/java/test-stubs/org/apache/flink/configuration/ConfigOptions.java \
	clients/java/test-stubs/org/apache/flink/configuration/ReadableConfig.java \
	clients/java/test-stubs/org/apache/flink/table/catalog/exceptions/CatalogException.java \
	clients/java/test-stubs/org/apache/flink/table/factories/Factory.java \
	clients/java/test-stubs/org/apache/flink/table/secret/ReadableSecretStore.java \
	clients/java/test-stubs/org/apache/flink/table/secret/SecretStore.java \
	clients/java/test-stubs/org/apache/flink/table/secret/SecretStoreFactory.java \
	clients/java/test-stubs/org/apache/flink/table/secret/WritableSecretStore.java \
	clients/java/test-stubs/org/apache/flink/table/secret/exceptions/SecretException.java \
	clients/java/test-stubs/org/apache/flink/table/secret/exceptions/SecretNotFoundException.java
JAVA_TEST_SRC = \
	clients/java/test/org/p11kms/flink/test/UnitTest.java \
	clients/java/test/org/p11kms/flink/test/SecretStoreTest.java \
	clients/java/bench/org/p11kms/flink/bench/GetSecretBench.java
EXTRA_DIST += $(JAVA_CORE_SRC) $(JAVA_ADAPTER_SRC) $(JAVA_ADAPTER_SERVICES) $(JAVA_STUB_SRC) $(JAVA_TEST_SRC) \
	clients/java/README.md clients/java/local.mk
JAVAC_FLAGS = --release 17 -encoding UTF-8 -Xlint:all -Werror

JAVA_SCENARIOS = tests/cli/java-unit.sh tests/cli/java.sh
TESTS += $(JAVA_SCENARIOS)
EXTRA_DIST += $(JAVA_SCENARIOS)
AM_TESTS_ENVIRONMENT += P11KMS_JAVA='$(JAVA)'; export P11KMS_JAVA;

if HAVE_JAVA
javadir = $(datadir)/java
java_DATA = clients/java/p11kms-flink.jar
check_DATA = clients/java/test-classes.stamp

if HAVE_FLINK_JARS
JAVA_JAR_SRC = $(JAVA_CORE_SRC) $(JAVA_ADAPTER_SRC)
JAVA_JAR_CP = -cp '$(FLINK_JARS)'
else
JAVA_JAR_SRC = $(JAVA_CORE_SRC)
JAVA_JAR_CP =
endif

# The shipped jar: the core client, plus the adapter and its service entry
# only when built against real Flink.
clients/java/p11kms-flink.jar: $(JAVA_CORE_SRC) $(JAVA_ADAPTER_SRC) $(JAVA_ADAPTER_SERVICES)
	$(AM_V_GEN)rm -rf clients/java/classes && mkdir -p clients/java/classes && \
	for f in $(JAVA_JAR_SRC); do echo "$(srcdir)/$$f"; done >clients/java/jar-sources.txt && \
	$(JAVAC) $(JAVAC_FLAGS) $(JAVA_JAR_CP) -d clients/java/classes @clients/java/jar-sources.txt && \
	if test -n '$(FLINK_JARS)'; then \
	  mkdir -p clients/java/classes/META-INF/services && \
	  cp $(srcdir)/$(JAVA_ADAPTER_SERVICES) clients/java/classes/META-INF/services/; \
	fi && \
	$(JAR) --create --file $@.tmp -C clients/java/classes . && mv $@.tmp $@

# Tests and the benchmark: core, adapter and the FLIP-529 stubs in one tree.
clients/java/test-classes.stamp: $(JAVA_CORE_SRC) $(JAVA_ADAPTER_SRC) $(JAVA_ADAPTER_SERVICES) $(JAVA_STUB_SRC) \
		$(JAVA_TEST_SRC)
	$(AM_V_GEN)rm -rf clients/java/test-classes && mkdir -p clients/java/test-classes && \
	for f in $(JAVA_CORE_SRC) $(JAVA_ADAPTER_SRC) $(JAVA_STUB_SRC) $(JAVA_TEST_SRC); do \
	  echo "$(srcdir)/$$f"; done >clients/java/test-sources.txt && \
	$(JAVAC) $(JAVAC_FLAGS) -d clients/java/test-classes @clients/java/test-sources.txt && \
	mkdir -p clients/java/test-classes/META-INF/services && \
	cp $(srcdir)/$(JAVA_ADAPTER_SERVICES) clients/java/test-classes/META-INF/services/ && touch $@
endif

clean-local: clean-java
clean-java:
	-rm -rf clients/java/classes clients/java/test-classes
.PHONY: clean-java
CLEANFILES += clients/java/p11kms-flink.jar clients/java/p11kms-flink.jar.tmp clients/java/test-classes.stamp \
	clients/java/jar-sources.txt clients/java/test-sources.txt
