/* Log writers: lines go into a buffer and out to a file descriptor through
 * libuv's thread pool, so a slow disk or a full pipe holds up a pool
 * thread, never the loop. One write is in flight at a time; what arrives
 * meanwhile waits in the buffer, up to a limit past which lines are
 * dropped (and counted), never queued without bound. */
#ifndef LH_LOGW_H
#define LH_LOGW_H

#include <stddef.h>
#include <stdint.h>

#include "loop.h"

typedef struct lh_logw lh_logw_t;

typedef struct {
  uint64_t written;  /* bytes the descriptor took */
  uint64_t dropped;  /* bytes of lines dropped: the buffer was at its limit */
  uint64_t lost;     /* bytes a failed write lost */
  size_t pending;    /* bytes buffered or in flight */
  int error;         /* the last write's error (a libuv code), 0 if none */
} lh_logw_stats_t;

/* a writer to fd (closed with the writer when own is set) holding at most
 * limit bytes; what it holds is written within interval seconds, or at
 * once past 64 KiB. NULL when out of memory */
lh_logw_t *lh_logw_start(lh_loop_t *l, int fd, int own, size_t limit, double interval);
/* appends n bytes, whole or not at all: 0, or LH_ENOMEM when over the
 * limit (the n bytes count as dropped) */
int lh_logw_write(lh_logw_t *w, const char *p, size_t n);
/* room for at most n bytes at the end of the buffer, or NULL (nothing is
 * counted: a line that does not get room may still go in whole through
 * lh_logw_write); lh_logw_commit(w, k) appends the first k <= n */
char *lh_logw_reserve(lh_logw_t *w, size_t n);
void lh_logw_commit(lh_logw_t *w, size_t k);
/* starts writing what is buffered now */
void lh_logw_flush(lh_logw_t *w);
void lh_logw_stats(const lh_logw_t *w, lh_logw_stats_t *st);
/* writes what is left, then closes; the writer frees itself when done and
 * must not be used after this call */
void lh_logw_close(lh_logw_t *w);

/* the monotonic clock in nanoseconds, for durations */
uint64_t lh_hrtime(void);

#endif
