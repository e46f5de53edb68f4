/* The binding's state and task runtime: coroutines lhyper resumes from
 * loop callbacks, their thread pool, what each task owns (structured
 * concurrency), wait queues, lhyper.sleep/now/run/stop and signals, and
 * error objects (lhyper.error). A task's owner (a request, a spawned task)
 * is reached only through its lh_task_ops_t. */
#include "ltask.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lalloc.h"
#include "lspawn.h"
#include "tuning.h"

#define STATE_KEY "lhyper.state"
#define ERROR_MT "lhyper.error"
#define SIGNAL_MT "lhyper.signal"

#if LUA_VERSION_RELEASE_NUM >= 50406
#define close_thread(co, from) lua_closethread(co, from)
#else
#define close_thread(co, from) lua_resetthread(co)
#endif

/* --- state --- */

lh_lstate_t *lh_state(lua_State *L) {
  lua_getfield(L, LUA_REGISTRYINDEX, STATE_KEY);
  lh_lstate_t *st = lua_touserdata(L, -1);
  lua_pop(L, 1);
  return st;
}

static int state_gc(lua_State *L) {
  lh_lstate_t *st = lua_touserdata(L, 1);
  if (st->loop) {
    /* lua_close: close every handle without calling back into Lua */
    lh_loop_free(st->loop);
    st->loop = NULL;
  }
  lh_alloc_detach(L, st->alloc);
  st->alloc = NULL;
  while (st->ctasks) lh_ctask_free(st, st->ctasks); /* st->loop is NULL: freed */
  while (st->ctask_free) {
    lh_ctask_t *c = st->ctask_free;
    st->ctask_free = c->next;
    free(c);
  }
  st->nctask_free = 0;
  return 0;
}

void lh_state_open(lua_State *L) {
  lua_getfield(L, LUA_REGISTRYINDEX, STATE_KEY);
  int fresh = lua_isnil(L, -1);
  lua_pop(L, 1);
  if (!fresh) return;
  lh_lstate_t *st = lua_newuserdatauv(L, sizeof *st, 0);
  memset(st, 0, sizeof *st);
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, state_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  st->loop = lh_loop_new();
  if (!st->loop) luaL_error(L, "lhyper: cannot create the event loop");
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
  st->L = lua_tothread(L, -1);
  lua_pop(L, 1);
  *(lh_task_t **)lua_getextraspace(st->L) = NULL;
  st->alloc = lh_tuning.alloc_cache ? lh_alloc_attach(L) : NULL;
  lua_setfield(L, LUA_REGISTRYINDEX, STATE_KEY);
}

/* --- options --- */

double lh_opt_number(lua_State *L, int t, const char *k, double def) {
  int ty = lua_getfield(L, t, k);
  double v = def;
  if (ty == LUA_TNUMBER) v = lua_tonumber(L, -1);
  else if (ty == LUA_TBOOLEAN && !lua_toboolean(L, -1)) v = 0; /* false: off */
  lua_pop(L, 1);
  return v;
}

uint64_t lh_opt_uint(lua_State *L, int t, const char *k, double def, uint64_t max) {
  double v = lh_opt_number(L, t, k, def);
  if (!(v > 0)) return 0;
  if (v >= (double)max) return max; /* (double)max may round up: compared, not cast back */
  return (uint64_t)v;
}

/* --- errors --- */

void lh_push_error(lua_State *L, int code, const char *msg) {
  const char *kind = lh_err_kind(code);
  const char *what = lh_err_what(code);
  lua_createtable(L, 0, 5);
  lua_pushstring(L, kind ? kind : "io");
  lua_setfield(L, -2, "kind");
  if (what && *what) {
    lua_pushstring(L, what);
    lua_setfield(L, -2, "what");
  }
  lua_pushstring(L, msg ? msg : lh_strerror(code));
  lua_setfield(L, -2, "message");
  lua_pushinteger(L, code);
  lua_setfield(L, -2, "code");
  if (!kind) {
    lua_pushstring(L, lh_errname(code)); /* "ECONNRESET" ... */
    lua_setfield(L, -2, "name");
  }
  luaL_setmetatable(L, ERROR_MT);
}

int lh_push_fail(lua_State *L, int code, const char *msg) {
  lua_pushnil(L);
  lh_push_error(L, code, msg);
  lua_getfield(L, -1, "kind");
  return 3;
}

int lh_raise(lua_State *L, int code, const char *msg) {
  lh_push_error(L, code, msg);
  return lua_error(L);
}

const char *lh_error_text(lua_State *L, int i) {
  const char *msg = lua_tostring(L, i);
  if (!msg) {
    if (luaL_callmeta(L, i, "__tostring") && lua_isstring(L, -1)) msg = lua_tostring(L, -1);
    else msg = "(error object)";
  }
  return msg;
}

static int err_tostring(lua_State *L) {
  lua_getfield(L, 1, "message");
  if (!lua_isstring(L, -1)) lua_pushliteral(L, "lhyper error");
  return 1;
}

static int err_is(lua_State *L, const char *kind) {
  lua_getfield(L, 1, "kind");
  lua_pushboolean(L, lua_isstring(L, -1) && strcmp(lua_tostring(L, -1), kind) == 0);
  return 1;
}
static int err_is_parse(lua_State *L) { return err_is(L, "parse"); }
static int err_is_incomplete(lua_State *L) { return err_is(L, "incomplete"); }
static int err_is_timeout(lua_State *L) {
  lua_getfield(L, 1, "kind");
  const char *k = lua_tostring(L, -1);
  lua_pushboolean(L, k && (!strcmp(k, "timeout") || !strcmp(k, "header_timeout")));
  return 1;
}
static int err_is_closed(lua_State *L) { return err_is(L, "closed"); }
static int err_is_canceled(lua_State *L) { return err_is(L, "canceled"); }
static int err_is_io(lua_State *L) { return err_is(L, "io"); }
static int err_is_user(lua_State *L) {
  lua_getfield(L, 1, "kind");
  const char *k = lua_tostring(L, -1);
  lua_pushboolean(L, k && !strncmp(k, "user_", 5));
  return 1;
}
static int err_is_unexpected(lua_State *L) { return err_is(L, "unexpected_message"); }
static int err_is_tls(lua_State *L) { return err_is(L, "tls"); }

/* lhyper.error(kind, message): an error object made by Lua code */
static int l_error(lua_State *L) {
  const char *kind = luaL_checkstring(L, 1);
  const char *msg = luaL_optstring(L, 2, kind);
  lua_createtable(L, 0, 3);
  lua_pushstring(L, kind);
  lua_setfield(L, -2, "kind");
  lua_pushstring(L, msg);
  lua_setfield(L, -2, "message");
  if (lua_isstring(L, 3)) {
    lua_pushvalue(L, 3);
    lua_setfield(L, -2, "what");
  }
  luaL_setmetatable(L, ERROR_MT);
  return 1;
}

/* --- tasks --- */

int lh_k_none(lua_State *L, int status, lua_KContext ctx) { return 0; }

lua_State *lh_co_take(lh_lstate_t *st, lua_State *L, int *ref) {
  lua_State *co;
  if (st->nfree_co) {
    st->nfree_co--;
    *ref = st->free_co[st->nfree_co].ref;
    return st->free_co[st->nfree_co].co;
  }
  co = lua_newthread(L);
  *ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return co;
}

/* a thread whose task is over: kept for the next one (as Lua 5.4.4's
 * lua_resetthread allows) or let go */
static void co_give(lh_lstate_t *st, lua_State *co, int ref) {
  lua_State *L = st->L;
  if (lua_status(co) != LUA_OK) close_thread(co, L);
  if (lua_status(co) == LUA_OK && st->nfree_co < (int)(sizeof st->free_co / sizeof st->free_co[0])) {
    lua_settop(co, 0);
    st->free_co[st->nfree_co].co = co;
    st->free_co[st->nfree_co++].ref = ref;
  } else {
    luaL_unref(L, LUA_REGISTRYINDEX, ref);
  }
}

/* --- ownership --- */

static void own_unlink(lh_own_t *o) {
  lh_task_t *t = o->owner;
  if (!t) return;
  if (o->prev) o->prev->next = o->next;
  else t->owned = o->next;
  if (o->next) o->next->prev = o->prev;
  o->prev = o->next = NULL;
  o->owner = NULL;
}

void lh_own_add(lh_task_t *owner, lh_own_t *o) {
  own_unlink(o);
  o->pass = 0;
  if (!owner) return;
  o->owner = owner;
  o->next = owner->owned;
  if (owner->owned) owner->owned->prev = o;
  owner->owned = o;
}

void lh_own_leave(lh_own_t *o) {
  own_unlink(o);
  o->pass = 0;
}

void lh_own_close_but(lh_task_t *t, lh_own_t *keep) {
  /* closing may run Lua that opens or closes more: start over each time */
  for (;;) {
    lh_own_t *o = t->owned;
    while (o && o == keep) o = o->next;
    if (!o) return;
    lh_own_leave(o);
    o->end = LH_END_RETURNED;
    o->close(o);
  }
}

void lh_own_mark_returned(lua_State *L, lh_task_t *t, int i, int j) {
  for (; i <= j; i++) {
    if (lua_type(L, i) != LUA_TUSERDATA) continue;
    void *ud = lua_touserdata(L, i);
    for (lh_own_t *o = t->owned; o; o = o->next)
      if (o->ud == ud) o->pass = 1;
  }
}

/* t is over (t->end says how): it leaves its parent, and what it owns goes
 * to that parent when t returned (what it returned, or all when it
 * adopts), else is closed, newest first. Closing may run Lua (a child's
 * <close> variables), which may close more of t's things: the list is
 * read again each time. */
static void own_end(lh_task_t *t) {
  lh_task_t *parent = t->node.owner;
  int returned = t->end == LH_END_RETURNED && parent && !parent->ending;
  own_unlink(&t->node);
  lh_own_t *o;
  while ((o = t->owned)) {
    if (returned && (t->adopt || o->pass)) {
      lh_own_add(parent, o);
    } else {
      lh_own_leave(o);
      o->end = t->end;
      o->close(o);
    }
  }
}

/* --- wait queues --- */

static void queue_unlink(lh_task_t *t, int pass) {
  lh_waitq_t *q = t->wq;
  if (!q) return;
  if (t->wq_prev) t->wq_prev->wq_next = t->wq_next;
  else q->head = t->wq_next;
  if (t->wq_next) t->wq_next->wq_prev = t->wq_prev;
  else q->tail = t->wq_prev;
  q->n--;
  int was = t->signalled;
  if (was) q->nsig--;
  t->wq = NULL;
  t->wq_prev = t->wq_next = NULL;
  t->signalled = 0;
  if (was && pass && q->pass) q->pass(q);
}

int lh_waitq_wait(lua_State *L, lh_waitq_t *q, double timeout, lua_KFunction k) {
  return lh_waitq_waitk(L, q, timeout, k, 0);
}

int lh_waitq_waitk(lua_State *L, lh_waitq_t *q, double timeout, lua_KFunction k, lua_KContext ctx) {
  lh_task_t *t = lh_task_current(L);
  if (!t) return luaL_error(L, "not inside an lhyper handler or task");
  if (timeout >= 0) lh_task_arm(L, t, timeout, 0);
  else t->expired = 0;
  t->wq = q;
  t->signalled = 0;
  t->wq_next = NULL;
  t->wq_prev = q->tail;
  if (q->tail) q->tail->wq_next = t;
  else q->head = t;
  q->tail = t;
  q->n++;
  t->wait = LH_WAIT_QUEUE;
  return lua_yieldk(L, 0, ctx, k);
}

int lh_waitq_again(lua_State *L, lua_KFunction k) {
  lh_task_t *t = lh_task_current(L);
  if (t->signalled) {
    t->signalled = 0;
    t->wq->nsig--;
  }
  return lh_task_yield(L, LH_WAIT_QUEUE, k);
}

void lh_waitq_leave(lh_task_t *t) {
  queue_unlink(t, 0);
  lh_task_disarm(t);
}

int lh_waitq_signal(lh_waitq_t *q) {
  for (lh_task_t *t = q->head; t; t = t->wq_next) {
    if (t->signalled) continue;
    t->signalled = 1;
    q->nsig++;
    lh_task_wake(t);
    return 1;
  }
  return 0;
}

int lh_waitq_broadcast(lh_waitq_t *q) {
  int n = 0;
  while (lh_waitq_signal(q)) n++;
  return n;
}

void lh_waitq_drop(lh_waitq_t *q) {
  while (q->head) {
    lh_task_t *t = q->head;
    queue_unlink(t, 0);
    lh_task_wake(t);
  }
}

/* --- the life of a task --- */

/* the task is over: its timer, tick and wait go, what it owns is closed or
 * handed on, its owner hears it, then its thread goes back */
static void task_release(lh_task_t *t) {
  t->ending = 1;
  lh_task_disarm(t);
  if (t->tick.queued) lh_loop_undefer(t->st->loop, &t->tick);
  if (t->wq) queue_unlink(t, 1);
  lh_task_unslot(t);
  if (t->owned || t->node.owner) own_end(t);
  lh_lstate_t *st = t->st;
  lua_State *co = t->co;
  int ref = t->ref;
  if (ref != LUA_NOREF) *(lh_task_t **)lua_getextraspace(co) = NULL;
  t->ref = LUA_NOREF;
  t->co = NULL;
  t->running = 0;
  /* a spawned task may be collected once its owner lets go: done with it first */
  t->ops->finished(t);
  if (ref != LUA_NOREF) co_give(st, co, ref);
}

void lh_task_cancel(lh_task_t *t) {
  if (!t->co || t->ref == LUA_NOREF || t->ending) return;
  if (t->running) {
    t->cancel = 1;
    return;
  }
  t->ending = 1;
  t->end = LH_END_CANCELED;
  /* what it opened goes first, inner scopes before outer ones */
  own_end(t);
  /* coroutine.close: pending <close> variables run now */
  int st = close_thread(t->co, t->st->L);
  if (st != LUA_OK && st != LUA_YIELD)
    fprintf(stderr, "lhyper: error while cancelling a task: %s\n",
            lua_type(t->co, -1) == LUA_TSTRING ? lua_tostring(t->co, -1) : "(error object)");
  task_release(t);
}

/* what follows a resume that gave s: a yield or the end (a request's
 * thread answered from its own body, lsvc.c req_main) */
static void after_resume(lua_State *L, lh_task_t *t, int s, int nres) {
  if (s != LUA_YIELD) {
    t->end = s == LUA_OK ? LH_END_RETURNED : LH_END_FAILED;
    if (s != LUA_OK) t->ops->raised(L, t);
    task_release(t);
    return;
  }
  lua_pop(t->co, nres);
  if (t->cancel) {
    t->cancel = 0;
    lh_task_cancel(t);
  } else if (t->wait == LH_WAIT_NONE) {
    /* a bare coroutine.yield(): run again on the next iteration */
    t->wait = LH_WAIT_TICK;
    lh_loop_defer(t->st->loop, &t->tick);
  }
}

/* f(ud) under protection on L, whose stack is left as it was found; a
 * failure is reported on stderr when report is set. The call's status */
static int call_p(lua_State *L, lua_CFunction f, void *ud, int report) {
  int top = lua_gettop(L);
  lua_pushcfunction(L, f);
  lua_pushlightuserdata(L, ud);
  int s = lua_pcall(L, 1, 0, 0);
  if (s != LUA_OK && report)
    fprintf(stderr, "lhyper: %s\n", lua_isstring(L, -1) ? lua_tostring(L, -1) : "error");
  lua_settop(L, top);
  return s;
}

typedef struct {
  lh_task_t *t;
  int s, nres;
} after_ctx;

static int after_p(lua_State *L) {
  after_ctx *a = lua_touserdata(L, 1);
  after_resume(L, a->t, a->s, a->nres);
  return 0;
}

void lh_task_resumed(lua_State *L, lh_task_t *t, int s, int nres) {
  t->running = 0;
  if ((s == LUA_OK && !t->owned) || (s == LUA_YIELD && !t->cancel)) {
    /* nothing here raises or runs Lua: no protected call needed */
    after_resume(L, t, s, nres);
    return;
  }
  after_ctx a = {t, s, nres};
  call_p(L, after_p, &a, 1);
}

/* runs a suspended task now, from L. lua_resume protects itself, so no
 * protected call wraps it: lh_task_resumed protects what may raise after */
static void resume_now(lua_State *L, lh_task_t *t) {
  int nres, nargs = t->nargs;
  t->wait = LH_WAIT_NONE;
  t->nargs = 0;
  t->running = 1;
  int s = lua_resume(t->co, L, nargs, &nres);
  lh_task_resumed(L, t, s, nres);
}

static int co_make_p(lua_State *L) {
  lh_lstate_t *st = lua_touserdata(L, 1);
  int ref;
  lua_State *co = lh_co_take(st, L, &ref);
  st->free_co[st->nfree_co].co = co;
  st->free_co[st->nfree_co++].ref = ref;
  return 0;
}

int lh_co_reserve(lh_lstate_t *st) {
  if (st->nfree_co) return 0;
  return call_p(st->L, co_make_p, st, 0) == LUA_OK ? 0 : LH_ENOMEM;
}

void lh_co_drop(lh_lstate_t *st, lua_State *co, int ref) { co_give(st, co, ref); }

/* a few freed C tasks are kept: a detached WebSocket makes one per burst
 * of messages */
#define CTASK_KEEP 8

lh_ctask_t *lh_ctask_new(lh_lstate_t *st) {
  lh_ctask_t *c = st->ctask_free;
  if (c) {
    st->ctask_free = c->next;
    st->nctask_free--;
    memset(c, 0, sizeof *c);
  } else if (!(c = calloc(1, sizeof *c))) {
    return NULL;
  }
  c->next = st->ctasks;
  if (c->next) c->next->prev = c;
  st->ctasks = c;
  return c;
}

void lh_ctask_free(lh_lstate_t *st, lh_ctask_t *c) {
  if (c->prev) c->prev->next = c->next;
  else st->ctasks = c->next;
  if (c->next) c->next->prev = c->prev;
  if (st->nctask_free < CTASK_KEEP && st->loop) {
    c->next = st->ctask_free;
    st->ctask_free = c;
    st->nctask_free++;
  } else {
    free(c);
  }
}

void lh_task_resume(lh_task_t *t) {
  if (!t->co || t->running || t->ending) return;
  if (lua_status(t->co) != LUA_YIELD && !t->nargs) return;
  /* the task may be over and gone after the resume: its owner is told
   * with what it gave before */
  const lh_task_ops_t *ops = t->ops;
  void *ctx = ops->resuming ? ops->resuming(t) : NULL;
  resume_now(t->st->L, t);
  if (ops->resumed) ops->resumed(ctx);
}

void lh_task_start(lua_State *L, lh_task_t *t) {
  if (!t->co || t->running || t->ending || !t->nargs) return;
  lh_loop_undefer(t->st->loop, &t->tick);
  resume_now(L, t);
}

void lh_task_tick_cb(lh_defer_t *d) {
  lh_task_t *t = (lh_task_t *)((char *)d - offsetof(lh_task_t, tick));
  if (t->wait == LH_WAIT_TICK) lh_task_resume(t);
}

void lh_task_wake(lh_task_t *t) {
  if (!t->co || t->ending || t->wait == LH_WAIT_TICK || t->wait == LH_WAIT_NONE) return;
  t->wait = LH_WAIT_TICK;
  lh_loop_defer(t->st->loop, &t->tick);
}

int lh_task_yield(lua_State *L, int wait, lua_KFunction k) {
  lh_task_t *t = lh_task_current(L);
  if (!t) return luaL_error(L, "not inside an lhyper handler or task");
  t->wait = wait;
  return lua_yieldk(L, 0, 0, k);
}

static void task_timer_cb(void *data) {
  lh_task_t *t = data;
  t->timer = NULL;
  t->expired = 1;
  if (t->wait != LH_WAIT_NONE && t->wait != LH_WAIT_TICK) lh_task_resume(t);
}

void lh_task_arm(lua_State *L, lh_task_t *t, double sec, int weak) {
  lh_task_disarm(t);
  t->expired = 0;
  t->timer = lh_timer_start(t->st->loop, sec > 0 ? sec : 0, task_timer_cb, t);
  if (!t->timer) luaL_error(L, "lhyper: out of memory");
  if (weak) lh_timer_weak(t->timer);
}

void lh_task_disarm(lh_task_t *t) {
  if (t->timer) {
    lh_timer_cancel(t->timer);
    t->timer = NULL;
  }
}

/* lhyper.sleep(seconds) */
static int l_sleep(lua_State *L) {
  lua_Number s = luaL_checknumber(L, 1);
  lh_task_t *t = lh_task_current(L);
  if (!t) return luaL_error(L, "lhyper.sleep: not inside an lhyper handler or task");
  lh_task_arm(L, t, s, 0);
  return lh_task_yield(L, LH_WAIT_SLEEP, lh_k_none);
}

/* sleep_idle(seconds): a sleep that does not keep lhyper.run() going
 * (lhyper.every waits with it) */
static int l_sleep_idle(lua_State *L) {
  lua_Number s = luaL_checknumber(L, 1);
  lh_task_t *t = lh_task_current(L);
  if (!t) return luaL_error(L, "lhyper.sleep: not inside an lhyper handler or task");
  lh_task_arm(L, t, s, 1);
  return lh_task_yield(L, LH_WAIT_SLEEP, lh_k_none);
}

/* --- lhyper.defer(fn): fn runs when the running task ends --- */

typedef struct {
  lh_own_t own;            /* in the task's list */
  lh_lstate_t *st;
  int self_ref;            /* anchors the userdata (and fn, its user value) until it runs */
} lh_defer_fn_t;

static void defer_close(lh_own_t *o) {
  lh_defer_fn_t *f = (lh_defer_fn_t *)o;
  lua_State *L = f->st->L;
  int ref = f->self_ref;
  f->self_ref = LUA_NOREF;
  int top = lua_gettop(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, ref);
  luaL_unref(L, LUA_REGISTRYINDEX, ref);
  lua_getiuservalue(L, -1, 1);
  /* under protection: the task's end may come from a loop callback */
  if (lua_pcall(L, 0, 0, 0) != LUA_OK)
    fprintf(stderr, "lhyper: deferred function failed: %s\n",
            lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "(error object)");
  lua_settop(L, top);
}

/* lhyper.defer(fn): fn() runs when the running task ends, however it ends
 * (returns, fails, is cancelled); for a handler, when its request ends,
 * after its response body. Deferred functions run newest first */
static int l_defer(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  lh_task_t *t = lh_task_current(L);
  if (!t) return luaL_error(L, "lhyper.defer: not inside an lhyper handler or task");
  lh_defer_fn_t *f = lua_newuserdatauv(L, sizeof *f, 1);
  memset(f, 0, sizeof *f);
  f->self_ref = LUA_NOREF;
  f->st = t->st;
  f->own.close = defer_close;
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, -2, 1);
  f->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lh_own_add(t, &f->own);
  return 0;
}

/* --- error text --- */

const char *lh_push_traceback(lua_State *L, lua_State *co, int i) {
  /* the text is made on L, under protection: co may be dead */
  luaL_checkstack(L, 4, NULL);
  lua_pushvalue(co, i);
  lua_xmove(co, L, 1);
  const char *msg = luaL_tolstring(L, -1, NULL); /* __tostring, or "table: 0x..." */
  if (!strstr(msg, "\nstack traceback:")) {
    luaL_traceback(L, co, msg, 0);
    lua_replace(L, -2);
  }
  lua_replace(L, -2);
  return lua_tostring(L, -1);
}

int lh_is_error(lua_State *L, int i) {
  if (!lua_getmetatable(L, i)) return 0;
  luaL_getmetatable(L, ERROR_MT);
  int is = lua_rawequal(L, -1, -2);
  lua_pop(L, 2);
  return is;
}

/* --- signals: lhyper.on_signal(name, fn) -> watcher; fn runs as a task --- */

typedef struct {
  lh_signal_t *h;
  lh_lstate_t *st;
  int fn_ref;
  int self_ref;
} lh_lsignal_t;

static void signal_fire(void *data, int signum) {
  lh_lsignal_t *s = data;
  lua_State *L = s->st->L;
  int top = lua_gettop(L);
  lua_pushcfunction(L, lh_spawn_root);
  lua_rawgeti(L, LUA_REGISTRYINDEX, s->fn_ref);
  lua_pushinteger(L, signum);
  if (lua_pcall(L, 2, 0, 0) != LUA_OK)
    fprintf(stderr, "lhyper: signal handler: %s\n", lua_isstring(L, -1) ? lua_tostring(L, -1) : "error");
  lua_settop(L, top);
}

static int signal_stop(lua_State *L) {
  lh_lsignal_t *s = luaL_checkudata(L, 1, SIGNAL_MT);
  if (s->h) {
    if (!s->st->loop || !lh_loop_is_closing(s->st->loop)) lh_signal_stop(s->h);
    s->h = NULL;
    luaL_unref(L, LUA_REGISTRYINDEX, s->fn_ref);
    luaL_unref(L, LUA_REGISTRYINDEX, s->self_ref);
    s->fn_ref = s->self_ref = LUA_NOREF;
  }
  return 0;
}

static const luaL_Reg signal_methods[] = {{"stop", signal_stop}, {NULL, NULL}};

static int l_on_signal(lua_State *L) {
  static const char *const names[] = {"SIGINT", "SIGTERM", "SIGHUP", "SIGUSR1", "SIGUSR2", NULL};
  static const int nums[] = {SIGINT, SIGTERM, SIGHUP, SIGUSR1, SIGUSR2};
  int which = luaL_checkoption(L, 1, NULL, names);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  lh_lstate_t *st = lh_state(L);
  lh_lsignal_t *s = lua_newuserdatauv(L, sizeof *s, 0);
  s->h = NULL;
  s->st = st;
  s->fn_ref = s->self_ref = LUA_NOREF;
  luaL_setmetatable(L, SIGNAL_MT);
  lua_pushvalue(L, 2);
  s->fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  s->h = lh_signal_start(st->loop, nums[which], signal_fire, s);
  if (!s->h) return luaL_error(L, "lhyper.on_signal: cannot watch %s", names[which]);
  lua_pushvalue(L, -1);
  s->self_ref = luaL_ref(L, LUA_REGISTRYINDEX); /* watched until :stop() */
  return 1;
}

static int l_now(lua_State *L) {
  lh_lstate_t *st = lh_state(L);
  lua_pushnumber(L, lh_loop_now(st->loop));
  return 1;
}

static int l_run(lua_State *L) {
  lh_lstate_t *st = lh_state(L);
  if (st->running) return luaL_error(L, "lhyper.run: the loop is already running");
  if (lua_pushthread(L) != 1) return luaL_error(L, "lhyper.run: call it from the main thread");
  lua_pop(L, 1);
  st->running = 1;
  int stopped = lh_loop_run(st->loop);
  st->running = 0;
  lua_pushboolean(L, !stopped);
  return 1;
}

static int l_stop(lua_State *L) {
  lh_loop_stop(lh_state(L)->loop);
  return 0;
}

static int l_in_task(lua_State *L) {
  lua_pushboolean(L, lh_task_current(L) != NULL);
  return 1;
}

static const luaL_Reg err_methods[] = {
  {"is_parse", err_is_parse},         {"is_incomplete", err_is_incomplete},
  {"is_timeout", err_is_timeout},     {"is_closed", err_is_closed},
  {"is_canceled", err_is_canceled},   {"is_io", err_is_io},
  {"is_user", err_is_user},           {"is_unexpected_message", err_is_unexpected},
  {"is_tls", err_is_tls},
  {NULL, NULL}};

static const luaL_Reg funcs[] = {
  {"sleep", l_sleep},       {"sleep_idle", l_sleep_idle}, {"now", l_now},
  {"run", l_run},           {"stop", l_stop},             {"error", l_error},
  {"in_task", l_in_task},   {"on_signal", l_on_signal},   {"defer", l_defer},
  {NULL, NULL}};

void lh_task_open(lua_State *L, int mod) {
  if (luaL_newmetatable(L, ERROR_MT)) {
    lua_pushcfunction(L, err_tostring);
    lua_setfield(L, -2, "__tostring");
    luaL_newlib(L, err_methods);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, "__methods");
    lua_setfield(L, -2, "__index");
  }
  lua_pop(L, 1);
  if (luaL_newmetatable(L, SIGNAL_MT)) {
    luaL_newlib(L, signal_methods);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, "__methods");
    lua_setfield(L, -2, "__index");
  }
  lua_pop(L, 1);
  lua_pushvalue(L, mod);
  luaL_setfuncs(L, funcs, 0);
  lua_pop(L, 1);
}
