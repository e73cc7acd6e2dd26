# lib/mime.mk: the message parsing library (MIME, charsets, HTML to text,
# UTF-8 folding, IMAP renderings, the cached parse). Included from
# Makefile.am after lib/local.mk.
noinst_LIBRARIES += lib/libcongvu-mime.a
lib_libcongvu_mime_a_SOURCES = \
	lib/mime.c lib/mime.h \
	lib/mime-imap.c lib/mime-imap.h \
	lib/charset.c lib/charset.h \
	lib/html.c lib/html.h \
	lib/utf8.c lib/utf8.h lib/utf8-tables.inc

LIBCONGVU_MIME = lib/libcongvu-mime.a

UNIT_TESTS += tests/unit/test-mime tests/unit/test-utf8
check_PROGRAMS += tests/unit/test-mime tests/unit/test-utf8
tests_unit_test_mime_SOURCES = tests/unit/test-mime.c
tests_unit_test_mime_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
tests_unit_test_mime_LDADD = $(LIBCONGVU_MIME) $(LIBCONGVU) $(CHECK_LIBS)
tests_unit_test_utf8_SOURCES = tests/unit/test-utf8.c
tests_unit_test_utf8_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
tests_unit_test_utf8_LDADD = $(LIBCONGVU_MIME) $(LIBCONGVU) $(CHECK_LIBS)

if FUZZERS
noinst_PROGRAMS += tests/fuzz/fuzz-mime
# the library is compiled into the target again so that libFuzzer's
# coverage instrumentation sees it
tests_fuzz_fuzz_mime_SOURCES = tests/fuzz/fuzz-mime.c $(lib_libcongvu_mime_a_SOURCES)
tests_fuzz_fuzz_mime_CFLAGS = $(AM_CFLAGS) -fsanitize=fuzzer
tests_fuzz_fuzz_mime_LDFLAGS = $(AM_LDFLAGS) -fsanitize=fuzzer
tests_fuzz_fuzz_mime_LDADD = $(LIBCONGVU)
endif
EXTRA_DIST += tests/fuzz/fuzz-mime.c doc/mime.md
