# smtpd/: congvu-smtpd, the SMTP/LMTP server (doc/smtpd.md).
noinst_LIBRARIES += smtpd/libsmtpd.a
smtpd_libsmtpd_a_SOURCES = \
	smtpd/smtp-session.c smtpd/smtp-session.h \
	smtpd/queue-record.c smtpd/queue-record.h
smtpd_libsmtpd_a_CFLAGS = $(AM_CFLAGS) $(OPENSSL_CFLAGS)
LIBSMTPD = smtpd/libsmtpd.a

sbin_PROGRAMS += smtpd/congvu-smtpd
smtpd_congvu_smtpd_SOURCES = \
	smtpd/main.c smtpd/smtpd.h smtpd/dproto.h \
	smtpd/worker.c smtpd/delivery.c \
	smtpd/milter.c smtpd/milter.h \
	smtpd/iplimits.c smtpd/iplimits.h

smtpd_congvu_smtpd_CFLAGS = $(AM_CFLAGS) $(OPENSSL_CFLAGS) $(LMDB_CFLAGS)
smtpd_congvu_smtpd_LDADD = $(LIBSMTPD) $(LIBCONGVU_STORE) $(LIBCONGVU_MIME) $(LIBCONGVU_NET) \
	$(LIBCONGVU) $(PTHREAD_LIBS)

UNIT_TESTS += tests/unit/test-smtp-session
check_PROGRAMS += tests/unit/test-smtp-session
tests_unit_test_smtp_session_SOURCES = tests/unit/test-smtp-session.c
tests_unit_test_smtp_session_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS) -I$(top_srcdir)/smtpd
tests_unit_test_smtp_session_LDADD = $(LIBSMTPD) $(LIBCONGVU_NET) $(LIBCONGVU) $(CHECK_LIBS)

# A test tool: an account's messages as JSON lines.
check_PROGRAMS += smtpd/store-peek
smtpd_store_peek_SOURCES = smtpd/store-peek.c
smtpd_store_peek_CFLAGS = $(AM_CFLAGS) $(LMDB_CFLAGS)
smtpd_store_peek_LDADD = $(LIBCONGVU_STORE) $(LIBCONGVU)

INTEGRATION_TESTS += tests/integration/smtpd_basic.py
EXTRA_DIST += tests/integration/smtpd_common.py

# outbound delivery (issue 6): the SMTP client, queue decisions, DSNs and
# the TLS policy table as a library of testable cores (doc/outbound.md).
noinst_LIBRARIES += smtpd/liboutbound.a
smtpd_liboutbound_a_SOURCES = \
	smtpd/outbound-client.c smtpd/outbound-client.h \
	smtpd/outbound-sched.c smtpd/outbound-sched.h \
	smtpd/dsn.c smtpd/dsn.h \
	smtpd/tls-policy.c smtpd/tls-policy.h \
	smtpd/mta-sts.c smtpd/mta-sts.h \
	smtpd/dns-resolver.c smtpd/dns-resolver.h \
	smtpd/dane.c smtpd/dane.h
smtpd_liboutbound_a_CFLAGS = $(AM_CFLAGS) $(UNBOUND_CFLAGS) $(OPENSSL_CFLAGS)
LIBOUTBOUND = smtpd/liboutbound.a

UNIT_TESTS += tests/unit/test-outbound
check_PROGRAMS += tests/unit/test-outbound
tests_unit_test_outbound_SOURCES = tests/unit/test-outbound.c
tests_unit_test_outbound_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS) $(OPENSSL_CFLAGS) -I$(top_srcdir)/smtpd
tests_unit_test_outbound_LDADD = $(LIBOUTBOUND) $(LIBSMTPD) $(LIBCONGVU_NET) $(LIBCONGVU) \
	$(UNBOUND_LIBS) $(CHECK_LIBS)
INTEGRATION_TESTS += tests/integration/smtpd_policy.py
INTEGRATION_TESTS += tests/integration/smtpd_milter.py
INTEGRATION_TESTS += tests/integration/smtpd_postfix.py

# outbound delivery (issue 6): the delivery process, linked into congvu-smtpd.
smtpd_congvu_smtpd_SOURCES += \
	smtpd/outbound.c smtpd/outbound.h smtpd/outbound-private.h \
	smtpd/outbound-sts.c
smtpd_congvu_smtpd_CFLAGS += $(UNBOUND_CFLAGS)
smtpd_congvu_smtpd_LDADD += $(LIBOUTBOUND) $(LIBSMTPD) $(LIBCONGVU_STORE) $(LIBCONGVU_NET) \
	$(LIBCONGVU) $(UNBOUND_LIBS)
INTEGRATION_TESTS += tests/integration/smtpd_crash.py
INTEGRATION_TESTS += tests/integration/smtpd_compact.py

if FUZZERS
noinst_PROGRAMS += tests/fuzz/fuzz-smtp-session tests/fuzz/fuzz-smtp-queue-record
# the code under test is compiled into each target for coverage
tests_fuzz_fuzz_smtp_session_SOURCES = tests/fuzz/fuzz-smtp-session.c \
	smtpd/smtp-session.c lib/sasl.c
tests_fuzz_fuzz_smtp_session_CFLAGS = $(AM_CFLAGS) -I$(top_srcdir)/smtpd -fsanitize=fuzzer
tests_fuzz_fuzz_smtp_session_LDFLAGS = $(AM_LDFLAGS) -fsanitize=fuzzer
tests_fuzz_fuzz_smtp_session_LDADD = $(LIBCONGVU)
tests_fuzz_fuzz_smtp_queue_record_SOURCES = tests/fuzz/fuzz-smtp-queue-record.c \
	smtpd/queue-record.c
tests_fuzz_fuzz_smtp_queue_record_CFLAGS = $(AM_CFLAGS) -I$(top_srcdir)/smtpd -fsanitize=fuzzer
tests_fuzz_fuzz_smtp_queue_record_LDFLAGS = $(AM_LDFLAGS) -fsanitize=fuzzer
tests_fuzz_fuzz_smtp_queue_record_LDADD = $(LIBCONGVU)
endif
EXTRA_DIST += tests/fuzz/fuzz-smtp-session.c tests/fuzz/fuzz-smtp-queue-record.c \
	bench/smtp.py doc/smtpd.md doc/io.md
INTEGRATION_TESTS += tests/integration/outbound_delivery.py \
	tests/integration/outbound_tls.py tests/integration/outbound_crash.py \
	tests/integration/outbound_mta_sts.py tests/integration/outbound_dane.py \
	tests/integration/outbound_expiry.py
EXTRA_DIST += tests/integration/outbound_common.py
INTEGRATION_TESTS += tests/integration/smtpd_concurrency.py

# the client's name by reverse DNS (doc/smtpd.md)
UNIT_TESTS += tests/unit/test-rdns
check_PROGRAMS += tests/unit/test-rdns
tests_unit_test_rdns_SOURCES = tests/unit/test-rdns.c
tests_unit_test_rdns_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS) $(UNBOUND_CFLAGS) $(OPENSSL_CFLAGS) \
	-I$(top_srcdir)/smtpd
tests_unit_test_rdns_LDADD = $(LIBOUTBOUND) $(LIBCONGVU_NET) $(LIBCONGVU) $(UNBOUND_LIBS) \
	$(CHECK_LIBS)
INTEGRATION_TESTS += tests/integration/smtpd_rdns.py
if FUZZERS
noinst_PROGRAMS += tests/fuzz/fuzz-rdns
tests_fuzz_fuzz_rdns_SOURCES = tests/fuzz/fuzz-rdns.c smtpd/dns-resolver.c smtpd/dane.c
tests_fuzz_fuzz_rdns_CFLAGS = $(AM_CFLAGS) $(UNBOUND_CFLAGS) $(OPENSSL_CFLAGS) \
	-I$(top_srcdir)/smtpd -fsanitize=fuzzer
tests_fuzz_fuzz_rdns_LDFLAGS = $(AM_LDFLAGS) -fsanitize=fuzzer
tests_fuzz_fuzz_rdns_LDADD = $(LIBCONGVU_NET) $(LIBCONGVU) $(UNBOUND_LIBS)
endif
EXTRA_DIST += tests/fuzz/fuzz-rdns.c

# outbound delivery (issue 6): fuzz target of the SMTP client and TLS policy parser
if FUZZERS
noinst_PROGRAMS += tests/fuzz/fuzz-smtp-client
tests_fuzz_fuzz_smtp_client_SOURCES = tests/fuzz/fuzz-smtp-client.c \
	smtpd/outbound-client.c smtpd/tls-policy.c smtpd/mta-sts.c smtpd/dns-resolver.c \
	smtpd/dane.c
tests_fuzz_fuzz_smtp_client_CFLAGS = $(AM_CFLAGS) $(UNBOUND_CFLAGS) $(OPENSSL_CFLAGS) \
	-I$(top_srcdir)/smtpd \
	-fsanitize=fuzzer
tests_fuzz_fuzz_smtp_client_LDFLAGS = $(AM_LDFLAGS) -fsanitize=fuzzer
tests_fuzz_fuzz_smtp_client_LDADD = $(LIBCONGVU_NET) $(LIBCONGVU) $(UNBOUND_LIBS)
endif
EXTRA_DIST += tests/fuzz/fuzz-smtp-client.c doc/outbound.md
