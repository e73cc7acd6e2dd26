/* The classifier's tokenizer: turns a parsed message into the set of
 * features the classifier counts, after SpamBayes:
 * - header features: the names of the header fields present, the words of
 *   Subject (RFC 2047 decoded), the addresses and display-name words of
 *   From, Reply-To, To and Cc, Content-Type and charset, the mailer, the
 *   Message-ID domain, host names and networks in Received:;
 * - body words from every text part, transfer-decoded and converted to
 *   UTF-8, HTML reduced to text with each link's host and path pieces as
 *   "url:" features; attachment types and file-name extensions;
 * - words are whitespace-separated, case-folded (Unicode), punctuation
 *   trimmed at the ends; accented Vietnamese syllables stay whole; very
 *   long words become a "skip:" feature of their first letter and length.
 * Work is bounded: at most TOKENIZE_MAX_TEXT bytes of text per message. */
#ifndef CONGVU_MILTER_TOKENIZE_H
#define CONGVU_MILTER_TOKENIZE_H

#include <stddef.h>

#include "mime.h"

#define TOKENIZE_MAX_TEXT (512 * 1024)
#define TOKENIZE_MAX_TOKEN 64

/* Called for every feature (duplicates included; the caller makes a set).
 * tok is not NUL-terminated. */
typedef void tokenize_callback(void *context, const char *tok, size_t len);

/* data/len: the message msg was parsed from. */
void tokenize_message(const char *data, size_t len, const struct mime_message *msg,
                      tokenize_callback *cb, void *context);

#endif
