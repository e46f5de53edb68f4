/* Internal to the Lua binding (lhyper.c, lsvc.c, lreq.c). */
#ifndef LH_LCORE_H
#define LH_LCORE_H

#include <lauxlib.h>
#include <lua.h>

#include "io.h"

/* what a suspended coroutine waits for */
enum { LH_WAIT_NONE = 0, LH_WAIT_BODY, LH_WAIT_WRITE, LH_WAIT_SLEEP, LH_WAIT_TICK,
       LH_WAIT_CLIENT /* an HTTP client exchange (lclient.c) */ };

typedef struct lh_lstate lh_lstate_t;

/* lalloc.c: a free-list cache in front of the state's allocator */
typedef struct lh_alloc lh_alloc_t;
lh_alloc_t *lh_alloc_attach(lua_State *L);          /* NULL: left alone */
void lh_alloc_detach(lua_State *L, lh_alloc_t *a);  /* at lua_close */

/* a coroutine lhyper manages: a request's handler or a spawned task. The
 * thread's extra space points here. */
typedef struct lh_task {
  lua_State *co;
  int ref;               /* registry ref anchoring the thread; LUA_NOREF when done */
  int wait;              /* LH_WAIT_* while suspended */
  lh_timer_t *timer;     /* lhyper.sleep */
  struct lh_req *req;    /* the request it serves, NULL for a spawned task */
  lh_lstate_t *st;
  lh_defer_t tick;       /* resume on the next loop iteration */
  int nargs;             /* > 0 before the first resume: arguments on the stack */
  unsigned running : 1;  /* inside lua_resume */
  unsigned cancel : 1;   /* cancel once it yields */
  unsigned pumping : 1;  /* a request's handler returned: its body iterator runs */
} lh_task_t;

struct lh_lstate {
  lh_loop_t *loop;
  lua_State *L;          /* main thread: callbacks run here */
  int runner_ref;        /* Lua function(req, body) pumping a body iterator */
  int running;           /* inside lhyper.run */
  int ntasks;            /* live spawned tasks */
  struct {               /* finished threads kept for reuse, anchored by their ref */
    lua_State *co;
    int ref;
  } free_co[64];
  int nfree_co;
  int req_mt;            /* registry ref of the req metatable (set per request) */
  lh_alloc_t *alloc;     /* allocator cache, detached when the state closes */
};

/* the continuation of a C function whose yield leaves nothing to do after */
int lh_k_none(lua_State *L, int status, lua_KContext ctx);
/* after a request thread's first resume, made outside protection (lsvc.c):
 * carries on as lh_task_resume would, protecting only what may raise */
void lh_task_resumed(lua_State *L, lh_task_t *t, int s, int nres);
/* one thread in the pool, made under protection if needed; 0 or LH_ENOMEM */
int lh_co_reserve(lh_lstate_t *st);
/* a thread taken from the pool that no task took over */
void lh_co_drop(lh_lstate_t *st, lua_State *co, int ref);

/* a thread for a new task, from the free list or new; *ref anchors it */
lua_State *lh_co_take(lh_lstate_t *st, lua_State *L, int *ref);

/* the server's last response head, kept (lh_conn_head_keep) with the
 * handler's field strings it was made from, and anchored so that while
 * kept no other string can have their addresses */
#define LH_MEMO_FIELDS 8
#define LH_MEMO_PATIENCE 8 /* responses unlike the kept head before another is kept */
typedef struct {
  lh_head_tpl_t tpl;
  const void *kv[2 * LH_MEMO_FIELDS]; /* lua_topointer of each name and value */
  uint8_t n;             /* fields */
  uint8_t valid;
  uint8_t misses;        /* responses since the last that matched (at most LH_MEMO_PATIENCE) */
  int anchor_ref;        /* registry ref of the table holding kv's strings */
} lh_head_memo_t;

typedef struct lh_lsrv {
  lh_server_t *srv;      /* NULL once closed and done */
  lh_lstate_t *st;
  int self_ref;          /* anchors the server userdata while it runs */
  int handler_ref;
  int main_ref;          /* the requests' thread body (lsvc.c req_main) with its upvalues */
  int on_error_ref;      /* LUA_NOREF: one line on stderr */
  uint32_t in_flight;    /* running handlers */
  uint32_t max_in_flight;/* 0: no limit */
  lh_sconn_t **waiting;  /* connections held back by max_in_flight (FIFO ring) */
  uint32_t wcap, whead, wlen;
  int port;
  unsigned closed : 1;
  lh_head_memo_t memo;
} lh_lsrv_t;

typedef struct lh_req {
  lh_task_t task;
  lh_sconn_t *sc;        /* NULL once the connection is gone or the request done */
  lh_lsrv_t *srv;
  uint32_t nfields;
  uint32_t head_len;
  lh_span_t method, target;
  uint8_t minor;
  unsigned responded : 1;   /* a head was written */
  unsigned body_done : 1;   /* the body iterator reached the end */
  unsigned finished : 1;    /* the handler's coroutine is over */
  unsigned too_large : 1;   /* read_all went over its limit: 413 by default */
  unsigned lowered : 1;     /* field names in bytes are lower-case */
  unsigned counted : 1;     /* counted in srv->in_flight */
  unsigned upgraded : 1;    /* the connection is a raw stream now (req:upgrade) */
  lh_task_t *waiter;        /* upgraded: the task waiting in stream:read/write */
  size_t burst;             /* body bytes written since the coroutine last yielded */
  int peer_port;             /* when the user value UV_PEER is set */
  lh_field_t *fields;       /* points into this block */
  char *bytes;              /* head copy, points into this block */
} lh_req_t;

lh_lstate_t *lh_state(lua_State *L);
/* number option t[k]; def when absent, 0 when false */
double lh_opt_number(lua_State *L, int t, const char *k, double def);
lh_task_t *lh_task_of(lua_State *co);
/* a task's tick (lh_defer_t) callback: resumes it if it waits for a tick */
void lh_task_tick_cb(lh_defer_t *d);
/* resumes a suspended task from a loop callback, under protection */
void lh_task_resume(lh_task_t *t);
/* closes a suspended task's coroutine (runs its <close> variables) */
void lh_task_cancel(lh_task_t *t);
/* yields the running task until woken with `wait` */
int lh_task_yield(lua_State *L, int wait, lua_KFunction k);
/* the request's coroutine ended or was cancelled */
void lh_req_finish(lh_req_t *r);

/* error objects: pushes nil, err, kind and returns 3 */
int lh_push_fail(lua_State *L, int code, const char *msg);
void lh_push_error(lua_State *L, int code, const char *msg);
/* raises an error object */
int lh_raise(lua_State *L, int code, const char *msg);
void lh_report(lh_lsrv_t *s, int code, const char *msg, lh_req_t *r);

/* lreq.c */
/* pushes a new req for the head h (bytes at base); mt and srv are stack
 * indices of the req metatable and of s's userdata, which the req anchors */
lh_req_t *lh_req_new(lua_State *L, lh_lsrv_t *s, lh_sconn_t *sc, const lh_head_t *h,
                     const char *base, int mt, int srv);
void lh_req_open(lua_State *L, lh_lstate_t *st);
int lh_headers_push(lua_State *L, int owner, const char *base, const lh_field_t *f,
                    uint32_t n, int lowered);
/* pushes a headers object owning a copy of the n fields over base (blen
 * bytes), names lower-cased */
int lh_headers_copy(lua_State *L, const char *base, const lh_field_t *f, uint32_t n,
                    size_t blen);
void lh_lower_names(char *base, lh_field_t *f, uint32_t n);
/* writes status/headers from the Lua values at idx.. into the connection */
/* the response head from the Lua values status and headers (at hidx; 0:
 * none); memo: the server's kept head may serve, or keep this one */
int lh_req_write_head(lua_State *L, lh_req_t *r, int status, int hidx, int64_t body_len, int memo);

/* an upgraded connection went away: wake whoever waits on its stream */
void lh_stream_gone(lh_req_t *r);

/* lsvc.c */
/* a request's handler raised before its thread's body answered (the error
 * object on top of the thread): reported, and a 500 when nothing went out */
void lh_req_raised(lua_State *L, lh_task_t *t);
void lh_req_fail(lua_State *L, lh_req_t *r, int i);
int lh_req_respond(lua_State *S, lh_req_t *r, int si);
void lh_svc_open(lua_State *L);

/* lclient.c */
void lh_client_open(lua_State *L);

#endif
