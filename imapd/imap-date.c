#include "config.h"
#include "imap-date.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char months[12][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
				    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian; m 1..12). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int *y_r, unsigned *m_r, unsigned *d_r)
{
	z += 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	unsigned doe = (unsigned)(z - era * 146097);
	unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t y = (int64_t)yoe + era * 400;
	unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	unsigned mp = (5 * doy + 2) / 153;
	unsigned d = doy - (153 * mp + 2) / 5 + 1;
	unsigned m = mp < 10 ? mp + 3 : mp - 9;
	*y_r = (int)(y + (m <= 2));
	*m_r = m;
	*d_r = d;
}

static int month_index(const char *s)
{
	for (int i = 0; i < 12; i++)
		if (strncasecmp(s, months[i], 3) == 0)
			return i;
	return -1;
}

static const char *num(const char *s, unsigned min_digits, unsigned max_digits, unsigned *n_r)
{
	unsigned n = 0, k = 0;
	while (k < max_digits && isdigit((unsigned char)s[k])) {
		n = n * 10 + (unsigned)(s[k] - '0');
		k++;
	}
	if (k < min_digits)
		return NULL;
	*n_r = n;
	return s + k;
}

static bool valid_ymd(unsigned y, unsigned m, unsigned d)
{
	static const unsigned mdays[12] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	return y >= 1 && y <= 9999 && m >= 1 && m <= 12 && d >= 1 && d <= mdays[m - 1];
}

bool imap_date_parse(const char *s, int64_t *t_r)
{
	unsigned d, y;
	s = num(s, 1, 2, &d);
	if (s == NULL || *s != '-')
		return false;
	int m = month_index(s + 1);
	if (m < 0 || s[4] != '-')
		return false;
	s = num(s + 5, 4, 4, &y);
	if (s == NULL || *s != '\0' || !valid_ymd(y, (unsigned)m + 1, d))
		return false;
	*t_r = days_from_civil(y, (unsigned)m + 1, d) * 86400;
	return true;
}

bool imap_datetime_parse(const char *s, int64_t *t_r)
{
	unsigned d, y, hh, mm, ss, zh, zm;
	if (*s == ' ')
		s++;
	s = num(s, 1, 2, &d);
	if (s == NULL || *s != '-')
		return false;
	int m = month_index(s + 1);
	if (m < 0 || s[4] != '-')
		return false;
	s = num(s + 5, 4, 4, &y);
	if (s == NULL || *s++ != ' ')
		return false;
	if ((s = num(s, 2, 2, &hh)) == NULL || *s++ != ':' || (s = num(s, 2, 2, &mm)) == NULL ||
	    *s++ != ':' || (s = num(s, 2, 2, &ss)) == NULL || *s++ != ' ')
		return false;
	char sign = *s++;
	if ((sign != '+' && sign != '-') || (s = num(s, 2, 2, &zh)) == NULL ||
	    (s = num(s, 2, 2, &zm)) == NULL || *s != '\0')
		return false;
	if (!valid_ymd(y, (unsigned)m + 1, d) || hh > 23 || mm > 59 || ss > 60 || zm > 59)
		return false;
	int64_t t = days_from_civil(y, (unsigned)m + 1, d) * 86400 + hh * 3600 + mm * 60 + ss;
	int64_t off = (int64_t)(zh * 60 + zm) * 60;
	*t_r = sign == '+' ? t - off : t + off;
	return true;
}

void imap_datetime_write(struct str *out, int64_t t)
{
	int64_t days = t >= 0 ? t / 86400 : -((-t + 86399) / 86400);
	int64_t rem = t - days * 86400;
	int y;
	unsigned m, d;
	civil_from_days(days, &y, &m, &d);
	str_printf(out, "\"%02u-%s-%04d %02u:%02u:%02u +0000\"", d, months[m - 1], y,
		   (unsigned)(rem / 3600), (unsigned)(rem / 60 % 60), (unsigned)(rem % 60));
}

int64_t day_start(int64_t t)
{
	int64_t days = t >= 0 ? t / 86400 : -((-t + 86399) / 86400);
	return days * 86400;
}

static const char *skip_cfws(const char *s)
{
	for (;;) {
		while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
			s++;
		if (*s != '(')
			return s;
		int depth = 0;
		do {
			if (*s == '(')
				depth++;
			else if (*s == ')')
				depth--;
			else if (*s == '\\' && s[1])
				s++;
			else if (*s == '\0')
				return s;
			s++;
		} while (depth > 0);
	}
}

bool rfc5322_date_parse(const char *s, int64_t *t_r)
{
	unsigned d, y, hh, mm, ss = 0;
	s = skip_cfws(s);
	/* optional day of week */
	if (isalpha((unsigned char)*s)) {
		while (isalpha((unsigned char)*s))
			s++;
		s = skip_cfws(s);
		if (*s == ',')
			s++;
		s = skip_cfws(s);
	}
	if ((s = num(s, 1, 2, &d)) == NULL)
		return false;
	s = skip_cfws(s);
	if (*s == '-')
		s++;
	int m = month_index(s);
	if (m < 0)
		return false;
	while (isalpha((unsigned char)*s))
		s++;
	s = skip_cfws(s);
	if (*s == '-')
		s++;
	const char *ys = s;
	if ((s = num(s, 2, 4, &y)) == NULL)
		return false;
	if (s - ys == 2)
		y += y < 50 ? 2000 : 1900;
	else if (s - ys == 3)
		y += 1900;
	s = skip_cfws(s);
	if ((s = num(s, 1, 2, &hh)) == NULL || *s++ != ':' || (s = num(s, 2, 2, &mm)) == NULL)
		return false;
	if (*s == ':') {
		if ((s = num(s + 1, 2, 2, &ss)) == NULL)
			return false;
	}
	s = skip_cfws(s);
	int64_t off = 0;
	if (*s == '+' || *s == '-') {
		unsigned z;
		const char *zs = s + 1;
		const char *e = num(zs, 4, 4, &z);
		if (e != NULL) {
			off = (int64_t)((z / 100) * 60 + z % 100) * 60;
			if (*s == '-')
				off = -off;
		}
	} else if (isalpha((unsigned char)*s)) {
		static const struct {
			const char *name;
			int hours;
		} zones[] = { { "UT", 0 }, { "GMT", 0 }, { "EST", -5 }, { "EDT", -4 }, { "CST", -6 },
			      { "CDT", -5 }, { "MST", -7 }, { "MDT", -6 }, { "PST", -8 }, { "PDT", -7 } };
		for (size_t i = 0; i < sizeof(zones) / sizeof(zones[0]); i++)
			if (strncasecmp(s, zones[i].name, strlen(zones[i].name)) == 0 &&
			    !isalpha((unsigned char)s[strlen(zones[i].name)]))
				off = zones[i].hours * 3600;
	}
	if (!valid_ymd(y, (unsigned)m + 1, d) || hh > 23 || mm > 59 || ss > 60)
		return false;
	*t_r = days_from_civil(y, (unsigned)m + 1, d) * 86400 + hh * 3600 + mm * 60 + ss - off;
	return true;
}
