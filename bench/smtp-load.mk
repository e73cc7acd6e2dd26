# bench/smtp-load: the SMTP load generator of bench/smtp.py (congvu-smtpd
# and Postfix are driven by the same program in the same run).
EXTRA_PROGRAMS += bench/smtp-load
bench_smtp_load_SOURCES = bench/smtp-load.c
CLEANFILES += bench/smtp-load

# congvu-smtpd against Postfix relaying to Dovecot LMTP (bench/smtp.py;
# needs postfix, dovecot-lmtpd and root)
EXTRA_DIST += bench/smtp.py
bench: bench/smtp-load
bench-smtp: bench/smtp-load smtpd/congvu-smtpd quota/congvu-quota smtpd/store-peek
	top_builddir=$(abs_top_builddir) $(PYTHON3) $(top_srcdir)/bench/smtp.py
bench-run: bench-smtp
.PHONY: bench-smtp
