/* lhyper.task: what lhyper.spawn returns (cancel, join, done, status,
 * detach) and lhyper.timeout, which runs a function as a child task under
 * a deadline. A task is a child of the task that spawned it: cancelled
 * when that one ends, unless detached. Its userdata is anchored (self_ref)
 * while it runs, and keeps its results, or the value it raised, in its
 * user value. */
#include "lspawn.h"

#include <stdio.h>
#include <string.h>

#include "tuning.h"

#define TASK_MT "lhyper.task"
#define WITHIN_SLOTS 3 /* results a within's child keeps without a table */

typedef struct {
  lh_task_t task;          /* first: the runtime's task is the object */
  lh_waitq_t joiners;      /* tasks in join (and lhyper.timeout's caller) */
  int self_ref;            /* anchors the userdata until the task is over; LUA_NOREF
                            * for lh_spawn_within's, which its waiting parent anchors */
  unsigned quiet : 1;      /* lhyper.timeout's: its caller raises its error */
  int nres;                /* how many results it returned (in user value 1 when > 0) */
  uint8_t slots;           /* user values past the first: up to this many results are
                            * kept in them (2, 3, ...) in place of a table; a
                            * within's child has WITHIN_SLOTS, others none */
  uint8_t in_slots;        /* set when it returned: the results are in the slots */
  unsigned direct : 1;     /* an lh_spawn_within child in its first resume, which its
                            * parent makes itself: returning leaves the results on the
                            * child's stack for the parent to move (cleared at its
                            * first yield) */
  /* lh_spawn_within's: what the time running out means to its caller, set
   * when the task is made; NULL for other tasks */
  lh_within_expired_fn expired;
  void *expired_ud;
} lh_spawn_t;

static lh_spawn_t *check_task(lua_State *L, int i) { return luaL_checkudata(L, i, TASK_MT); }

/* the metatable is also kept under this key's address: a cheaper lookup
 * than by name for every task made */
static const char task_mt_key = 0;

/* --- the task's life, as the runtime sees it --- */

/* the task at the top of its parents, if it is not t itself */
static lh_task_t *root_of(lh_task_t *t) {
  lh_task_t *r = t->node.owner;
  while (r && r->node.owner) r = r->node.owner;
  return r;
}

/* pushes the task's userdata: by its anchor, or for one without (an
 * lh_spawn_within child) from the outermost frame of its thread, task_main,
 * whose first value it is (nil if not found) */
static void push_self(lua_State *L, lh_spawn_t *s, lua_State *co) {
  if (s->self_ref != LUA_NOREF) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, s->self_ref);
    return;
  }
  lua_Debug ar;
  int level = 0;
  while (lua_getstack(co, level + 1, &ar)) level++;
  if (lua_checkstack(co, 2) && lua_getstack(co, level, &ar) && lua_getlocal(co, &ar, 1)) {
    lua_xmove(co, L, 1);
    if (lua_touserdata(L, -1) == s) return;
    lua_pop(L, 1);
  }
  lua_pushnil(L);
}

/* the error value is on top of t->co: kept in the task (with the task's
 * traceback in a string for lhyper.timeout, whose caller raises it again)
 * and reported unless someone waits for it */
static void spawn_raised(lua_State *L, lh_task_t *t) {
  lh_spawn_t *s = (lh_spawn_t *)t;
  lua_State *co = t->co;
  int top = lua_gettop(L);
  luaL_checkstack(L, 6, NULL);
  push_self(L, s, co);
  const char *text = lh_push_traceback(L, co, -1);
  if (s->quiet && lua_type(co, -1) == LUA_TSTRING) {
    lua_pushvalue(L, top + 2);
  } else {
    lua_pushvalue(co, -1);
    lua_xmove(co, L, 1);
  }
  if (lua_type(L, top + 1) == LUA_TUSERDATA) lua_setiuservalue(L, top + 1, 1);
  else lua_pop(L, 1);
  if (!s->quiet && s->joiners.n == 0) {
    lua_pushvalue(co, -1);
    lua_xmove(co, L, 1);
    lh_task_t *root = root_of(t);
    if (root && root->ops->descendant_failed) root->ops->descendant_failed(L, root, top + 3, text);
    else fprintf(stderr, "lhyper: task failed: %s\n", text);
  }
  lua_settop(L, top);
}

static void spawn_finished(lh_task_t *t) {
  lh_spawn_t *s = (lh_spawn_t *)t;
  lh_lstate_t *st = t->st;
  int ref = s->self_ref;
  st->ntasks--;
  lh_waitq_broadcast(&s->joiners);
  s->self_ref = LUA_NOREF;
  luaL_unref(st->L, LUA_REGISTRYINDEX, ref); /* s may be collected from here on */
}

static const lh_task_ops_t spawn_ops = {
  .raised = spawn_raised,
  .finished = spawn_finished,
};

/* a child's node in its parent's list: the parent ended */
static void child_close(lh_own_t *o) {
  lh_task_cancel((lh_task_t *)((char *)o - offsetof(lh_task_t, node)));
}

/* task_main(task, fn, ...): the body of every spawned task. The results
 * are kept in the task: returned responses and streams pass to the
 * parent */
static int task_main_k(lua_State *L, int status, lua_KContext ctx) {
  lh_spawn_t *s = lua_touserdata(L, 1);
  int n = lua_gettop(L) - 1;
  if (!s->task.adopt) lh_own_mark_returned(L, &s->task, 2, n + 1); /* adopt: all passes */
  s->nres = n;
  if (s->direct) return n; /* lua_resume's results: lh_spawn_within moves them */
  if (n == 0) return 0;
  if (n <= s->slots) {
    /* the common few results of a within's service: no table */
    for (int k = n; k >= 1; k--) lua_setiuservalue(L, 1, 1 + k);
    s->in_slots = 1;
    return 0;
  }
  lua_createtable(L, n, 0);
  lua_insert(L, 2);
  for (int i = n; i >= 1; i--) lua_rawseti(L, 2, i);
  lua_setiuservalue(L, 1, 1);
  return 0;
}

static int task_main(lua_State *L) {
  lua_callk(L, lua_gettop(L) - 2, LUA_MULTRET, 0, task_main_k);
  return task_main_k(L, LUA_OK, 0);
}

/* pushes a new task running the function at L's index first with the
 * values up to index last as arguments, a child of parent (NULL: none);
 * deferred: it starts on the next loop iteration, else when its maker
 * starts it (lh_task_start) */
static lh_spawn_t *spawn_new(lua_State *L, int first, int last, lh_task_t *parent, int deferred,
                             int anchored) {
  lh_lstate_t *st = parent ? parent->st : lh_state(L);
  int n = last - first + 1;
  if (lh_co_reserve(st)) luaL_error(L, "lhyper.spawn: out of memory");
  luaL_checkstack(L, n + 2, NULL);
  /* a within's service most often returns status, headers and body */
  int slots = anchored ? WITHIN_SLOTS : 0;
  lh_spawn_t *s = lua_newuserdatauv(L, sizeof *s, 1 + slots);
  memset(s, 0, sizeof *s);
  s->slots = (uint8_t)slots;
  s->self_ref = LUA_NOREF;
  s->task.ref = LUA_NOREF;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &task_mt_key);
  lua_setmetatable(L, -2);
  int ud = lua_gettop(L);
  if (!anchored) {
    lua_pushvalue(L, ud);
    s->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  int ref;
  lua_State *co = lh_co_take(st, L, &ref); /* the reserved one: nothing allocated */
  if (!lua_checkstack(co, n + 2)) {
    lh_co_drop(st, co, ref);
    luaL_unref(L, LUA_REGISTRYINDEX, s->self_ref);
    s->self_ref = LUA_NOREF;
    luaL_error(L, "lhyper.spawn: out of memory");
  }
  lua_pushcfunction(co, task_main);
  lua_pushvalue(L, ud);
  for (int i = first; i <= last; i++) lua_pushvalue(L, i);
  lua_xmove(L, co, n + 1);
  lh_task_t *t = &s->task;
  t->st = st;
  t->co = co;
  t->ref = ref;
  t->ops = &spawn_ops;
  t->tick.cb = lh_task_tick_cb;
  t->nargs = n + 1;
  t->node.close = child_close;
  t->node.ud = s;
  *(lh_task_t **)lua_getextraspace(co) = t;
  st->ntasks++;
  lh_own_add(parent, &t->node);
  if (deferred) {
    t->wait = LH_WAIT_TICK;
    lh_loop_defer(st->loop, &t->tick);
  }
  return s;
}

/* lhyper.spawn(fn, ...) -> task: fn(...) in a new task from the next loop
 * iteration, a child of the running task (if any) */
static int l_spawn(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  spawn_new(L, 1, lua_gettop(L), lh_task_current(L), 1, 0);
  return 1;
}

int lh_spawn_root(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  spawn_new(L, 1, lua_gettop(L), NULL, 1, 0);
  return 1;
}

/* --- results --- */

/* the results kept in the task at index i; nothing returned gives true */
static int push_results(lua_State *L, int i) {
  lh_spawn_t *s = lua_touserdata(L, i);
  int n = s->nres;
  if (n == 0) {
    lua_pushboolean(L, 1);
    return 1;
  }
  luaL_checkstack(L, n + 1, "too many results");
  if (s->in_slots) {
    for (int k = 1; k <= n; k++) lua_getiuservalue(L, i, 1 + k);
    return n;
  }
  lua_getiuservalue(L, i, 1);
  int tbl = lua_gettop(L);
  for (int k = 1; k <= n; k++) lua_rawgeti(L, tbl, k);
  lua_remove(L, tbl);
  return n;
}

/* what join gives for a task that is over: its results, or nil, err, kind */
static int push_outcome(lua_State *L, lh_spawn_t *s, int i) {
  if (s->task.end == LH_END_RETURNED) return push_results(L, i);
  if (s->task.end == LH_END_CANCELED) return lh_push_fail(L, LH_ECANCELED, "task canceled");
  lua_pushnil(L);
  lua_getiuservalue(L, i, 1);
  if (lh_is_error(L, -1)) lua_getfield(L, -1, "kind");
  else lua_pushliteral(L, "user_service");
  return 3;
}

/* --- methods --- */

static int task_join(lua_State *L);
static int join_k(lua_State *L, int status, lua_KContext ctx) {
  lh_spawn_t *s = lua_touserdata(L, 1);
  lh_task_t *t = lh_task_current(L);
  if (s->task.end) {
    lh_waitq_leave(t);
    return push_outcome(L, s, 1);
  }
  if (t->expired) {
    lh_waitq_leave(t);
    return lh_push_fail(L, LH_ETIMEOUT, "task:join timed out");
  }
  return lh_waitq_again(L, join_k);
}

/* task:join([timeout]) -> results (true when none), or nil, err, kind */
static int task_join(lua_State *L) {
  lh_spawn_t *s = check_task(L, 1);
  double timeout = luaL_optnumber(L, 2, -1);
  lua_settop(L, 1);
  if (s->task.end) return push_outcome(L, s, 1);
  lh_task_t *t = lh_task_current(L);
  if (!t) return luaL_error(L, "task:join: not inside an lhyper handler or task");
  if (t == &s->task) return luaL_error(L, "task:join: a task cannot join itself");
  if (timeout == 0) return lh_push_fail(L, LH_ETIMEOUT, "task:join timed out");
  return lh_waitq_wait(L, &s->joiners, timeout, join_k);
}

/* task:cancel(): the task ends where it waits (its <close> variables run);
 * the running task itself ends at once. Also <close> */
static int task_cancel(lua_State *L) {
  lh_spawn_t *s = check_task(L, 1);
  lh_task_t *t = &s->task;
  if (t->end || t->ending) return 0;
  if (t == lh_task_current(L)) {
    t->cancel = 1;
    return lh_task_yield(L, LH_WAIT_NONE, lh_k_none); /* cancelled as it yields */
  }
  lh_task_cancel(t);
  return 0;
}

/* task:detach() -> task: no longer a child, it outlives its parent */
static int task_detach(lua_State *L) {
  lh_spawn_t *s = check_task(L, 1);
  lh_own_leave(&s->task.node);
  lua_settop(L, 1);
  return 1;
}

static const char *status_of(const lh_spawn_t *s) {
  switch (s->task.end) {
    case LH_END_RETURNED: return "done";
    case LH_END_FAILED: return "failed";
    case LH_END_CANCELED: return "canceled";
  }
  return "running";
}

static int task_index(lua_State *L) {
  lh_spawn_t *s = check_task(L, 1);
  const char *k = lua_tostring(L, 2);
  if (k && !strcmp(k, "done")) lua_pushboolean(L, s->task.end != 0);
  else if (k && !strcmp(k, "status")) lua_pushstring(L, status_of(s));
  else {
    lua_pushvalue(L, 2);
    lua_rawget(L, lua_upvalueindex(1));
  }
  return 1;
}

static int task_tostring(lua_State *L) {
  lh_spawn_t *s = check_task(L, 1);
  lua_pushfstring(L, "lhyper.task (%s)", status_of(s));
  return 1;
}

/* --- lhyper.timeout(seconds, fn, ...) --- */

/* a timeout's child is over: its results, its error raised again, or
 * nil, err, "canceled" when something else cancelled it */
static int timeout_outcome(lua_State *L, lh_spawn_t *s, int i) {
  if (s->task.end == LH_END_FAILED) {
    lua_getiuservalue(L, i, 1);
    return lua_error(L);
  }
  return push_outcome(L, s, i);
}

static int timeout_k(lua_State *L, int status, lua_KContext ctx) {
  lh_spawn_t *s = lua_touserdata(L, 2);
  lh_task_t *t = lh_task_current(L);
  if (s->task.end) {
    lh_waitq_leave(t);
    return timeout_outcome(L, s, 2);
  }
  if (t->expired) {
    lh_waitq_leave(t);
    lh_task_cancel(&s->task);
    return lh_push_fail(L, LH_ETIMEOUT, "timed out");
  }
  return lh_waitq_again(L, timeout_k);
}

/* lhyper.timeout(seconds, fn, ...) -> fn's results (true when none), or
 * nil, err, "timeout". fn runs at once in a child task; on expiry that
 * task is cancelled. What fn opened and left open passes to the caller
 * when it returns in time, as if the caller had opened it. An error fn
 * raises is raised again here. */
static int l_timeout(lua_State *L) {
  double sec = luaL_checknumber(L, 1);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  lh_task_t *t = lh_task_current(L);
  if (!t) return luaL_error(L, "lhyper.timeout: not inside an lhyper handler or task");
  lh_spawn_t *s = spawn_new(L, 2, lua_gettop(L), t, 0, 0);
  s->task.adopt = 1;
  s->quiet = 1;
  lua_replace(L, 2);
  lua_settop(L, 2);
  lh_task_start(L, &s->task);
  if (s->task.end) return timeout_outcome(L, s, 2);
  return lh_waitq_wait(L, &s->joiners, sec, timeout_k);
}

/* --- lh_spawn_within: lhyper.timeout for a caller that answers expiry --- */

/* a within's child is over: its results as they are (none stays none),
 * its error raised again */
static int within_outcome(lua_State *L, lh_spawn_t *s, int i) {
  if (s->task.end == LH_END_FAILED) {
    lua_getiuservalue(L, i, 1);
    return lua_error(L);
  }
  if (s->task.end == LH_END_CANCELED) return lh_raise(L, LH_ECANCELED, "task canceled");
  if (s->nres == 0) return 0;
  return push_results(L, i);
}

/* the waiting task's continuation; the child is at the top of its stack */
static int within_k(lua_State *L, int status, lua_KContext ctx) {
  int i = lua_gettop(L);
  lh_spawn_t *s = lua_touserdata(L, i);
  lh_task_t *t = lh_task_current(L);
  if (s->task.end) {
    lh_waitq_leave(t);
    return within_outcome(L, s, i);
  }
  if (!t->expired) return lh_waitq_again(L, within_k);
  int n = s->expired(L, s->expired_ud);
  if (n < 0) { /* waits on; its timer is gone: no deadline any more */
    t->expired = 0;
    return lh_waitq_again(L, within_k);
  }
  lh_waitq_leave(t);
  lh_task_cancel(&s->task);
  return n;
}

/* lh_spawn_within's first resume of its child s (on top of L), made
 * here rather than through lh_task_start's protected call: lua_resume
 * protects the child, and lh_task_resumed what follows. A child that
 * returns at once leaves its results on its stack (s->direct): moved
 * here, they are on top of L and their count is returned; -1 when it
 * yielded or failed (its end, if any, in s->task.end) */
static int within_start(lua_State *L, lh_spawn_t *s) {
  lh_task_t *t = &s->task;
  int nargs = t->nargs, nres;
  t->wait = LH_WAIT_NONE;
  t->nargs = 0;
  t->running = 1;
  s->direct = 1;
  int st = lua_resume(t->co, L, nargs, &nres);
  s->direct = 0;
  if (st == LUA_OK && !lua_checkstack(L, nres + 1)) {
    /* no room to move them: kept as a returned task keeps them */
    st = LUA_ERRMEM;
    lua_pushliteral(t->co, "not enough memory");
  }
  if (st == LUA_OK) lua_xmove(t->co, L, nres);
  lh_task_resumed(L, t, st, st == LUA_YIELD ? nres : 0);
  return st == LUA_OK ? nres : -1;
}

int lh_spawn_within(lua_State *L, double sec, int first, int last, lh_within_expired_fn expired,
                    void *ud) {
  lh_task_t *t = lh_task_current(L);
  if (!t) return luaL_error(L, "not inside an lhyper handler or task");
  lh_spawn_t *s = spawn_new(L, first, last, t, 0, 1);
  s->task.adopt = 1;
  s->quiet = 1;
  s->expired = expired;
  s->expired_ud = ud;
  int i = lua_gettop(L);
  if (lh_tuning.fast_layers) {
    int n = within_start(L, s);
    if (n >= 0) return n;
  } else {
    lh_task_start(L, &s->task);
  }
  if (s->task.end) return within_outcome(L, s, i);
  return lh_waitq_wait(L, &s->joiners, sec, within_k);
}

static const luaL_Reg task_methods[] = {
  {"join", task_join}, {"cancel", task_cancel}, {"detach", task_detach}, {NULL, NULL}};

void lh_spawn_open(lua_State *L, int mod) {
  if (luaL_newmetatable(L, TASK_MT)) {
    luaL_newlib(L, task_methods);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, "__methods");
    lua_pushcclosure(L, task_index, 1);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, task_cancel);
    lua_setfield(L, -2, "__close");
    lua_pushcfunction(L, task_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &task_mt_key);
  }
  lua_pop(L, 1);
  lua_pushcfunction(L, l_spawn);
  lua_setfield(L, mod, "spawn");
  lua_pushcfunction(L, l_timeout);
  lua_setfield(L, mod, "timeout");
}
