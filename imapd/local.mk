# imapd/: congvu-imapd. The protocol cores (parser, sequence sets, mailbox
# name encoding, response writing, SEARCH) form imapd/libimapd.a, which the
# daemon, the unit tests and the fuzz targets link.
noinst_LIBRARIES += imapd/libimapd.a
imapd_libimapd_a_SOURCES = \
	imapd/imap-pool.c imapd/imap-pool.h \
	imapd/imap-parser.c imapd/imap-parser.h \
	imapd/imap-seqset.c imapd/imap-seqset.h \
	imapd/imap-utf7.c imapd/imap-utf7.h \
	imapd/imap-write.c imapd/imap-write.h
LIBIMAPD = imapd/libimapd.a

UNIT_TESTS += tests/unit/test-imap-parser tests/unit/test-imap-util
check_PROGRAMS += tests/unit/test-imap-parser tests/unit/test-imap-util
tests_unit_test_imap_parser_SOURCES = tests/unit/test-imap-parser.c
tests_unit_test_imap_parser_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
tests_unit_test_imap_parser_LDADD = $(LIBIMAPD) $(LIBCONGVU) $(CHECK_LIBS)
tests_unit_test_imap_util_SOURCES = tests/unit/test-imap-util.c
tests_unit_test_imap_util_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
tests_unit_test_imap_util_LDADD = $(LIBIMAPD) $(LIBCONGVU) $(CHECK_LIBS)

if FUZZERS
EXTRA_PROGRAMS += tests/fuzz/fuzz-imap-parser
noinst_PROGRAMS += tests/fuzz/fuzz-imap-parser
tests_fuzz_fuzz_imap_parser_SOURCES = tests/fuzz/fuzz-imap-parser.c
tests_fuzz_fuzz_imap_parser_CFLAGS = $(AM_CFLAGS) -fsanitize=fuzzer
tests_fuzz_fuzz_imap_parser_LDFLAGS = $(AM_LDFLAGS) -fsanitize=fuzzer
tests_fuzz_fuzz_imap_parser_LDADD = $(LIBIMAPD) $(LIBCONGVU)
endif

EXTRA_DIST += doc/imapd.md
