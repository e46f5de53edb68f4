/* lhyper.stream: what req:upgrade returns, the connection as raw bytes
 * (WebSocket, CONNECT tunnels). One task at a time may wait on it; it
 * ends with stream:close(), its collection, or the peer going away. */
#include "lstream.h"

#include <lauxlib.h>

#define STREAM_MT "lhyper.stream"

typedef struct {
  lh_req_t *r;
  int closed;  /* closed, or taken by lh_stream_take: the taker owns the connection */
} lh_stream_t;

static lh_stream_t *check_stream(lua_State *L) {
  lh_stream_t *s = luaL_checkudata(L, 1, STREAM_MT);
  if (s->closed) luaL_error(L, "attempt to use a closed stream");
  return s;
}

/* --- the stream handed to C code (lh_raw_t, lraw.h) --- */

static lh_disp_t *raw_disp(lh_raw_t *raw) {
  lh_req_t *r = raw->conn;
  return r->sc ? lh_sconn_disp(r->sc) : NULL;
}

static void raw_kick(lh_raw_t *raw) {
  lh_req_t *r = raw->conn;
  if (r->sc) lh_disp_kick(lh_sconn_disp(r->sc));
}

static void raw_close(lh_raw_t *raw) {
  lh_req_t *r = raw->conn;
  r->raw = NULL;
  if (r->sc) {
    lh_sconn_t *sc = r->sc;
    lh_disp_raw_close(lh_sconn_disp(sc)); /* queued bytes still go out */
    lh_req_detach(r);
    lh_sconn_defer_poll(sc);
  }
}

static void raw_release(lh_raw_t *raw) {
  lh_req_t *r = raw->conn;
  if (r->raw == raw) r->raw = NULL;
}

static const lh_raw_ops_t stream_raw_ops = {raw_disp, raw_kick, raw_close, raw_release};

int lh_stream_take(lua_State *L, int idx, lh_raw_t *raw) {
  lh_stream_t *s = luaL_checkudata(L, idx, STREAM_MT);
  if (s->closed || !s->r->sc || s->r->raw) return LH_ECLOSED;
  s->closed = 1;
  s->r->raw = raw;
  raw->ops = &stream_raw_ops;
  raw->conn = s->r;
  return 0;
}

void lh_stream_gone(lh_req_t *r) {
  lh_task_t *w = r->waiter;
  r->waiter = NULL;
  if (w && (w->wait == LH_WAIT_BODY || w->wait == LH_WAIT_WRITE)) {
    /* resumed next iteration: it then sees the stream closed */
    w->wait = LH_WAIT_TICK;
    lh_loop_defer(w->st->loop, &w->tick);
  }
}

static int stream_wait(lua_State *L, lh_req_t *r, int wait, lua_KFunction k) {
  lh_task_t *t = lh_task_of(L);
  if (!t || !t->running) return luaL_error(L, "stream: not inside an lhyper handler or task");
  if (r->waiter && r->waiter != t) return luaL_error(L, "stream: another task is already waiting on it");
  r->waiter = t;
  return lh_task_yield(L, wait, k);
}

static int stream_read(lua_State *L);
static int stream_read_k(lua_State *L, int status, lua_KContext ctx) { return stream_read(L); }

/* stream:read() -> bytes, or nil at EOF, or nil, err, kind */
static int stream_read(lua_State *L) {
  lh_stream_t *s = check_stream(L);
  lh_req_t *r = s->r;
  r->waiter = NULL;
  if (!r->sc) return 0; /* the peer is gone: EOF */
  lh_disp_t *d = lh_sconn_disp(r->sc);
  const char *p;
  size_t n;
  int rc = lh_disp_read_raw(d, &p, &n);
  if (rc == 1) {
    lua_pushlstring(L, p, n);
    return 1;
  }
  if (rc == 2) {
    if (lh_disp_io_error(d)) return lh_push_fail(L, lh_disp_io_error(d), NULL);
    return 0;
  }
  lh_sconn_defer_poll(r->sc); /* turns reading on */
  return stream_wait(L, r, LH_WAIT_BODY, stream_read_k);
}

static int stream_write_k(lua_State *L, int status, lua_KContext ctx) {
  lh_stream_t *s = luaL_checkudata(L, 1, STREAM_MT);
  s->r->waiter = NULL;
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
  int e = lh_disp_write_raw(d, p, n);
  if (e) return lh_push_fail(L, e, NULL);
  lh_sconn_defer_poll(r->sc);
  if (!lh_disp_can_write(d)) return stream_wait(L, r, LH_WAIT_WRITE, stream_write_k);
  lua_pushboolean(L, 1);
  return 1;
}

static void stream_shut(lh_stream_t *s) {
  if (s->closed) return;
  s->closed = 1;
  lh_req_t *r = s->r;
  if (r->sc) {
    lh_sconn_t *sc = r->sc;
    lh_disp_close(lh_sconn_disp(sc)); /* queued bytes still go out */
    lh_req_detach(r);
    lh_sconn_defer_poll(sc);
  }
}

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
  s->r = r;
  s->closed = 0;
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
