# Benchmarks: built with the project, run by hand (bench/p11kms-bench --json).
noinst_PROGRAMS += bench/p11kms-bench
bench_p11kms_bench_SOURCES = bench/p11kms-bench.c
bench_p11kms_bench_CFLAGS = $(AM_CFLAGS) $(P11KIT_CFLAGS) $(CRYPTO_CFLAGS) -DP11KMS_BENCH_SRCDIR='"$(abs_top_srcdir)"'
# A client like the command: the exported library, util, and for its
# baselines p11-kit (raw PKCS#11) and OpenSSL (EVP).
bench_p11kms_bench_LDADD = libp11kms.la libp11kms-util.la $(P11KIT_LIBS) $(CRYPTO_LIBS)
# ESDK file format throughput against openssl speed (docs/BENCHMARKS.md).
noinst_PROGRAMS += bench/p11kms-file-bench
bench_p11kms_file_bench_SOURCES = bench/p11kms-file-bench.c
bench_p11kms_file_bench_LDADD = libp11kms-core.la
# p11kmsd over the Unix socket next to the in-process API (docs/BENCHMARKS.md).
noinst_PROGRAMS += bench/p11kmsd-bench
bench_p11kmsd_bench_SOURCES = bench/p11kmsd-bench.c
bench_p11kmsd_bench_CFLAGS = $(AM_CFLAGS) $(SSL_CFLAGS) $(CRYPTO_CFLAGS) -DP11KMS_BENCH_BUILDDIR='"$(abs_top_builddir)"'
bench_p11kmsd_bench_LDADD = libp11kms.la $(SSL_LIBS) $(CRYPTO_LIBS) -lpthread
# 16 clients against p11kmsd for SOAK_SECONDS (docs/BENCHMARKS.md "Soak and crash loop").
EXTRA_DIST += bench/p11kmsd-soak
SOAK_SECONDS = 600
soak: p11kms$(EXEEXT) p11kmsd$(EXEEXT)
	P11KMS_BIN=$(abs_top_builddir)/p11kms P11KMSD_BIN=$(abs_top_builddir)/p11kmsd \
	    $(abs_top_srcdir)/bench/p11kmsd-soak --seconds $(SOAK_SECONDS)
.PHONY: soak
