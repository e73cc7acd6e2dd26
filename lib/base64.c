/* Base64 decoding and encoding; see base64.h. */
#include "config.h"
#include "base64.h"

#include <stdint.h>

const char base64_std_chars[65] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const char base64_imap_chars[65] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

size_t base64_encode(const void *in, size_t in_len, char *out)
{
	const char *b64chars = base64_std_chars;
	const unsigned char *p = in;
	size_t o = 0;
	size_t i = 0;
	for (; i + 2 < in_len; i += 3) {
		unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8 | p[i + 2];
		out[o++] = b64chars[v >> 18];
		out[o++] = b64chars[(v >> 12) & 63];
		out[o++] = b64chars[(v >> 6) & 63];
		out[o++] = b64chars[v & 63];
	}
	if (i < in_len) {
		unsigned v = (unsigned)p[i] << 16;
		if (i + 1 < in_len)
			v |= (unsigned)p[i + 1] << 8;
		out[o++] = b64chars[v >> 18];
		out[o++] = b64chars[(v >> 12) & 63];
		out[o++] = i + 1 < in_len ? b64chars[(v >> 6) & 63] : '=';
		out[o++] = '=';
	}
	out[o] = '\0';
	return o;
}

int base64_decode(const char *in, size_t in_len, void *out, size_t out_size, size_t *out_len_r)
{
	unsigned char *o = out;
	size_t n = 0;
	if (in_len % 4 != 0)
		return -1;
	for (size_t i = 0; i < in_len; i += 4) {
		int v[4];
		int pad = 0;
		for (int k = 0; k < 4; k++) {
			unsigned char c = (unsigned char)in[i + (size_t)k];
			if (c == '=') {
				/* only in the last group, only at its end */
				if (i + 4 != in_len || k < 2)
					return -1;
				pad++;
				v[k] = 0;
				continue;
			}
			if (pad > 0)
				return -1;
			v[k] = base64_char_value(c, BASE64_STD);
			if (v[k] < 0)
				return -1;
		}
		unsigned bits = (unsigned)v[0] << 18 | (unsigned)v[1] << 12 | (unsigned)v[2] << 6 |
				(unsigned)v[3];
		size_t bytes = 3 - (size_t)pad;
		if (n + bytes > out_size)
			return -1;
		o[n++] = (unsigned char)(bits >> 16);
		if (bytes > 1)
			o[n++] = (unsigned char)(bits >> 8);
		if (bytes > 2)
			o[n++] = (unsigned char)bits;
	}
	*out_len_r = n;
	return 0;
}

int base64_decode_lenient(const char *in, size_t len, struct str *out)
{
	const unsigned char *s = (const unsigned char *)in;
	uint32_t acc = 0;
	unsigned int n = 0;
	int ret = 0;

	str_reserve(out, len / 4 * 3 + 3);
	for (size_t i = 0; i < len; i++) {
		int v = base64_char_value(s[i], BASE64_STD);
		if (v < 0) {
			if (s[i] == '=') {
				/* padding ends the quantum; another base64 run may
				 * follow (concatenated encodings) */
				if (n == 2) {
					str_appendc(out, (char)(acc >> 4));
				} else if (n == 3) {
					str_appendc(out, (char)(acc >> 10));
					str_appendc(out, (char)(acc >> 2));
				} else if (n == 1) {
					ret = 1;
				}
				n = 0;
				acc = 0;
			} else if (s[i] != '\r' && s[i] != '\n' && s[i] != ' ' && s[i] != '\t') {
				ret = 1;
			}
			continue;
		}
		acc = (acc << 6) | (uint32_t)v;
		if (++n == 4) {
			char b[3] = {(char)(acc >> 16), (char)(acc >> 8), (char)acc};
			str_append(out, b, 3);
			n = 0;
			acc = 0;
		}
	}
	if (n == 2) {
		str_appendc(out, (char)(acc >> 4));
		ret = 1;
	} else if (n == 3) {
		str_appendc(out, (char)(acc >> 10));
		str_appendc(out, (char)(acc >> 2));
		ret = 1;
	} else if (n == 1) {
		ret = 1;
	}
	str_append(out, "", 0);
	return ret;
}
