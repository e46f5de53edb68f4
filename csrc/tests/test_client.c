/* The client role of Conn and Dispatcher over the mock transport: requests
 * written, responses read (length, chunked, close-delimited, bodiless),
 * interim 1xx heads, keep-alive and the idle checks of a pooled connection. */
#include <stdlib.h>
#include <string.h>

#include "mock_io.h"
#include "test.h"

static const char *const MODES[2] = {"whole", "bytes"};

/* what the client service saw */
typedef struct {
  int heads;          /* recv_msg calls, 1xx included */
  int interim;        /* of which 1xx */
  int status;         /* last final status */
  int minor;
  int keep_alive;
  int has_body;
  char hname[64], hval[64]; /* first header field */
  int read_on_recv;   /* read the body as soon as the head is there */
} client_rec_t;

static client_rec_t *REC(mock_t *m) { return m->user; }

static void copy_span(char *dst, size_t cap, const char *base, lh_span_t s) {
  size_t n = s.len < cap - 1 ? s.len : cap - 1;
  memcpy(dst, base + s.off, n);
  dst[n] = 0;
}

/* reads the response body until it ends, needs more bytes or fails */
static void read_body(mock_t *m) {
  for (;;) {
    const char *p;
    size_t n;
    int r = lh_disp_read_body(&m->d, &p, &n);
    if (r == 1) {
      mock_buf_add(&m->body, p, n);
      m->body_chunks++;
      continue;
    }
    if (r == 2) m->body_done = 1;
    if (r < 0) m->body_err = r;
    return;
  }
}

static int on_recv(mock_t *m, lh_head_t *h, const char *base) {
  client_rec_t *rec = REC(m);
  rec->heads++;
  if (h->status / 100 == 1 && h->status != 101) {
    rec->interim++;
    return 0;
  }
  rec->status = h->status;
  rec->minor = h->minor;
  rec->keep_alive = h->keep_alive;
  rec->has_body = h->has_body;
  if (h->nfields) {
    copy_span(rec->hname, sizeof rec->hname, base, h->fields[0].name);
    copy_span(rec->hval, sizeof rec->hval, base, h->fields[0].value);
  }
  if (rec->read_on_recv) read_body(m);
  return 0;
}

static void on_body_ready(mock_t *m) { read_body(m); }

static void client_init(mock_t *m, client_rec_t *rec, const lh_conn_opts_t *o) {
  memset(m, 0, sizeof *m);
  memset(rec, 0, sizeof *rec);
  lh_date_freeze(0);
  lh_disp_init(&m->d, LH_ROLE_CLIENT, o, &mock_service, &mock_io, m);
  m->ready = 1;
  m->user = rec;
  m->on_recv = on_recv;
  m->on_body_ready = on_body_ready;
  rec->read_on_recv = 1;
  lh_disp_poll(&m->d);
}

/* writes one request as the binding does: head, body, end, then a poll */
static int send_request(mock_t *m, const char *method, const char *target, const char *hdrs[],
                        const char *body, int streamed) {
  lh_conn_t *c = &m->d.conn;
  int r = lh_conn_req_begin(c, method, strlen(method), target, strlen(target));
  for (int i = 0; !r && hdrs && hdrs[i]; i += 2)
    r = lh_conn_head_field(c, hdrs[i], strlen(hdrs[i]), hdrs[i + 1], strlen(hdrs[i + 1]));
  if (!r) r = lh_conn_head_end(c, streamed ? -1 : (int64_t)(body ? strlen(body) : 0));
  if (r) {
    lh_conn_head_abort(c);
    return r;
  }
  m->d.in_flight = 1;
  if (body && *body) r = lh_conn_write_body(c, body, strlen(body));
  if (!r) r = lh_conn_write_end(c);
  lh_disp_poll(&m->d);
  return r;
}

static void reset_body(mock_t *m) {
  mock_buf_free(&m->body);
  m->body_done = m->body_err = m->body_chunks = 0;
}

#define CHECK_OUT_STR(m, s) CHECK_MEM((m)->out.p ? (m)->out.p : "", (m)->out.n, (s))
#define CHECK_BODY(m, s) CHECK_MEM((m)->body.p ? (m)->body.p : "", (m)->body.n, (s))

/* --- writing requests --- */

static void client_writes_request_line_and_fields(void) {
  mock_t m;
  client_rec_t rec;
  lh_conn_opts_t o = mock_opts();
  client_init(&m, &rec, &o);
  const char *h[] = {"host", "example.com:8080", "x-a", "1", NULL};
  CHECK_EQ(send_request(&m, "GET", "/p?q=1", h, NULL, 0), 0);
  /* no Content-Length for a GET without a body, no Date from a client */
  CHECK_OUT_STR(&m, "GET /p?q=1 HTTP/1.1\r\nhost: example.com:8080\r\nx-a: 1\r\n\r\n");
  CHECK_EQ(m.reading, 1);
  CHECK_EQ(m.close_calls, 0);
  mock_free(&m);
}

static void client_sends_content_length_for_string_body(void) {
  mock_t m;
  client_rec_t rec;
  lh_conn_opts_t o = mock_opts();
  client_init(&m, &rec, &o);
  const char *h[] = {"host", "x", NULL};
  CHECK_EQ(send_request(&m, "POST", "/up", h, "hello", 0), 0);
  CHECK_OUT_STR(&m, "POST /up HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\n\r\nhello");
  mock_free(&m);
}

static void client_sends_zero_length_only_for_methods_with_body_semantics(void) {
  mock_t m;
  client_rec_t rec;
  lh_conn_opts_t o = mock_opts();
  client_init(&m, &rec, &o);
  CHECK_EQ(send_request(&m, "POST", "/", NULL, NULL, 0), 0);
  CHECK_OUT_STR(&m, "POST / HTTP/1.1\r\ncontent-length: 0\r\n\r\n");
  mock_free(&m);
  client_init(&m, &rec, &o);
  CHECK_EQ(send_request(&m, "DELETE", "/x", NULL, NULL, 0), 0);
  CHECK_OUT_STR(&m, "DELETE /x HTTP/1.1\r\n\r\n");
  mock_free(&m);
}

static void client_streams_chunked_body_with_trailers(void) {
  mock_t m;
  client_rec_t rec;
  lh_conn_opts_t o = mock_opts();
  client_init(&m, &rec, &o);
  lh_conn_t *c = &m.d.conn;
  CHECK_EQ(lh_conn_req_begin(c, "PUT", 3, "/f", 2), 0);
  CHECK_EQ(lh_conn_head_end(c, -1), 0);
  m.d.in_flight = 1;
  CHECK_EQ(lh_conn_write_body(c, "abc", 3), 0);
  CHECK_EQ(lh_conn_write_body(c, "", 0), 0); /* empty chunks are skipped */
  CHECK_EQ(lh_conn_write_body(c, "0123456789", 10), 0);
  CHECK_EQ(lh_conn_write_trailer(c, "x-sum", 5, "42", 2), 0);
  CHECK_EQ(lh_conn_write_end(c), 0);
  lh_disp_poll(&m.d);
  CHECK_OUT_STR(&m, "PUT /f HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n"
                    "3\r\nabc\r\na\r\n0123456789\r\n0\r\nx-sum: 42\r\n\r\n");
  mock_free(&m);
}

static void client_uses_user_content_length_for_streamed_body(void) {
  mock_t m;
  client_rec_t rec;
  lh_conn_opts_t o = mock_opts();
  client_init(&m, &rec, &o);
  lh_conn_t *c = &m.d.conn;
  CHECK_EQ(lh_conn_req_begin(c, "PUT", 3, "/f", 2), 0);
  CHECK_EQ(lh_conn_head_field(c, "Content-Length", 14, "4", 1), 0);
  CHECK_EQ(lh_conn_head_end(c, -1), 0);
  CHECK_EQ(lh_conn_write_body(c, "ab", 2), 0);
  CHECK_EQ(lh_conn_write_body(c, "cde", 3), LH_EUSER_BODY); /* past the length */
  mock_free(&m);
}

static void client_refuses_bad_method_or_target(void) {
  mock_t m;
  client_rec_t rec;
  lh_conn_opts_t o = mock_opts();
  client_init(&m, &rec, &o);
  lh_conn_t *c = &m.d.conn;
  CHECK_EQ(lh_conn_req_begin(c, "GE T", 4, "/", 1), LH_EUSER_HEADER);
  CHECK_EQ(lh_conn_req_begin(c, "GET", 3, "/a b", 4), LH_EUSER_HEADER);
  CHECK_EQ(lh_conn_req_begin(c, "GET", 3, "/a\r\nX: y", 8), LH_EUSER_HEADER);
  CHECK_EQ(lh_conn_req_begin(c, "GET", 3, "", 0), LH_EUSER_HEADER);
  CHECK_EQ(lh_conn_req_begin(c, "", 0, "/", 1), LH_EUSER_HEADER);
  CHECK_EQ(lh_conn_pending(c), 0);
  /* a server conn cannot write a request line */
  lh_conn_t s;
  lh_conn_init(&s, LH_ROLE_SERVER, &o);
  CHECK_EQ(lh_conn_req_begin(&s, "GET", 3, "/", 1), LH_ECLOSED);
  lh_conn_free(&s);
  mock_free(&m);
}

static void client_writes_connection_close_when_keep_alive_is_off(void) {
  mock_t m;
  client_rec_t rec;
  lh_conn_opts_t o = mock_opts();
  o.keep_alive = 0;
  client_init(&m, &rec, &o);
  CHECK_EQ(send_request(&m, "GET", "/", NULL, NULL, 0), 0);
  CHECK_OUT_STR(&m, "GET / HTTP/1.1\r\nconnection: close\r\n\r\n");
  mock_feed_str(&m, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 0);
  CHECK_BODY(&m, "ok");
  CHECK_EQ(m.close_calls, 1);
  CHECK_EQ(m.on_error_calls, 0);
  mock_free(&m);
}

/* --- reading responses --- */

static void client_reads_length_response_and_goes_idle(void) {
  static const char res[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello";
  for (int mode = 0; mode < 2; mode++) {
    mock_t m;
    client_rec_t rec;
    lh_conn_opts_t o = mock_opts();
    t_ctx = MODES[mode];
    client_init(&m, &rec, &o);
    send_request(&m, "GET", "/", NULL, NULL, 0);
    CHECK_EQ(mock_feed_str(&m, res, mode), strlen(res));
    CHECK_EQ(rec.heads, 1);
    CHECK_EQ(rec.status, 200);
    CHECK_EQ(rec.minor, 1);
    CHECK_EQ(rec.keep_alive, 1);
    CHECK_STR(rec.hname, "Content-Type");
    CHECK_STR(rec.hval, "text/plain");
    CHECK_BODY(&m, "hello");
    CHECK_EQ(m.body_done, 1);
    CHECK(lh_conn_is_idle(&m.d.conn));
    CHECK_EQ(m.d.in_flight, 0);
    CHECK_EQ(m.reading, 1); /* an idle client watches for EOF */
    CHECK_EQ(m.close_calls, 0);
    mock_free(&m);
  }
}

static void client_reuses_connection_for_next_request(void) {
  mock_t m;
  client_rec_t rec;
  lh_conn_opts_t o = mock_opts();
  client_init(&m, &rec, &o);
  send_request(&m, "GET", "/a", NULL, NULL, 0);
  mock_feed_str(&m, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na", 0);
  CHECK(lh_conn_is_idle(&m.d.conn));
  reset_body(&m);
  m.out.n = 0;
  CHECK_EQ(send_request(&m, "GET", "/b", NULL, NULL, 0), 0);
  CHECK_OUT_STR(&m, "GET /b HTTP/1.1\r\n\r\n");
  mock_feed_str(&m, "HTTP/1.1 201 Created\r\nContent-Length: 1\r\n\r\nb", 0);
  CHECK_EQ(rec.status, 201);
  CHECK_BODY(&m, "b");
  CHECK(lh_conn_is_idle(&m.d.conn));
  CHECK_EQ(m.close_calls, 0);
  mock_free(&m);
}

static void client_reads_chunked_response_with_trailers(void) {
  static const char res[] =
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5\r\nhello\r\n6\r\n world\r\n0\r\nX-Check: yes\r\n\r\n";
  for (int mode = 0; mode < 2; mode++) {
    mock_t m;
    client_rec_t rec;
    lh_conn_opts_t o = mock_opts();
    t_ctx = MODES[mode];
    client_init(&m, &rec, &o);
    send_request(&m, "GET", "/", NULL, NULL, 0);
    CHECK_EQ(mock_feed_str(&m, res, mode), strlen(res));
    CHECK_BODY(&m, "hello world");
    CHECK_EQ(m.body_done, 1);
    lh_parser_t *p = &m.d.conn.parser;
    REQUIRE_EQ(p->ntrailers, 1);
    CHECK_MEM(p->tbytes + p->tfields[0].name.off, p->tfields[0].name.len, "X-Check");
    CHECK_MEM(p->tbytes + p->tfields[0].value.off, p->tfields[0].value.len, "yes");
    CHECK(lh_conn_is_idle(&m.d.conn));
    mock_free(&m);
  }
}

static void client_reads_close_delimited_response_until_eof(void) {
  for (int mode = 0; mode < 2; mode++) {
    mock_t m;
    client_rec_t rec;
    lh_conn_opts_t o = mock_opts();
    t_ctx = MODES[mode];
    client_init(&m, &rec, &o);
    send_request(&m, "GET", "/", NULL, NULL, 0);
    mock_feed_str(&m, "HTTP/1.1 200 OK\r\n\r\nuntil the end", mode);
    CHECK_EQ(rec.status, 200);
    CHECK_EQ(rec.keep_alive, 0);
    CHECK_EQ(m.body_done, 0);
    CHECK_EQ(mock_eof(&m), 1);
    CHECK_BODY(&m, "until the end");
    CHECK_EQ(m.body_done, 1);
    CHECK_EQ(m.body_err, 0);
    CHECK_EQ(m.close_calls, 1);
    CHECK_EQ(m.on_error_calls, 0);
    mock_free(&m);
  }
}

static void client_skips_interim_responses(void) {
  static const char res[] =
      "HTTP/1.1 100 Continue\r\n\r\n"
      "HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n"
      "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
  for (int mode = 0; mode < 2; mode++) {
    mock_t m;
    client_rec_t rec;
    lh_conn_opts_t o = mock_opts();
    t_ctx = MODES[mode];
    client_init(&m, &rec, &o);
    send_request(&m, "POST", "/", NULL, "x", 0);
    CHECK_EQ(mock_feed_str(&m, res, mode), strlen(res));
    CHECK_EQ(rec.interim, 2);
    CHECK_EQ(rec.heads, 3);
    CHECK_EQ(rec.status, 200);
    CHECK_BODY(&m, "ok");
    CHECK(lh_conn_is_idle(&m.d.conn));
    mock_free(&m);
  }
}

static void client_100_continue_arrives_before_body_is_sent(void) {
  mock_t m;
  client_rec_t rec;
  lh_conn_opts_t o = mock_opts();
  client_init(&m, &rec, &o);
  lh_conn_t *c = &m.d.conn;
  CHECK_EQ(lh_conn_req_begin(c, "PUT", 3, "/big", 4), 0);
  CHECK_EQ(lh_conn_head_field(c, "expect", 6, "100-continue", 12), 0);
  CHECK_EQ(lh_conn_head_end(c, 4), 0);
  m.d.in_flight = 1;
  lh_disp_poll(&m.d);
  CHECK_OUT_STR(&m, "PUT /big HTTP/1.1\r\nexpect: 100-continue\r\ncontent-length: 4\r\n\r\n");
  mock_feed_str(&m, "HTTP/1.1 100 Continue\r\n\r\n", 0);
  CHECK_EQ(rec.interim, 1);
  CHECK_EQ(c->reading, LH_READING_INIT);
  CHECK_EQ(lh_conn_write_body(c, "data", 4), 0);
  CHECK_EQ(lh_conn_write_end(c), 0);
  lh_disp_poll(&m.d);
  mock_feed_str(&m, "HTTP/1.1 204 No Content\r\n\r\n", 0);
  CHECK_EQ(rec.status, 204);
  CHECK(lh_conn_is_idle(&m.d.conn));
  CHECK_EQ(m.close_calls, 0);
  mock_free(&m);
}

static void client_head_response_has_no_body(void) {
  for (int mode = 0; mode < 2; mode++) {
    mock_t m;
    client_rec_t rec;
    lh_conn_opts_t o = mock_opts();
    t_ctx = MODES[mode];
    client_init(&m, &rec, &o);
    send_request(&m, "HEAD", "/", NULL, NULL, 0);
    mock_feed_str(&m, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n", mode);
    CHECK_EQ(rec.status, 200);
    CHECK_EQ(rec.has_body, 0);
    CHECK_EQ(m.body_done, 1);
    CHECK_EQ(m.body.n, 0);
    CHECK(lh_conn_is_idle(&m.d.conn));
    /* the next response is read from the right place */
    reset_body(&m);
    send_request(&m, "GET", "/", NULL, NULL, 0);
    mock_feed_str(&m, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc", mode);
    CHECK_BODY(&m, "abc");
    CHECK(lh_conn_is_idle(&m.d.conn));
    mock_free(&m);
  }
}

static void client_204_and_304_have_no_body(void) {
  static const char *const res[] = {
      "HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n",
      "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n",
      "HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n"};
  for (int i = 0; i < 3; i++) {
    mock_t m;
    client_rec_t rec;
    lh_conn_opts_t o = mock_opts();
    client_init(&m, &rec, &o);
    send_request(&m, "GET", "/", NULL, NULL, 0);
    mock_feed_str(&m, res[i], 0);
    CHECK_EQ(rec.has_body, 0);
    CHECK_EQ(m.body_done, 1);
    CHECK(lh_conn_is_idle(&m.d.conn));
    mock_free(&m);
  }
}

static void client_closes_after_connection_close_response(void) {
  mock_t m;
  client_rec_t rec;
  lh_conn_opts_t o = mock_opts();
  client_init(&m, &rec, &o);
  send_request(&m, "GET", "/", NULL, NULL, 0);
  mock_feed_str(&m, "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", 0);
  CHECK_BODY(&m, "ok");
  CHECK_EQ(m.close_calls, 1);
  CHECK_EQ(m.on_error_calls, 0);
  mock_free(&m);
}

static void client_closes_after_http10_response(void) {
  mock_t m;
  client_rec_t rec;
  lh_conn_opts_t o = mock_opts();
  client_init(&m, &rec, &o);
  send_request(&m, "GET", "/", NULL, NULL, 0);
  mock_feed_str(&m, "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", 0);
  CHECK_EQ(rec.minor, 0);
  CHECK_BODY(&m, "ok");
  CHECK_EQ(m.close_calls, 1);
  mock_free(&m);
  /* unless it asked for keep-alive */
  client_init(&m, &rec, &o);
  send_request(&m, "GET", "/", NULL, NULL, 0);
  mock_feed_str(&m, "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok", 0);
  CHECK(lh_conn_is_idle(&m.d.conn));
  CHECK_EQ(m.close_calls, 0);
  mock_free(&m);
}

/* --- a pooled (idle) connection --- */

static void client_accepts_eof_when_idle(void) {
  mock_t m;
  client_rec_t rec;
  lh_conn_opts_t o = mock_opts();
  client_init(&m, &rec, &o);
  send_request(&m, "GET", "/", NULL, NULL, 0);
  mock_feed_str(&m, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 0);
  CHECK(lh_conn_is_idle(&m.d.conn));
  CHECK_EQ(mock_eof(&m), 1);
  CHECK_EQ(m.close_calls, 1);
  CHECK_EQ(m.on_error_calls, 0);
  CHECK_EQ(m.d.conn.error, 0);
  mock_free(&m);
}

static void client_closes_idle_connection_on_stray_bytes(void) {
  for (int mode = 0; mode < 2; mode++) {
    mock_t m;
    client_rec_t rec;
    lh_conn_opts_t o = mock_opts();
    t_ctx = MODES[mode];
    client_init(&m, &rec, &o);
    /* a fresh connection that nobody sent a request on */
    mock_feed_str(&m, "HTTP/1.1 408 Request Timeout\r\n\r\n", mode);
    CHECK_EQ(rec.heads, 0);
    CHECK_EQ(m.close_calls, 1);
    CHECK_EQ(m.d.conn.error, LH_EUNEXPECTED);
    mock_free(&m);
  }
}

static void client_closes_on_extra_bytes_after_response(void) {
  mock_t m;
  client_rec_t rec;
  lh_conn_opts_t o = mock_opts();
  client_init(&m, &rec, &o);
  send_request(&m, "GET", "/", NULL, NULL, 0);
  mock_feed_str(&m, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokGARBAGE", 0);
  CHECK_BODY(&m, "ok");
  CHECK_EQ(m.close_calls, 1);
  CHECK_EQ(m.d.conn.error, LH_EUNEXPECTED);
  mock_free(&m);
}

/* --- failures --- */

static void client_reports_eof_before_response_as_incomplete(void) {
  mock_t m;
  client_rec_t rec;
  lh_conn_opts_t o = mock_opts();
  client_init(&m, &rec, &o);
  send_request(&m, "GET", "/", NULL, NULL, 0);
  CHECK_EQ(mock_eof(&m), 1);
  CHECK_EQ(m.on_error_calls, 1);
  CHECK_EQ(m.last_error, LH_EINCOMPLETE);
  CHECK_EQ(m.close_calls, 1);
  mock_free(&m);
}

static void client_reports_eof_in_head_as_incomplete(void) {
  mock_t m;
  client_rec_t rec;
  lh_conn_opts_t o = mock_opts();
  client_init(&m, &rec, &o);
  send_request(&m, "GET", "/", NULL, NULL, 0);
  mock_feed_str(&m, "HTTP/1.1 200 OK\r\nContent-Le", 0);
  CHECK_EQ(mock_eof(&m), 1);
  CHECK_EQ(m.on_error_calls, 1);
  CHECK_EQ(m.last_error, LH_EINCOMPLETE);
  mock_free(&m);
}

static void client_reports_eof_mid_body_as_incomplete(void) {
  static const char *const res[] = {
      "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel"};
  for (int i = 0; i < 2; i++) {
    mock_t m;
    client_rec_t rec;
    lh_conn_opts_t o = mock_opts();
    client_init(&m, &rec, &o);
    send_request(&m, "GET", "/", NULL, NULL, 0);
    mock_feed_str(&m, res[i], 0);
    CHECK_EQ(m.body_done, 0);
    CHECK_EQ(mock_eof(&m), 1);
    CHECK_EQ(m.body_err, LH_EINCOMPLETE);
    CHECK_EQ(m.close_calls, 1);
    mock_free(&m);
  }
}

static void client_reports_bad_status_line_as_parse_error(void) {
  static const char *const res[] = {
      "HTTP/1.1 2x0 OK\r\n\r\n",
      "HTTX/1.1 200 OK\r\n\r\n",
      "HTTP/1.1 200 OK\r\nBad Header: x\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"};
  for (int i = 0; i < 4; i++) {
    mock_t m;
    client_rec_t rec;
    lh_conn_opts_t o = mock_opts();
    client_init(&m, &rec, &o);
    send_request(&m, "GET", "/", NULL, NULL, 0);
    mock_feed_str(&m, res[i], 0);
    CHECK_EQ(rec.heads, 0);
    CHECK_EQ(m.on_error_calls, 1);
    CHECK_EQ(lh_err_kind(m.last_error) ? strcmp(lh_err_kind(m.last_error), "parse") : -1, 0);
    CHECK_EQ(m.close_calls, 1);
    CHECK_EQ(m.out.n > 0, 1); /* only the request: nothing answered back */
    CHECK_EQ(memcmp(m.out.p, "GET / HTTP/1.1\r\n", 16), 0);
    mock_free(&m);
  }
}

static void client_reports_bad_chunk_as_parse_error(void) {
  mock_t m;
  client_rec_t rec;
  lh_conn_opts_t o = mock_opts();
  client_init(&m, &rec, &o);
  send_request(&m, "GET", "/", NULL, NULL, 0);
  mock_feed_str(&m, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 0);
  CHECK_EQ(m.body_err, LH_EPARSE_CHUNK);
  CHECK_EQ(m.close_calls, 1);
  mock_free(&m);
}

static void client_refuses_too_large_response_head(void) {
  mock_t m;
  client_rec_t rec;
  lh_conn_opts_t o = mock_opts();
  client_init(&m, &rec, &o);
  send_request(&m, "GET", "/", NULL, NULL, 0);
  mock_buf_t in = {0};
  mock_buf_add(&in, "HTTP/1.1 200 OK\r\n", 17);
  static char line[160];
  memset(line, 'v', sizeof line);
  memcpy(line, "X-Filler: ", 10);
  memcpy(line + sizeof line - 2, "\r\n", 2);
  for (int i = 0; i < 60; i++) mock_buf_add(&in, line, sizeof line); /* 60 fields, > 8192 bytes */
  mock_feed(&m, in.p, in.n);
  CHECK_EQ(m.on_error_calls, 1);
  CHECK_EQ(m.last_error, LH_EPARSE_TOO_LARGE);
  CHECK_EQ(m.close_calls, 1);
  mock_buf_free(&in);
  mock_free(&m);
}

/* --- flow control --- */

static void client_reads_body_only_when_asked(void) {
  mock_t m;
  client_rec_t rec;
  lh_conn_opts_t o = mock_opts();
  client_init(&m, &rec, &o);
  rec.read_on_recv = 0;
  send_request(&m, "GET", "/", NULL, NULL, 0);
  mock_feed_str(&m, "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\n", 0);
  CHECK_EQ(rec.status, 200);
  CHECK_EQ(m.reading, 0); /* nobody pulls the body: the socket is left alone */
  read_body(&m);          /* the caller iterates: wants bytes */
  lh_disp_poll(&m.d);
  CHECK_EQ(m.reading, 1);
  mock_feed_str(&m, "abc", 0);
  CHECK_BODY(&m, "abc");
  CHECK_EQ(m.body_ready_calls, 1);
  mock_feed_str(&m, "def", 0);
  CHECK_BODY(&m, "abcdef");
  CHECK_EQ(m.body_done, 1);
  CHECK(lh_conn_is_idle(&m.d.conn));
  mock_free(&m);
}

static void client_goes_idle_only_after_request_body_ends(void) {
  mock_t m;
  client_rec_t rec;
  lh_conn_opts_t o = mock_opts();
  client_init(&m, &rec, &o);
  lh_conn_t *c = &m.d.conn;
  CHECK_EQ(lh_conn_req_begin(c, "POST", 4, "/", 1), 0);
  CHECK_EQ(lh_conn_head_end(c, -1), 0);
  m.d.in_flight = 1;
  CHECK_EQ(lh_conn_write_body(c, "part", 4), 0);
  lh_disp_poll(&m.d);
  /* an early answer: the upload goes on */
  mock_feed_str(&m, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 0);
  CHECK_EQ(rec.status, 200);
  CHECK_EQ(m.body_done, 1);
  CHECK(!lh_conn_is_idle(c));
  CHECK_EQ(m.d.in_flight, 1);
  CHECK_EQ(lh_conn_write_end(c), 0);
  lh_disp_poll(&m.d);
  CHECK(lh_conn_is_idle(c));
  CHECK_EQ(m.d.in_flight, 0);
  CHECK_EQ(m.close_calls, 0);
  mock_free(&m);
}

static void client_writer_waits_while_queue_is_full(void) {
  mock_t m;
  client_rec_t rec;
  lh_conn_opts_t o = mock_opts();
  client_init(&m, &rec, &o);
  m.async = 1; /* the socket takes nothing until the write completes */
  lh_conn_t *c = &m.d.conn;
  CHECK_EQ(lh_conn_req_begin(c, "PUT", 3, "/", 1), 0);
  CHECK_EQ(lh_conn_head_end(c, -1), 0);
  m.d.in_flight = 1;
  static char block[16384];
  memset(block, 'z', sizeof block);
  int writes = 0;
  while (lh_disp_can_write(&m.d) && writes < 100) {
    CHECK_EQ(lh_conn_write_body(c, block, sizeof block), 0);
    writes++;
  }
  CHECK(writes < 100);
  CHECK_EQ(m.d.want_write, 1);
  lh_disp_poll(&m.d);
  CHECK_EQ(m.write_ready_calls, 0);
  mock_complete_write(&m, 0);
  lh_disp_poll(&m.d);
  CHECK_EQ(m.write_ready_calls, 1);
  mock_free(&m);
}

int main(void) {
  guard_init();
  static const test_case_t tests[] = {
    TEST_CASE(client_writes_request_line_and_fields),
    TEST_CASE(client_sends_content_length_for_string_body),
    TEST_CASE(client_sends_zero_length_only_for_methods_with_body_semantics),
    TEST_CASE(client_streams_chunked_body_with_trailers),
    TEST_CASE(client_uses_user_content_length_for_streamed_body),
    TEST_CASE(client_refuses_bad_method_or_target),
    TEST_CASE(client_writes_connection_close_when_keep_alive_is_off),
    TEST_CASE(client_reads_length_response_and_goes_idle),
    TEST_CASE(client_reuses_connection_for_next_request),
    TEST_CASE(client_reads_chunked_response_with_trailers),
    TEST_CASE(client_reads_close_delimited_response_until_eof),
    TEST_CASE(client_skips_interim_responses),
    TEST_CASE(client_100_continue_arrives_before_body_is_sent),
    TEST_CASE(client_head_response_has_no_body),
    TEST_CASE(client_204_and_304_have_no_body),
    TEST_CASE(client_closes_after_connection_close_response),
    TEST_CASE(client_closes_after_http10_response),
    TEST_CASE(client_accepts_eof_when_idle),
    TEST_CASE(client_closes_idle_connection_on_stray_bytes),
    TEST_CASE(client_closes_on_extra_bytes_after_response),
    TEST_CASE(client_reports_eof_before_response_as_incomplete),
    TEST_CASE(client_reports_eof_in_head_as_incomplete),
    TEST_CASE(client_reports_eof_mid_body_as_incomplete),
    TEST_CASE(client_reports_bad_status_line_as_parse_error),
    TEST_CASE(client_reports_bad_chunk_as_parse_error),
    TEST_CASE(client_refuses_too_large_response_head),
    TEST_CASE(client_reads_body_only_when_asked),
    TEST_CASE(client_goes_idle_only_after_request_body_ends),
    TEST_CASE(client_writer_waits_while_queue_is_full),
  };
  return T_RUN(tests);
}
