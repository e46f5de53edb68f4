/* lhyper.websocket: a WebSocket (RFC 6455, RFC 7692) over an upgraded
 * connection, a server's req:upgrade stream or a client's 101 response,
 * taken over through lh_raw_t (lraw.h). Frames are read in place from the
 * connection's read buffer by the core reader (ws.c) and written straight
 * into its write queue; the handshake is lua/lhyper/websocket.lua's.
 *
 * Pull-based: the socket is read only while a task waits in receive (or
 * while closing). A task waiting is resumed from loop callbacks: the reader
 * at once (the hot path), writers and closers on the next loop iteration
 * through their tick, so that no wake-up runs Lua inside another.
 *
 * Waiting follows the task runtime, so that a task cancelled while it waits
 * leaves nothing behind: the reader sits in a slot the runtime clears when
 * its task ends (t->slot), writers and closers in wait queues it leaves.
 * The sender of a message in several frames owns lock_own (in the ws's
 * rare block) while it holds the lock: its end (cancelled between two frames) sends the rest of the
 * message. The ws itself is owned by the task that accepted or opened it
 * and closed when that task ends (own).
 *
 * Detached (ws:detach(on_message, on_close)): no task waits. The socket is
 * read while no callback runs; bytes start a task at once (the pump, a C
 * task on a pooled thread) that hands each whole message to on_message,
 * one at a time, and ends when it would wait, so that an idle detached ws
 * holds no coroutine. The pump owns the ws while it runs (a callback that raises
 * fails it with 1011) and closes what a callback opened when it returns.
 * A server's ws keeps its connection alone then (lh_raw_ops_t.keep): the
 * req that upgraded can go with its handler. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "lws.h"

#include <lauxlib.h>

#include "lclient.h"
#include "loop.h"
#include "lraw.h"
#include "lstream.h"
#include "lsvc.h"
#include "ltask.h"
#include "timer.h"
#include "ws.h"
#include "wskey.h"

#define WS_MT "lhyper.websocket"

#define QUEUE_MAX (1024 * 1024) /* queued bytes above which the reader stops
                                 * answering pings until the peer reads */

enum { WS_OPEN = 0, WS_CLOSING, WS_CLOSED };
/* a loop's last message as long as this is cleared from it while its
 * iterator waits (forget_control); shorter ones cost little to keep */
#define FORGET_MIN 1024

/* how a receive call hands out what it reads */
enum { RECV_ONE = 0 /* receive(): nil, err at the end */, RECV_ITER /* messages() */,
       RECV_PIECE /* frames(): pieces, nil at the end */,
       RECV_POLL /* a detached ws's pump: false where the others wait, nil at the end */ };
#define AS_WRITER 16 /* a reader's continuation after waiting for room */
/* user values: what keeps the connection (a server's req, a client's res;
 * once detached, a table of on_message, on_close and, unless the ws keeps
 * its connection alone, that req or res);
 * the subprotocol and extensions only when the handshake agreed on some
 * (the ws is made with 1 user value otherwise: reading a missing one gives
 * nil) */
enum { UV_CONN = 1, UV_PROTOCOL, UV_EXTENSIONS, WS_NUV = 3 };
enum { CB_MESSAGE = 1, CB_CLOSE, CB_CONN, CB_SERVER }; /* a detached ws's table */

/* the registry's weak table from each ws (light userdata) to itself: C code
 * that has only the pointer (an owner's end) finds the value to anchor */
static const char live_key = 0;

typedef struct lh_lws lh_lws_t;

/* what a ws needs only now and then, made the first time it does and kept
 * until the ws is collected (ws_rare): an idle ws that never did has none */
typedef struct {
  lh_own_t lock_own;         /* in the lock holder's list while its message takes
                              * several frames (made before its first frame goes) */
  lh_lws_t *w;
  lh_waitq_t closers;        /* tasks in close() */
  int tx_ref;                /* registry ref of the payload of a message in several
                              * frames while it is sent; LUA_NOREF otherwise */
  uint8_t *zbuf;             /* the compressed message being sent (permessage-deflate) */
  size_t zlen, zcap;
  char *msg;                 /* a message gathered from several pieces */
  size_t mlen, mcap;
} ws_rare_t;

struct lh_lws {
  lh_raw_t raw;              /* first: the events' hook is the ws */
  lh_own_t own;              /* in the list of the task that accepted or opened it */
  lh_lstate_t *st;
  lh_role_t role;
  int state;                 /* WS_*: CLOSING once our close frame is queued and the
                              * peer's is awaited; CLOSED when both went or it failed */
  int anchor_ref;            /* registry slot holding the ws (or false): set while a
                              * server's connection is open or a close timer runs */
  unsigned anchored : 1;
  unsigned taken : 1;        /* raw is hooked into its owner; cleared when let go */
  unsigned gone : 1;         /* the connection is closed or lost: no more I/O */
  unsigned close_sent : 1;   /* our close frame is queued */
  unsigned close_recv : 1;   /* the peer's close frame was read */
  unsigned await_eof : 1;    /* client: closes exchanged, the server is to close TCP */
  unsigned ping_out : 1;     /* a keepalive ping waits for its pong */
  unsigned beating : 1;      /* on the state's keepalive list (beat_*) */
  unsigned detached : 1;     /* ws:detach: callbacks, no task waits */
  unsigned pumping : 1;      /* detached: a pump task is to start or runs */
  unsigned told : 1;         /* detached: on_close was called (or is being) */
  uint8_t tx_op, tx_rsv;     /* the message being sent's (see lock) */
  uint8_t forget_at;         /* the local forget_control cleared last, 0: none yet */
  int close_code;            /* 0 while open; then the peer's code, ours when we
                              * failed the connection, 1006 when it was lost */
  int fail_err;              /* what failed it (LH_EWS_*, LH_ETIMEOUT, io), 0 if none */
  /* options (seconds: float is ample, and a ws is smaller) */
  float close_timeout, ping_interval, ping_timeout;
  char *close_reason;        /* malloc, set with close_code (NULL: none, or no memory) */
  uint64_t max_message;
  size_t frag_size;          /* largest frame we send */
  /* reading; rd.pmd is permessage-deflate's state for both directions,
   * NULL when not negotiated */
  lh_ws_reader_t rd;
  lh_task_t *reader;         /* the task in receive, set while it waits (its t->slot) */
  double reading_since;      /* loop time the reader began to wait, 0 if none */
  /* writing */
  lh_waitq_t writers;        /* tasks waiting for room or for the lock, and a reader
                              * held back by a full queue */
  lh_task_t *lock;           /* the task sending a message, while it does */
  const uint8_t *tx;         /* ... its payload (a string, anchored by tx_ref when
                              * it takes several frames, or zbuf) */
  size_t tx_len, tx_off;
  ws_rare_t *rare;           /* NULL until needed (ws_rare) */
  lh_timer_t *close_timer;   /* while closing, and while a client awaits EOF */
  /* keepalive, while open: on the state's list (st->ws_beat) until beat_at */
  struct lh_lws *beat_prev, *beat_next;
  double beat_at;
  double ping_sent;
};

/* Every C function of the metatable has upvalues 1: the metatable, 2: "text",
 * 3: "binary" (__index also 4: the methods, messages and frames 4: their
 * iterator): a type check is one pointer compare and a kind is pushed
 * without hashing its name. Continuations find the ws at stack index 1, checked
 * before they yielded. */
enum { UP_MT = 1, UP_TEXT = 2, UP_BINARY = 3, UP_METHODS = 4, UP_ITER = 4, UP_POLL = 4 };

static lh_lws_t *check_ws(lua_State *L, int i) {
  lh_lws_t *w = lua_touserdata(L, i);
  if (w && lua_getmetatable(L, i)) {
    int same = lua_rawequal(L, -1, lua_upvalueindex(UP_MT));
    lua_pop(L, 1);
    if (same) return w;
  }
  return luaL_checkudata(L, i, WS_MT); /* raises, naming the type */
}

/* the ws at index 1 of a continuation */
static lh_lws_t *ws_at1(lua_State *L) { return lua_touserdata(L, 1); }

static void lock_own_close(lh_own_t *o);

/* the ws's rare block, made now if it has none; NULL when memory is short */
static ws_rare_t *ws_rare(lh_lws_t *w) {
  if (w->rare) return w->rare;
  ws_rare_t *x = calloc(1, sizeof *x);
  if (!x) return NULL;
  x->lock_own.close = lock_own_close;
  x->w = w;
  x->tx_ref = LUA_NOREF;
  w->rare = x;
  return x;
}

static int loop_usable_st(lh_lstate_t *st) { return st->loop && !lh_loop_is_closing(st->loop); }

static int loop_usable(lh_lws_t *w) { return loop_usable_st(w->st); }

static lh_disp_t *ws_disp(lh_lws_t *w) {
  if (w->gone || !w->taken) return NULL;
  return w->raw.ops->disp(&w->raw);
}

static void ws_kick(lh_lws_t *w) {
  if (!w->gone && w->taken) w->raw.ops->kick(&w->raw);
}

/* --- mask keys: RFC 6455 10.3 asks for unpredictable ones --- */

static __thread struct {
  uint8_t b[256];
  size_t at;
} entropy = {{0}, 256};

static void mask_key(uint8_t key[4]) {
  if (entropy.at + 4 > sizeof entropy.b) {
    size_t got = 0;
    while (got < sizeof entropy.b) {
      ssize_t n = getrandom(entropy.b + got, sizeof entropy.b - got, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      got += (size_t)n;
    }
    entropy.at = 0;
  }
  memcpy(key, entropy.b + entropy.at, 4);
  entropy.at += 4;
}

/* --- anchoring: a registry slot made with the ws, set and cleared without
 * allocating, so C callbacks can let go --- */

static void anchor(lua_State *L, lh_lws_t *w, int idx) {
  if (w->anchored) return;
  lua_pushvalue(L, idx);
  lua_rawseti(L, LUA_REGISTRYINDEX, w->anchor_ref);
  w->anchored = 1;
}

static void unanchor(lh_lws_t *w) {
  /* a detached ws stays until its on_close was called */
  if (!w->anchored || !w->st->L || (w->detached && !w->told)) return;
  lua_pushboolean(w->st->L, 0);
  lua_rawseti(w->st->L, LUA_REGISTRYINDEX, w->anchor_ref);
  w->anchored = 0;
}

/* pushes the ws on the main thread, if it is still there (not collected);
 * 1 when pushed */
static int push_self(lh_lws_t *w) {
  lua_State *L = w->st->L;
  if (!L || !lua_checkstack(L, 2)) return 0;
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &live_key) == LUA_TTABLE &&
      lua_rawgetp(L, -1, w) == LUA_TUSERDATA && lua_touserdata(L, -1) == w) {
    lua_remove(L, -2);
    return 1;
  }
  lua_pop(L, 2);
  return 0;
}

/* --- waking --- */

/* the reader waits for bytes (LH_WAIT_BODY) or for room (in writers) */
static int reader_waits(const lh_lws_t *w) {
  return w->reader && w->reader->wait == LH_WAIT_BODY;
}

/* on the next loop iteration, through their ticks */
static void wake_writers(lh_lws_t *w) { lh_waitq_broadcast(&w->writers); }

/* everyone waiting: the state changed for good */
static void wake_all(lh_lws_t *w) {
  if (!w->st->loop) return;
  if (w->reader) lh_task_wake(w->reader);
  if (w->rare) lh_waitq_broadcast(&w->rare->closers);
  wake_writers(w);
}

/* --- frames out --- */

static int put_frame(lh_lws_t *w, lh_disp_t *d, int fin, int rsv, int op, const uint8_t *p,
                     size_t n) {
  uint8_t key[4], h[LH_WSF_MAX];
  int client = w->role == LH_ROLE_CLIENT;
  if (client) mask_key(key);
  size_t hl = lh_wsf_header(h, fin, rsv, op, n, client ? key : NULL);
  char *q = lh_disp_raw_reserve(d, hl + n);
  if (!q) return LH_ENOMEM;
  memcpy(q, h, hl);
  if (client) lh_ws_mask_copy((uint8_t *)q + hl, p, n, key, 0);
  else if (n) memcpy(q + hl, p, n);
  lh_disp_raw_commit(d, hl + n);
  return 0;
}

static void put_control(lh_lws_t *w, int op, const uint8_t *p, size_t n) {
  lh_disp_t *d = ws_disp(w);
  if (!d || w->close_sent) return; /* nothing follows our close (5.5.1) */
  put_frame(w, d, 1, 0, op, p, n);
  ws_kick(w);
}

static void put_close(lh_lws_t *w, int code, const char *reason, size_t n) {
  uint8_t pl[125];
  size_t k = lh_ws_close_payload(pl, code, reason, n);
  put_control(w, LH_WS_CLOSE, pl, k);
  w->close_sent = 1;
}

/* --- state --- */

static void set_close(lh_lws_t *w, int code, const char *reason, size_t n) {
  if (w->close_code) return;
  w->close_code = code;
  if (n > 123) n = 123;
  if ((w->close_reason = malloc(n + 1))) {
    memcpy(w->close_reason, reason, n);
    w->close_reason[n] = 0;
  }
}

static const char *reason_of(const lh_lws_t *w) { return w->close_reason ? w->close_reason : ""; }

static void beat_stop(lh_lws_t *w);

static void stop_timer(lh_timer_t **t) {
  if (*t) {
    lh_timer_cancel(*t);
    *t = NULL;
  }
}

/* the transport is let go: it closes once what is queued is written */
static void ws_drop(lh_lws_t *w) {
  stop_timer(&w->close_timer);
  beat_stop(w);
  w->await_eof = 0;
  if (!w->gone) {
    w->gone = 1;
    if (w->taken) {
      w->taken = 0;
      w->raw.ops->close(&w->raw);
    }
  }
  unanchor(w);
}

static void pump_want(lh_lws_t *w, int now);

/* closed, as far as the user sees: no more messages, waiting tasks woken,
 * a detached ws's on_close due */
static void ws_closed(lh_lws_t *w) {
  w->state = WS_CLOSED;
  beat_stop(w);
  wake_all(w);
  pump_want(w, 0);
}

/* failure (a bad frame, a timeout): our close frame with its code if the
 * stream still takes one, then the connection goes (RFC 6455 7.1.7) */
static void ws_fail(lh_lws_t *w, int err, int code, const char *why) {
  if (!w->fail_err) w->fail_err = err;
  if (code) put_close(w, code, why, strlen(why));
  set_close(w, code ? code : 1006, why, strlen(why));
  ws_closed(w);
  ws_drop(w);
}

static void close_timer_cb(void *data) {
  lh_lws_t *w = data;
  w->close_timer = NULL;
  if (w->state == WS_CLOSING) {
    /* the peer never answered our close */
    if (!w->fail_err) w->fail_err = LH_ETIMEOUT;
    set_close(w, 1006, "closing handshake timed out", 27);
    ws_closed(w);
  }
  ws_drop(w);
}

static void arm_close_timer(lh_lws_t *w) {
  if (w->close_timer || w->close_timeout <= 0 || !loop_usable(w)) return;
  w->close_timer = lh_timer_start(w->st->loop, w->close_timeout, close_timer_cb, w);
}

/* the peer's close frame: answered (5.5.1), and the connection ends, the
 * server closing TCP first (7.1.1). L: a Lua context that may anchor the
 * ws at idx for a client's wait for EOF, else NULL */
static void on_close_frame(lh_lws_t *w, const lh_ws_ev_t *ev, lua_State *L, int idx) {
  w->close_recv = 1;
  set_close(w, ev->code, (const char *)ev->p, ev->n);
  if (!w->close_sent) {
    /* echo the code; none for a close that had none */
    put_close(w, ev->code == 1005 ? 0 : ev->code, "", 0);
  }
  ws_closed(w);
  if (w->role == LH_ROLE_SERVER) {
    ws_drop(w);
    return;
  }
  if (!w->close_timer && L) {
    anchor(L, w, idx);
    arm_close_timer(w);
  }
  if (w->close_timer) w->await_eof = 1;
  else ws_drop(w);
}

static void on_eof(lh_lws_t *w) {
  if (w->state != WS_CLOSED) {
    set_close(w, 1006, "connection closed without a close frame", 39);
    ws_closed(w);
  }
  ws_drop(w);
}

/* reading while closing: frames are read and dropped until the peer's
 * close (then, for a client, until EOF); runs from loop callbacks */
static void drain(lh_lws_t *w) {
  for (;;) {
    lh_disp_t *d = ws_disp(w);
    if (!d) return;
    char *p;
    size_t n;
    int rc = lh_disp_raw_peek(d, &p, &n);
    if (rc == 0) {
      lh_ws_reader_trim(&w->rd);
      ws_kick(w);
      return;
    }
    if (rc == 2) {
      on_eof(w);
      return;
    }
    lh_ws_ev_t ev;
    w->rd.max_message = 0;
    long k = lh_ws_read(&w->rd, (uint8_t *)p, n, &ev);
    if (k < 0) {
      ws_fail(w, (int)k, lh_ws_error_close_code((int)k), lh_strerror((int)k));
      return;
    }
    lh_disp_raw_consume(d, (size_t)k);
    if (ev.type == LH_WS_EV_CONTROL && ev.opcode == LH_WS_CLOSE) on_close_frame(w, &ev, NULL, 0);
    if (w->state == WS_CLOSED && !w->await_eof) return;
  }
}

/* starts the closing handshake (7.1.2); the caller anchored a client ws */
static void start_close(lh_lws_t *w, int code, const char *reason, size_t n) {
  if (w->state != WS_OPEN) return;
  put_close(w, code, reason, n);
  w->state = WS_CLOSING;
  beat_stop(w);
  arm_close_timer(w);
  drain(w);
}

/* --- keepalive --- */

static void ping_due(lh_lws_t *w);

/* Keepalive checks of all of a state's open WebSockets are one list, by
 * due time, and one timer for its head, rather than a libuv timer per ws
 * (168 bytes each, while idle). Entries mostly share one interval, so an
 * insertion walks back from the tail a step or none. */
#define BEAT_SLACK 0.001 /* the loop clock's step: a check this close is due */

static int beat_usable(lh_lstate_t *st) { return st->loop && !lh_loop_is_closing(st->loop); }

static void beat_cb(void *data);

/* the timer fires for the head (or sooner) while the list is not empty */
static void beat_rearm(lh_lstate_t *st) {
  lh_lws_t *h = st->ws_beat.head;
  if (!beat_usable(st)) return;
  if (st->ws_beat.timer && (!h || st->ws_beat.at > h->beat_at)) {
    lh_timer_cancel(st->ws_beat.timer);
    st->ws_beat.timer = NULL;
  }
  if (!h || st->ws_beat.timer) return;
  /* never 0 ms: libuv would run it in the same pass over its timers,
   * with the loop time unchanged (beat_cb takes what is due within 1 ms) */
  double after = h->beat_at - lh_loop_now(st->loop);
  st->ws_beat.timer = lh_timer_start(st->loop, after > BEAT_SLACK ? after : BEAT_SLACK, beat_cb, st);
  st->ws_beat.at = h->beat_at;
}

/* off the list; the list's memory only, so that a ws collected at
 * lua_close (the loop gone) leaves it too */
static void beat_unlink(lh_lws_t *w) {
  if (!w->beating) return;
  lh_lstate_t *st = w->st;
  if (w->beat_prev) w->beat_prev->beat_next = w->beat_next;
  else st->ws_beat.head = w->beat_next;
  if (w->beat_next) w->beat_next->beat_prev = w->beat_prev;
  else st->ws_beat.tail = w->beat_prev;
  w->beat_prev = w->beat_next = NULL;
  w->beating = 0;
}

static void beat_stop(lh_lws_t *w) {
  if (!w->beating) return;
  beat_unlink(w);
  beat_rearm(w->st); /* an empty list lets its timer go: it must not keep the loop */
}

static void beat_cb(void *data) {
  lh_lstate_t *st = data;
  st->ws_beat.timer = NULL;
  double now = lh_loop_now(st->loop);
  lh_lws_t *w;
  while ((w = st->ws_beat.head) && w->beat_at <= now + BEAT_SLACK) {
    beat_unlink(w);
    ping_due(w); /* may put it back, later */
  }
  beat_rearm(st);
}

static void arm_ping(lh_lws_t *w, double after) {
  if (w->beating || after <= 0 || w->state != WS_OPEN || !loop_usable(w)) return;
  lh_lstate_t *st = w->st;
  w->beat_at = lh_loop_now(st->loop) + after;
  lh_lws_t *p = st->ws_beat.tail;
  while (p && p->beat_at > w->beat_at) p = p->beat_prev;
  w->beat_prev = p;
  w->beat_next = p ? p->beat_next : st->ws_beat.head;
  if (w->beat_next) w->beat_next->beat_prev = w;
  else st->ws_beat.tail = w;
  if (p) p->beat_next = w;
  else st->ws_beat.head = w;
  w->beating = 1;
  if (!p) beat_rearm(st); /* a new head */
}

/* the keepalive check is due: a ping, or the end of one unanswered */
static void ping_due(lh_lws_t *w) {
  if (w->state != WS_OPEN) return;
  double now = lh_loop_now(w->st->loop);
  if (!w->ping_out) {
    uint8_t pl[4];
    mask_key(pl);
    put_control(w, LH_WS_PING, pl, 4);
    w->ping_out = 1;
    w->ping_sent = now;
    arm_ping(w, w->ping_timeout > 0 ? w->ping_timeout : w->ping_interval);
    return;
  }
  /* a pong can only be seen while someone reads: the clock runs then
   * (a reader cancelled in its wait left no reader); a detached ws is read
   * while its pump does not run */
  if (!w->reader && !(w->detached && !w->pumping)) w->reading_since = 0;
  double since = w->ping_sent > w->reading_since ? w->ping_sent : w->reading_since;
  if (w->ping_timeout > 0 && w->reading_since > 0 && now - w->reading_since >= 0.05 &&
      now - since >= w->ping_timeout - BEAT_SLACK) {
    ws_fail(w, LH_ETIMEOUT, 1011, "keepalive ping timed out");
    return;
  }
  arm_ping(w, w->ping_timeout > 0 ? w->ping_timeout : w->ping_interval);
}

/* --- events from the connection's owner --- */

static void ws_event(lh_raw_t *raw, int ev) {
  lh_lws_t *w = (lh_lws_t *)raw;
  switch (ev) {
    case LH_RAW_READABLE:
      if (w->state != WS_OPEN) drain(w);
      else if (reader_waits(w)) lh_task_resume(w->reader);
      else pump_want(w, 1); /* the hot path: no loop iteration between */
      break;
    case LH_RAW_WRITABLE:
      wake_writers(w);
      break;
    case LH_RAW_GONE:
      w->gone = 1;
      if (w->taken) {
        w->taken = 0;
        w->raw.ops->release(&w->raw);
      }
      if (w->state != WS_CLOSED) {
        set_close(w, 1006, "connection lost", 15);
        ws_closed(w);
      }
      ws_drop(w);
      break;
    case LH_RAW_FAILED: /* a detached ws is not its handler's any more */
      if (!w->detached) start_close(w, 1011, "handler failed", 14);
      break;
    case LH_RAW_SHUTDOWN:
      start_close(w, 1001, "server shutting down", 20);
      break;
    case LH_RAW_DONE:
      if (w->detached) break;
      start_close(w, 1000, "", 0);
      if (w->state == WS_CLOSED && w->await_eof) ws_drop(w);
      break;
  }
}

/* --- receiving --- */

static int recv_k(lua_State *L, int status, lua_KContext ctx);
static void forget_control(lua_State *L, lh_lws_t *w);

static int push_kind(lua_State *L, int op) {
  lua_pushvalue(L, lua_upvalueindex(op == LH_WS_TEXT ? UP_TEXT : UP_BINARY));
  return 1;
}

/* after the end: nil (iterators) or nil, err, kind */
static int push_end(lua_State *L, lh_lws_t *w, int mode) {
  if (mode != RECV_ONE) return 0;
  if (w->fail_err) return lh_push_fail(L, w->fail_err, reason_of(w));
  char m[200];
  const char *r = reason_of(w);
  snprintf(m, sizeof m, "WebSocket closed (%d%s%s)", w->close_code ? w->close_code : 1005,
           r[0] ? " " : "", r);
  return lh_push_fail(L, LH_ECLOSED, m);
}

static int gather(lh_lws_t *w, const uint8_t *p, size_t n) {
  ws_rare_t *x = ws_rare(w);
  if (!x) return LH_ENOMEM;
  if (x->mcap - x->mlen < n) {
    size_t c = x->mcap ? x->mcap : 4096;
    while (c - x->mlen < n) c *= 2;
    char *q = realloc(x->msg, c);
    if (!q) return LH_ENOMEM;
    x->msg = q;
    x->mcap = c;
  }
  memcpy(x->msg + x->mlen, p, n);
  x->mlen += n;
  return 0;
}

/* bytes of a message gathered so far */
static size_t msg_len(const lh_lws_t *w) { return w->rare ? w->rare->mlen : 0; }

/* the gathering and compressed-send buffers given back (none in use) */
static void drop_msg(ws_rare_t *x) {
  free(x->msg);
  x->msg = NULL;
  x->mlen = x->mcap = 0;
}

static void drop_zbuf(ws_rare_t *x) {
  free(x->zbuf);
  x->zbuf = NULL;
  x->zlen = x->zcap = 0;
}

/* Between messages the buffers stay for the next one, up to 64 KiB
 * (msg_reset, unlock); when the reader waits for the peer they go while
 * none is half gathered or being sent, so that a ws idle after a large
 * message holds none of its bytes */
#define RARE_KEEP (64 * 1024)

static void rare_trim(lh_lws_t *w) {
  ws_rare_t *x = w->rare;
  if (!x) return;
  if (x->mlen == 0 && x->msg) drop_msg(x);
  if (!w->lock && x->zbuf) drop_zbuf(x);
}

static void msg_reset(lh_lws_t *w) {
  ws_rare_t *x = w->rare;
  x->mlen = 0;
  if (x->mcap > RARE_KEEP) drop_msg(x);
}

/* a data piece: returns the number of results when it completes what the
 * call hands out, 0 to read on, or a negative code */
static int on_data(lua_State *L, lh_lws_t *w, const lh_ws_ev_t *ev, int mode) {
  if (mode == RECV_PIECE) {
    if (msg_len(w)) msg_reset(w); /* a message begun by receive(): its rest comes in pieces */
    lua_pushlstring(L, (const char *)ev->p, ev->n);
    push_kind(L, ev->opcode);
    lua_pushboolean(L, ev->fin);
    return 3;
  }
  if (ev->fin && msg_len(w) == 0) {
    /* the whole message at once, straight from the read buffer */
    lua_pushlstring(L, (const char *)ev->p, ev->n);
    return 1 + push_kind(L, ev->opcode);
  }
  int e = gather(w, ev->p, ev->n);
  if (e) return e;
  if (!ev->fin) return 0;
  lua_pushlstring(L, w->rare->msg, w->rare->mlen);
  msg_reset(w);
  return 1 + push_kind(L, ev->opcode);
}

static void on_control(lua_State *L, lh_lws_t *w, const lh_ws_ev_t *ev, int idx) {
  if (ev->opcode == LH_WS_PING) put_control(w, LH_WS_PONG, ev->p, ev->n);
  else if (ev->opcode == LH_WS_PONG) w->ping_out = 0;
  else on_close_frame(w, ev, L, idx);
}

static lh_task_t *current(lua_State *L) {
  lh_task_t *t = lh_task_current(L);
  if (!t) luaL_error(L, "websocket: not inside an lhyper handler or task");
  return t;
}

/* the reader's slot: cleared by the runtime when its task ends */
static void take_reader(lh_lws_t *w, lh_task_t *t) {
  w->reader = t;
  t->slot = &w->reader;
}

/* a writer (or a reader held back by a full queue) waits for room or for
 * the lock */
static int wait_writer(lua_State *L, lh_lws_t *w, lua_KFunction k, lua_KContext ctx) {
  return lh_waitq_waitk(L, &w->writers, -1, k, ctx);
}

/* nothing of a message, a frame or its header read yet */
static int between_messages(const lh_lws_t *w) {
  return !w->rd.msg_op && !w->rd.in_frame && !w->rd.hn && !w->rd.ctl_n && !msg_len(w);
}

/* the reader waits for the peer: its buffers go, the socket is read */
static void reader_idle(lh_lws_t *w) {
  lh_ws_reader_trim(&w->rd);
  rare_trim(w);
  ws_kick(w);
  if (!w->reading_since) w->reading_since = lh_loop_now(w->st->loop);
}

/* receive / messages / frames: ws at index 1 */
static int recv_step(lua_State *L, lh_lws_t *w, int mode) {
  for (;;) {
    if (w->state != WS_OPEN) return push_end(L, w, mode);
    lh_disp_t *d = ws_disp(w);
    if (!d) {
      on_eof(w);
      continue;
    }
    char *p;
    size_t n;
    int rc = lh_disp_raw_peek(d, &p, &n);
    if (rc == 2 && !w->rd.z_tail) {
      on_eof(w);
      continue;
    }
    if (rc == 0 && !w->rd.z_tail) {
      /* wait for the peer: the socket is read while we do */
      if (lua_gettop(L) >= 2) {
        /* an iterator's loop holds its last value (iter_next) */
        forget_control(L, w);
        lua_settop(L, 1);
      }
      reader_idle(w);
      if (mode == RECV_POLL && between_messages(w)) {
        /* the pump ends here; halfway through a message it waits as a
         * reader does, rather than a new pump per read of a large one */
        lua_pushboolean(L, 0);
        return 1;
      }
      take_reader(w, current(L));
      w->reader->wait = LH_WAIT_BODY;
      return lua_yieldk(L, 0, mode, recv_k);
    }
    if (lh_conn_pending(lh_disp_conn(d)) >= QUEUE_MAX && !lh_disp_can_write(d)) {
      /* the peer does not read what we owe it (pongs): stop reading too */
      ws_kick(w);
      take_reader(w, current(L));
      return wait_writer(L, w, recv_k, mode | AS_WRITER);
    }
    lh_ws_ev_t ev;
    w->rd.max_message = mode == RECV_PIECE ? 0 : w->max_message;
    long k = lh_ws_read(&w->rd, (uint8_t *)p, rc == 1 ? n : 0, &ev);
    if (k < 0) {
      ws_fail(w, (int)k, lh_ws_error_close_code((int)k), lh_strerror((int)k));
      continue;
    }
    lh_disp_raw_consume(d, (size_t)k);
    if (ev.type == LH_WS_EV_DATA) {
      int r = on_data(L, w, &ev, mode);
      if (r < 0) {
        ws_fail(w, r, 1011, "out of memory");
        continue;
      }
      if (r > 0) return r;
    } else if (ev.type == LH_WS_EV_CONTROL) {
      on_control(L, w, &ev, 1);
    }
  }
}

static int recv_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  lh_lws_t *w = ws_at1(L);
  lh_task_t *t = lh_task_current(L);
  lh_task_unslot(t); /* w->reader */
  if (ctx & AS_WRITER) lh_waitq_leave(t);
  else w->reading_since = 0;
  return recv_step(L, w, (int)(ctx & ~AS_WRITER));
}

static int recv_begin(lua_State *L, lh_lws_t *w, int mode) {
  lh_task_t *t = current(L);
  if (w->detached) return luaL_error(L, "websocket: detached, its messages go to its callback");
  if (w->reader && w->reader != t) return luaL_error(L, "websocket: another task is already receiving");
  return recv_step(L, w, mode);
}

/* ws:receive() -> message, kind | nil, err, kind */
static int ws_receive(lua_State *L) {
  lh_lws_t *w = check_ws(L, 1);
  lua_settop(L, 1);
  return recv_begin(L, w, RECV_ONE);
}

/* The iterators are made once per state, not per loop (a closure would
 * stay as long as its loop waits): ws:messages() returns the iterator and
 * the ws, which the generic for hands back to it at index 1 */
static int iter_next(lua_State *L, int mode) {
  lh_lws_t *w = check_ws(L, 1);
  /* the generic for hands back its control value, the last message (or
   * piece): kept at index 2 when it is a large string, for recv_step to
   * clear from the loop should it wait (forget_control) */
  size_t n = 0;
  if (lua_type(L, 2) == LUA_TSTRING) lua_tolstring(L, 2, &n);
  lua_settop(L, n >= FORGET_MIN ? 2 : 1);
  return recv_begin(L, w, mode);
}
static int messages_next(lua_State *L) { return iter_next(L, RECV_ITER); }
static int frames_next(lua_State *L) { return iter_next(L, RECV_PIECE); }

/* A generic for keeps its control variable, the last message, while its
 * iterator waits for the next one: a ws idle after a large message would
 * hold it for as long as the peer is quiet. The loop that called the
 * iterator (a Lua function one level up) has hidden locals, all named
 * "(for state)": the generator, the state, the control. When they are one
 * of our iterators, the ws at index 1 and the string at index 2, the
 * control is set to nil: the loop sets it anew from what the iterator
 * returns, before it reads it. Anything else is left as it is. The loop
 * waits again and again, so the local found is kept (w->forget_at) and
 * checked alone the next time: a hidden local holding the very string
 * the loop handed over is that loop's control. */
/* 1 when local i of the frame ar is a hidden one of a generic for, holding
 * the value at index idx */
static int hidden_holds(lua_State *L, const lua_Debug *ar, int i, int idx) {
  const char *name = lua_getlocal(L, ar, i);
  if (!name) return 0;
  int ok = !strcmp(name, "(for state)") && lua_rawequal(L, -1, idx);
  lua_pop(L, 1);
  return ok;
}

static void forget_at(lua_State *L, lh_lws_t *w, lua_Debug *ar, int i) {
  lua_pushnil(L);
  lua_setlocal(L, ar, i);
  w->forget_at = i <= 255 ? (uint8_t)i : 0;
}

static void forget_control(lua_State *L, lh_lws_t *w) {
  lua_Debug ar;
  if (!lua_getstack(L, 1, &ar)) return;
  int k = w->forget_at;
  if (k > 2 && hidden_holds(L, &ar, k, 2)) {
    forget_at(L, w, &ar, k);
    return;
  }
  /* the generator, then the state and the control right after it */
  const char *name;
  for (int i = 1; (name = lua_getlocal(L, &ar, i)) != NULL; i++) {
    lua_CFunction f = !strcmp(name, "(for state)") ? lua_tocfunction(L, -1) : NULL;
    lua_pop(L, 1);
    if ((f == messages_next || f == frames_next) && hidden_holds(L, &ar, i + 1, 1) &&
        hidden_holds(L, &ar, i + 2, 2)) {
      forget_at(L, w, &ar, i + 2);
      return;
    }
  }
}

/* the method's upvalue UP_ITER: its iterator */
static int push_iter(lua_State *L) {
  check_ws(L, 1);
  lua_settop(L, 1);
  lua_pushvalue(L, lua_upvalueindex(UP_ITER));
  lua_insert(L, 1);
  return 2;
}

/* for msg, kind in ws:messages() */
static int ws_messages(lua_State *L) { return push_iter(L); }

/* for piece, kind, fin in ws:frames() */
static int ws_frames(lua_State *L) { return push_iter(L); }

/* --- sending --- */

static int push_closed(lua_State *L, lh_lws_t *w) {
  return lh_push_fail(L, LH_ECLOSED, w->state == WS_CLOSING ? "WebSocket is closing" : "WebSocket closed");
}

static int send_k(lua_State *L, int status, lua_KContext ctx);
static int send_done_k(lua_State *L, int status, lua_KContext ctx);

/* the payload of a message in several frames is not needed any more. L: a
 * thread of the ws's state, or NULL */
static void tx_unref(lh_lws_t *w, lua_State *L) {
  ws_rare_t *x = w->rare;
  if (!x || x->tx_ref == LUA_NOREF) return;
  if (!L) L = w->st->L;
  if (L) luaL_unref(L, LUA_REGISTRYINDEX, x->tx_ref);
  x->tx_ref = LUA_NOREF;
}

/* the message is out (or given up): the next sender may go. L: a thread
 * with the ws at index 1, or NULL */
static void unlock(lh_lws_t *w, lua_State *L) {
  w->lock = NULL;
  w->tx = NULL;
  ws_rare_t *x = w->rare;
  if (x) {
    lh_own_leave(&x->lock_own);
    tx_unref(w, L);
    if (x->zcap > RARE_KEEP) drop_zbuf(x);
  }
  wake_writers(w);
}

/* the lock holder's task ended between two frames of its message (it was
 * cancelled): the rest goes now, whole, without waiting for room. A
 * message cut short would reach the peer as a shorter message, and a
 * compressed one would break the peer's inflater; its bytes are at hand
 * (tx_ref, zbuf). */
static void lock_own_close(lh_own_t *o) {
  lh_lws_t *w = ((ws_rare_t *)o)->w; /* lock_own is first */
  lh_disp_t *d = ws_disp(w);
  if (d && w->tx && w->state == WS_OPEN && !w->close_sent) {
    while (w->tx_off < w->tx_len) {
      size_t left = w->tx_len - w->tx_off, take = left < w->frag_size ? left : w->frag_size;
      if (put_frame(w, d, take == left, 0, LH_WS_CONT, w->tx + w->tx_off, take)) {
        ws_fail(w, LH_ENOMEM, 1011, "out of memory");
        break;
      }
      w->tx_off += take;
    }
    ws_kick(w);
  }
  unlock(w, NULL);
}

/* queues the frames of the message in w->tx*, waiting for room between
 * them with the lock held */
static int send_frames(lua_State *L, lh_lws_t *w) {
  for (;;) {
    lh_disp_t *d = ws_disp(w);
    if (w->state != WS_OPEN || !d) {
      unlock(w, L);
      return push_closed(L, w);
    }
    size_t left = w->tx_len - w->tx_off, take = left < w->frag_size ? left : w->frag_size;
    int first = w->tx_off == 0, fin = take == left;
    int e = put_frame(w, d, fin, first ? w->tx_rsv : 0, first ? w->tx_op : LH_WS_CONT,
                      w->tx + w->tx_off, take);
    if (e) {
      unlock(w, L);
      return lh_push_fail(L, e, NULL);
    }
    w->tx_off += take;
    ws_kick(w);
    if (fin) {
      unlock(w, L);
      if (!lh_disp_can_write(d)) return wait_writer(L, w, send_done_k, 0);
      lua_pushboolean(L, 1);
      return 1;
    }
    if (!lh_disp_can_write(d)) {
      /* between two frames: the message is finished should the task end */
      if (!w->rare->lock_own.owner) /* made by send_start */
        lh_own_add(lh_task_current(L), &w->rare->lock_own);
      return wait_writer(L, w, send_k, 1);
    }
  }
}

static int send_done_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  lh_waitq_leave(lh_task_current(L));
  lua_pushboolean(L, 1);
  return 1;
}

static int send_start(lua_State *L, lh_lws_t *w);

/* ctx 1: the lock is ours, frames go on; 0: waiting for the lock */
static int send_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  lh_lws_t *w = ws_at1(L);
  lh_waitq_leave(lh_task_current(L));
  if (ctx) {
    w->tx = (const uint8_t *)(w->tx_rsv ? (const char *)w->rare->zbuf : lua_tostring(L, 2));
    return send_frames(L, w);
  }
  return send_start(L, w);
}

static int send_start(lua_State *L, lh_lws_t *w) {
  lh_task_t *t = lh_task_current(L);
  if (w->state != WS_OPEN) return push_closed(L, w);
  if (w->lock && w->lock != t) return wait_writer(L, w, send_k, 0);
  size_t n;
  const char *p = lua_tolstring(L, 2, &n);
  int op = (int)lua_tointeger(L, 3);
  w->tx_rsv = 0;
  w->tx = (const uint8_t *)p;
  w->tx_len = n;
  if (w->rd.pmd) {
    ws_rare_t *x = ws_rare(w);
    if (!x) return lh_push_fail(L, LH_ENOMEM, NULL);
    x->zlen = 0;
    int e = lh_pmd_deflate(w->rd.pmd, (const uint8_t *)p, n, 1, &x->zbuf, &x->zlen, &x->zcap);
    if (e) return lh_push_fail(L, e, NULL);
    w->tx = x->zbuf;
    w->tx_len = x->zlen;
    w->tx_rsv = LH_WS_RSV1;
  }
  /* a message in several frames may wait between them: what finishes it
   * should its task end there (the own, the payload anchored) is made
   * before its first frame goes */
  if (w->tx_len > w->frag_size) {
    if (!ws_rare(w)) return lh_push_fail(L, LH_ENOMEM, NULL);
    tx_unref(w, L);
    lua_pushvalue(L, 2);
    w->rare->tx_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  w->tx_op = (uint8_t)op;
  w->tx_off = 0;
  w->lock = t;
  return send_frames(L, w);
}

/* ws:send(data, kind) -> true | nil, err, kind; kind "text" (default) or
 * "binary"; waits while the connection is backed up */
static int ws_send(lua_State *L) {
  static const char *const kinds[] = {"text", "binary", NULL};
  lh_lws_t *w = check_ws(L, 1);
  size_t n;
  const char *p = luaL_checklstring(L, 2, &n);
  int op = LH_WS_TEXT;
  if (lua_isnoneornil(L, 3) || lua_rawequal(L, 3, lua_upvalueindex(UP_TEXT))) op = LH_WS_TEXT;
  else if (lua_rawequal(L, 3, lua_upvalueindex(UP_BINARY))) op = LH_WS_BINARY;
  else op = luaL_checkoption(L, 3, "text", kinds) == 0 ? LH_WS_TEXT : LH_WS_BINARY;
  lua_settop(L, 2);
  lua_pushinteger(L, op);
  current(L);
  if (op == LH_WS_TEXT && !lh_utf8_valid((const uint8_t *)p, n))
    return lh_push_fail(L, LH_EUSER_BODY, "WebSocket text message is not valid UTF-8");
  return send_start(L, w);
}

static int send_control(lua_State *L, int op) {
  lh_lws_t *w = check_ws(L, 1);
  size_t n;
  const char *p = luaL_optlstring(L, 2, "", &n);
  if (n > 125) return luaL_argerror(L, 2, "control frame payload longer than 125 bytes");
  if (w->state != WS_OPEN || !ws_disp(w)) return push_closed(L, w);
  put_control(w, op, (const uint8_t *)p, n);
  lua_pushboolean(L, 1);
  return 1;
}

/* ws:ping(data) / ws:pong(data) -> true | nil, err, kind */
static int ws_ping(lua_State *L) { return send_control(L, LH_WS_PING); }
static int ws_pong(lua_State *L) { return send_control(L, LH_WS_PONG); }

/* --- closing --- */

static int close_result(lua_State *L, lh_lws_t *w) {
  if (w->close_recv) {
    lua_pushboolean(L, 1);
    return 1;
  }
  if (w->fail_err) return lh_push_fail(L, w->fail_err, reason_of(w));
  return lh_push_fail(L, LH_ECLOSED, reason_of(w)[0] ? reason_of(w) : NULL);
}

static int close_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  lh_lws_t *w = ws_at1(L);
  lh_waitq_leave(lh_task_current(L));
  if (w->state == WS_CLOSING) return lh_waitq_wait(L, &w->rare->closers, -1, close_k);
  return close_result(L, w);
}

static void check_close_args(lua_State *L, int *code, const char **reason, size_t *n) {
  *code = (int)luaL_optinteger(L, 2, 1000);
  *reason = luaL_optlstring(L, 3, "", n);
  if (!lh_ws_close_code_valid(*code))
    luaL_argerror(L, 2, "not a close code an endpoint may send (1000-1003, 1007-1014, 3000-4999)");
  if (*n > 123) luaL_argerror(L, 3, "close reason longer than 123 bytes");
  if (!lh_utf8_valid((const uint8_t *)*reason, *n)) luaL_argerror(L, 3, "close reason is not valid UTF-8");
}

/* ws:close(code, reason) -> true once the peer answered | nil, err, kind */
static int ws_close(lua_State *L) {
  lh_lws_t *w = check_ws(L, 1);
  int code;
  const char *reason;
  size_t n;
  check_close_args(L, &code, &reason, &n);
  lua_settop(L, 1);
  if (w->state == WS_OPEN) {
    anchor(L, w, 1);
    start_close(w, code, reason, n);
  }
  if (w->state == WS_CLOSING && lh_task_current(L)) {
    if (!ws_rare(w)) return lh_push_fail(L, LH_ENOMEM, NULL); /* the handshake goes on */
    return lh_waitq_wait(L, &w->rare->closers, -1, close_k);
  }
  if (w->state == WS_CLOSING) {
    lua_pushboolean(L, 1); /* outside a task: the handshake goes on in the background */
    return 1;
  }
  return close_result(L, w);
}

/* __close: the closing handshake starts, nobody waits for it */
static int ws_close_quietly(lua_State *L) {
  lh_lws_t *w = check_ws(L, 1);
  if (w->state == WS_OPEN && loop_usable(w)) {
    anchor(L, w, 1);
    start_close(w, 1000, "", 0);
  }
  return 0;
}

/* the task that accepted or opened the ws is over (o->end says how): the
 * closing handshake starts, 1000 when it returned, 1011 when it failed,
 * 1001 when it was cancelled, and goes on without it */
static void ws_own_close(lh_own_t *o) {
  lh_lws_t *w = (lh_lws_t *)((char *)o - offsetof(lh_lws_t, own));
  /* a detached ws is owned by its pump alone, which lets go when it ends
   * well: this pump failed or was cancelled, another may run */
  if (w->detached) w->pumping = 0;
  if (w->state != WS_OPEN || !loop_usable(w)) return;
  if (w->role == LH_ROLE_CLIENT) {
    /* a client ws lives while referenced: anchored for the handshake */
    if (!push_self(w)) return;
    anchor(w->st->L, w, -1);
    lua_pop(w->st->L, 1);
  }
  if (o->end == LH_END_FAILED) start_close(w, 1011, "task failed", 11);
  else if (o->end == LH_END_CANCELED) start_close(w, 1001, "going away", 10);
  else start_close(w, 1000, "", 0);
}

/* __gc: no handshake can wait now */
static int ws_gc(lua_State *L) {
  lh_lws_t *w = check_ws(L, 1);
  lh_own_leave(&w->own);
  if (w->rare) lh_own_leave(&w->rare->lock_own);
  if (w->reader) { /* no task waits on a collected ws: nothing should be here */
    if (w->reader->slot == &w->reader) w->reader->slot = NULL;
    w->reader = NULL;
  }
  lh_waitq_drop(&w->writers);
  if (w->rare) lh_waitq_drop(&w->rare->closers);
  if (loop_usable(w)) {
    if (w->state == WS_OPEN) put_close(w, 1001, "", 0);
    stop_timer(&w->close_timer);
    beat_stop(w);
    if (w->taken) {
      w->taken = 0;
      if (!w->gone) w->raw.ops->close(&w->raw);
      else w->raw.ops->release(&w->raw);
    }
  } else if (w->taken) {
    w->taken = 0;
    w->raw.ops->release(&w->raw);
  }
  beat_unlink(w); /* the loop is gone at lua_close: no timer to touch */
  w->gone = 1;
  w->state = WS_CLOSED;
  lh_ws_reader_free(&w->rd);
  if (w->rd.pmd) {
    lh_pmd_free(w->rd.pmd);
    free(w->rd.pmd);
    w->rd.pmd = NULL;
  }
  if (w->rare) {
    tx_unref(w, L);
    drop_msg(w->rare);
    drop_zbuf(w->rare);
    free(w->rare);
    w->rare = NULL;
  }
  free(w->close_reason);
  w->close_reason = NULL;
  if (w->anchor_ref != LUA_NOREF) {
    luaL_unref(L, LUA_REGISTRYINDEX, w->anchor_ref);
    w->anchor_ref = LUA_NOREF;
  }
  return 0;
}

/* --- detached: callbacks, and no task while idle --- */

/* the registry key of the pump (a closure over the metatable, the kinds
 * and pump_poll) that lh_ws_open made */
static const char pump_key = 0;

/* The pump's task is a C task (lh_ctask_t), made for each run and freed
 * at its end, its thread from the state's pool: nothing for the collector */

/* what raised outside a callback (their errors are caught: pump_failed) */
static void pump_raised(lua_State *L, lh_task_t *t) {
  lua_State *co = t->co;
  fprintf(stderr, "lhyper: websocket: %s\n", lua_type(co, -1) == LUA_TSTRING ? lua_tostring(co, -1) : "error");
}

static void pump_finished(lh_task_t *t) { lh_ctask_free(t->st, (lh_ctask_t *)t); }

static const lh_task_ops_t pump_ops = {
  .raised = pump_raised,
  .finished = pump_finished,
};

/* a pump task for w, not started: its thread holds the pump and the ws
 * (which a detached ws's anchor gives until its on_close ran); NULL when
 * out of memory */
static lh_task_t *pump_make(lh_lws_t *w) {
  lh_lstate_t *st = w->st;
  lh_ctask_t *p;
  if (!st->L || !w->anchored || lh_co_reserve(st) || !(p = lh_ctask_new(st))) return NULL;
  lh_task_t *t = &p->task;
  lua_State *co = lh_co_take(st, st->L, &t->ref); /* the reserved one: nothing allocated */
  lua_rawgetp(co, LUA_REGISTRYINDEX, &pump_key);
  lua_rawgeti(co, LUA_REGISTRYINDEX, w->anchor_ref);
  t->st = st;
  t->co = co;
  t->ops = &pump_ops;
  t->tick.cb = lh_task_tick_cb;
  t->nargs = 1;
  *(lh_task_t **)lua_getextraspace(co) = t;
  return t;
}

/* a detached ws has something for its callbacks (bytes, or its end): a
 * pump runs, unless one is waiting to start or runs already; now when
 * called from a loop callback (now), else on the next loop iteration, as
 * a spawned task starts, so that no pump runs inside another task */
static void pump_want(lh_lws_t *w, int now) {
  if (!w->detached || w->pumping || w->told || w->state == WS_CLOSING || !loop_usable(w)) return;
  lh_task_t *t = pump_make(w);
  if (!t) {
    /* no memory for a task: the ws ends, as for a callback that failed
     * (its on_close is not called: that needs a task too) */
    w->told = 1;
    ws_fail(w, LH_ENOMEM, 1011, "out of memory");
    return;
  }
  w->pumping = 1;
  if (now) {
    lh_task_resume(t);
  } else {
    t->wait = LH_WAIT_TICK;
    lh_loop_defer(w->st->loop, &t->tick);
  }
}

/* pump_poll(ws) -> message, kind | false (nothing whole yet: the socket
 * is read, and bytes bring a new pump) | nil (closed) */
static int pump_poll(lua_State *L) {
  lh_lws_t *w = ws_at1(L);
  lua_settop(L, 1);
  w->reading_since = 0;
  return recv_step(L, w, RECV_POLL);
}

enum { PUMP_START = 0, PUMP_POLLED, PUMP_MESSAGE, PUMP_CLOSED };

/* a callback's message handler: an error object as it is, anything else
 * as its text with the traceback */
static int pump_msgh(lua_State *L) {
  if (lh_is_error(L, 1)) return 1;
  const char *msg = lua_tostring(L, 1);
  if (!msg) msg = lua_pushfstring(L, "(a %s value)", luaL_typename(L, 1));
  luaL_traceback(L, L, msg, 1);
  return 1;
}

/* a callback raised the value on top: reported as its server's error
 * (on_error, phase "websocket"; a client's on stderr); a failed
 * on_message fails the ws as a failed handler does (1011) */
static void pump_failed(lua_State *L, lh_lws_t *w, int ctx) {
  int v = lua_gettop(L);
  lua_getiuservalue(L, 1, UV_CONN);
  lua_rawgeti(L, -1, CB_SERVER);
  lh_svc_report(L, v + 2, v, "websocket");
  lua_settop(L, v - 1);
  if (ctx == PUMP_MESSAGE) start_close(w, 1011, "handler failed", 14);
}

static int pump_k(lua_State *L, int status, lua_KContext ctx);

/* calls the callback cb of the ws's table with the ws and the values at
 * indices 2 and 3 (a message and its kind, or a code and a reason), its
 * error caught (pump_failed); when it yields, pump_k goes on with ctx */
static void pump_call(lua_State *L, lh_lws_t *w, int cb, int ctx) {
  lua_settop(L, 3);
  lua_pushcfunction(L, pump_msgh);
  lua_getiuservalue(L, 1, UV_CONN);
  lua_rawgeti(L, -1, cb);
  lua_replace(L, -2);
  lua_pushvalue(L, 1);
  lua_pushvalue(L, 2);
  lua_pushvalue(L, 3);
  if (lua_pcallk(L, 3, 0, 4, ctx, pump_k) != LUA_OK) pump_failed(L, w, ctx);
}

/* the pump's steps; each call it makes may yield (a callback sending, or
 * sleeping; the poll held back by a full queue), and comes back here */
static int pump_k(lua_State *L, int status, lua_KContext ctx) {
  lh_lws_t *w = ws_at1(L);
  lh_task_t *t = lh_task_current(L);
  /* a callback that raised after it yielded */
  if (status != LUA_OK && status != LUA_YIELD) pump_failed(L, w, (int)ctx);
  for (;;) {
    switch (ctx) {
      case PUMP_POLLED:
        if (lua_type(L, 2) == LUA_TSTRING) {
          pump_call(L, w, CB_MESSAGE, PUMP_MESSAGE);
          ctx = PUMP_MESSAGE;
          continue;
        }
        if (lua_type(L, 2) == LUA_TBOOLEAN) goto done; /* nothing more now */
        break;
      case PUMP_MESSAGE:
      case PUMP_CLOSED:
        /* what the callback opened ends with it, as a handler's does */
        lh_own_close_but(t, &w->own);
        if (ctx == PUMP_CLOSED) goto done;
        break;
    }
    lua_settop(L, 1);
    if (w->state == WS_OPEN) {
      /* nothing came while the callback ran (the usual case): done,
       * without a poll */
      lh_disp_t *d = ws_disp(w);
      char *p;
      size_t n;
      if (ctx == PUMP_MESSAGE && d && lh_disp_raw_peek(d, &p, &n) == 0 && !w->rd.z_tail &&
          between_messages(w)) {
        reader_idle(w);
        goto done;
      }
      lua_pushvalue(L, lua_upvalueindex(UP_POLL));
      lua_pushvalue(L, 1);
      lua_callk(L, 1, 2, PUMP_POLLED, pump_k);
      ctx = PUMP_POLLED;
      continue;
    }
    if (w->state != WS_CLOSED || w->told) goto done; /* closing: its end brings a pump */
    w->told = 1;
    lua_getiuservalue(L, 1, UV_CONN);
    if (lua_rawgeti(L, -1, CB_CLOSE) != LUA_TFUNCTION) goto done;
    lua_settop(L, 1);
    lua_pushinteger(L, w->close_code ? w->close_code : 1005);
    lua_pushstring(L, reason_of(w));
    pump_call(L, w, CB_CLOSE, PUMP_CLOSED);
    ctx = PUMP_CLOSED;
  }
done:
  lh_own_leave(&w->own);
  w->pumping = 0;
  if (w->told && w->gone) unanchor(w); /* a client awaiting EOF: at its drop */
  return 0;
}

/* pump(ws): the body of a detached ws's task */
static int ws_pump(lua_State *L) {
  lh_lws_t *w = check_ws(L, 1);
  lua_settop(L, 1);
  if (!w->detached) return 0;
  lh_own_add(current(L), &w->own);
  return pump_k(L, LUA_OK, PUMP_START);
}

/* ws:detach(on_message [, on_close]) -> ws: the ws leaves the task that
 * owns it and lives on its own while open; each message is handed to
 * on_message(ws, message, kind) in a task, one at a time, and the socket
 * is not read while it runs; on_close(ws, code, reason) once at the end */
static int ws_detach(lua_State *L) {
  lh_lws_t *w = check_ws(L, 1);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  if (!lua_isnoneornil(L, 3)) luaL_checktype(L, 3, LUA_TFUNCTION);
  lua_settop(L, 3);
  if (w->detached) return luaL_error(L, "websocket: already detached");
  if (w->reader) return luaL_error(L, "websocket: a task is receiving on it");
  lh_task_t *t = lh_task_current(L);
  if (w->own.owner && w->own.owner != t)
    return luaL_error(L, "websocket: only the task that owns it can detach it");
  lua_createtable(L, 4, 0);
  lua_pushvalue(L, 2);
  lua_rawseti(L, 4, CB_MESSAGE);
  lua_pushvalue(L, 3);
  lua_rawseti(L, 4, CB_CLOSE);
  /* a server's connection becomes the ws's alone: its req may go once
   * the handler returns. Otherwise the ws keeps what keeps the connection */
  lua_getiuservalue(L, 1, UV_CONN);
  /* a server's: where a callback's error is reported */
  if (w->role == LH_ROLE_SERVER) lh_req_push_server(L, 5);
  else lua_pushnil(L);
  lua_rawseti(L, 4, CB_SERVER);
  int kept = w->taken && !w->gone && w->raw.ops->keep && w->raw.ops->keep(&w->raw) == 0;
  if (kept) lua_pop(L, 1);
  else lua_rawseti(L, 4, CB_CONN);
  lua_setiuservalue(L, 1, UV_CONN);
  w->detached = 1;
  lh_own_leave(&w->own);
  anchor(L, w, 1); /* lives until on_close was called (unanchor) */
  /* what is buffered already, or its end: the pump also starts reading */
  pump_want(w, 0);
  lua_settop(L, 1);
  return 1;
}

/* --- fields --- */

static int ws_index(lua_State *L) {
  /* methods first: ws:send in a loop is the common case */
  lua_pushvalue(L, 2);
  if (lua_rawget(L, lua_upvalueindex(UP_METHODS)) != LUA_TNIL) return 1;
  lua_pop(L, 1);
  lh_lws_t *w = check_ws(L, 1);
  size_t n;
  const char *k = lua_type(L, 2) == LUA_TSTRING ? lua_tolstring(L, 2, &n) : NULL;
  if (k) {
    if (n == 10 && !memcmp(k, "close_code", 10)) {
      if (w->close_code) lua_pushinteger(L, w->close_code);
      else lua_pushnil(L);
      return 1;
    }
    if (n == 12 && !memcmp(k, "close_reason", 12)) {
      if (w->close_code) lua_pushstring(L, reason_of(w));
      else lua_pushnil(L);
      return 1;
    }
    if (n == 5 && !memcmp(k, "state", 5)) {
      static const char *const names[] = {"open", "closing", "closed"};
      lua_pushstring(L, names[w->state]);
      return 1;
    }
    if (n == 8 && !memcmp(k, "protocol", 8)) {
      lua_getiuservalue(L, 1, UV_PROTOCOL);
      return 1;
    }
    if (n == 10 && !memcmp(k, "extensions", 10)) {
      lua_getiuservalue(L, 1, UV_EXTENSIONS);
      return 1;
    }
    if (n == 7 && !memcmp(k, "is_open", 7)) {
      lua_pushboolean(L, w->state == WS_OPEN);
      return 1;
    }
  }
  return 0;
}

static int ws_tostring(lua_State *L) {
  lh_lws_t *w = check_ws(L, 1);
  static const char *const names[] = {"open", "closing", "closed"};
  lua_pushfstring(L, "lhyper.websocket (%s, %s)", w->role == LH_ROLE_SERVER ? "server" : "client",
                  names[w->state]);
  return 1;
}

/* --- creation --- */

static int opt_int(lua_State *L, int t, const char *k, int def) {
  double v = lh_opt_number(L, t, k, def);
  return v != v ? def : v <= INT_MIN ? INT_MIN : v >= INT_MAX ? INT_MAX : (int)v;
}

/* a timeout of the options at 3, in seconds, as the float the ws keeps:
 * past a float's range (1e300, math.huge) it is 1e30, as good as never (a
 * cast would be undefined there) */
static float opt_secs(lua_State *L, const char *k, double def) {
  double v = lh_opt_number(L, 3, k, def);
  return v > 1e30 ? 1e30f : (float)v;
}

static int opt_flag(lua_State *L, int t, const char *k) {
  lua_getfield(L, t, k);
  int v = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return v;
}

/* ws_new(conn, role, opts) -> ws: conn is the stream of req:upgrade
 * (role "server") or the 101 res (role "client"); opts hold the checked
 * options and what the handshake agreed on (lhyper/websocket.lua) */
static int l_ws_new(lua_State *L) {
  static const char *const roles[] = {"server", "client", NULL};
  int client = luaL_checkoption(L, 2, NULL, roles);
  luaL_checktype(L, 3, LUA_TTABLE);
  lh_lstate_t *st = lh_state(L);
  int agreed = lua_getfield(L, 3, "protocol") != LUA_TNIL;
  agreed |= lua_getfield(L, 3, "extensions") != LUA_TNIL;
  lua_pop(L, 2);
  lh_lws_t *w = lua_newuserdatauv(L, sizeof *w, agreed ? WS_NUV : UV_CONN);
  memset(w, 0, sizeof *w);
  w->anchor_ref = LUA_NOREF;
  w->own.close = ws_own_close;
  w->own.ud = w;
  w->gone = 1; /* safe when collected before it is opened */
  w->state = WS_CLOSED;
  luaL_setmetatable(L, WS_MT);
  int wi = lua_gettop(L);
  w->st = st;
  w->role = client ? LH_ROLE_CLIENT : LH_ROLE_SERVER;
  w->max_message = lh_opt_uint(L, 3, "max_message", 1024 * 1024, UINT64_MAX);
  uint64_t max_frame = lh_opt_uint(L, 3, "max_frame", 0, UINT64_MAX);
  w->frag_size = (size_t)lh_opt_uint(L, 3, "fragment_size", 64 * 1024, SIZE_MAX);
  if (w->frag_size < 1) w->frag_size = 1;
  w->close_timeout = opt_secs(L, "close_timeout", 10);
  w->ping_interval = opt_secs(L, "ping_interval", 0);
  w->ping_timeout = opt_secs(L, "ping_timeout", 0);
  if (lua_getfield(L, 3, "deflate") == LUA_TTABLE) {
    lh_pmd_params_t p;
    p.server_no_context_takeover = (uint8_t)opt_flag(L, -1, "server_no_context_takeover");
    p.client_no_context_takeover = (uint8_t)opt_flag(L, -1, "client_no_context_takeover");
    p.server_max_window_bits = (uint8_t)lh_opt_uint(L, -1, "server_max_window_bits", 15, 255);
    p.client_max_window_bits = (uint8_t)lh_opt_uint(L, -1, "client_max_window_bits", 15, 255);
    w->rd.pmd = malloc(sizeof *w->rd.pmd);
    if (!w->rd.pmd) return luaL_error(L, "websocket: out of memory");
    lh_pmd_init(w->rd.pmd, w->role, &p, opt_int(L, -1, "level", -1), opt_int(L, -1, "mem_level", 8));
  }
  lua_pop(L, 1);
  lh_ws_reader_init(&w->rd, w->role, max_frame, w->max_message, w->rd.pmd);
  if (agreed) {
    lua_getfield(L, 3, "protocol");
    lua_setiuservalue(L, wi, UV_PROTOCOL);
    lua_getfield(L, 3, "extensions");
    lua_setiuservalue(L, wi, UV_EXTENSIONS);
  }
  /* a server's stream is done with once taken: the ws keeps its req */
  if (client) lua_pushvalue(L, 1);
  else lua_getiuservalue(L, 1, 1);
  lua_setiuservalue(L, wi, UV_CONN);
  lua_pushboolean(L, 0);
  w->anchor_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  int e = client ? lh_res_take(L, 1, &w->raw) : lh_stream_take(L, 1, &w->raw);
  if (e) return lh_push_fail(L, e, "the connection is closed");
  w->raw.event = ws_event;
  w->taken = 1;
  w->gone = 0;
  w->state = WS_OPEN;
  /* closed when the task that made it ends, unless it returns it to its
   * parent (lhyper.spawn, lhyper.timeout) */
  lh_own_add(lh_task_current(L), &w->own);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &live_key);
  lua_pushvalue(L, wi);
  lua_rawsetp(L, -2, w);
  lua_pop(L, 1);
  /* a server's ws lives as long as its connection (its handler ending
   * closes it); a client's as long as it is referenced */
  if (!client) anchor(L, w, wi);
  arm_ping(w, w->ping_interval);
  /* the server began to go while the handshake was answered */
  if (w->raw.ops->shutting && w->raw.ops->shutting(&w->raw)) start_close(w, 1001, "server shutting down", 20);
  lua_settop(L, wi);
  return 1;
}

/* ws_accept_key(key) -> Sec-WebSocket-Accept, or nil when key is not the
 * base64 of 16 bytes */
static int l_ws_accept_key(lua_State *L) {
  size_t n;
  const char *k = luaL_checklstring(L, 1, &n);
  if (!lh_ws_key_valid(k, n)) return 0;
  char out[LH_WS_ACCEPT_LEN + 1];
  lh_ws_accept(k, n, out);
  lua_pushstring(L, out);
  return 1;
}

/* ws_new_key() -> a fresh Sec-WebSocket-Key (16 random bytes, base64) */
static int l_ws_new_key(lua_State *L) {
  uint8_t raw[16];
  char out[25];
  for (int i = 0; i < 4; i++) mask_key(raw + 4 * i);
  lh_base64_encode(raw, 16, out);
  lua_pushstring(L, out);
  return 1;
}

static void conf_from(lua_State *L, int t, lh_pmd_conf_t *c) {
  memset(c, 0, sizeof *c);
  if (!lua_istable(L, t)) return;
  c->server_no_context_takeover = (uint8_t)lua_toboolean(L, (lua_getfield(L, t, "server_no_context_takeover"), -1));
  c->client_no_context_takeover = (uint8_t)lua_toboolean(L, (lua_getfield(L, t, "client_no_context_takeover"), -1));
  lua_pop(L, 2);
  c->server_max_window_bits = (uint8_t)lh_opt_uint(L, t, "server_max_window_bits", 0, 255);
  c->client_max_window_bits = (uint8_t)lh_opt_uint(L, t, "client_max_window_bits", 0, 255);
}

static void push_params(lua_State *L, const lh_pmd_params_t *p) {
  lua_createtable(L, 0, 4);
  lua_pushboolean(L, p->server_no_context_takeover);
  lua_setfield(L, -2, "server_no_context_takeover");
  lua_pushboolean(L, p->client_no_context_takeover);
  lua_setfield(L, -2, "client_no_context_takeover");
  lua_pushinteger(L, p->server_max_window_bits);
  lua_setfield(L, -2, "server_max_window_bits");
  lua_pushinteger(L, p->client_max_window_bits);
  lua_setfield(L, -2, "client_max_window_bits");
}

/* ws_deflate_accept(offer, conf) -> params, response | false (no offer
 * taken) | nil (malformed) */
static int l_ws_deflate_accept(lua_State *L) {
  size_t n;
  const char *h = luaL_checklstring(L, 1, &n);
  lh_pmd_conf_t c;
  conf_from(L, 2, &c);
  lh_pmd_params_t p;
  char resp[LH_PMD_HDR_MAX];
  int r = lh_pmd_server_negotiate(h, n, &c, &p, resp);
  if (r < 0) return 0;
  if (r == 0) {
    lua_pushboolean(L, 0);
    return 1;
  }
  push_params(L, &p);
  lua_pushstring(L, resp);
  return 2;
}

/* ws_deflate_offer(conf) -> offer */
static int l_ws_deflate_offer(lua_State *L) {
  lh_pmd_conf_t c;
  conf_from(L, 1, &c);
  char out[LH_PMD_HDR_MAX];
  lh_pmd_client_offer(&c, out);
  lua_pushstring(L, out);
  return 1;
}

/* ws_deflate_check(response, conf) -> params | false (none) | nil (fail) */
static int l_ws_deflate_check(lua_State *L) {
  size_t n;
  const char *h = luaL_checklstring(L, 1, &n);
  lh_pmd_conf_t c;
  conf_from(L, 2, &c);
  lh_pmd_params_t p;
  int r = lh_pmd_client_accept(h, n, &c, &p);
  if (r < 0) return 0;
  if (r == 0) {
    lua_pushboolean(L, 0);
    return 1;
  }
  push_params(L, &p);
  return 1;
}

/* ws_utf8(s) -> true when s is valid UTF-8 */
static int l_ws_utf8(lua_State *L) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  lua_pushboolean(L, lh_utf8_valid((const uint8_t *)s, n));
  return 1;
}

static const luaL_Reg ws_methods[] = {
  {"receive", ws_receive},
  {"send", ws_send},       {"ping", ws_ping},         {"pong", ws_pong},
  {"close", ws_close},     {NULL, NULL}};

static const luaL_Reg ws_funcs[] = {
  {"ws_new", l_ws_new},
  {"ws_accept_key", l_ws_accept_key},
  {"ws_new_key", l_ws_new_key},
  {"ws_deflate_accept", l_ws_deflate_accept},
  {"ws_deflate_offer", l_ws_deflate_offer},
  {"ws_deflate_check", l_ws_deflate_check},
  {"ws_utf8", l_ws_utf8},
  {NULL, NULL}};

/* pushes f as a closure over the metatable at mt and the two kinds, plus
 * the value on top of the stack when extra is set (consumed) */
static void push_fn(lua_State *L, int mt, lua_CFunction f, int extra) {
  lua_pushvalue(L, mt);
  lua_pushliteral(L, "text");
  lua_pushliteral(L, "binary");
  if (extra) lua_rotate(L, -4, 3); /* the extra value goes last */
  lua_pushcclosure(L, f, 3 + extra);
}

void lh_ws_open(lua_State *L, int mod) {
  if (luaL_newmetatable(L, WS_MT)) {
    int mt = lua_gettop(L);
    lua_newtable(L);
    for (const luaL_Reg *r = ws_methods; r->name; r++) {
      push_fn(L, mt, r->func, 0);
      lua_setfield(L, -2, r->name);
    }
    push_fn(L, mt, messages_next, 0);
    push_fn(L, mt, ws_messages, 1); /* takes the iterator */
    lua_setfield(L, -2, "messages");
    push_fn(L, mt, frames_next, 0);
    push_fn(L, mt, ws_frames, 1);
    lua_setfield(L, -2, "frames");
    push_fn(L, mt, ws_detach, 0);
    lua_setfield(L, -2, "detach");
    push_fn(L, mt, pump_poll, 0);
    push_fn(L, mt, ws_pump, 1); /* takes pump_poll */
    lua_rawsetp(L, LUA_REGISTRYINDEX, &pump_key);
    lua_pushvalue(L, -1);
    lua_setfield(L, mt, "__methods"); /* core.methods adds Lua ones here */
    push_fn(L, mt, ws_index, 1); /* takes the methods table */
    lua_setfield(L, mt, "__index");
    push_fn(L, mt, ws_gc, 0);
    lua_setfield(L, mt, "__gc");
    push_fn(L, mt, ws_close_quietly, 0);
    lua_setfield(L, mt, "__close");
    push_fn(L, mt, ws_tostring, 0);
    lua_setfield(L, mt, "__tostring");
    lua_newtable(L);
    lua_createtable(L, 0, 1);
    lua_pushliteral(L, "v");
    lua_setfield(L, -2, "__mode");
    lua_setmetatable(L, -2);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &live_key);
  }
  lua_pop(L, 1);
  lua_pushvalue(L, mod);
  luaL_setfuncs(L, ws_funcs, 0);
  lua_pop(L, 1);
}

