/* Feeds one message to a parser in pieces, as a connection does: the head
 * through lh_parser_head until it is whole, then the body through
 * lh_parser_body, the bytes not yet consumed kept and the next piece put
 * behind them. Each time the unconsumed bytes are moved to a buffer of
 * their own size (ending at the guard page when guard_init was called, or
 * in a fresh malloc block for ASan), so a read past them faults. Used by
 * test_parse and fuzz_chunked. */
#ifndef LH_MSG_FEED_H
#define LH_MSG_FEED_H

#include <stdlib.h>
#include <string.h>

#include "mock_io.h"
#include "parse.h"

/* how many of the `left` bytes the next piece has (at least 1) */
typedef size_t (*feed_piece_fn)(void *ctx, size_t left);

typedef struct {
  int head_r;      /* lh_parser_head's last result: 1 when the head was whole */
  int r;           /* the body's: 1 complete, 0 more needed, or an error code */
  size_t head_len; /* bytes of the head */
  size_t used;     /* bytes after the head the parser consumed */
  mock_buf_t body; /* the body bytes, in order */
} feed_t;

typedef struct {
  char *base;   /* the unconsumed bytes, base[0..len) */
  size_t len;
  int guarded;  /* base is in the guard region */
} feed_buf_t;

static void feed_buf_set(feed_buf_t *b, const char *a, size_t an, const char *c, size_t cn) {
  char *tmp = calloc(1, an + cn ? an + cn : 1);
  if (!tmp) abort();
  if (an) memcpy(tmp, a, an);
  if (cn) memcpy(tmp + an, c, cn);
  if (!b->guarded) free(b->base);
  if (b->guarded) {
    b->base = (char *)guard_place(tmp, an + cn);
    free(tmp);
  } else {
    b->base = tmp;
  }
  b->len = an + cn;
}

__attribute__((unused)) static size_t feed_whole(void *ctx, size_t left) {
  (void)ctx;
  return left;
}

__attribute__((unused)) static size_t feed_bytes(void *ctx, size_t left) {
  (void)ctx;
  (void)left;
  return 1;
}

static void feed_message(lh_parser_t *p, const char *in, size_t n, feed_piece_fn piece,
                         void *ctx, int guarded, feed_t *out) {
  feed_buf_t b = {NULL, 0, guarded};
  size_t pos = 0;
  memset(out, 0, sizeof *out);
  feed_buf_set(&b, NULL, 0, NULL, 0);
  /* the head, given more bytes until it is whole */
  for (;;) {
    out->head_r = b.len ? lh_parser_head(p, b.base, b.len) : 0;
    if (out->head_r != 0 || pos == n) break;
    size_t k = piece(ctx, n - pos);
    if (k > n - pos) k = n - pos;
    feed_buf_set(&b, b.base, b.len, in + pos, k);
    pos += k;
  }
  if (out->head_r != 1) goto out;
  out->head_len = p->head.len;
  feed_buf_set(&b, b.base + p->head.len, b.len - p->head.len, NULL, 0);
  /* the body: decoded until it ends, fails, or the input runs out */
  for (;;) {
    size_t used = 0, blen = 0;
    char *body;
    out->r = lh_parser_body(p, b.base, b.len, &used, &body, &blen);
    if (blen) mock_buf_add(&out->body, body, blen);
    out->used += used;
    if (used) feed_buf_set(&b, b.base + used, b.len - used, NULL, 0);
    if (out->r != 0) break;
    if (used && b.len) continue;
    if (pos == n) break;
    size_t k = piece(ctx, n - pos);
    if (k > n - pos) k = n - pos;
    feed_buf_set(&b, b.base, b.len, in + pos, k);
    pos += k;
  }
out:
  if (!b.guarded) free(b.base);
}

#endif
