# lib/: the networking layer (event loop, connections, TLS, listeners,
# networks, SASL, frames between processes, privilege separation).
noinst_LIBRARIES += lib/libcongvu-net.a
lib_libcongvu_net_a_SOURCES = \
	lib/ioloop.c lib/ioloop.h \
	lib/conn.c lib/conn.h \
	lib/tls.c lib/tls.h \
	lib/listen.c lib/listen.h \
	lib/net.c lib/net.h \
	lib/sasl.c lib/sasl.h \
	lib/frame.c lib/frame.h \
	lib/privsep.c lib/privsep.h \
	lib/reload.c lib/reload.h
lib_libcongvu_net_a_CFLAGS = $(AM_CFLAGS) $(OPENSSL_CFLAGS)

LIBCONGVU_NET = lib/libcongvu-net.a $(OPENSSL_LIBS)

UNIT_TESTS += tests/unit/test-net
check_PROGRAMS += tests/unit/test-net
tests_unit_test_net_SOURCES = tests/unit/test-net.c
tests_unit_test_net_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS) $(OPENSSL_CFLAGS)
tests_unit_test_net_LDADD = $(LIBCONGVU_NET) $(LIBCONGVU) $(CHECK_LIBS)
