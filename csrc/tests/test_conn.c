/* Conn alone: bytes in through the read buffer (ending at a guard page),
 * bytes out compared exactly from the write queue. Every input is read
 * whole and then one byte per read. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conn.h"
#include "head_diff.h"
#include "mock_io.h"
#include "test.h"

#define DATE_LINE "date: " MOCK_DATE "\r\n"

static const char *const MODES[2] = {"whole", "bytes"};

/* --- driver --- */

typedef struct {
  lh_conn_t c;
  const char *in;
  size_t n, pos;
  int per_byte;
} tc_t;

static lh_conn_opts_t opts(void) {
  lh_conn_opts_t o = mock_opts();
  return o;
}

static void tc_init_o(tc_t *t, const lh_conn_opts_t *o, const char *in, int per_byte) {
  memset(t, 0, sizeof *t);
  lh_conn_init(&t->c, LH_ROLE_SERVER, o);
  t->in = in;
  t->n = strlen(in);
  t->per_byte = per_byte;
  t_ctx = MODES[per_byte];
}

static void tc_init(tc_t *t, const char *in, int per_byte) {
  lh_conn_opts_t o = opts();
  tc_init_o(t, &o, in, per_byte);
}

static void tc_free(tc_t *t) { conn_free_guarded(&t->c); }

/* feeds the next piece of input: all of it, or one byte */
static size_t tc_more(tc_t *t) {
  if (t->pos >= t->n) return 0;
  size_t k = t->per_byte ? 1 : t->n - t->pos;
  conn_feed_guarded(&t->c, t->in + t->pos, k);
  t->pos += k;
  return k;
}

/* reads a head, feeding input while the conn asks for more */
static int tc_head(tc_t *t, lh_head_t **h, const char **b) {
  for (;;) {
    int r = lh_conn_read_head(&t->c, h, b);
    if (r != 0 || !tc_more(t)) return r;
  }
}

/* reads the body into out until it ends (2), fails (< 0) or input runs out (0) */
static int tc_body(tc_t *t, mock_buf_t *out) {
  for (;;) {
    const char *p;
    size_t n;
    int r = lh_conn_read_body(&t->c, &p, &n);
    if (r == 1) {
      CHECK(n > 0);
      mock_buf_add(out, p, n);
      continue;
    }
    if (r == 0 && tc_more(t)) continue;
    return r;
  }
}

static int span_is(const char *base, lh_span_t s, const char *str) {
  return s.len == strlen(str) && memcmp(base + s.off, str, s.len) == 0;
}

static int field_is(const char *base, const lh_field_t *f, const char *name, const char *value) {
  return span_is(base, f->name, name) && span_is(base, f->value, value);
}

/* a complete response with a known-length body */
static void respond(lh_conn_t *c, int status, const char *body) {
  CHECK_EQ(lh_conn_head_begin(c, status), 0);
  CHECK_EQ(lh_conn_head_end(c, (int64_t)strlen(body)), 0);
  CHECK_EQ(lh_conn_write_body(c, body, strlen(body)), 0);
  CHECK_EQ(lh_conn_write_end(c), 0);
}

/* a request head read from input (GET unless given) on a fresh conn */
static int conn_with_request(tc_t *t, const lh_conn_opts_t *o, const char *req) {
  lh_head_t *h;
  const char *b;
  tc_init_o(t, o, req, 0);
  return tc_head(t, &h, &b);
}

static size_t count_ci(const char *p, size_t n, const char *needle) {
  size_t k = strlen(needle), c = 0;
  for (size_t i = 0; i + k <= n; i++)
    if (strncasecmp(p + i, needle, k) == 0) c++;
  return c;
}

/* --- reading --- */

static void conn_reads_partial_request_head(void) {
  static const char part1[] = "GET /path?q=1 HTTP/1.1\r\nHost: exa";
  static const char part2[] = "mple.com\r\nAccept: */*\r\n\r\n";
  for (int mode = 0; mode < 2; mode++) {
    lh_conn_t c;
    lh_conn_opts_t o = opts();
    lh_head_t *h = NULL;
    const char *b = NULL;
    t_ctx = MODES[mode];
    lh_conn_init(&c, LH_ROLE_SERVER, &o);
    CHECK_EQ(lh_conn_read_head(&c, &h, &b), 0);
    size_t n1 = strlen(part1), n2 = strlen(part2);
    for (size_t i = 0; i < n1; i += mode ? 1 : n1) {
      conn_feed_guarded(&c, part1 + i, mode ? 1 : n1);
      CHECK_EQ(lh_conn_read_head(&c, &h, &b), 0);
    }
    CHECK_EQ(c.reading, LH_READING_INIT);
    int r = 0;
    for (size_t i = 0; i < n2; i += mode ? 1 : n2) {
      conn_feed_guarded(&c, part2 + i, mode ? 1 : n2);
      r = lh_conn_read_head(&c, &h, &b);
      if (i + 1 < n2 && mode) CHECK_EQ(r, 0);
    }
    CHECK_EQ(r, 1);
    if (r == 1) {
      CHECK(span_is(b, h->method, "GET"));
      CHECK(span_is(b, h->target, "/path?q=1"));
      CHECK_EQ(h->major, 1);
      CHECK_EQ(h->minor, 1);
      CHECK_EQ(h->method_id, LH_METHOD_GET);
      REQUIRE_EQ(h->nfields, 2);
      CHECK(field_is(b, &h->fields[0], "Host", "example.com"));
      CHECK(field_is(b, &h->fields[1], "Accept", "*/*"));
      CHECK_EQ(h->len, n1 + n2);
      CHECK_EQ(lh_conn_buffered(&c), 0);
    }
    conn_free_guarded(&c);
  }
}

static void conn_reads_get_without_body_into_keepalive(void) {
  for (int mode = 0; mode < 2; mode++) {
    tc_t t;
    lh_head_t *h;
    const char *b;
    tc_init(&t, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", mode);
    CHECK_EQ(tc_head(&t, &h, &b), 1);
    CHECK_EQ(h->has_body, 0);
    CHECK_EQ(h->content_length, LH_NO_LENGTH);
    CHECK_EQ(t.c.reading, LH_READING_KEEPALIVE);
    CHECK_EQ(t.c.ka, LH_KA_BUSY);
    const char *p;
    size_t n = 99;
    CHECK_EQ(lh_conn_read_body(&t.c, &p, &n), 2);
    CHECK_EQ(n, 0);
    tc_free(&t);
  }
}

static void conn_reads_content_length_body(void) {
  for (int mode = 0; mode < 2; mode++) {
    tc_t t;
    lh_head_t *h;
    const char *b, *p;
    size_t n;
    tc_init(&t, "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello", mode);
    CHECK_EQ(tc_head(&t, &h, &b), 1);
    CHECK_EQ(h->content_length, 5);
    CHECK_EQ(h->has_body, 1);
    CHECK_EQ(t.c.reading, LH_READING_BODY);
    if (!mode) {
      /* all in one read: the body, then its end */
      CHECK_EQ(lh_conn_read_body(&t.c, &p, &n), 1);
      CHECK_MEM(p, n, "hello");
      CHECK_EQ(lh_conn_read_body(&t.c, &p, &n), 2);
    } else {
      mock_buf_t body = {0};
      CHECK_EQ(tc_body(&t, &body), 2);
      CHECK_MEM(body.p, body.n, "hello");
      mock_buf_free(&body);
    }
    CHECK_EQ(t.c.reading, LH_READING_KEEPALIVE);
    CHECK_EQ(lh_conn_buffered(&t.c), 0);
    tc_free(&t);
  }
}

static void conn_reads_chunked_body_with_extensions_and_trailers(void) {
  static const char req[] =
      "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5;name=value\r\nhello\r\n"
      "5;c=\"d e\"\r\n worl\r\n"
      "1;flag\r\nd\r\n"
      "0\r\nX-Checksum: abc\r\nX-Count: 2\r\n\r\n";
  for (int mode = 0; mode < 2; mode++) {
    tc_t t;
    lh_head_t *h;
    const char *b;
    tc_init(&t, req, mode);
    CHECK_EQ(tc_head(&t, &h, &b), 1);
    CHECK_EQ(h->chunked, 1);
    CHECK_EQ(h->has_body, 1);
    mock_buf_t body = {0};
    CHECK_EQ(tc_body(&t, &body), 2);
    CHECK_MEM(body.p, body.n, "hello world");
    lh_parser_t *ps = &t.c.parser;
    CHECK_EQ(ps->ntrailers, 2);
    if (ps->ntrailers == 2) {
      CHECK(field_is(ps->tbytes, &ps->tfields[0], "X-Checksum", "abc"));
      CHECK(field_is(ps->tbytes, &ps->tfields[1], "X-Count", "2"));
    }
    CHECK_EQ(t.c.reading, LH_READING_KEEPALIVE);
    CHECK_EQ(lh_conn_buffered(&t.c), 0);
    mock_buf_free(&body);
    tc_free(&t);
  }
}

/* parse.c's fast path takes plain request heads in one pass; whatever it
 * takes must come out exactly as the line parser has it, which takes
 * everything else (and the line parser must not care how bytes arrive).
 * Each case is checked whole, cut short at every byte, and with each byte
 * replaced by characters that matter to the grammar. */
/* values long enough for eight-byte scanning; names matched by loads */
#define LONG_VALUES_CASE                                                              \
  "GET /a/b?c=d HTTP/1.1\r\nHost: a-long-host-name.example:8080\r\n"                  \
  "User-Agent: curl/8.0 (x86_64-pc-linux-gnu) libcurl/8.0\r\nCONNECTION: Keep-Alive\r\n" \
  "Expect: 100-Continue\r\nX-Trailing-Space: 0123456789abcdef  \r\n\r\n"

static const char *const FAST_CASES[] = {
  "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
  "GET /a/b?c=d&e=%20f HTTP/1.1\r\nHost: example.com:8080\r\nAccept: */*\r\nUser-Agent: t/1\r\n\r\n",
  "HEAD /h HTTP/1.1\r\nHost: x\r\n\r\n",
  "DELETE /d HTTP/1.1\r\nhost: x\r\n\r\n",
  "OPTIONS /o HTTP/1.1\r\nHost: x\r\n\r\n",
  "PUT /p HTTP/1.1\r\nHost: x\r\n\r\n",
  "PATCH /p HTTP/1.1\r\nHost: x\r\n\r\n",
  "POST /p HTTP/1.1\r\nHost: x\r\n\r\n",
  "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
  "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
  "GET / HTTP/1.0\r\n\r\n",
  "GET / HTTP/1.1\r\nHost: x\r\nConnection: Keep-Alive, Upgrade\r\n\r\n",
  "GET / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n",
  "GET / HTTP/1.1\r\nHost: x\r\nEmpty:\r\nSpaces:   \r\nTab:\tv\t \r\n\r\n",
  "GET / HTTP/1.1\r\nHost:x\r\nA: b c  d\r\n\r\n",
  "GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",
  "GET / HTTP/1.1\r\nA: 1\r\n\r\n",
  "GET / HTTP/2.0\r\nHost: x\r\n\r\n",
  "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
  "GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
  "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
  "GET / HTTP/1.1\r\nHost: x\r\nProxy-Connection: close\r\n\r\n",
  "GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n",
  "GET / HTTP/1.1\r\nHost : x\r\n\r\n",
  "GET http://h/p HTTP/1.1\r\nHost: h\r\n\r\n",
  "CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n",
  "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
  "\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
  "GET / HTTP/1.1\nHost: x\n\n",
  "GET /\x80 HTTP/1.1\r\nHost: x\r\n\r\n",
  "GET / HTTP/1.1\r\nHost: \x80x\r\n\r\n",
  "get / HTTP/1.1\r\nHost: x\r\n\r\n",
  LONG_VALUES_CASE,
  "GET / HTTP/1.1\r\nhOST: x\r\nTransfer-EncodinG: chunked\r\n\r\n0\r\n\r\n",
  "GET / HTTP/1.1\r\nHost: x\r\nContent-LENGTH: 5\r\nPROXY-connection: y\r\n\r\nhello",
  "GET / HTTP/1.1\r\nHosts: x\r\nHost: y\r\nConnectioN: close, upgrade\r\nUpgradE: h2c\r\n\r\n",
};

static void conn_fast_head_agrees_with_line_parser(void) {
  static const char subst[] = {' ', '\t', '\r', '\n', ':', 0, (char)0x80, 'A', '/', '#', '"',
                               0x7f, '1', '2', ',', 'x', 0x1f, (char)0xff, '-', 'H', 'h'};
  lh_limits_t lims[2] = {{8192, 100, 8192}, {40, 2, 4}};
  char why[200], buf[4096];
  int n, compared = 0;
  for (int l = 0; l < 2; l++)
    for (size_t c = 0; c < sizeof FAST_CASES / sizeof *FAST_CASES; c++) {
      const char *h = FAST_CASES[c];
      size_t len = strlen(h);
      for (size_t cut = 1; cut <= len; cut++) {
        const char *d = head_diff(h, cut, &lims[l], &n, why, sizeof why);
        if (d) { t_dump("input", h, cut); t_fail(__FILE__, __LINE__, "%s", d); return; }
        compared += n;
      }
      for (size_t i = 0; i < len; i++)
        for (size_t k = 0; k < sizeof subst; k++) {
          memcpy(buf, h, len);
          buf[i] = subst[k];
          const char *d = head_diff(buf, len, &lims[l], &n, why, sizeof why);
          if (d) { t_dump("input", buf, len); t_fail(__FILE__, __LINE__, "%s", d); return; }
          compared += n;
        }
    }
  /* all of them back to back, as a pipelined stream */
  size_t total = 0;
  for (size_t c = 0; c < sizeof FAST_CASES / sizeof *FAST_CASES; c++) {
    size_t len = strlen(FAST_CASES[c]);
    memcpy(buf + total, FAST_CASES[c], len);
    total += len;
    if (total > sizeof buf - 200) break;
  }
  const char *d = head_diff(buf, total, &lims[0], &n, why, sizeof why);
  if (d) t_fail(__FILE__, __LINE__, "pipelined: %s", d);
  CHECK_EQ(n, 10); /* up to the one with Connection: close */
  CHECK(compared > 1000);

  /* and the plain ones are the fast path's */
  lh_parser_t p;
  for (int c = 0; c < 15; c++) {
    lh_parser_init(&p, LH_ROLE_SERVER, &lims[0]);
    t_ctx = FAST_CASES[c];
    CHECK_EQ(lh_parser_head(&p, (char *)FAST_CASES[c], strlen(FAST_CASES[c])), 1);
    CHECK_EQ(p.fast, 1); /* the fast path took it */
    lh_parser_free(&p);
  }
  /* nor do long values, with HTAB, and names in any case */
  static const char *const plain_long[] = {
    LONG_VALUES_CASE,
    "GET / HTTP/1.1\r\nHOST: x\r\nX-A: one\ttwo three four\tfive\t\r\n"
    "X-B: \t0123456789abcdef0123456789\t\r\nexpecT: 100-continue\r\n\r\n",
  };
  for (int c = 0; c < 2; c++) {
    t_ctx = plain_long[c];
    lh_parser_init(&p, LH_ROLE_SERVER, &lims[0]);
    CHECK_EQ(lh_parser_head(&p, (char *)plain_long[c], strlen(plain_long[c])), 1);
    CHECK_EQ(p.fast, 1);
    CHECK_EQ(p.head.expect_continue, 1);
    lh_parser_free(&p);
  }
  t_ctx = NULL;
}

static void conn_reads_pipelined_heads_from_one_buffer(void) {
  static const char req[] =
      "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
      "POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
      "GET /c HTTP/1.1\r\nHost: y\r\n\r\n";
  for (int mode = 0; mode < 2; mode++) {
    tc_t t;
    lh_head_t *h;
    const char *b;
    tc_init(&t, req, mode);
    REQUIRE_EQ(tc_head(&t, &h, &b), 1);
    CHECK(span_is(b, h->target, "/a"));
    if (!mode) CHECK_EQ(lh_conn_buffered(&t.c), strlen(req) - strlen("GET /a HTTP/1.1\r\nHost: x\r\n\r\n"));
    respond(&t.c, 200, "A");
    REQUIRE_EQ(lh_conn_try_keep_alive(&t.c), 1);

    REQUIRE_EQ(tc_head(&t, &h, &b), 1);
    CHECK(span_is(b, h->method, "POST"));
    CHECK(span_is(b, h->target, "/b"));
    mock_buf_t body = {0};
    CHECK_EQ(tc_body(&t, &body), 2);
    CHECK_MEM(body.p, body.n, "abc");
    mock_buf_free(&body);
    respond(&t.c, 200, "B");
    REQUIRE_EQ(lh_conn_try_keep_alive(&t.c), 1);

    REQUIRE_EQ(tc_head(&t, &h, &b), 1);
    CHECK(span_is(b, h->target, "/c"));
    REQUIRE_EQ(h->nfields, 1);
    CHECK(field_is(b, &h->fields[0], "Host", "y"));
    CHECK_EQ(lh_conn_buffered(&t.c), 0);
    tc_free(&t);
  }
}

/* keep-alive is read from Connection as a list (RFC 9110 5.6.1: empty
 * elements, OWS with tabs) */
static void conn_next_head_follows_keep_alive_of_connection_lists(void) {
  static const char req[] =
      "GET /a HTTP/1.0\r\nConnection: x,,\t\tkeep-alive\t \r\n\r\n"
      "GET /b HTTP/1.0\r\n\r\n";
  for (int mode = 0; mode < 2; mode++) {
    tc_t t;
    lh_head_t *h;
    const char *b;
    tc_init(&t, req, mode);
    REQUIRE_EQ(tc_head(&t, &h, &b), 1);
    CHECK(span_is(b, h->target, "/a"));
    CHECK_EQ(h->keep_alive, 1);
    respond(&t.c, 200, "A");
    REQUIRE_EQ(lh_conn_try_keep_alive(&t.c), 1);
    REQUIRE_EQ(tc_head(&t, &h, &b), 1);
    CHECK(span_is(b, h->target, "/b"));
    CHECK_EQ(h->keep_alive, 0);
    tc_free(&t);
  }
}

static void conn_queues_100_continue_on_first_body_read(void) {
  static const char head[] =
      "PUT /f HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n";
  for (int mode = 0; mode < 2; mode++) {
    tc_t t;
    lh_head_t *h;
    const char *b, *p;
    size_t n, on;
    tc_init(&t, head, mode);
    REQUIRE_EQ(tc_head(&t, &h, &b), 1);
    CHECK_EQ(h->expect_continue, 1);
    CHECK_EQ(t.c.reading, LH_READING_CONTINUE);
    CHECK_EQ(lh_conn_pending(&t.c), 0);
    CHECK_EQ(lh_conn_read_body(&t.c, &p, &n), 0);
    CHECK_EQ(t.c.reading, LH_READING_BODY);
    const char *out = conn_take(&t.c, &on);
    CHECK_MEM(out, on, "HTTP/1.1 100 Continue\r\n\r\n");
    /* only once */
    CHECK_EQ(lh_conn_read_body(&t.c, &p, &n), 0);
    CHECK_EQ(lh_conn_pending(&t.c), 0);
    t.in = "data";
    t.n = 4;
    t.pos = 0;
    mock_buf_t body = {0};
    CHECK_EQ(tc_body(&t, &body), 2);
    CHECK_MEM(body.p, body.n, "data");
    mock_buf_free(&body);
    tc_free(&t);
  }
}

static void conn_skips_100_continue_when_response_head_written_first(void) {
  lh_conn_opts_t o = opts();
  tc_t t;
  const char *p;
  size_t n, on;
  REQUIRE_EQ(conn_with_request(&t, &o,
                               "PUT /f HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                               "Content-Length: 4\r\n\r\n"),
             1);
  CHECK_EQ(lh_conn_head_begin(&t.c, 417), 0);
  CHECK_EQ(lh_conn_head_end(&t.c, 0), 0);
  CHECK_EQ(lh_conn_read_body(&t.c, &p, &n), 0);
  CHECK_EQ(lh_conn_write_end(&t.c), 0);
  const char *out = conn_take(&t.c, &on);
  CHECK_MEM(out, on,
            "HTTP/1.1 417 Expectation Failed\r\ncontent-length: 0\r\n" DATE_LINE "\r\n");
  tc_free(&t);
}

static void conn_drains_fully_buffered_body_to_keepalive(void) {
  for (int mode = 0; mode < 2; mode++) {
    tc_t t;
    lh_head_t *h;
    const char *b;
    tc_init(&t,
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            "3\r\nabc\r\n0\r\n\r\n",
            mode);
    REQUIRE_EQ(tc_head(&t, &h, &b), 1);
    while (tc_more(&t)) {} /* the whole body arrives, nobody reads it */
    respond(&t.c, 200, "ok");
    CHECK_EQ(lh_conn_drain(&t.c), 1);
    CHECK_EQ(t.c.reading, LH_READING_KEEPALIVE);
    CHECK_EQ(lh_conn_try_keep_alive(&t.c), 1);
    CHECK(lh_conn_is_idle(&t.c));
    tc_free(&t);
  }
}

static void conn_drops_unread_body_as_it_comes_and_keeps_alive(void) {
  static const char body[] = "0123456789";
  for (int mode = 0; mode < 2; mode++) {
    tc_t t;
    lh_head_t *h;
    const char *b;
    char in[512];
    /* 10 of 100 bytes are there when the response is done */
    snprintf(in, sizeof in, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n%s", body);
    tc_init(&t, in, mode);
    REQUIRE_EQ(tc_head(&t, &h, &b), 1);
    while (tc_more(&t)) {}
    lh_conn_body_unwanted(&t.c); /* within the budget: the head says nothing */
    CHECK(!lh_conn_is_keep_alive_disabled(&t.c));
    respond(&t.c, 200, "ok");
    CHECK_EQ(lh_conn_drain(&t.c), 0);
    CHECK_EQ(t.c.reading, LH_READING_BODY);
    CHECK(!lh_conn_is_read_closed(&t.c));
    /* the rest comes, with the next request: dropped, and the next is read */
    for (int i = 0; i < 9; i++) conn_feed_guarded(&t.c, body, 10);
    static const char next[] = "GET /n HTTP/1.1\r\nHost: x\r\n\r\n";
    conn_feed_guarded(&t.c, next, sizeof next - 1);
    CHECK_EQ(lh_conn_drain(&t.c), 1);
    CHECK_EQ(t.c.reading, LH_READING_KEEPALIVE);
    CHECK_EQ(lh_conn_try_keep_alive(&t.c), 1);
    CHECK(!t.c.discarding);
    REQUIRE_EQ(lh_conn_read_head(&t.c, &h, &b), 1);
    CHECK(span_is(b, h->target, "/n"));
    tc_free(&t);
  }
}

static void conn_closes_read_side_when_discard_budget_runs_out(void) {
  static char chunk[65536];
  memset(chunk, 'z', sizeof chunk);
  for (int chunked = 0; chunked < 2; chunked++) {
    tc_t t;
    lh_head_t *h;
    const char *b;
    tc_init(&t, chunked ? "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                        : "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5000000\r\n\r\n", 0);
    REQUIRE_EQ(tc_head(&t, &h, &b), 1);
    respond(&t.c, 200, "ok");
    int r = 0, fed = 0;
    while (!lh_conn_is_read_closed(&t.c) && fed < 40) {
      if (chunked) conn_feed_guarded(&t.c, "10000\r\n", 7);
      conn_feed_guarded(&t.c, chunk, sizeof chunk);
      if (chunked) conn_feed_guarded(&t.c, "\r\n", 2);
      fed++;
      r = lh_conn_drain(&t.c);
    }
    CHECK_EQ(r, 0);
    CHECK(lh_conn_is_read_closed(&t.c));
    /* a little over the budget, not the whole body */
    CHECK(fed >= LH_DISCARD_MAX / 65536 && fed <= LH_DISCARD_MAX / 65536 + 1);
    CHECK_EQ(t.c.error, 0);
    CHECK_EQ(lh_conn_try_keep_alive(&t.c), 0);
    CHECK(lh_conn_is_closed(&t.c));
    tc_free(&t);
  }
}

static void conn_says_close_when_unwanted_body_cannot_be_dropped(void) {
  lh_conn_opts_t o = opts();
  static const char *const reqs[] = {
    /* more left than the budget */
    "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 50000000\r\n\r\n",
    /* the client waits for 100 Continue: it may never send the body */
    "PUT / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n",
  };
  for (int i = 0; i < 2; i++) {
    tc_t t;
    size_t on;
    REQUIRE_EQ(conn_with_request(&t, &o, reqs[i]), 1);
    lh_conn_body_unwanted(&t.c);
    CHECK(lh_conn_is_keep_alive_disabled(&t.c));
    respond(&t.c, 401, "");
    const char *out = conn_take(&t.c, &on);
    CHECK_EQ(count_ci(out, on, "connection: close\r\n"), 1);
    CHECK_EQ(lh_conn_drain(&t.c), 0);
    CHECK(lh_conn_is_read_closed(&t.c));
    CHECK(lh_conn_has_unread(&t.c)); /* the transport lingers */
    tc_free(&t);
  }
  /* a chunked body of unknown size, or a known one within the budget: kept */
  static const char *const kept[] = {
    "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
    "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n",
  };
  for (int i = 0; i < 2; i++) {
    tc_t t;
    REQUIRE_EQ(conn_with_request(&t, &o, kept[i]), 1);
    lh_conn_body_unwanted(&t.c);
    CHECK(!lh_conn_is_keep_alive_disabled(&t.c));
    tc_free(&t);
  }
}

static void conn_drop_ends_quietly_when_the_client_gives_up(void) {
  tc_t t;
  lh_head_t *h;
  const char *b;
  tc_init(&t, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc", 0);
  REQUIRE_EQ(tc_head(&t, &h, &b), 1);
  while (tc_more(&t)) {}
  respond(&t.c, 200, "ok");
  CHECK_EQ(lh_conn_drain(&t.c), 0);
  CHECK(!lh_conn_is_read_closed(&t.c));
  lh_conn_read_eof(&t.c);
  CHECK_EQ(lh_conn_drain(&t.c), 0);
  CHECK(lh_conn_is_read_closed(&t.c));
  CHECK_EQ(t.c.error, 0);
  tc_free(&t);
}

static void conn_drain_without_100_continue_closes_read_side(void) {
  lh_conn_opts_t o = opts();
  tc_t t;
  size_t on;
  REQUIRE_EQ(conn_with_request(&t, &o,
                               "PUT / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                               "Content-Length: 4\r\n\r\n"),
             1);
  respond(&t.c, 200, "");
  CHECK_EQ(lh_conn_drain(&t.c), 0);
  CHECK(lh_conn_is_read_closed(&t.c));
  const char *out = conn_take(&t.c, &on);
  CHECK_EQ(count_ci(out, on, "100 Continue"), 0);
  CHECK_EQ(lh_conn_try_keep_alive(&t.c), 0);
  CHECK(lh_conn_is_closed(&t.c));
  tc_free(&t);
}

/* --- keep-alive --- */

static void conn_keeps_http11_alive(void) {
  lh_conn_opts_t o = opts();
  tc_t t;
  size_t on;
  REQUIRE_EQ(conn_with_request(&t, &o, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"), 1);
  respond(&t.c, 200, "hi");
  const char *out = conn_take(&t.c, &on);
  CHECK_MEM(out, on, "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n" DATE_LINE "\r\nhi");
  CHECK_EQ(lh_conn_try_keep_alive(&t.c), 1);
  CHECK(lh_conn_is_idle(&t.c));
  CHECK(lh_conn_can_read_head(&t.c));
  CHECK(lh_conn_can_write_head(&t.c));
  tc_free(&t);
}

static void conn_closes_http10_without_keep_alive(void) {
  lh_conn_opts_t o = opts();
  tc_t t;
  size_t on;
  REQUIRE_EQ(conn_with_request(&t, &o, "GET / HTTP/1.0\r\n\r\n"), 1);
  CHECK_EQ(t.c.ka, LH_KA_DISABLED);
  respond(&t.c, 200, "hi");
  const char *out = conn_take(&t.c, &on);
  CHECK_MEM(out, on,
            "HTTP/1.0 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n" DATE_LINE "\r\nhi");
  CHECK_EQ(lh_conn_try_keep_alive(&t.c), 0);
  CHECK(lh_conn_is_closed(&t.c));
  tc_free(&t);
}

static void conn_keeps_http10_alive_with_connection_keep_alive(void) {
  lh_conn_opts_t o = opts();
  tc_t t;
  size_t on;
  REQUIRE_EQ(conn_with_request(&t, &o, "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"), 1);
  respond(&t.c, 200, "hi");
  const char *out = conn_take(&t.c, &on);
  CHECK_MEM(out, on,
            "HTTP/1.0 200 OK\r\ncontent-length: 2\r\nconnection: keep-alive\r\n" DATE_LINE
            "\r\nhi");
  CHECK_EQ(lh_conn_try_keep_alive(&t.c), 1);
  CHECK(lh_conn_is_idle(&t.c));
  tc_free(&t);
}

static void conn_closes_after_connection_close_request(void) {
  lh_conn_opts_t o = opts();
  tc_t t;
  size_t on;
  REQUIRE_EQ(conn_with_request(&t, &o, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
             1);
  respond(&t.c, 200, "hi");
  const char *out = conn_take(&t.c, &on);
  CHECK_MEM(out, on,
            "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n" DATE_LINE "\r\nhi");
  CHECK_EQ(lh_conn_try_keep_alive(&t.c), 0);
  CHECK(lh_conn_is_closed(&t.c));
  tc_free(&t);
}

static void conn_closes_when_handler_sends_connection_close(void) {
  lh_conn_opts_t o = opts();
  tc_t t;
  size_t on;
  REQUIRE_EQ(conn_with_request(&t, &o, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"), 1);
  CHECK_EQ(lh_conn_head_begin(&t.c, 200), 0);
  CHECK_EQ(lh_conn_head_field(&t.c, "Connection", 10, "close", 5), 0);
  CHECK_EQ(lh_conn_head_end(&t.c, 0), 0);
  CHECK_EQ(lh_conn_write_end(&t.c), 0);
  const char *out = conn_take(&t.c, &on);
  CHECK_MEM(out, on, "HTTP/1.1 200 OK\r\nConnection: close\r\ncontent-length: 0\r\n" DATE_LINE "\r\n");
  CHECK_EQ(lh_conn_try_keep_alive(&t.c), 0);
  CHECK(lh_conn_is_closed(&t.c));
  tc_free(&t);
}

static void conn_without_keep_alive_option_closes_after_response(void) {
  lh_conn_opts_t o = opts();
  tc_t t;
  size_t on;
  o.keep_alive = 0;
  REQUIRE_EQ(conn_with_request(&t, &o, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"), 1);
  respond(&t.c, 200, "");
  const char *out = conn_take(&t.c, &on);
  CHECK_MEM(out, on, "HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n" DATE_LINE "\r\n");
  CHECK_EQ(lh_conn_try_keep_alive(&t.c), 0);
  CHECK(lh_conn_is_closed(&t.c));
  tc_free(&t);
}

static void conn_try_keep_alive_follows_both_sides(void) {
  static const struct {
    lh_reading_t r;
    lh_writing_t w;
    lh_keepalive_t ka;
    int ret;
    lh_reading_t er;
    lh_writing_t ew;
    lh_keepalive_t eka;
  } cases[] = {
    {LH_READING_KEEPALIVE, LH_WRITING_KEEPALIVE, LH_KA_BUSY, 1, LH_READING_INIT, LH_WRITING_INIT, LH_KA_IDLE},
    {LH_READING_KEEPALIVE, LH_WRITING_KEEPALIVE, LH_KA_DISABLED, 0, LH_READING_CLOSED, LH_WRITING_CLOSED, LH_KA_DISABLED},
    {LH_READING_CLOSED, LH_WRITING_KEEPALIVE, LH_KA_BUSY, 0, LH_READING_CLOSED, LH_WRITING_CLOSED, LH_KA_DISABLED},
    {LH_READING_KEEPALIVE, LH_WRITING_CLOSED, LH_KA_BUSY, 0, LH_READING_CLOSED, LH_WRITING_CLOSED, LH_KA_DISABLED},
    {LH_READING_BODY, LH_WRITING_KEEPALIVE, LH_KA_BUSY, 0, LH_READING_BODY, LH_WRITING_KEEPALIVE, LH_KA_BUSY},
    {LH_READING_KEEPALIVE, LH_WRITING_BODY, LH_KA_BUSY, 0, LH_READING_KEEPALIVE, LH_WRITING_BODY, LH_KA_BUSY},
    {LH_READING_KEEPALIVE, LH_WRITING_INIT, LH_KA_BUSY, 0, LH_READING_KEEPALIVE, LH_WRITING_INIT, LH_KA_BUSY},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    lh_conn_t c;
    lh_conn_opts_t o = opts();
    lh_conn_init(&c, LH_ROLE_SERVER, &o);
    c.reading = cases[i].r;
    c.writing = cases[i].w;
    c.ka = cases[i].ka;
    int r = lh_conn_try_keep_alive(&c);
    if (r != cases[i].ret || c.reading != cases[i].er || c.writing != cases[i].ew ||
        c.ka != cases[i].eka)
      t_fail(__FILE__, __LINE__, "case %zu: got ret %d r %d w %d ka %d", i, r, c.reading,
             c.writing, c.ka);
    lh_conn_free(&c);
  }
}

/* --- EOF --- */

static void conn_accepts_eof_when_idle(void) {
  lh_conn_t c;
  lh_conn_opts_t o = opts();
  lh_head_t *h;
  const char *b;
  lh_conn_init(&c, LH_ROLE_SERVER, &o);
  lh_conn_read_eof(&c);
  CHECK_EQ(lh_conn_read_head(&c, &h, &b), LH_ECLOSED);
  CHECK(lh_conn_is_closed(&c));
  CHECK_EQ(c.error, 0);
  conn_free_guarded(&c);
}

static void conn_accepts_eof_after_keepalive_response(void) {
  for (int mode = 0; mode < 2; mode++) {
    tc_t t;
    lh_head_t *h;
    const char *b;
    tc_init(&t, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", mode);
    REQUIRE_EQ(tc_head(&t, &h, &b), 1);
    respond(&t.c, 204, "");
    REQUIRE_EQ(lh_conn_try_keep_alive(&t.c), 1);
    lh_conn_read_eof(&t.c);
    CHECK_EQ(lh_conn_read_head(&t.c, &h, &b), LH_ECLOSED);
    CHECK(lh_conn_is_closed(&t.c));
    tc_free(&t);
  }
}

static void conn_rejects_eof_during_partial_head(void) {
  static const char head[] = "GET / HTTP/1.1\r\nHost: x\r\n";
  for (int mode = 0; mode < 2; mode++) {
    tc_t t;
    lh_head_t *h;
    const char *b;
    tc_init(&t, head, mode);
    CHECK_EQ(tc_head(&t, &h, &b), 0);
    lh_conn_read_eof(&t.c);
    int r = lh_conn_read_head(&t.c, &h, &b);
    CHECK_EQ(r, LH_EINCOMPLETE);
    CHECK_EQ(lh_error_status(r), 400);
    CHECK(lh_conn_is_read_closed(&t.c));
    CHECK_EQ(t.c.error, LH_EINCOMPLETE);
    tc_free(&t);
  }
}

static void conn_rejects_eof_during_body(void) {
  static const char *const reqs[] = {
    "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc",
    "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
    "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n",
  };
  for (size_t i = 0; i < 3; i++)
    for (int mode = 0; mode < 2; mode++) {
      tc_t t;
      lh_head_t *h;
      const char *b;
      tc_init(&t, reqs[i], mode);
      REQUIRE_EQ(tc_head(&t, &h, &b), 1);
      mock_buf_t body = {0};
      CHECK_EQ(tc_body(&t, &body), 0);
      lh_conn_read_eof(&t.c);
      CHECK_EQ(tc_body(&t, &body), LH_EINCOMPLETE);
      CHECK(lh_conn_is_read_closed(&t.c));
      mock_buf_free(&body);
      tc_free(&t);
    }
}

/* --- errors --- */

typedef struct {
  const char *name;
  const char *in;
  int err;    /* expected code; 0: any error */
  int status;
  uint32_t max_buf, max_headers, max_target; /* 0: default */
} err_case_t;

static void check_head_errors(const err_case_t *cases, size_t ncases) {
  char ctx[128];
  for (size_t i = 0; i < ncases; i++)
    for (int mode = 0; mode < 2; mode++) {
      const err_case_t *e = &cases[i];
      lh_conn_opts_t o = opts();
      if (e->max_buf) o.max_buf_size = e->max_buf;
      if (e->max_headers) o.max_headers = e->max_headers;
      if (e->max_target) o.max_target = e->max_target;
      tc_t t;
      lh_head_t *h;
      const char *b;
      tc_init_o(&t, &o, e->in, mode);
      snprintf(ctx, sizeof ctx, "%s, %s", e->name, MODES[mode]);
      t_ctx = ctx;
      int r = tc_head(&t, &h, &b);
      if (e->err) CHECK_EQ(r, e->err);
      else CHECK(r < 0);
      if (r < 0) {
        CHECK_EQ(lh_error_status(r), e->status);
        CHECK_EQ(t.c.error, r);
        CHECK(lh_conn_is_read_closed(&t.c));
      }
      tc_free(&t);
    }
}

static char big_head[3000];

static void conn_rejects_malformed_heads_with_their_status(void) {
  static const err_case_t cases[] = {
    {"CL+TE", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 0, 400, 0, 0, 0},
    {"TE+CL", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", 0, 400, 0, 0, 0},
    {"two CL", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 0, 400, 0, 0, 0},
    {"bad CL", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5x\r\n\r\n", 0, 400, 0, 0, 0},
    {"TE foo", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: foo\r\n\r\n", LH_EPARSE_TE_UNSUPPORTED, 501, 0, 0, 0},
    {"chunked not last", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 0, 400, 0, 0, 0},
    {"TE on 1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 0, 400, 0, 0, 0},
    {"HTTP/2.0", "GET / HTTP/2.0\r\nHost: x\r\n\r\n", LH_EPARSE_VERSION_H2, 505, 0, 0, 0},
    {"HTTP/3.0", "GET / HTTP/3.0\r\nHost: x\r\n\r\n", LH_EPARSE_VERSION_H2, 505, 0, 0, 0},
    {"garbage", "\x01\x02\x03garbage\r\n\r\n", 0, 400, 0, 0, 0},
    {"bad version", "GET / HTXP/1.1\r\nHost: x\r\n\r\n", 0, 400, 0, 0, 0},
    {"missing Host", "GET / HTTP/1.1\r\nAccept: */*\r\n\r\n", LH_EPARSE_HOST, 400, 0, 0, 0},
    {"two Hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", LH_EPARSE_HOST, 400, 0, 0, 0},
    {"space before colon", "GET / HTTP/1.1\r\nHost : x\r\n\r\n", 0, 400, 0, 0, 0},
    {"obs-fold", "GET / HTTP/1.1\r\nHost: x\r\nX-Fold: a\r\n b\r\n\r\n", 0, 400, 0, 0, 0},
    {"bare LF in value", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\nb\r\n\r\n", 0, 400, 0, 0, 0},
    {"NUL in value", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x01", 0, 400, 0, 0, 0},
    {"too many fields", "GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n", LH_EPARSE_TOO_MANY, 431, 0, 4, 0},
    {"target too long", "GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa HTTP/1.1\r\nHost: x\r\n\r\n", LH_EPARSE_URI_TOO_LONG, 414, 0, 0, 16},
    {"head too large", big_head, LH_EPARSE_TOO_LARGE, 431, 1024, 0, 0},
  };
  /* a 2 KB field under a 1 KB head limit */
  strcpy(big_head, "GET / HTTP/1.1\r\nHost: x\r\nX-Big: ");
  size_t k = strlen(big_head);
  memset(big_head + k, 'a', 2048);
  strcpy(big_head + k + 2048, "\r\n\r\n");
  check_head_errors(cases, sizeof cases / sizeof cases[0]);
}

/* RFC 9110 9.1: a well-formed method we do not know is 501, whether its
 * bytes arrive at once or one by one */
static void conn_answers_unknown_methods_with_501(void) {
  static const err_case_t cases[] = {
    {"lowercase get", "get / HTTP/1.1\r\nHost: x\r\n\r\n", LH_EPARSE_METHOD_UNKNOWN, 501, 0, 0, 0},
    {"FOO", "FOO / HTTP/1.1\r\nHost: x\r\n\r\n", LH_EPARSE_METHOD_UNKNOWN, 501, 0, 0, 0},
    {"BREW", "BREW /pot HTTP/1.1\r\nHost: x\r\n\r\n", LH_EPARSE_METHOD_UNKNOWN, 501, 0, 0, 0},
  };
  check_head_errors(cases, sizeof cases / sizeof cases[0]);
}

static void conn_accepts_head_exactly_under_limits(void) {
  /* 4 fields with max_headers 4, a 16-byte target with max_target 16 */
  for (int mode = 0; mode < 2; mode++) {
    lh_conn_opts_t o = opts();
    o.max_headers = 4;
    o.max_target = 16;
    tc_t t;
    lh_head_t *h;
    const char *b;
    tc_init_o(&t, &o, "GET /aaaaaaaaaaaaaaa HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", mode);
    CHECK_EQ(tc_head(&t, &h, &b), 1);
    tc_free(&t);
  }
}

static void conn_rejects_bad_chunk_size(void) {
  static const char *const reqs[] = {
    "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
    "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n0\r\n\r\n",
    "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff\r\n",
  };
  for (size_t i = 0; i < 3; i++)
    for (int mode = 0; mode < 2; mode++) {
      tc_t t;
      lh_head_t *h;
      const char *b;
      tc_init(&t, reqs[i], mode);
      REQUIRE_EQ(tc_head(&t, &h, &b), 1);
      mock_buf_t body = {0};
      int r = tc_body(&t, &body);
      CHECK(r < 0);
      if (r < 0) {
        CHECK_EQ(lh_error_status(r), 400);
        CHECK(lh_conn_is_read_closed(&t.c));
      }
      mock_buf_free(&body);
      tc_free(&t);
    }
}

/* a broken request body is answered by the conn itself when no head went
 * out (400, 413 past the extension limit), with Connection: close; the
 * service's answer after it is refused, and no answer comes after its own */
static void conn_answers_broken_request_bodies_itself(void) {
  static char ext[LH_CHUNK_EXT_MAX + 200];
  int k = sprintf(ext, "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;");
  memset(ext + k, 'e', LH_CHUNK_EXT_MAX + 10);
  strcpy(ext + k + LH_CHUNK_EXT_MAX + 10, "\r\nhello\r\n0\r\n\r\n");
  static const struct { const char *in; int status; const char *line; } cases[] = {
    {"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n", 400,
     "HTTP/1.1 400 Bad Request\r\n"},
    {ext, 413, "HTTP/1.1 413 Content Too Large\r\n"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
    for (int mode = 0; mode < 2; mode++) {
      tc_t t;
      lh_head_t *h;
      const char *b;
      size_t on;
      tc_init(&t, cases[i].in, mode);
      REQUIRE_EQ(tc_head(&t, &h, &b), 1);
      mock_buf_t body = {0};
      int r = tc_body(&t, &body);
      CHECK_EQ(lh_error_status(r), cases[i].status);
      const char *out = conn_take(&t.c, &on);
      char want[256];
      snprintf(want, sizeof want, "%scontent-length: 0\r\nconnection: close\r\n" DATE_LINE "\r\n",
               cases[i].line);
      CHECK_MEM(out, on, want);
      CHECK_EQ(lh_conn_head_begin(&t.c, 200), LH_ECLOSED);
      CHECK_EQ(lh_conn_try_keep_alive(&t.c), 0);
      CHECK(lh_conn_is_closed(&t.c));
      mock_buf_free(&body);
      tc_free(&t);
    }
  /* a response already begun: nothing more is written, the conn closes */
  for (int mode = 0; mode < 2; mode++) {
    tc_t t;
    lh_head_t *h;
    const char *b;
    size_t on;
    tc_init(&t, cases[0].in, mode);
    REQUIRE_EQ(tc_head(&t, &h, &b), 1);
    CHECK_EQ(lh_conn_head_begin(&t.c, 200), 0);
    CHECK_EQ(lh_conn_head_end(&t.c, -1), 0);
    conn_take(&t.c, &on);
    mock_buf_t body = {0};
    CHECK(tc_body(&t, &body) < 0);
    conn_take(&t.c, &on);
    CHECK_EQ(on, 0);
    CHECK(lh_conn_is_read_closed(&t.c));
    mock_buf_free(&body);
    tc_free(&t);
  }
}

static void conn_maps_error_codes_to_statuses(void) {
  static const struct { int err, status; } cases[] = {
    {LH_EPARSE_METHOD, 400}, {LH_EPARSE_METHOD_UNKNOWN, 501}, {LH_EPARSE_URI, 400},
    {LH_EPARSE_URI_TOO_LONG, 414}, {LH_EPARSE_VERSION, 400}, {LH_EPARSE_VERSION_H2, 505},
    {LH_EPARSE_HEADER, 400}, {LH_EPARSE_HOST, 400}, {LH_EPARSE_TOO_LARGE, 431},
    {LH_EPARSE_TOO_MANY, 431}, {LH_EPARSE_CONTENT_LENGTH, 400}, {LH_EPARSE_TE, 400},
    {LH_EPARSE_TE_UNSUPPORTED, 501}, {LH_EPARSE_CHUNK, 400}, {LH_EINCOMPLETE, 400},
    {LH_EHEADER_TIMEOUT, 408}, {LH_EBODY_TOO_LARGE, 413}, {LH_EUSER_HEADER, 500},
    {LH_EUSER_BODY, 500}, {LH_EUSER_SERVICE, 500},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    t_ctx = lh_err_name(cases[i].err);
    CHECK_EQ(lh_error_status(cases[i].err), cases[i].status);
    CHECK(lh_err_message(cases[i].err) != NULL);
  }
}

/* --- writing --- */

static void conn_writes_content_length_from_known_body_length(void) {
  lh_conn_opts_t o = opts();
  tc_t t;
  size_t on;
  REQUIRE_EQ(conn_with_request(&t, &o, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"), 1);
  CHECK_EQ(lh_conn_head_begin(&t.c, 200), 0);
  CHECK_EQ(lh_conn_head_field(&t.c, "content-type", 12, "text/plain", 10), 0);
  CHECK_EQ(lh_conn_head_end(&t.c, 13), 0);
  CHECK(lh_conn_can_write_body(&t.c));
  CHECK_EQ(lh_conn_write_body(&t.c, "Hello, ", 7), 0);
  CHECK_EQ(lh_conn_write_body(&t.c, "World!", 6), 0);
  CHECK_EQ(lh_conn_write_end(&t.c), 0);
  CHECK_EQ(t.c.writing, LH_WRITING_KEEPALIVE);
  const char *out = conn_take(&t.c, &on);
  CHECK_MEM(out, on,
            "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 13\r\n" DATE_LINE
            "\r\nHello, World!");
  tc_free(&t);
}

static void conn_writes_user_content_length_once(void) {
  lh_conn_opts_t o = opts();
  tc_t t;
  size_t on;
  REQUIRE_EQ(conn_with_request(&t, &o, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"), 1);
  CHECK_EQ(lh_conn_head_begin(&t.c, 200), 0);
  CHECK_EQ(lh_conn_head_field(&t.c, "Content-Length", 14, "5", 1), 0);
  CHECK_EQ(lh_conn_head_end(&t.c, -1), 0);
  CHECK_EQ(lh_conn_write_body(&t.c, "hello", 5), 0);
  CHECK_EQ(lh_conn_write_end(&t.c), 0);
  const char *out = conn_take(&t.c, &on);
  CHECK_EQ(count_ci(out, on, "content-length:"), 1);
  CHECK_EQ(count_ci(out, on, "transfer-encoding"), 0);
  CHECK(on > 5 && memcmp(out + on - 9, "\r\n\r\nhello", 9) == 0);
  if (count_ci(out, on, "content-length:") != 1) t_dump("response", out, on);
  tc_free(&t);
}

static void conn_enforces_user_content_length(void) {
  lh_conn_opts_t o = opts();
  tc_t t;
  /* more than declared */
  REQUIRE_EQ(conn_with_request(&t, &o, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"), 1);
  CHECK_EQ(lh_conn_head_begin(&t.c, 200), 0);
  CHECK_EQ(lh_conn_head_field(&t.c, "content-length", 14, "3", 1), 0);
  CHECK_EQ(lh_conn_head_end(&t.c, -1), 0);
  CHECK_EQ(lh_conn_write_body(&t.c, "ab", 2), 0);
  CHECK_EQ(lh_conn_write_body(&t.c, "cd", 2), LH_EUSER_BODY);
  CHECK_EQ(t.c.error, LH_EUSER_BODY);
  tc_free(&t);
  /* fewer than declared */
  REQUIRE_EQ(conn_with_request(&t, &o, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"), 1);
  CHECK_EQ(lh_conn_head_begin(&t.c, 200), 0);
  CHECK_EQ(lh_conn_head_field(&t.c, "content-length", 14, "3", 1), 0);
  CHECK_EQ(lh_conn_head_end(&t.c, -1), 0);
  CHECK_EQ(lh_conn_write_body(&t.c, "ab", 2), 0);
  CHECK_EQ(lh_conn_write_end(&t.c), LH_EUSER_BODY);
  CHECK(lh_conn_is_write_closed(&t.c));
  CHECK_EQ(lh_conn_try_keep_alive(&t.c), 0);
  CHECK(lh_conn_is_closed(&t.c));
  tc_free(&t);
  /* a known length is enforced the same way */
  REQUIRE_EQ(conn_with_request(&t, &o, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"), 1);
  CHECK_EQ(lh_conn_head_begin(&t.c, 200), 0);
  CHECK_EQ(lh_conn_head_end(&t.c, 2), 0);
  CHECK_EQ(lh_conn_write_body(&t.c, "abc", 3), LH_EUSER_BODY);
  tc_free(&t);
  /* two different lengths, and one that is not a number */
  REQUIRE_EQ(conn_with_request(&t, &o, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"), 1);
  CHECK_EQ(lh_conn_head_begin(&t.c, 200), 0);
  CHECK_EQ(lh_conn_head_field(&t.c, "content-length", 14, "3", 1), 0);
  CHECK_EQ(lh_conn_head_field(&t.c, "content-length", 14, "4", 1), LH_EUSER_HEADER);
  CHECK_EQ(lh_conn_head_field(&t.c, "content-length", 14, "-1", 2), LH_EUSER_HEADER);
  lh_conn_head_abort(&t.c);
  CHECK_EQ(lh_conn_pending(&t.c), 0);
  tc_free(&t);
}

static void conn_chunks_body_of_unknown_length_on_http11(void) {
  lh_conn_opts_t o = opts();
  tc_t t;
  size_t on;
  REQUIRE_EQ(conn_with_request(&t, &o, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"), 1);
  CHECK_EQ(lh_conn_head_begin(&t.c, 200), 0);
  CHECK_EQ(lh_conn_head_field(&t.c, "Transfer-Encoding", 17, "gzip", 4), 0);
  CHECK_EQ(lh_conn_head_end(&t.c, -1), 0);
  CHECK_EQ(t.c.enc.kind, LH_ENC_CHUNKED);
  CHECK_EQ(lh_conn_write_body(&t.c, "hello", 5), 0);
  char big[300];
  memset(big, 'x', sizeof big);
  CHECK_EQ(lh_conn_write_body(&t.c, big, sizeof big), 0);
  CHECK_EQ(lh_conn_write_end(&t.c), 0);
  const char *out = conn_take(&t.c, &on);
  mock_buf_t exp = {0};
  const char *h = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n" DATE_LINE "\r\n"
                  "5\r\nhello\r\n12c\r\n";
  mock_buf_add(&exp, h, strlen(h));
  mock_buf_add(&exp, big, sizeof big);
  mock_buf_add(&exp, "\r\n0\r\n\r\n", 7);
  CHECK_MEM(out, on, exp.p);
  mock_buf_free(&exp);
  CHECK_EQ(lh_conn_try_keep_alive(&t.c), 1);
  tc_free(&t);
}

static void conn_never_writes_empty_chunks(void) {
  lh_conn_opts_t o = opts();
  tc_t t;
  size_t on;
  REQUIRE_EQ(conn_with_request(&t, &o, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"), 1);
  CHECK_EQ(lh_conn_head_begin(&t.c, 200), 0);
  CHECK_EQ(lh_conn_head_end(&t.c, -1), 0);
  CHECK_EQ(lh_conn_write_body(&t.c, "", 0), 0);
  CHECK_EQ(lh_conn_write_body(&t.c, "a", 1), 0);
  CHECK_EQ(lh_conn_write_body(&t.c, "", 0), 0);
  CHECK_EQ(lh_conn_write_end(&t.c), 0);
  const char *out = conn_take(&t.c, &on);
  CHECK_MEM(out, on,
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n" DATE_LINE "\r\n"
            "1\r\na\r\n0\r\n\r\n");
  tc_free(&t);
}

static void conn_writes_close_delimited_body_on_http10(void) {
  lh_conn_opts_t o = opts();
  tc_t t;
  size_t on;
  REQUIRE_EQ(conn_with_request(&t, &o, "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"), 1);
  CHECK_EQ(t.c.ka, LH_KA_BUSY);
  CHECK_EQ(lh_conn_head_begin(&t.c, 200), 0);
  CHECK_EQ(lh_conn_head_end(&t.c, -1), 0);
  CHECK_EQ(t.c.enc.kind, LH_ENC_CLOSE);
  CHECK(lh_conn_is_keep_alive_disabled(&t.c));
  CHECK_EQ(lh_conn_write_body(&t.c, "stream", 6), 0);
  CHECK_EQ(lh_conn_write_body(&t.c, "ed", 2), 0);
  CHECK_EQ(lh_conn_write_end(&t.c), 0);
  CHECK(lh_conn_is_write_closed(&t.c));
  const char *out = conn_take(&t.c, &on);
  CHECK_MEM(out, on, "HTTP/1.0 200 OK\r\nconnection: close\r\n" DATE_LINE "\r\nstreamed");
  CHECK_EQ(lh_conn_try_keep_alive(&t.c), 0);
  CHECK(lh_conn_is_closed(&t.c));
  tc_free(&t);
}

static void conn_writes_no_body_for_head_204_304(void) {
  static const struct {
    const char *req;
    int status;
    int64_t len;
    const char *exp;
  } cases[] = {
    {"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n", 200, 5,
     "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n" DATE_LINE "\r\n"},
    {"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n", 200, -1,
     "HTTP/1.1 200 OK\r\n" DATE_LINE "\r\n"},
    {"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 204, 5,
     "HTTP/1.1 204 No Content\r\n" DATE_LINE "\r\n"},
    {"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 304, 5,
     "HTTP/1.1 304 Not Modified\r\n" DATE_LINE "\r\n"},
    {"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 204, -1,
     "HTTP/1.1 204 No Content\r\n" DATE_LINE "\r\n"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    lh_conn_opts_t o = opts();
    tc_t t;
    size_t on;
    char ctx[32];
    snprintf(ctx, sizeof ctx, "case %zu", i);
    REQUIRE_EQ(conn_with_request(&t, &o, cases[i].req), 1);
    t_ctx = ctx;
    CHECK_EQ(lh_conn_head_begin(&t.c, cases[i].status), 0);
    CHECK_EQ(lh_conn_head_end(&t.c, cases[i].len), 0);
    CHECK_EQ(lh_conn_write_body(&t.c, "hello", 5), 0);
    CHECK_EQ(lh_conn_write_end(&t.c), 0);
    const char *out = conn_take(&t.c, &on);
    CHECK_MEM(out, on, cases[i].exp);
    CHECK_EQ(lh_conn_try_keep_alive(&t.c), 1);
    tc_free(&t);
  }
}

static void conn_head_response_after_head_request_resets_for_get(void) {
  /* HEAD then GET on one connection: the GET gets its body */
  for (int mode = 0; mode < 2; mode++) {
    tc_t t;
    lh_head_t *h;
    const char *b;
    size_t on;
    tc_init(&t, "HEAD / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", mode);
    REQUIRE_EQ(tc_head(&t, &h, &b), 1);
    respond(&t.c, 200, "abc");
    REQUIRE_EQ(lh_conn_try_keep_alive(&t.c), 1);
    REQUIRE_EQ(tc_head(&t, &h, &b), 1);
    respond(&t.c, 200, "abc");
    const char *out = conn_take(&t.c, &on);
    CHECK_MEM(out, on,
              "HTTP/1.1 200 OK\r\ncontent-length: 3\r\n" DATE_LINE "\r\n"
              "HTTP/1.1 200 OK\r\ncontent-length: 3\r\n" DATE_LINE "\r\nabc");
    tc_free(&t);
  }
}

static void conn_writes_trailers_only_when_chunked(void) {
  lh_conn_opts_t o = opts();
  tc_t t;
  size_t on;
  REQUIRE_EQ(conn_with_request(&t, &o, "GET / HTTP/1.1\r\nHost: x\r\nTE: gzip;q=0.5, Trailers\r\n\r\n"), 1);
  CHECK_EQ(lh_conn_head_begin(&t.c, 200), 0);
  CHECK_EQ(lh_conn_head_end(&t.c, -1), 0);
  CHECK_EQ(lh_conn_write_body(&t.c, "abc", 3), 0);
  CHECK_EQ(lh_conn_write_trailer(&t.c, "Content-Length", 14, "3", 1), 0);
  CHECK_EQ(lh_conn_write_trailer(&t.c, "x-checksum", 10, "abc", 3), 0);
  CHECK_EQ(lh_conn_write_trailer(&t.c, "Set-Cookie", 10, "a=b", 3), 0);
  CHECK_EQ(lh_conn_write_trailer(&t.c, "x-bad", 5, "a\r\nb", 4), LH_EUSER_HEADER);
  CHECK_EQ(lh_conn_write_trailer(&t.c, "x-more", 6, "1", 1), 0);
  CHECK_EQ(lh_conn_write_end(&t.c), 0);
  const char *out = conn_take(&t.c, &on);
  CHECK_MEM(out, on,
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n" DATE_LINE "\r\n"
            "3\r\nabc\r\n0\r\nx-checksum: abc\r\nx-more: 1\r\n\r\n");
  tc_free(&t);

  /* a length-delimited body has no place for trailers */
  REQUIRE_EQ(conn_with_request(&t, &o, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"), 1);
  CHECK_EQ(lh_conn_head_begin(&t.c, 200), 0);
  CHECK_EQ(lh_conn_head_end(&t.c, 3), 0);
  CHECK_EQ(lh_conn_write_body(&t.c, "abc", 3), 0);
  CHECK_EQ(lh_conn_write_trailer(&t.c, "x-checksum", 10, "abc", 3), 0);
  CHECK_EQ(lh_conn_write_end(&t.c), 0);
  out = conn_take(&t.c, &on);
  CHECK_MEM(out, on, "HTTP/1.1 200 OK\r\ncontent-length: 3\r\n" DATE_LINE "\r\nabc");
  tc_free(&t);

  /* RFC 9110 6.5.1 and hyper: only a request that said TE: trailers gets them */
  static const char *const no_te[] = {
    "GET / HTTP/1.1\r\nHost: x\r\n\r\n", "GET / HTTP/1.1\r\nHost: x\r\nTE: gzip\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: x\r\nX-TE: trailers\r\n\r\n",
  };
  for (int i = 0; i < 3; i++) {
    REQUIRE_EQ(conn_with_request(&t, &o, no_te[i]), 1);
    CHECK_EQ(lh_conn_head_begin(&t.c, 200), 0);
    CHECK_EQ(lh_conn_head_end(&t.c, -1), 0);
    CHECK_EQ(lh_conn_write_body(&t.c, "abc", 3), 0);
    CHECK_EQ(lh_conn_write_trailer(&t.c, "x-checksum", 10, "abc", 3), 0);
    CHECK_EQ(lh_conn_write_end(&t.c), 0);
    out = conn_take(&t.c, &on);
    CHECK_MEM(out, on,
              "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n" DATE_LINE "\r\n3\r\nabc\r\n0\r\n\r\n");
    tc_free(&t);
  }
}

static void conn_refuses_header_values_with_cr_lf_nul(void) {
  static const struct {
    const char *name;
    size_t nlen;
    const char *value;
    size_t vlen;
  } bad[] = {
    {"x-a", 3, "a\rb", 3}, {"x-a", 3, "a\nb", 3}, {"x-a", 3, "a\0b", 3},
    {"x a", 3, "v", 1},    {"x:a", 3, "v", 1},    {"", 0, "v", 1},
    {"x\na", 3, "v", 1},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    lh_conn_opts_t o = opts();
    tc_t t;
    size_t on;
    REQUIRE_EQ(conn_with_request(&t, &o,
                                 "PUT / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                                 "Content-Length: 1\r\n\r\n"),
               1);
    const char *p;
    size_t n;
    CHECK_EQ(lh_conn_read_body(&t.c, &p, &n), 0); /* queues 100 Continue */
    CHECK_EQ(lh_conn_head_begin(&t.c, 200), 0);
    CHECK_EQ(lh_conn_head_field(&t.c, "x-ok", 4, "fine", 4), 0);
    int r = lh_conn_head_field(&t.c, bad[i].name, bad[i].nlen, bad[i].value, bad[i].vlen);
    if (r != LH_EUSER_HEADER) t_fail(__FILE__, __LINE__, "case %zu: got %d", i, r);
    lh_conn_head_abort(&t.c);
    CHECK(lh_conn_can_write_head(&t.c));
    const char *out = conn_take(&t.c, &on);
    CHECK_MEM(out, on, "HTTP/1.1 100 Continue\r\n\r\n");
    /* a new head can be written after the abort */
    CHECK_EQ(lh_conn_head_begin(&t.c, 500), 0);
    CHECK_EQ(lh_conn_head_end(&t.c, 0), 0);
    CHECK_EQ(lh_conn_write_end(&t.c), 0);
    out = conn_take(&t.c, &on);
    CHECK_MEM(out, on, "HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\n" DATE_LINE "\r\n");
    tc_free(&t);
  }
}

static void conn_title_cases_header_names(void) {
  lh_conn_opts_t o = opts();
  tc_t t;
  size_t on;
  o.title_case = 1;
  REQUIRE_EQ(conn_with_request(&t, &o, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"), 1);
  CHECK_EQ(lh_conn_head_begin(&t.c, 200), 0);
  CHECK_EQ(lh_conn_head_field(&t.c, "content-type", 12, "text/plain", 10), 0);
  CHECK_EQ(lh_conn_head_field(&t.c, "X-CUSTOM-header", 15, "Mixed Case", 10), 0);
  CHECK_EQ(lh_conn_head_field(&t.c, "etag", 4, "\"x\"", 3), 0);
  CHECK_EQ(lh_conn_head_end(&t.c, 2), 0);
  CHECK_EQ(lh_conn_write_body(&t.c, "ok", 2), 0);
  CHECK_EQ(lh_conn_write_end(&t.c), 0);
  const char *out = conn_take(&t.c, &on);
  CHECK_MEM(out, on,
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Custom-Header: Mixed Case\r\n"
            "Etag: \"x\"\r\nContent-Length: 2\r\nDate: " MOCK_DATE "\r\n\r\nok");
  tc_free(&t);
}

static void conn_date_header_follows_option(void) {
  lh_conn_opts_t o = opts();
  tc_t t;
  size_t on;
  const char *out;
  o.date_header = 0;
  REQUIRE_EQ(conn_with_request(&t, &o, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"), 1);
  respond(&t.c, 200, "ok");
  out = conn_take(&t.c, &on);
  CHECK_MEM(out, on, "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
  tc_free(&t);

  /* a Date from the handler replaces ours */
  o.date_header = 1;
  REQUIRE_EQ(conn_with_request(&t, &o, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"), 1);
  CHECK_EQ(lh_conn_head_begin(&t.c, 200), 0);
  CHECK_EQ(lh_conn_head_field(&t.c, "Date", 4, "Sun, 06 Nov 1994 08:49:37 GMT", 29), 0);
  CHECK_EQ(lh_conn_head_end(&t.c, 0), 0);
  CHECK_EQ(lh_conn_write_end(&t.c), 0);
  out = conn_take(&t.c, &on);
  CHECK_MEM(out, on,
            "HTTP/1.1 200 OK\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\ncontent-length: 0\r\n\r\n");
  tc_free(&t);
}

static void conn_formats_imf_fixdate(void) {
  lh_date_update(784111777);
  CHECK_STR(lh_date(), "Sun, 06 Nov 1994 08:49:37 GMT");
  lh_date_update(951782400); /* leap day */
  CHECK_STR(lh_date(), "Tue, 29 Feb 2000 00:00:00 GMT");
  lh_date_freeze(0);
  CHECK_STR(lh_date(), MOCK_DATE);
}

static void conn_write_error_produces_connection_close(void) {
  for (int mode = 0; mode < 2; mode++) {
    tc_t t;
    lh_head_t *h;
    const char *b;
    size_t on;
    tc_init(&t, "GET / HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", mode);
    int r = tc_head(&t, &h, &b);
    REQUIRE(r < 0);
    CHECK_EQ(lh_conn_write_error(&t.c, lh_error_status(r)), 0);
    CHECK(lh_conn_is_closed(&t.c));
    const char *out = conn_take(&t.c, &on);
    CHECK_MEM(out, on,
              "HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n" DATE_LINE
              "\r\n");
    tc_free(&t);
  }
  /* an error for a HEAD request has the same head */
  lh_conn_opts_t o = opts();
  tc_t t;
  size_t on;
  REQUIRE_EQ(conn_with_request(&t, &o, "HEAD / HTTP/1.1\r\nHost: x\r\n\r\n"), 1);
  CHECK_EQ(lh_conn_write_error(&t.c, 431), 0);
  const char *out = conn_take(&t.c, &on);
  CHECK_MEM(out, on,
            "HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n"
            "connection: close\r\n" DATE_LINE "\r\n");
  CHECK(lh_conn_is_closed(&t.c));
  tc_free(&t);
}

static void conn_write_error_after_head_closes_without_bytes(void) {
  lh_conn_opts_t o = opts();
  tc_t t;
  REQUIRE_EQ(conn_with_request(&t, &o, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"), 1);
  CHECK_EQ(lh_conn_head_begin(&t.c, 200), 0);
  CHECK_EQ(lh_conn_head_end(&t.c, -1), 0);
  size_t before = lh_conn_pending(&t.c);
  CHECK_EQ(lh_conn_write_error(&t.c, 500), LH_ECLOSED);
  CHECK_EQ(lh_conn_pending(&t.c), before);
  CHECK(lh_conn_is_closed(&t.c));
  tc_free(&t);
}

static void conn_refuses_bad_status_and_writes_empty_reason(void) {
  lh_conn_opts_t o = opts();
  tc_t t;
  size_t on;
  REQUIRE_EQ(conn_with_request(&t, &o, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"), 1);
  CHECK_EQ(lh_conn_head_begin(&t.c, 99), LH_EUSER_STATUS);
  CHECK_EQ(lh_conn_head_begin(&t.c, 1000), LH_EUSER_STATUS);
  CHECK_EQ(lh_conn_pending(&t.c), 0);
  CHECK_EQ(lh_conn_head_begin(&t.c, 299), 0);
  CHECK_EQ(lh_conn_head_end(&t.c, 0), 0);
  CHECK_EQ(lh_conn_write_end(&t.c), 0);
  const char *out = conn_take(&t.c, &on);
  CHECK_MEM(out, on, "HTTP/1.1 299 \r\ncontent-length: 0\r\n" DATE_LINE "\r\n");
  tc_free(&t);
}

static void conn_writes_informational_head_before_final(void) {
  lh_conn_opts_t o = opts();
  tc_t t;
  size_t on;
  REQUIRE_EQ(conn_with_request(&t, &o, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"), 1);
  CHECK_EQ(lh_conn_head_begin(&t.c, 103), 0);
  CHECK_EQ(lh_conn_head_field(&t.c, "link", 4, "</s.css>", 8), 0);
  CHECK_EQ(lh_conn_head_field(&t.c, "content-length", 14, "7", 1), 0);
  CHECK_EQ(lh_conn_head_end(&t.c, -1), 0);
  CHECK(lh_conn_can_write_head(&t.c));
  respond(&t.c, 200, "x");
  const char *out = conn_take(&t.c, &on);
  CHECK_EQ(count_ci(out, on, "content-length: 7"), 0);
  CHECK(on > 30 && memcmp(out, "HTTP/1.1 103 Early Hints\r\nlink: </s.css>\r\n", 42) == 0);
  CHECK(on > 10 && memcmp(out + on - 5, "\r\n\r\nx", 5) == 0);
  CHECK_EQ(count_ci(out, on, "HTTP/1.1 200 OK\r\ncontent-length: 1\r\n"), 1);
  CHECK_EQ(lh_conn_try_keep_alive(&t.c), 1);
  tc_free(&t);
}

static void closed_conn_cannot_read_or_write(void) {
  lh_conn_opts_t o = opts();
  tc_t t;
  const char *p;
  size_t n;
  REQUIRE_EQ(conn_with_request(&t, &o, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n"), 1);
  lh_conn_close(&t.c);
  CHECK(lh_conn_is_closed(&t.c));
  CHECK(!lh_conn_can_read_head(&t.c));
  CHECK(!lh_conn_can_read_body(&t.c));
  CHECK(!lh_conn_can_write_head(&t.c));
  CHECK_EQ(lh_conn_read_body(&t.c, &p, &n), LH_ECLOSED);
  CHECK_EQ(lh_conn_head_begin(&t.c, 200), LH_ECLOSED);
  CHECK_EQ(lh_conn_write_body(&t.c, "x", 1), LH_ECLOSED);
  CHECK_EQ(lh_conn_write_trailer(&t.c, "x", 1, "y", 1), LH_ECLOSED);
  CHECK_EQ(lh_conn_write_end(&t.c), LH_ECLOSED);
  CHECK_EQ(lh_conn_write_error(&t.c, 400), LH_ECLOSED);
  CHECK_EQ(lh_conn_drain(&t.c), 0);
  CHECK_EQ(lh_conn_try_keep_alive(&t.c), 0);
  CHECK_EQ(lh_conn_pending(&t.c), 0);
  tc_free(&t);
}

static void conn_read_space_is_bounded(void) {
  lh_conn_t c;
  lh_conn_opts_t o = opts();
  char *p = NULL;
  lh_conn_init(&c, LH_ROLE_SERVER, &o);
  long total = 0, n;
  /* a client that never ends its head fills the buffer to its bound */
  while ((n = lh_conn_read_space(&c, &p)) > 0) {
    memset(p, 'a', (size_t)n);
    lh_conn_read_commit(&c, (size_t)n);
    total += n;
    if (total > 10 * 1024 * 1024) break;
  }
  CHECK_EQ(n, 0);
  CHECK(total >= (long)o.max_buf_size);
  CHECK(total <= 64 * 1024 + (long)o.max_buf_size);
  lh_conn_free(&c);
}

/* --- kept heads --- */

typedef struct {
  const char *name, *value;
} kh_field_t;

/* the head written the full way (begin, fields, end) for a fresh request,
 * into out; returns what head_end returned and leaves the conn in t */
static int kh_full(tc_t *t, const lh_conn_opts_t *o, const char *req, int status,
                   const kh_field_t *f, int64_t len) {
  if (conn_with_request(t, o, req) != 1) return -100;
  int e = lh_conn_head_begin(&t->c, status);
  for (; !e && f && f->name; f++)
    e = lh_conn_head_field(&t->c, f->name, strlen(f->name), f->value, strlen(f->value));
  if (!e) e = lh_conn_head_end(&t->c, len);
  return e;
}

/* the head of kh_full with one field more after f, x-request-id: v; *xv
 * and *xe: where v went in the write queue */
static int kh_full_x(tc_t *t, const lh_conn_opts_t *o, const kh_field_t *f, int64_t len,
                     const char *v, uint32_t *xv, uint32_t *xe) {
  if (conn_with_request(t, o, "GET / HTTP/1.1\r\nHost: x\r\n\r\n") != 1) return -100;
  int e = lh_conn_head_begin(&t->c, 200);
  for (; !e && f && f->name; f++)
    e = lh_conn_head_field(&t->c, f->name, strlen(f->name), f->value, strlen(f->value));
  uint32_t at = (uint32_t)lh_wq_mark(&t->c.wq);
  if (!e) e = lh_conn_head_field(&t->c, "x-request-id", 12, v, strlen(v));
  *xv = at + 14;
  *xe = (uint32_t)lh_wq_mark(&t->c.wq) - 2;
  if (!e) e = lh_conn_head_end(&t->c, len);
  return e;
}

/* A head kept with a slot for a value that differs each time (the
 * request_id layer's field, before our content-length or after the
 * handler's) is written again with another value as the full way writes it. */
static void conn_replays_kept_head_with_a_value_slot(void) {
  static const kh_field_t f_none[] = {{NULL, NULL}};
  static const kh_field_t f_one[] = {{"content-type", "text/plain"}, {NULL, NULL}};
  static const kh_field_t f_cl[] = {{"content-type", "text/plain"}, {"content-length", "13"}, {NULL, NULL}};
  static const kh_field_t *const fsets[] = {f_none, f_one, f_cl};
  static const int64_t lens[] = {13, 0, -1};
  static const char *const vals[] = {"first-id", "b", "0123456789abcdef0123456789abcdef"};
  int replayed = 0;
  for (int oi = 0; oi < 4; oi++) {
    lh_conn_opts_t o = opts();
    o.title_case = oi & 1;
    o.date_header = !(oi & 2);
    for (size_t fi = 0; fi < sizeof fsets / sizeof *fsets; fi++)
      for (size_t li = 0; li < sizeof lens / sizeof *lens; li++) {
        if (fsets[fi] == f_cl && lens[li] != 13) continue;
        tc_t a;
        lh_head_tpl_t tpl;
        uint32_t xv, xe;
        lh_date_freeze(0);
        REQUIRE_EQ(kh_full_x(&a, &o, fsets[fi], lens[li], vals[0], &xv, &xe), 0);
        CHECK_EQ(lh_conn_head_keep_x(&a.c, lens[li], &tpl, xv, xe), 0);
        CHECK_EQ(tpl.x, 1);
        tc_free(&a);
        for (size_t vi = 0; vi < sizeof vals / sizeof *vals; vi++) {
          tc_t b, c;
          size_t bn, cn;
          lh_date_freeze(86400 * 365 + 7);
          REQUIRE_EQ(kh_full_x(&b, &o, fsets[fi], lens[li], vals[vi], &xv, &xe), 0);
          REQUIRE_EQ(conn_with_request(&c, &o, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"), 1);
          CHECK_EQ(lh_conn_head_replay_x(&c.c, &tpl, lens[li], vals[vi], strlen(vals[vi])), 0);
          CHECK_EQ(c.c.writing, b.c.writing);
          CHECK_EQ(c.c.enc.remaining, b.c.enc.remaining);
          CHECK_EQ(c.c.enc.head_mark, b.c.enc.head_mark);
          char bo[512];
          const char *p = conn_take(&b.c, &bn);
          REQUIRE(bn > 0 && bn <= sizeof bo);
          memcpy(bo, p, bn);
          const char *co = conn_take(&c.c, &cn);
          (void)t_mem_eq(__FILE__, __LINE__, "replayed head with a value", co, cn, bo, bn);
          replayed++;
          tc_free(&b);
          tc_free(&c);
        }
      }
  }
  lh_date_freeze(0);
  CHECK_EQ(replayed, 4 * 7 * 3);
}

/* A kept head written again must leave the same bytes and the same
 * connection state as the full way, for every body length of its kind and
 * with the date of the moment it is written. */
static void conn_replays_kept_head_as_written_the_full_way(void) {
  static const char *const reqs[] = {
      "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
      "HEAD / HTTP/1.1\r\nHost: x\r\n\r\n",
      "GET / HTTP/1.0\r\n\r\n",
      "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
  };
  static const int statuses[] = {200, 201, 204, 304, 404, 999};
  static const int64_t lens[] = {0, 13, 100000, 12345678901LL, -1};
  static const kh_field_t f_none[] = {{NULL, NULL}};
  static const kh_field_t f_one[] = {{"content-type", "text/plain"}, {NULL, NULL}};
  static const kh_field_t f_two[] = {{"X-Custom", "a b"}, {"etag", "\"1\""}, {"transfer-encoding", "gzip"}, {NULL, NULL}};
  static const kh_field_t *const fsets[] = {f_none, f_one, f_two};
  int kept = 0, replayed = 0;
  for (int oi = 0; oi < 4; oi++) {
    lh_conn_opts_t o = opts();
    o.title_case = oi & 1;
    o.date_header = !(oi & 2);
    for (size_t ri = 0; ri < sizeof reqs / sizeof *reqs; ri++)
      for (size_t si = 0; si < sizeof statuses / sizeof *statuses; si++)
        for (size_t fi = 0; fi < sizeof fsets / sizeof *fsets; fi++)
          for (size_t li = 0; li < sizeof lens / sizeof *lens; li++) {
            tc_t a;
            lh_head_tpl_t tpl;
            lh_date_freeze(0);
            int e = kh_full(&a, &o, reqs[ri], statuses[si], fsets[fi], lens[li]);
            if (e) {
              tc_free(&a);
              continue;
            }
            int k = lh_conn_head_keep(&a.c, lens[li], &tpl);
            /* only an HTTP/1.0 body of unknown length (close-delimited) is not kept */
            CHECK_EQ(k, reqs[ri][13] == '0' && reqs[ri][0] == 'G' && lens[li] < 0 && statuses[si] != 204 &&
                                statuses[si] != 304 ? -1 : 0);
            if (!k) CHECK_EQ(tpl.key, lh_conn_head_key(&a.c, lens[li]));
            tc_free(&a);
            if (k) continue;
            kept++;
            for (size_t lj = 0; lj < sizeof lens / sizeof *lens; lj++) {
              if ((lens[lj] >= 0) != (lens[li] >= 0)) continue;
              tc_t b, c;
              size_t bn, cn;
              lh_date_freeze(86400 * 365 + 7);
              REQUIRE_EQ(kh_full(&b, &o, reqs[ri], statuses[si], fsets[fi], lens[lj]), 0);
              REQUIRE_EQ(conn_with_request(&c, &o, reqs[ri]), 1);
              CHECK_EQ(lh_conn_head_key(&c.c, lens[lj]), tpl.key);
              CHECK_EQ(lh_conn_head_replay(&c.c, &tpl, lens[lj]), 0);
              CHECK_EQ(c.c.writing, b.c.writing);
              CHECK_EQ(c.c.ka, b.c.ka);
              CHECK(memcmp(&c.c.enc.kind, &b.c.enc.kind, sizeof c.c.enc.kind) == 0);
              CHECK_EQ(c.c.enc.remaining, b.c.enc.remaining);
              CHECK_EQ(c.c.enc.status, b.c.enc.status);
              CHECK_EQ(c.c.enc.no_body, b.c.enc.no_body);
              CHECK_EQ(c.c.enc.head_mark, b.c.enc.head_mark);
              CHECK_EQ(c.c.enc.user_length | c.c.enc.user_date | c.c.enc.user_close | c.c.enc.user_conn, 0);
              /* conn_take's buffer is reused: keep the first */
              char bo[512];
              const char *p = conn_take(&b.c, &bn);
              REQUIRE(bn > 0 && bn <= sizeof bo);
              memcpy(bo, p, bn);
              const char *co = conn_take(&c.c, &cn);
              (void)t_mem_eq(__FILE__, __LINE__, "replayed head", co, cn, bo, bn);
              replayed++;
              tc_free(&b);
              tc_free(&c);
            }
          }
  }
  lh_date_freeze(0);
  CHECK(kept > 500);
  CHECK(replayed > kept);
}

/* A handler's own content-length that is the body's length, in plain
 * digits, is kept in place of ours: written again for another body, with
 * that body's length in the field, it leaves what the full way leaves for
 * a handler that gave that length. */
static void conn_replays_kept_head_with_the_handlers_content_length(void) {
  static const char *const reqs[] = {
      "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
      "HEAD / HTTP/1.1\r\nHost: x\r\n\r\n",
      "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
  };
  static const int statuses[] = {200, 204, 304, 404};
  static const int64_t lens[] = {0, 7, 13, 100000, 12345678901LL};
  static const char *const names[] = {"content-length", "Content-Length"};
  int kept = 0, replayed = 0;
  for (int oi = 0; oi < 4; oi++) {
    lh_conn_opts_t o = opts();
    o.title_case = oi & 1;
    o.date_header = !(oi & 2);
    for (size_t ri = 0; ri < sizeof reqs / sizeof *reqs; ri++)
      for (size_t si = 0; si < sizeof statuses / sizeof *statuses; si++)
        for (size_t li = 0; li < sizeof lens / sizeof *lens; li++) {
          char v[24];
          snprintf(v, sizeof v, "%lld", (long long)lens[li]);
          kh_field_t f[] = {{"content-type", "text/plain"}, {names[li & 1], v}, {"x-a", "b"}, {NULL, NULL}};
          tc_t a;
          lh_head_tpl_t tpl;
          lh_date_freeze(0);
          REQUIRE_EQ(kh_full(&a, &o, reqs[ri], statuses[si], f, lens[li]), 0);
          int k = lh_conn_head_keep(&a.c, lens[li], &tpl);
          tc_free(&a);
          CHECK_EQ(k, 0);
          if (k) continue;
          kept++;
          for (size_t lj = 0; lj < sizeof lens / sizeof *lens; lj++) {
            tc_t b, c;
            size_t bn, cn;
            snprintf(v, sizeof v, "%lld", (long long)lens[lj]);
            lh_date_freeze(86400 * 365 + 7);
            REQUIRE_EQ(kh_full(&b, &o, reqs[ri], statuses[si], f, lens[lj]), 0);
            REQUIRE_EQ(conn_with_request(&c, &o, reqs[ri]), 1);
            CHECK_EQ(lh_conn_head_key(&c.c, lens[lj]), tpl.key);
            CHECK_EQ(lh_conn_head_replay(&c.c, &tpl, lens[lj]), 0);
            CHECK_EQ(c.c.writing, b.c.writing);
            CHECK_EQ(c.c.ka, b.c.ka);
            CHECK(c.c.enc.kind == b.c.enc.kind);
            CHECK_EQ(c.c.enc.remaining, b.c.enc.remaining);
            CHECK_EQ(c.c.enc.status, b.c.enc.status);
            CHECK_EQ(c.c.enc.no_body, b.c.enc.no_body);
            CHECK_EQ(c.c.enc.user_length, b.c.enc.user_length);
            char bo[512];
            const char *p = conn_take(&b.c, &bn);
            REQUIRE(bn > 0 && bn <= sizeof bo);
            memcpy(bo, p, bn);
            const char *co = conn_take(&c.c, &cn);
            (void)t_mem_eq(__FILE__, __LINE__, "replayed head", co, cn, bo, bn);
            replayed++;
            tc_free(&b);
            tc_free(&c);
          }
        }
  }
  lh_date_freeze(0);
  CHECK_EQ(kept, 4 * 4 * 4 * 5);
  CHECK_EQ(replayed, kept * 5);
}

/* a handler's content-length that is not the body's length, or not in
 * plain digits, keeps the head off */
static void conn_does_not_keep_a_content_length_unlike_the_body(void) {
  static const struct {
    const char *v;
    int64_t len;
  } cases[] = {{"13", 12}, {"13", 14}, {"013", 13}, {"00", 0}, {"13", -1}};
  lh_conn_opts_t o = opts();
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    kh_field_t f[] = {{"content-length", cases[i].v}, {NULL, NULL}};
    tc_t a;
    lh_head_tpl_t tpl;
    REQUIRE_EQ(kh_full(&a, &o, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 200, f, cases[i].len), 0);
    CHECK_EQ(lh_conn_head_keep(&a.c, cases[i].len, &tpl), -1);
    tc_free(&a);
  }
}

/* fields that change the connection's state or the framing are not kept */
static void conn_does_not_keep_heads_with_framing_fields(void) {
  static const kh_field_t f_date[] = {{"date", "Thu, 01 Jan 1970 00:00:00 GMT"}, {NULL, NULL}};
  static const kh_field_t f_close[] = {{"connection", "close"}, {NULL, NULL}};
  static const kh_field_t f_conn[] = {{"connection", "x-foo"}, {NULL, NULL}};
  static const kh_field_t *const fsets[] = {f_date, f_close, f_conn};
  lh_conn_opts_t o = opts();
  for (size_t fi = 0; fi < sizeof fsets / sizeof *fsets; fi++) {
    tc_t a;
    lh_head_tpl_t tpl;
    REQUIRE_EQ(kh_full(&a, &o, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 200, fsets[fi], 2), 0);
    CHECK_EQ(lh_conn_head_keep(&a.c, 2, &tpl), -1);
    tc_free(&a);
  }
  /* nor a 1xx, nor a head not yet ended, nor a client's */
  tc_t a;
  lh_head_tpl_t tpl;
  REQUIRE_EQ(conn_with_request(&a, &o, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"), 1);
  CHECK_EQ(lh_conn_head_begin(&a.c, 103), 0);
  CHECK_EQ(lh_conn_head_end(&a.c, 0), 0);
  CHECK_EQ(lh_conn_head_keep(&a.c, 0, &tpl), -1);
  CHECK_EQ(lh_conn_head_begin(&a.c, 200), 0);
  CHECK_EQ(lh_conn_head_keep(&a.c, 0, &tpl), -1);
  /* a replay onto a connection that already answered fails like head_begin */
  CHECK_EQ(lh_conn_head_end(&a.c, 0), 0);
  CHECK_EQ(lh_conn_head_keep(&a.c, 0, &tpl), 0);
  CHECK_EQ(lh_conn_head_replay(&a.c, &tpl, 0), LH_ECLOSED);
  tc_free(&a);
  lh_conn_t cl;
  lh_conn_init(&cl, LH_ROLE_CLIENT, &o);
  CHECK_EQ(lh_conn_head_key(&cl, 0), 0u);
  lh_conn_free(&cl);
}

/* an abort with no head half written takes nothing back: an answer queued
 * before stays whole (lh_req_fail aborts whatever the error cut short) */
static void conn_head_abort_takes_back_only_a_half_written_head(void) {
  tc_t t;
  size_t on;
  lh_head_t *h;
  const char *b;
  lh_conn_opts_t o = opts();
  /* the second of two pipelined requests is read while the first answer waits */
  tc_init(&t, "GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n", 0);
  REQUIRE_EQ(tc_head(&t, &h, &b), 1);
  respond(&t.c, 200, "ok");
  REQUIRE_EQ(lh_conn_try_keep_alive(&t.c), 1);
  REQUIRE_EQ(tc_head(&t, &h, &b), 1);
  REQUIRE_EQ(t.c.writing, LH_WRITING_INIT);
  lh_conn_head_abort(&t.c);
  const char *out = conn_take(&t.c, &on);
  CHECK_MEM(out, on, "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n" DATE_LINE "\r\nok");
  tc_free(&t);
  REQUIRE_EQ(conn_with_request(&t, &o, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"), 1);
  CHECK_EQ(lh_conn_head_begin(&t.c, 200), 0);
  CHECK_EQ(lh_conn_head_field(&t.c, "x-a", 3, "1", 1), 0);
  lh_conn_head_abort(&t.c);
  lh_conn_head_abort(&t.c);
  CHECK_EQ(lh_conn_pending(&t.c), 0u);
  tc_free(&t);
}

int main(void) {
  guard_init();
  lh_date_freeze(0);
  static const test_case_t tests[] = {
    TEST_CASE(conn_reads_partial_request_head),
    TEST_CASE(conn_reads_get_without_body_into_keepalive),
    TEST_CASE(conn_reads_content_length_body),
    TEST_CASE(conn_reads_chunked_body_with_extensions_and_trailers),
    TEST_CASE(conn_reads_pipelined_heads_from_one_buffer),
    TEST_CASE(conn_fast_head_agrees_with_line_parser),
    TEST_CASE(conn_next_head_follows_keep_alive_of_connection_lists),
    TEST_CASE(conn_queues_100_continue_on_first_body_read),
    TEST_CASE(conn_skips_100_continue_when_response_head_written_first),
    TEST_CASE(conn_drains_fully_buffered_body_to_keepalive),
    TEST_CASE(conn_drops_unread_body_as_it_comes_and_keeps_alive),
    TEST_CASE(conn_closes_read_side_when_discard_budget_runs_out),
    TEST_CASE(conn_says_close_when_unwanted_body_cannot_be_dropped),
    TEST_CASE(conn_drop_ends_quietly_when_the_client_gives_up),
    TEST_CASE(conn_drain_without_100_continue_closes_read_side),
    TEST_CASE(conn_keeps_http11_alive),
    TEST_CASE(conn_closes_http10_without_keep_alive),
    TEST_CASE(conn_keeps_http10_alive_with_connection_keep_alive),
    TEST_CASE(conn_closes_after_connection_close_request),
    TEST_CASE(conn_closes_when_handler_sends_connection_close),
    TEST_CASE(conn_without_keep_alive_option_closes_after_response),
    TEST_CASE(conn_try_keep_alive_follows_both_sides),
    TEST_CASE(conn_accepts_eof_when_idle),
    TEST_CASE(conn_accepts_eof_after_keepalive_response),
    TEST_CASE(conn_rejects_eof_during_partial_head),
    TEST_CASE(conn_rejects_eof_during_body),
    TEST_CASE(conn_rejects_malformed_heads_with_their_status),
    TEST_CASE(conn_answers_unknown_methods_with_501),
    TEST_CASE(conn_accepts_head_exactly_under_limits),
    TEST_CASE(conn_rejects_bad_chunk_size),
    TEST_CASE(conn_answers_broken_request_bodies_itself),
    TEST_CASE(conn_maps_error_codes_to_statuses),
    TEST_CASE(conn_writes_content_length_from_known_body_length),
    TEST_CASE(conn_writes_user_content_length_once),
    TEST_CASE(conn_enforces_user_content_length),
    TEST_CASE(conn_chunks_body_of_unknown_length_on_http11),
    TEST_CASE(conn_never_writes_empty_chunks),
    TEST_CASE(conn_writes_close_delimited_body_on_http10),
    TEST_CASE(conn_writes_no_body_for_head_204_304),
    TEST_CASE(conn_head_response_after_head_request_resets_for_get),
    TEST_CASE(conn_writes_trailers_only_when_chunked),
    TEST_CASE(conn_refuses_header_values_with_cr_lf_nul),
    TEST_CASE(conn_title_cases_header_names),
    TEST_CASE(conn_date_header_follows_option),
    TEST_CASE(conn_formats_imf_fixdate),
    TEST_CASE(conn_write_error_produces_connection_close),
    TEST_CASE(conn_write_error_after_head_closes_without_bytes),
    TEST_CASE(conn_refuses_bad_status_and_writes_empty_reason),
    TEST_CASE(conn_writes_informational_head_before_final),
    TEST_CASE(closed_conn_cannot_read_or_write),
    TEST_CASE(conn_read_space_is_bounded),
    TEST_CASE(conn_replays_kept_head_as_written_the_full_way),
    TEST_CASE(conn_replays_kept_head_with_the_handlers_content_length),
    TEST_CASE(conn_replays_kept_head_with_a_value_slot),
    TEST_CASE(conn_does_not_keep_a_content_length_unlike_the_body),
    TEST_CASE(conn_does_not_keep_heads_with_framing_fields),
    TEST_CASE(conn_head_abort_takes_back_only_a_half_written_head),
  };
  return T_RUN(tests);
}
