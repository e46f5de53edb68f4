/* The Dispatcher over the mock transport and the scripted service: what is
 * read, what is answered, what is flushed and when the connection closes. */
#include <stdlib.h>
#include <string.h>

#include "deadline.h"
#include "mock_io.h"
#include "test.h"

#define DATE_LINE "date: " MOCK_DATE "\r\n"

static const char *const MODES[2] = {"whole", "bytes"};

#define GET(path) "GET " path " HTTP/1.1\r\nHost: x\r\n\r\n"

/* appends the response mock_answer writes by default: 200, body given */
static void add_200(mock_buf_t *b, const char *body) {
  char h[128];
  int k = snprintf(h, sizeof h, "HTTP/1.1 200 OK\r\ncontent-length: %zu\r\n" DATE_LINE "\r\n",
                   strlen(body));
  mock_buf_add(b, h, (size_t)k);
  mock_buf_add(b, body, strlen(body));
}

static void check_out(const char *file, int line, mock_t *m, const mock_buf_t *exp) {
  (void)t_mem_eq(file, line, "output", m->out.p ? m->out.p : "", m->out.n,
                 exp->p ? exp->p : "", exp->n);
}
#define CHECK_OUT(m, exp) check_out(__FILE__, __LINE__, (m), (exp))
#define CHECK_OUT_STR(m, s) CHECK_MEM((m)->out.p ? (m)->out.p : "", (m)->out.n, (s))

static void start(mock_t *m, const lh_conn_opts_t *o, int mode) {
  t_ctx = MODES[mode];
  mock_init(m, o);
}

/* n pipelined GETs for /0, /1, ... and the responses that echo them */
static void pipelined(int n, mock_buf_t *in, mock_buf_t *exp) {
  for (int i = 0; i < n; i++) {
    char req[64], path[16];
    snprintf(path, sizeof path, "/%d", i);
    int k = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path);
    mock_buf_add(in, req, (size_t)k);
    if (exp) add_200(exp, path);
  }
}

/* --- one request --- */

static void dispatch_answers_request_and_keeps_connection_open(void) {
  for (int mode = 0; mode < 2; mode++) {
    mock_t m;
    lh_conn_opts_t o = mock_opts();
    mock_buf_t exp = {0};
    start(&m, &o, mode);
    CHECK_EQ(m.reading, 1);
    CHECK_EQ(m.read_start_calls, 1);
    CHECK_EQ(mock_feed_str(&m, GET("/hello"), mode), strlen(GET("/hello")));
    CHECK_EQ(m.nrecv, 1);
    CHECK_STR(m.reqs[0].method, "GET");
    CHECK_STR(m.reqs[0].target, "/hello");
    add_200(&exp, "/hello");
    CHECK_OUT(&m, &exp);
    CHECK_EQ(m.close_calls, 0);
    CHECK_EQ(m.on_error_calls, 0);
    CHECK_EQ(m.reading, 1);
    CHECK_EQ(m.d.in_flight, 0);
    CHECK(lh_conn_is_idle(&m.d.conn));
    CHECK_EQ(m.defer_calls, 0);
    /* and the next one on the same connection */
    CHECK_EQ(mock_feed_str(&m, GET("/again"), mode), strlen(GET("/again")));
    add_200(&exp, "/again");
    CHECK_OUT(&m, &exp);
    CHECK_EQ(m.nrecv, 2);
    CHECK_EQ(m.close_calls, 0);
    mock_buf_free(&exp);
    mock_free(&m);
  }
}

static void dispatch_closes_after_http10_response(void) {
  for (int mode = 0; mode < 2; mode++) {
    mock_t m;
    lh_conn_opts_t o = mock_opts();
    start(&m, &o, mode);
    m.rbody = "ok";
    mock_feed_str(&m, "GET / HTTP/1.0\r\n\r\n", mode);
    CHECK_OUT_STR(&m, "HTTP/1.0 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n" DATE_LINE
                      "\r\nok");
    CHECK_EQ(m.close_calls, 1);
    CHECK_EQ(m.reading, 0);
    CHECK_EQ(m.on_error_calls, 0);
    mock_free(&m);
  }
}

static void dispatch_stops_after_connection_close_request(void) {
  for (int mode = 0; mode < 2; mode++) {
    mock_t m;
    lh_conn_opts_t o = mock_opts();
    start(&m, &o, mode);
    m.rbody = "ok";
    mock_feed_str(&m, "GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" GET("/b"), mode);
    CHECK_EQ(m.nrecv, 1);
    CHECK_OUT_STR(&m, "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n" DATE_LINE
                      "\r\nok");
    CHECK_EQ(m.close_calls, 1);
    mock_free(&m);
  }
}

/* --- pipelining --- */

static void dispatch_batches_pipelined_responses_in_one_flush(void) {
  for (int mode = 0; mode < 2; mode++) {
    mock_t m;
    lh_conn_opts_t o = mock_opts();
    mock_buf_t in = {0}, exp = {0};
    pipelined(5, &in, &exp);
    start(&m, &o, mode);
    CHECK_EQ(mock_feed_mode(&m, in.p, in.n, mode), in.n);
    CHECK_EQ(m.nrecv, 5);
    CHECK_OUT(&m, &exp);
    if (mode == 0) CHECK_EQ(m.flush_bytes_calls, 1);
    else CHECK_EQ(m.flush_bytes_calls, 5);
    CHECK_EQ(m.defer_calls, 0);
    CHECK_EQ(m.close_calls, 0);
    mock_buf_free(&in);
    mock_buf_free(&exp);
    mock_free(&m);
  }
}

static void dispatch_pipeline_flush_flushes_each_response(void) {
  mock_t m;
  lh_conn_opts_t o = mock_opts();
  mock_buf_t in = {0}, exp = {0};
  pipelined(5, &in, &exp);
  start(&m, &o, 0);
  m.d.pipeline_flush = 1;
  CHECK_EQ(mock_feed(&m, in.p, in.n), in.n);
  CHECK_EQ(m.nrecv, 5);
  CHECK_OUT(&m, &exp);
  CHECK_EQ(m.flush_bytes_calls, 5);
  mock_buf_free(&in);
  mock_buf_free(&exp);
  mock_free(&m);
}

static void dispatch_yields_after_16_pipelined_requests(void) {
  mock_t m;
  lh_conn_opts_t o = mock_opts();
  mock_buf_t in = {0}, exp = {0}, first = {0};
  pipelined(20, &in, &exp);
  pipelined(16, &first, NULL);
  start(&m, &o, 0);
  CHECK_EQ(mock_feed(&m, in.p, in.n), in.n);
  CHECK_EQ(m.nrecv, LH_POLL_TURNS);
  CHECK_EQ(m.defer_calls, 1);
  CHECK_EQ(m.flush_bytes_calls, 1);
  /* the first 16 responses went out */
  mock_buf_t exp16 = {0};
  for (int i = 0; i < 16; i++) {
    char path[16];
    snprintf(path, sizeof path, "/%d", i);
    add_200(&exp16, path);
  }
  CHECK_OUT(&m, &exp16);
  /* the loop comes back on the next tick for the rest */
  CHECK_EQ(mock_run_deferred(&m), 1);
  CHECK_EQ(m.nrecv, 20);
  CHECK_OUT(&m, &exp);
  CHECK_EQ(m.defer_calls, 1);
  CHECK_EQ(m.flush_bytes_calls, 2);
  CHECK_EQ(mock_run_deferred(&m), 0);
  CHECK_EQ(m.close_calls, 0);
  CHECK_EQ(m.reading, 1);
  mock_buf_free(&in);
  mock_buf_free(&exp);
  mock_buf_free(&exp16);
  mock_buf_free(&first);
  mock_free(&m);
}

/* a service that takes pipelined requests itself (lh_disp_next_msg) must
 * see and answer exactly what one answering each from recv_msg does */
typedef struct {
  const char *name;
  const char *in[2]; /* fed one after the other */
  int eof;           /* then the peer shuts down */
  int pipelined;     /* fed whole, requests taken by lh_disp_next_msg (the
                      * first of each poll comes through recv_msg) */
} next_case_t;

static void run_next_case(mock_t *m, const next_case_t *k, mock_mode_t svc, int per_byte,
                          int flush_each) {
  lh_conn_opts_t o = mock_opts();
  mock_init(m, &o);
  m->mode = svc;
  m->d.pipeline_flush = flush_each;
  for (int i = 0; i < 2 && k->in[i]; i++) {
    mock_feed_str(m, k->in[i], per_byte);
    while (mock_run_deferred(m)) {
    }
  }
  if (k->eof) mock_eof(m);
  while (mock_run_deferred(m)) {
  }
}

static void dispatch_next_msg_serves_pipelines_as_the_poll_loop_does(void) {
  mock_buf_t many = {0}, more = {0};
  pipelined(20, &many, NULL);
  pipelined(40, &more, NULL);
  mock_buf_add(&many, "", 1);
  mock_buf_add(&more, "", 1);
  const next_case_t cases[] = {
    {"20 GETs", {many.p}, 0, 15 + 3},
    {"40 GETs", {more.p}, 0, 15 + 15 + 7},
    {"bodies", {GET("/1") "POST /2 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello" GET("/3")
                "PUT /4 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
                GET("/5")}, 0, 4},
    {"close", {GET("/1") "GET /2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" GET("/3")}, 0, 1},
    {"http/1.0", {GET("/1") "GET /2 HTTP/1.0\r\n\r\n" GET("/3")}, 0, 1},
    {"1.0 keep-alive", {GET("/1") "GET /2 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" GET("/3")}, 0, 2},
    {"bad head", {GET("/1") GET("/2") "BAD\x01 / HTTP/1.1\r\n\r\n" GET("/4")}, 0, 1},
    {"no host", {GET("/1") "GET /2 HTTP/1.1\r\n\r\n" GET("/3")}, 0, 0},
    {"expect", {GET("/1") "HEAD /2 HTTP/1.1\r\nHost: x\r\n\r\n"
                "PUT /3 HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello"
                GET("/4")}, 0, 2},
    {"split head", {GET("/1") GET("/2") "GET /3 HTTP/1.1\r\nHo", "st: x\r\n\r\n" GET("/4")}, 0, 2},
    {"eof", {GET("/1") GET("/2") GET("/3")}, 1, 2},
    {"eof mid head", {GET("/1") GET("/2") "GET /3 HTTP/1.1\r\n"}, 1, 1},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    for (int per_byte = 0; per_byte < 2; per_byte++) {
      for (int flush_each = 0; flush_each < 2; flush_each++) {
        char ctx[96];
        snprintf(ctx, sizeof ctx, "%s, %s%s", cases[i].name, MODES[per_byte],
                 flush_each ? ", pipeline_flush" : "");
        t_ctx = ctx;
        mock_t a, b;
        run_next_case(&a, &cases[i], MOCK_ANSWER_SYNC, per_byte, flush_each);
        run_next_case(&b, &cases[i], MOCK_ANSWER_NEXT, per_byte, flush_each);
        CHECK_MEM(b.out.p ? b.out.p : "", b.out.n, a.out.p ? a.out.p : "");
        CHECK_EQ(b.out.n, a.out.n);
        CHECK_EQ(b.nrecv, a.nrecv);
        for (int r = 0; r < a.nrecv && r < MOCK_MAX_REQS; r++) CHECK_STR(b.reqs[r].target, a.reqs[r].target);
        CHECK_EQ(b.on_error_calls, a.on_error_calls);
        CHECK_EQ(b.last_error, a.last_error);
        CHECK_EQ(b.close_calls, a.close_calls);
        CHECK_EQ(b.defer_calls, a.defer_calls);
        CHECK_EQ(b.flush_bytes_calls, a.flush_bytes_calls);
        CHECK_EQ(b.reading, a.reading);
        CHECK_EQ(a.recv_calls, a.nrecv);
        /* fed whole, the pipelined requests did not go through recv_msg */
        if (!per_byte) CHECK_EQ(b.nrecv - b.recv_calls, cases[i].pipelined);
        mock_free(&a);
        mock_free(&b);
      }
    }
  }
  mock_buf_free(&many);
  mock_buf_free(&more);
}

static void dispatch_next_msg_leaves_a_held_head_to_the_poll_loop(void) {
  mock_t m;
  lh_conn_opts_t o = mock_opts();
  mock_buf_t exp = {0};
  start(&m, &o, 0);
  m.mode = MOCK_ANSWER_NEXT;
  m.ready = 1;
  /* ready for the first request only: the second waits in the buffer */
  m.on_recv = NULL;
  mock_feed_str(&m, GET("/1"), 0);
  m.ready = 0;
  mock_feed_str(&m, GET("/2") GET("/3"), 0);
  CHECK_EQ(m.nrecv, 1);
  CHECK_EQ(m.d.held, 1);
  m.ready = 1;
  lh_disp_poll(&m.d);
  CHECK_EQ(m.nrecv, 3);
  CHECK_EQ(m.recv_calls, 2);
  add_200(&exp, "/1");
  add_200(&exp, "/2");
  add_200(&exp, "/3");
  CHECK_OUT(&m, &exp);
  /* next_msg is for recv_msg only: outside a poll it takes nothing */
  lh_head_t *h;
  const char *base;
  mock_feed_str(&m, "", 0);
  CHECK_EQ(lh_disp_next_msg(&m.d, &h, &base), 0);
  mock_buf_free(&exp);
  mock_free(&m);
}

static void dispatch_stops_reading_when_pipelined_input_fills_buffer(void) {
  mock_t m;
  lh_conn_opts_t o = mock_opts();
  mock_buf_t in = {0}, exp = {0};
  pipelined(400, &in, &exp); /* > max_buf_size (8192) */
  start(&m, &o, 0);
  m.mode = MOCK_ANSWER_LATER;
  CHECK_EQ(mock_feed(&m, in.p, in.n), in.n);
  CHECK_EQ(m.nrecv, 1);
  CHECK_EQ(m.reading, 0); /* the buffer bounds what a pipelining client pushes */
  m.mode = MOCK_ANSWER_SYNC;
  mock_answer(&m);
  lh_disp_poll(&m.d);
  int ticks = 0;
  while (mock_run_deferred(&m) && ticks < 1000) ticks++;
  CHECK_EQ(m.nrecv, 400);
  CHECK(ticks >= 399 / 16 && ticks <= 399 / 16 + 1); /* 16 turns per tick */
  CHECK_OUT(&m, &exp);
  CHECK_EQ(m.reading, 1);
  CHECK_EQ(m.close_calls, 0);
  mock_buf_free(&in);
  mock_buf_free(&exp);
  mock_free(&m);
}

/* --- asynchronous answers --- */

static void dispatch_answers_asynchronously(void) {
  for (int mode = 0; mode < 2; mode++) {
    mock_t m;
    lh_conn_opts_t o = mock_opts();
    mock_buf_t exp = {0};
    start(&m, &o, mode);
    m.mode = MOCK_ANSWER_LATER;
    mock_feed_str(&m, GET("/later"), mode);
    CHECK_EQ(m.nrecv, 1);
    CHECK_EQ(m.out.n, 0);
    CHECK_EQ(m.d.in_flight, 1);
    CHECK_EQ(m.reading, 1); /* watches for the client going away */
    CHECK_EQ(mock_answer(&m), 0);
    lh_disp_poll(&m.d);
    add_200(&exp, "/later");
    CHECK_OUT(&m, &exp);
    CHECK_EQ(m.d.in_flight, 0);
    CHECK(lh_conn_is_idle(&m.d.conn));
    CHECK_EQ(m.reading, 1);
    CHECK_EQ(m.close_calls, 0);
    mock_buf_free(&exp);
    mock_free(&m);
  }
}

static void dispatch_reads_next_head_only_after_response(void) {
  for (int mode = 0; mode < 2; mode++) {
    mock_t m;
    lh_conn_opts_t o = mock_opts();
    mock_buf_t exp = {0};
    start(&m, &o, mode);
    m.mode = MOCK_ANSWER_LATER;
    mock_feed_str(&m, GET("/a") GET("/b"), mode);
    CHECK_EQ(m.nrecv, 1);
    CHECK_EQ(m.out.n, 0);
    mock_answer(&m);
    lh_disp_poll(&m.d);
    CHECK_EQ(m.nrecv, 2);
    CHECK_STR(m.reqs[1].target, "/b");
    add_200(&exp, "/a");
    CHECK_OUT(&m, &exp);
    mock_answer(&m);
    lh_disp_poll(&m.d);
    CHECK_EQ(m.nrecv, 2);
    add_200(&exp, "/b");
    CHECK_OUT(&m, &exp);
    CHECK_EQ(m.close_calls, 0);
    mock_buf_free(&exp);
    mock_free(&m);
  }
}

static void dispatch_holds_head_until_service_ready(void) {
  for (int mode = 0; mode < 2; mode++) {
    mock_t m;
    lh_conn_opts_t o = mock_opts();
    mock_buf_t exp = {0};
    start(&m, &o, mode);
    m.ready = 0;
    const char *req = GET("/held");
    size_t fed = mock_feed_str(&m, req, mode);
    CHECK_EQ(m.nrecv, 0);
    CHECK(m.poll_ready_calls >= 1);
    CHECK_EQ(m.out.n, 0);
    m.ready = 1;
    lh_disp_poll(&m.d);
    /* byte by byte, reading stopped after the first byte: the rest follows */
    if (fed < strlen(req)) mock_feed_mode(&m, req + fed, strlen(req) - fed, mode);
    CHECK_EQ(m.nrecv, 1);
    add_200(&exp, "/held");
    CHECK_OUT(&m, &exp);
    mock_buf_free(&exp);
    mock_free(&m);
  }
}

/* dispatch.h: poll_ready "0 holds new heads in the kernel" */
static void dispatch_stops_reading_while_service_not_ready(void) {
  mock_t m;
  lh_conn_opts_t o = mock_opts();
  start(&m, &o, 0);
  m.ready = 0;
  mock_feed_str(&m, GET("/held"), 0);
  CHECK_EQ(m.nrecv, 0);
  CHECK_EQ(m.reading, 0);
  m.ready = 1;
  lh_disp_poll(&m.d);
  CHECK_EQ(m.nrecv, 1);
  CHECK_EQ(m.reading, 1);
  mock_free(&m);
}

/* --- request bodies --- */

static void dispatch_reads_body_through_read_body(void) {
  static const char req[] =
      "POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
  for (int mode = 0; mode < 2; mode++) {
    mock_t m;
    lh_conn_opts_t o = mock_opts();
    mock_buf_t exp = {0};
    start(&m, &o, mode);
    m.mode = MOCK_READ_THEN_ANSWER;
    CHECK_EQ(mock_feed_str(&m, req, mode), strlen(req));
    CHECK_EQ(m.nrecv, 1);
    CHECK_EQ(m.body_done, 1);
    CHECK_MEM(m.body.p ? m.body.p : "", m.body.n, "hello world");
    if (mode) CHECK(m.body_ready_calls > 0);
    add_200(&exp, "/up");
    CHECK_OUT(&m, &exp);
    CHECK_EQ(m.close_calls, 0);
    CHECK(lh_conn_is_idle(&m.d.conn));
    mock_buf_free(&exp);
    mock_free(&m);
  }
}

static void dispatch_sends_100_continue_when_service_reads_body(void) {
  static const char head[] =
      "PUT /f HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n";
  for (int mode = 0; mode < 2; mode++) {
    mock_t m;
    lh_conn_opts_t o = mock_opts();
    mock_buf_t exp = {0};
    start(&m, &o, mode);
    m.mode = MOCK_ANSWER_LATER;
    mock_feed_str(&m, head, mode);
    CHECK_EQ(m.nrecv, 1);
    CHECK_EQ(m.reqs[0].expect_continue, 1);
    CHECK_EQ(m.out.n, 0); /* nobody asked for the body yet */
    m.mode = MOCK_READ_THEN_ANSWER;
    m.rbody = "stored";
    mock_read_body(&m);
    lh_disp_poll(&m.d);
    CHECK_OUT_STR(&m, "HTTP/1.1 100 Continue\r\n\r\n");
    CHECK_EQ(m.reading, 1);
    CHECK_EQ(mock_feed_str(&m, "hello", mode), 5);
    CHECK_MEM(m.body.p ? m.body.p : "", m.body.n, "hello");
    CHECK_EQ(m.body_done, 1);
    mock_buf_add(&exp, "HTTP/1.1 100 Continue\r\n\r\n", 25);
    add_200(&exp, "stored");
    CHECK_OUT(&m, &exp);
    CHECK_EQ(m.close_calls, 0);
    mock_buf_free(&exp);
    mock_free(&m);
  }
}

static void dispatch_sends_100_continue_when_body_read_in_recv(void) {
  mock_t m;
  lh_conn_opts_t o = mock_opts();
  mock_buf_t exp = {0};
  start(&m, &o, 0);
  m.mode = MOCK_READ_THEN_ANSWER;
  m.rbody = "stored";
  mock_feed_str(&m, "PUT /f HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n", 0);
  CHECK_OUT_STR(&m, "HTTP/1.1 100 Continue\r\n\r\n");
  mock_feed_str(&m, "hello", 0);
  mock_buf_add(&exp, "HTTP/1.1 100 Continue\r\n\r\n", 25);
  add_200(&exp, "stored");
  CHECK_OUT(&m, &exp);
  mock_buf_free(&exp);
  mock_free(&m);
}

static void dispatch_skips_100_continue_when_answered_without_reading(void) {
  for (int mode = 0; mode < 2; mode++) {
    mock_t m;
    lh_conn_opts_t o = mock_opts();
    mock_buf_t exp = {0};
    start(&m, &o, mode);
    m.rbody = "no";
    mock_feed_str(&m, "PUT /f HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
                  mode);
    add_200(&exp, "no");
    CHECK_OUT(&m, &exp);
    /* the client may or may not send the body: the connection closes */
    CHECK_EQ(m.close_calls, 1);
    CHECK_EQ(m.on_error_calls, 0);
    mock_buf_free(&exp);
    mock_free(&m);
  }
}

static void dispatch_drains_unread_body_when_buffered(void) {
  mock_t m;
  lh_conn_opts_t o = mock_opts();
  mock_buf_t exp = {0};
  start(&m, &o, 0);
  mock_feed_str(&m, "POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello" GET("/g"), 0);
  CHECK_EQ(m.nrecv, 2);
  add_200(&exp, "/p");
  add_200(&exp, "/g");
  CHECK_OUT(&m, &exp);
  CHECK_EQ(m.close_calls, 0);
  CHECK_EQ(m.reading, 1);
  mock_buf_free(&exp);
  mock_free(&m);
}

static void dispatch_drops_unread_body_and_serves_the_next_request(void) {
  static const char *const reqs[2][2] = {
    /* 10 of 1000 bytes arrived when the response went; the rest, then the next */
    {"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n0123456789", NULL},
    /* byte by byte, the body is not there yet when the head is answered */
    {"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello" GET("/g"), NULL},
  };
  for (int mode = 0; mode < 2; mode++) {
    mock_t m;
    lh_conn_opts_t o = mock_opts();
    mock_buf_t exp = {0};
    start(&m, &o, mode);
    mock_feed_str(&m, reqs[mode][0], mode);
    if (mode == 0) {
      CHECK_EQ(m.nrecv, 1);
      /* dropping it: reading on, within the head's deadline */
      CHECK_EQ(m.reading, 1);
      CHECK_EQ(lh_disp_timer_kind(&m.d), LH_DL_HEAD);
      static char rest[990];
      memset(rest, 'r', sizeof rest);
      mock_feed(&m, rest, sizeof rest);
      mock_feed_str(&m, GET("/g"), 0);
    }
    CHECK_EQ(m.nrecv, 2);
    add_200(&exp, "/p");
    add_200(&exp, "/g");
    CHECK_OUT(&m, &exp);
    CHECK_EQ(m.close_calls, 0);
    CHECK_EQ(m.reading, 1);
    CHECK_EQ(m.on_error_calls, 0);
    mock_buf_free(&exp);
    mock_free(&m);
  }
}

static void dispatch_closes_when_dropping_exceeds_its_budget(void) {
  mock_t m;
  lh_conn_opts_t o = mock_opts();
  start(&m, &o, 0);
  mock_feed_str(&m, "POST /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", 0);
  CHECK_EQ(m.nrecv, 1);
  static char chunk[4096];
  memset(chunk, 'z', sizeof chunk);
  for (int i = 0; i < 2 * LH_DISCARD_MAX / 4096 && m.close_calls == 0; i++) {
    mock_feed_str(&m, "1000\r\n", 0);
    mock_feed(&m, chunk, sizeof chunk);
    mock_feed_str(&m, "\r\n", 0);
  }
  CHECK_EQ(m.close_calls, 1);
  CHECK_EQ(m.on_error_calls, 0);
  mock_free(&m);
}

static void dispatch_drop_ends_quietly_when_the_client_gives_up(void) {
  mock_t m;
  lh_conn_opts_t o = mock_opts();
  start(&m, &o, 0);
  mock_feed_str(&m, "POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nabc", 0);
  CHECK_EQ(m.nrecv, 1);
  CHECK_EQ(m.close_calls, 0);
  CHECK_EQ(mock_eof(&m), 1);
  CHECK_EQ(m.close_calls, 1);
  CHECK_EQ(m.on_error_calls, 0);
  mock_free(&m);
}

/* --- EOF and errors --- */

static void dispatch_closes_quietly_on_eof_when_idle(void) {
  for (int served = 0; served < 2; served++) {
    mock_t m;
    lh_conn_opts_t o = mock_opts();
    start(&m, &o, 0);
    if (served) mock_feed_str(&m, GET("/"), 0);
    size_t before = m.out.n;
    CHECK_EQ(mock_eof(&m), 1);
    CHECK_EQ(m.close_calls, 1);
    CHECK_EQ(m.out.n, before);
    CHECK_EQ(m.on_error_calls, 0);
    CHECK_EQ(m.reading, 0);
    CHECK(lh_conn_is_closed(&m.d.conn));
    mock_free(&m);
  }
}

static void dispatch_answers_400_on_eof_mid_head(void) {
  for (int mode = 0; mode < 2; mode++) {
    mock_t m;
    lh_conn_opts_t o = mock_opts();
    start(&m, &o, mode);
    mock_feed_str(&m, "GET / HTTP/1.1\r\nHost: x\r\n", mode);
    CHECK_EQ(m.out.n, 0);
    CHECK_EQ(mock_eof(&m), 1);
    CHECK_EQ(m.nrecv, 0);
    CHECK_OUT_STR(&m, "HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n"
                      DATE_LINE "\r\n");
    CHECK_EQ(m.close_calls, 1);
    CHECK_EQ(m.on_error_calls, 1);
    CHECK_EQ(m.last_error, LH_EINCOMPLETE);
    mock_free(&m);
  }
}

static void dispatch_answers_parse_errors_with_status_and_closes(void) {
  static const struct {
    const char *name, *in;
    int err;
    const char *status_line;
  } cases[] = {
    {"garbage", "\x01garbage\r\n\r\n", 0, "HTTP/1.1 400 Bad Request\r\n"},
    {"missing Host", "GET / HTTP/1.1\r\n\r\n", LH_EPARSE_HOST, "HTTP/1.1 400 Bad Request\r\n"},
    {"TE foo", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: foo\r\n\r\n",
     LH_EPARSE_TE_UNSUPPORTED, "HTTP/1.1 501 Not Implemented\r\n"},
    {"HTTP/2.0", "GET / HTTP/2.0\r\nHost: x\r\n\r\n", LH_EPARSE_VERSION_H2,
     "HTTP/1.1 505 HTTP Version Not Supported\r\n"},
    {"long target", "GET /0123456789abcdefghij HTTP/1.1\r\nHost: x\r\n\r\n",
     LH_EPARSE_URI_TOO_LONG, "HTTP/1.1 414 URI Too Long\r\n"},
    {"too many", "GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n",
     LH_EPARSE_TOO_MANY, "HTTP/1.1 431 Request Header Fields Too Large\r\n"},
    {"CL+TE", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
     0, "HTTP/1.1 400 Bad Request\r\n"},
  };
  char ctx[64];
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    for (int mode = 0; mode < 2; mode++) {
      mock_t m;
      lh_conn_opts_t o = mock_opts();
      o.max_target = 16;
      o.max_headers = 4;
      mock_buf_t in = {0}, exp = {0};
      snprintf(ctx, sizeof ctx, "%s, %s", cases[i].name, MODES[mode]);
      start(&m, &o, mode);
      t_ctx = ctx;
      mock_buf_add(&in, cases[i].in, strlen(cases[i].in));
      mock_buf_add(&in, GET("/next"), strlen(GET("/next")));
      mock_feed_mode(&m, in.p, in.n, mode);
      CHECK_EQ(m.nrecv, 0);
      mock_buf_add(&exp, cases[i].status_line, strlen(cases[i].status_line));
      const char *rest = "content-length: 0\r\nconnection: close\r\n" DATE_LINE "\r\n";
      mock_buf_add(&exp, rest, strlen(rest));
      CHECK_OUT(&m, &exp);
      CHECK_EQ(m.close_calls, 1);
      CHECK_EQ(m.on_error_calls, 1);
      if (cases[i].err) CHECK_EQ(m.last_error, cases[i].err);
      CHECK_EQ(m.reading, 0);
      mock_buf_free(&in);
      mock_buf_free(&exp);
      mock_free(&m);
    }
}

static void dispatch_answers_431_for_head_over_max_buf_size(void) {
  for (int mode = 0; mode < 2; mode++) {
    mock_t m;
    lh_conn_opts_t o = mock_opts();
    o.max_buf_size = 1024;
    mock_buf_t in = {0};
    start(&m, &o, mode);
    const char *h = "GET / HTTP/1.1\r\nHost: x\r\nX-Big: ";
    mock_buf_add(&in, h, strlen(h));
    for (int i = 0; i < 2000; i++) mock_buf_add(&in, "a", 1);
    mock_buf_add(&in, "\r\n\r\n", 4);
    mock_feed_mode(&m, in.p, in.n, mode);
    CHECK_OUT_STR(&m, "HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n"
                      "connection: close\r\n" DATE_LINE "\r\n");
    CHECK_EQ(m.last_error, LH_EPARSE_TOO_LARGE);
    CHECK_EQ(m.close_calls, 1);
    mock_buf_free(&in);
    mock_free(&m);
  }
}

static void dispatch_cancels_in_flight_request_on_eof(void) {
  for (int mode = 0; mode < 2; mode++) {
    mock_t m;
    lh_conn_opts_t o = mock_opts();
    start(&m, &o, mode);
    m.mode = MOCK_ANSWER_LATER;
    mock_feed_str(&m, GET("/slow"), mode);
    CHECK_EQ(m.nrecv, 1);
    CHECK_EQ(mock_eof(&m), 1);
    CHECK_EQ(m.on_error_calls, 1);
    CHECK_EQ(m.last_error, LH_ECANCELED);
    CHECK_EQ(m.close_calls, 1);
    CHECK_EQ(m.out.n, 0);
    CHECK_EQ(m.d.in_flight, 0);
    mock_free(&m);
  }
}

static void dispatch_half_close_writes_response_then_closes(void) {
  for (int mode = 0; mode < 2; mode++) {
    mock_t m;
    lh_conn_opts_t o = mock_opts();
    mock_buf_t exp = {0};
    o.half_close = 1;
    start(&m, &o, mode);
    m.mode = MOCK_ANSWER_LATER;
    mock_feed_str(&m, GET("/slow"), mode);
    CHECK_EQ(mock_eof(&m), 1);
    CHECK_EQ(m.on_error_calls, 0);
    CHECK_EQ(m.close_calls, 0);
    CHECK_EQ(m.reading, 0);
    mock_answer(&m);
    lh_disp_poll(&m.d);
    add_200(&exp, "/slow");
    CHECK_OUT(&m, &exp);
    CHECK_EQ(m.on_error_calls, 0);
    /* the peer has gone and nothing is in flight: nothing can come */
    CHECK_EQ(m.close_calls, 1);
    mock_buf_free(&exp);
    mock_free(&m);
  }
}

static void dispatch_reports_eof_mid_body_to_body_reader(void) {
  for (int mode = 0; mode < 2; mode++) {
    mock_t m;
    lh_conn_opts_t o = mock_opts();
    start(&m, &o, mode);
    m.mode = MOCK_READ_THEN_ANSWER;
    mock_feed_str(&m, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc", mode);
    CHECK_MEM(m.body.p ? m.body.p : "", m.body.n, "abc");
    CHECK_EQ(mock_eof(&m), 1);
    CHECK_EQ(m.body_err, LH_EINCOMPLETE);
    CHECK_EQ(m.body_done, 0);
    CHECK_EQ(m.close_calls, 0); /* the service still answers */
    m.status = 400;
    m.rbody = "";
    mock_answer(&m);
    lh_disp_poll(&m.d);
    CHECK_OUT_STR(&m, "HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n"
                      DATE_LINE "\r\n");
    CHECK_EQ(m.close_calls, 1);
    mock_free(&m);
  }
}

static void dispatch_aborts_on_read_error_in_flight(void) {
  mock_t m;
  lh_conn_opts_t o = mock_opts();
  start(&m, &o, 0);
  m.mode = MOCK_ANSWER_LATER;
  mock_feed_str(&m, GET("/"), 0);
  CHECK_EQ(m.nrecv, 1);
  lh_disp_read_done(&m.d, -104); /* ECONNRESET */
  CHECK_EQ(m.on_error_calls, 1);
  CHECK_EQ(m.last_error, -104);
  CHECK_EQ(m.d.io_error, -104);
  CHECK_EQ(m.close_calls, 1);
  CHECK_EQ(m.reading, 0);
  CHECK_EQ(m.out.n, 0);
  mock_free(&m);
}

static void dispatch_aborts_when_service_refuses_message(void) {
  mock_t m;
  lh_conn_opts_t o = mock_opts();
  start(&m, &o, 0);
  m.mode = MOCK_ANSWER_LATER;
  m.recv_ret = LH_EUSER_SERVICE;
  mock_feed_str(&m, GET("/") GET("/2"), 0);
  CHECK_EQ(m.nrecv, 1);
  CHECK_EQ(m.on_error_calls, 1);
  CHECK_EQ(m.last_error, LH_EUSER_SERVICE);
  CHECK_EQ(m.close_calls, 1);
  CHECK_EQ(m.out.n, 0);
  mock_free(&m);
}

/* --- writing --- */

#define BIG 30000 /* 0x7530 */

static char big_chunk[BIG];

static int stream_recv(mock_t *m, lh_head_t *h, const char *base) {
  lh_conn_t *c = &m->d.conn;
  CHECK_EQ(lh_conn_head_begin(c, 200), 0);
  CHECK_EQ(lh_conn_head_end(c, -1), 0);
  for (int i = 0; i < 3; i++) {
    CHECK_EQ(lh_disp_can_write(&m->d), 1);
    CHECK_EQ(lh_conn_write_body(c, big_chunk, BIG), 0);
  }
  CHECK(lh_conn_pending(c) >= LH_WRITE_HIGH);
  CHECK_EQ(lh_disp_can_write(&m->d), 0);
  return 0;
}

static void stream_finish(mock_t *m) {
  lh_conn_t *c = &m->d.conn;
  CHECK_EQ(lh_disp_can_write(&m->d), 1);
  CHECK_EQ(lh_conn_write_body(c, "tail", 4), 0);
  CHECK_EQ(lh_conn_write_end(c), 0);
}

static void dispatch_waits_for_write_ready_under_backpressure(void) {
  mock_t m;
  lh_conn_opts_t o = mock_opts();
  memset(big_chunk, 'a', BIG);
  start(&m, &o, 0);
  m.async = 1;
  m.on_recv = stream_recv;
  m.on_write_ready = stream_finish;
  mock_feed_str(&m, GET("/big"), 0);
  CHECK_EQ(m.nrecv, 1);
  CHECK_EQ(m.flight, 1);
  CHECK_EQ(m.write_ready_calls, 0);
  CHECK_EQ(m.out.n, 0);
  CHECK_EQ(m.d.in_flight, 1);
  mock_complete_write(&m, 0);
  CHECK_EQ(m.write_ready_calls, 1);
  CHECK_EQ(m.d.in_flight, 0);
  CHECK_EQ(m.flight, 1); /* the tail */
  mock_complete_write(&m, 0);
  CHECK_EQ(m.flight, 0);
  CHECK_EQ(lh_conn_pending(&m.d.conn), 0);
  mock_buf_t exp = {0};
  const char *h = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n" DATE_LINE "\r\n";
  mock_buf_add(&exp, h, strlen(h));
  for (int i = 0; i < 3; i++) {
    mock_buf_add(&exp, "7530\r\n", 6);
    mock_buf_add(&exp, big_chunk, BIG);
    mock_buf_add(&exp, "\r\n", 2);
  }
  mock_buf_add(&exp, "4\r\ntail\r\n0\r\n\r\n", 14);
  CHECK_OUT(&m, &exp);
  CHECK_EQ(m.close_calls, 0);
  CHECK_EQ(m.on_error_calls, 0);
  CHECK(lh_conn_is_idle(&m.d.conn));
  mock_buf_free(&exp);
  mock_free(&m);
}

static void dispatch_aborts_with_on_error_when_flush_fails(void) {
  mock_t m;
  lh_conn_opts_t o = mock_opts();
  memset(big_chunk, 'a', BIG);
  start(&m, &o, 0);
  m.on_recv = stream_recv;
  m.flush_error = -32; /* EPIPE */
  mock_feed_str(&m, GET("/big"), 0);
  CHECK_EQ(m.nrecv, 1);
  CHECK_EQ(m.on_error_calls, 1);
  CHECK_EQ(m.last_error, -32);
  CHECK_EQ(m.d.io_error, -32);
  CHECK_EQ(m.close_calls, 1);
  CHECK_EQ(m.write_ready_calls, 0);
  CHECK(lh_conn_is_closed(&m.d.conn));
  mock_free(&m);
}

static void dispatch_aborts_when_async_write_fails(void) {
  mock_t m;
  lh_conn_opts_t o = mock_opts();
  memset(big_chunk, 'a', BIG);
  start(&m, &o, 0);
  m.async = 1;
  m.on_recv = stream_recv;
  mock_feed_str(&m, GET("/big"), 0);
  CHECK_EQ(m.flight, 1);
  mock_complete_write(&m, -104); /* ECONNRESET */
  CHECK_EQ(m.on_error_calls, 1);
  CHECK_EQ(m.last_error, -104);
  CHECK_EQ(m.write_ready_calls, 0);
  CHECK_EQ(m.close_calls, 1);
  mock_free(&m);
}

/* bytes queued behind a write still in flight when the connection closes
 * go out once it completes; a later failure is kept, with no service call */
static void dispatch_drains_queue_after_close_as_writes_complete(void) {
  for (int fail = 0; fail < 2; fail++) {
    mock_t m;
    lh_conn_opts_t o = mock_opts();
    start(&m, &o, 0);
    m.async = 1;
    m.mode = MOCK_ANSWER_LATER;
    mock_feed_str(&m, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 0);
    CHECK_EQ(m.nrecv, 1);
    CHECK_EQ(lh_disp_head_begin(&m.d, 200), 0);
    CHECK_EQ(lh_disp_head_end(&m.d, -1), 0);
    CHECK_EQ(lh_disp_queue_body(&m.d, "first", 5), 0);
    lh_disp_poll(&m.d);
    CHECK_EQ(m.flight, 1);
    CHECK_EQ(lh_disp_queue_body(&m.d, "second", 6), 0);
    CHECK_EQ(lh_disp_write_end(&m.d), 0);
    lh_disp_poll(&m.d);
    CHECK_EQ(m.close_calls, 1);
    CHECK(lh_disp_is_closing(&m.d));
    CHECK(lh_conn_pending(lh_disp_conn(&m.d)) > 0);
    mock_complete_write(&m, 0); /* the queued rest goes out in a second write */
    CHECK_EQ(m.flight, 1);
    mock_complete_write(&m, fail ? -104 : 0);
    CHECK_EQ(m.flight, 0);
    CHECK_EQ(lh_disp_io_error(&m.d), fail ? -104 : 0);
    CHECK_EQ(m.on_error_calls, 0);
    mock_buf_t exp = {0};
    const char *h = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nconnection: close\r\n" DATE_LINE
                    "\r\n5\r\nfirst\r\n";
    mock_buf_add(&exp, h, strlen(h));
    if (!fail) mock_buf_add(&exp, "6\r\nsecond\r\n0\r\n\r\n", 16);
    CHECK_OUT(&m, &exp);
    mock_buf_free(&exp);
    mock_free(&m);
  }
}

static void dispatch_flushes_partial_writes_until_done(void) {
  mock_t m;
  lh_conn_opts_t o = mock_opts();
  mock_buf_t exp = {0};
  start(&m, &o, 0);
  m.flush_limit = 7;
  mock_feed_str(&m, GET("/partial"), 0);
  CHECK_EQ(m.out.n, 7);
  for (int i = 0; i < 100 && lh_conn_pending(&m.d.conn) > 0; i++) lh_disp_poll(&m.d);
  add_200(&exp, "/partial");
  CHECK_OUT(&m, &exp);
  CHECK_EQ(m.close_calls, 0);
  mock_buf_free(&exp);
  mock_free(&m);
}

/* an Upgrade the service did not take: what follows is HTTP again, and no
 * phantom head is made from a parser paused at the upgrade (fuzz finding) */
static void dispatch_reads_on_after_an_upgrade_nobody_took(void) {
  static const char up[] =
    "GET /a HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n";
  for (int mode = 0; mode < 2; mode++) {
    mock_t m;
    lh_conn_opts_t o = mock_opts();
    start(&m, &o, mode);
    mock_feed_str(&m, up, mode);
    mock_feed_str(&m, GET("/b"), mode);
    CHECK_EQ(m.nrecv, 2);
    CHECK(strcmp(m.reqs[1].target, "/b") == 0);
    mock_free(&m);

    start(&m, &o, mode);
    mock_feed_str(&m, up, mode);
    mock_feed_str(&m, "Transfer-Encoding: ", mode);
    CHECK_EQ(m.nrecv, 1);
    mock_free(&m);
  }
}

/* the raw stream in place (lh_disp_raw_*), as lws.c uses it: bytes are
 * peeked, rewritten and consumed in part; frames are queued with
 * reserve/commit; while the reader waits with nothing queued, the
 * connection holds no buffers */
static int upgrade_on_recv(mock_t *m, lh_head_t *h, const char *base) {
  (void)h;
  (void)base;
  lh_conn_t *c = &m->d.conn;
  int e = lh_conn_head_begin(c, 101);
  if (!e) e = lh_conn_head_field(c, "upgrade", 7, "websocket", 9);
  if (!e) e = lh_conn_head_end(c, -1);
  if (!e) e = lh_disp_upgrade(&m->d);
  m->answer_err = e;
  return 0;
}

static void raw_body_ready(mock_t *m) { m->body_ready_calls++; }

/* a server dispatcher over the mock whose service upgrades a WebSocket
 * handshake it is fed (in one read, or mode 1: a byte at a time); 1 when
 * the upgrade went through */
static int start_upgraded(mock_t *m, lh_conn_opts_t *o, int mode) {
  static const char up[] =
    "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n";
  start(m, o, mode);
  m->on_recv = upgrade_on_recv;
  m->on_body_ready = raw_body_ready;
  mock_feed_str(m, up, mode);
  return m->answer_err == 0;
}

static void dispatch_raw_stream_in_place_holds_no_buffers_while_waiting(void) {
  for (int mode = 0; mode < 2; mode++) {
    mock_t m;
    lh_conn_opts_t o = mock_opts();
    REQUIRE(start_upgraded(&m, &o, mode));
    CHECK_EQ(m.d.raw, 1);
    char *p;
    size_t n;
    /* nothing yet: the reader waits, the poll flushes the 101 and lets go */
    CHECK_EQ(lh_disp_raw_peek(&m.d, &p, &n), 0);
    lh_disp_poll(&m.d);
    CHECK(m.out.n > 0 && memcmp(m.out.p, "HTTP/1.1 101", 12) == 0);
    CHECK_EQ(m.reading, 1);
    CHECK_EQ(m.d.conn.rbuf.cap, 0);
    CHECK_EQ(m.d.conn.wq.blk[0].cap + m.d.conn.wq.blk[1].cap, 0);
    /* bytes arrive: body_ready; peek sees them all, rewritable */
    int before = m.body_ready_calls;
    mock_feed_str(&m, "abcdef", 0); /* one read: the reader pulls one at a time */
    CHECK(m.body_ready_calls > before);
    REQUIRE_EQ(lh_disp_raw_peek(&m.d, &p, &n), 1);
    CHECK_EQ(n, 6);
    p[0] = 'A';
    lh_disp_raw_consume(&m.d, 2);
    REQUIRE_EQ(lh_disp_raw_peek(&m.d, &p, &n), 1);
    CHECK_MEM(p, n, "cdef");
    lh_disp_raw_consume(&m.d, 4);
    /* a frame out through reserve/commit */
    size_t out_before = m.out.n;
    char *q = lh_disp_raw_reserve(&m.d, 5);
    REQUIRE(q != NULL);
    memcpy(q, "hello", 5);
    lh_disp_raw_commit(&m.d, 5);
    CHECK_EQ(lh_disp_raw_peek(&m.d, &p, &n), 0);
    lh_disp_poll(&m.d);
    CHECK_MEM(m.out.p + out_before, m.out.n - out_before, "hello");
    CHECK_EQ(m.d.conn.rbuf.cap, 0);
    CHECK_EQ(m.d.conn.wq.blk[0].cap + m.d.conn.wq.blk[1].cap, 0);
    /* the peer shuts down: peek says EOF; a close lingers */
    mock_eof(&m);
    CHECK_EQ(lh_disp_raw_peek(&m.d, &p, &n), 2);
    lh_disp_raw_close(&m.d);
    CHECK(lh_disp_raw_reserve(&m.d, 1) == NULL || lh_conn_is_closed(&m.d.conn));
    lh_disp_poll(&m.d);
    CHECK_EQ(m.close_calls, 1);
    mock_free(&m);
  }
}

/* an upgraded stream waiting with nothing in progress may give its
 * dispatcher back (sconn.c: an idle WebSocket sleeps): one made anew that
 * carries its state reads, writes and closes as the first would have, and
 * parses no head */
static void dispatch_raw_stream_carries_over_to_a_new_dispatcher(void) {
  for (int mode = 0; mode < 2; mode++) {
    mock_t m;
    lh_conn_opts_t o = mock_opts();
    REQUIRE(start_upgraded(&m, &o, mode));
    char *p;
    size_t n;
    CHECK_EQ(lh_disp_raw_peek(&m.d, &p, &n), 0);
    lh_disp_poll(&m.d);
    REQUIRE_EQ(lh_disp_raw_is_quiet(&m.d), 1);
    /* the hand-over, as sconn_sleep and sconn_wake do it */
    uint32_t served = lh_disp_served(&m.d);
    int reading = lh_disp_is_reading(&m.d), in_flight = m.d.in_flight, want = m.d.want_body;
    CHECK_EQ(want, 1);
    lh_disp_free(&m.d);
    lh_disp_init(&m.d, LH_ROLE_SERVER, &o, &mock_service, &mock_io, &m);
    lh_disp_carry(&m.d, served, reading);
    lh_disp_carry_raw(&m.d, in_flight, want);
    CHECK_EQ(m.d.raw, 1);
    CHECK_EQ(lh_disp_raw_is_quiet(&m.d), 1);
    CHECK_EQ(lh_disp_timer_kind(&m.d), LH_DL_NONE);
    /* bytes that look like a head are the stream's */
    int before = m.body_ready_calls, recv_before = m.recv_calls;
    mock_feed_str(&m, "GET / HTTP/1.1\r\n\r\n", 0);
    CHECK(m.body_ready_calls > before);
    CHECK_EQ(m.recv_calls, recv_before);
    CHECK_EQ(lh_disp_raw_is_quiet(&m.d), 0); /* bytes buffered */
    REQUIRE_EQ(lh_disp_raw_peek(&m.d, &p, &n), 1);
    CHECK_MEM(p, n, "GET / HTTP/1.1\r\n\r\n");
    lh_disp_raw_consume(&m.d, n);
    size_t out_before = m.out.n;
    char *q = lh_disp_raw_reserve(&m.d, 2);
    REQUIRE(q != NULL);
    memcpy(q, "ok", 2);
    lh_disp_raw_commit(&m.d, 2);
    CHECK_EQ(lh_disp_raw_is_quiet(&m.d), 0); /* bytes queued */
    CHECK_EQ(lh_disp_raw_peek(&m.d, &p, &n), 0);
    lh_disp_poll(&m.d);
    CHECK_MEM(m.out.p + out_before, m.out.n - out_before, "ok");
    CHECK_EQ(lh_disp_raw_is_quiet(&m.d), 1);
    /* the peer goes: not quiet any more; the close goes through */
    mock_eof(&m);
    CHECK_EQ(lh_disp_raw_is_quiet(&m.d), 0);
    CHECK_EQ(lh_disp_raw_peek(&m.d, &p, &n), 2);
    lh_disp_raw_close(&m.d);
    lh_disp_poll(&m.d);
    CHECK_EQ(m.close_calls, 1);
    mock_free(&m);
  }
}

int main(void) {
  guard_init();
  lh_date_freeze(0);
  static const test_case_t tests[] = {
    TEST_CASE(dispatch_answers_request_and_keeps_connection_open),
    TEST_CASE(dispatch_closes_after_http10_response),
    TEST_CASE(dispatch_stops_after_connection_close_request),
    TEST_CASE(dispatch_batches_pipelined_responses_in_one_flush),
    TEST_CASE(dispatch_pipeline_flush_flushes_each_response),
    TEST_CASE(dispatch_yields_after_16_pipelined_requests),
    TEST_CASE(dispatch_next_msg_serves_pipelines_as_the_poll_loop_does),
    TEST_CASE(dispatch_next_msg_leaves_a_held_head_to_the_poll_loop),
    TEST_CASE(dispatch_stops_reading_when_pipelined_input_fills_buffer),
    TEST_CASE(dispatch_answers_asynchronously),
    TEST_CASE(dispatch_reads_next_head_only_after_response),
    TEST_CASE(dispatch_holds_head_until_service_ready),
    TEST_CASE(dispatch_stops_reading_while_service_not_ready),
    TEST_CASE(dispatch_reads_body_through_read_body),
    TEST_CASE(dispatch_sends_100_continue_when_service_reads_body),
    TEST_CASE(dispatch_sends_100_continue_when_body_read_in_recv),
    TEST_CASE(dispatch_skips_100_continue_when_answered_without_reading),
    TEST_CASE(dispatch_drains_unread_body_when_buffered),
    TEST_CASE(dispatch_drops_unread_body_and_serves_the_next_request),
    TEST_CASE(dispatch_closes_when_dropping_exceeds_its_budget),
    TEST_CASE(dispatch_drop_ends_quietly_when_the_client_gives_up),
    TEST_CASE(dispatch_closes_quietly_on_eof_when_idle),
    TEST_CASE(dispatch_answers_400_on_eof_mid_head),
    TEST_CASE(dispatch_answers_parse_errors_with_status_and_closes),
    TEST_CASE(dispatch_answers_431_for_head_over_max_buf_size),
    TEST_CASE(dispatch_cancels_in_flight_request_on_eof),
    TEST_CASE(dispatch_half_close_writes_response_then_closes),
    TEST_CASE(dispatch_reports_eof_mid_body_to_body_reader),
    TEST_CASE(dispatch_aborts_on_read_error_in_flight),
    TEST_CASE(dispatch_aborts_when_service_refuses_message),
    TEST_CASE(dispatch_waits_for_write_ready_under_backpressure),
    TEST_CASE(dispatch_aborts_with_on_error_when_flush_fails),
    TEST_CASE(dispatch_aborts_when_async_write_fails),
    TEST_CASE(dispatch_drains_queue_after_close_as_writes_complete),
    TEST_CASE(dispatch_flushes_partial_writes_until_done),
    TEST_CASE(dispatch_reads_on_after_an_upgrade_nobody_took),
    TEST_CASE(dispatch_raw_stream_in_place_holds_no_buffers_while_waiting),
    TEST_CASE(dispatch_raw_stream_carries_over_to_a_new_dispatcher),
  };
  return T_RUN(tests);
}
