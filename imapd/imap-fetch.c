/* FETCH (RFC 9051 6.4.5, RFC 3516 BINARY, RFC 7162 CHANGEDSINCE/VANISHED).
 * ENVELOPE and BODYSTRUCTURE come from the parse cached in the store at
 * delivery; message bytes are read only for the sections asked for. Large
 * result sets are written in batches: each batch in its own short read
 * transaction, the next one when the client has read the output. */
#include "config.h"
#include "conn.h"
#include "imap-date.h"
#include "imap-pool.h"
#include "imap-seqset.h"
#include "imap-session.h"
#include "imap-write.h"
#include "log.h"
#include "mime-imap.h"
#include "mime.h"
#include "xalloc.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum item_type {
	F_FLAGS, F_UID, F_INTERNALDATE, F_SIZE, F_ENVELOPE, F_BODY, F_BODYSTRUCTURE,
	F_SECTION,      /* BODY[...] / BODY.PEEK[...] / RFC822 / .HEADER / .TEXT */
	F_BINARY, F_BINARY_SIZE, F_MODSEQ, F_SAVEDATE,
};

struct fetch_item {
	enum item_type type;
	const char *label;   /* response name, e.g. "BODY[HEADER]" or "RFC822.TEXT" */
	const char *spec;    /* inside [ ] */
	bool partial;
	uint64_t offset, length;
};

struct fetch_state {
	struct fetch_item *items;
	size_t n_items;
	bool need_parse, need_data_all;
	bool set_seen;
	uint64_t changedsince;
	bool vanished;
	uint32_t *uids;
	size_t n_uids, next;
	uint32_t *seen_changed;      /* UIDs whose \Seen this FETCH set (sorted) */
	size_t n_seen_changed;
	/* a large whole message being streamed: its literal's bytes are read in
	 * slices as the client takes them, then trailer ends the response */
	bool streaming;
	uint8_t stream_blob[STORE_BLOB_ID_LEN];
	uint64_t stream_off, stream_left;
	struct str trailer;
};

/* Whole messages at least this large are streamed rather than built in
 * memory; each slice is read in its own short read transaction. */
#define STREAM_MIN (256 * 1024)
#define STREAM_SLICE (128 * 1024)

#define BATCH_OUTPUT (256 * 1024)

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

static bool parse_partial(const char *p, struct fetch_item *it, const char **end_r)
{
	/* <offset.length> */
	if (*p != '<')
		return false;
	const char *dot = strchr(p, '.');
	const char *gt = strchr(p, '>');
	if (dot == NULL || gt == NULL || dot > gt)
		return false;
	if (!imap_parse_number(p + 1, (size_t)(dot - p - 1), UINT32_MAX, &it->offset) ||
	    !imap_parse_number(dot + 1, (size_t)(gt - dot - 1), UINT32_MAX, &it->length) ||
	    it->length == 0)
		return false;
	it->partial = true;
	*end_r = gt + 1;
	return true;
}

/* BODY[...]<..> BODY.PEEK[...]<..> BINARY[...]<..> BINARY.PEEK[..] BINARY.SIZE[..] */
static int parse_section_item(struct fetch_state *st, const char *w, struct fetch_item *it,
			      struct pool *pool)
{
	const char *br = strchr(w, '[');
	size_t base = (size_t)(br - w);
	bool peek = false, binary = false, size = false;
	if (base == 4 && strncasecmp(w, "BODY", 4) == 0)
		;
	else if (base == 9 && strncasecmp(w, "BODY.PEEK", 9) == 0)
		peek = true;
	else if (base == 6 && strncasecmp(w, "BINARY", 6) == 0)
		binary = true;
	else if (base == 11 && strncasecmp(w, "BINARY.PEEK", 11) == 0)
		binary = peek = true;
	else if (base == 11 && strncasecmp(w, "BINARY.SIZE", 11) == 0)
		binary = size = peek = true;
	else
		return -1;
	const char *close = strchr(br, ']');
	if (close == NULL)
		return -1;
	it->spec = p_strndup(pool, br + 1, (size_t)(close - br - 1));
	const char *rest = close + 1;
	if (*rest == '<') {
		if (size || !parse_partial(rest, it, &rest))
			return -1;
	}
	if (*rest != '\0')
		return -1;
	if (binary) {
		/* only part numbers */
		for (const char *q = it->spec; *q; q++)
			if (!((*q >= '0' && *q <= '9') || *q == '.'))
				return -1;
	}
	it->type = size ? F_BINARY_SIZE : binary ? F_BINARY : F_SECTION;
	if (!peek)
		st->set_seen = true;
	/* the response label: BODY[spec]<offset> */
	const char *name = size ? "BINARY.SIZE" : binary ? "BINARY" : "BODY";
	if (it->partial)
		it->label = p_printf(pool, "%s[%s]<%llu>", name, it->spec,
				     (unsigned long long)it->offset);
	else
		it->label = p_printf(pool, "%s[%s]", name, it->spec);
	st->need_parse = true;
	return 0;
}

static int add_item(struct fetch_state *st, const char *w, struct pool *pool, size_t *cap)
{
	if (st->n_items == *cap) {
		size_t ncap = *cap ? *cap * 2 : 8;
		struct fetch_item *n = p_array(pool, ncap, sizeof(*n));
		if (st->n_items)
			memcpy(n, st->items, st->n_items * sizeof(*n));
		st->items = n;
		*cap = ncap;
	}
	struct fetch_item *it = &st->items[st->n_items];
	memset(it, 0, sizeof(*it));
	static const struct {
		const char *name;
		enum item_type type;
	} simple[] = {
		{ "FLAGS", F_FLAGS }, { "UID", F_UID }, { "INTERNALDATE", F_INTERNALDATE },
		{ "RFC822.SIZE", F_SIZE }, { "ENVELOPE", F_ENVELOPE }, { "BODY", F_BODY },
		{ "BODYSTRUCTURE", F_BODYSTRUCTURE }, { "MODSEQ", F_MODSEQ },
		{ "SAVEDATE", F_SAVEDATE },
	};
	for (size_t i = 0; i < sizeof(simple) / sizeof(simple[0]); i++) {
		if (strcasecmp(w, simple[i].name) == 0) {
			it->type = simple[i].type;
			it->label = simple[i].name;
			if (it->type == F_ENVELOPE || it->type == F_BODY || it->type == F_BODYSTRUCTURE)
				st->need_parse = true;
			st->n_items++;
			return 0;
		}
	}
	if (strcasecmp(w, "RFC822") == 0 || strcasecmp(w, "RFC822.HEADER") == 0 ||
	    strcasecmp(w, "RFC822.TEXT") == 0) {
		it->type = F_SECTION;
		it->label = strcasecmp(w, "RFC822") == 0 ? "RFC822"
			    : strcasecmp(w, "RFC822.TEXT") == 0 ? "RFC822.TEXT" : "RFC822.HEADER";
		it->spec = strcasecmp(w, "RFC822") == 0 ? "" : strcasecmp(w, "RFC822.TEXT") == 0 ? "TEXT" : "HEADER";
		if (strcasecmp(w, "RFC822.HEADER") != 0)
			st->set_seen = true;
		st->need_parse = true;
		st->n_items++;
		return 0;
	}
	if (strchr(w, '[') != NULL) {
		if (parse_section_item(st, w, it, pool) < 0)
			return -1;
		st->n_items++;
		return 0;
	}
	return -1;
}

static int parse_items(struct fetch_state *st, const struct imap_arg *arg, struct pool *pool)
{
	size_t cap = 0;
	static const char *const all[] = { "FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", NULL };
	static const char *const fast[] = { "FLAGS", "INTERNALDATE", "RFC822.SIZE", NULL };
	static const char *const full[] = { "FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE",
					    "BODY", NULL };
	if (arg->type == IMAP_ARG_ATOM) {
		const char *const *macro = strcasecmp(arg->str, "ALL") == 0    ? all
					   : strcasecmp(arg->str, "FAST") == 0 ? fast
					   : strcasecmp(arg->str, "FULL") == 0 ? full
									       : NULL;
		if (macro != NULL) {
			for (size_t i = 0; macro[i]; i++)
				add_item(st, macro[i], pool, &cap);
			return 0;
		}
		return add_item(st, arg->str, pool, &cap);
	}
	if (arg->type != IMAP_ARG_LIST || arg->len == 0)
		return -1;
	for (size_t i = 0; i < arg->len; i++) {
		if (arg->list[i].type != IMAP_ARG_ATOM || add_item(st, arg->list[i].str, pool, &cap) < 0)
			return -1;
	}
	return 0;
}

/* ---- producing one message ---- */

struct msg_ctx {
	struct imap_session *s;
	struct store_txn *txn;
	const struct store_message *rec;
	struct mime_message *mime;
	char *data;          /* whole message, loaded on demand */
	size_t len;
	bool failed;
};

static bool load_data(struct msg_ctx *m)
{
	if (m->data != NULL)
		return true;
	if (m->rec->size > SIZE_MAX - 1)
		return false;
	size_t size = (size_t)m->rec->size;
	m->data = xmalloc(size + 1);
	const char *err;
	if (store_txn_blob_read(m->txn, m->rec->blob, 0, m->data, size, &err) < 0) {
		log_err("session=%u error=\"blob read: %s\"", m->s->id, err);
		x_free(&m->data);
		m->failed = true;
		return false;
	}
	m->data[size] = '\0';
	m->len = size;
	return true;
}

/* Bytes [off, off+len) of the message, into out. */
static bool read_range(struct msg_ctx *m, uint64_t off, uint64_t len, struct str *out)
{
	if (m->data != NULL) {
		str_append(out, m->data + off, (size_t)len);
		return true;
	}
	str_reserve(out, (size_t)len);
	const char *err;
	if (store_txn_blob_read(m->txn, m->rec->blob, off, out->s + out->len, (size_t)len, &err) < 0) {
		log_err("session=%u error=\"blob read: %s\"", m->s->id, err);
		m->failed = true;
		return false;
	}
	out->len += (size_t)len;
	out->s[out->len] = '\0';
	return true;
}

static bool load_mime(struct msg_ctx *m)
{
	if (m->mime != NULL)
		return true;
	const void *cache;
	size_t cache_len;
	const char *err;
	int ret = store_txn_blob_parsed(m->txn, m->rec->blob, &cache, &cache_len, &err);
	if (ret == 1 && mime_cache_load(cache, cache_len, &m->mime, &err) == 0 &&
	    mime_message_size(m->mime) == m->rec->size)
		return true;
	mime_message_free(&m->mime);
	/* no usable cache: parse the bytes */
	if (!load_data(m))
		return false;
	m->mime = mime_parse(m->data, m->len);
	return true;
}

static bool field_listed(const char *name, size_t len, const char *const *fields, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strlen(fields[i]) == len && strncasecmp(fields[i], name, len) == 0)
			return true;
	return false;
}

/* The header fields of a header block, filtered (HEADER.FIELDS[.NOT]). */
static void filter_header(const char *hdr, size_t len, const char *list, bool not,
			  struct str *out)
{
	/* list: "(A B C)" */
	const char *fields[256];
	size_t n = 0;
	char buf[4096];
	size_t l = strlen(list);
	if (l >= sizeof(buf))
		l = sizeof(buf) - 1;
	memcpy(buf, list, l);
	buf[l] = '\0';
	for (char *p = buf; *p && n < 256;) {
		while (*p == ' ' || *p == '(' || *p == ')' || *p == '"')
			*p++ = '\0';
		if (*p == '\0')
			break;
		fields[n++] = p;
		while (*p && *p != ' ' && *p != ')' && *p != '"')
			p++;
	}
	struct mime_header_iter it;
	struct mime_header h;
	mime_header_iter_init(&it, hdr, len);
	while (mime_header_iter_next(&it, &h)) {
		if (field_listed(h.name, h.name_len, fields, n) == not)
			continue;
		/* the raw field: name up to the end of the value and its CRLF */
		const char *end = h.value + h.value_len;
		str_append(out, h.name, (size_t)(end - h.name));
		str_append(out, "\r\n", 2);
	}
	str_append(out, "\r\n", 2);
}

/* The top-level header (with its empty line) from the first bytes of the
 * message, without loading the parse, copied to prefix: its length, or 0
 * when it is longer than that or has no end (the parse then decides). One
 * read: the store may have to decompress for each. The store keeps CRLF
 * line ends. */
static size_t quick_header(struct msg_ctx *m, struct str *prefix)
{
	size_t n = m->rec->size < 8192 ? (size_t)m->rec->size : 8192;
	if (m->data != NULL) {
		str_append(prefix, m->data, n);
	} else {
		str_reserve(prefix, n);
		const char *err;
		if (store_txn_blob_read(m->txn, m->rec->blob, 0, prefix->s, n, &err) < 0)
			return 0;
		prefix->len = n;
		prefix->s[n] = '\0';
	}
	const char *p = prefix->s;
	if (n >= 2 && p[0] == '\r' && p[1] == '\n')
		return 2; /* no header at all */
	const char *end = memmem(p, n, "\r\n\r\n", 4);
	if (end == NULL || memchr(p, '\0', (size_t)(end - p)) != NULL)
		return 0;
	/* a bare LF or CR would make the parser see lines differently */
	for (const char *q = p; (q = memchr(q, '\n', (size_t)(end - q))) != NULL; q++)
		if (q == p || q[-1] != '\r')
			return 0;
	for (const char *q = p; (q = memchr(q, '\r', (size_t)(end - q))) != NULL; q++)
		if (q[1] != '\n')
			return 0;
	return (size_t)(end - p) + 4;
}

/* The bytes of BODY[spec]; false for an invalid section. */
static bool section_bytes(struct msg_ctx *m, const char *spec, struct str *out, bool *none_r)
{
	*none_r = false;
	if (spec[0] == '\0')
		return read_range(m, 0, m->rec->size, out);
	/* the common cases of the top level need no parse */
	if (m->mime == NULL && (strcasecmp(spec, "HEADER") == 0 || strcasecmp(spec, "TEXT") == 0 ||
				strncasecmp(spec, "HEADER.FIELDS", 13) == 0)) {
		struct str prefix = STR_INIT;
		size_t hlen = quick_header(m, &prefix);
		bool done = false, ok = true;
		if (hlen > 0) {
			bool not = strncasecmp(spec, "HEADER.FIELDS.NOT ", 18) == 0;
			const char *list = spec + (not ? 18 : 14);
			if (strcasecmp(spec, "HEADER") == 0) {
				str_append(out, prefix.s, hlen);
				done = true;
			} else if (strcasecmp(spec, "TEXT") == 0) {
				ok = read_range(m, hlen, m->rec->size - hlen, out);
				done = true;
			} else if ((not || strncasecmp(spec, "HEADER.FIELDS ", 14) == 0) &&
				   list[0] == '(') {
				filter_header(prefix.s, hlen, list, not, out);
				done = true;
			}
		}
		str_free(&prefix);
		if (done)
			return ok;
	}
	if (!load_mime(m))
		return false;
	const struct mime_part *root = mime_message_root(m->mime);
	size_t consumed = 0;
	const struct mime_part *part = mime_imap_section(root, spec, strlen(spec), &consumed);
	if (part == NULL) {
		*none_r = true; /* a part that does not exist: empty */
		return true;
	}
	const char *rest = spec + consumed;
	bool numbered = consumed > 0;
	if (*rest == '\0') {
		/* the part's body (for message/rfc822: the whole embedded message) */
		return read_range(m, part->body_start, part->body_len, out);
	}
	if (strcasecmp(rest, "MIME") == 0) {
		if (!numbered)
			return false;
		return read_range(m, part->header_start, part->header_len, out);
	}
	const struct mime_part *msg = numbered ? mime_imap_section_message(part) : part;
	if (msg == NULL) {
		*none_r = true;
		return true;
	}
	if (strcasecmp(rest, "HEADER") == 0)
		return read_range(m, msg->header_start, msg->header_len, out);
	if (strcasecmp(rest, "TEXT") == 0)
		return read_range(m, msg->body_start, msg->body_len, out);
	bool not = false;
	const char *list = NULL;
	if (strncasecmp(rest, "HEADER.FIELDS.NOT ", 18) == 0) {
		not = true;
		list = rest + 18;
	} else if (strncasecmp(rest, "HEADER.FIELDS ", 14) == 0) {
		list = rest + 14;
	} else {
		return false;
	}
	if (list[0] != '(')
		return false;
	struct str hdr = STR_INIT;
	bool ok = read_range(m, msg->header_start, msg->header_len, &hdr);
	if (ok)
		filter_header(hdr.s ? hdr.s : "", hdr.len, list, not, out);
	str_free(&hdr);
	return ok;
}

static void write_bytes(struct str *o, const struct fetch_item *it, const char *data, size_t len,
			bool literal8)
{
	if (it->partial) {
		if (it->offset >= len) {
			str_appends(o, "\"\"");
			return;
		}
		data += it->offset;
		len -= (size_t)it->offset;
		if (len > it->length)
			len = (size_t)it->length;
	}
	imap_write_literal(o, data, len, literal8);
}

/* Writes "* n FETCH (...)" for one message; false when the request was
 * invalid (a bad section): the command then ends with BAD. */
static bool fetch_one(struct imap_cmd *cmd, struct fetch_state *st, struct store_txn *txn,
		      uint32_t seq, const struct store_message *rec, bool *unknown_cte_r)
{
	struct imap_session *s = cmd->s;
	struct str *o = &s->out;
	struct msg_ctx m = { .s = s, .txn = txn, .rec = rec };
	unsigned mflags = session_utf8(s) ? MIME_IMAP_UTF8 : 0;
	bool ok = true;
	size_t start = o->len;
	str_printf(o, "* %u FETCH (", seq);
	bool first = true;
	bool flags_written = false, uid_written = false, modseq_written = false;
	struct str tmp = STR_INIT;
	for (size_t i = 0; i < st->n_items && ok && !m.failed; i++) {
		const struct fetch_item *it = &st->items[i];
		if (!first)
			str_appendc(o, ' ');
		first = false;
		switch (it->type) {
		case F_FLAGS:
			str_appends(o, "FLAGS ");
			view_write_msg_flags(s->view, rec, o);
			flags_written = true;
			break;
		case F_UID:
			str_printf(o, "UID %u", rec->uid);
			uid_written = true;
			break;
		case F_INTERNALDATE:
			str_appends(o, "INTERNALDATE ");
			imap_datetime_write(o, rec->internal_date);
			break;
		case F_SAVEDATE:
			str_appends(o, "SAVEDATE ");
			imap_datetime_write(o, rec->save_date);
			break;
		case F_SIZE:
			str_printf(o, "RFC822.SIZE %llu", (unsigned long long)rec->size);
			break;
		case F_MODSEQ:
			str_printf(o, "MODSEQ (%llu)", (unsigned long long)rec->modseq);
			modseq_written = true;
			break;
		case F_ENVELOPE:
			if (!load_mime(&m))
				break;
			str_appends(o, "ENVELOPE ");
			mime_imap_envelope(mime_message_root(m.mime)->envelope, mflags, o);
			break;
		case F_BODY:
		case F_BODYSTRUCTURE:
			if (!load_mime(&m))
				break;
			str_appends(o, it->type == F_BODY ? "BODY " : "BODYSTRUCTURE ");
			mime_imap_bodystructure(mime_message_root(m.mime), it->type == F_BODYSTRUCTURE,
						mflags, o);
			break;
		case F_SECTION: {
			bool none;
			if (it->spec[0] == '\0' && !it->partial && rec->size >= STREAM_MIN &&
			    i + 1 == st->n_items) {
				/* the literal's bytes follow from fetch_stream(); what
				 * comes after it in the response goes to the trailer */
				str_printf(o, "%s {%llu}\r\n", it->label, (unsigned long long)rec->size);
				st->streaming = true;
				memcpy(st->stream_blob, rec->blob, STORE_BLOB_ID_LEN);
				st->stream_off = 0;
				st->stream_left = rec->size;
				str_truncate(&st->trailer, 0);
				o = &st->trailer;
				break;
			}
			str_truncate(&tmp, 0);
			if (!section_bytes(&m, it->spec, &tmp, &none)) {
				ok = m.failed;
				break;
			}
			str_appends(o, it->label);
			str_appendc(o, ' ');
			if (none)
				str_appends(o, "\"\""); /* no such part: empty, as Dovecot */
			else
				write_bytes(o, it, tmp.s ? tmp.s : "", tmp.len, false);
			break;
		}
		case F_BINARY:
		case F_BINARY_SIZE: {
			if (!load_mime(&m) || !load_data(&m))
				break;
			const struct mime_part *root = mime_message_root(m.mime);
			size_t consumed;
			const struct mime_part *part =
				it->spec[0] ? mime_imap_section(root, it->spec, strlen(it->spec), &consumed)
					    : root;
			str_truncate(&tmp, 0);
			if (part == NULL) {
				str_appends(o, it->label);
				str_appends(o, it->type == F_BINARY_SIZE ? " 0" : " NIL");
				break;
			}
			if (part->children != NULL || mime_part_is_message(part)) {
				/* not a leaf: the raw bytes (RFC 3516 4.2) */
				if (it->spec[0] == '\0')
					str_append(&tmp, m.data, m.len);
				else
					str_append(&tmp, m.data + part->body_start, part->body_len);
			} else if (mime_part_decode_body(m.data, m.len, part, &tmp) < 0) {
				*unknown_cte_r = true;
				ok = false;
				break;
			}
			str_appends(o, it->label);
			if (it->type == F_BINARY_SIZE) {
				str_printf(o, " %zu", tmp.len);
			} else {
				str_appendc(o, ' ');
				bool has_nul = memchr(tmp.s ? tmp.s : "", '\0', tmp.len) != NULL;
				write_bytes(o, it, tmp.s ? tmp.s : "", tmp.len, has_nul);
			}
			break;
		}
		}
	}
	str_free(&tmp);
	/* UID for UID FETCH, FLAGS when this FETCH set \Seen, MODSEQ with CONDSTORE */
	if (cmd->uid && !uid_written) {
		str_printf(o, "%sUID %u", first ? "" : " ", rec->uid);
		first = false;
	}
	if (!flags_written && st->n_seen_changed > 0) {
		/* seen_changed is sorted: it was built from the sorted UIDs */
		if (bsearch(&rec->uid, st->seen_changed, st->n_seen_changed, sizeof(uint32_t),
			    cmp_u32) != NULL) {
			str_printf(o, "%sFLAGS ", first ? "" : " ");
			view_write_msg_flags(s->view, rec, o);
			first = false;
		}
	}
	if (!modseq_written && (st->changedsince > 0 || (s->enabled & ENABLED_CONDSTORE)) &&
	    (s->enabled & ENABLED_CONDSTORE)) {
		str_printf(o, "%sMODSEQ (%llu)", first ? "" : " ", (unsigned long long)rec->modseq);
	}
	str_appends(o, ")\r\n");
	mime_message_free(&m.mime);
	free(m.data);
	if (!ok || m.failed) {
		str_truncate(&s->out, start);
		st->streaming = false;
	}
	return ok;
}

struct seen_ctx {
	uint32_t mailbox_id;
	const uint32_t *uids;
	size_t n;
	uint32_t *changed;
	size_t n_changed;
	uint64_t *modseqs;
};

static int seen_fn(struct store_txn *txn, void *ctx, const char **error_r)
{
	struct seen_ctx *c = ctx;
	c->n_changed = 0;
	for (size_t i = 0; i < c->n; i++) {
		struct store_message msg;
		int r = store_txn_message_get(txn, c->mailbox_id, c->uids[i], &msg, error_r);
		if (r < 0)
			return -1;
		if (r == 0 || (msg.flags & MSG_SEEN))
			continue;
		if (store_txn_message_flags(txn, c->mailbox_id, c->uids[i], FLAGS_ADD, MSG_SEEN, 0,
					    STORE_NO_UNCHANGEDSINCE,
					    &msg, error_r) < 0)
			return -1;
		c->modseqs[c->n_changed] = msg.modseq;
		c->changed[c->n_changed++] = c->uids[i];
	}
	return 0;
}

static enum cmd_result fetch_batch(struct imap_cmd *cmd);

/* The next slice of a streamed literal. The bytes are content-addressed
 * and immutable; if the message was expunged and its bytes freed since,
 * the literal cannot be completed and the connection is closed. */
static enum cmd_result fetch_stream(struct imap_cmd *cmd)
{
	struct imap_session *s = cmd->s;
	struct fetch_state *st = cmd->state;
	struct store_txn *txn;
	const char *err;
	size_t n = st->stream_left < STREAM_SLICE ? (size_t)st->stream_left : STREAM_SLICE;
	if (store_read_begin(s->d->store, &txn, &err) == 0) {
		str_reserve(&s->out, n);
		int ret = store_txn_blob_read(txn, st->stream_blob, st->stream_off,
					      s->out.s + s->out.len, n, &err);
		store_read_end(&txn);
		if (ret == 0) {
			s->out.len += n;
			s->out.s[s->out.len] = '\0';
			st->stream_off += n;
			st->stream_left -= n;
			if (st->stream_left > 0)
				return CMD_MORE;
			str_append(&s->out, st->trailer.s ? st->trailer.s : "", st->trailer.len);
			st->streaming = false;
			return fetch_batch(cmd);
		}
	}
	log_err("session=%u user=%s error=\"streaming a message: %s\"", s->id, s->user, err);
	str_appends(&s->out, "\r\n* BYE Message vanished while it was being sent\r\n");
	session_close(s, "message vanished during FETCH");
	return CMD_DONE;
}

static void fetch_cleanup(struct imap_cmd *cmd)
{
	struct fetch_state *st = cmd->state;
	str_free(&st->trailer);
}

static enum cmd_result fetch_batch(struct imap_cmd *cmd)
{
	struct imap_session *s = cmd->s;
	struct fetch_state *st = cmd->state;
	struct store_txn *txn;
	const char *err;
	if (store_read_begin(s->d->store, &txn, &err) < 0)
		return cmd_store_error(cmd, "fetch", err);
	bool unknown_cte = false;
	while (st->next < st->n_uids) {
		uint32_t uid = st->uids[st->next++];
		long idx = view_find(s->view, uid);
		if (idx < 0)
			continue;
		struct store_message rec;
		int r = store_txn_message_get(txn, s->view->mailbox_id, uid, &rec, &err);
		if (r < 0) {
			store_read_end(&txn);
			return cmd_store_error(cmd, "fetch", err);
		}
		if (r == 0)
			continue; /* expunged by another session; reported later */
		if (st->changedsince > 0 && rec.modseq <= st->changedsince)
			continue;
		if (!fetch_one(cmd, st, txn, (uint32_t)idx + 1, &rec, &unknown_cte)) {
			store_read_end(&txn);
			if (unknown_cte)
				return cmd_no(cmd, "[UNKNOWN-CTE] Unknown content transfer encoding");
			return cmd_bad(cmd, "Invalid FETCH section");
		}
		if (st->streaming) {
			store_read_end(&txn);
			cmd->resume = fetch_stream;
			return CMD_MORE; /* the literal's bytes when the output drains */
		}
		if (s->out.len >= BATCH_OUTPUT) {
			store_read_end(&txn);
			if (st->next < st->n_uids) {
				cmd->resume = fetch_batch;
				return CMD_MORE;
			}
			return cmd_ok(cmd, "%sFETCH completed", cmd->uid ? "UID " : "");
		}
	}
	store_read_end(&txn);
	return cmd_ok(cmd, "%sFETCH completed", cmd->uid ? "UID " : "");
}

struct vanished_ctx {
	const struct seqset *set;
	uint32_t *uids;
	size_t n, cap;
};

static int vanished_fn(uint64_t modseq, uint32_t uid, enum store_change_kind kind, void *ctx)
{
	struct vanished_ctx *c = ctx;
	(void)modseq;
	if (kind != CHANGE_EXPUNGE || !seqset_contains(c->set, uid))
		return 0;
	if (c->n == c->cap) {
		c->cap = c->cap ? c->cap * 2 : 64;
		c->uids = xreallocarray(c->uids, c->cap, sizeof(uint32_t));
	}
	c->uids[c->n++] = uid;
	return 0;
}

enum cmd_result cmd_fetch(struct imap_cmd *cmd)
{
	struct imap_session *s = cmd->s;
	const char *err;
	if (cmd->n_args < 2 || cmd->n_args > 3 || cmd->args[0].type != IMAP_ARG_ATOM)
		return cmd_bad(cmd, "FETCH expects a sequence set and items");
	struct fetch_state *st = p_malloc(cmd->pool, sizeof(*st));
	cmd->state = st;
	cmd->cleanup = fetch_cleanup;
	if (parse_items(st, &cmd->args[1], cmd->pool) < 0)
		return cmd_bad(cmd, "Invalid FETCH items");
	if (cmd->n_args == 3) {
		const struct imap_arg *mods = &cmd->args[2];
		if (mods->type != IMAP_ARG_LIST)
			return cmd_bad(cmd, "Invalid FETCH modifiers");
		for (size_t i = 0; i < mods->len; i++) {
			if (imap_arg_is_atom(&mods->list[i], "CHANGEDSINCE") && i + 1 < mods->len &&
			    imap_arg_number(&mods->list[i + 1], UINT64_MAX / 2, &st->changedsince)) {
				i++;
			} else if (imap_arg_is_atom(&mods->list[i], "VANISHED")) {
				st->vanished = true;
			} else {
				return cmd_bad(cmd, "Invalid FETCH modifier");
			}
		}
		if (st->vanished && (!cmd->uid || !(s->enabled & ENABLED_QRESYNC) || st->changedsince == 0))
			return cmd_bad(cmd, "VANISHED needs UID FETCH, QRESYNC and CHANGEDSINCE");
		if (st->changedsince > 0)
			s->enabled |= ENABLED_CONDSTORE;
	}
	if (view_resolve_set(s->view, cmd->args[0].str, cmd->uid, cmd->pool, &st->uids, &st->n_uids,
			     &err) < 0)
		return cmd_bad(cmd, "%s", err);
	qsort(st->uids, st->n_uids, sizeof(uint32_t), cmp_u32);
	if (st->vanished) {
		struct seqset set;
		if (seqset_parse(cmd->args[0].str, s->view->uidnext ? s->view->uidnext - 1 : 0,
				 cmd->pool, &set, &err) == 0) {
			struct vanished_ctx vc = { .set = &set };
			struct store_txn *txn;
			if (store_read_begin(s->d->store, &txn, &err) == 0) {
				store_txn_changes(txn, s->view->mailbox_id, st->changedsince,
						  vanished_fn, &vc, &err);
				store_read_end(&txn);
			}
			if (vc.n > 0) {
				qsort(vc.uids, vc.n, sizeof(uint32_t), cmp_u32);
				str_appends(&s->out, "* VANISHED (EARLIER) ");
				seqset_write_sorted(&s->out, vc.uids, vc.n);
				str_appends(&s->out, "\r\n");
			}
			free(vc.uids);
		}
	}
	if (st->set_seen && !s->view->read_only && st->n_uids > 0) {
		struct seen_ctx sc = {
			.mailbox_id = s->view->mailbox_id, .uids = st->uids, .n = st->n_uids,
			.changed = p_array(cmd->pool, st->n_uids, sizeof(uint32_t)),
			.modseqs = p_array(cmd->pool, st->n_uids, sizeof(uint64_t)),
		};
		if (store_write(s->d->store, seen_fn, &sc, &err) < 0)
			return cmd_store_error(cmd, "fetch", err);
		st->seen_changed = sc.changed;
		st->n_seen_changed = sc.n_changed;
		for (size_t i = 0; i < sc.n_changed; i++)
			view_note_own_modseq(s->view, sc.modseqs[i]);
	}
	return fetch_batch(cmd);
}
