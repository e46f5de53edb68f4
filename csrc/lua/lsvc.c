/* The service a Lua handler provides: one coroutine per request, started
 * from the dispatcher; response head, body and trailers written from it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lcore.h"

#define SERVER_MT "lhyper.server"

static lh_req_t *check_req(lua_State *L, int i) { return luaL_checkudata(L, i, "lhyper.req"); }

static lh_req_t *conn_req(lh_sconn_t *sc) { return *lh_sconn_udata(sc); }

/* --- error reporting (the on_error option) --- */

typedef struct {
  lh_lsrv_t *s;
  int code;
  const char *msg;
  lh_req_t *r;
} report_ctx;

static int report_p(lua_State *L) {
  report_ctx *x = lua_touserdata(L, 1);
  lua_rawgeti(L, LUA_REGISTRYINDEX, x->s->on_error_ref);
  lh_push_error(L, x->code, x->msg);
  lua_createtable(L, 0, 3);
  if (x->r) {
    lua_pushlstring(L, x->r->bytes + x->r->method.off, x->r->method.len);
    lua_setfield(L, -2, "method");
    lua_pushlstring(L, x->r->bytes + x->r->target.off, x->r->target.len);
    lua_setfield(L, -2, "target");
  }
  lua_call(L, 2, 0);
  return 0;
}

void lh_report(lh_lsrv_t *s, int code, const char *msg, lh_req_t *r) {
  if (!s || s->on_error_ref == LUA_NOREF || s->on_error_ref == LUA_REFNIL) {
    if (s && s->on_error_ref == LUA_REFNIL) return; /* on_error = false: silent */
    if (r)
      fprintf(stderr, "lhyper: %.*s %.*s: %s error: %s\n", (int)r->method.len,
              r->bytes + r->method.off, (int)r->target.len, r->bytes + r->target.off,
              lh_err_kind(code) ? lh_err_kind(code) : "io", msg ? msg : lh_strerror(code));
    else
      fprintf(stderr, "lhyper: %s error: %s\n", lh_err_kind(code) ? lh_err_kind(code) : "io",
              msg ? msg : lh_strerror(code));
    return;
  }
  lua_State *L = s->st->L;
  report_ctx x = {s, code, msg, r};
  lua_pushcfunction(L, report_p);
  lua_pushlightuserdata(L, &x);
  if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
    fprintf(stderr, "lhyper: on_error failed: %s\n", lua_isstring(L, -1) ? lua_tostring(L, -1) : "?");
    lua_pop(L, 1);
  }
}

/* --- in-flight accounting (max_in_flight, hyper's poll_ready) --- */

static void wake_waiting(lh_lsrv_t *s) {
  while (s->wlen && (!s->max_in_flight || s->in_flight < s->max_in_flight)) {
    lh_sconn_t *sc = s->waiting[s->whead];
    s->whead = (s->whead + 1) % s->wcap;
    s->wlen--;
    if (sc) {
      lh_sconn_defer_poll(sc);
      break; /* it takes the free slot; the next finish wakes the next */
    }
  }
}

static void unwait(lh_lsrv_t *s, lh_sconn_t *sc) {
  for (uint32_t i = 0; i < s->wlen; i++) {
    uint32_t k = (s->whead + i) % s->wcap;
    if (s->waiting[k] == sc) s->waiting[k] = NULL;
  }
}

static int svc_poll_ready(lh_disp_t *d) {
  lh_lsrv_t *s = d->data;
  if (!s->max_in_flight || s->in_flight < s->max_in_flight) return 1;
  lh_sconn_t *sc = lh_sconn_from_disp(d);
  for (uint32_t i = 0; i < s->wlen; i++)
    if (s->waiting[(s->whead + i) % s->wcap] == sc) return 0;
  if (s->wlen == s->wcap) {
    uint32_t ncap = s->wcap ? s->wcap * 2 : 16;
    lh_sconn_t **w = malloc(ncap * sizeof *w);
    if (!w) return 0;
    for (uint32_t i = 0; i < s->wlen; i++) w[i] = s->waiting[(s->whead + i) % s->wcap];
    free(s->waiting);
    s->waiting = w;
    s->wcap = ncap;
    s->whead = 0;
  }
  s->waiting[(s->whead + s->wlen) % s->wcap] = sc;
  s->wlen++;
  return 0;
}

/* --- request lifecycle --- */

/* a complete response without a body, keeping the connection when it can */
static void respond_empty(lh_conn_t *c, int status) {
  if (lh_conn_head_begin(c, status) || lh_conn_head_end(c, 0) || lh_conn_write_end(c)) {
    lh_conn_head_abort(c);
    lh_conn_close(c);
  }
}

static void detach(lh_req_t *r) {
  if (r->sc) {
    *lh_sconn_udata(r->sc) = NULL;
    r->sc = NULL;
  }
}

void lh_req_finish(lh_req_t *r) {
  r->finished = 1;
  if (r->sc && r->upgraded) {
    /* the stream goes on without the handler until closed or collected */
  } else if (r->sc) {
    lh_conn_t *c = &lh_sconn_disp(r->sc)->conn;
    if (c->writing == LH_WRITING_INIT) {
      /* the handler ended without answering */
      respond_empty(c, r->too_large ? 413 : 500);
    } else if (c->writing == LH_WRITING_BODY) {
      /* a streamed body that did not end: the framing is broken */
      lh_conn_close(c);
    }
    detach(r);
  }
  if (r->counted) {
    r->counted = 0;
    r->srv->in_flight--;
    wake_waiting(r->srv);
  }
}

typedef struct {
  lh_lsrv_t *s;
  lh_sconn_t *sc;
  lh_head_t *h;
  const char *base;
  int ref;       /* the thread's registry ref */
  lh_req_t *r;   /* set once the request is made */
} recv_ctx;

/* the handler returned [ctx, req, status, headers, body, ...]: answer from
 * within the thread, so what may raise is under lua_resume's protection */
static int req_main_k(lua_State *co, int status, lua_KContext ctx) {
  (void)status; (void)ctx;
  lh_task_t *t = lh_task_of(co);
  if (lua_gettop(co) != 5) lua_settop(co, 5);
  if (lh_req_respond(co, t->req, 3) == 1) {
    /* run the body iterator in the same thread, which may yield */
    t->pumping = 1;
    lua_rawgeti(co, LUA_REGISTRYINDEX, t->st->runner_ref);
    lua_pushvalue(co, 2);
    lua_pushvalue(co, 5);
    lua_callk(co, 2, 0, 0, lh_k_none);
  }
  return 0;
}

/* req_main's upvalues: what every request needs, without a registry look-up */
enum { UP_SERVER = 1, UP_HANDLER, UP_REQ_MT };

/* a request's thread body: makes the req, runs the handler, answers; then,
 * while requests are pipelined and each is answered without a yield, the
 * next one in the same thread (lh_disp_next_msg) */
static int req_main(lua_State *co) {
  recv_ctx *x = lua_touserdata(co, 1);
  lh_lsrv_t *s = x->s;
  lh_lstate_t *st = s->st;
  for (;;) {
    lh_req_t *r = lh_req_new(co, s, x->sc, x->h, x->base, lua_upvalueindex(UP_REQ_MT),
                             lua_upvalueindex(UP_SERVER)); /* index 2 */
    r->task.st = st;
    r->task.co = co;
    r->task.req = r;
    r->task.ref = x->ref;
    r->task.running = 1;
    r->task.tick.cb = lh_task_tick_cb;
    *(lh_task_t **)lua_getextraspace(co) = &r->task;
    /* the connection's request from here on */
    *lh_sconn_udata(x->sc) = r;
    r->counted = 1;
    s->in_flight++;
    x->r = r;
    lua_pushvalue(co, lua_upvalueindex(UP_HANDLER));
    lua_pushvalue(co, 2);
    lua_callk(co, 1, LUA_MULTRET, 0, req_main_k);
    req_main_k(co, LUA_OK, 0);
    /* answered without a yield: the next pipelined request, unless a
     * connection waits for the slot this one frees. With nothing buffered
     * (one request per read, the keep-alive case) there is none, and the
     * task ends as usual */
    if (r->upgraded || !r->sc || s->wlen) return 0;
    lh_disp_t *d = lh_sconn_disp(x->sc);
    if (lh_conn_buffered(&d->conn) == 0) return 0;
    lh_req_finish(r);
    if (!lh_disp_next_msg(d, &x->h, &x->base)) return 0; /* the task ends as usual */
    /* the thread goes on with the next request: this one's task is over */
    r->task.co = NULL;
    r->task.ref = LUA_NOREF;
    r->task.running = 0;
    r->task.pumping = 0;
    x->r = NULL; /* until the next req is made: see svc_recv_msg */
    lua_settop(co, 1);
  }
}

/* No protected call per request: the thread comes from the pool (made
 * under protection when the pool is empty) and everything else runs inside
 * lua_resume, which protects itself. */
static int svc_recv_msg(lh_disp_t *d, lh_head_t *h, const char *base) {
  lh_lsrv_t *s = d->data;
  lh_lstate_t *st = s->st;
  recv_ctx x = {s, lh_sconn_from_disp(d), h, base, LUA_NOREF, NULL};
  if (lh_co_reserve(st)) return LH_ENOMEM;
  lua_State *co = lh_co_take(st, st->L, &x.ref);
  lua_rawgeti(co, LUA_REGISTRYINDEX, s->main_ref);
  lua_pushlightuserdata(co, &x);
  int nres, r = lua_resume(co, st->L, 1, &nres);
  if (!x.r) {
    /* a request could not be made (no memory): nothing started for it */
    lh_co_drop(st, co, x.ref);
    return LH_ENOMEM;
  }
  lh_task_resumed(st->L, &x.r->task, r, nres);
  /* called from the dispatcher's poll, whose caller updates the timer: a
   * repoll is all the handler's progress needs */
  lh_disp_poll(d);
  return 0;
}

/* who waits: the handler, or for a stream whichever task reads or writes it */
static lh_task_t *waiter(lh_req_t *r) { return r->upgraded ? r->waiter : &r->task; }

static void svc_body_ready(lh_disp_t *d) {
  lh_req_t *r = conn_req(lh_sconn_from_disp(d));
  lh_task_t *t = r ? waiter(r) : NULL;
  if (t && t->wait == LH_WAIT_BODY) lh_task_resume(t);
}

static void svc_write_ready(lh_disp_t *d) {
  lh_req_t *r = conn_req(lh_sconn_from_disp(d));
  lh_task_t *t = r ? waiter(r) : NULL;
  if (t && t->wait == LH_WAIT_WRITE) lh_task_resume(t);
}

static void svc_on_error(lh_disp_t *d, int err) {
  lh_sconn_t *sc = lh_sconn_from_disp(d);
  lh_lsrv_t *s = d->data;
  lh_req_t *r = conn_req(sc);
  if (r && r->upgraded) {
    detach(r);
    lh_stream_gone(r);
    return;
  }
  if (r) {
    /* a body cut short is the server's to report; a client that left
     * after a full request is not an error */
    if (err == LH_EINCOMPLETE) lh_report(s, err, NULL, r);
    detach(r);
    lh_task_cancel(&r->task);
    return;
  }
  /* a message that never reached a handler: bad input or a slow client */
  const char *k = lh_err_kind(err);
  if (k && (!strcmp(k, "parse") || !strcmp(k, "header_timeout") || !strcmp(k, "incomplete")))
    lh_report(s, err, NULL, NULL);
}

static const lh_service_t lua_service = {
  .recv_msg = svc_recv_msg,
  .body_ready = svc_body_ready,
  .write_ready = svc_write_ready,
  .poll_ready = svc_poll_ready,
  .on_error = svc_on_error,
};

static void conn_closed(lh_sconn_t *sc) {
  lh_lsrv_t *s = lh_server_data(lh_sconn_server(sc));
  unwait(s, sc);
  lh_req_t *r = conn_req(sc);
  if (r && r->upgraded) {
    detach(r);
    lh_stream_gone(r);
  } else if (r) {
    detach(r);
    lh_task_cancel(&r->task);
  }
}

static void server_done(lh_server_t *srv) {
  lh_lsrv_t *s = lh_server_data(srv);
  lua_State *L = s->st->L;
  s->srv = NULL;
  s->closed = 1;
  free(s->waiting);
  s->waiting = NULL;
  s->wlen = s->wcap = 0;
  luaL_unref(L, LUA_REGISTRYINDEX, s->self_ref);
  /* req_main's closure holds the server too */
  luaL_unref(L, LUA_REGISTRYINDEX, s->main_ref);
  s->self_ref = s->main_ref = LUA_NOREF;
}

static const lh_server_hooks_t hooks = {
  .svc = &lua_service,
  .conn_closed = conn_closed,
  .server_done = server_done,
};

/* --- functions the Lua runner calls inside the handler's coroutine --- */

static lh_conn_t *req_conn(lua_State *L, lh_req_t *r) {
  if (!r->sc) {
    lh_raise(L, LH_ECLOSED, "connection closed");
    return NULL;
  }
  return &lh_sconn_disp(r->sc)->conn;
}

/* writes the response from the handler's values status, headers, body at
 * S's indices si, si + 1, si + 2 (S: the running coroutine, or the handler's
 * finished one). returns 1 when a body iterator is to run, 0 when the
 * response is complete (or failed and was answered), LH_ECLOSED when a
 * response was already sent */
int lh_req_respond(lua_State *S, lh_req_t *r, int si) {
  if (r->upgraded) return 0;
  if (!r->sc) return 0;
  lh_conn_t *c = &lh_sconn_disp(r->sc)->conn;
  if (c->writing != LH_WRITING_INIT) return LH_ECLOSED;
  int isnum, hi = si + 1, bi = si + 2;
  lua_Integer status = lua_tointegerx(S, si, &isnum);
  int e = 0;
  const char *why = NULL;
  if (lua_isnoneornil(S, si)) {
    status = r->too_large ? 413 : 500;
    if (!r->too_large) why = "handler returned no status";
    hi = bi = 0;
  } else if (!isnum || status < 100 || status > 999 || (status < 200 && status != 101) ||
             status == 101) {
    e = LH_EUSER_STATUS;
    why = status == 101 ? "status 101 is only sent by req:upgrade" : NULL;
  }
  if (c->connect) {
    /* CONNECT is served only by a tunnel (req:upgrade): refused otherwise,
     * and what follows the head may be tunnel bytes, so the connection ends */
    e = 0;
    status = 501;
    hi = bi = 0;
    lh_conn_disable_keep_alive(c);
  }
  int64_t len = 0;
  int bt = bi ? lua_type(S, bi) : LUA_TNIL;
  if (!e) {
    if (bt == LUA_TSTRING) len = (int64_t)lua_rawlen(S, bi);
    else if (bt == LUA_TFUNCTION) len = -1;
    else if (bt != LUA_TNIL && bt != LUA_TNONE) {
      e = LH_EUSER_SERVICE;
      why = "response body must be nil, a string or an iterator function";
    }
  }
  if (!e) e = lh_req_write_head(S, r, (int)status, hi, len, 1);
  if (e) {
    lh_report(r->srv, e, why, r);
    respond_empty(c, 500);
    return 0;
  }
  r->responded = 1;
  if (bt == LUA_TFUNCTION) {
    if (c->enc.kind != LH_ENC_NONE) return 1;
    lh_conn_write_end(c);
    return 0;
  }
  if (bt == LUA_TSTRING && len > 0) e = lh_conn_write_body(c, lua_tostring(S, bi), (size_t)len);
  if (!e) e = lh_conn_write_end(c);
  if (e) {
    lh_report(r->srv, e, NULL, r);
    lh_conn_close(c);
  }
  return 0;
}

/* respond(req, status, headers, body) -> true when the body iterator is to
 * run (for handlers run by Lua code rather than by the core) */
static int l_respond(lua_State *L) {
  lh_req_t *r = check_req(L, 1);
  lua_settop(L, 4);
  if (!r->upgraded) req_conn(L, r);
  int rc = lh_req_respond(L, r, 2);
  if (rc < 0) return luaL_error(L, "response already sent");
  lua_pushboolean(L, rc == 1);
  return 1;
}

#define WRITE_BURST (256 * 1024) /* streamed bytes between turns given to the loop */

/* write(req, chunk): one body chunk; yields while the socket is backed up,
 * and now and then anyway so a fast client cannot starve the others */
static int l_write(lua_State *L) {
  lh_req_t *r = check_req(L, 1);
  size_t n;
  const char *p = luaL_checklstring(L, 2, &n);
  req_conn(L, r);
  lh_disp_t *d = lh_sconn_disp(r->sc);
  int e = lh_disp_write_body(d, p, n);
  if (e) return lh_raise(L, e, e == LH_EUSER_BODY ? "body longer than its content-length" : NULL);
  if (!lh_disp_can_write(d)) {
    r->burst = 0;
    return lh_task_yield(L, LH_WAIT_WRITE, lh_k_none);
  }
  r->burst += n;
  if (r->burst >= WRITE_BURST) {
    r->burst = 0;
    lh_loop_defer(r->task.st->loop, &r->task.tick);
    return lh_task_yield(L, LH_WAIT_TICK, lh_k_none);
  }
  return 0;
}

/* finish(req, trailers): ends a streamed body */
static int l_finish(lua_State *L) {
  lh_req_t *r = check_req(L, 1);
  lh_conn_t *c = req_conn(L, r);
  int e = 0;
  if (lua_istable(L, 2)) {
    lua_pushnil(L);
    while (!e && lua_next(L, 2)) {
      size_t nl, vl;
      if (lua_type(L, -2) == LUA_TSTRING && (lua_type(L, -1) == LUA_TSTRING || lua_type(L, -1) == LUA_TNUMBER)) {
        const char *name = lua_tolstring(L, -2, &nl);
        lua_pushvalue(L, -1);
        const char *v = lua_tolstring(L, -1, &vl);
        e = lh_conn_write_trailer(c, name, nl, v, vl);
        lua_pop(L, 1);
      } else if (lua_istable(L, -1) && lua_type(L, -2) == LUA_TNUMBER) {
        lua_geti(L, -1, 1);
        lua_geti(L, -2, 2);
        if (lua_type(L, -2) == LUA_TSTRING && lua_isstring(L, -1)) {
          const char *name = lua_tolstring(L, -2, &nl);
          const char *v = lua_tolstring(L, -1, &vl);
          e = lh_conn_write_trailer(c, name, nl, v, vl);
        } else {
          e = LH_EUSER_HEADER;
        }
        lua_pop(L, 2);
      } else {
        e = LH_EUSER_HEADER;
      }
      lua_pop(L, 1);
    }
    if (e) lua_pop(L, 1);
  }
  if (!e) e = lh_conn_write_end(c);
  if (e) return lh_raise(L, e, e == LH_EUSER_BODY ? "body shorter than its content-length" : NULL);
  return 0;
}

/* the handler raised the value at L's index i: report it, and answer 500
 * (or the parse error's status) when nothing was sent yet */
void lh_req_fail(lua_State *L, lh_req_t *r, int i) {
  int status = 500;
  const char *msg = NULL;
  int code = LH_EUSER_SERVICE;
  i = lua_absindex(L, i);
  if (lua_istable(L, i)) {
    lua_getfield(L, i, "kind");
    lua_getfield(L, i, "code");
    const char *k = lua_tostring(L, -2);
    if (lua_isinteger(L, -1)) code = (int)lua_tointeger(L, -1);
    int reported = 0; /* body errors were reported where they happened */
    if (k && !strcmp(k, "parse")) status = lh_error_status(code), reported = 1;
    if (k && (!strcmp(k, "closed") || !strcmp(k, "canceled") || !strcmp(k, "incomplete")))
      status = 0, reported = 1;
    lua_pop(L, 2);
    if (luaL_callmeta(L, i, "__tostring")) msg = lua_tostring(L, -1);
    if (!reported) lh_report(r->srv, LH_EUSER_SERVICE, msg ? msg : "handler raised an error", r);
  } else {
    msg = lua_tostring(L, i);
    lh_report(r->srv, LH_EUSER_SERVICE, msg ? msg : "handler raised an error", r);
  }
  if (!r->sc || r->upgraded) return;
  lh_conn_t *c = &lh_sconn_disp(r->sc)->conn;
  lh_conn_head_abort(c); /* a head the error cut short */
  if (c->writing == LH_WRITING_INIT && status) {
    if (status != 500) lh_conn_disable_keep_alive(c);
    respond_empty(c, status);
  } else if (c->writing != LH_WRITING_KEEPALIVE) {
    lh_conn_close(c);
  }
}

/* fail(req, err): for handlers run by Lua code */
static int l_fail(lua_State *L) {
  lh_req_t *r = check_req(L, 1);
  lh_req_fail(L, r, 2);
  return 0;
}

/* --- server object --- */

static lh_lsrv_t *check_server(lua_State *L, int i) { return luaL_checkudata(L, i, SERVER_MT); }

static int opt_bool(lua_State *L, int t, const char *k, int def) {
  int ty = lua_getfield(L, t, k);
  int v = ty == LUA_TNIL ? def : lua_toboolean(L, -1);
  lua_pop(L, 1);
  return v;
}

/* listen(opts): opts already checked by lhyper/init.lua */
static int l_listen(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lh_lstate_t *st = lh_state(L);
  lh_server_opts_t o;
  memset(&o, 0, sizeof o);
  o.conn.max_buf_size = (uint32_t)lh_opt_number(L, 1, "max_buf_size", 400 * 1024);
  o.conn.max_headers = (uint32_t)lh_opt_number(L, 1, "max_headers", 100);
  o.conn.max_target = (uint32_t)lh_opt_number(L, 1, "max_target", 8192);
  o.conn.keep_alive = opt_bool(L, 1, "keep_alive", 1);
  o.conn.half_close = opt_bool(L, 1, "half_close", 0);
  o.conn.title_case = opt_bool(L, 1, "title_case_headers", 0);
  o.conn.date_header = opt_bool(L, 1, "date_header", 1);
  o.backlog = (int)lh_opt_number(L, 1, "backlog", 511);
  o.reuseport = opt_bool(L, 1, "reuseport", 0);
  o.pipeline_flush = opt_bool(L, 1, "pipeline_flush", 0);
  o.max_connections = (uint32_t)lh_opt_number(L, 1, "max_connections", 0);
  o.header_read_timeout = lh_opt_number(L, 1, "header_read_timeout", 30);
  o.idle_timeout = lh_opt_number(L, 1, "idle_timeout", 60);
  lua_getfield(L, 1, "host");
  const char *host = luaL_optstring(L, -1, "127.0.0.1");
  int port = (int)lh_opt_number(L, 1, "port", 8080);

  lh_lsrv_t *s = lua_newuserdatauv(L, sizeof *s, 0);
  memset(s, 0, sizeof *s);
  s->st = st;
  s->self_ref = s->handler_ref = s->main_ref = s->on_error_ref = LUA_NOREF;
  s->memo.anchor_ref = LUA_NOREF;
  s->memo.misses = LH_MEMO_PATIENCE; /* the first response is kept */
  s->closed = 1;
  luaL_setmetatable(L, SERVER_MT);
  /* the kept head's strings, filled in place (lreq.c memo_keep) */
  lua_createtable(L, 2 * LH_MEMO_FIELDS, 0);
  for (int i = 1; i <= 2 * LH_MEMO_FIELDS; i++) {
    lua_pushboolean(L, 0);
    lua_rawseti(L, -2, i);
  }
  s->memo.anchor_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  s->max_in_flight = (uint32_t)lh_opt_number(L, 1, "max_in_flight", 0);
  lua_getfield(L, 1, "handler");
  luaL_checktype(L, -1, LUA_TFUNCTION);
  s->handler_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  int ty = lua_getfield(L, 1, "on_error");
  if (ty == LUA_TFUNCTION) s->on_error_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  else {
    if (ty == LUA_TBOOLEAN && !lua_toboolean(L, -1)) s->on_error_ref = LUA_REFNIL;
    lua_pop(L, 1);
  }
  lh_server_t *srv;
  int r = lh_server_listen(st->loop, host, port, &o, &hooks, s, &srv);
  if (r) return lh_push_fail(L, r, NULL);
  s->srv = srv;
  s->closed = 0;
  s->port = lh_server_port(srv);
  lua_pushvalue(L, -1);
  s->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pushvalue(L, -1);
  lua_rawgeti(L, LUA_REGISTRYINDEX, s->handler_ref);
  lua_rawgeti(L, LUA_REGISTRYINDEX, st->req_mt);
  lua_pushcclosure(L, req_main, 3);
  s->main_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return 1;
}

static int server_close(lua_State *L) {
  lh_lsrv_t *s = check_server(L, 1);
  double grace = luaL_optnumber(L, 2, 10);
  if (s->srv) lh_server_close(s->srv, grace);
  return 0;
}

static int server_index(lua_State *L) {
  lh_lsrv_t *s = check_server(L, 1);
  const char *k = luaL_checkstring(L, 2);
  if (!strcmp(k, "port")) lua_pushinteger(L, s->port);
  else if (!strcmp(k, "connections")) lua_pushinteger(L, s->srv ? (lua_Integer)lh_server_connections(s->srv) : 0);
  else if (!strcmp(k, "in_flight")) lua_pushinteger(L, s->in_flight);
  else if (!strcmp(k, "closed")) lua_pushboolean(L, s->closed);
  else {
    lua_pushvalue(L, 2);
    lua_rawget(L, lua_upvalueindex(1));
  }
  return 1;
}

static int server_gc(lua_State *L) {
  lh_lsrv_t *s = check_server(L, 1);
  luaL_unref(L, LUA_REGISTRYINDEX, s->handler_ref);
  if (s->on_error_ref != LUA_REFNIL) luaL_unref(L, LUA_REGISTRYINDEX, s->on_error_ref);
  luaL_unref(L, LUA_REGISTRYINDEX, s->memo.anchor_ref);
  s->handler_ref = s->on_error_ref = s->memo.anchor_ref = LUA_NOREF;
  s->memo.valid = 0;
  free(s->waiting);
  s->waiting = NULL;
  return 0;
}

static int server_tostring(lua_State *L) {
  lh_lsrv_t *s = check_server(L, 1);
  lua_pushfstring(L, "lhyper.server (port %d%s)", s->port, s->closed ? ", closed" : "");
  return 1;
}

static const luaL_Reg server_methods[] = {{"close", server_close}, {NULL, NULL}};

static const luaL_Reg svc_funcs[] = {
  {"listen", l_listen}, {"respond", l_respond}, {"write", l_write},
  {"finish", l_finish}, {"fail", l_fail},       {NULL, NULL}};

void lh_svc_open(lua_State *L) {
  luaL_newmetatable(L, SERVER_MT);
  luaL_newlib(L, server_methods);
  lua_pushcclosure(L, server_index, 1);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, server_gc);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, server_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pop(L, 1);
  luaL_newlib(L, svc_funcs);
  lua_setfield(L, LUA_REGISTRYINDEX, "lhyper.svc_funcs");
}

/* req_main answers what the handler returns; this is for a handler (or
 * that answer) that raised */
void lh_req_raised(lua_State *L, lh_task_t *t) {
  lh_req_t *r = t->req;
  lua_State *co = t->co;
  /* keep lhyper error objects; give the rest a traceback */
  if (lua_type(co, -1) == LUA_TTABLE) {
    lh_req_fail(co, r, -1);
  } else {
    const char *m = lua_tostring(co, -1);
    luaL_traceback(L, co, m ? m : "(error object is not a string)", 0);
    lh_req_fail(L, r, -1);
    lua_pop(L, 1);
  }
}
