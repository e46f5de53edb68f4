/* Read buffer and write queue. No I/O here: the io layer fills the read
 * buffer and drains the write queue. */
#ifndef LH_BUF_H
#define LH_BUF_H

#include <stddef.h>
#include <sys/uio.h>

/* Bytes [off, len) of base are unconsumed. Zero-filled is a valid empty buffer. */
typedef struct {
  char *base;
  size_t off;
  size_t len;
  size_t cap;
} lh_rbuf_t;

/* makes room for `want` more bytes, moving unconsumed bytes to the front and
 * growing the block up to `max` bytes in all. returns the free bytes (maybe
 * fewer than want, 0 when the buffer is full), -1 when out of memory */
long lh_rbuf_reserve(lh_rbuf_t *b, size_t want, size_t max);
void lh_rbuf_free(lh_rbuf_t *b);
/* drops consumed bytes; releases the memory when empty and larger than keep */
void lh_rbuf_trim(lh_rbuf_t *b, size_t keep);

static inline size_t lh_rbuf_avail(const lh_rbuf_t *b) { return b->len - b->off; }
static inline const char *lh_rbuf_data(const lh_rbuf_t *b) { return b->base + b->off; }

/* One contiguous growable byte block. */
typedef struct {
  char *data;
  size_t len;
  size_t cap;
} lh_bytes_t;

/* Write queue: two blocks. While the io layer has `flight` handed to the
 * kernel (uv_write in progress) that block is frozen and new bytes go to the
 * other one. Zero-filled is a valid empty queue. */
typedef struct {
  lh_bytes_t blk[2];
  size_t sent;   /* bytes of the active block already written */
  int cur;       /* block new bytes are appended to */
  int flight;    /* 1 while blk[!cur] is owned by a pending write */
} lh_wq_t;

/* returns a pointer to n writable bytes at the end of the queue, NULL on OOM;
 * lh_wq_commit(n) makes them part of the queue */
char *lh_wq_reserve_slow(lh_wq_t *q, size_t n);
static inline char *lh_wq_reserve(lh_wq_t *q, size_t n) {
  lh_bytes_t *b = &q->blk[q->cur];
  if (b->cap - b->len >= n) return b->data + b->len; /* the usual case, inline */
  return lh_wq_reserve_slow(q, n);
}
static inline void lh_wq_commit(lh_wq_t *q, size_t n) { q->blk[q->cur].len += n; }
int lh_wq_append(lh_wq_t *q, const void *p, size_t n);
/* bytes queued and not yet written (in flight included) */
size_t lh_wq_pending(const lh_wq_t *q);
/* bytes that may be handed to the kernel now (none while a write is in flight) */
size_t lh_wq_peek(const lh_wq_t *q, const char **p);
/* n of the peeked bytes were written */
void lh_wq_consume(lh_wq_t *q, size_t n);
/* the peeked remainder goes to an asynchronous write: freeze it */
void lh_wq_begin_flight(lh_wq_t *q);
/* that write completed */
void lh_wq_end_flight(lh_wq_t *q);
/* current length of the append block, to roll back a partial message */
static inline size_t lh_wq_mark(const lh_wq_t *q) { return q->blk[q->cur].len; }
static inline void lh_wq_rollback(lh_wq_t *q, size_t mark) { q->blk[q->cur].len = mark; }
void lh_wq_free(lh_wq_t *q);
/* releases blocks larger than keep when nothing is queued */
void lh_wq_trim(lh_wq_t *q, size_t keep);

#endif
