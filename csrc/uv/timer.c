/* One-shot timers (lhyper.sleep) and signal watchers: each a malloc'd
 * libuv handle that frees itself in its close callback. */
#include "timer.h"

#include "uvloop.h"

#include <stdlib.h>

struct lh_timer {
  uv_timer_t t;
  void (*cb)(void *);
  void *data;
};

static void timer_close_cb(uv_handle_t *h) { free(h); }

static void timer_cb(uv_timer_t *h) {
  lh_timer_t *t = (lh_timer_t *)h;
  void (*cb)(void *) = t->cb;
  void *data = t->data;
  uv_close((uv_handle_t *)h, timer_close_cb);
  if (!((lh_loop_t *)h->loop->data)->closing) cb(data);
}

lh_timer_t *lh_timer_start(lh_loop_t *l, double sec, void (*cb)(void *), void *data) {
  lh_timer_t *t = malloc(sizeof *t);
  if (!t) return NULL;
  uv_timer_init(&l->uv, &t->t);
  t->t.data = (void *)timer_close_cb; /* how lh_loop_free closes it */
  t->cb = cb;
  t->data = data;
  uv_timer_start(&t->t, timer_cb, lh_ms(sec, 0), 0);
  return t;
}

void lh_timer_cancel(lh_timer_t *t) {
  if (!uv_is_closing((uv_handle_t *)&t->t)) uv_close((uv_handle_t *)&t->t, timer_close_cb);
}

void lh_timer_weak(lh_timer_t *t) { uv_unref((uv_handle_t *)&t->t); }

struct lh_signal {
  uv_signal_t h;
  void (*cb)(void *, int);
  void *data;
};

static void signal_cb(uv_signal_t *h, int signum) {
  lh_signal_t *s = (lh_signal_t *)h;
  if (!((lh_loop_t *)h->loop->data)->closing) s->cb(s->data, signum);
}

lh_signal_t *lh_signal_start(lh_loop_t *l, int signum, void (*cb)(void *, int), void *data) {
  lh_signal_t *s = malloc(sizeof *s);
  if (!s) return NULL;
  uv_signal_init(&l->uv, &s->h);
  s->h.data = (void *)timer_close_cb; /* how lh_loop_free closes it */
  s->cb = cb;
  s->data = data;
  if (uv_signal_start(&s->h, signal_cb, signum)) {
    uv_close((uv_handle_t *)&s->h, timer_close_cb);
    return NULL;
  }
  uv_unref((uv_handle_t *)&s->h);
  return s;
}

void lh_signal_stop(lh_signal_t *s) {
  if (!uv_is_closing((uv_handle_t *)&s->h)) uv_close((uv_handle_t *)&s->h, timer_close_cb);
}
