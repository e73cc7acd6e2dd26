/* The classifier's arithmetic (Robinson's token probabilities, Fisher's
 * chi-square combining, as in SpamBayes): pure functions, no storage. */
#ifndef CONGVU_MILTER_BAYES_H
#define CONGVU_MILTER_BAYES_H

#include <stddef.h>
#include <stdint.h>

struct bayes_params {
	double unknown_strength;         /* s: weight of the prior (SpamBayes: 0.45; ours 1.0) */
	double unknown_prob;             /* x: the prior (0.5) */
	double min_distance;             /* tokens with |p - 0.5| below it are ignored (0.1) */
	unsigned int max_discriminators; /* strongest tokens used (300) */
};

extern const struct bayes_params bayes_default_params;

/* Robinson's f(w): the probability that a message with this token is spam,
 * from its counts in spam_msgs spam and ham_msgs ham messages trained. */
double bayes_token_prob(const struct bayes_params *p, uint32_t spam, uint32_t ham,
                        uint32_t spam_msgs, uint32_t ham_msgs);

/* Upper tail of the chi-square distribution with v (even) degrees of
 * freedom at x2. */
double bayes_chi2q(double x2, unsigned int v);

/* Combines token probabilities (n of them; the array is reordered) into a
 * spam probability in [0, 1]: 0.5 when nothing is known. *used_r: how many
 * tokens counted. */
double bayes_combine(const struct bayes_params *p, double *probs, size_t n, size_t *used_r);

#endif
