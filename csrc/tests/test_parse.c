/* parse.c and decode.c alone: one function per rule of RFC 9112 / 9110
 * they apply. Every input goes in three ways: all at once (the fast path
 * may take it), all at once through the line parser, and one byte more per
 * call; the unconsumed bytes always end at a guard page. */
#include <string.h>

#include "msg_feed.h"
#include "ref_chunked.h"
#include "ref_head.h"
#include "test.h"

static const char *const MODES[3] = {"whole", "whole, line parser", "bytes"};
static const lh_limits_t LIM = {8192, 100, 8192};

/* a message read by a fresh parser p in one of the three ways */
static void read_msg(lh_parser_t *p, lh_role_t role, const lh_limits_t *lim, const char *in,
                     size_t n, int mode, feed_t *f) {
  lh_parser_init(p, role, lim);
  p->slow_only = mode == 1;
  feed_message(p, in, n, mode == 2 ? feed_bytes : feed_whole, NULL, 1, f);
}

static int span_is(const char *base, lh_span_t s, const char *str) {
  return s.len == strlen(str) && memcmp(base + s.off, str, s.len) == 0;
}

/* the head is read in place: spans are checked against the input itself
 * (a response's obs-fold changes the bytes, checked apart) */
#define SPAN_IS(s, str) span_is(in, (s), (str))

typedef struct {
  const char *name;
  const char *in;
  int err;          /* the head's result: an error code (or 1: accepted) */
  lh_limits_t lim;  /* zero: LIM */
} head_case_t;

static void check_heads(const head_case_t *cases, size_t n, lh_role_t role) {
  char ctx[160];
  static ref_head_t ref;
  for (size_t i = 0; i < n; i++) {
    const head_case_t *c = &cases[i];
    if (role == LH_ROLE_SERVER) {
      /* the reference reader says the same */
      snprintf(ctx, sizeof ctx, "%s, reference", c->name);
      t_ctx = ctx;
      ref_head(c->in, strlen(c->in), c->lim.max_head ? &c->lim : &LIM, &ref);
      CHECK_EQ(ref.r, c->err < 0 ? lh_error_status(c->err) : c->err);
    }
    for (int mode = 0; mode < 3; mode++) {
      lh_parser_t p;
      feed_t f;
      snprintf(ctx, sizeof ctx, "%s, %s", c->name, MODES[mode]);
      t_ctx = ctx;
      read_msg(&p, role, c->lim.max_head ? &c->lim : &LIM, c->in, strlen(c->in), mode, &f);
      CHECK_EQ(f.head_r, c->err);
      mock_buf_free(&f.body);
      lh_parser_free(&p);
    }
  }
  t_ctx = NULL;
}

#define EACH_MODE(in) \
  for (int mode = 0; mode < 3; mode++) \
    for (lh_parser_t p, *pp = (t_ctx = MODES[mode], &p); pp; pp = NULL) \
      for (feed_t f; pp; pp = NULL) \
        if (read_msg(&p, LH_ROLE_SERVER, &LIM, (in), strlen(in), mode, &f), 1)

#define DONE_MSG() do { mock_buf_free(&f.body); lh_parser_free(&p); } while (0)

/* --- request line (RFC 9112 3) --- */

static void parse_takes_the_four_target_forms(void) {
  {
    const char *in = "GET /a/b?c=d&e=%20f HTTP/1.1\r\nHost: x\r\n\r\n";
    EACH_MODE(in) {
      REQUIRE_EQ(f.head_r, 1);
      CHECK(SPAN_IS(p.head.method, "GET"));
      CHECK(SPAN_IS(p.head.target, "/a/b?c=d&e=%20f"));
      CHECK_EQ(p.head.method_id, LH_METHOD_GET);
      DONE_MSG();
    }
  }
  {
    const char *in = "GET http://example.com:8080/p?q HTTP/1.1\r\nHost: example.com:8080\r\n\r\n";
    EACH_MODE(in) {
      REQUIRE_EQ(f.head_r, 1);
      CHECK(SPAN_IS(p.head.target, "http://example.com:8080/p?q"));
      DONE_MSG();
    }
    in = "GET HTTPS://[::1]?q HTTP/1.1\r\nHost: x\r\n\r\n";
    EACH_MODE(in) {
      CHECK_EQ(f.head_r, 1);
      DONE_MSG();
    }
  }
  {
    const char *in = "CONNECT [::1]:443 HTTP/1.1\r\nHost: [::1]:443\r\n\r\n";
    EACH_MODE(in) {
      REQUIRE_EQ(f.head_r, 1);
      CHECK(SPAN_IS(p.head.target, "[::1]:443"));
      CHECK_EQ(p.head.method_id, LH_METHOD_CONNECT);
      CHECK_EQ(p.head.upgrade, 1);
      DONE_MSG();
    }
  }
  {
    const char *in = "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n";
    EACH_MODE(in) {
      REQUIRE_EQ(f.head_r, 1);
      CHECK(SPAN_IS(p.head.target, "*"));
      CHECK_EQ(p.head.method_id, LH_METHOD_OPTIONS);
      DONE_MSG();
    }
  }
}

static void parse_refuses_targets_outside_their_form(void) {
  static const head_case_t cases[] = {
    {"asterisk for GET", "GET * HTTP/1.1\r\nHost: x\r\n\r\n", LH_EPARSE_URI, {0}},
    {"authority for GET", "GET x:80 HTTP/1.1\r\nHost: x\r\n\r\n", LH_EPARSE_URI, {0}},
    {"origin for CONNECT", "CONNECT /x HTTP/1.1\r\nHost: x\r\n\r\n", LH_EPARSE_URI, {0}},
    {"CONNECT without port", "CONNECT x HTTP/1.1\r\nHost: x\r\n\r\n", LH_EPARSE_URI, {0}},
    {"CONNECT empty port", "CONNECT x: HTTP/1.1\r\nHost: x\r\n\r\n", LH_EPARSE_URI, {0}},
    {"fragment", "GET /a#frag HTTP/1.1\r\nHost: x\r\n\r\n", LH_EPARSE_URI, {0}},
    {"obs-text", "GET /\x80 HTTP/1.1\r\nHost: x\r\n\r\n", LH_EPARSE_URI, {0}},
    {"control byte", "GET /\x01 HTTP/1.1\r\nHost: x\r\n\r\n", LH_EPARSE_URI, {0}},
    {"two spaces", "GET  / HTTP/1.1\r\nHost: x\r\n\r\n", LH_EPARSE_URI, {0}},
    {"space in target", "GET /a b HTTP/1.1\r\nHost: x\r\n\r\n", LH_EPARSE_VERSION, {0}},
    {"HTAB separator", "GET\t/ HTTP/1.1\r\nHost: x\r\n\r\n", LH_EPARSE_METHOD, {0}},
    {"userinfo", "GET http://u@h/ HTTP/1.1\r\nHost: h\r\n\r\n", LH_EPARSE_URI, {0}},
    {"empty http host", "GET http:///p HTTP/1.1\r\nHost: h\r\n\r\n", LH_EPARSE_URI, {0}},
    {"bad scheme", "GET 1http://h/ HTTP/1.1\r\nHost: h\r\n\r\n", LH_EPARSE_URI, {0}},
    {"other scheme", "GET ftp://h/ HTTP/1.1\r\nHost: h\r\n\r\n", LH_EPARSE_URI, {0}},
    {"no //", "GET http:h/ HTTP/1.1\r\nHost: h\r\n\r\n", LH_EPARSE_URI, {0}},
    {"no version", "GET /hello\r\nHost: x\r\n\r\n", LH_EPARSE_URI, {0}},
  };
  check_heads(cases, sizeof cases / sizeof *cases, LH_ROLE_SERVER);
}

/* RFC 9112 2.3: 1.x above 1.1 reads as 1.1; another major is 505; the
 * version is "HTTP/" DIGIT "." DIGIT and the line ends right after it */
/* RFC 3986 3.3, 3.4 with hyper's leniencies (the http crate's path and
 * query scans): '"', '{', '}', '|', '^', '[', ']' are taken in the path,
 * and the query takes every VCHAR but '"', '#', '<', '>'. A '\' in the
 * path is refused, unlike hyper: WHATWG URL parsers read it as '/', so a
 * proxy in front and lhyper would see two different paths */
static void parse_applies_target_byte_rules(void) {
  static const head_case_t cases[] = {
    {"backslash in path", "GET /a\\b HTTP/1.1\r\nHost: x\r\n\r\n", LH_EPARSE_URI, {0}},
    {"backslash alone", "GET /\\ HTTP/1.1\r\nHost: x\r\n\r\n", LH_EPARSE_URI, {0}},
    {"backslash before ?", "GET /a\\?q HTTP/1.1\r\nHost: x\r\n\r\n", LH_EPARSE_URI, {0}},
    {"backslash, absolute-form", "GET http://h/a\\b HTTP/1.1\r\nHost: h\r\n\r\n", LH_EPARSE_URI, {0}},
    {"backslash, line cut", "GET /..\\..", LH_EPARSE_URI, {0}},
    {"< in path", "GET /a<b HTTP/1.1\r\nHost: x\r\n\r\n", LH_EPARSE_URI, {0}},
    {"> in path", "GET /a>b HTTP/1.1\r\nHost: x\r\n\r\n", LH_EPARSE_URI, {0}},
    {"backtick in path", "GET /a`b HTTP/1.1\r\nHost: x\r\n\r\n", LH_EPARSE_URI, {0}},
    {"< in query", "GET /?a<b HTTP/1.1\r\nHost: x\r\n\r\n", LH_EPARSE_URI, {0}},
    {"> in query", "GET /?a>b HTTP/1.1\r\nHost: x\r\n\r\n", LH_EPARSE_URI, {0}},
    {"quote in query", "GET /?a\"b HTTP/1.1\r\nHost: x\r\n\r\n", LH_EPARSE_URI, {0}},
    {"fragment after query", "GET /?a#b HTTP/1.1\r\nHost: x\r\n\r\n", LH_EPARSE_URI, {0}},
    {"DEL in query", "GET /?a\x7f HTTP/1.1\r\nHost: x\r\n\r\n", LH_EPARSE_URI, {0}},
    {"path leniencies", "GET /a\"b{c}d|e^f[g]h HTTP/1.1\r\nHost: x\r\n\r\n", 1, {0}},
    {"query leniencies", "GET /p?q=a\\b^c`d{e|f}g[h]?i HTTP/1.1\r\nHost: x\r\n\r\n", 1, {0}},
    {"backslash right after ?", "GET /?\\ HTTP/1.1\r\nHost: x\r\n\r\n", 1, {0}},
    {"empty query", "GET /? HTTP/1.1\r\nHost: x\r\n\r\n", 1, {0}},
    {"query, absolute-form", "GET http://h/?a\\b HTTP/1.1\r\nHost: h\r\n\r\n", 1, {0}},
    {"query over max_target", "GET /?0123456789abcd\\ HTTP/1.1\r\nHost: x\r\n\r\n",
     LH_EPARSE_URI_TOO_LONG, {8192, 100, 16}},
    {"backslash at max_target", "GET /0123456789abcd\\ HTTP/1.1\r\nHost: x\r\n\r\n",
     LH_EPARSE_URI, {8192, 100, 16}},
  };
  check_heads(cases, sizeof cases / sizeof *cases, LH_ROLE_SERVER);
}

static void parse_reads_versions(void) {
  static const head_case_t cases[] = {
    {"HTTP/2.0", "GET / HTTP/2.0\r\nHost: x\r\n\r\n", LH_EPARSE_VERSION_H2, {0}},
    {"HTTP/0.9", "GET / HTTP/0.9\r\nHost: x\r\n\r\n", LH_EPARSE_VERSION_H2, {0}},
    {"trailing space", "GET / HTTP/1.1 \r\nHost: x\r\n\r\n", LH_EPARSE_VERSION, {0}},
    {"two minor digits", "GET / HTTP/1.10\r\nHost: x\r\n\r\n", LH_EPARSE_VERSION, {0}},
    {"lower case", "GET / http/1.1\r\nHost: x\r\n\r\n", LH_EPARSE_VERSION, {0}},
    {"bare CR after version", "GET / HTTP/1.1\rHost: x\r\n\r\n", LH_EPARSE_VERSION, {0}},
    {"no dot", "GET / HTTP/11\r\nHost: x\r\n\r\n", LH_EPARSE_VERSION, {0}},
  };
  check_heads(cases, sizeof cases / sizeof *cases, LH_ROLE_SERVER);
  const char *in = "GET / HTTP/1.2\r\nHost: x\r\n\r\n";
  EACH_MODE(in) {
    REQUIRE_EQ(f.head_r, 1);
    CHECK_EQ(p.head.major, 1);
    CHECK_EQ(p.head.minor, 1);
    CHECK_EQ(p.head.keep_alive, 1);
    DONE_MSG();
  }
  in = "GET / HTTP/1.0\r\n\r\n";
  EACH_MODE(in) {
    REQUIRE_EQ(f.head_r, 1);
    CHECK_EQ(p.head.minor, 0);
    CHECK_EQ(p.head.keep_alive, 0);
    DONE_MSG();
  }
}

static void parse_knows_methods_and_answers_501_to_others(void) {
  static const head_case_t cases[] = {
    {"unknown token", "BREW /pot HTTP/1.1\r\nHost: x\r\n\r\n", LH_EPARSE_METHOD_UNKNOWN, {0}},
    {"lower case", "get / HTTP/1.1\r\nHost: x\r\n\r\n", LH_EPARSE_METHOD_UNKNOWN, {0}},
    {"not a token", "GE(T / HTTP/1.1\r\nHost: x\r\n\r\n", LH_EPARSE_METHOD, {0}},
    {"leading space", " GET / HTTP/1.1\r\nHost: x\r\n\r\n", LH_EPARSE_METHOD, {0}},
    {"binary", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", LH_EPARSE_METHOD, {0}},
  };
  check_heads(cases, sizeof cases / sizeof *cases, LH_ROLE_SERVER);
  static const char *const known[] = {"PROPFIND", "M-SEARCH", "PURGE", "QUERY", "TRACE", "PATCH"};
  static const int ids[] = {LH_METHOD_PROPFIND, LH_METHOD_MSEARCH, LH_METHOD_PURGE,
                            LH_METHOD_QUERY, LH_METHOD_TRACE, LH_METHOD_PATCH};
  for (int k = 0; k < 6; k++) {
    char in[128];
    snprintf(in, sizeof in, "%s / HTTP/1.1\r\nHost: x\r\n\r\n", known[k]);
    EACH_MODE(in) {
      REQUIRE_EQ(f.head_r, 1);
      CHECK_EQ(p.head.method_id, ids[k]);
      DONE_MSG();
    }
  }
}

/* RFC 9112 2.2: empty lines before the request line are passed over, and
 * a bare LF ends a line of the head */
static void parse_skips_empty_lines_and_takes_bare_lf(void) {
  const char *in = "\r\n\nGET /x HTTP/1.1\nHost: x\nA:\tb \n\n";
  EACH_MODE(in) {
    REQUIRE_EQ(f.head_r, 1);
    CHECK(SPAN_IS(p.head.target, "/x"));
    CHECK_EQ(p.head.len, strlen(in));
    REQUIRE_EQ(p.head.nfields, 2);
    CHECK(SPAN_IS(p.head.fields[1].value, "b"));
    DONE_MSG();
  }
}

/* --- field lines (RFC 9112 5, RFC 9110 5.5) --- */

static void parse_trims_ows_and_takes_obs_text(void) {
  const char *in = "GET / HTTP/1.1\r\nHost: x\r\nA: \t v \t\r\nB:w\r\nC:\r\nD: \x80\xff x\r\n\r\n";
  EACH_MODE(in) {
    REQUIRE_EQ(f.head_r, 1);
    REQUIRE_EQ(p.head.nfields, 5);
    CHECK(SPAN_IS(p.head.fields[1].name, "A"));
    CHECK(SPAN_IS(p.head.fields[1].value, "v"));
    CHECK(SPAN_IS(p.head.fields[2].value, "w"));
    CHECK_EQ(p.head.fields[3].value.len, 0);
    CHECK(SPAN_IS(p.head.fields[4].value, "\x80\xff x"));
    DONE_MSG();
  }
}

static void parse_refuses_broken_field_lines(void) {
  static const head_case_t cases[] = {
    {"space before colon", "GET / HTTP/1.1\r\nHost : x\r\n\r\n", LH_EPARSE_HEADER, {0}},
    {"no colon", "GET / HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n", LH_EPARSE_HEADER, {0}},
    {"empty name", "GET / HTTP/1.1\r\nHost: x\r\n: v\r\n\r\n", LH_EPARSE_HEADER, {0}},
    {"separator in name", "GET / HTTP/1.1\r\nHost: x\r\nX<A>: b\r\n\r\n", LH_EPARSE_HEADER, {0}},
    {"obs-fold", "GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n", LH_EPARSE_HEADER, {0}},
    {"space after start line", "GET / HTTP/1.1\r\n Host: x\r\n\r\n", LH_EPARSE_HEADER, {0}},
    {"control in value", "GET / HTTP/1.1\r\nHost: x\r\nX: a\x01" "b\r\n\r\n", LH_EPARSE_HEADER, {0}},
    {"DEL in value", "GET / HTTP/1.1\r\nHost: x\r\nX: a\x7f" "b\r\n\r\n", LH_EPARSE_HEADER, {0}},
    {"bare CR in value", "GET / HTTP/1.1\r\nHost: x\r\nX: a\rb\r\n\r\n", LH_EPARSE_HEADER, {0}},
    {"bare CR in name", "GET / HTTP/1.1\r\nHost: x\r\nX\r: b\r\n\r\n", LH_EPARSE_HEADER, {0}},
    {"CR CR LF", "GET / HTTP/1.1\r\nHost: x\r\r\n\r\n", LH_EPARSE_HEADER, {0}},
    {"bare CR ends head", "GET / HTTP/1.1\r\nHost: x\r\n\rX", LH_EPARSE_HEADER, {0}},
  };
  check_heads(cases, sizeof cases / sizeof *cases, LH_ROLE_SERVER);
  static const char nul[] = "GET / HTTP/1.1\r\nHost: x\r\nX: a\0b\r\n\r\n";
  for (int mode = 0; mode < 3; mode++) {
    lh_parser_t p;
    feed_t f;
    t_ctx = MODES[mode];
    read_msg(&p, LH_ROLE_SERVER, &LIM, nul, sizeof nul - 1, mode, &f);
    CHECK_EQ(f.head_r, LH_EPARSE_HEADER);
    DONE_MSG();
  }
}

/* --- Host (RFC 9112 3.2, RFC 9110 7.2) --- */

static void parse_checks_host(void) {
  static const head_case_t cases[] = {
    {"missing in 1.1", "GET / HTTP/1.1\r\nA: b\r\n\r\n", LH_EPARSE_HOST, {0}},
    {"two", "GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", LH_EPARSE_HOST, {0}},
    {"two in 1.0", "GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", LH_EPARSE_HOST, {0}},
    {"space", "GET / HTTP/1.1\r\nHost: local host\r\n\r\n", LH_EPARSE_HOST, {0}},
    {"path", "GET / HTTP/1.1\r\nHost: localhost/evil\r\n\r\n", LH_EPARSE_HOST, {0}},
    {"userinfo", "GET / HTTP/1.1\r\nHost: u@h\r\n\r\n", LH_EPARSE_HOST, {0}},
    {"letters in port", "GET / HTTP/1.1\r\nHost: h:8x\r\n\r\n", LH_EPARSE_HOST, {0}},
    {"two ports", "GET / HTTP/1.1\r\nHost: h:1:2\r\n\r\n", LH_EPARSE_HOST, {0}},
    {"open bracket", "GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", LH_EPARSE_HOST, {0}},
    {"not IPv6", "GET / HTTP/1.1\r\nHost: [hello]\r\n\r\n", LH_EPARSE_HOST, {0}},
    {"zone id", "GET / HTTP/1.1\r\nHost: [fe80::1%25eth0]\r\n\r\n", LH_EPARSE_HOST, {0}},
    {"bad escape", "GET / HTTP/1.1\r\nHost: a%zz\r\n\r\n", LH_EPARSE_HOST, {0}},
    {"nine groups", "GET / HTTP/1.1\r\nHost: [1:2:3:4:5:6:7:8:9]\r\n\r\n", LH_EPARSE_HOST, {0}},
    {"two ::", "GET / HTTP/1.1\r\nHost: [1::2::3]\r\n\r\n", LH_EPARSE_HOST, {0}},
  };
  check_heads(cases, sizeof cases / sizeof *cases, LH_ROLE_SERVER);
  static const char *const good[] = {
    "example.com", "example.com:8080", "127.0.0.1:80", "[::1]", "[::1]:8080",
    "[2001:db8::ff00:42:8329]", "[::ffff:192.0.2.1]:1", "[v1.fe80::a+b]", "a%2Db", "",
    "h:", "xn--bcher-kva.example", "a_b~c!$&'()*+,;=",
  };
  for (size_t k = 0; k < sizeof good / sizeof *good; k++) {
    char in[160];
    snprintf(in, sizeof in, "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", good[k]);
    EACH_MODE(in) {
      CHECK_EQ(f.head_r, 1);
      DONE_MSG();
    }
  }
  /* none needed in 1.0 */
  const char *in = "GET / HTTP/1.0\r\n\r\n";
  EACH_MODE(in) {
    CHECK_EQ(f.head_r, 1);
    DONE_MSG();
  }
}

/* --- framing (RFC 9112 6) --- */

static void parse_reads_content_length(void) {
  static const char *const same5[] = {
    "Content-Length: 5\r\n", "Content-Length:\t5\t\r\n", "content-length: 5, 5\r\n",
    "Content-Length: 5\r\nContent-Length: 5\r\n", "Content-Length: 005\r\n",
  };
  for (size_t k = 0; k < sizeof same5 / sizeof *same5; k++) {
    char in[200];
    snprintf(in, sizeof in, "POST / HTTP/1.1\r\nHost: x\r\n%s\r\nhelloGET", same5[k]);
    EACH_MODE(in) {
      REQUIRE_EQ(f.head_r, 1);
      CHECK_EQ(p.head.content_length, 5);
      CHECK_EQ(p.head.has_body, 1);
      CHECK_EQ(f.r, 1);
      CHECK_MEM(f.body.p, f.body.n, "hello");
      CHECK_EQ(f.used, 5); /* the next request's bytes stay */
      DONE_MSG();
    }
  }
  const char *in = "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 9223372036854775807\r\n\r\n";
  EACH_MODE(in) {
    REQUIRE_EQ(f.head_r, 1);
    CHECK_EQ(p.head.content_length, INT64_MAX);
    DONE_MSG();
  }
  in = "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n";
  EACH_MODE(in) {
    REQUIRE_EQ(f.head_r, 1);
    CHECK_EQ(p.head.has_body, 0);
    CHECK_EQ(p.state, LH_PARSE_DONE);
    DONE_MSG();
  }
  static const head_case_t bad[] = {
    {"unequal lines", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
     LH_EPARSE_CONTENT_LENGTH, {0}},
    {"unequal list", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 6\r\n\r\n", LH_EPARSE_CONTENT_LENGTH, {0}},
    {"empty element", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5,\r\n\r\n", LH_EPARSE_CONTENT_LENGTH, {0}},
    {"empty", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length:\r\n\r\n", LH_EPARSE_CONTENT_LENGTH, {0}},
    {"plus", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\n", LH_EPARSE_CONTENT_LENGTH, {0}},
    {"minus", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", LH_EPARSE_CONTENT_LENGTH, {0}},
    {"hex", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0x5\r\n\r\n", LH_EPARSE_CONTENT_LENGTH, {0}},
    {"two numbers", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5 5\r\n\r\n", LH_EPARSE_CONTENT_LENGTH, {0}},
    {"2^63", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 9223372036854775808\r\n\r\n",
     LH_EPARSE_CONTENT_LENGTH, {0}},
    {"huge", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n",
     LH_EPARSE_CONTENT_LENGTH, {0}},
  };
  check_heads(bad, sizeof bad / sizeof *bad, LH_ROLE_SERVER);
}

static void parse_applies_transfer_encoding_rules(void) {
  static const char *const chunked[] = {
    "Transfer-Encoding: chunked\r\n", "Transfer-Encoding:\tchunked\t\r\n",
    "transfer-encoding: Chunked\r\n", "Transfer-Encoding: , chunked\r\n",
  };
  for (size_t k = 0; k < sizeof chunked / sizeof *chunked; k++) {
    char in[200];
    snprintf(in, sizeof in, "POST / HTTP/1.1\r\nHost: x\r\n%s\r\n0\r\n\r\n", chunked[k]);
    EACH_MODE(in) {
      REQUIRE_EQ(f.head_r, 1);
      CHECK_EQ(p.head.chunked, 1);
      CHECK_EQ(p.head.content_length, LH_NO_LENGTH);
      CHECK_EQ(f.r, 1);
      DONE_MSG();
    }
  }
  static const head_case_t bad[] = {
    {"TE then CL", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
     LH_EPARSE_TE, {0}},
    {"CL then TE", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
     LH_EPARSE_TE, {0}},
    {"on 1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", LH_EPARSE_TE, {0}},
    {"chunked twice", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", LH_EPARSE_TE, {0}},
    {"chunked not last", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", LH_EPARSE_TE, {0}},
    {"last line not chunked",
     "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n",
     LH_EPARSE_TE, {0}},
    {"empty", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n\r\n", LH_EPARSE_TE, {0}},
    {"unknown coding", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: foo\r\n\r\n", LH_EPARSE_TE_UNSUPPORTED, {0}},
    {"xchunked", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n", LH_EPARSE_TE_UNSUPPORTED, {0}},
    {"gzip before chunked", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
     LH_EPARSE_TE_UNSUPPORTED, {0}},
    {"gzip line, chunked line",
     "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n",
     LH_EPARSE_TE_UNSUPPORTED, {0}},
  };
  check_heads(bad, sizeof bad / sizeof *bad, LH_ROLE_SERVER);
}

static void parse_reads_connection_expect_upgrade_and_te(void) {
  struct { const char *in; int ka, expect, upgrade, te_trailers; } c[] = {
    {"GET / HTTP/1.1\r\nHost: x\r\nTE: trailers\r\n\r\n", 1, 0, 0, 1},
    {"GET / HTTP/1.1\r\nHost: x\r\nte: deflate;q=0.5, TRAILERS\r\n\r\n", 1, 0, 0, 1},
    {"GET / HTTP/1.1\r\nHost: x\r\nTE: deflate\r\n\r\n", 1, 0, 0, 0},
    {"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 0, 0, 0, 0},
    {"GET / HTTP/1.1\r\nHost: x\r\nConnection: x,\t, CLOSE \r\n\r\n", 0, 0, 0, 0},
    {"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", 1, 0, 0, 0},
    {"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", 0, 0, 0, 0},
    {"GET / HTTP/1.1\r\nHost: x\r\nExpect: 100-Continue\r\n\r\n", 1, 1, 0, 0},
    {"GET / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n", 0, 0, 0, 0},
    {"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", 1, 0, 1, 0},
    {"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n", 1, 0, 0, 0},
  };
  for (size_t k = 0; k < sizeof c / sizeof *c; k++) {
    const char *in = c[k].in;
    EACH_MODE(in) {
      REQUIRE_EQ(f.head_r, 1);
      CHECK_EQ(p.head.keep_alive, c[k].ka);
      CHECK_EQ(p.head.expect_continue, c[k].expect);
      CHECK_EQ(p.head.upgrade, c[k].upgrade);
      CHECK_EQ(p.head.te_trailers, c[k].te_trailers);
      DONE_MSG();
    }
  }
}

/* --- limits --- */

static void parse_applies_limits(void) {
  static char long_field[600];
  snprintf(long_field, sizeof long_field, "GET / HTTP/1.1\r\nHost: x\r\nX: %0500d\r\n\r\n", 0);
  const head_case_t cases[] = {
    {"target over max_target", "GET /0123456789abcdef HTTP/1.1\r\nHost: x\r\n\r\n",
     LH_EPARSE_URI_TOO_LONG, {8192, 100, 16}},
    {"target over max_target, line cut", "GET /0123456789abcdefghij", LH_EPARSE_URI_TOO_LONG,
     {8192, 100, 16}},
    {"target at max_target", "GET /0123456789abcde HTTP/1.1\r\nHost: x\r\n\r\n", 1, {8192, 100, 16}},
    {"fields over max_headers", "GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\n\r\n",
     LH_EPARSE_TOO_MANY, {8192, 2, 8192}},
    {"fields at max_headers", "GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\n\r\n", 1, {8192, 2, 8192}},
    {"head over max_head", long_field, LH_EPARSE_TOO_LARGE, {256, 100, 8192}},
    {"head at max_head", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 1, {27, 100, 8192}},
    {"head one over max_head", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", LH_EPARSE_TOO_LARGE, {26, 100, 8192}},
  };
  check_heads(cases, sizeof cases / sizeof *cases, LH_ROLE_SERVER);
}

/* --- responses (client role) --- */

static void parse_reads_status_lines(void) {
  static const head_case_t cases[] = {
    {"two digits", "HTTP/1.1 20 OK\r\n\r\n", LH_EPARSE_STATUS, {0}},
    {"below 100", "HTTP/1.1 099 x\r\n\r\n", LH_EPARSE_STATUS, {0}},
    {"no space", "HTTP/1.1 200OK\r\n\r\n", LH_EPARSE_STATUS, {0}},
    {"HTTP/2", "HTTP/2 200 OK\r\n\r\n", LH_EPARSE_VERSION, {0}},
    {"HTTP/2.0", "HTTP/2.0 200 OK\r\n\r\n", LH_EPARSE_VERSION, {0}},
    {"control in reason", "HTTP/1.1 200 O\x01K\r\n\r\n", LH_EPARSE_STATUS, {0}},
    {"TE and CL", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n", LH_EPARSE_TE, {0}},
    {"bad CL", "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", LH_EPARSE_CONTENT_LENGTH, {0}},
  };
  check_heads(cases, sizeof cases / sizeof *cases, LH_ROLE_CLIENT);
  struct { const char *in; int status; const char *reason; } ok[] = {
    {"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 200, "OK"},
    {"HTTP/1.1 404 \r\nContent-Length: 0\r\n\r\n", 404, ""},
    {"HTTP/1.1 204\r\n\r\n", 204, ""},
    {"HTTP/1.0 999 Whatever \x80 it says\r\nContent-Length: 0\r\n\r\n", 999, "Whatever \x80 it says"},
  };
  for (size_t k = 0; k < sizeof ok / sizeof *ok; k++)
    for (int mode = 0; mode < 3; mode += 2) {
      const char *in = ok[k].in;
      lh_parser_t p;
      feed_t f;
      t_ctx = MODES[mode];
      read_msg(&p, LH_ROLE_CLIENT, &LIM, in, strlen(in), mode, &f);
      REQUIRE_EQ(f.head_r, 1);
      CHECK_EQ(p.head.status, ok[k].status);
      CHECK(SPAN_IS(p.head.reason, ok[k].reason));
      CHECK_EQ(p.state, LH_PARSE_DONE);
      DONE_MSG();
    }
}

/* RFC 9112 5.2: a user agent replaces a response's obs-fold with spaces */
static void parse_joins_obs_fold_in_responses(void) {
  static const char resp[] = "HTTP/1.1 200 OK\r\nX-Fold: a\r\n  b \r\n\tc\r\nContent-Length: 0\r\n\r\n";
  for (int mode = 0; mode < 3; mode += 2) {
    char buf[sizeof resp];
    memcpy(buf, resp, sizeof resp);
    lh_parser_t p;
    t_ctx = MODES[mode];
    lh_parser_init(&p, LH_ROLE_CLIENT, &LIM);
    int r = 0;
    for (size_t k = mode ? 1 : sizeof resp - 1; r == 0 && k < sizeof resp; k++)
      r = lh_parser_head(&p, buf, k);
    REQUIRE_EQ(r, 1);
    REQUIRE_EQ(p.head.nfields, 2);
    CHECK(span_is(buf, p.head.fields[0].value, "a    b    c"));
    lh_parser_free(&p);
  }
}

static void parse_frames_responses(void) {
  struct { const char *in; int skip; int chunked, close, has_body; const char *body; int r; } c[] = {
    {"HTTP/1.1 200 OK\r\n\r\nto the end", 0, 0, 1, 1, "to the end", 0},
    {"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcdef", 0, 0, 0, 1, "abc", 1},
    {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", 0, 1, 0, 1, "abc", 1},
    {"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nraw", 0, 0, 1, 1, "raw", 0},
    {"HTTP/1.1 204 No Content\r\n\r\n", 0, 0, 0, 0, "", 0},
    {"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n", 0, 0, 0, 0, "", 0},
    {"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", 1, 0, 0, 0, "", 0},
  };
  for (size_t k = 0; k < sizeof c / sizeof *c; k++)
    for (int mode = 0; mode < 3; mode += 2) {
      const char *in = c[k].in;
      lh_parser_t p;
      feed_t f;
      t_ctx = in;
      lh_parser_init(&p, LH_ROLE_CLIENT, &LIM);
      p.skip_body = c[k].skip;
      feed_message(&p, in, strlen(in), mode ? feed_bytes : feed_whole, NULL, 1, &f);
      REQUIRE_EQ(f.head_r, 1);
      CHECK_EQ(p.head.chunked, c[k].chunked);
      CHECK_EQ(p.head.close_delimited, c[k].close);
      CHECK_EQ(p.head.has_body, c[k].has_body);
      if (c[k].has_body) {
        CHECK_EQ(f.r, c[k].r);
        CHECK_MEM(f.body.p, f.body.n, c[k].body);
      }
      if (c[k].close) {
        CHECK_EQ(lh_parser_eof(&p), 1);
        CHECK_EQ(p.head.keep_alive, 0);
      }
      DONE_MSG();
    }
}

/* --- chunked bodies (RFC 9112 7.1) --- */

#define CHUNKED_HEAD "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"

typedef struct {
  const char *name;
  const char *body;  /* after CHUNKED_HEAD */
  int r;             /* 1 complete, 0 more needed, or the error */
  const char *data;  /* the decoded body, when r >= 0 */
} chunk_case_t;

/* each case through the parser in the three ways, and against the reference */
static void check_chunked(const chunk_case_t *cases, size_t n, const lh_limits_t *lim) {
  char ctx[200], in[70000];
  for (size_t i = 0; i < n; i++) {
    const chunk_case_t *c = &cases[i];
    size_t hl = strlen(CHUNKED_HEAD), bl = strlen(c->body);
    memcpy(in, CHUNKED_HEAD, hl);
    memcpy(in + hl, c->body, bl);
    ref_chunked_t ref;
    snprintf(ctx, sizeof ctx, "%s, reference", c->name);
    t_ctx = ctx;
    ref_chunked(c->body, bl, lim, &ref);
    CHECK_EQ(ref.r, c->r);
    if (c->r >= 0) CHECK_MEM(ref.body, ref.blen, c->data);
    for (int mode = 0; mode < 3; mode++) {
      lh_parser_t p;
      feed_t f;
      snprintf(ctx, sizeof ctx, "%s, %s", c->name, MODES[mode]);
      t_ctx = ctx;
      read_msg(&p, LH_ROLE_SERVER, lim, in, hl + bl, mode, &f);
      REQUIRE_EQ(f.head_r, 1);
      CHECK_EQ(f.r, c->r);
      if (c->r >= 0) CHECK_MEM(f.body.p, f.body.n, c->data);
      if (c->r == 1) {
        CHECK_EQ(f.used, ref.used);
        CHECK_EQ(p.ntrailers, ref.ntr);
      }
      DONE_MSG();
    }
    ref_chunked_free(&ref);
  }
  t_ctx = NULL;
}

static void parse_decodes_chunked_bodies(void) {
  static const chunk_case_t cases[] = {
    {"one chunk", "5\r\nhello\r\n0\r\n\r\n", 1, "hello"},
    {"three chunks", "5\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\n\r\n", 1, "hello world"},
    {"hex sizes", "A\r\n0123456789\r\na\r\nabcdefghij\r\n0\r\n\r\n", 1, "0123456789abcdefghij"},
    {"leading zeros", "0005\r\nhello\r\n000\r\n\r\n", 1, "hello"},
    {"next message stays", "5\r\nhello\r\n0\r\n\r\nGET / HTTP/1.1\r\n", 1, "hello"},
    {"cut in data", "5\r\nhel", 0, "hel"},
    {"cut in size line", "5\r\nhello\r\n1", 0, "hello"},
    {"cut before last CRLF", "5\r\nhello\r\n0\r\n", 0, "hello"},
  };
  check_chunked(cases, sizeof cases / sizeof *cases, &LIM);
}

/* RFC 9112 7.1.1: parsed, and ignored */
static void parse_takes_chunk_extensions(void) {
  static const chunk_case_t cases[] = {
    {"name", "5;foo\r\nhello\r\n0\r\n\r\n", 1, "hello"},
    {"two parameters", "5;foo=bar;baz\r\nhello\r\n0\r\n\r\n", 1, "hello"},
    {"quoted value", "5;a=\"x; \\\"q\\\" y\"\r\nhello\r\n0\r\n\r\n", 1, "hello"},
    {"BWS before ;", "5 ;ext=1\r\nhello\r\n0\r\n\r\n", 1, "hello"},
    {"BWS everywhere", "5\t; a \t=\t\"v\" ;b = c\r\nhello\r\n0\r\n\r\n", 1, "hello"},
    {"on the last chunk", "5\r\nhello\r\n0;end=1\r\n\r\n", 1, "hello"},
    {"obs-text quoted", "5;a=\"\x80\xff\"\r\nhello\r\n0\r\n\r\n", 1, "hello"},
  };
  check_chunked(cases, sizeof cases / sizeof *cases, &LIM);
}

static void parse_refuses_broken_chunk_framing(void) {
  static const chunk_case_t cases[] = {
    {"no CRLF after data", "5\r\nhelloXX0\r\n\r\n", LH_EPARSE_CHUNK, ""},
    {"LF alone after data", "5\r\nhello\n0\r\n\r\n", LH_EPARSE_CHUNK, ""},
    {"CR alone after data", "5\r\nhello\r0\r\n\r\n", LH_EPARSE_CHUNK, ""},
    {"bare CR ends size line", "5\rhello\r\n0\r\n\r\n", LH_EPARSE_CHUNK, ""},
    {"bare LF ends size line", "5\nhello\r\n0\r\n\r\n", LH_EPARSE_CHUNK, ""},
    {"0x prefix", "0x5\r\nhello\r\n0\r\n\r\n", LH_EPARSE_CHUNK, ""},
    {"minus", "-5\r\nhello\r\n0\r\n\r\n", LH_EPARSE_CHUNK, ""},
    {"empty size line", "\r\nhello\r\n0\r\n\r\n", LH_EPARSE_CHUNK, ""},
    {"BWS then CRLF", "5 \r\nhello\r\n0\r\n\r\n", LH_EPARSE_CHUNK, ""},
    {"empty extension", "5;\r\nhello\r\n0\r\n\r\n", LH_EPARSE_CHUNK, ""},
    {"empty value", "5;a=\r\nhello\r\n0\r\n\r\n", LH_EPARSE_CHUNK, ""},
    {"BWS after value", "5;a=b \r\nhello\r\n0\r\n\r\n", LH_EPARSE_CHUNK, ""},
    {"unclosed quote", "5;a=\"x\r\nhello\r\n0\r\n\r\n", LH_EPARSE_CHUNK, ""},
    {"separator in name", "5;a/b\r\nhello\r\n0\r\n\r\n", LH_EPARSE_CHUNK, ""},
    {"text after quote", "5;a=\"x\"y\r\nhello\r\n0\r\n\r\n", LH_EPARSE_CHUNK, ""},
    {"size past 2^64", "10000000000000000\r\n", LH_EPARSE_CHUNK, ""},
    {"NUL in extension", "5;a\x01\r\nhello\r\n0\r\n\r\n", LH_EPARSE_CHUNK, ""},
  };
  check_chunked(cases, sizeof cases / sizeof *cases, &LIM);
}

/* hyper's limit: 16 KiB of extension bytes per message, whatever the chunks */
static void parse_caps_chunk_extensions_per_message(void) {
  static char over_one[LH_CHUNK_EXT_MAX + 64], over_many[LH_CHUNK_EXT_MAX + 4096],
      at_max[LH_CHUNK_EXT_MAX + 64], zeros[LH_CHUNK_EXT_MAX + 64];
  /* one chunk: ';' + name of LH_CHUNK_EXT_MAX bytes */
  size_t k = (size_t)sprintf(over_one, "5;");
  memset(over_one + k, 'a', LH_CHUNK_EXT_MAX);
  strcpy(over_one + k + LH_CHUNK_EXT_MAX, "\r\nhello\r\n0\r\n\r\n");
  /* exactly the limit: ';' + LH_CHUNK_EXT_MAX - 1 */
  k = (size_t)sprintf(at_max, "5;");
  memset(at_max + k, 'a', LH_CHUNK_EXT_MAX - 1);
  strcpy(at_max + k + LH_CHUNK_EXT_MAX - 1, "\r\nhello\r\n0\r\n\r\n");
  /* many chunks, 63 extension bytes each */
  k = 0;
  for (int i = 0; i < LH_CHUNK_EXT_MAX / 63 + 2; i++) {
    k += (size_t)sprintf(over_many + k, "1;");
    memset(over_many + k, 'b', 62);
    k += 62;
    k += (size_t)sprintf(over_many + k, "\r\nx\r\n");
  }
  strcpy(over_many + k, "0\r\n\r\n");
  /* leading zeros past sixteen digits count too */
  memset(zeros, '0', LH_CHUNK_EXT_MAX + 17);
  strcpy(zeros + LH_CHUNK_EXT_MAX + 17, "5\r\nhello\r\n0\r\n\r\n");
  const chunk_case_t cases[] = {
    {"one chunk over", over_one, LH_EPARSE_CHUNK_EXT, ""},
    {"at the limit", at_max, 1, "hello"},
    {"over across chunks", over_many, LH_EPARSE_CHUNK_EXT, ""},
    {"zeros", zeros, LH_EPARSE_CHUNK_EXT, ""},
  };
  check_chunked(cases, sizeof cases / sizeof *cases, &LIM);
  CHECK_EQ(lh_error_status(LH_EPARSE_CHUNK_EXT), 413);
}

static void parse_reads_trailers_with_the_field_grammar(void) {
  static const chunk_case_t cases[] = {
    {"two", "5\r\nhello\r\n0\r\nX-A: 1\r\nX-B:\t2 \r\n\r\n", 1, "hello"},
    {"bare LF lines", "5\r\nhello\r\n0\r\nX-A: 1\n\n", 1, "hello"},
    {"space before colon", "0\r\nX-A : 1\r\n\r\n", LH_EPARSE_HEADER, ""},
    {"obs-fold", "0\r\nX-A: 1\r\n 2\r\n\r\n", LH_EPARSE_HEADER, ""},
    {"bare CR", "0\r\nX-A: 1\r2\r\n\r\n", LH_EPARSE_HEADER, ""},
    {"cut", "0\r\nX-A: 1\r\n", 0, ""},
  };
  check_chunked(cases, sizeof cases / sizeof *cases, &LIM);
  const char *in = CHUNKED_HEAD "0\r\nX-A: 1\r\nX-B:\t2 \r\n\r\n";
  EACH_MODE(in) {
    REQUIRE_EQ(f.r, 1);
    REQUIRE_EQ(p.ntrailers, 2);
    CHECK(span_is(p.tbytes, p.tfields[0].name, "X-A"));
    CHECK(span_is(p.tbytes, p.tfields[0].value, "1"));
    CHECK(span_is(p.tbytes, p.tfields[1].value, "2"));
    DONE_MSG();
  }
  /* their count and bytes are held to the head's limits */
  static char large[200];
  snprintf(large, sizeof large, "0\r\nA: %0130d\r\n\r\n", 0);
  const chunk_case_t limited[] = {
    {"too many", "0\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", LH_EPARSE_TOO_MANY, ""},
    {"too large", large, LH_EPARSE_TOO_LARGE, ""},
    {"at the limits", "0\r\nA: 1\r\nB: 2\r\n\r\n", 1, ""},
  };
  lh_limits_t small = {128, 2, 8192};
  check_chunked(limited, sizeof limited / sizeof *limited, &small);
}

/* in place: the data of a chunk is not copied, and later chunks are moved
 * up behind it */
static void parse_decodes_chunks_in_place(void) {
  char buf[] = "3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n";
  lh_decoder_t d;
  size_t used, off, len;
  lh_decoder_chunked(&d);
  CHECK_EQ(lh_decoder_decode(&d, buf, strlen(buf), &used, &off, &len), LH_DEC_TRAILERS);
  CHECK_EQ(off, 3);
  CHECK_MEM(buf + off, len, "abcdefg");
  CHECK_EQ(used, strlen(buf) - 2);
}

int main(void) {
  guard_init();
  static const test_case_t tests[] = {
    TEST_CASE(parse_takes_the_four_target_forms),
    TEST_CASE(parse_refuses_targets_outside_their_form),
    TEST_CASE(parse_applies_target_byte_rules),
    TEST_CASE(parse_reads_versions),
    TEST_CASE(parse_knows_methods_and_answers_501_to_others),
    TEST_CASE(parse_skips_empty_lines_and_takes_bare_lf),
    TEST_CASE(parse_trims_ows_and_takes_obs_text),
    TEST_CASE(parse_refuses_broken_field_lines),
    TEST_CASE(parse_checks_host),
    TEST_CASE(parse_reads_content_length),
    TEST_CASE(parse_applies_transfer_encoding_rules),
    TEST_CASE(parse_reads_connection_expect_upgrade_and_te),
    TEST_CASE(parse_applies_limits),
    TEST_CASE(parse_reads_status_lines),
    TEST_CASE(parse_joins_obs_fold_in_responses),
    TEST_CASE(parse_frames_responses),
    TEST_CASE(parse_decodes_chunked_bodies),
    TEST_CASE(parse_takes_chunk_extensions),
    TEST_CASE(parse_refuses_broken_chunk_framing),
    TEST_CASE(parse_caps_chunk_extensions_per_message),
    TEST_CASE(parse_reads_trailers_with_the_field_grammar),
    TEST_CASE(parse_decodes_chunks_in_place),
  };
  return T_RUN(tests);
}
