/* The binding's state and its task runtime: the coroutines lhyper resumes
 * from loop callbacks (a request's handler, a spawned task), the time and
 * loop functions, and error objects. What a task serves (a request) plugs
 * in through lh_task_ops_t; the runtime knows nothing of requests. */
#ifndef LH_LTASK_H
#define LH_LTASK_H

#include <lauxlib.h>
#include <lua.h>

#include "timer.h"

/* what a suspended coroutine waits for */
enum {
  LH_WAIT_NONE = 0,
  LH_WAIT_BODY,   /* body bytes (req:body(), stream:read()) */
  LH_WAIT_WRITE,  /* room in the write queue */
  LH_WAIT_SLEEP,  /* lhyper.sleep's timer */
  LH_WAIT_TICK,   /* the next loop iteration */
  LH_WAIT_CLIENT  /* an HTTP client exchange (lclient.c) */
};

typedef struct lh_lstate lh_lstate_t;
typedef struct lh_task lh_task_t;
typedef struct lh_alloc lh_alloc_t;

/* What a task serves, seen from the runtime. A spawned task has none. */
typedef struct {
  /* the coroutine raised; the error value is on top of t->co, which is not
   * closed yet. The task is released right after. */
  void (*raised)(lua_State *L, lh_task_t *t);
  /* the task is over (returned, raised or cancelled); its thread is let
   * go after this returns */
  void (*finished)(lh_task_t *t);
  /* around each resume from a loop callback: what resuming returns is
   * given to resumed afterwards, when the task may be over and its memory
   * gone */
  void *(*resuming)(lh_task_t *t);
  void (*resumed)(void *ctx);
} lh_task_ops_t;

/* A coroutine lhyper manages. The thread's extra space points here while
 * the task owns it. Zero-filled plus lh_task_bind is a valid start. */
struct lh_task {
  lua_State *co;           /* NULL once over */
  int ref;                 /* registry ref anchoring the thread; LUA_NOREF when over */
  int wait;                /* LH_WAIT_* while suspended */
  lh_timer_t *timer;       /* lhyper.sleep; NULL when none runs */
  const lh_task_ops_t *ops;/* NULL for a spawned task */
  lh_lstate_t *st;
  lh_defer_t tick;         /* resume on the next loop iteration */
  int nargs;               /* > 0 before the first resume: arguments on the stack */
  unsigned running : 1;    /* inside lua_resume */
  unsigned cancel : 1;     /* cancel once it yields */
};

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
};

/* --- state --- */
/* makes the state once per lua_State (in the registry); raises on failure */
void lh_state_open(lua_State *L);
lh_lstate_t *lh_state(lua_State *L);
/* number option t[k]; def when absent, 0 when false */
double lh_opt_number(lua_State *L, int t, const char *k, double def);

/* --- tasks --- */
static inline lh_task_t *lh_task_of(lua_State *co) {
  return *(lh_task_t **)lua_getextraspace(co);
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
 * another task (lsvc.c, pipelined requests) */
static inline void lh_task_unbind(lh_task_t *t) {
  t->co = NULL;
  t->ref = LUA_NOREF;
  t->running = 0;
}
/* resumes a suspended task from a loop callback, under protection */
void lh_task_resume(lh_task_t *t);
/* after a task's first resume, made by its owner outside protection:
 * carries on as lh_task_resume would, protecting only what may raise */
void lh_task_resumed(lua_State *L, lh_task_t *t, int s, int nres);
/* closes a suspended task's coroutine (runs its <close> variables) */
void lh_task_cancel(lh_task_t *t);
/* yields the running task until woken with `wait` */
int lh_task_yield(lua_State *L, int wait, lua_KFunction k);
/* the continuation of a C function whose yield leaves nothing to do after */
int lh_k_none(lua_State *L, int status, lua_KContext ctx);

/* threads: one in the pool, made under protection if needed (0 or
 * LH_ENOMEM); one taken from the pool or made (*ref anchors it); one taken
 * that no task took over */
int lh_co_reserve(lh_lstate_t *st);
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

/* registers the metatables (once per state) and adds sleep, spawn, now,
 * run, stop, error, on_signal and in_task to the module table at mod */
void lh_task_open(lua_State *L, int mod);

#endif
