# lib/: code every program shares.
noinst_LIBRARIES += lib/libcongvu.a
lib_libcongvu_a_SOURCES = \
	lib/xalloc.c lib/xalloc.h \
	lib/str.c lib/str.h \
	lib/log.c lib/log.h \
	lib/settings.c lib/settings.h \
	lib/password.c lib/password.h \
	lib/address.c lib/address.h \
	lib/base64.c lib/base64.h \
	lib/cli.c lib/cli.h
EXTRA_DIST += lib/settings.def lib/settings-table.def smtpd/settings.def \
	imapd/settings.def milter-spam/settings.def

LIBCONGVU = lib/libcongvu.a $(CRYPT_LIBS) $(OPENSSL_LIBS)


UNIT_TESTS += tests/unit/test-settings tests/unit/test-lib
check_PROGRAMS += tests/unit/test-settings tests/unit/test-lib
tests_unit_test_settings_SOURCES = tests/unit/test-settings.c
tests_unit_test_settings_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
tests_unit_test_settings_LDADD = $(LIBCONGVU) $(CHECK_LIBS)
tests_unit_test_lib_SOURCES = tests/unit/test-lib.c
tests_unit_test_lib_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
tests_unit_test_lib_LDADD = $(LIBCONGVU) $(CHECK_LIBS)

if FUZZERS
noinst_PROGRAMS += tests/fuzz/fuzz-settings
tests_fuzz_fuzz_settings_SOURCES = tests/fuzz/fuzz-settings.c
tests_fuzz_fuzz_settings_CFLAGS = $(AM_CFLAGS) -fsanitize=fuzzer
tests_fuzz_fuzz_settings_LDFLAGS = $(AM_LDFLAGS) -fsanitize=fuzzer
tests_fuzz_fuzz_settings_LDADD = $(LIBCONGVU)
endif
EXTRA_DIST += tests/fuzz/fuzz-settings.c
