# bench/: benchmarks, built by `make bench` and run by `make bench-run`;
# each prints its figures beside the peer's, measured in the same run.
EXTRA_PROGRAMS += bench/bench-store
bench_bench_store_SOURCES = bench/store.c
bench_bench_store_CFLAGS = $(AM_CFLAGS) $(LMDB_CFLAGS)
bench_bench_store_LDADD = $(LIBCONGVU_STORE) $(LIBCONGVU) $(LMDB_LIBS) $(PTHREAD_LIBS)
CLEANFILES += bench/bench-store

bench: bench/bench-store
bench-store: bench/bench-store
	bench/bench-store
bench-run: bench-store
.PHONY: bench bench-store bench-run

# congvu-imapd against Dovecot (bench/imap.py; needs dovecot-imapd and root)
EXTRA_DIST += bench/imap.py
bench-imap: imapd/congvu-imapd quota/congvu-quota
	$(PYTHON3) $(top_srcdir)/bench/imap.py --build $(abs_top_builddir)
bench-run: bench-imap
.PHONY: bench-imap

# outbound delivery: congvu-smtpd against Postfix relaying to smtp-sink
# (bench/outbound.py; needs postfix and root)
EXTRA_DIST += bench/outbound.py
bench-outbound: smtpd/congvu-smtpd
	$(PYTHON3) $(top_srcdir)/bench/outbound.py
bench-run: bench-outbound
.PHONY: bench-outbound
