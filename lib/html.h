/* HTML reduced to plain text for the spam tokenizer and SEARCH TEXT, with
 * a callback for every link. Not a conforming HTML5 parser: a linear,
 * tolerant scanner that never fails on any input. */
#ifndef CONGVU_HTML_H
#define CONGVU_HTML_H

#include <stddef.h>

#include "str.h"

enum html_link_kind {
	HTML_LINK_HREF,       /* <a href>, <area href>, <link href> */
	HTML_LINK_SRC,        /* <img src>, <iframe src>, <frame src>, <embed src>, ... */
	HTML_LINK_ACTION,     /* <form action> */
	HTML_LINK_BACKGROUND, /* background= attribute on any tag */
};

/* Called once per link, in document order, with the attribute value
 * entity-decoded and trimmed (not otherwise validated: it may be
 * "javascript:..." or relative). url is NUL-terminated. */
typedef void html_link_callback(void *context, enum html_link_kind kind, const char *url,
                                size_t url_len);

/* Appends the text of html (UTF-8 expected: convert the charset first;
 * invalid bytes become U+FFFD) to out:
 * - tags removed; the contents of <script>, <style>, <template>,
 *   <noscript> and comments dropped (<title> text is kept);
 * - character references decoded (numeric, and the common named ones:
 *   nbsp amp lt gt quot apos, Latin-1 and Vietnamese letters, dashes,
 *   quotes...; unknown ones kept literally);
 * - block elements (p, div, br, li, tr, h1-h6, ...) become line ends, table
 *   cells a space; runs of whitespace collapse to one space and blank
 *   lines to one line end;
 * - alt= text of <img> is kept as text (spam hides words there).
 * link may be NULL. Linear time; tags and attributes of any length. */
void html_to_text(const char *html, size_t len, struct str *out, html_link_callback *link,
                  void *context);

#endif
