#include "config.h"

#include "address.h"
#include "charset.h"
#include "rules.h"
#include "str.h"
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

int rules_lookalike(const char *domain, const char *locals)
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
