/* In-memory transport (lh_io_t) and scripted service (lh_service_t) for the
 * Dispatcher tests, plus the guard-page input helpers both suites use. */
#ifndef LH_MOCK_IO_H
#define LH_MOCK_IO_H

#include "dispatch.h"

/* the fixed Date every test response carries: lh_date_update(0) */
#define MOCK_DATE "Thu, 01 Jan 1970 00:00:00 GMT"

/* --- guard page --- */
/* maps a region whose last page is PROT_NONE; call once from main */
void guard_init(void);
/* copies n bytes so that they end right before the guard page */
const char *guard_place(const void *p, size_t n);
/* Conn without a transport: appends n input bytes to c's read buffer and
 * relocates the whole unconsumed buffer so that it ends at the guard page
 * (the parser reads it in place: a read past the input faults) */
void conn_feed_guarded(lh_conn_t *c, const char *p, size_t n);
/* lh_conn_free for a conn fed with conn_feed_guarded */
void conn_free_guarded(lh_conn_t *c);
/* takes every byte queued on c's write queue; the pointer stays valid until
 * the next call */
const char *conn_take(lh_conn_t *c, size_t *n);

/* --- growable output --- */
typedef struct {
  char *p;
  size_t n, cap;
} mock_buf_t;
void mock_buf_add(mock_buf_t *b, const char *p, size_t n);
void mock_buf_free(mock_buf_t *b);

/* --- the mock --- */
typedef enum {
  MOCK_ANSWER_SYNC = 0, /* answer inside recv_msg */
  MOCK_ANSWER_LATER,    /* the test answers with mock_answer + lh_disp_poll */
  MOCK_READ_THEN_ANSWER, /* read the whole body (lh_disp_read_body), then answer */
  MOCK_ANSWER_NEXT      /* answer inside recv_msg, then the pipelined requests
                         * after it there too (lh_disp_next_msg) */
} mock_mode_t;

typedef struct {
  char method[16];
  char target[256];
  int minor;
  uint64_t content_length;
  int expect_continue, chunked, keep_alive, has_body;
  uint32_t nfields;
} mock_req_t;

#define MOCK_MAX_REQS 64

typedef struct mock mock_t;
struct mock {
  lh_disp_t d; /* first: io callbacks find the mock from the disp */

  /* transport */
  int reading;              /* read interest */
  int read_start_calls, read_stop_calls;
  int flush_calls;          /* io->flush calls */
  int flush_bytes_calls;    /* ... that found bytes to write */
  int close_calls, defer_calls;
  int flush_error;          /* io->flush returns it when set */
  size_t flush_limit;       /* at most this many bytes per flush (0: all) */
  int async;                /* flush hands the bytes to a pending write */
  const char *flight_p;     /* bytes of the pending write */
  size_t flight_n;
  int flight;
  mock_buf_t out;           /* bytes written to the "socket" */

  /* service */
  mock_mode_t mode;
  int ready;                /* poll_ready's answer */
  int recv_ret;             /* recv_msg's answer */
  int recv_calls;           /* recv_msg calls (nrecv: requests received) */
  int nrecv, body_ready_calls, write_ready_calls, poll_ready_calls, on_error_calls;
  int last_error;
  mock_req_t reqs[MOCK_MAX_REQS]; /* request k at k % MOCK_MAX_REQS */
  mock_buf_t body;          /* request body bytes read by the service */
  int body_done, body_err, body_chunks;
  int answered;             /* responses written by mock_answer */
  int answer_err;           /* first error from the conn write API */
  /* canned response */
  int status;
  const char *hname[4], *hval[4];
  const char *rbody;        /* NULL: echo the request target */
  int known_length;         /* head_end gets the body length, else -1 */
  /* optional overrides */
  int (*on_recv)(mock_t *m, lh_head_t *h, const char *base);
  void (*on_body_ready)(mock_t *m);
  void (*on_write_ready)(mock_t *m);
  void *user;
};

extern const lh_io_t mock_io;
extern const lh_service_t mock_service;

/* defaults: max_buf_size 8192, max_headers 100, max_target 8192,
 * keep_alive, date_header */
lh_conn_opts_t mock_opts(void);
/* sets up the mock (200 "echo target", known length, sync answers) and
 * starts the dispatcher with lh_disp_poll, as the server does */
void mock_init(mock_t *m, const lh_conn_opts_t *o);
void mock_free(mock_t *m);

/* input: placed at the end of a guard page, then read through
 * lh_conn_read_space + read_commit + lh_disp_read_done, in one read (or as
 * few as the buffer allows) or one byte per read. Only while the dispatcher
 * wants to read; returns the bytes delivered */
size_t mock_feed(mock_t *m, const char *p, size_t n);
size_t mock_feed_bytes(mock_t *m, const char *p, size_t n);
size_t mock_feed_mode(mock_t *m, const char *p, size_t n, int per_byte);
size_t mock_feed_str(mock_t *m, const char *s, int per_byte);
/* the peer shut down its side; returns 0 when not reading */
int mock_eof(mock_t *m);
/* completes the pending async write (status 0 or negative errno) */
void mock_complete_write(mock_t *m, int status);
/* runs the deferred poll the dispatcher asked for with io->defer; returns 0
 * when none was pending */
int mock_run_deferred(mock_t *m);

/* writes the canned response for the oldest unanswered request */
int mock_answer(mock_t *m);
/* reads the request body until it ends, needs more bytes or fails */
void mock_read_body(mock_t *m);

#endif
