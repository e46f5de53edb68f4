/* lhyper.req: one request as its handler sees it, and everything done to
 * it: made from a head, answered from the handler's values (a body
 * iterator pumped in the handler's coroutine), failed, finished, dropped
 * when its connection goes. What it needs of its server comes through
 * lh_req_host_t; the service glue (lsvc.c) drives it. */
#ifndef LH_LREQ_H
#define LH_LREQ_H

#include "lhead.h"
#include "lraw.h"
#include "ltask.h"
#include "server.h"

typedef struct lh_req lh_req_t;

/* a failure to report: an error object made from code and msg (NULL: the
 * code's own message), or the value raised at vL's index vi, and where it
 * happened: phase "handler", "body" (the response body iterator), "task",
 * or NULL when there is no request */
typedef struct {
  int code;
  const char *msg;
  lua_State *vL;        /* NULL: no value */
  int vi;
  const char *phase;
} lh_report_t;

/* what a request needs of the server it came from */
typedef struct lh_req_host {
  lh_head_memo_t memo;   /* the server's kept response head */
  double stream_idle;    /* stream_idle_timeout in seconds, 0: none */
  unsigned shutting : 1; /* set when the server begins to close or drain: an
                          * upgraded connection is to end (a WebSocket's 1001) */
  /* a failure to report (the server's on_error); r NULL: no request */
  void (*report)(struct lh_req_host *h, const lh_report_t *rep, const lh_req_t *r);
} lh_req_host_t;

struct lh_req {
  lh_task_t task;           /* first: the handler's coroutine */
  lh_sconn_t *sc;           /* NULL once the connection is gone or the request done */
  lh_req_host_t *host;
  uint32_t nfields;
  uint32_t head_len;
  lh_span_t method, target;
  uint8_t minor;
  unsigned responded : 1;   /* a head was written */
  unsigned body_done : 1;   /* the body iterator reached the end */
  unsigned finished : 1;    /* the handler's coroutine is over */
  unsigned too_large : 1;   /* read_all went over its limit: 413 by default */
  unsigned lowered : 1;     /* field names in bytes are lower-case, and the
                             * headers object made (user value UV_HEADERS) */
  unsigned counted : 1;     /* counted in its server's in_flight (lsvc.c sets and clears) */
  unsigned upgraded : 1;    /* the connection is a raw stream now (req:upgrade) */
  unsigned pumping : 1;     /* the handler returned: its body iterator runs */
  unsigned extra : 1;       /* Lua set fields of its own (req.x = v): looked up first */
  unsigned ended : 1;       /* the response's last byte went to the connection */
  unsigned watched : 1;     /* end_ref holds req:on_end functions (llayer.c) */
  uint16_t status;          /* status of the response head written; 0 before one */
  int end_ref;              /* registry ref of { req, fn, ... } while watched */
  uint64_t sent;            /* response body bytes handed to the connection */
  /* the bytes of req.id, req.route and req.remote_addr once set (anchored
   * by the req's user values, which these follow) */
  const char *id, *route, *peer;
  uint32_t idlen, routelen, peerlen;
  /* the name of a field the response head gets, with req.id as its value,
   * unless the handler gave one of that name (request_id); lower case */
  const char *xname;
  uint32_t xnlen;
  unsigned id_clean : 1;    /* r->id is one request_id checked or made (lh_head_extra_t.clean);
                             * cleared when Lua sets req.id */
  char idbuf[32];           /* a request id request_id made, when r->id points here; the
                             * string req.id is made from these bytes when first read */
  char peerbuf[48];         /* the peer's address, when r->peer points here (lh_req_peer);
                             * the string req.remote_addr is made from it when first read */
  struct lh_alog *alog;     /* the access log of this exchange (llayer.c), kept by the req */
  uint64_t t0;              /* uv_hrtime when alog was set */
  int64_t wall;             /* and the wall clock (seconds) */
  unsigned dropped : 1;     /* the connection failed or went away (lh_req_drop) */
  unsigned body_failed : 1; /* reading the request body failed (its connection
                             * broke, or its framing): set once, by req:body() */
  double began;             /* loop time when the request head arrived */
  lh_task_t *reader;        /* the task waiting for body or stream bytes; cleared when it runs */
  lh_task_t *writer;        /* the task waiting for room to write; cleared when it runs */
  lh_raw_t *raw;            /* upgraded and taken by C code (lh_stream_take) until
                             * it lets go: the connection's events go there */
  size_t burst;             /* body bytes written since the coroutine last yielded */
  int peer_port;            /* when the user value UV_PEER is set */
  lh_field_t *fields;       /* points into this block */
  char *bytes;              /* head copy, points into this block */
};

/* registers the req metatable (once per state) */
void lh_req_open(lua_State *L);
/* pushes the req metatable */
void lh_req_push_mt(lua_State *L);
/* the req at index i, told by its metatable at index mt (an upvalue that
 * lh_req_push_mt filled), without luaL_checkudata's look-up by name; a
 * value of another kind raises as luaL_checkudata does */
static inline lh_req_t *lh_req_at(lua_State *L, int i, int mt) {
  lh_req_t *r = lua_touserdata(L, i);
  if (r && lua_getmetatable(L, i)) {
    int ok = lua_rawequal(L, -1, mt);
    lua_pop(L, 1);
    if (ok) return r;
  }
  return luaL_checkudata(L, i, "lhyper.req");
}

/* pushes a new req for the head h (bytes at base) served on sc; mt and
 * owner are stack indices of the req metatable and of the server's
 * userdata, which the req anchors. Its task is not bound yet. */
lh_req_t *lh_req_new(lua_State *L, lh_req_host_t *host, lh_sconn_t *sc, const lh_head_t *h,
                     const char *base, int mt, int owner);

/* answers r from the handler's values status, headers, body at co's
 * indices si, si + 1, si + 2; an iterator body is then pumped in co, which
 * may yield (co must be r's running coroutine) */
void lh_req_answer(lua_State *co, lh_req_t *r, int si);
/* the handler's coroutine raised the value on top of it (r's task ops):
 * reported, and answered with the error's status when nothing went out */
void lh_req_raised(lua_State *L, lh_req_t *r);
/* a failure that belongs to r, reported by its server: code and msg, or
 * the value at vL's index vi (vL NULL: none); phase NULL: r's own (the
 * handler's, or "body" while its body iterator runs) */
void lh_req_report(const lh_req_t *r, int code, const char *msg, lua_State *vL, int vi,
                   const char *phase);
/* the handler's coroutine is over: a request left unanswered gets 500
 * (413 when its body was too large), a streamed body cut short closes the
 * connection; the req lets go of the connection unless it is a stream */
void lh_req_finish(lh_req_t *r);
/* the connection failed or is gone: the req lets go of it, and a running
 * handler is cancelled (or a stream's waiting task woken) */
void lh_req_drop(lh_req_t *r);
/* the dispatcher's body_ready / write_ready: resumes whoever waits on r
 * for `wait` (LH_WAIT_BODY: a task reading the body or the stream;
 * LH_WAIT_WRITE: the handler's body iterator, or a task writing the
 * stream) */
void lh_req_wake(lh_req_t *r, int wait);
/* the running task t waits on r's connection for `wait`: it is r's reader
 * or writer until it runs again (raises if another task waits already) */
int lh_req_wait(lua_State *L, lh_req_t *r, int wait, lua_KFunction k);
/* the reader and the writer, if any, are woken (from the next loop
 * iteration): the connection or the request is over */
/* the server is closing or draining: C code that took the upgraded
 * connection is told (LH_RAW_SHUTDOWN) */
void lh_req_shutdown(lh_req_t *r);
void lh_req_wake_all(lh_req_t *r);

/* --- for routers and layers (llayer.c, lroute.c) --- */
/* req.path of the req at idx (a path Lua set comes first): its bytes and length */
const char *lh_req_path(lua_State *L, lh_req_t *r, int idx, size_t *n);
/* caches the peer's address (req.remote_addr, r->peer) of the req at idx:
 * 0, or -1 when it cannot be known any more (the connection is gone) */
int lh_req_peer(lua_State *L, lh_req_t *r, int idx);
/* req.params and req.route of the req at idx: pops params (top), then route */
void lh_req_set_route(lua_State *L, int idx);
/* req.id of the req at idx: pops it */
void lh_req_set_id(lua_State *L, int idx);
/* req.id of the req at idx: the n bytes at id, which stay as long as the
 * req does (its head's bytes, or r->idbuf) and were checked as a request
 * id; its string is made when req.id is read */
void lh_req_set_id_bytes(lua_State *L, int idx, const char *id, size_t n);
/* pops the value on top into the req at idx, kept as long as the req:
 * LH_REQ_KEEP_XNAME the name of the extra response field (r->xname
 * follows it), LH_REQ_KEEP_LOG its access log */
enum { LH_REQ_KEEP_XNAME, LH_REQ_KEEP_LOG };
void lh_req_keep(lua_State *L, int idx, int what);
/* pushes the server the req at idx came from */
void lh_req_push_server(lua_State *L, int idx);

/* the req's dispatcher; NULL once its connection is gone, or when an
 * upgraded stream asleep could not be given a new one (lh_sconn_disp) */
static inline lh_disp_t *lh_req_disp(const lh_req_t *r) {
  return r->sc ? lh_sconn_disp(r->sc) : NULL;
}

/* the req lets go of its connection */
static inline void lh_req_detach(lh_req_t *r) {
  if (r->sc) {
    *lh_sconn_udata(r->sc) = NULL;
    r->sc = NULL;
  }
}

static inline lh_req_t *lh_req_of_task(lh_task_t *t) {
  return (lh_req_t *)((char *)t - offsetof(lh_req_t, task));
}

#endif
