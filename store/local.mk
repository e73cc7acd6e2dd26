# store/: the mailbox store, the only code that includes <lmdb.h>.
noinst_LIBRARIES += store/libcongvu-store.a
store_libcongvu_store_a_SOURCES = \
	store/store.c store/store.h store/store-private.h \
	store/accounts.c store/mailboxes.c store/messages.c \
	store/deliver.c store/queue.c
store_libcongvu_store_a_CFLAGS = $(AM_CFLAGS) $(LMDB_CFLAGS) $(OPENSSL_CFLAGS)
LIBCONGVU_STORE = store/libcongvu-store.a $(LMDB_LIBS) $(OPENSSL_LIBS)
