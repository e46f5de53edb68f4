/* The event loop as the binding sees it: an opaque handle, a queue of
 * work for the next iteration, and the text of error codes (ours and
 * libuv's). No header of csrc/uv that the binding includes pulls in uv.h;
 * the layer's own files get it from uvloop.h. */
#ifndef LH_LOOP_H
#define LH_LOOP_H

#include "lh.h"

typedef struct lh_loop lh_loop_t;

/* work to run on a later loop iteration; embed it in its owner.
 * Zero-filled with cb set is a valid start. */
typedef struct lh_defer {
  void (*cb)(struct lh_defer *);
  struct lh_defer *next;
  int queued;            /* on the queue; cleared before cb runs */
} lh_defer_t;

/* NULL when out of memory or libuv refused */
lh_loop_t *lh_loop_new(void);
/* runs until lh_loop_stop or nothing is left; returns 0, or 1 if stopped */
int lh_loop_run(lh_loop_t *l);
void lh_loop_stop(lh_loop_t *l);
/* closes every handle without calling back into the binding, then frees */
void lh_loop_free(lh_loop_t *l);
double lh_loop_now(lh_loop_t *l);       /* seconds, cached loop time */
/* seconds as libuv's milliseconds, rounded up when up is set: 0 for what
 * is not positive (NaN too), UINT64_MAX (libuv's never) for a time longer
 * than a uint64_t of milliseconds holds (math.huge), where a cast would be
 * undefined */
uint64_t lh_ms(double sec, int up);
/* lh_loop_free is tearing the loop down: nothing calls the binding now */
int lh_loop_is_closing(lh_loop_t *l);
/* d->cb(d) runs on the next iteration (once, however often queued) */
void lh_loop_defer(lh_loop_t *l, lh_defer_t *d);
void lh_loop_undefer(lh_loop_t *l, lh_defer_t *d);

/* message of one of our codes or of a libuv error */
const char *lh_strerror(int err);
/* the code's name: "EPARSE_HEADER", "ECONNRESET", ... */
const char *lh_errname(int err);

#endif
