# milter-spam/: congvu-milter-spam, the anti-spam milter.
# The scoring core is a library without libmilter (STYLE 13), shared by the
# daemon, the offline commands, the unit tests, the fuzzer and the bench.
# The token database lives in store/ (the only code that includes <lmdb.h>)
# but is built here: it is this program's own LMDB environment.
noinst_LIBRARIES += milter-spam/libspamscan.a
milter_spam_libspamscan_a_SOURCES = \
	milter-spam/scan.c milter-spam/scan.h \
	milter-spam/tokenize.c milter-spam/tokenize.h \
	milter-spam/bayes.c milter-spam/bayes.h \
	milter-spam/rules.c milter-spam/rules.h \
	milter-spam/spf.c milter-spam/spf.h \
	milter-spam/dns.c milter-spam/dns.h \
	milter-spam/netlist.c milter-spam/netlist.h \
	milter-spam/ratelimit.c milter-spam/ratelimit.h \
	store/tokendb.c store/tokendb.h
milter_spam_libspamscan_a_CFLAGS = $(AM_CFLAGS) $(LMDB_CFLAGS)
LIBSPAMSCAN = milter-spam/libspamscan.a $(LIBCONGVU_MIME) $(SPF2_LIBS) $(LMDB_LIBS) \
	-lresolv -lm $(PTHREAD_LIBS)

sbin_PROGRAMS += milter-spam/congvu-milter-spam
milter_spam_congvu_milter_spam_SOURCES = \
	milter-spam/main.c \
	milter-spam/milter.c milter-spam/milter.h
milter_spam_congvu_milter_spam_LDADD = $(LIBSPAMSCAN) $(LIBCONGVU) $(MILTER_LIBS) $(PTHREAD_LIBS)

UNIT_TESTS += tests/unit/test-milter-core tests/unit/test-milter-scan
check_PROGRAMS += tests/unit/test-milter-core tests/unit/test-milter-scan
tests_unit_test_milter_core_SOURCES = tests/unit/test-milter-core.c
tests_unit_test_milter_core_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
tests_unit_test_milter_core_LDADD = $(LIBSPAMSCAN) $(LIBCONGVU) $(CHECK_LIBS)
tests_unit_test_milter_scan_SOURCES = tests/unit/test-milter-scan.c
tests_unit_test_milter_scan_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
tests_unit_test_milter_scan_LDADD = $(LIBSPAMSCAN) $(LIBCONGVU) $(CHECK_LIBS)

INTEGRATION_TESTS += tests/integration/milter_miltertest.py tests/integration/milter_spf.py \
	tests/integration/milter_postfix.py tests/integration/milter_malformed.py \
	tests/integration/milter_startup.py tests/integration/milter_cli.py
EXTRA_DIST += tests/integration/milter_common.py tests/integration/milter/common.lua \
	tests/integration/milter/stages.lua tests/integration/milter/abort.lua \
	tests/integration/milter/spoof.lua tests/integration/milter/reject.lua \
	tests/integration/milter/headers.lua tests/integration/milter/ratelimit.lua \
	tests/integration/milter/spf.lua tests/integration/milter/malformed.lua \
	tests/integration/milter/reload.lua \
	bench/milter-accuracy.py

if FUZZERS
noinst_PROGRAMS += tests/fuzz/fuzz-tokenizer
tests_fuzz_fuzz_tokenizer_SOURCES = tests/fuzz/fuzz-tokenizer.c
tests_fuzz_fuzz_tokenizer_CFLAGS = $(AM_CFLAGS) -fsanitize=fuzzer
tests_fuzz_fuzz_tokenizer_LDFLAGS = $(AM_LDFLAGS) -fsanitize=fuzzer
tests_fuzz_fuzz_tokenizer_LDADD = $(LIBSPAMSCAN) $(LIBCONGVU)
endif
EXTRA_DIST += tests/fuzz/fuzz-tokenizer.c

# bench/milter: not part of `make check`; `make bench-milter` builds the
# protocol driver and runs the comparison with spamass-milter + spamd.
EXTRA_PROGRAMS += bench/milter-bench
bench_milter_bench_SOURCES = bench/milter-bench.c
bench_milter_bench_LDADD = $(PTHREAD_LIBS)
CLEANFILES += bench/milter-bench
EXTRA_DIST += bench/milter.py
bench-milter: bench/milter-bench$(EXEEXT) milter-spam/congvu-milter-spam$(EXEEXT)
	$(PYTHON3) $(srcdir)/bench/milter.py --builddir $(abs_top_builddir)
.PHONY: bench-milter
EXTRA_DIST += conf/postfix-milter.cf conf/sendmail-milter.mc doc/milter-spam.md
