#!/bin/sh
# conf/settings.md and conf/congvu.conf are generated from the settings table:
# fail when a setting changed and `make update-conf` was not run.
set -eu
b=${top_builddir:-.}
s=${top_srcdir:-.}
"$b/conf/gen-settings" --markdown | diff -u "$s/conf/settings.md" - ||
	{ echo "conf/settings.md is stale: run make update-conf"; exit 1; }
"$b/conf/gen-settings" --conf | diff -u "$s/conf/congvu.conf" - ||
	{ echo "conf/congvu.conf is stale: run make update-conf"; exit 1; }
