/* Typed, length-checked frames between the processes of one daemon
 * (STYLE 1), over a unix stream socketpair.
 *
 * A frame is a 4-byte type, a 4-byte payload length (both little-endian)
 * and the payload. The receiver fixes the largest payload it accepts; a
 * longer one, a short read at EOF, or a payload its handler cannot decode
 * exactly (frame_reader: every field bounded, nothing left over) means the
 * peer is broken or compromised, and the receiver must stop using the
 * channel (the daemons exit) rather than half-parse it. */
#ifndef CONGVU_FRAME_H
#define CONGVU_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "str.h"

struct ioloop;
struct frame_chan;

#define FRAME_HEADER_SIZE 8

/* data is valid during the call only. */
typedef void frame_handler_fn(void *ctx, uint32_t type, const void *data, size_t len);
/* The channel is dead (EOF, I/O error, oversized frame); error is static. */
typedef void frame_error_fn(void *ctx, const char *error);

/* Takes ownership of fd (made non-blocking). max_payload bounds incoming
 * frames. */
struct frame_chan *frame_chan_new(struct ioloop *loop, int fd, size_t max_payload,
				  frame_handler_fn *handler, frame_error_fn *on_error, void *ctx);
void frame_chan_free(struct frame_chan **chan);
/* Queues one frame (written when the socket accepts it; never blocks). */
void frame_send(struct frame_chan *chan, uint32_t type, const void *data, size_t len);
/* Bytes queued and not yet written. */
size_t frame_chan_pending(const struct frame_chan *chan);
/* Writes queued frames, blocking until done (for the last words before exit). */
int frame_chan_flush_blocking(struct frame_chan *chan);
/* While paused no frames are read or handled. */
void frame_chan_pause(struct frame_chan *chan, bool paused);

/* ---- payload encoding ---- */
void frame_put_u8(struct str *buf, uint8_t v);
void frame_put_u32(struct str *buf, uint32_t v);
void frame_put_u64(struct str *buf, uint64_t v);
/* A length-prefixed byte string. */
void frame_put_bytes(struct str *buf, const void *data, size_t len);
/* A C string (s may be NULL: sent as empty). */
void frame_put_str(struct str *buf, const char *s);

/* ---- payload decoding: every getter checks bounds and marks the reader
 * bad instead of reading past the end; check frame_reader_ok() at the end. */
struct frame_reader {
	const uint8_t *p;
	size_t left;
	bool bad;
};

void frame_reader_init(struct frame_reader *r, const void *data, size_t len);
uint8_t frame_get_u8(struct frame_reader *r);
uint32_t frame_get_u32(struct frame_reader *r);
uint64_t frame_get_u64(struct frame_reader *r);
/* Pointer into the frame and length; at most max bytes (else bad). */
const void *frame_get_bytes(struct frame_reader *r, size_t max, size_t *len_r);
/* A C string of at most max bytes, NUL-terminated in the frame (points into
 * it), without interior NULs; "" when bad. */
const char *frame_get_str(struct frame_reader *r, size_t max);
/* True when nothing was bad and every byte was consumed. */
bool frame_reader_ok(const struct frame_reader *r);

#endif
