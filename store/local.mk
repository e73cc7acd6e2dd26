# store/: the mailbox store, the only code that includes <lmdb.h>.
noinst_LIBRARIES += store/libcongvu-store.a
store_libcongvu_store_a_SOURCES = \
	store/store.c store/store.h store/store-private.h \
	store/accounts.c store/mailboxes.c store/messages.c store/blobs.c \
	store/deliver.c store/queue.c store/options.c store/compact.c
store_libcongvu_store_a_CFLAGS = $(AM_CFLAGS) $(LMDB_CFLAGS) $(OPENSSL_CFLAGS) $(ZSTD_CFLAGS)
LIBCONGVU_STORE = store/libcongvu-store.a $(LMDB_LIBS) $(ZSTD_LIBS) $(OPENSSL_LIBS)

UNIT_TESTS += tests/unit/test-store
check_PROGRAMS += tests/unit/test-store
tests_unit_test_store_SOURCES = tests/unit/test-store.c
tests_unit_test_store_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS) $(LMDB_CFLAGS)
tests_unit_test_store_LDADD = $(LIBCONGVU_STORE) $(LIBCONGVU) $(CHECK_LIBS)
