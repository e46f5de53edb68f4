/* The binding's state and task runtime: coroutines lhyper resumes from
 * loop callbacks, their thread pool, lhyper.sleep/spawn/now/run/stop and
 * signals, and error objects (lhyper.error). A task's owner (a request)
 * is reached only through its lh_task_ops_t. */
#include "ltask.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lalloc.h"
#include "tuning.h"

#define STATE_KEY "lhyper.state"
#define ERROR_MT "lhyper.error"
#define TASK_MT "lhyper.task"
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

/* the task is over: its owner hears it, then its thread goes back */
static void task_release(lh_task_t *t) {
  if (t->timer) {
    lh_timer_cancel(t->timer);
    t->timer = NULL;
  }
  lh_loop_undefer(t->st->loop, &t->tick);
  lh_lstate_t *st = t->st;
  lua_State *co = t->co;
  int ref = t->ref;
  if (ref != LUA_NOREF) *(lh_task_t **)lua_getextraspace(co) = NULL;
  t->ref = LUA_NOREF;
  t->co = NULL;
  /* a spawned task lives on its thread's stack: finish with it first */
  if (t->ops) t->ops->finished(t);
  else st->ntasks--;
  if (ref != LUA_NOREF) co_give(st, co, ref);
}

void lh_task_cancel(lh_task_t *t) {
  if (!t->co || t->ref == LUA_NOREF) return;
  if (t->running) {
    t->cancel = 1;
    return;
  }
  /* coroutine.close: pending <close> variables run now */
  int st = close_thread(t->co, t->st->L);
  if (st != LUA_OK && st != LUA_YIELD) {
    fprintf(stderr, "lhyper: error while cancelling a handler: %s\n",
            lua_isstring(t->co, -1) ? lua_tostring(t->co, -1) : "(error object)");
  }
  task_release(t);
}

/* what follows a resume that gave s: a yield or the end (a request's
 * thread answered from its own body, lsvc.c req_main) */
static void after_resume(lua_State *L, lh_task_t *t, int s, int nres) {
  if (s != LUA_YIELD) {
    if (s != LUA_OK && t->ops) t->ops->raised(L, t);
    else if (s != LUA_OK) fprintf(stderr, "lhyper: task failed: %s\n", lh_error_text(t->co, -1));
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

/* protected part of a resume (lh_task_resume): everything that may raise
 * runs in here */
static int resume_p(lua_State *L) {
  lh_task_t *t = lua_touserdata(L, 1);
  int nres, nargs = t->nargs;
  t->wait = LH_WAIT_NONE;
  t->nargs = 0;
  t->running = 1;
  int s = lua_resume(t->co, L, nargs, &nres);
  t->running = 0;
  after_resume(L, t, s, nres);
  return 0;
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
  if (s == LUA_OK || (s == LUA_YIELD && !t->cancel)) {
    /* nothing here raises: no protected call needed */
    after_resume(L, t, s, nres);
    return;
  }
  after_ctx a = {t, s, nres};
  call_p(L, after_p, &a, 1);
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

void lh_task_resume(lh_task_t *t) {
  if (!t->co || t->running) return;
  if (lua_status(t->co) != LUA_YIELD && !t->nargs) return;
  /* the task may be over and gone after the resume: its owner is told
   * with what it gave before */
  const lh_task_ops_t *ops = t->ops;
  void *ctx = ops ? ops->resuming(t) : NULL;
  call_p(t->st->L, resume_p, t, 1);
  if (ops) ops->resumed(ctx);
}

void lh_task_tick_cb(lh_defer_t *d) {
  lh_task_t *t = (lh_task_t *)((char *)d - offsetof(lh_task_t, tick));
  if (t->wait == LH_WAIT_TICK) lh_task_resume(t);
}

int lh_task_yield(lua_State *L, int wait, lua_KFunction k) {
  lh_task_t *t = lh_task_of(L);
  if (!t || !t->running) return luaL_error(L, "not inside an lhyper handler or task");
  t->wait = wait;
  return lua_yieldk(L, 0, 0, k);
}

static void sleep_cb(void *data) {
  lh_task_t *t = data;
  t->timer = NULL;
  if (t->wait == LH_WAIT_SLEEP) lh_task_resume(t);
}

/* lhyper.sleep(seconds) */
static int l_sleep(lua_State *L) {
  lua_Number s = luaL_checknumber(L, 1);
  lh_task_t *t = lh_task_of(L);
  if (!t || !t->running) return luaL_error(L, "lhyper.sleep: not inside an lhyper handler or task");
  t->timer = lh_timer_start(t->st->loop, s > 0 ? s : 0, sleep_cb, t);
  if (!t->timer) return luaL_error(L, "lhyper.sleep: out of memory");
  return lh_task_yield(L, LH_WAIT_SLEEP, lh_k_none);
}

/* lhyper.spawn(fn, ...): runs fn(...) in a new task from the next iteration */
static int task_main(lua_State *L) {
  lua_callk(L, lua_gettop(L) - 1, 0, 0, lh_k_none); /* the task may yield */
  return 0;
}

static int l_spawn(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  lh_lstate_t *st = lh_state(L);
  int n = lua_gettop(L);
  int ref;
  lua_State *co = lh_co_take(st, L, &ref);
  /* the task lives at the bottom of its own thread's stack */
  lh_task_t *t = lua_newuserdatauv(co, sizeof *t, 0);
  memset(t, 0, sizeof *t);
  luaL_setmetatable(co, TASK_MT);
  lua_pushcfunction(co, task_main);
  for (int i = 1; i <= n; i++) lua_pushvalue(L, i);
  lua_xmove(L, co, n);
  t->st = st;
  t->co = co;
  t->nargs = n;
  t->tick.cb = lh_task_tick_cb;
  t->ref = ref;
  *(lh_task_t **)lua_getextraspace(co) = t;
  st->ntasks++;
  t->wait = LH_WAIT_TICK;
  lh_loop_defer(st->loop, &t->tick);
  return 0;
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
  lua_pushcfunction(L, l_spawn);
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
  lh_task_t *t = lh_task_of(L);
  lua_pushboolean(L, t && t->running);
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
  {"sleep", l_sleep}, {"spawn", l_spawn}, {"now", l_now},        {"run", l_run},
  {"stop", l_stop},   {"error", l_error}, {"in_task", l_in_task}, {"on_signal", l_on_signal},
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
  luaL_newmetatable(L, TASK_MT);
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
