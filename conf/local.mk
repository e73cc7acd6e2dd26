# conf/: sample configuration, its reference page, systemd units, MTA snippets.
noinst_PROGRAMS += conf/gen-settings
conf_gen_settings_SOURCES = conf/gen-settings.c
conf_gen_settings_LDADD = $(LIBCONGVU)
dist_noinst_DATA += conf/congvu.conf conf/settings.md
EXTRA_DIST += conf/congvu-smtpd.service conf/congvu-imapd.service \
	conf/congvu-milter-spam.service tests/integration/conf_sync.sh

# The committed reference and sample must match the settings table.
INTEGRATION_TESTS += tests/integration/conf_sync.sh

# Regenerate both after changing a settings.def.
update-conf: conf/gen-settings
	conf/gen-settings --markdown > $(srcdir)/conf/settings.md
	conf/gen-settings --conf > $(srcdir)/conf/congvu.conf
.PHONY: update-conf
