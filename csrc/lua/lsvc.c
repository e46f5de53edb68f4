/* The service glue: lhyper.server objects (listen, close, the on_error
 * report, max_in_flight) and the dispatcher's service for them, which
 * runs each request's handler in a coroutine (req_main) and hands the
 * dispatcher's events to the request (lreq.c). */
#include "lsvc.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llayer.h"
#include "lreq.h"
#include "ltls.h"
#include "tuning.h"
#include "workers.h"

#define SERVER_MT "lhyper.server"

typedef struct lh_lsrv {
  lh_req_host_t host;    /* first: what its requests need of it (kept head, report) */
  lh_server_t *srv;      /* NULL once closed and done */
  lh_lstate_t *st;
  int self_ref;          /* anchors the server userdata while it runs */
  int handler_ref;
  int main_ref;          /* the requests' thread body (req_main) with its upvalues */
  int on_error_ref;      /* LUA_NOREF: one line on stderr; LUA_REFNIL: silent */
  int sni_ref;           /* TLS: name -> context function, LUA_NOREF when none */
  uint32_t in_flight;    /* running handlers */
  uint32_t max_in_flight;/* 0: no limit */
  lh_sconn_t **waiting;  /* connections held back by max_in_flight (FIFO ring) */
  uint32_t wcap, whead, wlen;
  int port;
  double drain_delay;    /* server:drain: seconds between not ready and the listener closing */
  double drain_idle;     /* draining: an idle connection's last window */
  lh_waitq_t done_q;     /* tasks in server:wait() */
  unsigned closed : 1;
  uint64_t bytes_in, bytes_out; /* the server's totals once it is done */
  unsigned not_ready : 1;/* server:drain was called: ready_path answers 503 */
} lh_lsrv_t;

/* A connection's user data is its request in progress, or, once C code
 * that took an upgraded stream let go of the request (lh_svc_keep_raw),
 * that taker's lh_raw_t, marked by its lowest bit (both are at least
 * 8-byte aligned) */
static lh_req_t *conn_req(lh_sconn_t *sc) {
  void *p = *lh_sconn_udata(sc);
  return ((uintptr_t)p & 1) ? NULL : p;
}

static lh_raw_t *conn_raw(lh_sconn_t *sc) {
  uintptr_t p = (uintptr_t)*lh_sconn_udata(sc);
  return (p & 1) ? (lh_raw_t *)(p & ~(uintptr_t)1) : NULL;
}

/* --- error reporting (the on_error option) --- */

typedef struct {
  lh_lsrv_t *s;
  const lh_report_t *rep;
  const lh_req_t *r;
} report_ctx;

/* the error on_error gets: the raised value (at index vi of L, when the
 * report has one) when it is an error object, else one made from the code
 * and message, with a raised value that is not a string as its cause */
static void push_report_error(lua_State *L, const lh_report_t *rep, int vi) {
  if (rep->vL) {
    lua_pushvalue(L, vi);
    if (lh_is_error(L, -1)) return;
    int raw = lua_gettop(L);
    const char *msg = rep->msg;
    if (!msg && lua_type(L, raw) == LUA_TSTRING) msg = lua_tostring(L, raw);
    if (!msg) msg = lua_pushfstring(L, "handler raised a %s value", luaL_typename(L, raw));
    lh_push_error(L, rep->code, msg);
    if (lua_type(L, raw) != LUA_TSTRING) {
      lua_pushvalue(L, raw);
      lua_setfield(L, -2, "cause");
    }
    lua_replace(L, raw);
    lua_settop(L, raw);
    return;
  }
  lh_push_error(L, rep->code, rep->msg);
}

/* info: method, target, remote_addr, remote_port, peer, status (the head
 * sent, if any), duration (seconds since the head arrived), phase */
static void push_report_info(lua_State *L, lh_lsrv_t *s, const lh_report_t *rep, const lh_req_t *r) {
  lua_createtable(L, 0, 8);
  lua_pushstring(L, rep->phase ? rep->phase : "connection");
  lua_setfield(L, -2, "phase");
  if (!r) return;
  lua_pushlstring(L, r->bytes + r->method.off, r->method.len);
  lua_setfield(L, -2, "method");
  lua_pushlstring(L, r->bytes + r->target.off, r->target.len);
  lua_setfield(L, -2, "target");
  if (r->status) {
    lua_pushinteger(L, r->status);
    lua_setfield(L, -2, "status");
  }
  lua_pushnumber(L, lh_loop_now(s->st->loop) - r->began);
  lua_setfield(L, -2, "duration");
  char addr[48];
  int port = r->sc ? lh_sconn_peer(r->sc, addr, sizeof addr) : 0;
  if (port > 0) {
    lua_pushstring(L, addr);
    lua_setfield(L, -2, "remote_addr");
    lua_pushinteger(L, port);
    lua_setfield(L, -2, "remote_port");
    lua_pushfstring(L, strchr(addr, ':') ? "[%s]:%d" : "%s:%d", addr, port);
    lua_setfield(L, -2, "peer");
  }
}

/* report_p(ctx, value) */
static int report_p(lua_State *L) {
  report_ctx *x = lua_touserdata(L, 1);
  lua_rawgeti(L, LUA_REGISTRYINDEX, x->s->on_error_ref);
  push_report_error(L, x->rep, 2);
  push_report_info(L, x->s, x->rep, x->r);
  lua_call(L, 2, 0);
  return 0;
}

/* one line on stderr (no on_error): "lhyper: GET /x: user_service error in
 * the handler (500): message" */
static void report_stderr(const lh_report_t *rep, const lh_req_t *r) {
  int code = rep->code;
  const char *kind = lh_err_kind(code) ? lh_err_kind(code) : "io";
  const char *msg = rep->msg;
  if (!msg && rep->vL && lua_type(rep->vL, rep->vi) == LUA_TSTRING) msg = lua_tostring(rep->vL, rep->vi);
  if (!msg && rep->vL && lua_istable(rep->vL, rep->vi)) {
    lua_pushliteral(rep->vL, "message"); /* an error object's */
    lua_rawget(rep->vL, rep->vi < 0 ? rep->vi - 1 : rep->vi);
    msg = lua_tostring(rep->vL, -1);
    lua_pop(rep->vL, 1);
  }
  if (!msg) msg = lh_strerror(code);
  if (!r) {
    if (rep->phase) fprintf(stderr, "lhyper: %s error in %s: %s\n", kind, rep->phase, msg);
    else fprintf(stderr, "lhyper: %s error: %s\n", kind, msg);
    return;
  }
  char status[16] = "";
  if (r->status) snprintf(status, sizeof status, " (%d)", r->status);
  fprintf(stderr, "lhyper: %.*s %.*s: %s error in %s%s: %s\n", (int)r->method.len,
          r->bytes + r->method.off, (int)r->target.len, r->bytes + r->target.off, kind,
          rep->phase, status, msg);
}

static void report(lh_lsrv_t *s, const lh_report_t *rep, const lh_req_t *r) {
  if (s && s->on_error_ref == LUA_REFNIL) return; /* on_error = false: silent */
  if (!s || s->on_error_ref == LUA_NOREF) {
    report_stderr(rep, r);
    return;
  }
  lua_State *L = s->st->L;
  report_ctx x = {s, rep, r};
  lua_pushcfunction(L, report_p);
  lua_pushlightuserdata(L, &x);
  if (rep->vL) {
    lua_pushvalue(rep->vL, rep->vi);
    if (rep->vL != L) lua_xmove(rep->vL, L, 1);
  } else {
    lua_pushnil(L);
  }
  if (lua_pcall(L, 2, 0, 0) != LUA_OK) {
    fprintf(stderr, "lhyper: on_error failed: %s\n", lua_isstring(L, -1) ? lua_tostring(L, -1) : "?");
    lua_pop(L, 1);
  }
}

/* a failure with no value: code and msg */
static void report_code(lh_lsrv_t *s, int code, const char *msg, const lh_req_t *r, const char *phase) {
  lh_report_t rep = {code, msg, NULL, 0, phase};
  report(s, &rep, r);
}

static void host_report(lh_req_host_t *h, const lh_report_t *rep, const lh_req_t *r) {
  report((lh_lsrv_t *)h, rep, r);
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
  lh_lsrv_t *s = lh_disp_data(d);
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

/* a request's task is over: its req answers what is left, and its slot
 * in max_in_flight frees */
static void req_done(lh_req_t *r) {
  lh_req_finish(r);
  if (r->counted) {
    lh_lsrv_t *s = (lh_lsrv_t *)r->host;
    r->counted = 0;
    s->in_flight--;
    wake_waiting(s);
  }
  if (r->watched || r->alog) lh_layer_ended(r); /* last: it may run Lua */
}

/* a request's task as the task runtime sees it */
static void task_raised(lua_State *L, lh_task_t *t) { lh_req_raised(L, lh_req_of_task(t)); }
static void task_finished(lh_task_t *t) { req_done(lh_req_of_task(t)); }
/* the request may finish and detach during a resume: its connection is
 * polled afterwards all the same */
static void *task_resuming(lh_task_t *t) { return lh_req_of_task(t)->sc; }
static void task_resumed(void *sc) {
  if (sc) lh_sconn_poll(sc);
}

/* a task under the request failed: the server reports it */
static void task_descendant_failed(lua_State *L, lh_task_t *root, int i, const char *text) {
  lh_req_report(lh_req_of_task(root), LH_EUSER_SERVICE, text, L, i, "task");
}

static const lh_task_ops_t req_task_ops = {
  .raised = task_raised,
  .descendant_failed = task_descendant_failed,
  .finished = task_finished,
  .resuming = task_resuming,
  .resumed = task_resumed,
};

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
  if (lua_gettop(co) != 5) lua_settop(co, 5);
  lh_req_answer(co, lh_req_of_task(lh_task_of(co)), 3);
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
    lh_req_t *r = lh_req_new(co, &s->host, x->sc, x->h, x->base, lua_upvalueindex(UP_REQ_MT),
                             lua_upvalueindex(UP_SERVER)); /* index 2 */
    lh_task_bind(&r->task, st, co, x->ref, &req_task_ops);
    r->began = lh_loop_now(st->loop);
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
    if (!lh_tuning.next_msg || r->upgraded || !r->sc || s->wlen || r->task.owned) return 0;
    lh_disp_t *d = lh_sconn_disp(x->sc);
    if (lh_disp_buffered(d) == 0) return 0;
    req_done(r);
    if (!lh_disp_next_msg(d, &x->h, &x->base)) return 0; /* the task ends as usual */
    /* the thread goes on with the next request: this one's task is over */
    lh_task_unbind(&r->task);
    x->r = NULL; /* until the next req is made: see svc_recv_msg */
    lua_settop(co, 1);
  }
}

/* No protected call per request: the thread comes from the pool (made
 * under protection when the pool is empty) and everything else runs inside
 * lua_resume, which protects itself. */
static int svc_recv_msg(lh_disp_t *d, lh_head_t *h, const char *base) {
  lh_lsrv_t *s = lh_disp_data(d);
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

/* the connection's events for a taker that keeps it alone; after
 * LH_RAW_GONE, the last, the connection no longer points to it */
static void raw_event(lh_sconn_t *sc, int ev) {
  lh_raw_t *raw = conn_raw(sc);
  if (!raw) return;
  if (ev == LH_RAW_GONE) *lh_sconn_udata(sc) = NULL;
  raw->event(raw, ev);
}

static void svc_body_ready(lh_disp_t *d) {
  lh_sconn_t *sc = lh_sconn_from_disp(d);
  lh_req_t *r = conn_req(sc);
  if (r) lh_req_wake(r, LH_WAIT_BODY);
  else raw_event(sc, LH_RAW_READABLE);
}

static void svc_write_ready(lh_disp_t *d) {
  lh_sconn_t *sc = lh_sconn_from_disp(d);
  lh_req_t *r = conn_req(sc);
  if (r) lh_req_wake(r, LH_WAIT_WRITE);
  else raw_event(sc, LH_RAW_WRITABLE);
}

static void svc_on_error(lh_disp_t *d, int err) {
  lh_lsrv_t *s = lh_disp_data(d);
  lh_sconn_t *sc = lh_sconn_from_disp(d);
  if (conn_raw(sc)) {
    raw_event(sc, LH_RAW_GONE);
    return;
  }
  lh_req_t *r = conn_req(sc);
  if (r) {
    /* a body cut short is the server's to report; a client that left
     * after a full request is not an error */
    if (err == LH_EINCOMPLETE && !r->upgraded) lh_req_report(r, err, NULL, NULL, 0, NULL);
    lh_req_drop(r);
    return;
  }
  /* a message that never reached a handler: bad input, a slow client, a
   * failed TLS handshake (with OpenSSL's reason) */
  const char *k = lh_err_kind(err);
  if (k && (!strcmp(k, "parse") || !strcmp(k, "header_timeout") || !strcmp(k, "incomplete")))
    report_code(s, err, NULL, NULL, NULL);
  else if (k && !strcmp(k, "tls"))
    report_code(s, err, lh_sconn_why(lh_sconn_from_disp(d)), NULL, NULL);
}

static const lh_service_t lua_service = {
  .recv_msg = svc_recv_msg,
  .body_ready = svc_body_ready,
  .write_ready = svc_write_ready,
  .poll_ready = svc_poll_ready,
  .on_error = svc_on_error,
};

static void conn_closed(lh_sconn_t *sc) {
  lh_lsrv_t *s = lh_sconn_data(sc);
  unwait(s, sc);
  lh_req_t *r = conn_req(sc);
  if (r) lh_req_drop(r);
  else raw_event(sc, LH_RAW_GONE);
}

/* the server began to close or drain: an upgraded connection is told */
static void conn_shutdown(lh_sconn_t *sc) {
  lh_req_t *r = conn_req(sc);
  if (r) lh_req_shutdown(r);
  else raw_event(sc, LH_RAW_SHUTDOWN);
}

void lh_svc_report(lua_State *L, int si, int vi, const char *phase) {
  lh_lsrv_t *s = luaL_testudata(L, si, SERVER_MT);
  lh_report_t rep = {LH_EUSER_SERVICE, NULL, L, vi, phase};
  report(s, &rep, NULL);
}

/* --- an upgraded connection kept by its taker alone (lh_svc_keep_raw) --- */

static lh_disp_t *kept_disp(lh_raw_t *raw) { return lh_sconn_disp(raw->conn); }

static void kept_kick(lh_raw_t *raw) {
  lh_disp_t *d = lh_sconn_disp(raw->conn);
  if (d) lh_disp_kick(d);
}

static void kept_close(lh_raw_t *raw) {
  lh_sconn_t *sc = raw->conn;
  *lh_sconn_udata(sc) = NULL;
  lh_disp_t *d = lh_sconn_disp(sc);
  if (d) lh_disp_raw_close(d); /* queued bytes still go out */
  lh_sconn_defer_poll(sc);
}

static void kept_release(lh_raw_t *raw) {
  lh_sconn_t *sc = raw->conn;
  if (conn_raw(sc) == raw) *lh_sconn_udata(sc) = NULL;
}

static int kept_shutting(lh_raw_t *raw) {
  lh_lsrv_t *s = lh_sconn_data(raw->conn);
  return s->host.shutting;
}

static const lh_raw_ops_t kept_ops = {kept_disp, kept_kick, kept_close, kept_release, NULL,
                                      kept_shutting};

int lh_svc_keep_raw(lh_req_t *r, lh_raw_t *raw) {
  lh_sconn_t *sc = r->sc;
  if (!sc || r->raw != raw || ((uintptr_t)raw & 1)) return LH_ECLOSED;
  r->raw = NULL;
  lh_req_detach(r); /* the request no longer sees its connection */
  *lh_sconn_udata(sc) = (void *)((uintptr_t)raw | 1);
  raw->ops = &kept_ops;
  raw->conn = sc;
  return 0;
}

static void server_done(lh_server_t *srv) {
  lh_lsrv_t *s = lh_server_data(srv);
  lua_State *L = s->st->L;
  lh_server_bytes(srv, &s->bytes_in, &s->bytes_out); /* kept for server.bytes_in/out */
  s->srv = NULL;
  s->closed = 1;
  free(s->waiting);
  s->waiting = NULL;
  s->wlen = s->wcap = 0;
  luaL_unref(L, LUA_REGISTRYINDEX, s->self_ref);
  /* req_main's closure holds the server too */
  luaL_unref(L, LUA_REGISTRYINDEX, s->main_ref);
  s->self_ref = s->main_ref = LUA_NOREF;
  lh_waitq_broadcast(&s->done_q);
}

static lh_lsrv_t *check_server(lua_State *L, int i) { return luaL_checkudata(L, i, SERVER_MT); }

static const lh_server_hooks_t hooks = {
  .svc = &lua_service,
  .conn_closed = conn_closed,
  .server_done = server_done,
  .conn_shutdown = conn_shutdown,
};

/* --- TLS: the server's context and its SNI function --- */

/* the context for the name a client asks for: the server's sni function
 * (lhyper/init.lua wraps the user's, caching contexts by certificate)
 * returns one, nil for the default, or raises (the handshake fails) */
static lh_tls_ctx_t *svc_sni(void *arg, const char *name, int *fail) {
  lh_lsrv_t *s = arg;
  if (s->sni_ref == LUA_NOREF || !s->st->loop) return NULL;
  lua_State *L = s->st->L;
  int top = lua_gettop(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, s->sni_ref);
  lua_pushstring(L, name);
  lh_tls_ctx_t *ctx = NULL;
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
    report_code(s, LH_ETLS_CONFIG, lh_error_text(L, -1), NULL, NULL);
    *fail = 1;
  } else if (!lua_isnil(L, -1)) {
    /* init.lua's wrapper gives a context; anything else refuses the name */
    if ((ctx = lh_ltls_test(L, -1))) lh_tls_ctx_ref(ctx);
    else *fail = 1;
  }
  lua_settop(L, top);
  return ctx;
}

/* the server's TLS from now on: context at ctx_idx (anchored in the
 * server's user value), SNI function at sni_idx or none */
static int set_tls(lua_State *L, lh_lsrv_t *s, int self, int ctx_idx, int sni_idx) {
  lh_tls_ctx_t *ctx = lh_ltls_check(L, ctx_idx);
  int r = lh_server_set_tls(s->srv, ctx);
  if (r) return r;
  luaL_unref(L, LUA_REGISTRYINDEX, s->sni_ref);
  s->sni_ref = LUA_NOREF;
  if (lua_isfunction(L, sni_idx)) {
    lua_pushvalue(L, sni_idx);
    s->sni_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  /* the server outlives every handshake over its contexts (server_done) */
  lh_tls_ctx_set_sni(ctx, svc_sni, s);
  lua_pushvalue(L, ctx_idx);
  lua_setiuservalue(L, self, 1);
  return 0;
}

/* server:_set_tls(ctx, sni) -> true | nil, err, kind (certificates reloaded) */
static int server_set_tls(lua_State *L) {
  lh_lsrv_t *s = check_server(L, 1);
  lh_ltls_check(L, 2);
  if (!s->srv || s->closed) return lh_push_fail(L, LH_ECLOSED, "the server is closed");
  if (lua_getiuservalue(L, 1, 1) == LUA_TNIL)
    return lh_push_fail(L, LH_ETLS_CONFIG, "not a TLS server (it was made without tls)");
  lua_pop(L, 1);
  int r = set_tls(L, s, 1, 2, 3);
  if (r) return lh_push_fail(L, r, NULL);
  lua_pushboolean(L, 1);
  return 1;
}

/* --- server object --- */

static int opt_bool(lua_State *L, int t, const char *k, int def) {
  int ty = lua_getfield(L, t, k);
  int v = ty == LUA_TNIL ? def : lua_toboolean(L, -1);
  lua_pop(L, 1);
  return v;
}

/* listen(opts, tls_ctx, sni): opts already checked by lhyper/init.lua;
 * tls_ctx (lhyper.tls_ctx) and sni (function) for a TLS server, or nil */
static int l_listen(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 3);
  if (!lua_isnil(L, 2)) lh_ltls_check(L, 2);
  lh_lstate_t *st = lh_state(L);
  lh_server_opts_t o;
  memset(&o, 0, sizeof o);
  o.conn.max_buf_size = (uint32_t)lh_opt_uint(L, 1, "max_buf_size", 400 * 1024, UINT32_MAX);
  o.conn.max_headers = (uint32_t)lh_opt_uint(L, 1, "max_headers", 100, UINT32_MAX);
  o.conn.max_target = (uint32_t)lh_opt_uint(L, 1, "max_target", 8192, UINT32_MAX);
  o.conn.keep_alive = opt_bool(L, 1, "keep_alive", 1);
  o.conn.half_close = opt_bool(L, 1, "half_close", 0);
  o.conn.title_case = opt_bool(L, 1, "title_case_headers", 0);
  o.conn.date_header = opt_bool(L, 1, "date_header", 1);
  o.backlog = (int)lh_opt_uint(L, 1, "backlog", 511, INT_MAX);
  o.reuseport = opt_bool(L, 1, "reuseport", 0);
  o.conn.pipeline_flush = opt_bool(L, 1, "pipeline_flush", 0);
  o.max_connections = (uint32_t)lh_opt_uint(L, 1, "max_connections", 0, UINT32_MAX);
  o.header_read_timeout = lh_opt_number(L, 1, "header_read_timeout", 30);
  o.idle_timeout = lh_opt_number(L, 1, "idle_timeout", 60);
  lua_getfield(L, 1, "host");
  const char *host = luaL_optstring(L, -1, "127.0.0.1");
  int port = (int)lh_opt_uint(L, 1, "port", 8080, 65535);

  lh_lsrv_t *s = lua_newuserdatauv(L, sizeof *s, 1); /* user value: the TLS context */
  memset(s, 0, sizeof *s);
  s->st = st;
  s->self_ref = s->handler_ref = s->main_ref = s->on_error_ref = s->sni_ref = LUA_NOREF;
  int self = lua_gettop(L);
  s->host.memo.anchor_ref = LUA_NOREF;
  s->host.report = host_report;
  s->closed = 1;
  luaL_setmetatable(L, SERVER_MT);
  lh_head_memo_init(L, &s->host.memo);
  s->max_in_flight = (uint32_t)lh_opt_uint(L, 1, "max_in_flight", 0, UINT32_MAX);
  s->host.stream_idle = lh_opt_number(L, 1, "stream_idle_timeout", 300);
  lua_getfield(L, 1, "handler");
  luaL_checktype(L, -1, LUA_TFUNCTION);
  s->handler_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  int ty = lua_getfield(L, 1, "on_error");
  if (ty == LUA_TFUNCTION) s->on_error_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  else {
    if (ty == LUA_TBOOLEAN && !lua_toboolean(L, -1)) s->on_error_ref = LUA_REFNIL;
    lua_pop(L, 1);
  }
  s->drain_delay = lh_opt_number(L, 1, "drain_delay", 0);
  s->drain_idle = lh_opt_number(L, 1, "drain_idle", 1);
  /* a listener given (fd), or handed over (LISTEN_FDS, in order), or ours */
  int fd = -1, inherited = 0;
  if (lua_getfield(L, 1, "fd") == LUA_TNUMBER) fd = (int)lua_tointeger(L, -1);
  else inherited = (fd = lh_inherited_next()) >= 0;
  lua_pop(L, 1);
  lh_server_t *srv;
  int r = fd >= 0 ? lh_server_adopt(st->loop, fd, &o, &hooks, s, &srv)
                  : lh_server_listen(st->loop, host, port, &o, &hooks, s, &srv);
  if (r) return lh_push_fail(L, r, fd >= 0 ? lua_pushfstring(L, "listener fd %d: %s", fd, lh_strerror(r)) : NULL);
  if (inherited && port != 0 && lh_server_port(srv) != port) {
    int got = lh_server_port(srv);
    lh_server_close(srv, 0);
    return lh_push_fail(L, -EINVAL, lua_pushfstring(L, "the inherited listener (fd %d) is on port %d, not %d",
                                                      fd, got, port));
  }
  s->srv = srv;
  /* before the loop runs again: no connection is accepted plain */
  if (!lua_isnil(L, 2) && (r = set_tls(L, s, self, 2, 3))) {
    lh_server_close(srv, 0);
    return lh_push_fail(L, r, NULL);
  }
  s->closed = 0;
  s->port = lh_server_port(srv);
  lua_pushvalue(L, -1);
  s->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pushvalue(L, -1);
  lua_rawgeti(L, LUA_REGISTRYINDEX, s->handler_ref);
  lh_req_push_mt(L);
  lua_pushcclosure(L, req_main, 3);
  s->main_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return 1;
}

static int server_close(lua_State *L) {
  lh_lsrv_t *s = check_server(L, 1);
  double grace = luaL_optnumber(L, 2, 10);
  s->host.shutting = 1;
  if (s->srv) lh_server_close(s->srv, grace);
  return 0;
}

/* server:_drain(grace) (server:drain in init.lua): not ready at once, the
 * listener closes after drain_delay, keep-alive ends gently, everything
 * ends after grace */
static int server_drain(lua_State *L) {
  lh_lsrv_t *s = check_server(L, 1);
  double grace = luaL_optnumber(L, 2, 10);
  s->not_ready = 1;
  s->host.shutting = 1;
  if (s->srv) lh_server_drain(s->srv, s->drain_delay, s->drain_idle, grace, 0);
  return 0;
}

/* server:_retire(grace) (workers): a new generation took over the
 * listener: stop accepting now, end the rest as drain does */
static int server_retire(lua_State *L) {
  lh_lsrv_t *s = check_server(L, 1);
  double grace = luaL_optnumber(L, 2, 10);
  s->host.shutting = 1;
  if (s->srv) lh_server_drain(s->srv, 0, s->drain_idle, grace, 1);
  return 0;
}

lh_server_t *lh_svc_server(lua_State *L, int i) { return check_server(L, i)->srv; }
/* <close>: as server:close() with its default grace */
static int server_close_tbc(lua_State *L) {
  lh_lsrv_t *s = check_server(L, 1);
  s->host.shutting = 1;
  if (s->srv) lh_server_close(s->srv, 10);
  return 0;
}

static int server_wait_k(lua_State *L, int status, lua_KContext ctx) {
  lh_lsrv_t *s = lua_touserdata(L, 1);
  lh_task_t *t = lh_task_current(L);
  if (s->closed) {
    lh_waitq_leave(t);
    lua_pushboolean(L, 1);
    return 1;
  }
  if (t->expired) {
    lh_waitq_leave(t);
    return lh_push_fail(L, LH_ETIMEOUT, "server:wait timed out");
  }
  return lh_waitq_again(L, server_wait_k);
}

/* server:wait([timeout]) -> true once the server is closed and its last
 * connection gone, or nil, err, "timeout" */
static int server_wait(lua_State *L) {
  lh_lsrv_t *s = check_server(L, 1);
  double timeout = luaL_optnumber(L, 2, -1);
  lua_settop(L, 1);
  if (s->closed) {
    lua_pushboolean(L, 1);
    return 1;
  }
  if (timeout == 0) return lh_push_fail(L, LH_ETIMEOUT, "server:wait timed out");
  return lh_waitq_wait(L, &s->done_q, timeout, server_wait_k);
}

static int server_index(lua_State *L) {
  lh_lsrv_t *s = check_server(L, 1);
  const char *k = luaL_checkstring(L, 2);
  if (!strcmp(k, "port")) lua_pushinteger(L, s->port);
  else if (!strcmp(k, "connections")) lua_pushinteger(L, s->srv ? (lua_Integer)lh_server_connections(s->srv) : 0);
  else if (!strcmp(k, "in_flight")) lua_pushinteger(L, s->in_flight);
  else if (!strcmp(k, "closed")) lua_pushboolean(L, s->closed);
  else if (!strcmp(k, "bytes_in") || !strcmp(k, "bytes_out")) {
    uint64_t in = s->bytes_in, out = s->bytes_out;
    if (s->srv) lh_server_bytes(s->srv, &in, &out);
    lua_pushinteger(L, (lua_Integer)(k[6] == 'i' ? in : out));
  }
  else if (!strcmp(k, "ready")) lua_pushboolean(L, !s->closed && !s->not_ready);
  else {
    lua_pushvalue(L, 2);
    lua_rawget(L, lua_upvalueindex(1));
  }
  return 1;
}

static int server_gc(lua_State *L) {
  lh_lsrv_t *s = check_server(L, 1);
  luaL_unref(L, LUA_REGISTRYINDEX, s->handler_ref);
  luaL_unref(L, LUA_REGISTRYINDEX, s->sni_ref);
  if (s->on_error_ref != LUA_REFNIL) luaL_unref(L, LUA_REGISTRYINDEX, s->on_error_ref);
  lh_head_memo_free(L, &s->host.memo);
  s->handler_ref = s->on_error_ref = s->sni_ref = LUA_NOREF;
  free(s->waiting);
  s->waiting = NULL;
  lh_waitq_drop(&s->done_q);
  return 0;
}

static int server_tostring(lua_State *L) {
  lh_lsrv_t *s = check_server(L, 1);
  lua_pushfstring(L, "lhyper.server (port %d%s)", s->port, s->closed ? ", closed" : "");
  return 1;
}

static const luaL_Reg server_methods[] = {
  {"close", server_close},   {"wait", server_wait}, {"_drain", server_drain},
  {"_retire", server_retire}, {"_set_tls", server_set_tls}, {NULL, NULL}};

void lh_svc_open(lua_State *L, int mod) {
  if (luaL_newmetatable(L, SERVER_MT)) {
    luaL_newlib(L, server_methods);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, "__methods");
    lua_pushcclosure(L, server_index, 1);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, server_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, server_close_tbc);
    lua_setfield(L, -2, "__close");
    lua_pushcfunction(L, server_tostring);
    lua_setfield(L, -2, "__tostring");
  }
  lua_pop(L, 1);
  lua_pushcfunction(L, l_listen);
  lua_setfield(L, mod, "listen");
}
