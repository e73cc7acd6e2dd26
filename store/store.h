/* The mailbox store: accounts, mailboxes, messages, content-addressed
 * message bytes, quota usage and the change log, in one LMDB environment
 * under global.data_dir/store. Layout and reasons: doc/store.md.
 *
 * Every program opens the same environment; LMDB gives lock-free readers
 * and one writer at a time across processes. A write is durable when the
 * call that made it returns 0 (LMDB syncs on commit).
 *
 * Conventions (STYLE 9): functions return 0 on success, -1 on error with
 * *error_r set to a static string, and where it says so 1 for "found".
 * Nothing here logs.
 *
 * Reads: store_read_begin() takes a snapshot; keep it short and never across
 * a wait on a client (an old reader stops LMDB from reusing pages).
 * Writes: store_write() runs a callback inside a write transaction and
 * commits. When the map is full (MDB_MAP_FULL) the transaction is aborted, the
 * map grown and the callback run again: a callback must have no effect
 * outside the transaction except through its ctx, which it must reset at
 * its start. The convenience functions below (store_deliver,
 * store_account_add...) are such callbacks wrapped for you; the store_txn_*
 * functions compose several operations into one transaction. */
#ifndef CONGVU_STORE_H
#define CONGVU_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "address.h"

struct store;
struct store_txn;

/* ---- opening ---- */

struct store_options {
	uint64_t map_size;        /* initial map size; grows by itself (0: 1 GiB) */
	bool create;              /* create the directory and environment if missing */
	bool read_only;
	bool no_compression;      /* store message bytes as they are (no zstd) */
	/* quota warnings: ascending percentages (quota.warn), at most 8 */
	unsigned warn_percents[8];
	unsigned n_warn_percents;
};

struct settings;
/* Fills opts from the configuration: global.store_map_size, quota.warn (sorted
 * ascending), create as given. Every program opens the store this way, so
 * quota warnings behave the same whichever process writes. */
void store_options_init(struct store_options *opts, const struct settings *set, bool create);

/* Opens (and with create, makes) the store in DIR/store. Opened once per
 * process, after fork. */
int store_open(const char *data_dir, const struct store_options *opts, struct store **store_r,
	       const char **error_r);
void store_close(struct store **store);

/* An fd that becomes readable (inotify) when a process has committed to the
 * store, after the commit is visible to new read transactions: poll it, then
 * call store_notify_drain() and look at what changed (store_change_counter,
 * mailbox HIGHESTMODSEQ). -1 when unavailable. */
int store_notify_fd(struct store *store);
void store_notify_drain(struct store *store);
/* A counter bumped by every committed write of any process. */
int store_change_counter(struct store *store, uint64_t *counter_r, const char **error_r);

/* Figures for tests, benchmarks and reports. */
struct store_stats {
	uint64_t accounts, mailboxes, messages, blobs, chunks, changes, queued;
	uint64_t blob_bytes;   /* bytes of distinct message content */
	uint64_t uncompressed_chunks; /* chunks over 256 bytes stored as they are
				       * (not yet compacted, or incompressible) */
	uint64_t pages_used;   /* pages in use by the last committed transaction */
	uint64_t page_size;
	uint64_t map_size;
	uint64_t file_size;    /* bytes of data.mdb on disk */
};
int store_stats(struct store *store, struct store_stats *stats_r, const char **error_r);

/* ---- transactions ---- */

int store_read_begin(struct store *store, struct store_txn **txn_r, const char **error_r);
void store_read_end(struct store_txn **txn);

typedef int store_write_fn(struct store_txn *txn, void *ctx, const char **error_r);
/* Runs fn in a write transaction and commits durably. fn returning -1 aborts
 * the transaction and store_write returns -1 with fn's error. */
int store_write(struct store *store, store_write_fn *fn, void *ctx, const char **error_r);

/* ---- accounts ---- */

enum account_kind { ACCOUNT_PERSONAL = 0, ACCOUNT_ORGANIZATION = 1 };

#define STORE_HASH_MAX 255

struct store_account {
	uint32_t id;
	enum account_kind kind;
	char address[ADDRESS_MAX_LEN + 1]; /* normalised, lower case */
	char password_hash[STORE_HASH_MAX + 1];
	uint64_t quota_bytes;              /* limit (STORAGE); 0: none */
	uint64_t quota_messages;           /* limit (MESSAGE); 0: none */
	uint64_t used_bytes;               /* sum of RFC822.SIZE of every message */
	uint64_t used_messages;
	unsigned warn_level;               /* how many warn thresholds are crossed */
	int64_t created;                   /* unix time */
};

/* address must be normalised (address_normalize). Creates the account with
 * INBOX, Sent, Drafts, Trash and Junk (RFC 6154 SPECIAL-USE). Returns -1 with
 * "account exists" when it does. */
int store_txn_account_add(struct store_txn *txn, const char *address, enum account_kind kind,
			  uint64_t quota_bytes, const char *password_hash, const char **error_r);
/* Deletes the account, its mailboxes and messages, dropping blob references.
 * Returns 0 when deleted, -1 with STORE_ERR_NO_ACCOUNT when there is none. */
int store_txn_account_del(struct store_txn *txn, const char *address, const char **error_r);
/* 1 and *acct_r when found, 0 when not, -1 on error. */
int store_txn_account_get(struct store_txn *txn, const char *address,
			  struct store_account *acct_r, const char **error_r);
int store_txn_account_get_id(struct store_txn *txn, uint32_t id, struct store_account *acct_r,
			     const char **error_r);
int store_txn_account_set_password(struct store_txn *txn, const char *address,
				   const char *password_hash, const char **error_r);
int store_txn_account_set_quota(struct store_txn *txn, const char *address, uint64_t quota_bytes,
				const char **error_r);
/* Calls fn for each account in address order; fn returning non-zero stops. */
int store_txn_account_foreach(struct store_txn *txn,
			      int (*fn)(const struct store_account *acct, void *ctx), void *ctx,
			      const char **error_r);

/* Recount usage from the stored messages. Fills *before_r and *after_r
 * (used_bytes/used_messages as recorded and as counted); with repair,
 * writes the counted figures. Returns 1 when they differed, 0 when not. */
int store_txn_account_recalc(struct store_txn *txn, const char *address, bool repair,
			     struct store_account *before_r, struct store_account *after_r,
			     const char **error_r);

/* Wrapped: each its own durable transaction. */
int store_account_add(struct store *store, const char *address, enum account_kind kind,
		      uint64_t quota_bytes, const char *password_hash, const char **error_r);
int store_account_get(struct store *store, const char *address, struct store_account *acct_r,
		      const char **error_r);

/* ---- mailboxes ---- */

/* RFC 6154 special-use attributes. */
enum {
	MBOX_SPECIAL_NONE = 0,
	MBOX_SPECIAL_SENT = 1 << 0,
	MBOX_SPECIAL_DRAFTS = 1 << 1,
	MBOX_SPECIAL_TRASH = 1 << 2,
	MBOX_SPECIAL_JUNK = 1 << 3,
	MBOX_SPECIAL_ARCHIVE = 1 << 4,
	MBOX_SPECIAL_ALL = 1 << 5,
	MBOX_SPECIAL_FLAGGED = 1 << 6,
};

#define STORE_MAILBOX_NAME_MAX 1000 /* bytes of UTF-8 */
#define STORE_MAILBOX_SEP '/'       /* hierarchy separator */
#define STORE_KEYWORDS_MAX 64       /* keywords per mailbox */
#define STORE_KEYWORD_MAX_LEN 128

struct store_mailbox {
	uint32_t id;                 /* unique in the store, never reused */
	uint32_t account_id;
	char name[STORE_MAILBOX_NAME_MAX + 1]; /* UTF-8; "INBOX" for the inbox */
	uint32_t uidvalidity;
	uint32_t uidnext;
	uint64_t highestmodseq;
	uint32_t messages;
	uint32_t unseen;
	uint32_t deleted;            /* messages with \Deleted */
	uint64_t bytes;              /* sum of RFC822.SIZE */
	unsigned special_use;        /* MBOX_SPECIAL_* */
	bool subscribed;
	unsigned n_keywords;
	char keywords[STORE_KEYWORDS_MAX][STORE_KEYWORD_MAX_LEN + 1];
};

/* name: UTF-8 with '/' as separator; "inbox" in any case means INBOX.
 * 1 found, 0 not found, -1 error. */
int store_txn_mailbox_get(struct store_txn *txn, uint32_t account_id, const char *name,
			  struct store_mailbox *mbox_r, const char **error_r);
int store_txn_mailbox_get_id(struct store_txn *txn, uint32_t mailbox_id,
			     struct store_mailbox *mbox_r, const char **error_r);
/* The first mailbox of the account with that special-use bit; 1/0/-1. */
int store_txn_mailbox_by_special(struct store_txn *txn, uint32_t account_id, unsigned special_use,
				 struct store_mailbox *mbox_r, const char **error_r);
/* Calls fn for each mailbox of the account, in name order. */
int store_txn_mailbox_foreach(struct store_txn *txn, uint32_t account_id,
			      int (*fn)(const struct store_mailbox *mbox, void *ctx), void *ctx,
			      const char **error_r);
int store_txn_mailbox_create(struct store_txn *txn, uint32_t account_id, const char *name,
			     unsigned special_use, uint32_t *mailbox_id_r, const char **error_r);
/* Deletes the mailbox and expunges its messages (INBOX cannot be deleted). */
int store_txn_mailbox_delete(struct store_txn *txn, uint32_t mailbox_id, const char **error_r);
/* Renames the mailbox and its children (RFC 3501 6.3.5; renaming INBOX moves
 * its messages to a new mailbox and leaves INBOX empty). */
int store_txn_mailbox_rename(struct store_txn *txn, uint32_t mailbox_id, const char *new_name,
			     const char **error_r);
int store_txn_mailbox_subscribe(struct store_txn *txn, uint32_t mailbox_id, bool subscribed,
				const char **error_r);
/* Index of keyword in the mailbox's table, adding it when add; -1 with
 * error "too many keywords" when full, or when absent and !add. */
int store_txn_keyword_index(struct store_txn *txn, uint32_t mailbox_id, const char *keyword,
			    bool add, const char **error_r);

/* ---- messages ---- */

enum {
	MSG_SEEN = 1 << 0,
	MSG_ANSWERED = 1 << 1,
	MSG_FLAGGED = 1 << 2,
	MSG_DELETED = 1 << 3,
	MSG_DRAFT = 1 << 4,
	MSG_SYSTEM_FLAGS = 0x1f,
};

/* A blob id is the SHA-256 of the message bytes (content-addressed: the
 * same bytes stored again share it), or for a delivery marked unique an id
 * made of the blob's storage number (see store_delivery). Either way an
 * opaque handle. */
#define STORE_BLOB_ID_LEN 32

struct store_message {
	uint32_t uid;
	uint32_t flags;           /* MSG_* */
	uint64_t keywords;        /* bit i: keyword i of the mailbox */
	uint64_t modseq;          /* of the last change (RFC 7162) */
	uint64_t append_modseq;   /* the modseq it arrived with */
	int64_t internal_date;    /* unix time */
	int64_t save_date;        /* when it was stored here (RFC 8514) */
	uint64_t size;            /* RFC822.SIZE */
	uint8_t blob[STORE_BLOB_ID_LEN];
};

/* Calls fn for each message of the mailbox with uid in [uid_first, uid_last]
 * in UID order. fn returning non-zero stops. */
int store_txn_message_foreach(struct store_txn *txn, uint32_t mailbox_id, uint32_t uid_first,
			      uint32_t uid_last,
			      int (*fn)(const struct store_message *msg, void *ctx), void *ctx,
			      const char **error_r);
/* 1 found, 0 not, -1 error. */
int store_txn_message_get(struct store_txn *txn, uint32_t mailbox_id, uint32_t uid,
			  struct store_message *msg_r, const char **error_r);

/* The message bytes. Pointers returned stay valid until the transaction
 * ends. Large messages are stored in chunks: blob_read copies a range. */
int store_txn_blob_size(struct store_txn *txn, const uint8_t blob[STORE_BLOB_ID_LEN],
			uint64_t *size_r, const char **error_r);
int store_txn_blob_read(struct store_txn *txn, const uint8_t blob[STORE_BLOB_ID_LEN],
			uint64_t offset, void *buf, size_t len, const char **error_r);
/* The cached parse stored with the blob at delivery (opaque to the store;
 * see lib/mime.h); 1 and *data_r and *len_r, 0 when none. */
int store_txn_blob_parsed(struct store_txn *txn, const uint8_t blob[STORE_BLOB_ID_LEN],
			  const void **data_r, size_t *len_r, const char **error_r);

/* Flag changes (RFC 3501 STORE, RFC 7162 UNCHANGEDSINCE). */
enum store_flag_mode { FLAGS_SET, FLAGS_ADD, FLAGS_REMOVE };
#define STORE_NO_UNCHANGEDSINCE UINT64_MAX
/* Changes the flags of one message, giving it a new modseq when anything
 * changed. With unchangedsince other than STORE_NO_UNCHANGEDSINCE and the
 * message's modseq greater (so UNCHANGEDSINCE 0 fails for every message), nothing
 * changes and 1 is returned (the UID goes in MODIFIED). 0 when done or not
 * needed, -1 on error; *msg_r gets the message after the change. A missing
 * UID is not an error: *msg_r->uid is 0 then. */
int store_txn_message_flags(struct store_txn *txn, uint32_t mailbox_id, uint32_t uid,
			    enum store_flag_mode mode, uint32_t flags, uint64_t keywords,
			    uint64_t unchangedsince, struct store_message *msg_r,
			    const char **error_r);
/* Expunges uids (missing ones are ignored), freeing quota at once and the
 * bytes when the last reference goes. */
int store_txn_expunge(struct store_txn *txn, uint32_t mailbox_id, const uint32_t *uids, size_t n,
		      const char **error_r);
/* Copies (or moves) uids into dst, keeping flags and internal date;
 * new_uids_r[i] gets the new UID of uids[i] (0 for a missing source).
 * Checks the destination account's quota first: over quota returns -1 with
 * error STORE_ERR_OVER_QUOTA and changes nothing. */
int store_txn_copy(struct store_txn *txn, uint32_t src_mailbox_id, const uint32_t *uids, size_t n,
		   uint32_t dst_mailbox_id, bool move, uint32_t *new_uids_r, const char **error_r);

/* Error strings callers may compare against (pointer equality). */
extern const char STORE_ERR_OVER_QUOTA[];
extern const char STORE_ERR_NO_ACCOUNT[];
extern const char STORE_ERR_NO_MAILBOX[];
extern const char STORE_ERR_EXISTS[];

/* Change log (RFC 7162): calls fn for every change of the mailbox with
 * modseq > since, in modseq order (of a message's flag changes, only its
 * latest is kept). For CONDSTORE/QRESYNC and IDLE.
 * Flag changes and expunges are logged; arrivals (CHANGE_NEW) are not, they
 * come from the messages themselves (append_modseq), which keeps delivery
 * to one page per mailbox. */
enum store_change_kind { CHANGE_NEW = 1, CHANGE_FLAGS = 2, CHANGE_EXPUNGE = 3 };
int store_txn_changes(struct store_txn *txn, uint32_t mailbox_id, uint64_t since,
		      int (*fn)(uint64_t modseq, uint32_t uid, enum store_change_kind kind,
				void *ctx),
		      void *ctx, const char **error_r);

/* ---- delivery (SMTP, LMTP, IMAP APPEND) ---- */

enum store_rcpt_status {
	RCPT_OK = 0,
	RCPT_NO_ACCOUNT,       /* 550 5.1.1 */
	RCPT_NO_MAILBOX,       /* mailbox_name/mailbox_id does not exist */
	RCPT_OVER_QUOTA,       /* 452 4.2.2 (or 552 by quota.over_quota) */
	RCPT_TOO_BIG,          /* larger than the whole quota: always 552 5.2.2 */
	RCPT_ERROR,            /* the batch failed: 451 4.3.0 */
};

struct store_rcpt {
	/* in */
	const char *address;      /* normalised account address */
	uint32_t mailbox_id;      /* the target mailbox, or 0: */
	const char *mailbox_name; /* by name (NULL: INBOX), or 0 and NULL and: */
	unsigned special_use;     /* the mailbox with this special use, else INBOX */
	uint32_t flags;           /* MSG_* */
	const char *const *keywords; /* NULL-terminated, may be NULL */
	/* out */
	enum store_rcpt_status status;
	uint32_t account_id;
	uint32_t mailbox_id_out;
	uint32_t uidvalidity;
	uint32_t uid;
};

struct store_prepared;

struct store_delivery {
	const void *data;         /* the message bytes, as the recipients get them */
	size_t size;
	const void *parsed;       /* optional cached parse kept with the bytes */
	size_t parsed_size;
	/* optional: store_prepare() of exactly these bytes and parse, so the
	 * transaction does not hash and compress them */
	const struct store_prepared *prepared;
	int64_t internal_date;    /* 0: now */
	struct store_rcpt *rcpts;
	size_t n_rcpts;
	/* The bytes cannot equal any stored before (SMTP and LMTP add a
	 * Received: field naming the session and the time): stored under a
	 * sequential id without the content look-up, so the new index entry
	 * lands beside the previous delivery's instead of on a random page of
	 * the blobs B-tree. Still stored once for all of its recipients. */
	bool unique;
};

/* Delivers the deliveries in one durable transaction (group commit): bytes
 * stored once per distinct content, each recipient's status set. Returns 0
 * when committed (each recipient then has its own status), -1 when the
 * transaction failed (every status RCPT_ERROR, nothing stored). */
int store_deliver(struct store *store, struct store_delivery *deliveries, size_t n,
		  const char **error_r);
/* The same inside a caller's write transaction. */
int store_txn_deliver(struct store_txn *txn, struct store_delivery *deliveries, size_t n,
		      const char **error_r);

/* Hashes, cuts and compresses a message's bytes (the costly part of storing
 * it) ahead of the delivery, in any thread and outside any transaction: a
 * program that commits in another thread prepares the next messages while
 * the previous commit is written. The result is used by store_delivery's
 * prepared, then freed (NULL is ok). Never fails. */
struct store_prepared *store_prepare(const struct store *store, const void *data, size_t size,
				     const void *parsed, size_t parsed_size);
/* store_prepare_as() flags */
enum {
	/* store the bytes as they are (a caller that cannot spare the CPU now:
	 * store_compact() compresses them later) */
	STORE_PREP_NO_COMPRESS = 1 << 0,
	/* for a unique delivery only (store_delivery.unique, the queue): no
	 * content hash is computed, since nothing looks such bytes up by content;
	 * a non-unique delivery of it fails */
	STORE_PREP_UNIQUE = 1 << 1,
};
/* store_prepare() with STORE_PREP_* flags. */
struct store_prepared *store_prepare_as(const struct store *store, const void *data, size_t size,
					const void *parsed, size_t parsed_size, unsigned flags);
void store_prepared_free(struct store_prepared **prep);

/* Compaction: bytes stored uncompressed by store_prepare_as() are
 * compressed later, a little at a time. Each call examines the chunks
 * stored since the previous call's mark, reads up to max_chunks
 * uncompressed ones in a read transaction, compresses them outside any
 * transaction and writes them back in one short write transaction (a chunk
 * freed or changed meanwhile is left alone). *compacted_r gets the number
 * rewritten, *more_r whether chunks remain to be examined. Nothing to do
 * when the store does not compress (global.store_compression = none). */
int store_compact(struct store *store, size_t max_chunks, size_t *compacted_r, bool *more_r,
		  const char **error_r);

/* Whether a message of size bytes (0: unknown) would fit the account now:
 * RCPT_OK, RCPT_NO_ACCOUNT, RCPT_OVER_QUOTA or RCPT_TOO_BIG. -1 on error. */
int store_quota_check(struct store *store, const char *address, uint64_t size,
		      enum store_rcpt_status *status_r, const char **error_r);

/* ---- outbound queue ----
 * Entries are opaque records (smtpd encodes sender, recipients, attempts...)
 * with a reference to the message bytes, which are stored like mailbox
 * messages (reference-counted, under sequential ids: a queued message
 * carries its own Received: field). Ids are never reused. */
#define STORE_QUEUE_RECORD_MAX (1024 * 1024)

/* Adds an entry with the message bytes; *id_r gets its new id. */
int store_txn_queue_add(struct store_txn *txn, const void *record, size_t record_len,
			const void *data, size_t size, uint64_t *id_r, const char **error_r);
/* The same with bytes made ready by store_prepare() outside the
 * transaction. */
int store_txn_queue_add_prepared(struct store_txn *txn, const void *record, size_t record_len,
				 const struct store_prepared *prepared, uint64_t *id_r,
				 const char **error_r);
/* Replaces the record of an existing entry (the bytes stay). */
int store_txn_queue_update(struct store_txn *txn, uint64_t id, const void *record,
			   size_t record_len, const char **error_r);
/* 1 and the record (valid until the transaction ends) and blob id, 0 when
 * there is no such entry, -1 on error. */
int store_txn_queue_get(struct store_txn *txn, uint64_t id, const void **record_r,
			size_t *record_len_r, uint8_t blob_r[STORE_BLOB_ID_LEN],
			const char **error_r);
/* Removes the entry and drops its reference to the bytes; 1 removed, 0 none. */
int store_txn_queue_del(struct store_txn *txn, uint64_t id, const char **error_r);
/* Calls fn for each entry in id order; fn returning non-zero stops. */
int store_txn_queue_foreach(struct store_txn *txn,
			    int (*fn)(uint64_t id, const void *record, size_t record_len,
				      const uint8_t blob[STORE_BLOB_ID_LEN], void *ctx),
			    void *ctx, const char **error_r);

#endif
