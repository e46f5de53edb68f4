/* Dispatcher: moves a Conn with a bounded poll loop (read -> write -> flush),
 * after hyper's proto/h1/dispatch.rs. Generic over the transport (lh_io_t)
 * and over what produces and consumes messages (lh_service_t). Outside
 * csrc/core, a Dispatcher and its Conn are changed only through the
 * functions here: the service pushes its messages through lh_disp_head_*
 * and lh_disp_write_*, the transport reports with lh_disp_read_done and
 * friends; fields are read through the predicates below. */
#ifndef LH_DISPATCH_H
#define LH_DISPATCH_H

#include "conn.h"

typedef struct lh_disp lh_disp_t;

/* What serves messages. Called only from lh_disp_poll. */
typedef struct {
  /* a message head arrived (server: a request). The service copies what it
   * needs from head/base before returning. returns 0, or a negative code to
   * refuse the message */
  int (*recv_msg)(lh_disp_t *d, lh_head_t *head, const char *base);
  /* the body reader that asked with lh_disp_want_body can make progress */
  void (*body_ready)(lh_disp_t *d);
  /* the writer that asked with lh_disp_want_write can go on */
  void (*write_ready)(lh_disp_t *d);
  /* readiness (hyper poll_ready): 0 holds new heads in the kernel */
  int (*poll_ready)(lh_disp_t *d);
  /* the message or connection failed with err; the service drops its
   * message (a running handler is cancelled) */
  void (*on_error)(lh_disp_t *d, int err);
} lh_service_t;

/* The transport. */
typedef struct {
  void (*read_start)(lh_disp_t *d);
  void (*read_stop)(lh_disp_t *d);
  /* hands queued bytes to the kernel; returns 0 or a negative errno */
  int (*flush)(lh_disp_t *d);
  /* no more bytes will be queued: close once the queue is written */
  void (*close)(lh_disp_t *d);
  /* run lh_disp_poll again from the next loop iteration */
  void (*defer)(lh_disp_t *d);
  /* optional: writes what the kernel takes now from n buffers, without
   * queueing; returns the bytes written or a negative errno */
  long (*try_write)(lh_disp_t *d, const struct iovec *iov, int n);
} lh_io_t;

#define LH_POLL_TURNS 16          /* hyper's poll_loop bound: pipelining benchmarks
                                   * send 16 deep, and one client must not starve
                                   * the others */
#define LH_WRITE_HIGH (64 * 1024) /* body writers wait above this many queued bytes */
#define LH_READ_AHEAD (64 * 1024) /* body bytes read before the handler asks */

struct lh_disp {
  lh_conn_t conn;
  const lh_service_t *svc;
  const lh_io_t *io;
  void *data;                 /* the service's per-connection state */
  unsigned reading_on : 1;    /* io is reading */
  unsigned polling : 1;       /* inside lh_disp_poll */
  unsigned repoll : 1;        /* an event arrived during the poll */
  unsigned want_body : 1;     /* the service waits for body bytes */
  unsigned want_write : 1;    /* the service waits for queue space */
  unsigned in_flight : 1;     /* a message was received and not yet answered */
  unsigned closing : 1;       /* io->close was called */
  unsigned pipeline_flush : 1;/* from the options: flush after each response */
  unsigned deferred : 1;      /* io->defer pending (set by the poll, cleared by lh_disp_defer_done) */
  int io_error;               /* transport failure, 0 if none */
  uint32_t served;            /* message heads received */
  unsigned held : 1;          /* poll_ready said no; cleared when it says yes */
  unsigned raw : 1;           /* upgraded: bytes pass through unparsed */
  uint8_t turns;              /* turns of the running lh_disp_poll */
};

void lh_disp_init(lh_disp_t *d, lh_role_t role, const lh_conn_opts_t *o,
                  const lh_service_t *svc, const lh_io_t *io, void *data);
void lh_disp_free(lh_disp_t *d);

/* --- reading the state --- */
static inline void *lh_disp_data(const lh_disp_t *d) { return d->data; }
/* the Conn, read-only: its predicates (conn.h) tell the message state */
static inline const lh_conn_t *lh_disp_conn(const lh_disp_t *d) { return &d->conn; }
static inline int lh_disp_is_polling(const lh_disp_t *d) { return d->polling; }
/* io->close was called: the dispatcher is done */
static inline int lh_disp_is_closing(const lh_disp_t *d) { return d->closing; }
/* the transport's failure, 0 if none */
static inline int lh_disp_io_error(const lh_disp_t *d) { return d->io_error; }
/* message heads received */
static inline uint32_t lh_disp_served(const lh_disp_t *d) { return d->served; }
static inline int lh_disp_is_reading(const lh_disp_t *d) { return d->reading_on; }
static inline size_t lh_disp_buffered(const lh_disp_t *d) { return lh_conn_buffered(&d->conn); }
/* between messages, nothing received or sent for one: no message in flight */
static inline int lh_disp_is_idle(const lh_disp_t *d) {
  return lh_conn_is_idle(&d->conn) && !d->in_flight;
}
/* nothing in progress at all: the dispatcher may be freed, and a new one
 * take over later (lh_disp_carry) */
int lh_disp_is_quiet(const lh_disp_t *d);
/* an upgraded stream with nothing in progress: nothing buffered or
 * queued, no poll running or deferred, no writer waiting, not closing or
 * failed. Its dispatcher may be freed and a new one take over
 * (lh_disp_carry_raw); what it kept is in_flight and want_body */
int lh_disp_raw_is_quiet(const lh_disp_t *d);
/* client: idle, and nothing arrived or failed since (EOF, stray bytes,
 * an error): it may carry a new request */
int lh_disp_is_reusable(const lh_disp_t *d);
/* client: a response is awaited (its head, or body bytes someone asked
 * for) and the request is not being written */
int lh_disp_awaits_input(const lh_disp_t *d);

/* runs up to LH_POLL_TURNS read/write turns, flushes, sets read interest.
 * Re-entrant calls only mark that another turn is needed. */
void lh_disp_poll(lh_disp_t *d);

/* for a server's recv_msg that answered its message at once: the next
 * pipelined request instead of a return to the poll loop, which saves the
 * service its per-message set-up. Does what the loop would do between the
 * two messages (ends this one, keeps the connection, flushes a full
 * queue) within the same turn budget. 1: *head and *base are the next
 * message, in flight as if recv_msg had been called with them; 0: return,
 * and the poll loop goes on as usual (nothing buffered, a partial head, a
 * head that failed, the service not ready, the connection closing, the
 * turns used up). Only while recv_msg runs. */
int lh_disp_next_msg(lh_disp_t *d, lh_head_t **head, const char **base);

/* --- the transport's side --- */
/* io events: n > 0 bytes were committed, 0 is EOF, < 0 an error */
void lh_disp_read_done(lh_disp_t *d, long n);
/* an asynchronous write finished (status 0 or negative errno). After
 * io->close: the write queue goes on draining (what was queued meanwhile
 * is flushed), a failure is kept in io_error, and nothing is polled */
void lh_disp_write_done(lh_disp_t *d, int status);
/* the bytes to send: the transport peeks, consumes and flies them (buf.h) */
static inline lh_wq_t *lh_disp_out(lh_disp_t *d) { return &d->conn.wq; }
/* the transport stopped reading by itself (read buffer at its bound, or
 * read_start failed): the next poll asks again when it wants bytes */
static inline void lh_disp_read_stopped(lh_disp_t *d) { d->reading_on = 0; }
/* the poll io->defer asked for is running now */
static inline void lh_disp_defer_done(lh_disp_t *d) { d->deferred = 0; }
/* a dispatcher taking over a connection another one served (a sleeping
 * server connection wakes): the heads it received and whether the
 * transport is reading carry over */
void lh_disp_carry(lh_disp_t *d, uint32_t served, int reading_on);
/* after lh_disp_carry, for an upgraded stream that was quiet
 * (lh_disp_raw_is_quiet): the new dispatcher is upgraded too, its message
 * in flight and its reader waiting as they were */
void lh_disp_carry_raw(lh_disp_t *d, int in_flight, int want_body);
/* client: the wait for 100 Continue ran out; the service hears it as
 * write_ready (RFC 9110 10.1.1: the body goes anyway) */
void lh_disp_continue_expired(lh_disp_t *d);

/* --- the service's side --- */
/* the service changed state: another turn of the poll running now, or a
 * poll from the next loop iteration (io->defer) */
void lh_disp_kick(lh_disp_t *d);
/* client, inside a poll: both messages are complete, so the connection
 * turns idle now rather than at the poll's next turn (1); 0 when it
 * cannot (a message unfinished, or keep-alive off: it closes then) */
int lh_disp_keep_alive(lh_disp_t *d);

/* body reading for the service: 1 data, 2 end, 0 wait (body_ready will be
 * called), negative on error */
int lh_disp_read_body(lh_disp_t *d, const char **p, size_t *n);
/* The message out (server: the response; client: the request), as conn.h
 * describes each step: a head (begin or req_begin, fields, end; abort takes
 * a half-written one back; a kept head replays), the body, trailers, end. */
static inline int lh_disp_head_begin(lh_disp_t *d, int status) {
  return lh_conn_head_begin(&d->conn, status);
}
static inline int lh_disp_req_begin(lh_disp_t *d, const char *method, size_t mlen,
                                    const char *target, size_t tlen) {
  return lh_conn_req_begin(&d->conn, method, mlen, target, tlen);
}
static inline int lh_disp_head_field(lh_disp_t *d, const char *name, size_t nlen,
                                     const char *value, size_t vlen) {
  return lh_conn_head_field(&d->conn, name, nlen, value, vlen);
}
/* client: once the request head is out, its response is awaited (in flight) */
static inline int lh_disp_head_end(lh_disp_t *d, int64_t body_len) {
  int r = lh_conn_head_end(&d->conn, body_len);
  if (!r && d->conn.role == LH_ROLE_CLIENT) d->in_flight = 1;
  return r;
}
static inline void lh_disp_head_abort(lh_disp_t *d) { lh_conn_head_abort(&d->conn); }
/* server: the service will not read the rest of the request body (its
 * response head is about to be written): see lh_conn_body_unwanted */
static inline void lh_disp_body_unwanted(lh_disp_t *d) {
  if (lh_conn_can_read_body(&d->conn)) lh_conn_body_unwanted(&d->conn);
}
static inline uint32_t lh_disp_head_key(const lh_disp_t *d, int64_t body_len) {
  return lh_conn_head_key(&d->conn, body_len);
}
static inline int lh_disp_head_keep(const lh_disp_t *d, int64_t body_len, lh_head_tpl_t *t) {
  return lh_conn_head_keep(&d->conn, body_len, t);
}
static inline int lh_disp_head_replay(lh_disp_t *d, const lh_head_tpl_t *t, int64_t body_len) {
  return lh_conn_head_replay(&d->conn, t, body_len);
}
static inline int lh_disp_head_keep_x(const lh_disp_t *d, int64_t body_len, lh_head_tpl_t *t,
                                      uint32_t xv, uint32_t xe) {
  return lh_conn_head_keep_x(&d->conn, body_len, t, xv, xe);
}
static inline int lh_disp_head_replay_x(lh_disp_t *d, const lh_head_tpl_t *t, int64_t body_len,
                                        const char *v, size_t vlen) {
  return lh_conn_head_replay_x(&d->conn, t, body_len, v, vlen);
}
static inline uint32_t lh_disp_head_mark(const lh_disp_t *d) {
  return (uint32_t)lh_wq_mark(&d->conn.wq);
}
/* body bytes through the encoder: written straight to the socket when
 * nothing is queued (no copy), the rest queued. 0 or a negative code */
int lh_disp_write_body(lh_disp_t *d, const char *p, size_t n);
/* body bytes copied into the write queue, to go out with what is queued
 * before them (a head and a short body in one send) */
static inline int lh_disp_queue_body(lh_disp_t *d, const char *p, size_t n) {
  return lh_conn_write_body(&d->conn, p, n);
}
static inline int lh_disp_write_trailer(lh_disp_t *d, const char *name, size_t nlen,
                                        const char *value, size_t vlen) {
  return lh_conn_write_trailer(&d->conn, name, nlen, value, vlen);
}
static inline int lh_disp_write_end(lh_disp_t *d) { return lh_conn_write_end(&d->conn); }
/* server: a whole response without a body, keeping the connection when it
 * can; if it cannot be written the connection closes */
void lh_disp_respond_empty(lh_disp_t *d, int status);
/* the message cannot be finished (or the stream is done): nothing more is
 * read or written; what is queued still goes out */
static inline void lh_disp_close(lh_disp_t *d) { lh_conn_close(&d->conn); }
/* client: no more request bytes (a final response came before the body) */
static inline void lh_disp_close_write(lh_disp_t *d) { lh_conn_close_write(&d->conn); }
/* the connection ends after this message (one-way: conn.c's ka rules) */
static inline void lh_disp_disable_keep_alive(lh_disp_t *d) {
  lh_conn_disable_keep_alive(&d->conn);
}
/* trailers of the message read last (lh_conn_trailers) */
static inline uint32_t lh_disp_trailers(const lh_disp_t *d, const lh_field_t **f,
                                        const char **base, size_t *len) {
  return lh_conn_trailers(&d->conn, f, base, len);
}
/* 1 if the writer may queue more now; 0 after registering for write_ready */
int lh_disp_can_write(lh_disp_t *d);
/* after a 101 (or a 2xx to CONNECT) head: the connection becomes a raw
 * byte stream. Bytes buffered after the request head are read first. A
 * client upgrades once the 101 head is read (its request written). */
int lh_disp_upgrade(lh_disp_t *d);
/* raw stream reading: 1 data (all that is buffered), 2 EOF, 0 wait (then
 * body_ready is called) */
int lh_disp_read_raw(lh_disp_t *d, const char **p, size_t *n);
/* raw stream writing: queues the bytes as they are */
int lh_disp_write_raw(lh_disp_t *d, const char *p, size_t n);
/* The raw stream in place, for a protocol codec above it (WebSocket,
 * lws.c) that parses frames without a copy per read. While the codec waits
 * for the peer with nothing queued, the poll gives the buffers back.
 * peek: everything buffered, in the read buffer itself, which the caller
 * may rewrite (to unmask) and then consume a part of. 1 bytes, 2 EOF and
 * nothing buffered, 0 nothing yet (body_ready will be called). */
int lh_disp_raw_peek(lh_disp_t *d, char **p, size_t *n);
void lh_disp_raw_consume(lh_disp_t *d, size_t n);
/* room for n bytes at the end of the write queue, NULL when the stream is
 * closed or memory is short; commit makes n of them part of the queue */
char *lh_disp_raw_reserve(lh_disp_t *d, size_t n);
void lh_disp_raw_commit(lh_disp_t *d, size_t n);
/* the codec is done: nothing more is read or queued. Unless the peer
 * already shut down, the close lingers (the peer may still be sending, and
 * unread input would turn the close into a reset that loses what we sent) */
void lh_disp_raw_close(lh_disp_t *d);
/* which deadline applies now (deadline.h kinds): HEAD while a head is due
 * (a fresh connection, or bytes of one arrived), IDLE between messages,
 * NONE while a message is served */
int lh_disp_timer_kind(const lh_disp_t *d);
/* that deadline passed: a partial head gets 408 (RFC 9110 15.5.9), an idle
 * or silent connection is closed quietly */
void lh_disp_timeout(lh_disp_t *d, int kind);
/* abandons the connection: nothing more is read or written */
void lh_disp_abort(lh_disp_t *d, int err);

#endif
