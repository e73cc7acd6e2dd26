# smtpd/: congvu-smtpd, the SMTP/LMTP server.
noinst_LIBRARIES += smtpd/libsmtpd.a
smtpd_libsmtpd_a_SOURCES = \
	smtpd/smtp-session.c smtpd/smtp-session.h
smtpd_libsmtpd_a_CFLAGS = $(AM_CFLAGS) $(OPENSSL_CFLAGS)
LIBSMTPD = smtpd/libsmtpd.a

UNIT_TESTS += tests/unit/test-smtp-session
check_PROGRAMS += tests/unit/test-smtp-session
tests_unit_test_smtp_session_SOURCES = tests/unit/test-smtp-session.c
tests_unit_test_smtp_session_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS) -I$(top_srcdir)/smtpd
tests_unit_test_smtp_session_LDADD = $(LIBSMTPD) $(LIBCONGVU_NET) $(LIBCONGVU) $(CHECK_LIBS)
