/* The loop: libuv's, a defer queue run by one idle handle (work for the
 * next iteration, in order), teardown that closes every handle without
 * calling the binding, and the text of error codes. */
#include "uvloop.h"

#include "tuning.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>

static void defer_cb(uv_idle_t *h) {
  lh_loop_t *l = h->data;
  /* only what is queued now: work queued by these callbacks waits a turn */
  lh_defer_t *q = l->dq_head, *end = l->dq_tail;
  l->dq_head = l->dq_tail = NULL;
  while (q) {
    lh_defer_t *next = q->next;
    int last = q == end;
    q->next = NULL;
    q->queued = 0;
    q->cb(q);
    if (last) break;
    q = next;
  }
  if (!l->dq_head) uv_idle_stop(&l->defer_idle);
}

/* see sconn.c close_socket_early: only with the libuv whose internals it knows,
 * and the one it was built against; LHYPER_FAST_CLOSE=0 turns it off */
static int fast_close_usable(void) {
  if (!lh_tuning.fast_close) return 0;
#if defined(__linux__) && UV_VERSION_MAJOR == 1 && UV_VERSION_MINOR == 44
  return (uv_version() >> 8) == (UV_VERSION_HEX >> 8);
#else
  return 0;
#endif
}

lh_loop_t *lh_loop_new(void) {
  /* a peer that closes while we write must cost an EPIPE, not the process;
   * a handler the program installed itself is left alone */
  struct sigaction sa;
  if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL) {
    sa.sa_handler = SIG_IGN;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;
    sigaction(SIGPIPE, &sa, NULL);
  }
  lh_loop_t *l = calloc(1, sizeof *l);
  if (!l) return NULL;
  if (uv_loop_init(&l->uv)) {
    free(l);
    return NULL;
  }
  l->uv.data = l;
  l->fast_close = fast_close_usable();
  uv_idle_init(&l->uv, &l->defer_idle);
  l->defer_idle.data = l;
  return l;
}

int lh_loop_run(lh_loop_t *l) {
  l->stopped = 0;
  uv_run(&l->uv, UV_RUN_DEFAULT);
  return l->stopped;
}

void lh_loop_stop(lh_loop_t *l) {
  l->stopped = 1;
  uv_stop(&l->uv);
}

int lh_loop_is_closing(lh_loop_t *l) { return l->closing; }

double lh_loop_now(lh_loop_t *l) { return (double)uv_now(&l->uv) / 1000.0; }

uint64_t lh_ms(double sec, int up) {
  if (!(sec > 0)) return 0;
  if (sec >= 1.8e16) return UINT64_MAX; /* 1.8e19 ms: UINT64_MAX is 1.845e19 */
  return (uint64_t)(sec * 1000.0 + (up ? 0.999 : 0.5));
}

void lh_loop_defer(lh_loop_t *l, lh_defer_t *d) {
  if (d->queued || l->closing) return;
  d->queued = 1;
  d->next = NULL;
  if (l->dq_tail) l->dq_tail->next = d;
  else l->dq_head = d;
  l->dq_tail = d;
  if (!uv_is_active((uv_handle_t *)&l->defer_idle)) uv_idle_start(&l->defer_idle, defer_cb);
}

void lh_loop_undefer(lh_loop_t *l, lh_defer_t *d) {
  if (!d->queued) return;
  lh_defer_t **pp = &l->dq_head, *prev = NULL;
  while (*pp && *pp != d) {
    prev = *pp;
    pp = &(*pp)->next;
  }
  if (*pp) {
    *pp = d->next;
    if (l->dq_tail == d) l->dq_tail = prev;
  }
  d->queued = 0;
  d->next = NULL;
}

static void walk_close_cb(uv_handle_t *h, void *arg) {
  if (!uv_is_closing(h)) {
    /* connections and servers free themselves in their close callbacks */
    if ((h->type == UV_TCP || h->type == UV_POLL) && h->data) {
      uv_close(h, (uv_close_cb)h->data);
    } else if ((h->type == UV_TIMER || h->type == UV_SIGNAL) && h->data) {
      uv_close(h, (uv_close_cb)h->data);
    } else {
      uv_close(h, NULL);
    }
  }
}

void lh_loop_free(lh_loop_t *l) {
  l->closing = 1;
  l->dq_head = l->dq_tail = NULL;
  uv_walk(&l->uv, walk_close_cb, NULL);
  while (uv_loop_close(&l->uv) == UV_EBUSY) uv_run(&l->uv, UV_RUN_ONCE);
  free(l);
}

const char *lh_errname(int err) {
  const char *n = lh_err_name(err);
  return n ? n : uv_err_name(err);
}

const char *lh_strerror(int err) {
  const char *m = lh_err_message(err);
  return m ? m : uv_strerror(err);
}
