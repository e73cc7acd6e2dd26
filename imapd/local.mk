# imapd/: congvu-imapd. The protocol cores (parser, sequence sets, mailbox
# name encoding, response writing, SEARCH) form imapd/libimapd.a, which the
# daemon, the unit tests and the fuzz targets link.
noinst_LIBRARIES += imapd/libimapd.a
imapd_libimapd_a_SOURCES = \
	imapd/imap-pool.c imapd/imap-pool.h \
	imapd/imap-parser.c imapd/imap-parser.h \
	imapd/imap-seqset.c imapd/imap-seqset.h \
	imapd/imap-utf7.c imapd/imap-utf7.h \
	imapd/imap-write.c imapd/imap-write.h \
	imapd/imap-date.c imapd/imap-date.h \
	imapd/imap-search.c imapd/imap-search.h
LIBIMAPD = imapd/libimapd.a

sbin_PROGRAMS += imapd/congvu-imapd
imapd_congvu_imapd_SOURCES = \
	imapd/imapd.c \
	imapd/imap-session.c imapd/imap-session.h \
	imapd/imap-view.c \
	imapd/imap-commands.c \
	imapd/cmd-auth.c \
	imapd/cmd-mailbox.c \
	imapd/cmd-message.c \
	imapd/imap-fetch.c
imapd_congvu_imapd_CFLAGS = $(AM_CFLAGS)
imapd_congvu_imapd_LDADD = $(LIBIMAPD) $(LIBCONGVU_STORE) $(LIBCONGVU_NET) $(LIBCONGVU_MIME) \
	$(LIBCONGVU)

UNIT_TESTS += tests/unit/test-imap-parser tests/unit/test-imap-util tests/unit/test-imap-search
check_PROGRAMS += tests/unit/test-imap-parser tests/unit/test-imap-util tests/unit/test-imap-search
tests_unit_test_imap_search_SOURCES = tests/unit/test-imap-search.c
tests_unit_test_imap_search_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
tests_unit_test_imap_search_LDADD = $(LIBIMAPD) $(LIBCONGVU_MIME) $(LIBCONGVU) $(CHECK_LIBS)
tests_unit_test_imap_parser_SOURCES = tests/unit/test-imap-parser.c
tests_unit_test_imap_parser_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
tests_unit_test_imap_parser_LDADD = $(LIBIMAPD) $(LIBCONGVU_MIME) $(LIBCONGVU) $(CHECK_LIBS)
tests_unit_test_imap_util_SOURCES = tests/unit/test-imap-util.c
tests_unit_test_imap_util_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
tests_unit_test_imap_util_LDADD = $(LIBIMAPD) $(LIBCONGVU_MIME) $(LIBCONGVU) $(CHECK_LIBS)

if FUZZERS
noinst_PROGRAMS += tests/fuzz/fuzz-imap-parser
tests_fuzz_fuzz_imap_parser_SOURCES = tests/fuzz/fuzz-imap-parser.c
tests_fuzz_fuzz_imap_parser_CFLAGS = $(AM_CFLAGS) -fsanitize=fuzzer
tests_fuzz_fuzz_imap_parser_LDFLAGS = $(AM_LDFLAGS) -fsanitize=fuzzer
tests_fuzz_fuzz_imap_parser_LDADD = $(LIBIMAPD) $(LIBCONGVU_MIME) $(LIBCONGVU)
endif

EXTRA_DIST += doc/imapd.md tests/fuzz/fuzz-imap-parser.c

INTEGRATION_TESTS += tests/integration/imapd_basic.py tests/integration/imapd_abuse.py \
	tests/integration/imapd_idle.py tests/integration/imapd_mbsync.py \
	tests/integration/imapd_protocol.py tests/integration/imapd_login_limit.py
EXTRA_DIST += tests/integration/imapd_common.py tests/integration/imapd_basic.py \
	tests/integration/imapd_abuse.py tests/integration/imapd_idle.py \
	tests/integration/imapd_mbsync.py tests/integration/imapd_protocol.py \
	tests/integration/imapd_login_limit.py
