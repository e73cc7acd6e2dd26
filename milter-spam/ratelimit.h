/* Outbound rate limit per authenticated sender: messages and distinct
 * external recipients over a sliding window, kept in memory (a restart
 * forgets, which errs on the side of delivering). Thread-safe. */
#ifndef CONGVU_MILTER_RATELIMIT_H
#define CONGVU_MILTER_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct ratelimit;

enum ratelimit_verdict {
	RATELIMIT_OK,
	RATELIMIT_MESSAGES,   /* too many messages in the window */
	RATELIMIT_RECIPIENTS, /* too many distinct external recipients */
};

/* max_messages, max_recipients: 0 means no limit of that kind. */
struct ratelimit *ratelimit_new(uint64_t window_secs, unsigned int max_messages,
                                unsigned int max_recipients);
void ratelimit_free(struct ratelimit **rl);

/* Checks a message of user to the n external recipients (lower-case
 * addresses) at time now. A message within the limits is counted; one over
 * them is not (it is refused, and a retry must not count twice).
 * *messages_r and *recipients_r: the counts in the window including this
 * message. */
enum ratelimit_verdict ratelimit_check(struct ratelimit *rl, const char *user,
                                       const char *const *rcpts, size_t n, time_t now,
                                       unsigned int *messages_r, unsigned int *recipients_r);

#endif
