/* lhyper.channel(capacity): a bounded FIFO of values between tasks. send
 * waits while it is full, receive while it is empty, close wakes everyone.
 * Waiting senders and receivers are served in arrival order: one that
 * arrives while others wait queues behind them, and each slot freed (or
 * value added) wakes one of them, who takes it when it runs; a woken task
 * cancelled before it ran hands its turn to the next. The values live in
 * a ring in the user value (a table, slots 1..capacity). */
#include "lchannel.h"

#include <string.h>

#define CHANNEL_MT "lhyper.channel"

typedef struct {
  lh_waitq_t senders, receivers;
  uint32_t cap;          /* slots */
  uint32_t count;        /* values held */
  uint32_t head;         /* slot of the oldest value, 0-based */
  unsigned closed : 1;   /* set by close, never cleared */
} lh_chan_t;

static lh_chan_t *check_chan(lua_State *L) { return luaL_checkudata(L, 1, CHANNEL_MT); }

static lh_chan_t *chan_of(lh_waitq_t *q, int senders) {
  return (lh_chan_t *)((char *)q - (senders ? offsetof(lh_chan_t, senders) : offsetof(lh_chan_t, receivers)));
}

/* free slots not yet promised to a woken sender: wake one more */
static void wake_sender(lh_chan_t *c) {
  if (c->cap - c->count > c->senders.nsig) lh_waitq_signal(&c->senders);
}

/* values not yet promised to a woken receiver: wake one more */
static void wake_receiver(lh_chan_t *c) {
  if (c->count > c->receivers.nsig) lh_waitq_signal(&c->receivers);
}

static void senders_pass(lh_waitq_t *q) { wake_sender(chan_of(q, 1)); }
static void receivers_pass(lh_waitq_t *q) { wake_receiver(chan_of(q, 0)); }

/* the channel at index 1 takes the value at index vi */
static void chan_push(lua_State *L, lh_chan_t *c, int vi) {
  lua_getiuservalue(L, 1, 1);
  lua_pushvalue(L, vi);
  lua_rawseti(L, -2, (lua_Integer)((c->head + c->count) % c->cap) + 1);
  lua_pop(L, 1);
  c->count++;
  wake_receiver(c);
}

/* pushes the oldest value of the channel at index 1 */
static void chan_pop(lua_State *L, lh_chan_t *c) {
  lua_getiuservalue(L, 1, 1);
  lua_rawgeti(L, -1, (lua_Integer)c->head + 1);
  lua_pushnil(L);
  lua_rawseti(L, -3, (lua_Integer)c->head + 1); /* the channel keeps no reference */
  lua_remove(L, -2);
  c->head = (c->head + 1) % c->cap;
  c->count--;
  wake_sender(c);
}

static int fail_closed(lua_State *L) { return lh_push_fail(L, LH_ECLOSED, "channel closed"); }

static int send_k(lua_State *L, int status, lua_KContext ctx) {
  lh_chan_t *c = lua_touserdata(L, 1);
  lh_task_t *t = lh_task_current(L);
  if (c->closed) {
    lh_waitq_leave(t);
    return fail_closed(L);
  }
  if (t->signalled && c->count < c->cap) {
    lh_waitq_leave(t);
    chan_push(L, c, 2);
    wake_sender(c);
    lua_pushboolean(L, 1);
    return 1;
  }
  if (t->expired || !t->wq) {
    lh_waitq_leave(t);
    return lh_push_fail(L, LH_ETIMEOUT, "channel send timed out");
  }
  return lh_waitq_again(L, send_k);
}

/* ch:send(v[, timeout]) -> true, or nil, err, kind ("closed", "timeout");
 * waits while the channel is full. timeout 0: never waits */
static int ch_send(lua_State *L) {
  lh_chan_t *c = check_chan(L);
  luaL_argcheck(L, !lua_isnoneornil(L, 2), 2, "a value expected (nil cannot be sent)");
  double timeout = luaL_optnumber(L, 3, -1);
  lua_settop(L, 2);
  if (c->closed) return fail_closed(L);
  if (c->count < c->cap && c->senders.n == 0) {
    chan_push(L, c, 2);
    lua_pushboolean(L, 1);
    return 1;
  }
  if (timeout == 0) return lh_push_fail(L, LH_ETIMEOUT, "channel full");
  return lh_waitq_wait(L, &c->senders, timeout, send_k);
}

static int receive_k(lua_State *L, int status, lua_KContext ctx) {
  lh_chan_t *c = lua_touserdata(L, 1);
  lh_task_t *t = lh_task_current(L);
  if (t->signalled && c->count > 0) {
    lh_waitq_leave(t);
    chan_pop(L, c);
    wake_receiver(c);
    return 1;
  }
  if (c->closed && c->count == 0) {
    lh_waitq_leave(t);
    lua_pushnil(L);
    return 1;
  }
  if (t->expired || !t->wq) {
    lh_waitq_leave(t);
    return lh_push_fail(L, LH_ETIMEOUT, "channel receive timed out");
  }
  return lh_waitq_again(L, receive_k);
}

static int receive(lua_State *L, lh_chan_t *c, double timeout) {
  if (c->count > 0 && c->receivers.n == 0) {
    chan_pop(L, c);
    return 1;
  }
  if (c->closed && c->count == 0) {
    lua_pushnil(L);
    return 1;
  }
  if (timeout == 0) return lh_push_fail(L, LH_ETIMEOUT, "channel empty");
  return lh_waitq_wait(L, &c->receivers, timeout, receive_k);
}

/* ch:receive([timeout]) -> value; nil once closed and empty; or nil, err,
 * "timeout". timeout 0: never waits */
static int ch_receive(lua_State *L) {
  lh_chan_t *c = check_chan(L);
  double timeout = luaL_optnumber(L, 2, -1);
  lua_settop(L, 1);
  return receive(L, c, timeout);
}

/* for v in ch do ... end: receives until closed and empty */
static int ch_call(lua_State *L) {
  lh_chan_t *c = check_chan(L);
  lua_settop(L, 1);
  return receive(L, c, -1);
}

/* ch:close(): no more sends; receivers get what is left, then nil. Also <close> */
static int ch_close(lua_State *L) {
  lh_chan_t *c = check_chan(L);
  if (!c->closed) {
    c->closed = 1;
    lh_waitq_broadcast(&c->senders);
    lh_waitq_broadcast(&c->receivers);
  }
  return 0;
}

static int ch_len(lua_State *L) {
  lua_pushinteger(L, check_chan(L)->count);
  return 1;
}

static int ch_index(lua_State *L) {
  lh_chan_t *c = check_chan(L);
  const char *k = lua_tostring(L, 2);
  if (k && !strcmp(k, "closed")) lua_pushboolean(L, c->closed);
  else if (k && !strcmp(k, "capacity")) lua_pushinteger(L, c->cap);
  else {
    lua_pushvalue(L, 2);
    lua_rawget(L, lua_upvalueindex(1));
  }
  return 1;
}

static int ch_gc(lua_State *L) {
  lh_chan_t *c = check_chan(L);
  lh_waitq_drop(&c->senders);
  lh_waitq_drop(&c->receivers);
  return 0;
}

static int ch_tostring(lua_State *L) {
  lh_chan_t *c = check_chan(L);
  lua_pushfstring(L, "lhyper.channel (%d/%d%s)", (int)c->count, (int)c->cap,
                  c->closed ? ", closed" : "");
  return 1;
}

/* lhyper.channel([capacity]) -> ch; capacity a positive integer, default 1 */
static int l_channel(lua_State *L) {
  lua_Integer cap = luaL_optinteger(L, 1, 1);
  luaL_argcheck(L, cap >= 1 && cap <= 0x7fffffff, 1, "capacity must be a positive integer");
  lh_chan_t *c = lua_newuserdatauv(L, sizeof *c, 1);
  memset(c, 0, sizeof *c);
  c->cap = (uint32_t)cap;
  c->senders.pass = senders_pass;
  c->receivers.pass = receivers_pass;
  luaL_setmetatable(L, CHANNEL_MT);
  lua_createtable(L, cap < 64 ? (int)cap : 64, 0);
  lua_setiuservalue(L, -2, 1);
  return 1;
}

static const luaL_Reg ch_methods[] = {
  {"send", ch_send}, {"receive", ch_receive}, {"close", ch_close}, {NULL, NULL}};

void lh_channel_open(lua_State *L, int mod) {
  if (luaL_newmetatable(L, CHANNEL_MT)) {
    luaL_newlib(L, ch_methods);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, "__methods");
    lua_pushcclosure(L, ch_index, 1);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, ch_call);
    lua_setfield(L, -2, "__call");
    lua_pushcfunction(L, ch_len);
    lua_setfield(L, -2, "__len");
    lua_pushcfunction(L, ch_close);
    lua_setfield(L, -2, "__close");
    lua_pushcfunction(L, ch_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, ch_tostring);
    lua_setfield(L, -2, "__tostring");
  }
  lua_pop(L, 1);
  lua_pushcfunction(L, l_channel);
  lua_setfield(L, mod, "channel");
}
