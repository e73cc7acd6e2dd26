#include "config.h"

#include "address.h"
#include "charset.h"
#include "rules.h"
#include "str.h"
#include "utf8.h"
#include "xalloc.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

bool rules_name_is_executable(const char *name, size_t len, const char *exts)
{
	/* Trailing dots and spaces are dropped by Windows: "a.exe." runs. */
	while (len > 0 && (name[len - 1] == '.' || name[len - 1] == ' '))
		len--;
	const char *dot = NULL;
	for (size_t i = len; i > 0; i--) {
		if (name[i - 1] == '.') {
			dot = name + i - 1;
			break;
		}
		if (name[i - 1] == '/' || name[i - 1] == '\\')
			break;
	}
	if (dot == NULL)
		return false;
	const char *ext = dot + 1;
	size_t el = len - (size_t)(ext - name);
	if (el == 0)
		return false;
	const char *p = exts;
	while (*p != '\0') {
		p += strspn(p, ", \t.");
		size_t n = strcspn(p, ", \t");
		if (n == 0)
			break;
		if (n == el && strncasecmp(p, ext, n) == 0)
			return true;
		p += n;
	}
	return false;
}

static uint32_t le16(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8;
}

static uint32_t le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

#define ZIP_MAX_NAMES 1000

int rules_zip_names(const unsigned char *zip, size_t len, rules_zip_callback *cb, void *context)
{
	int count = 0;
	/* The end of central directory record: 22 bytes plus a comment of
	 * up to 65535 bytes, searched backwards. */
	if (len >= 22) {
		size_t lowest = len - 22 > 65535 ? len - 22 - 65535 : 0;
		for (size_t i = len - 22 + 1; i-- > lowest;) {
			if (le32(zip + i) != 0x06054b50)
				continue;
			uint32_t entries = le16(zip + i + 10);
			uint32_t cd_size = le32(zip + i + 12);
			uint32_t cd_off = le32(zip + i + 16);
			if (cd_off > i || cd_size > i - cd_off)
				break; /* damaged: fall back to local headers */
			size_t p = cd_off, end = (size_t)cd_off + cd_size;
			for (uint32_t e = 0; e < entries && count < ZIP_MAX_NAMES; e++) {
				if (end - p < 46 || le32(zip + p) != 0x02014b50)
					break;
				size_t nl = le16(zip + p + 28), xl = le16(zip + p + 30),
				       cl = le16(zip + p + 32);
				if (end - p - 46 < nl)
					break;
				count++;
				if (!cb(context, (const char *)zip + p + 46, nl))
					return count;
				size_t skip = 46 + nl + xl + cl;
				if (skip > end - p)
					break;
				p += skip;
			}
			return count;
		}
	}
	/* No usable directory (truncated or doctored archive): walk the local
	 * file headers. */
	size_t p = 0;
	while (len - p >= 30 && count < ZIP_MAX_NAMES && le32(zip + p) == 0x04034b50) {
		size_t nl = le16(zip + p + 26), xl = le16(zip + p + 28);
		uint32_t csize = le32(zip + p + 18);
		if (len - p - 30 < nl)
			break;
		count++;
		if (!cb(context, (const char *)zip + p + 30, nl))
			break;
		size_t skip = 30 + nl + xl;
		if (skip > len - p || csize > len - p - skip)
			break;
		p += skip + csize;
	}
	return count;
}

struct zip_ctx {
	const char *exts;
	const char *zipname;
	struct rule_facts *facts;
};

static bool zip_entry(void *context, const char *name, size_t len)
{
	struct zip_ctx *z = context;
	if (!rules_name_is_executable(name, len, z->exts))
		return true;
	snprintf(z->facts->executable, sizeof(z->facts->executable), "%s:%.*s", z->zipname,
	         (int)(len > 80 ? 80 : len), name);
	/* Keep the name printable for the header. */
	for (char *c = z->facts->executable; *c; c++)
		if ((unsigned char)*c < 0x20 || (unsigned char)*c >= 0x7f || *c == ';')
			*c = '?';
	return false;
}

static bool is_zip(const struct mime_part *p, const char *fn)
{
	if (strcmp(p->type, "application") == 0 &&
	    (strcmp(p->subtype, "zip") == 0 || strcmp(p->subtype, "x-zip-compressed") == 0 ||
	     strcmp(p->subtype, "x-zip") == 0))
		return true;
	size_t n = fn ? strlen(fn) : 0;
	return n > 4 && strcasecmp(fn + n - 4, ".zip") == 0;
}

static void set_name(char *dst, size_t size, const char *name)
{
	snprintf(dst, size, "%s", name);
	for (char *c = dst; *c; c++)
		if ((unsigned char)*c < 0x20 || (unsigned char)*c >= 0x7f || *c == ';')
			*c = '?';
}

void rules_examine(const char *data, size_t len, const struct mime_message *msg, const char *exts,
                   struct rule_facts *f)
{
	memset(f, 0, sizeof(*f));
	const struct mime_part *root = mime_message_root(msg);
	const struct mime_envelope *env = root->envelope;
	if (env != NULL) {
		f->has_date = env->date != NULL && env->date[0] != '\0';
		f->has_message_id = env->message_id != NULL && env->message_id[0] != '\0';
		f->has_subject = env->subject != NULL;
		for (const struct mime_address *a = env->from; a != NULL; a = a->next) {
			if (a->kind == MIME_ADDR_MAILBOX && a->host != NULL && a->host[0] != '\0') {
				f->has_from = true;
				snprintf(f->from_domain, sizeof(f->from_domain), "%s", a->host);
				for (char *c = f->from_domain; *c; c++)
					if (*c >= 'A' && *c <= 'Z')
						*c = (char)(*c + 32);
				if (a->name != NULL) {
					struct str name = STR_INIT;
					charset_decode_header(a->name, strlen(a->name), &name);
					snprintf(f->from_name, sizeof(f->from_name), "%s",
					         name.s ? name.s : "");
					str_free(&name);
					for (char *c = f->from_name; *c; c++)
						if (*c >= 'A' && *c <= 'Z')
							*c = (char)(*c + 32);
				}
				break;
			}
		}
		for (const struct mime_address *a = env->reply_to; a != NULL; a = a->next) {
			if (a->kind == MIME_ADDR_MAILBOX && a->host != NULL && a->host[0] != '\0') {
				snprintf(f->reply_to_domain, sizeof(f->reply_to_domain), "%s",
				         a->host);
				for (char *c = f->reply_to_domain; *c; c++)
					if (*c >= 'A' && *c <= 'Z')
						*c = (char)(*c + 32);
				break;
			}
		}
	}
	struct str body = STR_INIT;
	for (const struct mime_part *p = root; p != NULL; p = mime_part_next(p)) {
		if (p->flags & (MIME_PART_F_NO_BOUNDARY | MIME_PART_F_BAD_CTYPE | MIME_PART_F_NUL |
		                MIME_PART_F_NO_END_BOUNDARY))
			f->bad_mime = true;
		if (p->children != NULL || f->executable[0] != '\0')
			continue;
		const char *fn = mime_part_filename(p);
		if (fn != NULL && rules_name_is_executable(fn, strlen(fn), exts)) {
			set_name(f->executable, sizeof(f->executable), fn);
			continue;
		}
		if (is_zip(p, fn)) {
			str_truncate(&body, 0);
			mime_part_decode_body(data, len, p, &body);
			char zipname[64];
			set_name(zipname, sizeof(zipname), fn ? fn : "zip");
			struct zip_ctx z = {exts, zipname, f};
			rules_zip_names((const unsigned char *)body.s, body.len, zip_entry, &z);
		}
	}
	str_free(&body);
}

bool rules_display_name_spoof(const struct rule_facts *f, const char *locals)
{
	if (f->from_name[0] == '\0' || f->from_domain[0] == '\0' ||
	    domain_is_local(f->from_domain, locals))
		return false;
	char *copy = xstrdup(locals);
	char *save = NULL;
	bool found = false;
	for (char *l = strtok_r(copy, ", \t", &save); l && !found;
	     l = strtok_r(NULL, ", \t", &save)) {
		/* "@lamdong.gov.vn" or ".lamdong.gov.vn" or the bare domain as
		 * a word: not merely "Lam Dong" in a name. */
		size_t ll = strlen(l);
		for (const char *p = f->from_name; (p = strcasestr(p, l)) != NULL; p++) {
			char before = p == f->from_name ? ' ' : p[-1];
			char after = p[ll];
			bool word_end = after == '\0' || after == ' ' || after == '>' ||
			                after == ')' || after == '"' || after == '\'' ||
			                after == ',' || after == ']';
			if (word_end &&
			    (before == '@' || before == ' ' || before == '.' || before == '<' ||
			     before == '(' || before == '"' || before == '[')) {
				found = true;
				break;
			}
		}
	}
	free(copy);
	return found;
}

/* ---- look-alike domains ---- */

/* The "skeleton" of a domain: letters and digits only, with digits and
 * letter pairs that look alike mapped to one form. */
static size_t skeleton(const char *d, char *out, size_t size)
{
	size_t n = 0;
	for (const char *p = d; *p && n + 1 < size; p++) {
		char c = *p;
		if (c >= 'A' && c <= 'Z')
			c = (char)(c + 32);
		if (c == '-' || c == '.' || c == '_')
			continue;
		if (c == '0')
			c = 'o';
		else if (c == '1' || c == 'i')
			c = 'l';
		else if (c == '5')
			c = 's';
		else if (c == 'r' && p[1] == 'n') {
			c = 'm';
			p++;
		} else if (c == 'v' && p[1] == 'v') {
			c = 'w';
			p++;
		}
		out[n++] = c;
	}
	out[n] = '\0';
	return n;
}

/* Optimal string alignment distance, capped: returns 0, 1 or 2 (2 = more). */
static int distance_upto1(const char *a, size_t la, const char *b, size_t lb)
{
	if (la > lb + 1 || lb > la + 1)
		return 2;
	size_t i = 0;
	while (i < la && i < lb && a[i] == b[i])
		i++;
	if (i == la && i == lb)
		return 0;
	/* substitution, insertion, deletion, transposition at i */
	if (la == lb && strcmp(a + i + 1, b + i + 1) == 0)
		return 1;
	if (la == lb && i + 1 < la && a[i] == b[i + 1] && a[i + 1] == b[i] &&
	    strcmp(a + i + 2, b + i + 2) == 0)
		return 1;
	if (la + 1 == lb && strcmp(a + i, b + i + 1) == 0)
		return 1;
	if (lb + 1 == la && strcmp(a + i + 1, b + i) == 0)
		return 1;
	return 2;
}

static bool ends_with_label(const char *d, size_t dl, const char *l, size_t ll)
{
	return dl > ll && d[dl - ll - 1] == '.' && strncasecmp(d + dl - ll, l, ll) == 0;
}

/* RFC 3492 decoding of one "xn--" label's payload into code points;
 * returns the count, or -1 for invalid input. */
#define PUNY_MAX 64
static int punycode_decode(const char *in, size_t len, uint32_t *out)
{
	enum { BASE = 36, TMIN = 1, TMAX = 26, SKEW = 38, DAMP = 700 };
	size_t n_out = 0, b = 0;
	for (size_t j = 0; j < len; j++)
		if (in[j] == '-')
			b = j;
	if (b > PUNY_MAX)
		return -1;
	for (size_t j = 0; j < b; j++) {
		if ((unsigned char)in[j] >= 0x80)
			return -1;
		out[n_out++] = (unsigned char)in[j];
	}
	uint32_t n = 128, bias = 72;
	uint64_t i = 0;
	for (size_t pos = b > 0 ? b + 1 : 0; pos < len;) {
		uint64_t oldi = i, w = 1;
		for (uint32_t k = BASE;; k += BASE) {
			if (pos >= len)
				return -1;
			char c = in[pos++];
			uint32_t digit = c >= '0' && c <= '9'   ? (uint32_t)(c - '0' + 26)
			                 : c >= 'a' && c <= 'z' ? (uint32_t)(c - 'a')
			                 : c >= 'A' && c <= 'Z' ? (uint32_t)(c - 'A')
			                                        : BASE;
			if (digit >= BASE)
				return -1;
			i += digit * w;
			uint32_t t = k <= bias ? TMIN : k >= bias + TMAX ? TMAX : k - bias;
			if (i > 0x10FFFF * (uint64_t)(PUNY_MAX + 1))
				return -1;
			if (digit < t)
				break;
			w *= BASE - t;
			if (w > 0x10FFFF)
				return -1;
		}
		if (n_out >= PUNY_MAX)
			return -1;
		uint64_t delta = oldi == 0 ? (i - oldi) / DAMP : (i - oldi) / 2;
		delta += delta / (n_out + 1);
		uint32_t k = 0;
		while (delta > ((BASE - TMIN) * TMAX) / 2) {
			delta /= BASE - TMIN;
			k += BASE;
		}
		bias = k + (uint32_t)(((BASE - TMIN + 1) * delta) / (delta + SKEW));
		n += (uint32_t)(i / (n_out + 1));
		i %= n_out + 1;
		if (n > 0x10FFFF)
			return -1;
		memmove(out + i + 1, out + i, (n_out - i) * sizeof(*out));
		out[i++] = n;
		n_out++;
	}
	return (int)n_out;
}

/* Latin look-alikes of Cyrillic and Greek letters. */
static uint32_t homoglyph(uint32_t cp)
{
	static const struct {
		uint32_t from, to;
	} map[] = {
	    {0x0430, 'a'}, {0x0435, 'e'}, {0x043e, 'o'}, {0x0440, 'p'}, {0x0441, 'c'},
	    {0x0443, 'y'}, {0x0445, 'x'}, {0x0456, 'i'}, {0x0458, 'j'}, {0x04cf, 'l'},
	    {0x0501, 'd'}, {0x051b, 'q'}, {0x051d, 'w'}, {0x0455, 's'}, {0x0261, 'g'},
	    {0x03bf, 'o'}, {0x03b1, 'a'}, {0x03b9, 'i'}, {0x03ba, 'k'}, {0x03bd, 'v'},
	    {0x03c1, 'p'}, {0x0131, 'i'}, {0x0578, 'n'}, {0x057d, 'u'},
	};
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (map[i].from == cp)
			return map[i].to;
	return cp;
}

/* The ASCII form a reader sees in an internationalised domain: "xn--"
 * labels decoded, raw UTF-8 read as it is, diacritics dropped (â -> a,
 * đ -> d: "lâmđồng.gov.vn"), Cyrillic/Greek look-alikes mapped to Latin.
 * Returns false when the domain is plain ASCII without "xn--" labels (no
 * disguise possible) or does not fold to ASCII. */
static bool idn_skeleton(const char *d, char *out, size_t size)
{
	bool idn = false;
	size_t o = 0;
	const char *p = d;
	while (*p != '\0') {
		const char *dot = strchr(p, '.');
		size_t ll = dot ? (size_t)(dot - p) : strlen(p);
		uint32_t cps[PUNY_MAX + 1];
		int n = 0;
		if (ll > 4 && strncasecmp(p, "xn--", 4) == 0) {
			n = punycode_decode(p + 4, ll - 4, cps);
			if (n < 0)
				return false;
			idn = true;
		} else {
			for (size_t k = 0; k < ll && n < PUNY_MAX;) {
				uint32_t cp;
				size_t used = utf8_decode(p + k, ll - k, &cp);
				if (cp >= 0x80)
					idn = true;
				cps[n++] = cp;
				k += used;
			}
		}
		for (int k = 0; k < n; k++) {
			uint32_t cp = utf8_search_fold(homoglyph(cps[k]));
			if (cp == 0)
				continue; /* a combining mark */
			cp = homoglyph(cp);
			if (cp >= 0x80 || o + 2 >= size)
				return false;
			out[o++] = (char)(cp >= 'A' && cp <= 'Z' ? cp + 32 : cp);
		}
		if (dot == NULL)
			break;
		out[o++] = '.';
		p = dot + 1;
	}
	out[o] = '\0';
	return idn;
}

static int lookalike_ascii(const char *domain, const char *locals);

int rules_lookalike(const char *domain, const char *locals)
{
	char skel[256];
	if (strlen(domain) <= 253 && idn_skeleton(domain, skel, sizeof(skel))) {
		/* An internationalised name that reads as one of ours (or as a
		 * look-alike of one) is a disguise: no such name is ours. */
		char *copy = xstrdup(locals);
		char *save = NULL;
		int idx = 0, found = 0;
		for (char *l = strtok_r(copy, ", \t", &save); l && !found;
		     l = strtok_r(NULL, ", \t", &save)) {
			idx++;
			size_t ll = strlen(l), sl = strlen(skel);
			if ((sl == ll && strcasecmp(skel, l) == 0) ||
			    ends_with_label(skel, sl, l, ll))
				found = idx;
		}
		free(copy);
		return found ? found : lookalike_ascii(skel, locals);
	}
	return lookalike_ascii(domain, locals);
}

static int lookalike_ascii(const char *domain, const char *locals)
{
	size_t dl = strlen(domain);
	if (dl == 0 || dl > 253)
		return 0;
	char dlow[256];
	for (size_t i = 0; i <= dl; i++)
		dlow[i] = (char)(domain[i] >= 'A' && domain[i] <= 'Z' ? domain[i] + 32 : domain[i]);
	while (dl > 0 && dlow[dl - 1] == '.')
		dlow[--dl] = '\0';
	char *copy = xstrdup(locals);
	char *save = NULL;
	int idx = 0, found = 0;
	/* Our own domains and their subdomains are never look-alikes. */
	for (char *l = strtok_r(copy, ", \t", &save); l; l = strtok_r(NULL, ", \t", &save)) {
		size_t ll = strlen(l);
		if ((ll == dl && strcasecmp(l, dlow) == 0) || ends_with_label(dlow, dl, l, ll)) {
			free(copy);
			return 0;
		}
	}
	free(copy);
	copy = xstrdup(locals);
	save = NULL;
	for (char *l = strtok_r(copy, ", \t", &save); l && !found;
	     l = strtok_r(NULL, ", \t", &save)) {
		idx++;
		size_t ll = strlen(l);
		if (ll < 6)
			continue;
		char sd[256], sl[256];
		size_t nd = skeleton(dlow, sd, sizeof(sd)), nl = skeleton(l, sl, sizeof(sl));
		/* lamdong-gov.vn, 1amdong.gov.vn, lamdong.govvn */
		if (nd == nl && strcmp(sd, sl) == 0)
			found = idx;
		/* lamdomg.gov.vn, lamdonq.gov.vn, lamdnog.gov.vn */
		else if (distance_upto1(sd, nd, sl, nl) <= 1)
			found = idx;
		/* lamdong.gov.vn.example.com, lamdong-gov-vn.example.com */
		else if (dl > ll + 1 && strncasecmp(dlow, l, ll) == 0 && dlow[ll] == '.')
			found = idx;
		else if (nd > nl && strncmp(sd, sl, nl) == 0 && nl >= 10)
			found = idx;
	}
	free(copy);
	return found;
}
