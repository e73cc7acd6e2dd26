# quota/: congvu-quota, the admin tool.
sbin_PROGRAMS += quota/congvu-quota
quota_congvu_quota_SOURCES = quota/congvu-quota.c
quota_congvu_quota_LDADD = $(LIBCONGVU_STORE) $(LIBCONGVU)
