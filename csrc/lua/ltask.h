/* The binding's state and its task runtime: the coroutines lhyper resumes
 * from loop callbacks (a request's handler, a spawned task), the time and
 * loop functions, and error objects. What a task serves (a request) plugs
 * in through lh_task_ops_t; the runtime knows nothing of requests. */
#ifndef LH_LTASK_H
#define LH_LTASK_H

#include <lauxlib.h>
#include <lua.h>
#include <stdint.h>

#include "timer.h"

/* what a suspended coroutine waits for */
enum {
  LH_WAIT_NONE = 0,
  LH_WAIT_BODY,   /* body bytes (req:body(), stream:read()) */
  LH_WAIT_WRITE,  /* room in the write queue */
  LH_WAIT_SLEEP,  /* lhyper.sleep's timer */
  LH_WAIT_TICK,   /* the next loop iteration */
  LH_WAIT_CLIENT, /* an HTTP client exchange (lclient.c) */
  LH_WAIT_QUEUE   /* a wait queue (join, channel, condition, server:wait) */
};

/* how a task ended, for its owner (lh_task_t.end) */
enum { LH_END_RETURNED = 1, LH_END_FAILED, LH_END_CANCELED };

typedef struct lh_lstate lh_lstate_t;
typedef struct lh_task lh_task_t;
typedef struct lh_alloc lh_alloc_t;
typedef struct lh_own lh_own_t;
typedef struct lh_waitq lh_waitq_t;

/* What a task serves, seen from the runtime (a request, lsvc.c; a task of
 * lhyper.spawn, lspawn.c). */
typedef struct {
  /* the coroutine raised; the error value is on top of t->co, which is not
   * closed yet. The task is released right after. */
  void (*raised)(lua_State *L, lh_task_t *t);
  /* the task is over (t->end says how) and what it owned is closed or
   * handed on; its thread is let go after this returns */
  void (*finished)(lh_task_t *t);
  /* optional, around each resume from a loop callback: what resuming
   * returns is given to resumed afterwards, when the task may be over and
   * its memory gone */
  void *(*resuming)(lh_task_t *t);
  void (*resumed)(void *ctx);
  /* optional, for a root (a request): a task under it failed with the
   * value at L's index i; text is that value's text with the failed
   * task's traceback */
  void (*descendant_failed)(lua_State *L, lh_task_t *root, int i, const char *text);
} lh_task_ops_t;

/* Something a task opened and holds: a child task, an outbound response,
 * an upgraded stream. Closed when its owner ends, unless handed on to the
 * owner's parent (a child's returned values; lhyper.timeout). Zero-filled
 * is a valid start (owned by nobody). */
struct lh_own {
  lh_own_t *prev, *next;   /* in the owner's list */
  lh_task_t *owner;        /* NULL while nobody owns it */
  /* ends it: its owner is over. It is out of the list when called */
  void (*close)(lh_own_t *o);
  void *ud;                /* its Lua userdata, matched against returned values */
  unsigned pass : 1;       /* returned by its owner: goes to the owner's parent */
  uint8_t end;             /* how its owner ended (LH_END_*): set just before close */
};

/* Tasks waiting for something, first come first served. A woken
 * (signalled) task stays in the queue until it runs, so that one cancelled
 * in between hands its wake-up on (pass) instead of losing it. */
struct lh_waitq {
  lh_task_t *head, *tail;
  uint32_t n;              /* tasks in the queue */
  uint32_t nsig;           /* of which signalled */
  /* optional: a signalled task left without running; wake another if the
   * thing it waited for is still there */
  void (*pass)(lh_waitq_t *q);
};

/* A coroutine lhyper manages. The thread's extra space points here while
 * the task owns it. Zero-filled plus lh_task_bind is a valid start. */
struct lh_task {
  lua_State *co;           /* NULL once over */
  int ref;                 /* registry ref anchoring the thread; LUA_NOREF when over */
  int wait;                /* LH_WAIT_* while suspended */
  lh_timer_t *timer;       /* sleep or a wait's deadline; NULL when none runs */
  const lh_task_ops_t *ops;
  lh_lstate_t *st;
  lh_defer_t tick;         /* resume on the next loop iteration */
  int nargs;               /* > 0 before the first resume: arguments on the stack */
  uint8_t end;             /* LH_END_* once over, 0 before */
  unsigned running : 1;    /* inside lua_resume */
  unsigned cancel : 1;     /* cancel once it yields */
  unsigned ending : 1;     /* being cancelled or released: no second time */
  unsigned expired : 1;    /* its timer fired during the current wait */
  unsigned signalled : 1;  /* woken in its wait queue, not run yet */
  unsigned adopt : 1;      /* returning hands everything it owns to its parent */
  lh_own_t node;           /* as a child: in its parent's list (node.owner) */
  lh_own_t *owned;         /* what it opened and holds, newest first */
  lh_waitq_t *wq;          /* the queue it waits in, NULL if none */
  lh_task_t *wq_prev, *wq_next;
  lh_task_t **slot;        /* a pointer to it, cleared when it stops waiting */
};

/* A task that C code makes rather than a Lua object (a detached
 * WebSocket's pump, lws.c): malloc'd and listed in its state until freed,
 * so that one still suspended when the state closes goes with it */
typedef struct lh_ctask {
  lh_task_t task;          /* first */
  struct lh_ctask *prev, *next;
} lh_ctask_t;

struct lh_lstate {
  lh_loop_t *loop;         /* NULL once the state is closing */
  lua_State *L;            /* main thread: callbacks run here */
  int running;             /* inside lhyper.run */
  int ntasks;              /* live spawned tasks */
  struct {                 /* finished threads kept for reuse, anchored by their ref */
    lua_State *co;
    int ref;
  } free_co[64];
  int nfree_co;
  lh_alloc_t *alloc;       /* allocator cache, detached when the state closes */
  struct {                 /* lws.c's keepalive list: the open WebSockets due a
                            * ping check, earliest first, and one timer for all */
    struct lh_lws *head, *tail;
    lh_timer_t *timer;     /* set while the list is not empty */
    double at;             /* loop time the timer fires */
  } ws_beat;
  lh_ctask_t *ctasks;      /* C tasks not freed yet (lh_ctask_new) */
  lh_ctask_t *ctask_free;  /* freed ones kept for the next (singly linked by next) */
  int nctask_free;
};

/* --- state --- */
/* makes the state once per lua_State (in the registry); raises on failure */
void lh_state_open(lua_State *L);
lh_lstate_t *lh_state(lua_State *L);
/* number option t[k]; def when absent, 0 when false */
double lh_opt_number(lua_State *L, int t, const char *k, double def);
/* the same for a count or a size of at most max: 0 for what is not
 * positive (NaN too), max for what is larger (math.huge), where a cast
 * would be undefined */
uint64_t lh_opt_uint(lua_State *L, int t, const char *k, double def, uint64_t max);

/* --- tasks --- */
static inline lh_task_t *lh_task_of(lua_State *co) {
  return *(lh_task_t **)lua_getextraspace(co);
}
/* the task running on L, or NULL (the main thread, a plain coroutine) */
static inline lh_task_t *lh_task_current(lua_State *L) {
  lh_task_t *t = lh_task_of(L);
  return t && t->running ? t : NULL;
}
/* a task's tick (lh_defer_t) callback: resumes it if it waits for a tick */
void lh_task_tick_cb(lh_defer_t *d);
/* t takes over co (anchored by ref), running now: for a task whose first
 * resume its owner made */
static inline void lh_task_bind(lh_task_t *t, lh_lstate_t *st, lua_State *co, int ref,
                                const lh_task_ops_t *ops) {
  t->st = st;
  t->co = co;
  t->ref = ref;
  t->ops = ops;
  t->running = 1;
  t->tick.cb = lh_task_tick_cb;
  *(lh_task_t **)lua_getextraspace(co) = t;
}
/* t lets go of its thread without ending it: the thread goes on with
 * another task (lsvc.c, pipelined requests). t owns nothing then */
static inline void lh_task_unbind(lh_task_t *t) {
  t->co = NULL;
  t->ref = LUA_NOREF;
  t->running = 0;
}
/* t runs again: the pointer to it that its wait set (t->slot) is cleared */
static inline void lh_task_unslot(lh_task_t *t) {
  if (t->slot) {
    *t->slot = NULL;
    t->slot = NULL;
  }
}
/* resumes a suspended task from a loop callback; errors are the task's own */
void lh_task_resume(lh_task_t *t);
/* runs a task that was never resumed now, nested in the running task on
 * L (lhyper.timeout); errors are the task's own, as in lh_task_resume */
void lh_task_start(lua_State *L, lh_task_t *t);
/* after a task's first resume, made by its owner outside protection:
 * carries on as lh_task_resume would, protecting only what may raise */
void lh_task_resumed(lua_State *L, lh_task_t *t, int s, int nres);
/* cancels a task: what it owns is closed, then its coroutine (its <close>
 * variables run). A running task is cancelled when it next yields */
void lh_task_cancel(lh_task_t *t);
/* yields the running task until woken with `wait` */
int lh_task_yield(lua_State *L, int wait, lua_KFunction k);
/* wakes a suspended task on the next loop iteration (its continuation
 * then finds out why); for wake-ups from inside another task */
void lh_task_wake(lh_task_t *t);
/* starts t's timer: after sec seconds t->expired is set and t, if still
 * waiting, resumed. weak: the timer does not keep lhyper.run() going.
 * Raises when out of memory */
void lh_task_arm(lua_State *L, lh_task_t *t, double sec, int weak);
/* stops t's timer, if any */
void lh_task_disarm(lh_task_t *t);
/* the continuation of a C function whose yield leaves nothing to do after */
int lh_k_none(lua_State *L, int status, lua_KContext ctx);

/* --- ownership (structured concurrency) --- */
/* o is now owner's (owner NULL: nobody's); it leaves its former owner */
void lh_own_add(lh_task_t *owner, lh_own_t *o);
/* o leaves its owner (closed by other means, or collected) */
void lh_own_leave(lh_own_t *o);
/* closes what t owns but keep (NULL: all), as if t had returned, while t
 * goes on: a scope inside a task (a detached WebSocket's callback) */
void lh_own_close_but(lh_task_t *t, lh_own_t *keep);
/* marks what t owns among the values at L's indices i..j as returned */
void lh_own_mark_returned(lua_State *L, lh_task_t *t, int i, int j);

/* --- wait queues --- */
/* the running task waits in q (at its end) until signalled, cancelled or,
 * when timeout >= 0, that many seconds passed; k then runs and decides:
 * lh_waitq_leave when done, or lh_waitq_again to wait on in its place */
int lh_waitq_wait(lua_State *L, lh_waitq_t *q, double timeout, lua_KFunction k);
/* the same with a context for k */
int lh_waitq_waitk(lua_State *L, lh_waitq_t *q, double timeout, lua_KFunction k, lua_KContext ctx);
int lh_waitq_again(lua_State *L, lua_KFunction k);
/* the running task t leaves its queue (and its timer stops) */
void lh_waitq_leave(lh_task_t *t);
/* wakes the first task not yet signalled; 1 if there was one */
int lh_waitq_signal(lh_waitq_t *q);
/* wakes every task; returns how many */
int lh_waitq_broadcast(lh_waitq_t *q);
/* the queue goes away: every task leaves it (woken, as by broadcast) */
void lh_waitq_drop(lh_waitq_t *q);

/* threads: one in the pool, made under protection if needed (0 or
 * LH_ENOMEM); one taken from the pool or made (*ref anchors it); one taken
 * that no task took over */
int lh_co_reserve(lh_lstate_t *st);
/* a zero-filled C task listed in st, NULL when out of memory; freed with
 * lh_ctask_free (its ops' finished, once it is over) or when st closes */
lh_ctask_t *lh_ctask_new(lh_lstate_t *st);
void lh_ctask_free(lh_lstate_t *st, lh_ctask_t *c);
lua_State *lh_co_take(lh_lstate_t *st, lua_State *L, int *ref);
void lh_co_drop(lh_lstate_t *st, lua_State *co, int ref);

/* --- error objects (lhyper.error) --- */
void lh_push_error(lua_State *L, int code, const char *msg);
/* pushes nil, err, kind and returns 3 */
int lh_push_fail(lua_State *L, int code, const char *msg);
/* raises an error object */
int lh_raise(lua_State *L, int code, const char *msg);
/* the text of the error value at index i: a string, or what __tostring gives */
const char *lh_error_text(lua_State *L, int i);

/* the text of the value at L's index i with co's traceback under it: a
 * string gets one, other values their __tostring or type (pushed on L) */
const char *lh_push_traceback(lua_State *L, lua_State *co, int i);
/* 1 if the value at i is an lhyper error object */
int lh_is_error(lua_State *L, int i);

/* registers the metatables (once per state) and adds sleep, now, run,
 * stop, error, on_signal and in_task to the module table at mod */
void lh_task_open(lua_State *L, int mod);

#endif
