/* lhyper.condition: a wait queue for tasks. cond:wait() suspends the
 * running task until cond:signal() (the longest waiting task) or
 * cond:broadcast() (all of them) wakes it. A task woken and cancelled
 * before it ran hands its wake-up to the next one waiting, so no signal
 * is lost to a task that went away. There is no memory of a signal when
 * nobody waits: check the state the condition stands for in a loop. */
#include "lcond.h"

#include <string.h>

#define COND_MT "lhyper.condition"

typedef struct {
  lh_waitq_t q;
} lh_cond_t;

static lh_cond_t *check_cond(lua_State *L) { return luaL_checkudata(L, 1, COND_MT); }

static int cond_wait_k(lua_State *L, int status, lua_KContext ctx) {
  lh_task_t *t = lh_task_current(L);
  if (t->signalled) {
    lh_waitq_leave(t);
    lua_pushboolean(L, 1);
    return 1;
  }
  if (t->expired || !t->wq) {
    lh_waitq_leave(t);
    if (t->expired) return lh_push_fail(L, LH_ETIMEOUT, "condition wait timed out");
    return lh_push_fail(L, LH_ECLOSED, "condition collected");
  }
  return lh_waitq_again(L, cond_wait_k);
}

/* cond:wait([timeout]) -> true, or nil, err, "timeout" */
static int cond_wait(lua_State *L) {
  lh_cond_t *c = check_cond(L);
  double timeout = luaL_optnumber(L, 2, -1);
  lua_settop(L, 1);
  if (timeout == 0) return lh_push_fail(L, LH_ETIMEOUT, "condition wait timed out");
  return lh_waitq_wait(L, &c->q, timeout, cond_wait_k);
}

/* cond:signal() -> true if a waiting task was woken */
static int cond_signal(lua_State *L) {
  lua_pushboolean(L, lh_waitq_signal(&check_cond(L)->q));
  return 1;
}

/* cond:broadcast() -> how many tasks were woken */
static int cond_broadcast(lua_State *L) {
  lua_pushinteger(L, lh_waitq_broadcast(&check_cond(L)->q));
  return 1;
}

static void cond_pass(lh_waitq_t *q) { lh_waitq_signal(q); }

static int cond_index(lua_State *L) {
  lh_cond_t *c = check_cond(L);
  const char *k = lua_tostring(L, 2);
  if (k && !strcmp(k, "waiting")) lua_pushinteger(L, (lua_Integer)(c->q.n - c->q.nsig));
  else {
    lua_pushvalue(L, 2);
    lua_rawget(L, lua_upvalueindex(1));
  }
  return 1;
}

static int cond_gc(lua_State *L) {
  lh_waitq_drop(&check_cond(L)->q);
  return 0;
}

static int cond_tostring(lua_State *L) {
  lh_cond_t *c = check_cond(L);
  lua_pushfstring(L, "lhyper.condition (%d waiting)", (int)(c->q.n - c->q.nsig));
  return 1;
}

/* lhyper.condition() -> cond */
static int l_condition(lua_State *L) {
  lh_cond_t *c = lua_newuserdatauv(L, sizeof *c, 0);
  memset(c, 0, sizeof *c);
  c->q.pass = cond_pass;
  luaL_setmetatable(L, COND_MT);
  return 1;
}

static const luaL_Reg cond_methods[] = {
  {"wait", cond_wait}, {"signal", cond_signal}, {"broadcast", cond_broadcast}, {NULL, NULL}};

void lh_cond_open(lua_State *L, int mod) {
  if (luaL_newmetatable(L, COND_MT)) {
    luaL_newlib(L, cond_methods);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, "__methods");
    lua_pushcclosure(L, cond_index, 1);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, cond_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, cond_tostring);
    lua_setfield(L, -2, "__tostring");
  }
  lua_pop(L, 1);
  lua_pushcfunction(L, l_condition);
  lua_setfield(L, mod, "condition");
}
