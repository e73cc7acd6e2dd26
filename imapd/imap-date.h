/* IMAP dates (RFC 9051 9: date, date-time) and RFC 5322 Date: header
 * values, as Unix times. */
#ifndef CONGVU_IMAP_DATE_H
#define CONGVU_IMAP_DATE_H

#include <stdbool.h>
#include <stdint.h>

#include "str.h"

/* "1-Feb-1994" (or "01-Feb-1994"): the start of that day, UTC. */
bool imap_date_parse(const char *s, int64_t *t_r);
/* "01-Feb-1994 21:52:25 -0800" ("1-Feb" with a leading space too). */
bool imap_datetime_parse(const char *s, int64_t *t_r);
/* Appends "\"01-Feb-1994 21:52:25 +0000\"" (quoted, UTC). */
void imap_datetime_write(struct str *out, int64_t t);
/* An RFC 5322 date ("Tue, 1 Feb 1994 21:52:25 -0800 (PST)", obsolete forms
 * and two-digit years tolerated); false when unreadable. */
bool rfc5322_date_parse(const char *s, int64_t *t_r);
/* Start of the UTC day of t. */
int64_t day_start(int64_t t);

#endif
