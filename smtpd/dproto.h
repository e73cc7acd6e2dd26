/* Frames between the processes of congvu-smtpd (lib/frame.h): the session
 * workers ask the delivery process, which alone opens the store, and the
 * parent sends reloads. Payload layouts, in order (u64/u32/u8 numbers, str
 * NUL-terminated strings, bytes length-prefixed):
 *
 * worker -> delivery
 *   DF_RCPT     u64 req, str address, u64 size (0: unknown)
 *   DF_AUTH     u64 req, str user, str password
 *   DF_DELIVER  u64 req, u8 atomic (SMTP: all local recipients or none),
 *               u32 return_path_len (bytes at the start of data that only
 *               local copies get), bytes data, bytes parsed (mime cache, may
 *               be empty), u32 n, n x (str address, u32 special_use),
 *               bytes queue_record (empty: nothing to queue)
 * delivery -> worker
 *   DF_RCPT_REPLY     u64 req, u32 status (enum store_rcpt_status)
 *   DF_AUTH_REPLY     u64 req, u8 ok, str account (normalised, or "")
 *   DF_DELIVER_REPLY  u64 req, u32 n, n x u32 status, u32 queued
 *                     (0 nothing, 1 queued, 2 failed), u64 queue id
 * parent -> worker, parent -> delivery
 *   DF_RELOAD   str settings (settings_dump() text), bytes cert PEM, bytes key PEM
 *
 * A frame that does not decode exactly ends the receiver (STYLE 1). */
#ifndef CONGVU_SMTPD_DPROTO_H
#define CONGVU_SMTPD_DPROTO_H

enum dframe {
	DF_RCPT = 1,
	DF_RCPT_REPLY,
	DF_AUTH,
	DF_AUTH_REPLY,
	DF_DELIVER,
	DF_DELIVER_REPLY,
	DF_RELOAD,
};

enum { DQ_NONE = 0, DQ_QUEUED = 1, DQ_FAILED = 2 };

/* Largest frame besides DF_DELIVER, whose bound follows max_message_size. */
#define DFRAME_SMALL_MAX (256 * 1024)
/* Recipients per DF_DELIVER, beyond smtpd.max_recipients' own bound. */
#define DFRAME_RCPTS_MAX 100000

#endif
