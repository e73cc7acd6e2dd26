/* libFuzzer target: the outbound queue record decoder. Whatever decodes
 * must encode and decode again to the same encoding. */
#include "config.h"
#include "queue-record.h"
#include "str.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct queue_record r;
	const char *error;
	if (queue_record_decode(data, size, &r, &error) < 0)
		return 0;
	struct str a = STR_INIT, b = STR_INIT;
	queue_record_encode(&r, &a);
	queue_record_free(&r);
	if (queue_record_decode(a.s, a.len, &r, &error) < 0)
		abort();
	queue_record_encode(&r, &b);
	queue_record_free(&r);
	if (a.len != b.len || memcmp(a.s, b.s, a.len) != 0)
		abort();
	str_free(&a);
	str_free(&b);
	return 0;
}
