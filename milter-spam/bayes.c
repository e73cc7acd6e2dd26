/* Robinson/Fisher combining, after SpamBayes' classifier.py: each token's
 * probability is smoothed towards the prior by how often it was seen, the
 * strongest tokens are kept, and two chi-square tests (is it ham-like, is it
 * spam-like) are combined as (S - H + 1) / 2. */
#include "config.h"

#include "bayes.h"

#include <math.h>
#include <stdlib.h>

/* SpamBayes' defaults, except a stronger prior (1.0 rather than 0.45) and
 * twice the discriminators, chosen by 10-fold cross-validation on the
 * corpus training set (doc/milter-spam.md). */
const struct bayes_params bayes_default_params = {
    .unknown_strength = 1.0,
    .unknown_prob = 0.5,
    .min_distance = 0.1,
    .max_discriminators = 300,
};

double bayes_token_prob(const struct bayes_params *p, uint32_t spam, uint32_t ham,
                        uint32_t spam_msgs, uint32_t ham_msgs)
{
	double n = (double)spam + (double)ham;
	if (n == 0)
		return p->unknown_prob;
	double sr = spam_msgs ? (double)spam / spam_msgs : 0;
	double hr = ham_msgs ? (double)ham / ham_msgs : 0;
	/* More trained messages than the token counts claim cannot happen,
	 * but a database changed under us may say so: clamp. */
	if (sr > 1)
		sr = 1;
	if (hr > 1)
		hr = 1;
	double ratio = sr + hr > 0 ? sr / (sr + hr) : p->unknown_prob;
	double s = p->unknown_strength;
	return (s * p->unknown_prob + n * ratio) / (s + n);
}

double bayes_chi2q(double x2, unsigned int v)
{
	double m = x2 / 2.0;
	double term = exp(-m);
	double sum = term;
	for (unsigned int i = 1; i < v / 2; i++) {
		term *= m / i;
		sum += term;
	}
	return sum < 1.0 ? sum : 1.0;
}

static int cmp_distance(const void *a, const void *b)
{
	double x = fabs(*(const double *)a - 0.5), y = fabs(*(const double *)b - 0.5);
	return x < y ? 1 : x > y ? -1 : 0;
}

double bayes_combine(const struct bayes_params *p, double *probs, size_t n, size_t *used_r)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (fabs(probs[i] - 0.5) >= p->min_distance)
			probs[k++] = probs[i];
	if (k > p->max_discriminators) {
		qsort(probs, k, sizeof(*probs), cmp_distance);
		k = p->max_discriminators;
	}
	*used_r = k;
	if (k == 0)
		return 0.5;
	/* Sum logs rather than multiply, so long messages do not underflow. */
	double ln_ham = 0, ln_spam = 0;
	for (size_t i = 0; i < k; i++) {
		double q = probs[i];
		if (q < 1e-9)
			q = 1e-9;
		if (q > 1 - 1e-9)
			q = 1 - 1e-9;
		ln_ham += log(q);
		ln_spam += log(1.0 - q);
	}
	double S = 1.0 - bayes_chi2q(-2.0 * ln_spam, (unsigned int)(2 * k));
	double H = 1.0 - bayes_chi2q(-2.0 * ln_ham, (unsigned int)(2 * k));
	return (S - H + 1.0) / 2.0;
}
