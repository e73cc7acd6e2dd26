/* IMAP ENVELOPE / BODY / BODYSTRUCTURE from the parse tree (RFC 3501
 * 7.4.2, RFC 9051 7.5.2) and BODY[section] part numbering (RFC 3501
 * 6.4.5). Type, subtype, encoding, parameter and disposition names are
 * written in upper case as in the RFC's examples (they are
 * case-insensitive); values as sent. */
#include "config.h"
#include "mime-imap.h"
#include "utf8.h"

#include <string.h>

/* Longest string sent quoted; longer ones go as literals. */
#define IMAP_QUOTED_MAX 1024

void mime_imap_append_string(struct str *out, const char *s, size_t len, unsigned int flags)
{
	bool literal = len > IMAP_QUOTED_MAX;
	bool eightbit = false;
	size_t nuls = 0;

	for (size_t i = 0; i < len && !literal; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '\r' || c == '\n')
			literal = true;
		else if (c == '\0')
			nuls++;
		else if (c >= 0x80)
			eightbit = true;
	}
	if (eightbit && !literal) {
		/* UTF8=ACCEPT allows UTF-8 in quoted strings (RFC 6855 3) */
		if (!(flags & MIME_IMAP_UTF8) || !utf8_is_valid(s, len))
			literal = true;
	}
	if (literal) {
		if (nuls == 0 && len > IMAP_QUOTED_MAX) {
			for (size_t i = 0; i < len; i++) {
				if (s[i] == '\0')
					nuls++;
			}
		}
		str_printf(out, "{%zu}\r\n", len - nuls);
		size_t run = 0;
		for (size_t i = 0; i < len; i++) {
			if (s[i] == '\0') {
				str_append(out, s + run, i - run);
				run = i + 1;
			}
		}
		str_append(out, s + run, len - run);
		return;
	}
	str_reserve(out, len + 2);
	str_appendc(out, '"');
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (c == '\0')
			continue;
		if (c == '"' || c == '\\')
			str_appendc(out, '\\');
		str_appendc(out, c);
	}
	str_appendc(out, '"');
}

void mime_imap_append_nstring(struct str *out, const char *s, unsigned int flags)
{
	if (s == NULL)
		str_append(out, "NIL", 3);
	else
		mime_imap_append_string(out, s, strlen(s), flags);
}

static void append_upper(struct str *out, const char *s, unsigned int flags)
{
	struct str up = STR_INIT;
	size_t n = strlen(s);
	str_reserve(&up, n);
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		str_appendc(&up, (char)(c >= 'a' && c <= 'z' ? c - 32 : c));
	}
	mime_imap_append_string(out, up.s, up.len, flags);
	str_free(&up);
}

static void append_addresses(struct str *out, const struct mime_address *a, unsigned int flags)
{
	if (a == NULL) {
		str_append(out, "NIL", 3);
		return;
	}
	str_appendc(out, '(');
	for (; a != NULL; a = a->next) {
		str_appendc(out, '(');
		switch (a->kind) {
		case MIME_ADDR_GROUP_START:
			str_appends(out, "NIL NIL ");
			mime_imap_append_nstring(out, a->mailbox != NULL ? a->mailbox : "", flags);
			str_appends(out, " NIL");
			break;
		case MIME_ADDR_GROUP_END:
			str_appends(out, "NIL NIL NIL NIL");
			break;
		case MIME_ADDR_MAILBOX:
		default:
			mime_imap_append_nstring(out, a->name, flags);
			str_appendc(out, ' ');
			mime_imap_append_nstring(out, a->route, flags);
			str_appendc(out, ' ');
			/* NIL here would turn the entry into a group marker;
			 * Dovecot's placeholders, which clients have long seen */
			mime_imap_append_nstring(out,
			                         a->mailbox != NULL && *a->mailbox != '\0'
			                             ? a->mailbox
			                             : "MISSING_MAILBOX",
			                         flags);
			str_appendc(out, ' ');
			mime_imap_append_nstring(
			    out, a->host != NULL && *a->host != '\0' ? a->host : "MISSING_DOMAIN",
			    flags);
			break;
		}
		str_appendc(out, ')');
	}
	str_appendc(out, ')');
}

void mime_imap_envelope(const struct mime_envelope *env, unsigned int flags, struct str *out)
{
	if (env == NULL) {
		str_appends(out, "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)");
		return;
	}
	str_appendc(out, '(');
	mime_imap_append_nstring(out, env->date, flags);
	str_appendc(out, ' ');
	mime_imap_append_nstring(out, env->subject, flags);
	str_appendc(out, ' ');
	append_addresses(out, env->from, flags);
	str_appendc(out, ' ');
	/* RFC 3501 7.4.2: sender and reply-to default to from */
	append_addresses(out, env->sender != NULL ? env->sender : env->from, flags);
	str_appendc(out, ' ');
	append_addresses(out, env->reply_to != NULL ? env->reply_to : env->from, flags);
	str_appendc(out, ' ');
	append_addresses(out, env->to, flags);
	str_appendc(out, ' ');
	append_addresses(out, env->cc, flags);
	str_appendc(out, ' ');
	append_addresses(out, env->bcc, flags);
	str_appendc(out, ' ');
	mime_imap_append_nstring(out, env->in_reply_to, flags);
	str_appendc(out, ' ');
	mime_imap_append_nstring(out, env->message_id, flags);
	str_appendc(out, ')');
}

static void append_params(struct str *out, const struct mime_param *params, unsigned int count,
                          bool default_charset, unsigned int flags)
{
	bool have_charset = false;

	for (unsigned int i = 0; i < count; i++) {
		if (strcmp(params[i].name, "charset") == 0)
			have_charset = true;
	}
	if (count == 0 && !(default_charset && !have_charset)) {
		str_append(out, "NIL", 3);
		return;
	}
	str_appendc(out, '(');
	for (unsigned int i = 0; i < count; i++) {
		const struct mime_param *p = &params[i];
		if (i > 0)
			str_appendc(out, ' ');
		if (p->extended && !(flags & MIME_IMAP_UTF8)) {
			/* keep RFC 2231's ASCII form: "NAME*" "utf-8''..." */
			struct str name = STR_INIT;
			str_appends(&name, p->name);
			str_appendc(&name, '*');
			append_upper(out, name.s, flags);
			str_free(&name);
			str_appendc(out, ' ');
			mime_imap_append_nstring(out, p->raw_value, flags);
		} else {
			append_upper(out, p->name, flags);
			str_appendc(out, ' ');
			mime_imap_append_nstring(out, p->extended ? p->value : p->raw_value, flags);
		}
	}
	if (default_charset && !have_charset) {
		if (count > 0)
			str_appendc(out, ' ');
		str_appends(out, "\"CHARSET\" \"US-ASCII\"");
	}
	str_appendc(out, ')');
}

/* body-fld-dsp, body-fld-lang, body-fld-loc */
static void append_extension_tail(struct str *out, const struct mime_part *part, unsigned int flags)
{
	str_appendc(out, ' ');
	if (part->disposition == NULL) {
		str_append(out, "NIL", 3);
	} else {
		str_appendc(out, '(');
		append_upper(out, part->disposition, flags);
		str_appendc(out, ' ');
		append_params(out, part->disposition_params, part->disposition_param_count, false,
		              flags);
		str_appendc(out, ')');
	}
	str_appendc(out, ' ');
	/* Content-Language: a comma-separated list of language tags */
	const char *lang = part->language;
	bool any = false;
	if (lang != NULL) {
		const char *p = lang;
		while (*p != '\0') {
			while (*p == ',' || *p == ' ' || *p == '\t')
				p++;
			const char *t = p;
			while (*p != '\0' && *p != ',' && *p != ' ' && *p != '\t' && *p != '(')
				p++;
			if (p > t) {
				str_appendc(out, any ? ' ' : '(');
				mime_imap_append_string(out, t, (size_t)(p - t), flags);
				any = true;
			}
			if (*p == '(') {
				/* a comment: skip it */
				while (*p != '\0' && *p != ')')
					p++;
				if (*p == ')')
					p++;
			}
		}
	}
	if (any)
		str_appendc(out, ')');
	else
		str_append(out, "NIL", 3);
	str_appendc(out, ' ');
	mime_imap_append_nstring(out, part->location, flags);
}

/* A body where the syntax needs one and the message has none. */
static void append_empty_body(struct str *out, bool ext)
{
	str_appends(out, "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 0 0");
	if (ext)
		str_appends(out, " NIL NIL NIL NIL");
	str_appendc(out, ')');
}

static void append_body(struct str *out, const struct mime_part *part, bool ext,
                        unsigned int flags);

static void append_multipart(struct str *out, const struct mime_part *part, bool ext,
                             unsigned int flags)
{
	str_appendc(out, '(');
	if (part->children != NULL) {
		for (const struct mime_part *c = part->children; c != NULL; c = c->next)
			append_body(out, c, ext, flags);
	} else {
		/* a multipart must have a part: an empty one, as Dovecot */
		append_empty_body(out, ext);
	}
	str_appendc(out, ' ');
	append_upper(out, part->subtype, flags);
	if (ext) {
		str_appendc(out, ' ');
		append_params(out, part->params, part->param_count, false, flags);
		append_extension_tail(out, part, flags);
	}
	str_appendc(out, ')');
}

static void append_body(struct str *out, const struct mime_part *part, bool ext, unsigned int flags)
{
	if (strcmp(part->type, "multipart") == 0) {
		append_multipart(out, part, ext, flags);
		return;
	}
	bool text = strcmp(part->type, "text") == 0;
	bool message =
	    strcmp(part->type, "message") == 0 &&
	    (strcmp(part->subtype, "rfc822") == 0 || strcmp(part->subtype, "global") == 0);

	str_appendc(out, '(');
	append_upper(out, part->type, flags);
	str_appendc(out, ' ');
	append_upper(out, part->subtype, flags);
	str_appendc(out, ' ');
	append_params(out, part->params, part->param_count, text, flags);
	str_appendc(out, ' ');
	mime_imap_append_nstring(out, part->id, flags);
	str_appendc(out, ' ');
	mime_imap_append_nstring(out, part->description, flags);
	str_appendc(out, ' ');
	append_upper(out, part->encoding != NULL ? part->encoding : "7bit", flags);
	str_printf(out, " %zu", part->body_len);
	if (message) {
		/* body-type-msg: envelope, body, lines; a message part we did not
		 * descend into (encoded, limits) still needs all three */
		const struct mime_part *child = part->children;
		str_appendc(out, ' ');
		mime_imap_envelope(child != NULL ? child->envelope : NULL, flags, out);
		str_appendc(out, ' ');
		if (child != NULL)
			append_body(out, child, ext, flags);
		else
			append_empty_body(out, ext);
		str_printf(out, " %zu", part->body_lines);
	} else if (text) {
		str_printf(out, " %zu", part->body_lines);
	}
	if (ext) {
		str_appendc(out, ' ');
		mime_imap_append_nstring(out, part->md5, flags);
		append_extension_tail(out, part, flags);
	}
	str_appendc(out, ')');
}

void mime_imap_bodystructure(const struct mime_part *part, bool extensions, unsigned int flags,
                             struct str *out)
{
	append_body(out, part, extensions, flags);
}

static const struct mime_part *nth_child(const struct mime_part *part, unsigned long n)
{
	const struct mime_part *c = part->children;
	for (unsigned long i = 1; c != NULL && i < n; i++)
		c = c->next;
	return c;
}

/* The part numbered n inside message m (a message root). */
static const struct mime_part *message_part(const struct mime_part *m, unsigned long n)
{
	if (strcmp(m->type, "multipart") == 0)
		return nth_child(m, n);
	return n == 1 ? m : NULL;
}

const struct mime_part *mime_imap_section(const struct mime_part *root, const char *spec,
                                          size_t len, size_t *consumed_r)
{
	const struct mime_part *part = root;
	size_t i = 0;
	bool first = true;

	*consumed_r = 0;
	while (i < len && spec[i] >= '0' && spec[i] <= '9') {
		unsigned long n = 0;
		size_t digits = 0;
		while (i < len && spec[i] >= '0' && spec[i] <= '9') {
			if (digits == 0 && spec[i] == '0')
				return NULL; /* nz-number: no 0, no leading zeros */
			n = n * 10 + (unsigned long)(spec[i] - '0');
			if (++digits > 9)
				return NULL;
			i++;
		}
		if (i < len && spec[i] != '.')
			return NULL;
		if (first) {
			part = message_part(root, n);
			first = false;
		} else if (mime_part_is_message(part)) {
			part = message_part(part->children, n);
		} else if (strcmp(part->type, "multipart") == 0) {
			part = nth_child(part, n);
		} else {
			part = NULL;
		}
		if (part == NULL)
			return NULL;
		if (i < len)
			i++; /* the '.' */
	}
	*consumed_r = i;
	return part;
}

const struct mime_part *mime_imap_section_message(const struct mime_part *part)
{
	return mime_part_is_message(part) ? part->children : NULL;
}
