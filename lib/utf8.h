/* UTF-8 validation and decoding, Unicode simple case folding and "search
 * keys": folded text with diacritics removed, so that users typing without
 * accents find Vietnamese text ("Quyết Định" and "ĐỊNH" fold to "quyet dinh"
 * and "dinh"). Tables cover Latin (all of Latin-1, Extended-A/B, Extended
 * Additional: Vietnamese), Greek, Cyrillic, Armenian, Georgian, Cherokee,
 * Glagolitic, Coptic, Deseret, fullwidth forms; other scripts pass through. */
#ifndef CONGVU_UTF8_H
#define CONGVU_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "str.h"

#define UTF8_REPLACEMENT 0xFFFDu

/* True when s is well-formed UTF-8 (no overlongs, no surrogates, nothing
 * above U+10FFFF). NUL bytes are allowed. */
bool utf8_is_valid(const char *s, size_t len);
/* Decodes one code point at s (len > 0). Returns the number of bytes used
 * (1..4) and the code point, or 1 and UTF8_REPLACEMENT for an invalid byte
 * (so a loop always advances). */
size_t utf8_decode(const char *s, size_t len, uint32_t *cp_r);
/* Appends cp as UTF-8 (surrogates and values above U+10FFFF become
 * U+FFFD). */
void utf8_encode(uint32_t cp, struct str *out);
/* Appends s with each invalid byte replaced by U+FFFD. Returns 0, or 1
 * when anything was replaced. */
int utf8_sanitize(const char *s, size_t len, struct str *out);

/* Unicode simple case folding (CaseFolding.txt, status C and S) of one code
 * point; unchanged when it has no folding. */
uint32_t utf8_fold(uint32_t cp);
/* Appends s simply case-folded (invalid bytes become U+FFFD). This is the
 * i;unicode-casemap-like comparison form for SEARCH without diacritic
 * stripping. */
void utf8_casefold(const char *s, size_t len, struct str *out);

/* Search key of one code point: folded, diacritics removed (the base letter
 * of a canonical decomposition; also đ/Đ -> d, ł -> l, ø -> o, ħ -> h),
 * 0 for a combining mark to drop (U+0300-036F, 1AB0-1AFF, 1DC0-1DFF,
 * 20D0-20FF, FE20-FE2F) and for an invisible format character (soft
 * hyphen U+00AD, zero-width space and joiners U+200B-200D, word joiner
 * U+2060, BOM U+FEFF). */
uint32_t utf8_search_fold(uint32_t cp);
/* Appends the search key of s: utf8_search_fold() of every code point,
 * each run of whitespace (Unicode White_Space, including CR, LF, TAB and
 * NBSP) turned into one space. Invalid bytes become U+FFFD. Folding is
 * idempotent: key(key(s)) == key(s). */
void utf8_search_key(const char *s, size_t len, struct str *out);
/* True when needle occurs in haystack; both must already be search keys
 * (or any byte strings: the comparison is bytewise, linear time). An empty
 * needle matches. */
bool utf8_search_contains(const char *haystack, size_t hay_len, const char *needle,
                          size_t needle_len);
/* Convenience: folds both (as utf8_search_key) and searches. */
bool utf8_search_match(const char *text, size_t text_len, const char *needle, size_t needle_len);

#endif
