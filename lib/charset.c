/* Transfer decodings, RFC 2047/2231 and iconv conversion to UTF-8.
 * Everything is best effort: mail in the wild is full of mislabelled
 * charsets, broken base64 and bare 8-bit headers, and a reader still wants
 * to see something. */
#include "config.h"
#include "charset.h"
#include "base64.h"
#include "utf8.h"
#include "xalloc.h"

#include <errno.h>
#include <iconv.h>
#include <pthread.h>
#include <string.h>
#include <strings.h>

/* Longest charset name we accept; longer ones are treated as unknown. */
#define CHARSET_NAME_MAX 64

static int hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int charset_base64_decode(const char *in, size_t len, struct str *out)
{
	return base64_decode_lenient(in, len, out);
}

static int qp_decode(const char *in, size_t len, struct str *out, bool qword)
{
	const unsigned char *s = (const unsigned char *)in;
	int ret = 0;
	size_t i = 0;

	str_reserve(out, len);
	while (i < len) {
		/* one line at a time: trailing whitespace of a line was
		 * possibly added in transport and is deleted (RFC 2045 6.7 (3)) */
		const unsigned char *nl = memchr(s + i, '\n', len - i);
		size_t line_end = nl != NULL ? (size_t)(nl - s) : len;
		size_t eol_len = 0;
		if (nl != NULL) {
			eol_len = 1;
			if (line_end > i && s[line_end - 1] == '\r') {
				line_end--;
				eol_len = 2;
			}
		}
		size_t text_end = line_end;
		if (!qword) {
			while (text_end > i && (s[text_end - 1] == ' ' || s[text_end - 1] == '\t'))
				text_end--;
		}
		bool soft = false;
		size_t run = i;
		for (size_t j = i; j < text_end; j++) {
			if (s[j] == '_' && qword) {
				str_append(out, s + run, j - run);
				str_appendc(out, ' ');
				run = j + 1;
				continue;
			}
			if (s[j] != '=')
				continue;
			str_append(out, s + run, j - run);
			if (j + 1 == text_end && !qword) {
				soft = true; /* "=" at the end: soft line break */
				run = text_end;
				break;
			}
			int h, l;
			if (j + 2 < text_end && (h = hexval(s[j + 1])) >= 0 &&
			    (l = hexval(s[j + 2])) >= 0) {
				str_appendc(out, (char)(h << 4 | l));
				j += 2;
				run = j + 1;
			} else {
				/* malformed: keep the '=' literally */
				str_appendc(out, '=');
				run = j + 1;
				ret = 1;
			}
		}
		if (run < text_end)
			str_append(out, s + run, text_end - run);
		if (!soft && eol_len > 0)
			str_append(out, s + line_end, eol_len);
		i = line_end + eol_len;
		if (nl == NULL)
			break;
	}
	str_append(out, "", 0);
	return ret;
}

int charset_qp_decode(const char *in, size_t len, struct str *out)
{
	return qp_decode(in, len, out, false);
}

int charset_qword_decode(const char *in, size_t len, struct str *out)
{
	return qp_decode(in, len, out, true);
}

/* Maps a charset label to the name given to iconv, or to "" for UTF-8 (no
 * iconv needed), or NULL when the label is unusable. buf holds the result. */
static const char *charset_map(const char *charset, char *buf, size_t bufsize)
{
	static const struct {
		const char *label, *iconv_name;
	} aliases[] = {
	    /* WHATWG: these labels mean windows-1252 in practice */
	    {"us-ascii", "WINDOWS-1252"},
	    {"ascii", "WINDOWS-1252"},
	    {"ansi_x3.4-1968", "WINDOWS-1252"},
	    {"iso-8859-1", "WINDOWS-1252"},
	    {"iso8859-1", "WINDOWS-1252"},
	    {"iso_8859-1", "WINDOWS-1252"},
	    {"latin1", "WINDOWS-1252"},
	    {"l1", "WINDOWS-1252"},
	    {"cp819", "WINDOWS-1252"},
	    {"utf-8", ""},
	    {"utf8", ""},
	    {"unicode-1-1-utf-8", ""},
	    {"x-unicode20utf8", ""},
	    {"ks_c_5601-1987", "CP949"},
	    {"ks_c_5601", "CP949"},
	    {"euc-kr", "CP949"},
	    {"gb2312", "GB18030"},
	    {"gbk", "GB18030"},
	    {"x-gbk", "GB18030"},
	    {"cp936", "GB18030"},
	    {"shift_jis", "CP932"},
	    {"shift-jis", "CP932"},
	    {"x-sjis", "CP932"},
	    {"sjis", "CP932"},
	    {"windows-31j", "CP932"},
	    {"iso-8859-8-i", "ISO-8859-8"},
	    {"windows-874", "CP874"},
	    {"tis-620", "CP874"},
	    {"iso-8859-11", "CP874"},
	    {"big5", "BIG5-HKSCS"},
	    {"x-mac-roman", "MACINTOSH"},
	    {"unicode-1-1-utf-7", "UTF-7"},
	    {"vscii", "TCVN5712-1"},
	    {"tcvn", "TCVN5712-1"},
	    {"x-viet-tcvn", "TCVN5712-1"},
	};
	size_t n = 0;

	if (charset == NULL)
		return NULL;
	while (*charset == ' ' || *charset == '\t' || *charset == '"')
		charset++;
	for (; charset[n] != '\0' && n < bufsize; n++) {
		unsigned char c = (unsigned char)charset[n];
		if (c == '"' || c == ' ' || c == '\t' || c == '*')
			break; /* "*" starts an RFC 2231 language suffix */
		/* a charset name is a token: keep iconv from seeing "//"
		 * modifiers or path-like names */
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_' || c == '.' || c == ':'))
			return NULL;
		buf[n] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
	}
	if (n == 0 || n >= bufsize)
		return NULL;
	buf[n] = '\0';
	for (size_t i = 0; i < sizeof(aliases) / sizeof(aliases[0]); i++) {
		if (strcmp(buf, aliases[i].label) == 0)
			return aliases[i].iconv_name;
	}
	return buf;
}

/* Descriptors to UTF-8 kept open between calls: every iconv_open() makes
 * glibc look the gconv module up again (file opens and a dlopen), hundreds
 * of times for one IMAP SEARCH. A conversion takes a descriptor out of the
 * pool and puts it back reset, so threads (the milter's) never share one;
 * the least recently returned is closed when the pool is full. */
#define ICONV_POOL_MAX 16

struct iconv_slot {
	char name[CHARSET_NAME_MAX + 1];
	iconv_t cd;
};

static struct iconv_slot iconv_pool[ICONV_POOL_MAX];
static size_t iconv_pool_count;
static pthread_mutex_t iconv_pool_lock = PTHREAD_MUTEX_INITIALIZER;

/* A descriptor from name to UTF-8, (iconv_t)-1 when iconv does not know
 * name. Give it back with iconv_put(). */
static iconv_t iconv_get(const char *name)
{
	iconv_t cd = (iconv_t)-1;
	pthread_mutex_lock(&iconv_pool_lock);
	for (size_t i = iconv_pool_count; i-- > 0;) {
		if (strcmp(iconv_pool[i].name, name) == 0) {
			cd = iconv_pool[i].cd;
			iconv_pool_count--;
			memmove(&iconv_pool[i], &iconv_pool[i + 1],
				(iconv_pool_count - i) * sizeof(iconv_pool[0]));
			break;
		}
	}
	pthread_mutex_unlock(&iconv_pool_lock);
	if (cd == (iconv_t)-1)
		cd = iconv_open("UTF-8", name);
	return cd;
}

static void iconv_put(const char *name, iconv_t cd)
{
	iconv_t evicted = (iconv_t)-1;
	size_t len = strlen(name);
	if (len > CHARSET_NAME_MAX) {
		iconv_close(cd);
		return;
	}
	iconv(cd, NULL, NULL, NULL, NULL); /* back to the initial shift state */
	pthread_mutex_lock(&iconv_pool_lock);
	if (iconv_pool_count == ICONV_POOL_MAX) {
		evicted = iconv_pool[0].cd;
		iconv_pool_count--;
		memmove(&iconv_pool[0], &iconv_pool[1], iconv_pool_count * sizeof(iconv_pool[0]));
	}
	memcpy(iconv_pool[iconv_pool_count].name, name, len + 1);
	iconv_pool[iconv_pool_count].cd = cd;
	iconv_pool_count++;
	pthread_mutex_unlock(&iconv_pool_lock);
	if (evicted != (iconv_t)-1)
		iconv_close(evicted);
}

bool charset_is_known(const char *charset)
{
	char buf[CHARSET_NAME_MAX + 1];
	const char *name = charset_map(charset, buf, sizeof(buf));
	if (name == NULL)
		return false;
	if (*name == '\0')
		return true;
	iconv_t cd = iconv_get(name);
	if (cd == (iconv_t)-1)
		return false;
	iconv_put(name, cd);
	return true;
}

static int iconv_to_utf8(iconv_t cd, const char *in, size_t len, struct str *out)
{
	char *ip = (char *)in;
	size_t il = len;
	int ret = 0;

	while (il > 0) {
		str_reserve(out, il * 2 + 16);
		char *op = out->s + out->len;
		size_t ol = out->cap - out->len - 1;
		size_t r = iconv(cd, &ip, &il, &op, &ol);
		out->len = (size_t)(op - out->s);
		if (r != (size_t)-1)
			break;
		if (errno == E2BIG)
			continue;
		/* EILSEQ or EINVAL (truncated at the end): replace one byte */
		utf8_encode(UTF8_REPLACEMENT, out);
		ip++;
		il--;
		ret = 1;
		iconv(cd, NULL, NULL, NULL, NULL);
	}
	/* flush any shift state (stateful encodings like ISO-2022-JP) */
	str_reserve(out, 16);
	char *op = out->s + out->len;
	size_t ol = out->cap - out->len - 1;
	iconv(cd, NULL, NULL, &op, &ol);
	out->len = (size_t)(op - out->s);
	out->s[out->len] = '\0';
	return ret;
}

/* False for the charsets in which ASCII bytes do not stand for ASCII:
 * the 7-bit stateful ones (UTF-7, ISO-2022-*, HZ) and the 16/32-bit ones,
 * whose text always needs iconv. */
static bool ascii_compatible(const char *name)
{
	static const char *const prefixes[] = {
	    "utf-7",  "utf7",  "iso-2022", "iso2022", "csiso2022", "hz",   "utf-16", "utf16",
	    "utf-32", "utf32", "ucs-2",    "ucs2",    "ucs-4",     "ucs4", "unicode"};
	for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
		if (strncasecmp(name, prefixes[i], strlen(prefixes[i])) == 0)
			return false;
	}
	return true;
}

int charset_to_utf8(const char *charset, const char *in, size_t len, struct str *out)
{
	char buf[CHARSET_NAME_MAX + 1];
	const char *name = charset_map(charset, buf, sizeof(buf));
	bool ascii = true;

	for (size_t i = 0; i < len; i++) {
		if ((unsigned char)in[i] >= 0x80) {
			ascii = false;
			break;
		}
	}
	/* ASCII is the same in every charset we map, except the 7-bit
	 * stateful ones (UTF-7, ISO-2022-*, HZ), which need iconv */
	if (ascii && name != NULL && ascii_compatible(name)) {
		str_append(out, in, len);
		return 0;
	}
	if (name == NULL || *name == '\0') {
		int r = utf8_sanitize(in, len, out);
		return name == NULL ? 1 : r;
	}
	iconv_t cd = iconv_get(name);
	if (cd == (iconv_t)-1) {
		utf8_sanitize(in, len, out);
		return 1;
	}
	int ret = iconv_to_utf8(cd, in, len, out);
	iconv_put(name, cd);
	return ret;
}

/* Raw header text without line ends: UTF-8 when valid, else windows-1252. */
static int append_raw_segment(const char *in, size_t len, struct str *out)
{
	if (!utf8_is_valid(in, len))
		return charset_to_utf8("windows-1252", in, len, out) | 1;
	for (size_t i = 0; i < len; i++) {
		if (in[i] != '\0') /* no header may hold a NUL */
			str_appendc(out, in[i]);
	}
	return 0;
}

static int append_raw_text(const char *in, size_t len, struct str *out)
{
	size_t i = 0;
	int ret = 0;

	while (i < len) {
		size_t j = i;
		while (j < len && in[j] != '\r' && in[j] != '\n')
			j++;
		ret |= append_raw_segment(in + i, j - i, out);
		while (j < len && (in[j] == '\r' || in[j] == '\n'))
			j++;
		i = j;
	}
	str_append(out, "", 0);
	return ret;
}

struct encoded_word {
	const char *charset;
	size_t charset_len;
	char enc;
	const char *text;
	size_t text_len;
	size_t total_len; /* from "=?" to "?=" inclusive */
};

/* Recognises an encoded word at s (which starts with "=?"). Scans at most
 * up to the next '?' after the encoding letter, so repeated attempts stay
 * linear. */
static bool parse_encoded_word(const char *s, size_t len, struct encoded_word *w)
{
	size_t i = 2;

	w->charset = s + 2;
	while (i < len && s[i] != '?' && i - 2 <= CHARSET_NAME_MAX) {
		unsigned char c = (unsigned char)s[i];
		if (c <= ' ' || c >= 0x7f || c == '(' || c == ')' || c == '"')
			return false;
		i++;
	}
	if (i >= len || s[i] != '?' || i == 2)
		return false;
	w->charset_len = i - 2;
	if (i + 2 >= len || s[i + 2] != '?')
		return false;
	w->enc = s[i + 1];
	if (w->enc != 'q' && w->enc != 'Q' && w->enc != 'b' && w->enc != 'B')
		return false;
	i += 3;
	w->text = s + i;
	while (i < len && s[i] != '?' && s[i] != '\r' && s[i] != '\n')
		i++;
	if (i + 1 >= len || s[i] != '?' || s[i + 1] != '=')
		return false;
	w->text_len = (size_t)(s + i - w->text);
	w->total_len = i + 2;
	return true;
}

static int flush_words(struct str *raw, const char *charset, size_t charset_len, struct str *out)
{
	if (raw->len == 0)
		return 0;
	char name[CHARSET_NAME_MAX + 1];
	size_t n = charset_len < CHARSET_NAME_MAX ? charset_len : CHARSET_NAME_MAX;
	memcpy(name, charset, n);
	name[n] = '\0';
	int ret = charset_to_utf8(name, raw->s, raw->len, out);
	str_truncate(raw, 0);
	return ret;
}

int charset_decode_header(const char *in, size_t len, struct str *out)
{
	struct str raw = STR_INIT;
	const char *cur_charset = NULL;
	size_t cur_charset_len = 0;
	size_t i = 0, text_start = 0;
	bool prev_word = false; /* the last thing seen was an encoded word */
	int ret = 0;

	str_reserve(out, len);
	while (i < len) {
		const char *p = memchr(in + i, '=', len - i);
		if (p == NULL)
			break;
		i = (size_t)(p - in);
		struct encoded_word w;
		if (i + 1 >= len || in[i + 1] != '?' || !parse_encoded_word(in + i, len - i, &w)) {
			i++;
			continue;
		}
		/* text between the previous word and this one: dropped when it
		 * is only whitespace between two encoded words (RFC 2047 6.2) */
		bool only_ws = true;
		for (size_t j = text_start; j < i; j++) {
			if (in[j] != ' ' && in[j] != '\t' && in[j] != '\r' && in[j] != '\n') {
				only_ws = false;
				break;
			}
		}
		if (!(prev_word && only_ws)) {
			ret |= flush_words(&raw, cur_charset, cur_charset_len, out);
			ret |= append_raw_text(in + text_start, i - text_start, out);
		}
		/* strip an RFC 2231 language suffix: charset*lang */
		size_t cs_len = w.charset_len;
		const char *star = memchr(w.charset, '*', cs_len);
		if (star != NULL)
			cs_len = (size_t)(star - w.charset);
		if (raw.len > 0 &&
		    (cs_len != cur_charset_len || strncasecmp(cur_charset, w.charset, cs_len) != 0))
			ret |= flush_words(&raw, cur_charset, cur_charset_len, out);
		cur_charset = w.charset;
		cur_charset_len = cs_len;
		if (w.enc == 'b' || w.enc == 'B')
			ret |= charset_base64_decode(w.text, w.text_len, &raw);
		else
			ret |= charset_qword_decode(w.text, w.text_len, &raw);
		i += w.total_len;
		text_start = i;
		prev_word = true;
	}
	ret |= flush_words(&raw, cur_charset, cur_charset_len, out);
	ret |= append_raw_text(in + text_start, len - text_start, out);
	str_free(&raw);
	return ret != 0 ? 1 : 0;
}

int charset_rfc2231_decode(const char *in, size_t len, struct str *out)
{
	const char *q1 = memchr(in, '\'', len);
	const char *q2 = q1 != NULL ? memchr(q1 + 1, '\'', len - (size_t)(q1 + 1 - in)) : NULL;
	char charset[CHARSET_NAME_MAX + 1] = "utf-8";
	const char *text = in;
	size_t text_len = len;
	struct str raw = STR_INIT;
	int ret = 0;

	if (q2 != NULL) {
		size_t n = (size_t)(q1 - in);
		if (n > 0 && n <= CHARSET_NAME_MAX) {
			memcpy(charset, in, n);
			charset[n] = '\0';
		}
		text = q2 + 1;
		text_len = len - (size_t)(text - in);
	} else {
		ret = 1;
	}
	str_reserve(&raw, text_len);
	for (size_t i = 0; i < text_len; i++) {
		int h, l;
		if (text[i] == '%' && i + 2 < text_len &&
		    (h = hexval((unsigned char)text[i + 1])) >= 0 &&
		    (l = hexval((unsigned char)text[i + 2])) >= 0) {
			str_appendc(&raw, (char)(h << 4 | l));
			i += 2;
		} else {
			if (text[i] == '%')
				ret = 1;
			str_appendc(&raw, text[i]);
		}
	}
	ret |= charset_to_utf8(charset, raw.s, raw.len, out);
	str_free(&raw);
	return ret != 0 ? 1 : 0;
}
