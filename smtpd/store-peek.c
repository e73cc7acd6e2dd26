/* store-peek: prints an account's messages as JSON lines, for the
 * integration tests (a test tool, not installed):
 *   store-peek DATA_DIR ADDRESS
 * {"mailbox": "INBOX", "uid": 1, "size": 123, "data": "..."}
 * or the store's figures as one JSON object:
 *   store-peek --stats DATA_DIR */
#include "config.h"
#include "store/store.h"
#include "str.h"
#include "xalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct peek {
	struct store_txn *txn;
	const struct store_mailbox *mbox;
};

static void json_string(const char *s, size_t len)
{
	putchar('"');
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20 || c >= 0x7f)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

static int one_message(const struct store_message *msg, void *ctx)
{
	struct peek *p = ctx;
	const char *error;
	char *buf = xmalloc(msg->size ? msg->size : 1);
	if (store_txn_blob_read(p->txn, msg->blob, 0, buf, msg->size, &error) < 0) {
		fprintf(stderr, "store-peek: %s\n", error);
		exit(1);
	}
	printf("{\"mailbox\": ");
	json_string(p->mbox->name, strlen(p->mbox->name));
	printf(", \"special_use\": %u, \"uid\": %u, \"size\": %llu, \"blob\": \"", p->mbox->special_use,
	       msg->uid, (unsigned long long)msg->size);
	for (int i = 0; i < STORE_BLOB_ID_LEN; i++)
		printf("%02x", msg->blob[i]);
	printf("\", \"data\": ");
	json_string(buf, msg->size);
	printf("}\n");
	free(buf);
	return 0;
}

static int one_mailbox(const struct store_mailbox *mbox, void *ctx)
{
	struct peek *p = ctx;
	const char *error;
	struct store_mailbox copy = *mbox;
	p->mbox = &copy;
	if (store_txn_message_foreach(p->txn, mbox->id, 1, UINT32_MAX, one_message, p, &error) < 0) {
		fprintf(stderr, "store-peek: %s\n", error);
		exit(1);
	}
	return 0;
}

static int stats(struct store *store)
{
	struct store_stats st;
	const char *error;
	if (store_stats(store, &st, &error) < 0) {
		fprintf(stderr, "store-peek: %s\n", error);
		return 1;
	}
	printf("{\"messages\": %llu, \"blobs\": %llu, \"chunks\": %llu, "
	       "\"uncompressed_chunks\": %llu, \"blob_bytes\": %llu}\n",
	       (unsigned long long)st.messages, (unsigned long long)st.blobs,
	       (unsigned long long)st.chunks, (unsigned long long)st.uncompressed_chunks,
	       (unsigned long long)st.blob_bytes);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: store-peek DATA_DIR ADDRESS | store-peek --stats DATA_DIR\n");
		return 2;
	}
	bool want_stats = strcmp(argv[1], "--stats") == 0;
	struct store_options o;
	memset(&o, 0, sizeof(o));
	struct store *store;
	const char *error;
	if (store_open(argv[want_stats ? 2 : 1], &o, &store, &error) < 0) {
		fprintf(stderr, "store-peek: %s\n", error);
		return 1;
	}
	if (want_stats) {
		int ret = stats(store);
		store_close(&store);
		return ret;
	}
	struct peek p;
	if (store_read_begin(store, &p.txn, &error) < 0) {
		fprintf(stderr, "store-peek: %s\n", error);
		return 1;
	}
	struct store_account a;
	int ret = store_txn_account_get(p.txn, argv[2], &a, &error);
	if (ret <= 0) {
		fprintf(stderr, "store-peek: %s\n", ret < 0 ? error : "no such account");
		return 1;
	}
	if (store_txn_mailbox_foreach(p.txn, a.id, one_mailbox, &p, &error) < 0) {
		fprintf(stderr, "store-peek: %s\n", error);
		return 1;
	}
	store_read_end(&p.txn);
	store_close(&store);
	return 0;
}
