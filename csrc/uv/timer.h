/* One-shot timers and signal watchers (timer.c). */
#ifndef LH_TIMER_H
#define LH_TIMER_H

#include "loop.h"

typedef struct lh_timer lh_timer_t;
typedef struct lh_signal lh_signal_t;

/* one-shot timer: cb(data) after sec seconds unless cancelled first; it
 * frees itself after firing or being cancelled. NULL when out of memory */
lh_timer_t *lh_timer_start(lh_loop_t *l, double sec, void (*cb)(void *), void *data);
void lh_timer_cancel(lh_timer_t *t);
/* the timer no longer keeps the loop alive (lh_loop_run may return first) */
void lh_timer_weak(lh_timer_t *t);

/* signal watcher: cb(data, signum) on each delivery; it does not keep the
 * loop alive. lh_signal_stop frees it. NULL when it cannot watch */
lh_signal_t *lh_signal_start(lh_loop_t *l, int signum, void (*cb)(void *, int), void *data);
void lh_signal_stop(lh_signal_t *s);

#endif
