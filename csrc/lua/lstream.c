/* lhyper.stream: what req:upgrade returns, the connection as raw bytes
 * (WebSocket, CONNECT tunnels). One task at a time may wait on it; it
 * ends with stream:close(), its collection, or the peer going away. */
#include "lstream.h"

#include <lauxlib.h>
#include <string.h>

#include "lsvc.h"

#define STREAM_MT "lhyper.stream"

typedef struct {
  lh_own_t own;            /* in the list of the task that upgraded */
  lh_req_t *r;
  int closed;              /* stream:close() (or its owner's end) was called, or C code
                            * took the stream (lh_stream_take): the taker owns the connection */
  lh_timer_t *idle_timer;  /* runs while open, when idle > 0 */
  double idle;             /* the server's stream_idle_timeout, 0: none */
  double last;             /* loop time of the last byte read or written */
  unsigned idled : 1;      /* closed by the idle timeout */
} lh_stream_t;

static void stream_shut(lh_stream_t *s);

static double loop_now(lh_stream_t *s) { return lh_loop_now(s->r->task.st->loop); }

/* the idle timer: it is set for the whole timeout and, when bytes moved
 * meanwhile, set again for what is left (no timer work per byte) */
static void idle_cb(void *data) {
  lh_stream_t *s = data;
  s->idle_timer = NULL;
  if (s->closed) return;
  double left = s->last + s->idle - loop_now(s);
  if (left > 0.001) s->idle_timer = lh_timer_start(s->r->task.st->loop, left, idle_cb, s);
  if (s->idle_timer) return;
  s->idled = 1;
  stream_shut(s);
}

static void stream_idle_stop(lh_stream_t *s) {
  if (s->idle_timer) {
    lh_timer_cancel(s->idle_timer);
    s->idle_timer = NULL;
  }
}

static lh_stream_t *check_stream(lua_State *L) {
  lh_stream_t *s = luaL_checkudata(L, 1, STREAM_MT);
  if (s->closed) luaL_error(L, "attempt to use a closed stream");
  return s;
}

/* --- the stream handed to C code (lh_raw_t, lraw.h) --- */

static lh_disp_t *raw_disp(lh_raw_t *raw) { return lh_req_disp(raw->conn); }

static void raw_kick(lh_raw_t *raw) {
  lh_disp_t *d = raw_disp(raw);
  if (d) lh_disp_kick(d);
}

static void raw_close(lh_raw_t *raw) {
  lh_req_t *r = raw->conn;
  r->raw = NULL;
  if (r->sc) {
    lh_sconn_t *sc = r->sc;
    lh_disp_t *d = lh_sconn_disp(sc);
    if (d) lh_disp_raw_close(d); /* queued bytes still go out */
    lh_req_detach(r);
    lh_sconn_defer_poll(sc);
  }
}

static void raw_release(lh_raw_t *raw) {
  lh_req_t *r = raw->conn;
  if (r->raw == raw) r->raw = NULL;
}

static int raw_shutting(lh_raw_t *raw) {
  lh_req_t *r = raw->conn;
  return r->host->shutting;
}

/* the taker keeps the connection alone: the req can go */
static int raw_keep(lh_raw_t *raw) { return lh_svc_keep_raw(raw->conn, raw); }

static const lh_raw_ops_t stream_raw_ops = {raw_disp, raw_kick, raw_close, raw_release, raw_keep,
                                            raw_shutting};

int lh_stream_take(lua_State *L, int idx, lh_raw_t *raw) {
  lh_stream_t *s = luaL_checkudata(L, idx, STREAM_MT);
  if (s->closed || !s->r->sc || s->r->raw) return LH_ECLOSED;
  s->closed = 1;
  lh_own_leave(&s->own); /* the taker answers for it now */
  stream_idle_stop(s);
  s->r->raw = raw;
  raw->ops = &stream_raw_ops;
  raw->conn = s->r;
  return 0;
}

void lh_stream_gone(lh_req_t *r) { lh_req_wake_all(r); }

static int read_on(lua_State *L, lh_stream_t *s, int again);

/* woken: the stream was closed (by another task, or its owner's end),
 * bytes came, the peer went, or the read's timeout expired */
static int stream_read_k(lua_State *L, int status, lua_KContext ctx) {
  lh_stream_t *s = luaL_checkudata(L, 1, STREAM_MT);
  lh_task_t *t = lh_task_current(L);
  lh_task_unslot(t);
  if (s->closed) {
    lh_task_disarm(t);
    if (s->idled) return lh_push_fail(L, LH_ETIMEOUT, "stream idle timeout");
    return lh_push_fail(L, LH_ECLOSED, "stream closed");
  }
  return read_on(L, s, 1);
}

/* stream:read([timeout]) -> bytes, or nil at EOF, or nil, err, kind
 * (closed: stream:close() was called while it waited; timeout: this
 * read's timeout, or the stream's idle timeout closed it) */
static int stream_read(lua_State *L) { return read_on(L, check_stream(L), 0); }

/* again: woken in a wait that stream_read started (its timer runs on) */
static int read_on(lua_State *L, lh_stream_t *s, int again) {
  lh_req_t *r = s->r;
  lh_task_t *t = lh_task_current(L);
  if (!r->sc) { /* the peer is gone: EOF */
    if (t) lh_task_disarm(t);
    return 0;
  }
  lh_disp_t *d = lh_sconn_disp(r->sc);
  if (!d) {
    if (t) lh_task_disarm(t);
    return lh_push_fail(L, LH_ENOMEM, NULL);
  }
  const char *p;
  size_t n;
  int rc = lh_disp_read_raw(d, &p, &n);
  if (rc) {
    if (t) lh_task_disarm(t);
    if (rc == 1) {
      s->last = loop_now(s);
      lua_pushlstring(L, p, n);
      return 1;
    }
    if (lh_disp_io_error(d)) return lh_push_fail(L, lh_disp_io_error(d), NULL);
    return 0;
  }
  if (!t) return luaL_error(L, "stream: not inside an lhyper handler or task");
  if (again) {
    if (t->expired) return lh_push_fail(L, LH_ETIMEOUT, "stream read timed out");
  } else {
    double timeout = luaL_optnumber(L, 2, -1);
    if (timeout >= 0) lh_task_arm(L, t, timeout, 0);
    else lh_task_disarm(t), t->expired = 0;
  }
  lh_sconn_defer_poll(r->sc); /* turns reading on */
  return lh_req_wait(L, r, LH_WAIT_BODY, stream_read_k);
}

static int stream_write_k(lua_State *L, int status, lua_KContext ctx) {
  lh_stream_t *s = luaL_checkudata(L, 1, STREAM_MT);
  lh_task_unslot(lh_task_current(L));
  if (s->closed) return lh_push_fail(L, LH_ECLOSED, "stream closed");
  if (!s->r->sc) return lh_push_fail(L, LH_ECLOSED, "stream closed by the peer");
  lua_pushboolean(L, 1);
  return 1;
}

/* stream:write(s) -> true, or nil, err, kind; yields while the socket is backed up */
static int stream_write(lua_State *L) {
  lh_stream_t *s = check_stream(L);
  size_t n;
  const char *p = luaL_checklstring(L, 2, &n);
  lh_req_t *r = s->r;
  if (!r->sc) return lh_push_fail(L, LH_ECLOSED, "stream closed by the peer");
  lh_disp_t *d = lh_sconn_disp(r->sc);
  int e = d ? lh_disp_write_raw(d, p, n) : LH_ENOMEM;
  if (e) return lh_push_fail(L, e, NULL);
  s->last = loop_now(s);
  lh_sconn_defer_poll(r->sc);
  if (!lh_disp_can_write(d)) return lh_req_wait(L, r, LH_WAIT_WRITE, stream_write_k);
  lua_pushboolean(L, 1);
  return 1;
}

static void stream_shut(lh_stream_t *s) {
  if (s->closed) return;
  s->closed = 1;
  lh_own_leave(&s->own);
  stream_idle_stop(s);
  lh_req_t *r = s->r;
  lh_req_wake_all(r); /* a task waiting on the stream gets "closed" */
  if (r->sc) {
    lh_sconn_t *sc = r->sc;
    lh_disp_t *d = lh_sconn_disp(sc);
    if (d) lh_disp_close(d); /* queued bytes still go out */
    lh_req_detach(r);
    lh_sconn_defer_poll(sc);
  }
}

/* the task that upgraded is over */
static void stream_own_close(lh_own_t *o) { stream_shut((lh_stream_t *)o); }

static int stream_close(lua_State *L) {
  lh_stream_t *s = luaL_checkudata(L, 1, STREAM_MT);
  stream_shut(s); /* nothing once taken: closed is set */
  lua_pushboolean(L, 1);
  return 1;
}

static int stream_tostring(lua_State *L) {
  lh_stream_t *s = luaL_checkudata(L, 1, STREAM_MT);
  lua_pushstring(L, s->closed ? "lhyper.stream (closed)" : "lhyper.stream");
  return 1;
}

void lh_stream_push(lua_State *L, lh_req_t *r, int ri) {
  ri = lua_absindex(L, ri);
  lh_stream_t *s = lua_newuserdatauv(L, sizeof *s, 1);
  memset(s, 0, sizeof *s);
  s->r = r;
  s->own.close = stream_own_close;
  s->own.ud = s;
  lh_own_add(lh_task_current(L), &s->own);
  s->idle = r->host->stream_idle;
  if (s->idle > 0) {
    s->last = loop_now(s);
    s->idle_timer = lh_timer_start(r->task.st->loop, s->idle, idle_cb, s);
  }
  lua_pushvalue(L, ri);
  lua_setiuservalue(L, -2, 1); /* the req lives as long as its stream */
  luaL_setmetatable(L, STREAM_MT);
}

static const luaL_Reg stream_methods[] = {
  {"read", stream_read}, {"write", stream_write}, {"close", stream_close}, {NULL, NULL}};

void lh_stream_open(lua_State *L) {
  if (luaL_newmetatable(L, STREAM_MT)) {
    luaL_newlib(L, stream_methods);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, "__methods");
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, stream_close);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, stream_close);
    lua_setfield(L, -2, "__close");
    lua_pushcfunction(L, stream_tostring);
    lua_setfield(L, -2, "__tostring");
  }
  lua_pop(L, 1);
}
