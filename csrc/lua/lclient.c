/* The client's Lua side: client objects, lhyper.res (one exchange: the
 * request written, the response read) and the service the dispatcher calls
 * in the client role. A task waiting on an exchange is resumed only from
 * loop callbacks; its thread is anchored in the res while it waits. */
#include "lclient.h"

#include <errno.h>
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "lheaders.h"
#include "ltask.h"
#include "ltls.h"

#define CLIENT_MT "lhyper.client"
#define RES_MT "lhyper.res"

/* what a task waits for on an exchange */
enum { EX_WAIT_NONE = 0, EX_WAIT_HEAD, EX_WAIT_BODY, EX_WAIT_WRITE, EX_WAIT_CONTINUE };
/* user values of a res */
enum { UV_CLIENT = 1, UV_WAITER, UV_HEADERS, UV_TRAILERS, UV_DECODE, EX_NUV = 5 };

typedef struct {
  lh_client_t *cl;         /* NULL once closed */
  lh_lstate_t *st;
} lh_lclient_t;

typedef struct {
  lh_own_t own;            /* in the list of the task that sent the request */
  lh_cconn_t *cc;          /* NULL once let go or the connection is gone */
  lua_State *waiter;       /* the thread of the waiting task; anchored in UV_WAITER */
  lh_task_t *task;         /* the task it ran when it began to wait */
  int wait;                /* EX_WAIT_* while a task waits, cleared when woken */
  int err;                 /* first failure, 0 if none */
  const char *why;         /* its message when not the code's own */
  char *why_copy;          /* malloc: a message that dies with its connection (TLS), copied */
  const char *tls_version; /* https: OpenSSL's static names, set with the head; NULL for http */
  const char *tls_cipher;
  unsigned tls_resumed : 1;
  unsigned tls_alpn : 1;     /* ALPN agreed on http/1.1 */
  int status;
  int local_port;
  uint8_t minor;
  unsigned head_ready : 1;   /* final response head received */
  unsigned body_done : 1;    /* response body read to its end */
  unsigned req_done : 1;     /* request fully written (or its body given up) */
  unsigned continued : 1;    /* 100 Continue received */
  unsigned cont_armed : 1;   /* the Expect wait is timed */
  unsigned cont_expired : 1; /* ... and it ran out: the body goes anyway */
  unsigned reused : 1;       /* the connection came from the pool */
  unsigned body_read : 1;    /* a res:body() iterator reached the end */
  unsigned upgraded : 1;     /* a 101 came: the connection is a raw stream, kept
                              * until the res is closed or hands it on (lh_res_take) */
  lh_raw_t *raw;             /* the taker of an upgraded connection, until it lets go */
  char *head;              /* malloc: response fields, then head bytes */
  lh_field_t *fields;
  char *hbytes;
  uint32_t nfields;
  lh_span_t reason;
} lh_ex_t;

static lh_ex_t *check_ex(lua_State *L, int i) { return luaL_checkudata(L, i, RES_MT); }

static lh_lclient_t *check_client(lua_State *L, int i) {
  return luaL_checkudata(L, i, CLIENT_MT);
}

/* --- exchange state --- */

/* the exchange lets go of its connection: back to the pool when both
 * messages are complete, closed otherwise */
static void ex_release(lh_ex_t *ex) {
  lh_cconn_t *cc = ex->cc;
  if (!cc) return;
  if (!ex->local_port) ex->local_port = lh_cconn_local_port(cc);
  ex->cc = NULL;
  lh_cconn_release(cc);
}

static void ex_maybe_done(lh_ex_t *ex) {
  if (ex->head_ready && ex->body_done && ex->req_done && !ex->upgraded) ex_release(ex);
}

/* a message from the connection (a TLS failure's reason) outlives it here */
static const char *ex_keep_why(lh_ex_t *ex, const char *why) {
  if (!why || !lh_err_kind(ex->err) || strcmp(lh_err_kind(ex->err), "tls")) return why;
  free(ex->why_copy);
  ex->why_copy = strdup(why);
  return ex->why_copy;
}

static void ex_fail(lh_ex_t *ex, int err, const char *why) {
  if (!ex->err) {
    ex->err = err;
    ex->why = why;
  }
  ex_release(ex);
}

/* resumes the task waiting on ex. ex may be collected once the task runs:
 * callers touch nothing of it afterwards. Threads are reused by later
 * tasks, so the task is checked too; should another one sit on the same
 * thread at the same address, it wakes spuriously and waits again (every
 * wait re-checks its exchange) */
static void ex_wake(lh_ex_t *ex) {
  if (ex->wait == EX_WAIT_NONE) return;
  ex->wait = EX_WAIT_NONE;
  lh_task_t *t = lh_task_of(ex->waiter);
  if (!t || t != ex->task || t->ending) {
    /* the task was cancelled while it waited: nobody will read this */
    ex_fail(ex, LH_ECANCELED, NULL);
    return;
  }
  if (t->wait == LH_WAIT_CLIENT) lh_task_resume(t);
}

/* the task that sent the request is over: the exchange ends with it (a
 * connection in the middle of a message is closed, not pooled) */
static void ex_own_close(lh_own_t *o) {
  lh_ex_t *ex = (lh_ex_t *)o;
  ex->wait = EX_WAIT_NONE;
  if (ex->cc && !(ex->head_ready && ex->body_done && ex->req_done)) ex_fail(ex, LH_ECANCELED, NULL);
  ex_release(ex);
}

/* The error object on top of L, of an exchange that failed with code, is
 * the upstream's: err.upstream = true and err.status 502 (504 when it timed
 * out), what a handler that raises it answers its own client (lreq.c
 * classify). Not for the caller's own mistakes (user_* kinds: a body that
 * does not match its length) or a lack of memory here */
static void mark_upstream(lua_State *L, int code) {
  const char *kind = lh_err_kind(code);
  if (code == LH_ENOMEM || (kind && !strncmp(kind, "user_", 5))) return;
  int timeout = code == LH_ETIMEOUT || code == LH_EHEADER_TIMEOUT ||
                code == -ETIMEDOUT; /* libuv's UV_ETIMEDOUT */
  lua_pushboolean(L, 1);
  lua_setfield(L, -2, "upstream");
  lua_pushinteger(L, timeout ? 504 : 502);
  lua_setfield(L, -2, "status");
}

/* nil, err, kind for the exchange's failure code (msg NULL: its own text) */
static int ex_fail_push(lua_State *L, int code, const char *msg) {
  lh_push_fail(L, code, msg);
  lua_pushvalue(L, -2);
  mark_upstream(L, code);
  lua_pop(L, 1);
  return 3;
}

/* raises the exchange's failure code as an error object */
static int ex_fail_raise(lua_State *L, int code, const char *msg) {
  lh_push_error(L, code, msg);
  mark_upstream(L, code);
  return lua_error(L);
}

static int ex_push_fail(lua_State *L, lh_ex_t *ex) {
  return ex_fail_push(L, ex->err ? ex->err : LH_ECLOSED, ex->why);
}

/* suspends the running task until the exchange at stack index idx moves */
static int ex_yield(lua_State *L, int idx, lh_ex_t *ex, int wait, lua_KFunction k) {
  lh_task_t *t = lh_task_current(L);
  if (!t) return luaL_error(L, "lhyper: a response can only be used inside an lhyper handler or task");
  if (ex->wait != EX_WAIT_NONE && ex->waiter != L)
    return luaL_error(L, "lhyper: another task is waiting on this response");
  lua_pushthread(L);
  lua_setiuservalue(L, idx, UV_WAITER);
  ex->waiter = L;
  ex->task = t;
  ex->wait = wait;
  if (ex->cc) lh_cconn_kick(ex->cc);
  return lh_task_yield(L, LH_WAIT_CLIENT, k);
}

/* --- the service: the dispatcher's calls in the client role --- */

static lh_ex_t *disp_ex(lh_disp_t *d) { return lh_cconn_udata(lh_cconn_from_disp(d)); }

static int svc_recv_msg(lh_disp_t *d, lh_head_t *h, const char *base) {
  lh_ex_t *ex = disp_ex(d);
  if (!ex) return LH_ECANCELED;
  if (h->status / 100 == 1 && h->status != 101) {
    /* interim: only 100 Continue matters, to an Expect wait */
    if (h->status == 100) ex->continued = 1;
    if (ex->wait == EX_WAIT_CONTINUE && ex->continued) ex_wake(ex);
    return 0;
  }
  size_t fsz = h->nfields * sizeof(lh_field_t);
  char *blk = malloc(fsz + h->len + 1);
  if (!blk) return LH_ENOMEM;
  free(ex->head);
  ex->head = blk;
  ex->fields = (lh_field_t *)blk;
  ex->hbytes = blk + fsz;
  if (fsz) memcpy(ex->fields, h->fields, fsz);
  memcpy(ex->hbytes, base, h->len);
  lh_headers_lower(ex->hbytes, ex->fields, h->nfields);
  ex->nfields = h->nfields;
  ex->reason = h->reason;
  ex->status = h->status;
  ex->minor = h->minor;
  ex->head_ready = 1;
  lh_tls_t *t = lh_cconn_tls(lh_cconn_from_disp(d));
  if (t) {
    size_t an;
    const char *alpn = lh_tls_alpn(t, &an);
    ex->tls_version = lh_tls_version(t);
    ex->tls_cipher = lh_tls_cipher(t);
    ex->tls_resumed = lh_tls_is_resumed(t) ? 1 : 0;
    ex->tls_alpn = alpn && an == 8 && !memcmp(alpn, "http/1.1", 8);
  }
  if (h->status == 101 && ex->req_done && lh_disp_upgrade(d) == 0) {
    /* RFC 9110 15.2.2: the connection speaks another protocol from here;
     * bytes after the head are that protocol's */
    ex->upgraded = 1;
    ex->body_done = 1;
  }
  if (lh_conn_is_read_done(lh_disp_conn(d))) ex->body_done = 1; /* HEAD, 204, 304, length 0 */
  ex_maybe_done(ex);
  if (ex->wait == EX_WAIT_HEAD || ex->wait == EX_WAIT_CONTINUE) ex_wake(ex);
  return 0;
}

static void svc_body_ready(lh_disp_t *d) {
  lh_ex_t *ex = disp_ex(d);
  if (ex && ex->raw) ex->raw->event(ex->raw, LH_RAW_READABLE);
  else if (ex && ex->wait == EX_WAIT_BODY) ex_wake(ex);
}

static void svc_write_ready(lh_disp_t *d) {
  lh_ex_t *ex = disp_ex(d);
  if (!ex) return;
  if (ex->raw) {
    ex->raw->event(ex->raw, LH_RAW_WRITABLE);
    return;
  }
  if (ex->wait == EX_WAIT_CONTINUE) {
    /* no 100 in time: the body goes anyway (RFC 9110 10.1.1) */
    ex->cont_expired = 1;
    ex_wake(ex);
  } else if (ex->wait == EX_WAIT_WRITE) {
    ex_wake(ex);
  }
}

static int svc_poll_ready(lh_disp_t *d) { return 1; }

static void svc_on_error(lh_disp_t *d, int err) {
  lh_cconn_t *cc = lh_cconn_from_disp(d);
  lh_ex_t *ex = lh_cconn_udata(cc);
  if (!ex) return;
  if (!ex->err) {
    ex->err = err;
    ex->why = ex_keep_why(ex, lh_cconn_why(cc));
  }
  if (ex->raw) ex->raw->event(ex->raw, LH_RAW_GONE);
  ex_wake(ex);
}

static const lh_service_t client_service = {
  .recv_msg = svc_recv_msg,
  .body_ready = svc_body_ready,
  .write_ready = svc_write_ready,
  .poll_ready = svc_poll_ready,
  .on_error = svc_on_error,
};

static void conn_closed(lh_cconn_t *cc) {
  lh_ex_t *ex = lh_cconn_udata(cc);
  if (!ex) return;
  ex->cc = NULL;
  if (!ex->err) ex->err = LH_ECLOSED;
  if (ex->raw) ex->raw->event(ex->raw, LH_RAW_GONE);
  ex_wake(ex);
}

static const lh_client_hooks_t hooks = {
  .svc = &client_service,
  .conn_closed = conn_closed,
};

/* --- an upgraded connection handed to C code (lh_raw_t, lraw.h) --- */

static lh_disp_t *raw_disp(lh_raw_t *raw) {
  lh_ex_t *ex = raw->conn;
  return ex->cc && !ex->err ? lh_cconn_disp(ex->cc) : NULL;
}

static void raw_kick(lh_raw_t *raw) {
  lh_ex_t *ex = raw->conn;
  if (ex->cc) lh_cconn_kick(ex->cc);
}

static void raw_close(lh_raw_t *raw) {
  lh_ex_t *ex = raw->conn;
  ex->raw = NULL;
  if (!ex->err) ex->err = LH_ECLOSED;
  ex_release(ex); /* not idle: the connection closes */
}

static void raw_release(lh_raw_t *raw) {
  lh_ex_t *ex = raw->conn;
  if (ex->raw == raw) ex->raw = NULL;
}

static const lh_raw_ops_t res_raw_ops = {raw_disp, raw_kick, raw_close, raw_release, NULL, NULL};

int lh_res_take(lua_State *L, int idx, lh_raw_t *raw) {
  lh_ex_t *ex = check_ex(L, idx);
  if (!ex->upgraded || !ex->cc || ex->err || ex->raw) return LH_ECLOSED;
  lh_own_leave(&ex->own); /* the taker answers for the connection now */
  ex->raw = raw;
  raw->ops = &res_raw_ops;
  raw->conn = ex;
  lh_cconn_set_timeouts(ex->cc, 0, 0);
  return 0;
}

/* --- requests --- */

/* fields: a flat array name, value, name, value... (checked by client.lua) */
static int write_fields(lua_State *L, int idx, lh_disp_t *d, int trailers) {
  lua_Integer n = luaL_len(L, idx);
  int r = 0;
  for (lua_Integer i = 1; !r && i < n; i += 2) {
    size_t nl, vl;
    lua_geti(L, idx, i);
    lua_geti(L, idx, i + 1);
    const char *name = lua_tolstring(L, -2, &nl);
    const char *v = lua_tolstring(L, -1, &vl);
    if (!name || !v) r = LH_EUSER_HEADER;
    else if (trailers) r = lh_disp_write_trailer(d, name, nl, v, vl);
    else r = lh_disp_head_field(d, name, nl, v, vl);
    lua_pop(L, 2);
  }
  return r;
}

/* a request as client.lua hands it over: the fields of its spec table */
typedef struct {
  const char *method, *host, *target;
  size_t ml, tl;
  int port;
  int expect;            /* Expect: 100-continue: the body waits for res:_continue */
  double timeout, read_timeout, connect_timeout; /* seconds, 0: none */
  lh_client_tls_t tls;   /* https: the context and the name to ask for; ctx NULL for http */
} send_spec_t;

/* the spec table at 2 into s; leaves its fields table at 3, its body at 4
 * and the strings s points to above them */
static void send_spec(lua_State *L, send_spec_t *s) {
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_settop(L, 2);
  lua_getfield(L, 2, "fields");
  luaL_argcheck(L, lua_istable(L, 3), 2, "fields: table expected");
  lua_getfield(L, 2, "body");
  lua_getfield(L, 2, "method");
  s->method = luaL_checklstring(L, -1, &s->ml);
  lua_getfield(L, 2, "host");
  s->host = luaL_checkstring(L, -1);
  lua_getfield(L, 2, "target");
  s->target = luaL_checklstring(L, -1, &s->tl);
  lua_getfield(L, 2, "port");
  s->port = (int)luaL_checkinteger(L, -1);
  s->timeout = lh_opt_number(L, 2, "timeout", 0);
  s->read_timeout = lh_opt_number(L, 2, "read_timeout", 0);
  s->connect_timeout = lh_opt_number(L, 2, "connect_timeout", 0);
  lua_getfield(L, 2, "expect");
  s->expect = lua_toboolean(L, -1);
  lua_pop(L, 1);
  lua_getfield(L, 2, "tls_ctx");
  s->tls.ctx = lua_isnil(L, -1) ? NULL : lh_ltls_check(L, -1);
  lua_getfield(L, 2, "tls_name");
  s->tls.name = lua_tostring(L, -1);
}

/* send(client, spec) -> res | nil, err, kind. spec: method, host, port,
 * target, fields (a flat array name, value, ...), body (nil, a string, or
 * true for a body the caller streams with res:_write), expect, timeout,
 * read_timeout, connect_timeout; for https tls_ctx (an lhyper.tls_ctx) and
 * tls_name (the name to ask for and verify, nil: host). Queues the request head, and a string
 * body unless expect is set. The connection may still be connecting;
 * nothing here yields. */
static int l_send(lua_State *L) {
  lh_lclient_t *lc = check_client(L, 1);
  send_spec_t s;
  send_spec(L, &s);
  int bt = lua_type(L, 4);
  lh_task_t *t = lh_task_current(L);
  if (!t)
    return luaL_error(L, "lhyper.request: not inside an lhyper handler or task "
                         "(start one with lhyper.spawn and run the loop)");
  if (!lc->cl) return luaL_error(L, "lhyper.request: attempt to use a closed client");
  lh_ex_t *ex = lua_newuserdatauv(L, sizeof *ex, EX_NUV);
  memset(ex, 0, sizeof *ex);
  luaL_setmetatable(L, RES_MT);
  ex->own.close = ex_own_close;
  ex->own.ud = ex;
  lh_own_add(t, &ex->own);
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, -2, UV_CLIENT);
  lh_cconn_t *cc;
  int reused;
  int r = lh_client_checkout(lc->cl, s.host, s.port, s.tls.ctx ? &s.tls : NULL, s.connect_timeout,
                             ex, &cc, &reused);
  if (r) return ex_fail_push(L, r, NULL);
  ex->cc = cc;
  ex->reused = reused ? 1 : 0;
  lh_disp_t *d = lh_cconn_disp(cc);
  int64_t blen = bt == LUA_TSTRING ? (int64_t)lua_rawlen(L, 4) : bt == LUA_TNIL ? 0 : -1;
  r = lh_disp_req_begin(d, s.method, s.ml, s.target, s.tl);
  if (!r) r = write_fields(L, 3, d, 0);
  if (!r) r = lh_disp_head_end(d, blen); /* the request is in flight */
  if (r) {
    lh_disp_head_abort(d);
    ex_fail(ex, r, NULL);
    if (r == LH_ENOMEM) return lh_push_fail(L, r, NULL);
    return lh_raise(L, r, "lhyper.request: invalid request line or header field "
                          "(a method that is not a token, or CR, LF or NUL in the target or a field)");
  }
  if (bt != LUA_TBOOLEAN && !s.expect) {
    if (blen > 0) r = lh_disp_queue_body(d, lua_tostring(L, 4), (size_t)blen);
    if (!r) r = lh_disp_write_end(d);
    if (r) {
      ex_fail(ex, r, NULL);
      return ex_fail_push(L, r, NULL);
    }
    ex->req_done = 1;
  }
  lh_cconn_set_timeouts(cc, s.timeout > 0 ? lh_loop_now(lc->st->loop) + s.timeout : 0,
                        s.read_timeout);
  lh_cconn_kick(cc);
  return 1;
}

/* res:_wait() -> res | nil, err, kind: the final response head */
static int ex_wait(lua_State *L);
static int ex_wait_k(lua_State *L, int status, lua_KContext ctx) {
  return ex_wait(L);
}

static int ex_wait(lua_State *L) {
  lh_ex_t *ex = check_ex(L, 1);
  lua_settop(L, 1);
  if (ex->head_ready) return 1;
  if (ex->err || !ex->cc) {
    ex_release(ex);
    return ex_push_fail(L, ex);
  }
  lh_cconn_touch(ex->cc);
  return ex_yield(L, 1, ex, EX_WAIT_HEAD, ex_wait_k);
}

/* res:_continue(seconds) -> true (send the body) | false (a final response
 * came first: the body is not sent) | nil, err, kind */
static int ex_continue(lua_State *L);
static int ex_continue_k(lua_State *L, int status, lua_KContext ctx) {
  return ex_continue(L);
}

static int ex_continue(lua_State *L) {
  lh_ex_t *ex = check_ex(L, 1);
  double sec = luaL_optnumber(L, 2, 1.0);
  lua_settop(L, 2);
  if (ex->head_ready) {
    /* RFC 9110 10.1.1: the body need not be sent after a final status;
     * the connection then cannot carry another request */
    if (ex->cc) {
      lh_disp_close_write(lh_cconn_disp(ex->cc));
      lh_cconn_kick(ex->cc);
    }
    ex->req_done = 1;
    ex_maybe_done(ex);
    lua_pushboolean(L, 0);
    return 1;
  }
  if (ex->continued || ex->cont_expired) {
    lua_pushboolean(L, 1);
    return 1;
  }
  if (ex->err || !ex->cc) {
    ex_release(ex);
    return ex_push_fail(L, ex);
  }
  if (!ex->cont_armed) {
    ex->cont_armed = 1;
    lh_cconn_continue_after(ex->cc, sec);
  }
  return ex_yield(L, 1, ex, EX_WAIT_CONTINUE, ex_continue_k);
}

/* res:_write(chunk) -> true | nil, err, kind; waits while the socket is
 * backed up, so the body is pulled only as fast as it goes out */
static int ex_write_k(lua_State *L, int status, lua_KContext ctx) {
  lh_ex_t *ex = check_ex(L, 1);
  if (ex->err || !ex->cc) {
    ex_release(ex);
    return ex_push_fail(L, ex);
  }
  if (ex->wait == EX_WAIT_WRITE) /* woken for another task: still full */
    return ex_yield(L, 1, ex, EX_WAIT_WRITE, ex_write_k);
  lua_pushboolean(L, 1);
  return 1;
}

static int ex_write(lua_State *L) {
  lh_ex_t *ex = check_ex(L, 1);
  size_t n;
  const char *p = luaL_checklstring(L, 2, &n);
  lua_settop(L, 2);
  if (ex->err || !ex->cc || ex->req_done) {
    ex_release(ex);
    return ex_push_fail(L, ex);
  }
  lh_disp_t *d = lh_cconn_disp(ex->cc);
  int e = lh_disp_queue_body(d, p, n);
  if (e) {
    ex_fail(ex, e, e == LH_EUSER_BODY ? "request body longer than its content-length" : NULL);
    return ex_push_fail(L, ex);
  }
  lh_cconn_kick(ex->cc);
  if (!lh_disp_can_write(d)) return ex_yield(L, 1, ex, EX_WAIT_WRITE, ex_write_k);
  lua_pushboolean(L, 1);
  return 1;
}

/* res:_finish(trailers) -> true | nil, err, kind: ends the request body;
 * trailers is nil or a flat array as for the head */
static int ex_finish(lua_State *L) {
  lh_ex_t *ex = check_ex(L, 1);
  if (ex->err || !ex->cc || ex->req_done) {
    ex_release(ex);
    return ex_push_fail(L, ex);
  }
  lh_disp_t *d = lh_cconn_disp(ex->cc);
  int e = lua_istable(L, 2) ? write_fields(L, 2, d, 1) : 0;
  if (!e) e = lh_disp_write_end(d);
  if (e) {
    ex_fail(ex, e, e == LH_EUSER_BODY ? "request body shorter than its content-length" : NULL);
    return ex_push_fail(L, ex);
  }
  ex->req_done = 1;
  lh_cconn_kick(ex->cc);
  ex_maybe_done(ex);
  lua_pushboolean(L, 1);
  return 1;
}

/* res:_abort(): the request body failed; the connection cannot go on */
static int ex_abort(lua_State *L) {
  lh_ex_t *ex = check_ex(L, 1);
  ex_fail(ex, LH_EUSER_BODY, "request body iterator failed");
  return 0;
}

/* --- the response body --- */

static int body_next(lua_State *L);
static int body_next_k(lua_State *L, int status, lua_KContext ctx) {
  return body_next(L);
}

/* trailers are copied out of the parser, which reuses them for the next message */
static void save_trailers(lua_State *L, int idx, const lh_disp_t *d) {
  const lh_field_t *f;
  const char *base;
  size_t len;
  uint32_t n = lh_disp_trailers(d, &f, &base, &len);
  if (!n) return;
  lh_headers_copy(L, base, f, n, len);
  lua_setiuservalue(L, idx, UV_TRAILERS);
}

static int body_next(lua_State *L) {
  lh_ex_t *ex = check_ex(L, lua_upvalueindex(1));
  if (ex->body_done) {
    ex->body_read = 1;
    return 0;
  }
  if (ex->err) {
    ex_release(ex);
    return ex_fail_raise(L, ex->err, ex->why);
  }
  if (!ex->cc) return ex_fail_raise(L, LH_ECLOSED, "connection closed before the body was read");
  lh_disp_t *d = lh_cconn_disp(ex->cc);
  const char *p;
  size_t n;
  int rc = lh_disp_read_body(d, &p, &n);
  if (rc == 1) {
    lua_pushlstring(L, p, n);
    return 1;
  }
  if (rc == 2) {
    lua_settop(L, 0);
    lua_pushvalue(L, lua_upvalueindex(1));
    save_trailers(L, 1, d);
    ex->body_done = ex->body_read = 1;
    ex_maybe_done(ex);
    return 0;
  }
  if (rc == 0) {
    lh_cconn_touch(ex->cc);
    lua_settop(L, 0);
    lua_pushvalue(L, lua_upvalueindex(1));
    return ex_yield(L, 1, ex, EX_WAIT_BODY, body_next_k);
  }
  ex_fail(ex, rc, NULL);
  return ex_fail_raise(L, rc, NULL);
}

/* res:body() -> iterator of string chunks; raises if the connection fails */
static int res_body(lua_State *L) {
  if (check_ex(L, 1)->body_read) return luaL_error(L, "res:body(): the body was already read to its end");
  lua_settop(L, 1);
  /* a decoder set by res:_decode wraps the iterator of the wire's bytes */
  int decode = lua_getiuservalue(L, 1, UV_DECODE) == LUA_TFUNCTION;
  lua_pushvalue(L, 1);
  lua_pushcclosure(L, body_next, 1);
  if (decode) lua_call(L, 1, 1);
  return 1;
}

/* res:_decode(fn): res:body() returns fn(iterator of the wire's bytes)
 * from now on (client.lua: decompress) */
static int res_decode(lua_State *L) {
  check_ex(L, 1);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  lua_settop(L, 2);
  lua_setiuservalue(L, 1, UV_DECODE);
  return 0;
}

static int res_trailers(lua_State *L) {
  check_ex(L, 1);
  lua_getiuservalue(L, 1, UV_TRAILERS);
  return 1;
}

/* res:close(): done with the response; a body not read to its end closes
 * the connection instead of returning it to the pool. Also __close. */
static int res_close(lua_State *L) {
  lh_ex_t *ex = check_ex(L, 1);
  lh_own_leave(&ex->own);
  if (ex->cc && !(ex->head_ready && ex->body_done && ex->req_done)) {
    if (!ex->err) ex->err = LH_ECLOSED;
  }
  ex_release(ex);
  return 0;
}

static int res_gc(lua_State *L) {
  lh_ex_t *ex = check_ex(L, 1);
  lh_own_leave(&ex->own);
  ex_release(ex);
  free(ex->head);
  free(ex->why_copy);
  ex->why_copy = NULL;
  ex->why = NULL;
  ex->head = NULL;
  ex->fields = NULL;
  ex->nfields = 0;
  return 0;
}

static int res_index(lua_State *L) {
  lh_ex_t *ex = check_ex(L, 1);
  size_t n;
  const char *k = lua_tolstring(L, 2, &n);
  if (k && ex->head_ready) {
    if (n == 6 && !memcmp(k, "status", 6)) {
      lua_pushinteger(L, ex->status);
      return 1;
    }
    if (n == 7 && !memcmp(k, "version", 7)) {
      lua_pushstring(L, ex->minor == 0 ? "1.0" : "1.1");
      return 1;
    }
    if (n == 6 && !memcmp(k, "reason", 6)) {
      lua_pushlstring(L, ex->hbytes + ex->reason.off, ex->reason.len);
      return 1;
    }
    if (n == 7 && !memcmp(k, "headers", 7)) {
      if (lua_getiuservalue(L, 1, UV_HEADERS) != LUA_TNIL) return 1;
      lua_pop(L, 1);
      lh_headers_push(L, 1, ex->hbytes, ex->fields, ex->nfields);
      lua_pushvalue(L, -1);
      lua_setiuservalue(L, 1, UV_HEADERS);
      return 1;
    }
  }
  if (k && n == 3 && !memcmp(k, "tls", 3) && ex->tls_version) {
    lua_createtable(L, 0, 4);
    lua_pushstring(L, ex->tls_version);
    lua_setfield(L, -2, "version");
    lua_pushstring(L, ex->tls_cipher);
    lua_setfield(L, -2, "cipher");
    if (ex->tls_alpn) {
      lua_pushliteral(L, "http/1.1");
      lua_setfield(L, -2, "alpn");
    }
    lua_pushboolean(L, ex->tls_resumed);
    lua_setfield(L, -2, "resumed");
    return 1;
  }
  if (k && n == 6 && !memcmp(k, "reused", 6)) {
    lua_pushboolean(L, ex->reused);
    return 1;
  }
  if (k && n == 10 && !memcmp(k, "local_port", 10)) {
    lua_pushinteger(L, ex->cc ? lh_cconn_local_port(ex->cc) : ex->local_port);
    return 1;
  }
  lua_pushvalue(L, 2);
  lua_rawget(L, lua_upvalueindex(1));
  return 1;
}

static int res_tostring(lua_State *L) {
  lh_ex_t *ex = check_ex(L, 1);
  if (ex->head_ready) lua_pushfstring(L, "lhyper.res (%d)", ex->status);
  else lua_pushliteral(L, "lhyper.res (pending)");
  return 1;
}

/* --- client objects --- */

/* client_new(opts) -> client; opts checked by lhyper/client.lua */
static int l_client_new(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lh_lstate_t *st = lh_state(L);
  lh_client_opts_t o;
  memset(&o, 0, sizeof o);
  o.conn.max_buf_size = (uint32_t)lh_opt_uint(L, 1, "max_buf_size", 400 * 1024, UINT32_MAX);
  o.conn.max_headers = (uint32_t)lh_opt_uint(L, 1, "max_headers", 100, UINT32_MAX);
  o.conn.max_target = 8192;
  lua_getfield(L, 1, "keep_alive");
  o.conn.keep_alive = lua_isnil(L, -1) || lua_toboolean(L, -1);
  lua_pop(L, 1);
  o.pool_max_idle_per_host = (uint32_t)lh_opt_uint(L, 1, "pool_max_idle_per_host", 32, UINT32_MAX);
  o.pool_idle_timeout = lh_opt_number(L, 1, "pool_idle_timeout", 90);
  lh_lclient_t *lc = lua_newuserdatauv(L, sizeof *lc, 0);
  lc->cl = NULL;
  lc->st = st;
  luaL_setmetatable(L, CLIENT_MT);
  int r = lh_client_new(st->loop, &o, &hooks, NULL, &lc->cl);
  if (r) return lh_push_fail(L, r, NULL);
  return 1;
}

static int client_close(lua_State *L) {
  lh_lclient_t *lc = check_client(L, 1);
  if (lc->cl) {
    lh_client_t *cl = lc->cl;
    lc->cl = NULL;
    lh_client_close(cl);
  }
  return 0;
}

/* client:stats() -> { connections = n, idle = n } */
static int client_stats(lua_State *L) {
  lh_lclient_t *lc = check_client(L, 1);
  lua_createtable(L, 0, 2);
  lua_pushinteger(L, lc->cl ? lh_client_connections(lc->cl) : 0);
  lua_setfield(L, -2, "connections");
  lua_pushinteger(L, lc->cl ? lh_client_idle(lc->cl) : 0);
  lua_setfield(L, -2, "idle");
  return 1;
}

static int client_tostring(lua_State *L) {
  lh_lclient_t *lc = check_client(L, 1);
  lua_pushfstring(L, "lhyper.client (%s)", lc->cl ? "open" : "closed");
  return 1;
}

static const luaL_Reg res_methods[] = {
  {"body", res_body},     {"trailers", res_trailers}, {"close", res_close},
  {"_wait", ex_wait},     {"_continue", ex_continue}, {"_write", ex_write},
  {"_finish", ex_finish}, {"_abort", ex_abort},       {"_decode", res_decode},
  {NULL, NULL}};

static const luaL_Reg client_methods[] = {
  {"close", client_close}, {"stats", client_stats}, {NULL, NULL}};

void lh_client_open(lua_State *L, int mod) {
  if (luaL_newmetatable(L, RES_MT)) {
    luaL_newlib(L, res_methods);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, "__methods");
    lua_pushcclosure(L, res_index, 1);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, res_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, res_close);
    lua_setfield(L, -2, "__close");
    lua_pushcfunction(L, res_tostring);
    lua_setfield(L, -2, "__tostring");
  }
  lua_pop(L, 1);
  if (luaL_newmetatable(L, CLIENT_MT)) {
    luaL_newlib(L, client_methods);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, "__methods");
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, client_close);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, client_tostring);
    lua_setfield(L, -2, "__tostring");
  }
  lua_pop(L, 1);
  lua_pushcfunction(L, l_client_new);
  lua_setfield(L, mod, "client_new");
  lua_pushcfunction(L, l_send);
  lua_setfield(L, mod, "client_send");
}
