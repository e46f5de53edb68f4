/* Dispatcher: moves a Conn with a bounded poll loop (read -> write -> flush),
 * after hyper's proto/h1/dispatch.rs. Generic over the transport (lh_io_t)
 * and over what produces and consumes messages (lh_service_t). */
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
  void *io_data;              /* the transport's */
  unsigned reading_on : 1;    /* io is reading */
  unsigned polling : 1;       /* inside lh_disp_poll */
  unsigned repoll : 1;        /* an event arrived during the poll */
  unsigned want_body : 1;     /* the service waits for body bytes */
  unsigned want_write : 1;    /* the service waits for queue space */
  unsigned in_flight : 1;     /* a message was received and not yet answered */
  unsigned closing : 1;       /* io->close was called */
  unsigned pipeline_flush : 1;
  unsigned deferred : 1;      /* io->defer pending */
  int io_error;               /* transport failure, 0 if none */
  uint32_t served;            /* message heads received */
  unsigned held : 1;          /* poll_ready said no; cleared when it says yes */
  unsigned raw : 1;           /* upgraded: bytes pass through unparsed */
  uint8_t turns;              /* turns of the running lh_disp_poll */
};

void lh_disp_init(lh_disp_t *d, lh_role_t role, const lh_conn_opts_t *o,
                  const lh_service_t *svc, const lh_io_t *io, void *data);
void lh_disp_free(lh_disp_t *d);

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

/* io events: n > 0 bytes were committed, 0 is EOF, < 0 an error */
void lh_disp_read_done(lh_disp_t *d, long n);
/* an asynchronous write finished (status 0 or negative errno) */
void lh_disp_write_done(lh_disp_t *d, int status);

/* body reading for the service: 1 data, 2 end, 0 wait (body_ready will be
 * called), negative on error */
int lh_disp_read_body(lh_disp_t *d, const char **p, size_t *n);
/* body bytes through the encoder: written straight to the socket when
 * nothing is queued (no copy), the rest queued. 0 or a negative code */
int lh_disp_write_body(lh_disp_t *d, const char *p, size_t n);
/* 1 if the writer may queue more now; 0 after registering for write_ready */
int lh_disp_can_write(lh_disp_t *d);
/* after a 101 (or a 2xx to CONNECT) head: the connection becomes a raw
 * byte stream. Bytes buffered after the request head are read first. */
int lh_disp_upgrade(lh_disp_t *d);
/* raw stream reading: 1 data (all that is buffered), 2 EOF, 0 wait (then
 * body_ready is called) */
int lh_disp_read_raw(lh_disp_t *d, const char **p, size_t *n);
/* raw stream writing: queues the bytes as they are */
int lh_disp_write_raw(lh_disp_t *d, const char *p, size_t n);
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
