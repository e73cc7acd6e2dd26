/* libFuzzer target for the message parsing library. The first byte picks
 * what the rest is fed to:
 *   0: a message: parse, render BODY/BODYSTRUCTURE/ENVELOPE, walk sections,
 *      decode every part to UTF-8 (and HTML to text), round-trip the cache
 *   1: a parse cache, with a valid checksum appended so that the loader's
 *      structure checks (not only the checksum) are exercised
 *   2: a header value: addresses, RFC 2047, RFC 2231, search keys */
#include "config.h"
#include "charset.h"
#include "html.h"
#include "mime-imap.h"
#include "mime.h"
#include "utf8.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void on_link(void *context, enum html_link_kind kind, const char *url, size_t len)
{
	(void)kind;
	if (strlen(url) != len)
		abort();
	*(size_t *)context += len;
}

static void render(const struct mime_message *msg, const char *data, size_t len)
{
	struct str out = STR_INIT;
	const struct mime_part *root = mime_message_root(msg);

	mime_imap_bodystructure(root, true, 0, &out);
	mime_imap_bodystructure(root, false, MIME_IMAP_UTF8, &out);
	for (const struct mime_part *p = root; p != NULL; p = mime_part_next(p)) {
		mime_imap_envelope(p->envelope, 0, &out);
		if (data == NULL)
			continue;
		struct str text = STR_INIT;
		mime_part_text_utf8(data, len, p, &text);
		if (!utf8_is_valid(text.s, text.len))
			abort();
		if (strcmp(p->type, "text") == 0 && strcmp(p->subtype, "html") == 0) {
			size_t links = 0;
			struct str h = STR_INIT;
			html_to_text(text.s, text.len, &h, on_link, &links);
			if (!utf8_is_valid(h.s, h.len))
				abort();
			str_free(&h);
		}
		str_free(&text);
	}
	static const char *const sections[] = {"1", "2", "1.1", "2.1.MIME", "1.2.3", "3.1.1.1"};
	for (size_t i = 0; i < sizeof(sections) / sizeof(sections[0]); i++) {
		size_t used;
		const struct mime_part *p =
		    mime_imap_section(root, sections[i], strlen(sections[i]), &used);
		if (p != NULL)
			(void)mime_imap_section_message(p);
	}
	str_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	const char *in = (const char *)data + 1;
	size_t len = size - 1;

	switch (data[0] % 3) {
	case 0: {
		struct mime_message *msg = mime_parse(in, len), *loaded;
		struct str cache = STR_INIT, a = STR_INIT, b = STR_INIT;
		const char *error;
		render(msg, in, len);
		mime_cache_build(msg, &cache);
		if (mime_cache_load(cache.s, cache.len, &loaded, &error) != 0)
			abort();
		mime_imap_bodystructure(mime_message_root(msg), true, 0, &a);
		mime_imap_bodystructure(mime_message_root(loaded), true, 0, &b);
		if (a.len != b.len || memcmp(a.s, b.s, a.len) != 0)
			abort();
		mime_message_free(&loaded);
		mime_message_free(&msg);
		str_free(&cache);
		str_free(&a);
		str_free(&b);
		break;
	}
	case 1: {
		struct str cache = STR_INIT;
		struct mime_message *loaded;
		const char *error;
		str_append(&cache, in, len);
		uint64_t h = mime_cache_checksum(cache.s, cache.len);
		for (int i = 0; i < 8; i++)
			str_appendc(&cache, (char)(h >> (8 * i)));
		if (mime_cache_load(cache.s, cache.len, &loaded, &error) == 0) {
			render(loaded, NULL, 0);
			mime_message_free(&loaded);
		}
		str_free(&cache);
		break;
	}
	default: {
		struct mime_address_list *list = mime_address_parse(in, len);
		mime_address_list_free(&list);
		struct str out = STR_INIT;
		charset_decode_header(in, len, &out);
		if (!utf8_is_valid(out.s, out.len))
			abort();
		str_truncate(&out, 0);
		charset_rfc2231_decode(in, len, &out);
		if (!utf8_is_valid(out.s, out.len))
			abort();
		str_truncate(&out, 0);
		utf8_search_key(in, len, &out);
		struct str again = STR_INIT;
		utf8_search_key(out.s, out.len, &again);
		if (again.len != out.len || memcmp(again.s, out.s, out.len) != 0)
			abort();
		str_free(&again);
		str_free(&out);
		break;
	}
	}
	return 0;
}
