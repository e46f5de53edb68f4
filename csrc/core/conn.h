/* Conn: one HTTP/1 connection's state machine, after hyper's proto/h1/conn.rs.
 * Reading x Writing x KeepAlive, driven with bytes in (read buffer) and bytes
 * out (write queue). No libuv, no Lua: every transition is unit-testable. */
#ifndef LH_CONN_H
#define LH_CONN_H

#include "buf.h"
#include "parse.h"

typedef enum {
  LH_READING_INIT = 0,   /* waiting for a message head */
  LH_READING_CONTINUE,   /* Expect: 100-continue seen, 100 not sent yet */
  LH_READING_BODY,       /* decoding a body */
  LH_READING_KEEPALIVE,  /* message fully read */
  LH_READING_CLOSED
} lh_reading_t;

typedef enum {
  LH_WRITING_INIT = 0,   /* no head written for the current message */
  LH_WRITING_BODY,       /* head written, body being encoded */
  LH_WRITING_KEEPALIVE,  /* message fully written */
  LH_WRITING_CLOSED
} lh_writing_t;

typedef enum { LH_KA_BUSY = 0, LH_KA_IDLE, LH_KA_DISABLED } lh_keepalive_t;

typedef enum {
  LH_ENC_LENGTH = 0,  /* Content-Length: remaining counts down */
  LH_ENC_CHUNKED,
  LH_ENC_CLOSE,       /* body runs to connection close (HTTP/1.0) */
  LH_ENC_NONE         /* HEAD, 1xx, 204, 304: body bytes are dropped */
} lh_enc_kind_t;

typedef struct {
  uint32_t max_buf_size;   /* largest head, and read buffer bound */
  uint32_t max_headers;
  uint32_t max_target;
  unsigned keep_alive : 1;
  unsigned half_close : 1;
  unsigned title_case : 1;
  unsigned date_header : 1;
  unsigned pipeline_flush : 1; /* dispatcher: flush after each response, not once per batch */
} lh_conn_opts_t;

typedef struct {
  lh_role_t role;
  lh_reading_t reading;
  lh_writing_t writing;
  lh_keepalive_t ka;
  lh_conn_opts_t opts;
  lh_parser_t parser;
  lh_rbuf_t rbuf;
  lh_wq_t wq;
  struct {
    lh_enc_kind_t kind;
    uint64_t remaining;    /* LH_ENC_LENGTH only */
    uint32_t head_mark;    /* write queue length before the head, to roll back */
    unsigned user_length : 1, user_date : 1, user_close : 1, trailers : 1, no_body : 1;
    unsigned user_conn : 1;
    unsigned bodyless : 1;  /* client: a method whose empty body needs no Content-Length */
    int status;
    uint32_t cl_mark, cl_end; /* where head_end put our content-length field */
    unsigned begun : 1;       /* a head is half written: head_abort takes it back */
  } enc;
  uint8_t minor;            /* HTTP minor version of the message being answered */
  unsigned eof : 1;         /* the peer shut down its write side */
  unsigned unread : 1;      /* the read side closed with input possibly left unread */
  /* what the current request is, set when its head is read (bytes, not
   * bits: each head stores them) */
  uint8_t head_method;      /* answering a HEAD request */
  uint8_t upgrade;          /* the current request asks for an upgrade */
  uint8_t connect;          /* the current request is CONNECT */
  uint8_t te_trailers;      /* it said TE: trailers: a server's trailer fields go
                             * out only then (as hyper's) */
  unsigned discarding : 1;  /* the response is done, the unread request body is
                             * dropped as it comes (lh_conn_drain); cleared
                             * with the next message */
  uint32_t discard_left;    /* body bytes lh_conn_drain may still drop */
  int error;                /* first fatal error, 0 if none */
} lh_conn_t;

/* request body bytes a server reads and drops after its response so that
 * the connection can serve the next request (Go drops up to 256 KiB, nginx
 * any amount within its lingering time); past this it closes */
#define LH_DISCARD_MAX (1024 * 1024)

void lh_conn_init(lh_conn_t *c, lh_role_t role, const lh_conn_opts_t *o);
void lh_conn_free(lh_conn_t *c);

/* --- bytes in --- */
/* space for the next read: returns free bytes (0 when the buffer is at its
 * bound), -1 on OOM */
long lh_conn_read_space(lh_conn_t *c, char **p);
static inline void lh_conn_read_commit(lh_conn_t *c, size_t n) { c->rbuf.len += n; }
/* the peer closed its write side */
void lh_conn_read_eof(lh_conn_t *c);
/* buffered, unparsed input */
static inline size_t lh_conn_buffered(const lh_conn_t *c) { return lh_rbuf_avail(&c->rbuf); }
/* input nobody will read (after our FIN): what is buffered is dropped */
static inline void lh_conn_discard_input(lh_conn_t *c) { c->rbuf.off = c->rbuf.len; }
/* between messages: gives back the memory of buffers and parser arrays */
void lh_conn_trim(lh_conn_t *c);

/* reads a message head. returns 1 (*head and *base valid until the next call
 * that touches the read buffer), 0 when more bytes are needed, or a negative
 * code: the connection is then unusable for reading (lh_conn_write_error) */
int lh_conn_read_head(lh_conn_t *c, lh_head_t **head, const char **base);

/* reads body bytes. returns 1 with bytes at *p, *n of them (valid until the read buffer is
 * touched again), 2 at the end of the body (trailers in parser.tfields),
 * 0 when more bytes are needed, or a negative code. In CONTINUE state the
 * 100 Continue response is queued first. */
int lh_conn_read_body(lh_conn_t *c, const char **p, size_t *n);

/* server: nobody will read the rest of the request body (called before
 * the response head is written). When what is left cannot be dropped
 * within LH_DISCARD_MAX, or the client waits for 100 Continue (RFC 9110
 * 10.1.1: it may send the body or not), keep-alive ends: the head says
 * Connection: close */
void lh_conn_body_unwanted(lh_conn_t *c);
/* the response is done but the request body was not read: drops it as it
 * comes, at most LH_DISCARD_MAX bytes, so the connection can go on (the
 * caller keeps reading and calls again); closes the read side when
 * keep-alive is off, the budget runs out, the client waits for 100
 * Continue, or the client shut down first. returns 1 once the body is
 * drained, 0 otherwise (still dropping, or read side closed) */
int lh_conn_drain(lh_conn_t *c);

/* --- bytes out --- */
/* starts a head: status line. status 100..999 */
int lh_conn_head_begin(lh_conn_t *c, int status);
/* one field; refused (LH_EUSER_HEADER) when the name is not a token or the
 * value holds CR, LF or NUL. The queue is rolled back by head_abort. */
int lh_conn_head_field(lh_conn_t *c, const char *name, size_t nlen, const char *value,
                       size_t vlen);
/* ends the head. body_len: the body's size when known, -1 when streamed */
int lh_conn_head_end(lh_conn_t *c, int64_t body_len);
/* client: starts a request head, "METHOD target HTTP/1.1". Refused
 * (LH_EUSER_HEADER) when the method is not a token or the target is empty or
 * holds a space or control byte. HEAD makes the response bodiless. */
int lh_conn_req_begin(lh_conn_t *c, const char *method, size_t mlen, const char *target,
                      size_t tlen);
/* drops a head that was begun and not ended */
void lh_conn_head_abort(lh_conn_t *c);

/* A response head kept to be written again: the status line and fields
 * through the name of the content-length field (ours, or the handler's when
 * it gave the body's length), the place of its digits, and the rest through
 * the blank line (the date is refreshed when written). */
typedef struct {
  uint32_t key;        /* lh_conn_head_key when kept */
  int status;
  uint16_t pre, suf;   /* bytes before and after the content-length digits */
  uint8_t cl;          /* pre ends with "content-length: ", digits go between */
  uint8_t date;        /* the last field is our date */
  uint8_t kind, no_body;
  uint8_t user_length; /* the content-length field is the handler's */
  uint8_t x;           /* a slot for a field value that differs each time (kept by
                        * lh_conn_head_keep_x): its bytes are not in `bytes` */
  uint16_t xat;        /* with x: where in `bytes` the value goes */
  char bytes[320];
} lh_head_tpl_t;
/* what besides status and fields shapes a server's response head; 0 for a client */
static inline uint32_t lh_conn_head_key(const lh_conn_t *c, int64_t body_len) {
  if (c->role != LH_ROLE_SERVER) return 0;
  return 1u | (uint32_t)(c->minor != 0) << 1 | (uint32_t)c->head_method << 2 |
         (uint32_t)c->connect << 3 | (uint32_t)(c->ka == LH_KA_DISABLED) << 4 |
         (uint32_t)c->opts.title_case << 5 | (uint32_t)c->opts.date_header << 6 |
         (uint32_t)(body_len >= 0) << 7;
}
/* after lh_conn_head_end: keeps the head just written when only its bytes
 * depend on the fields (none of Date or Connection, and a Content-Length
 * only when it is body_len in plain digits); 0 when kept */
int lh_conn_head_keep(const lh_conn_t *c, int64_t body_len, lh_head_tpl_t *t);
/* the same, leaving out the value written between the write queue's
 * marks xv and xe (a field value that differs each time, xe > xv; xv = xe
 * = 0: none), which lh_conn_head_replay_x puts back */
int lh_conn_head_keep_x(const lh_conn_t *c, int64_t body_len, lh_head_tpl_t *t, uint32_t xv,
                        uint32_t xe);
/* in place of head_begin, fields and head_end, for a head kept under the
 * same key and status with the same fields; a head kept with the
 * handler's content-length (t->user_length) stands for fields whose
 * content-length is this body_len */
int lh_conn_head_replay(lh_conn_t *c, const lh_head_tpl_t *t, int64_t body_len);
/* the same for a head kept with a value slot (t->x): v (vlen bytes, which
 * the caller checked as a field value) goes in it */
int lh_conn_head_replay_x(lh_conn_t *c, const lh_head_tpl_t *t, int64_t body_len, const char *v,
                          size_t vlen);
/* accounts n body bytes in the encoder without queueing them: the chunk
 * header goes to hdr (*hlen bytes) and *tlen bytes of "\r\n" follow the
 * data. returns 0, 1 when the bytes are to be dropped (HEAD, 204, ...), or
 * LH_EUSER_BODY past Content-Length */
int lh_conn_body_frame(lh_conn_t *c, size_t n, char hdr[20], size_t *hlen, size_t *tlen);
/* writes body bytes through the encoder; LH_EUSER_BODY past Content-Length */
int lh_conn_write_body(lh_conn_t *c, const char *p, size_t n);
/* one trailer field (chunked only; others, forbidden fields, and a server's
 * when the request did not say TE: trailers are skipped) */
int lh_conn_write_trailer(lh_conn_t *c, const char *name, size_t nlen, const char *value,
                          size_t vlen);
/* ends the body; LH_EUSER_BODY when shorter than Content-Length */
int lh_conn_write_end(lh_conn_t *c);
/* a head for a failed request (4xx/5xx, Connection: close), when no head was
 * written yet; the connection closes after it is flushed */
int lh_conn_write_error(lh_conn_t *c, int status);
/* in CONTINUE state: queues "100 Continue" (unless a response head went
 * out already) and goes on to BODY; 0 or LH_ENOMEM */
int lh_conn_write_continue(lh_conn_t *c);
/* trailers of the message read last: returns their number, fields at *f
 * over *base (*len bytes); valid until the next message starts */
uint32_t lh_conn_trailers(const lh_conn_t *c, const lh_field_t **f, const char **base,
                          size_t *len);

/* --- state --- */
/* after a message on both sides: back to INIT/IDLE or closed (hyper's
 * try_keep_alive). returns 1 if the connection can take another message */
int lh_conn_try_keep_alive(lh_conn_t *c);
void lh_conn_disable_keep_alive(lh_conn_t *c);
void lh_conn_close_read(lh_conn_t *c);
void lh_conn_close_write(lh_conn_t *c);
void lh_conn_close(lh_conn_t *c);

static inline int lh_conn_is_read_closed(const lh_conn_t *c) { return c->reading == LH_READING_CLOSED; }
static inline int lh_conn_is_write_closed(const lh_conn_t *c) { return c->writing == LH_WRITING_CLOSED; }
static inline int lh_conn_is_closed(const lh_conn_t *c) {
  return c->reading == LH_READING_CLOSED && c->writing == LH_WRITING_CLOSED;
}
static inline int lh_conn_can_read_head(const lh_conn_t *c) {
  return c->reading == LH_READING_INIT && (c->role == LH_ROLE_CLIENT || c->writing == LH_WRITING_INIT);
}
static inline int lh_conn_can_read_body(const lh_conn_t *c) {
  return c->reading == LH_READING_BODY || c->reading == LH_READING_CONTINUE;
}
static inline int lh_conn_can_write_head(const lh_conn_t *c) { return c->writing == LH_WRITING_INIT; }
static inline int lh_conn_can_write_body(const lh_conn_t *c) { return c->writing == LH_WRITING_BODY; }
/* between messages with nothing in flight */
static inline int lh_conn_is_idle(const lh_conn_t *c) {
  return c->reading == LH_READING_INIT && c->writing == LH_WRITING_INIT && c->ka == LH_KA_IDLE;
}
static inline int lh_conn_is_keep_alive_disabled(const lh_conn_t *c) { return c->ka == LH_KA_DISABLED; }
/* bytes waiting to be written */
static inline size_t lh_conn_pending(const lh_conn_t *c) { return lh_wq_pending(&c->wq); }
/* the peer shut its write side */
static inline int lh_conn_is_eof(const lh_conn_t *c) { return c->eof; }
/* the first fatal error, 0 if none */
static inline int lh_conn_error(const lh_conn_t *c) { return c->error; }
/* the message being read is complete (its body too) */
static inline int lh_conn_is_read_done(const lh_conn_t *c) { return c->reading == LH_READING_KEEPALIVE; }
/* the message being written is complete */
static inline int lh_conn_is_write_done(const lh_conn_t *c) { return c->writing == LH_WRITING_KEEPALIVE; }
/* server: the request being answered asks for an upgrade, or is CONNECT */
static inline int lh_conn_wants_upgrade(const lh_conn_t *c) { return c->upgrade; }
static inline int lh_conn_is_connect(const lh_conn_t *c) { return c->connect; }
/* the message being written takes no body bytes (HEAD, 1xx, 204, 304) */
static inline int lh_conn_is_bodyless(const lh_conn_t *c) { return c->enc.kind == LH_ENC_NONE; }
/* the read side closed with input maybe left unread, and the peer has
 * not closed: a close now could reset what is still being sent */
static inline int lh_conn_has_unread(const lh_conn_t *c) { return c->unread && !c->eof; }

/* --- encode.c --- */
/* the current IMF-fixdate (29 bytes), formatted once per second */
const char *lh_date(void);
void lh_date_update(int64_t unix_seconds);
/* tests: every lh_date() gives this time from now on */
void lh_date_freeze(int64_t unix_seconds);
const char *lh_reason(int status);
/* default status of a failed request's error code (hyper role.rs on_error) */
int lh_error_status(int err);

#endif
