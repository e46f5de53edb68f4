/* The read buffer (grows to a bound, compacts) and the two-block write
 * queue whose one block may be in flight while the other fills (buf.h). */
#include "buf.h"

#include <stdlib.h>
#include <string.h>

/* Blocks of LH_BLOCK bytes are what most connections need for a request or
 * a response; idle connections give theirs back. A small free list per
 * thread saves a malloc/free pair per message. */
#define LH_BLOCK 4096
#define LH_POOL_MAX 64

static __thread struct {
  void *blk[LH_POOL_MAX];
  int n;
} pool;

static void *blk_alloc(size_t cap) {
  if (cap == LH_BLOCK && pool.n) return pool.blk[--pool.n];
  return malloc(cap);
}

static void blk_free(void *p, size_t cap) {
  if (p && cap == LH_BLOCK && pool.n < LH_POOL_MAX) pool.blk[pool.n++] = p;
  else free(p);
}

/* realloc that keeps pooled blocks pooled */
static void *blk_realloc(void *p, size_t cap, size_t ncap, size_t used) {
  if (cap != LH_BLOCK && ncap != LH_BLOCK) return realloc(p, ncap);
  void *q = blk_alloc(ncap);
  if (!q) return NULL;
  if (used) memcpy(q, p, used);
  blk_free(p, cap);
  return q;
}

long lh_rbuf_reserve(lh_rbuf_t *b, size_t want, size_t max) {
  size_t unread = b->len - b->off;
  if (b->off && (b->cap - b->len < want || unread == 0)) {
    if (unread) memmove(b->base, b->base + b->off, unread);
    b->len = unread;
    b->off = 0;
  }
  if (b->cap - b->len >= want) return (long)(b->cap - b->len);
  size_t ncap = b->cap ? b->cap : LH_BLOCK;
  while (ncap < b->len + want && ncap < max) ncap *= 2;
  if (ncap > max) ncap = max;
  if (ncap <= b->cap) return (long)(b->cap - b->len);
  char *p = blk_realloc(b->base, b->cap, ncap, b->len);
  if (!p) return -1;
  b->base = p;
  b->cap = ncap;
  return (long)(b->cap - b->len);
}

void lh_rbuf_free(lh_rbuf_t *b) {
  blk_free(b->base, b->cap);
  memset(b, 0, sizeof *b);
}

void lh_rbuf_trim(lh_rbuf_t *b, size_t keep) {
  if (b->off == b->len) {
    b->off = b->len = 0;
    if (b->cap > keep) lh_rbuf_free(b);
  }
}

static int bytes_grow(lh_bytes_t *b, size_t n) {
  if (b->cap - b->len >= n) return 0;
  size_t ncap = b->cap ? b->cap * 2 : LH_BLOCK;
  while (ncap - b->len < n) ncap *= 2;
  char *p = blk_realloc(b->data, b->cap, ncap, b->len);
  if (!p) return -1;
  b->data = p;
  b->cap = ncap;
  return 0;
}

char *lh_wq_reserve_slow(lh_wq_t *q, size_t n) {
  lh_bytes_t *b = &q->blk[q->cur];
  if (bytes_grow(b, n)) return NULL;
  return b->data + b->len;
}

int lh_wq_append(lh_wq_t *q, const void *p, size_t n) {
  char *d = lh_wq_reserve(q, n);
  if (!d) return -1;
  memcpy(d, p, n);
  lh_wq_commit(q, n);
  return 0;
}

size_t lh_wq_pending(const lh_wq_t *q) {
  size_t n = q->blk[q->cur].len;
  if (q->flight) n += q->blk[!q->cur].len - q->sent;
  else n -= q->sent;
  return n;
}

size_t lh_wq_peek(const lh_wq_t *q, const char **p) {
  if (q->flight) return 0;
  const lh_bytes_t *b = &q->blk[q->cur];
  size_t n = b->len - q->sent;
  /* an empty block may be unallocated: no offset from NULL */
  *p = n ? b->data + q->sent : b->data;
  return n;
}

void lh_wq_consume(lh_wq_t *q, size_t n) {
  lh_bytes_t *b = &q->blk[q->cur];
  q->sent += n;
  if (q->sent == b->len) q->sent = b->len = 0;
}

void lh_wq_begin_flight(lh_wq_t *q) {
  q->flight = 1;
  q->cur = !q->cur;
}

void lh_wq_end_flight(lh_wq_t *q) {
  q->flight = 0;
  q->blk[!q->cur].len = 0;
  q->sent = 0;
  /* bytes appended meanwhile sit in cur; the flushed block becomes spare */
}

void lh_wq_free(lh_wq_t *q) {
  blk_free(q->blk[0].data, q->blk[0].cap);
  blk_free(q->blk[1].data, q->blk[1].cap);
  memset(q, 0, sizeof *q);
}

void lh_wq_trim(lh_wq_t *q, size_t keep) {
  if (q->flight) return;
  for (int i = 0; i < 2; i++) {
    lh_bytes_t *b = &q->blk[i];
    if (b->len == 0 && b->cap > keep) {
      blk_free(b->data, b->cap);
      b->data = NULL;
      b->cap = 0;
    }
  }
}
