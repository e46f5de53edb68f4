/* libFuzzer target: the server role fed arbitrary bytes.
 *
 * Input: 4 header bytes, then the byte stream a client sends.
 *   b0: bit0 the service reads the whole body before answering (else it
 *       answers inside recv_msg), bits1-2 limits preset (see LIMITS),
 *       bit3 keep_alive off, bit4 half_close, bit5 title_case,
 *       bit6 streamed response body (chunked / close-delimited),
 *       bit7 pipeline_flush
 *   b1: bits0-1 response status (200 201 204 304), bit2 the response
 *       carries Connection: close, bit3 the transport takes 7 bytes per
 *       flush, bit4 no EOF at the end, bit5 drive lh_conn directly (no
 *       Dispatcher), bit6 poll_ready says no until the reader blocks,
 *       bit7 the header deadline fires before EOF
 *   b2: bits0-1 how the stream is cut into reads (whole, fixed size,
 *       byte by byte, pseudo-random sizes), bits2-7 size parameter
 *   b3: bit0 chunked responses carry a trailer, bit1 no Date header,
 *       bits2-7 seed of the direct mode's per-request choices
 *
 * Checked after every read: the bytes written so far parse as whole
 * responses (a status line "HTTP/1.1 " or "HTTP/1.0 ", framing that
 * matches the request: HEAD, 204, 304, CONNECT 2xx bodiless, chunked,
 * Content-Length or close-delimited), the n-th final response answers the
 * n-th request (version, echoed body), a 100 Continue only for a request
 * that asked for it, never more final responses than requests (+1 error
 * response for a head that failed), nothing after Connection: close or
 * after the connection closed, heads within their limits, body byte counts
 * within Content-Length, a Dispatcher never reads into a full buffer.
 *
 * FUZZ_WRITE_SEEDS=dir writes the seed corpus and exits; FUZZ_WRITE_DICT=file
 * writes a dictionary and exits (both used by `make fuzz`). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "deadline.h"
#include "fuzz_dict.h"
#include "mock_io.h"

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#include <sanitizer/asan_interface.h>
#define HAVE_ASAN 1
#endif
#endif
#ifndef HAVE_ASAN
#define ASAN_POISON_MEMORY_REGION(p, n) ((void)(p), (void)(n))
#define ASAN_UNPOISON_MEMORY_REGION(p, n) ((void)(p), (void)(n))
#endif

#define FAIL(...)                                                   \
  do {                                                              \
    fprintf(stderr, "fuzz_conn invariant (%s:%d): ", __FILE__, __LINE__); \
    fprintf(stderr, __VA_ARGS__);                                   \
    fprintf(stderr, "\n");                                          \
    abort();                                                        \
  } while (0)

static const struct { uint32_t buf, headers, target; } LIMITS[4] = {
  {65536, 100, 8192}, {8192, 8, 8192}, {512, 4, 64}, {8192, 100, 8192}};
static const int STATUS[4] = {200, 201, 204, 304};

/* --- cutting the input into reads --- */

typedef struct {
  int kind, param;
  uint32_t rng;
} split_t;

static uint32_t xs(uint32_t *s) {
  uint32_t x = *s ? *s : 0x9e3779b9u;
  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  return *s = x;
}

static size_t next_len(split_t *s, size_t left) {
  size_t k;
  switch (s->kind) {
    case 0: k = left; break;
    case 1: k = (size_t)s->param + 1; break;
    case 2: k = 1; break;
    default: k = 1 + xs(&s->rng) % ((uint32_t)s->param * 4 + 4); break;
  }
  return k < left ? k : left;
}

/* --- requests as the service saw them --- */

typedef struct {
  char *tgt;
  uint32_t tlen;
  uint8_t head, connect, minor, expect, n100, upgrade, te_trailers;
  uint64_t cl;         /* Content-Length, LH_NO_LENGTH when absent or chunked */
  uint64_t body_got;   /* body bytes the service read */
  int body_done, answered;
} req_t;

/* --- the response stream checker --- */

typedef struct {
  mock_buf_t s;        /* every byte written so far */
  size_t pos;          /* whole responses end here */
  size_t out_seen;     /* mock out bytes already compared (dispatcher mode) */
  int nfinal;          /* final responses */
  int nerr;            /* of which error responses (not the service's) */
  int ended;           /* a response that ends the connection was seen */
  size_t end_at;       /* stream length at that response's end */
  int close_body;      /* a close-delimited body runs to the end of the stream */
  size_t close_start;
  int close_req;
  size_t frozen;       /* stream length when the conn was seen closed */
} chk_t;

typedef struct {
  /* configuration */
  int read_first, streamed, status, resp_close, trailers, pipeline_flush, flush_limit;
  lh_conn_opts_t o;
  uint32_t rng;
  /* state */
  req_t *reqs;
  int nreq, capreq;
  int cur;             /* request being served, -1 none */
  chk_t k;
  mock_t *m;           /* dispatcher mode */
  lh_conn_t *c;        /* the conn in either mode */
} fz_t;

static void dump(const chk_t *k) {
  size_t from = k->pos > 256 ? k->pos - 256 : 0;
  fprintf(stderr, "stream (%zu bytes, whole responses to %zu), from %zu:\n", k->s.n, k->pos, from);
  fwrite(k->s.p + from, 1, k->s.n - from > 1024 ? 1024 : k->s.n - from, stderr);
  fprintf(stderr, "\n---\n");
}

#define CFAIL(k, ...) \
  do {                \
    dump(k);          \
    FAIL(__VA_ARGS__); \
  } while (0)

static const char *find_crlf2(const char *p, const char *e) {
  for (; p + 4 <= e; p++)
    if (p[0] == '\r' && p[1] == '\n' && p[2] == '\r' && p[3] == '\n') return p;
  return NULL;
}

static int lname_is(const char *p, size_t n, const char *l) {
  size_t ln = strlen(l);
  if (n != ln) return 0;
  for (size_t i = 0; i < n; i++) {
    char c = p[i];
    if (c >= 'A' && c <= 'Z') c = (char)(c + 32);
    if (c != l[i]) return 0;
  }
  return 1;
}

/* one chunked body at p: returns its length in bytes (0 when incomplete);
 * appends the decoded data to body; *ntr: its trailer lines */
static size_t parse_chunked(chk_t *k, const char *p, const char *e, mock_buf_t *body, int *ntr) {
  const char *q = p;
  for (;;) {
    const char *le = memchr(q, '\n', (size_t)(e - q));
    if (!le) return 0;
    uint64_t n = 0;
    const char *h = q;
    if (h == le - 1 || le[-1] != '\r') CFAIL(k, "bad chunk size line");
    for (; h < le - 1; h++) {
      int d = *h >= '0' && *h <= '9' ? *h - '0' : *h >= 'a' && *h <= 'f' ? *h - 'a' + 10 : -1;
      if (d < 0) CFAIL(k, "chunk size not lower hex");
      n = n * 16 + (uint64_t)d;
    }
    q = le + 1;
    if (n == 0) break;
    if ((uint64_t)(e - q) < n + 2) return 0;
    mock_buf_add(body, q, (size_t)n);
    q += n;
    if (q[0] != '\r' || q[1] != '\n') CFAIL(k, "chunk data not followed by CRLF");
    q += 2;
  }
  /* trailer fields, then CRLF */
  for (;;) {
    const char *le = memchr(q, '\n', (size_t)(e - q));
    if (!le) return 0;
    if (le == q || le[-1] != '\r') CFAIL(k, "bad trailer line");
    if (le == q + 1) return (size_t)(le + 1 - p);
    if (!memchr(q, ':', (size_t)(le - q))) CFAIL(k, "trailer line without colon");
    (*ntr)++;
    q = le + 1;
  }
}

/* parses whole responses from k->pos; what is left must be a
 * close-delimited body */
static void chk_parse(fz_t *f) {
  chk_t *k = &f->k;
  if (k->s.n == 0) return;
  const char *s = k->s.p, *e = k->s.p + k->s.n;
  if (k->ended && k->s.n > k->end_at && !k->close_body)
    CFAIL(k, "bytes after a response that ends the connection");
  if (k->frozen != (size_t)-1 && k->s.n != k->frozen)
    CFAIL(k, "bytes written after the connection closed (%zu -> %zu)", k->frozen, k->s.n);
  if (k->close_body) {
    req_t *r = &f->reqs[k->close_req];
    size_t got = k->s.n - k->close_start;
    if (got > r->tlen || memcmp(s + k->close_start, r->tgt, got))
      CFAIL(k, "close-delimited body is not the echoed target");
    return;
  }
  while (k->pos < k->s.n) {
    const char *p = s + k->pos;
    if (k->ended) CFAIL(k, "bytes after a response that ends the connection");
    const char *he = find_crlf2(p, e);
    if (!he) {
      if ((size_t)(e - p) >= 9 && memcmp(p, "HTTP/1.1 ", 9) && memcmp(p, "HTTP/1.0 ", 9))
        CFAIL(k, "response does not start with HTTP/1.x");
      CFAIL(k, "partial response head at the end of a step");
    }
    if (he - p < 13 || (memcmp(p, "HTTP/1.1 ", 9) && memcmp(p, "HTTP/1.0 ", 9)))
      CFAIL(k, "response does not start with HTTP/1.1 or HTTP/1.0");
    int minor = p[7] - '0';
    if (p[9] < '1' || p[9] > '9' || p[10] < '0' || p[10] > '9' || p[11] < '0' || p[11] > '9' ||
        p[12] != ' ')
      CFAIL(k, "bad status code");
    int status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
    /* fields */
    const char *q = memchr(p, '\n', (size_t)(he + 2 - p)) + 1;
    uint64_t cl = LH_NO_LENGTH;
    int chunked = 0, te = 0, close = 0, ka = 0;
    while (q < he + 2) {
      const char *le = memchr(q, '\n', (size_t)(he + 4 - q));
      if (le[-1] != '\r') CFAIL(k, "bare LF in response head");
      const char *colon = memchr(q, ':', (size_t)(le - q));
      if (!colon || colon == q || colon[1] != ' ') CFAIL(k, "bad response field line");
      for (const char *x = q; x < colon; x++)
        if (!lh_is_tchar((unsigned char)*x)) CFAIL(k, "response field name not a token");
      const char *v = colon + 2;
      size_t vn = (size_t)(le - 1 - v);
      size_t nn = (size_t)(colon - q);
      if (lname_is(q, nn, "content-length")) {
        if (cl != LH_NO_LENGTH) CFAIL(k, "two Content-Length fields");
        cl = 0;
        if (vn == 0 || vn > 19) CFAIL(k, "bad Content-Length");
        for (size_t i = 0; i < vn; i++) {
          if (v[i] < '0' || v[i] > '9') CFAIL(k, "bad Content-Length");
          cl = cl * 10 + (uint64_t)(v[i] - '0');
        }
      } else if (lname_is(q, nn, "transfer-encoding")) {
        te++;
        if (vn == 7 && lname_is(v, 7, "chunked")) chunked = 1;
        else CFAIL(k, "transfer-encoding other than chunked");
      } else if (lname_is(q, nn, "connection")) {
        if (lh_list_has(v, vn, "close")) close = 1;
        if (lh_list_has(v, vn, "keep-alive")) ka = 1;
      }
      q = le + 1;
    }
    if (te > 1) CFAIL(k, "two Transfer-Encoding fields");
    const char *body = he + 4;
    req_t *r = k->nfinal < f->nreq ? &f->reqs[k->nfinal] : NULL;
    if (status / 100 == 1) {
      if (status != 100 || minor != 1 || memcmp(p, "HTTP/1.1 100 Continue\r\n\r\n", 25))
        CFAIL(k, "unexpected interim response");
      if (!r || !r->expect || r->n100++) CFAIL(k, "100 Continue not asked for (or twice)");
      if (r->minor == 0) CFAIL(k, "100 Continue to HTTP/1.0");
      k->pos = (size_t)(body - s);
      continue;
    }
    int ours = r && status == f->status;
    if (!ours) {
      if (status < 400) CFAIL(k, "final response %d answers no request (%d requests)", status, f->nreq);
      if (k->nfinal > f->nreq) CFAIL(k, "more responses than requests + 1");
      if (!close) CFAIL(k, "error response without Connection: close");
      if (cl != 0 || chunked) CFAIL(k, "error response with a body");
    } else {
      if (minor != (r->minor == 0 ? 0 : 1)) CFAIL(k, "response version HTTP/1.%d to HTTP/1.%d", minor, r->minor);
      if (r->minor == 0 && ka && close) CFAIL(k, "keep-alive and close");
    }
    int bodiless = status == 204 || status == 304 || (r && r->head) ||
                   (r && r->connect && status / 100 == 2);
    if (status == 204 && (cl != LH_NO_LENGTH || chunked)) CFAIL(k, "204 with framing fields");
    if (chunked && cl != LH_NO_LENGTH) CFAIL(k, "chunked and Content-Length");
    mock_buf_t b = {0};
    const char *end;
    if (bodiless) {
      if (chunked) CFAIL(k, "bodiless response says chunked");
      if (r && r->head && ours && cl != LH_NO_LENGTH && cl != r->tlen)
        CFAIL(k, "HEAD response Content-Length %llu, GET's would be %u", (unsigned long long)cl, r->tlen);
      end = body;
    } else if (chunked) {
      if (minor == 0) CFAIL(k, "chunked response to HTTP/1.0");
      int ntr = 0;
      size_t n = parse_chunked(k, body, e, &b, &ntr);
      if (!n) CFAIL(k, "partial chunked body at the end of a step");
      if (ntr && !(r && r->te_trailers)) CFAIL(k, "trailers to a request without TE: trailers");
      end = body + n;
    } else if (cl != LH_NO_LENGTH) {
      if ((uint64_t)(e - body) < cl) CFAIL(k, "partial body at the end of a step");
      mock_buf_add(&b, body, (size_t)cl);
      end = body + cl;
    } else {
      /* close-delimited */
      if (!ours || !r || r->minor != 0) CFAIL(k, "response without framing");
      if (!close) CFAIL(k, "close-delimited body without Connection: close");
      k->close_body = 1;
      k->close_start = (size_t)(body - s);
      k->close_req = k->nfinal;
      k->nfinal++;
      k->ended = 1;
      k->pos = k->s.n;
      k->end_at = (size_t)-1;
      r->answered = 1;
      chk_parse(f);
      return;
    }
    if (ours && !bodiless && (b.n != r->tlen || memcmp(b.p, r->tgt, b.n)))
      CFAIL(k, "response body is not the echoed target");
    mock_buf_free(&b);
    if (!ours) k->nerr++;
    if (k->nerr > 1) CFAIL(k, "two error responses");
    k->nfinal++;
    k->pos = (size_t)(end - s);
    if (close) {
      k->ended = 1;
      k->end_at = k->pos;
    }
  }
}

/* --- what the service does --- */

static req_t *add_req(fz_t *f, lh_head_t *h, const char *base) {
  lh_conn_t *c = f->c;
  if (h->len > c->opts.max_buf_size) FAIL("head of %u bytes over max_buf_size %u", h->len, c->opts.max_buf_size);
  if (h->nfields > c->opts.max_headers) FAIL("%u fields over max_headers", h->nfields);
  if (h->target.len == 0 || h->target.len > c->opts.max_target) FAIL("target length %u", h->target.len);
  if (h->method.len == 0) FAIL("empty method");
  if (h->major != 1) FAIL("version %d.%d accepted", h->major, h->minor);
  lh_span_t sp[2] = {h->method, h->target};
  for (int i = 0; i < 2; i++)
    if ((uint64_t)sp[i].off + sp[i].len > h->len)
      FAIL("%s span %u+%u outside the head of %u bytes (request %d)", i ? "target" : "method",
           sp[i].off, sp[i].len, h->len, f->nreq);
  for (uint32_t i = 0; i < h->nfields; i++) {
    lh_field_t *fl = &h->fields[i];
    if ((uint64_t)fl->name.off + fl->name.len > h->len || (uint64_t)fl->value.off + fl->value.len > h->len)
      FAIL("field span outside the head");
    if (fl->name.len == 0) FAIL("empty field name");
  }
  if (h->chunked && h->content_length != LH_NO_LENGTH) FAIL("chunked with a Content-Length");
  if (h->has_body != (h->chunked || (h->content_length != LH_NO_LENGTH && h->content_length > 0)))
    FAIL("has_body disagrees with framing");
  if (f->nreq == f->capreq) {
    f->capreq = f->capreq ? f->capreq * 2 : 8;
    f->reqs = realloc(f->reqs, (size_t)f->capreq * sizeof *f->reqs);
    if (!f->reqs) abort();
  }
  req_t *r = &f->reqs[f->nreq++];
  memset(r, 0, sizeof *r);
  r->tlen = h->target.len;
  r->tgt = malloc(r->tlen);
  if (!r->tgt) abort();
  memcpy(r->tgt, base + h->target.off, r->tlen);
  r->head = h->method_id == LH_METHOD_HEAD;
  r->connect = h->method_id == LH_METHOD_CONNECT;
  r->upgrade = h->upgrade;
  r->minor = h->minor;
  r->expect = h->expect_continue;
  r->te_trailers = h->te_trailers;
  r->cl = h->chunked ? LH_NO_LENGTH : h->content_length;
  f->cur = f->nreq - 1;
  return r;
}

/* a response with the configured status echoing the target */
static void answer(fz_t *f) {
  lh_conn_t *c = f->c;
  if (f->cur < 0) FAIL("answer without a request");
  req_t *r = &f->reqs[f->cur];
  if (r->answered) FAIL("answered twice");
  r->answered = 1;
  if (!lh_conn_can_write_head(c)) FAIL("cannot write a head for request %d (writing %d)", f->cur, c->writing);
  int e = lh_conn_head_begin(c, f->status);
  if (!e) e = lh_conn_head_field(c, "X-Fuzz", 6, "1", 1);
  if (!e && f->resp_close) e = lh_conn_head_field(c, "Connection", 10, "close", 5);
  if (!e) e = lh_conn_head_end(c, f->streamed ? -1 : (int64_t)r->tlen);
  if (e) FAIL("response head refused: %d", e);
  size_t half = r->tlen / 2;
  const char *parts[2] = {r->tgt, r->tgt + half};
  size_t lens[2] = {half, r->tlen - half};
  for (int i = 0; i < 2 && !e; i++)
    e = f->m ? lh_disp_write_body(&f->m->d, parts[i], lens[i]) : lh_conn_write_body(c, parts[i], lens[i]);
  if (!e && f->trailers) e = lh_conn_write_trailer(c, "X-Trailer", 9, "t", 1);
  if (!e) e = lh_conn_write_end(c);
  if (e) FAIL("response body refused: %d", e);
}

/* lsvc's answer for a handler that failed: an empty response */
static void respond_error(fz_t *f, int err) {
  lh_conn_t *c = f->c;
  req_t *r = &f->reqs[f->cur];
  r->answered = 1;
  if (!lh_conn_can_write_head(c)) return;
  int st = lh_error_status(err);
  if (lh_conn_head_begin(c, st) || lh_conn_head_end(c, 0) || lh_conn_write_end(c)) {
    lh_conn_head_abort(c);
    lh_conn_close(c);
  }
}

static void check_trailers(fz_t *f) {
  lh_parser_t *p = &f->c->parser;
  if (p->ntrailers > f->c->opts.max_headers) FAIL("%u trailers over max_headers", p->ntrailers);
  if (p->tlen > f->c->opts.max_buf_size) FAIL("trailer bytes over max_buf_size");
  for (uint32_t i = 0; i < p->ntrailers; i++) {
    lh_field_t *t = &p->tfields[i];
    if ((uint64_t)t->name.off + t->name.len > p->tlen || (uint64_t)t->value.off + t->value.len > p->tlen)
      FAIL("trailer span outside the trailer bytes");
    /* RFC 9112 7.1.2: trailer fields have the syntax of header fields; the
     * head's rules (parse.c check_fields) hold for them too */
    const unsigned char *tb = (const unsigned char *)p->tbytes;
    for (uint32_t j = 0; j < t->value.len; j++) {
      unsigned char ch = tb[t->value.off + j];
      if (ch == '\r' || ch == '\n' || ch == 0) FAIL("trailer %u value has byte 0x%02x", i, ch);
    }
    if (t->name.len == 0) FAIL("trailer %u has an empty name", i);
    for (uint32_t j = 0; j < t->name.len; j++)
      if (!lh_is_tchar(tb[t->name.off + j])) FAIL("trailer %u name has byte 0x%02x", i, tb[t->name.off + j]);
  }
}

/* one result of a body read; returns 1 to go on reading */
static int body_step(fz_t *f, int r, const char *p, size_t n) {
  lh_conn_t *c = f->c;
  req_t *q = &f->reqs[f->cur];
  if (r == 1) {
    if (n == 0) FAIL("body read of 0 bytes");
    if (p < c->rbuf.base || p + n > c->rbuf.base + c->rbuf.len) FAIL("body bytes outside the read buffer");
    q->body_got += n;
    if (q->cl != LH_NO_LENGTH && q->body_got > q->cl) FAIL("body longer than Content-Length");
    return 1;
  }
  if (r == 2) {
    if (q->body_done) return 0;
    q->body_done = 1;
    if (q->cl != LH_NO_LENGTH && q->body_got != q->cl)
      FAIL("body of %llu bytes ended, Content-Length %llu", (unsigned long long)q->body_got,
           (unsigned long long)q->cl);
    check_trailers(f);
    if (f->read_first && !q->answered) answer(f);
    return 0;
  }
  if (r < 0 && !q->answered && f->read_first) respond_error(f, r);
  return 0;
}

/* --- dispatcher mode --- */

static fz_t *F(mock_t *m) { return m->user; }

static void svc_read(mock_t *m) {
  fz_t *f = F(m);
  for (;;) {
    const char *p = NULL;
    size_t n = 0;
    int r = lh_disp_read_body(&m->d, &p, &n);
    if (!body_step(f, r, p, n)) return;
  }
}

static int svc_recv(mock_t *m, lh_head_t *h, const char *base) {
  fz_t *f = F(m);
  if (f->cur >= 0 && !f->reqs[f->cur].answered) FAIL("a head while request %d is unanswered", f->cur);
  add_req(f, h, base);
  if (f->read_first) svc_read(m);
  else answer(f);
  return 0;
}

static void svc_body_ready(mock_t *m) {
  if (F(m)->cur < 0) FAIL("body_ready without a request");
  svc_read(m);
}

static void rbuf_poison(lh_conn_t *c) {
  if (c->rbuf.base && c->rbuf.cap > c->rbuf.len)
    ASAN_POISON_MEMORY_REGION(c->rbuf.base + c->rbuf.len, c->rbuf.cap - c->rbuf.len);
}
static void rbuf_unpoison(lh_conn_t *c) {
  if (c->rbuf.base) ASAN_UNPOISON_MEMORY_REGION(c->rbuf.base, c->rbuf.cap);
}

/* the stream is mock out + what is still queued; it only grows */
static void sync_disp(fz_t *f) {
  mock_t *m = f->m;
  chk_t *k = &f->k;
  const char *pp = NULL;
  size_t pn = m->flight ? 0 : lh_wq_peek(&m->d.conn.wq, &pp);
  size_t total = m->out.n + pn;
  if (total < k->s.n) CFAIL(k, "written bytes shrank (%zu -> %zu)", k->s.n, total);
  size_t lim = m->out.n < k->s.n ? m->out.n : k->s.n;
  if (lim > k->out_seen && memcmp(m->out.p + k->out_seen, k->s.p + k->out_seen, lim - k->out_seen))
    CFAIL(k, "flushed bytes differ from what was queued");
  if (k->s.n > m->out.n && memcmp(pp, k->s.p + m->out.n, k->s.n - m->out.n))
    CFAIL(k, "queued bytes changed");
  if (m->out.n > k->s.n) {
    mock_buf_add(&k->s, m->out.p + k->s.n, m->out.n - k->s.n);
    if (pn) mock_buf_add(&k->s, pp, pn);
  } else if (total > k->s.n) {
    mock_buf_add(&k->s, pp + (k->s.n - m->out.n), total - k->s.n);
  }
  k->out_seen = m->out.n;
  chk_parse(f);
  if (lh_conn_is_closed(&m->d.conn) && k->frozen == (size_t)-1) k->frozen = k->s.n;
  if (k->nfinal > f->nreq + 1) CFAIL(k, "%d responses to %d requests", k->nfinal, f->nreq);
  if (m->close_calls > 1) FAIL("io close called %d times", m->close_calls);
  if (m->d.closing && m->reading) FAIL("reading after close");
}

/* what server.c does after each poll: idle connections hold no buffers */
static void after_poll(fz_t *f, size_t budget) {
  mock_t *m = f->m;
  size_t runs = 0;
  while (m->d.deferred) {
    if (++runs > budget) FAIL("deferred polls never settle (%zu runs)", runs);
    mock_run_deferred(m);
  }
  lh_conn_t *c = &m->d.conn;
  if (!m->d.closing && lh_conn_can_read_head(c) && lh_conn_buffered(c) == 0) {
    rbuf_unpoison(c);
    lh_rbuf_trim(&c->rbuf, 0);
    lh_wq_trim(&c->wq, 0);
    lh_parser_trim(&c->parser);
  }
  sync_disp(f);
}

/* one read of up to n bytes, as io.c's alloc_cb/read_cb; returns bytes taken */
static size_t disp_read(fz_t *f, const uint8_t *p, size_t n, size_t budget) {
  mock_t *m = f->m;
  lh_conn_t *c = &m->d.conn;
  char *dst;
  rbuf_unpoison(c);
  long space = lh_conn_read_space(c, &dst);
  if (space < 0) FAIL("read_space out of memory");
  if (space == 0) {
    /* UV_ENOBUFS: io.c stops reading and polls */
    rbuf_poison(c);
    m->reading = 0;
    m->d.reading_on = 0;
    lh_disp_poll(&m->d);
    after_poll(f, budget);
    if (m->reading && !m->d.closing) {
      rbuf_unpoison(c);
      space = lh_conn_read_space(c, &dst);
      rbuf_poison(c);
      if (space == 0) FAIL("reads again into a full buffer (%zu buffered, reading %d)",
                           lh_conn_buffered(c), c->reading);
    }
    return 0;
  }
  size_t k = n < (size_t)space ? n : (size_t)space;
  memcpy(dst, p, k);
  lh_conn_read_commit(c, k);
  rbuf_poison(c);
  lh_disp_read_done(&m->d, (long)k);
  after_poll(f, budget);
  return k;
}

static void run_disp(fz_t *f, const uint8_t *d, size_t n, split_t *sp, int eof, int hold, int timeout) {
  static mock_t m;
  memset(&m, 0, sizeof m);
  lh_disp_init(&m.d, LH_ROLE_SERVER, &f->o, &mock_service, &mock_io, &m);
  m.ready = 1;
  f->m = &m;
  f->c = &m.d.conn;
  m.user = f;
  m.on_recv = svc_recv;
  m.on_body_ready = svc_body_ready;
  if (hold) m.ready = 0;
  m.d.pipeline_flush = (unsigned)f->pipeline_flush;
  m.flush_limit = (size_t)f->flush_limit;
  lh_disp_poll(&m.d); /* as the server does on accept */
  size_t budget = n + 64, pos = 0;
  while (pos < n) {
    if (!m.reading || m.d.closing) {
      if (hold && !m.ready && !m.d.closing) {
        /* the service gets ready again */
        m.ready = 1;
        lh_disp_poll(&m.d);
        after_poll(f, budget);
        continue;
      }
      break; /* nobody reads: the peer is blocked */
    }
    size_t want = next_len(sp, n - pos), done = 0;
    while (done < want && m.reading && !m.d.closing) {
      size_t k = disp_read(f, d + pos + done, want - done, budget);
      if (k == 0) break;
      done += k;
    }
    if (done == 0 && !(hold && !m.ready)) break;
    pos += done;
  }
  if (hold && !m.ready && !m.d.closing) {
    m.ready = 1;
    lh_disp_poll(&m.d);
    after_poll(f, budget);
  }
  if (timeout && !m.d.closing) {
    int kind = lh_disp_timer_kind(&m.d);
    if (kind != LH_DL_NONE) {
      lh_disp_timeout(&m.d, kind);
      after_poll(f, budget);
      if (!m.d.closing) FAIL("still open after its deadline");
    }
  }
  int eof_sent = 0;
  if (eof && m.reading && !m.d.closing) {
    eof_sent = mock_eof(&m);
    after_poll(f, budget);
  }
  if (eof_sent && !m.d.closing) {
    /* nothing is left to wait for: the service answers at once or after
     * the body, which EOF ends one way or the other */
    FAIL("EOF did not close the connection (reading %d writing %d in_flight %d want_body %d)",
         m.d.conn.reading, m.d.conn.writing, m.d.in_flight, m.d.want_body);
  }
  if (m.d.closing) {
    mock_t *mm = &m;
    if (mm->flight) FAIL("flight at close");
    if (lh_wq_pending(&mm->d.conn.wq)) FAIL("bytes left queued after close");
  }
  /* a close-delimited body is complete once the write side closed */
  if (f->k.close_body && lh_conn_is_write_closed(&m.d.conn)) {
    req_t *r = &f->reqs[f->k.close_req];
    if (f->k.s.n - f->k.close_start != r->tlen) CFAIL(&f->k, "close-delimited body cut short");
  }
  if (f->k.nfinal > f->nreq + 1) FAIL("more responses than requests");
  rbuf_unpoison(&m.d.conn);
  mock_free(&m);
  f->m = NULL;
}

/* --- direct mode: lh_conn alone, read buffer at a guard page --- */

static void sync_conn(fz_t *f) {
  size_t n;
  if (lh_conn_pending(f->c)) {
    const char *p = conn_take(f->c, &n);
    if (n) mock_buf_add(&f->k.s, p, n);
  }
  chk_parse(f);
  if (lh_conn_is_closed(f->c) && f->k.frozen == (size_t)-1) f->k.frozen = f->k.s.n;
  if (f->k.nfinal > f->nreq + 1) CFAIL(&f->k, "%d responses to %d requests", f->k.nfinal, f->nreq);
}

/* reads body bytes until more input is needed; returns the last result */
static int conn_read_all(fz_t *f) {
  for (;;) {
    const char *p = NULL;
    size_t n = 0;
    int r = lh_conn_read_body(f->c, &p, &n);
    if (!body_step(f, r, p, n)) return r;
  }
}

/* hyper's read/write/keep-alive turns, one choice per request from the rng */
static void conn_drive(fz_t *f) {
  lh_conn_t *c = f->c;
  for (int turn = 0; turn < 100000; turn++) {
    if (lh_conn_is_closed(c)) return;
    req_t *r = f->cur >= 0 ? &f->reqs[f->cur] : NULL;
    if (r && r->answered) r = NULL;
    if (!r && lh_conn_can_read_head(c)) {
      lh_head_t *h;
      const char *base;
      int e = lh_conn_read_head(c, &h, &base);
      if (e == 0) return;
      if (e < 0) {
        int quiet = e == LH_ECLOSED || (e == LH_EINCOMPLETE && lh_conn_buffered(c) == 0);
        if (!quiet && lh_conn_can_write_head(c)) lh_conn_write_error(c, lh_error_status(e));
        lh_conn_close(c);
        sync_conn(f);
        return;
      }
      add_req(f, h, base);
      uint32_t ch = xs(&f->rng);
      f->reqs[f->cur].n100 = 0;
      f->read_first = ch & 1;
      sync_conn(f);
      continue;
    }
    if (r) {
      if (!f->read_first) {
        answer(f);
      } else {
        int e = conn_read_all(f);
        sync_conn(f);
        if (e == 0) return; /* more input */
      }
      sync_conn(f);
      continue;
    }
    /* answered: the request body is drained or read, then keep-alive;
     * once dropping it (lh_conn_drain), nobody reads it any more */
    if (lh_conn_can_read_body(c)) {
      if (c->discarding || (xs(&f->rng) & 1)) {
        lh_conn_drain(c);
      } else {
        int e = conn_read_all(f);
        sync_conn(f);
        if (e == 0 && !c->eof) return; /* more input */
        if (e == 0) lh_conn_drain(c);
      }
      sync_conn(f);
    }
    if ((c->reading == LH_READING_KEEPALIVE || c->reading == LH_READING_CLOSED) &&
        (c->writing == LH_WRITING_KEEPALIVE || c->writing == LH_WRITING_CLOSED)) {
      int ka = lh_conn_try_keep_alive(c);
      f->cur = -1;
      sync_conn(f);
      if (!ka) {
        if (!lh_conn_is_closed(c)) FAIL("try_keep_alive neither kept nor closed");
        return;
      }
      if (xs(&f->rng) & 1) lh_parser_trim(&c->parser);
      continue;
    }
    if (c->reading == LH_READING_INIT && c->writing != LH_WRITING_INIT)
      FAIL("reading INIT while writing %d", c->writing);
    return;
  }
  FAIL("conn_drive does not settle");
}

static void run_conn(fz_t *f, const uint8_t *d, size_t n, split_t *sp, int eof) {
  static lh_conn_t c;
  lh_conn_init(&c, LH_ROLE_SERVER, &f->o);
  f->c = &c;
  size_t pos = 0;
  while (pos < n && !lh_conn_is_read_closed(&c)) {
    size_t k = next_len(sp, n - pos);
    /* the conn's own bound on what a read may add */
    size_t room = lh_conn_buffered(&c) < 65536 + c.opts.max_buf_size
                      ? 65536 + c.opts.max_buf_size - lh_conn_buffered(&c) : 0;
    if (k > room) k = room;
    if (k == 0) break;
    conn_feed_guarded(&c, (const char *)d + pos, k);
    pos += k;
    conn_drive(f);
  }
  if (eof && !lh_conn_is_read_closed(&c)) {
    lh_conn_read_eof(&c);
    conn_drive(f);
    if (!lh_conn_is_closed(&c))
      FAIL("direct mode: EOF did not close (reading %d writing %d)", c.reading, c.writing);
  }
  sync_conn(f);
  conn_free_guarded(&c);
}

/* --- entry points --- */

static const char *const SEEDS[] = {
  "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
  "GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n"
  "HEAD /c HTTP/1.1\r\nHost: x\r\n\r\nPOST /d HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
  "POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
  "5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Sum: 1\r\nX-Count: 2\r\n\r\n"
  "GET /next HTTP/1.1\r\nHost: x\r\n\r\n",
  "PUT /e HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\nbody",
  "GET /ka HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /ka2 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
  "GET /last HTTP/1.0\r\n\r\n",
  "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
  "0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
  "GET / HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n b\r\n\r\n",
  "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
  "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
  "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\nBREW /pot HTTP/1.1\r\nHost: x\r\n\r\n",
  "GET / HTTP/2.0\r\nHost: x\r\n\r\n",
  "GET /h HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\nF: 6\r\nG: 7\r\nH: 8\r\nI: 9\r\n\r\n",
  "POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
  "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGET /after HTTP/1.1\r\nHost: x\r\n\r\n",
  "POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nshort",
  "GET /t HTTP/1.1\r\nHost: x\r\nTE: trailers\r\n\r\nGET /u HTTP/1.1\r\nHost: x\r\nTE: gzip\r\n\r\n",
  "POST /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n"
  "GET /s HTTP/1.1\r\nHost: x\r\n\r\n",
};

static const char *const DICT[] = {
  "GET ", "HEAD ", "POST ", "PUT ", "CONNECT ", "OPTIONS ", "DELETE ", " HTTP/1.1\r\n",
  " HTTP/1.0\r\n", "HTTP/1.1", "\r\n", "\r\n\r\n", "Host: x\r\n", "Content-Length: ",
  "Transfer-Encoding: chunked\r\n", "Transfer-Encoding: ", "chunked", "gzip", "identity",
  "Connection: ", "close", "keep-alive", "upgrade", "Upgrade: websocket\r\n",
  "Expect: 100-continue\r\n", "0\r\n\r\n", ";ext=v", "Trailer: ", "TE: trailers\r\n", "\r\n ", "\t", ":", "*",
  "http://h/p", "example.com:443", "%00",
};

static void write_seeds(const char *dir) {
  mkdir(dir, 0777);
  int nseed = (int)(sizeof SEEDS / sizeof *SEEDS), w = 0;
  /* each seed under a few configurations: header bytes b0 b1 b2 b3 */
  static const uint8_t cfg[][4] = {
    {0x00, 0x00, 0x00, 0x00}, /* sync answers, whole reads, EOF */
    {0x01, 0x00, 0x02, 0x01}, /* read the body first, byte by byte, trailers */
    {0x43, 0x08, 0x17, 0x00}, /* streamed bodies, small limits, 7-byte flushes, random cuts */
    {0x00, 0x20, 0x05, 0x55}, /* direct mode, 2-byte reads */
    {0x01, 0x61, 0x0b, 0xa8}, /* direct mode, read first, 201, hold */
    {0x04, 0x92, 0x00, 0x00}, /* tiny limits, 204, no EOF, timeout */
  };
  for (int i = 0; i < nseed; i++)
    for (int j = 0; j < (int)(sizeof cfg / sizeof *cfg); j++) {
      if ((i + j) % 2 && j > 1) continue;
      char path[512];
      snprintf(path, sizeof path, "%s/seed-%02d-%d", dir, i, j);
      FILE *fp = fopen(path, "wb");
      if (!fp) {
        perror(path);
        exit(1);
      }
      fwrite(cfg[j], 1, 4, fp);
      fwrite(SEEDS[i], 1, strlen(SEEDS[i]), fp);
      fclose(fp);
      w++;
    }
  fprintf(stderr, "wrote %d seeds to %s\n", w, dir);
}

static void write_dict(const char *path) { fuzz_write_dict(path, DICT, sizeof DICT / sizeof *DICT); }

static int verbose; /* FUZZ_VERBOSE=1: one line per input */

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  const char *s = getenv("FUZZ_WRITE_SEEDS"), *dct = getenv("FUZZ_WRITE_DICT");
  if (s) write_seeds(s);
  if (dct) write_dict(dct);
  if (s || dct) exit(0);
  verbose = getenv("FUZZ_VERBOSE") ? atoi(getenv("FUZZ_VERBOSE")) : 0;
  guard_init();
  lh_date_freeze(0);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 4) return 0;
  uint8_t b0 = data[0], b1 = data[1], b2 = data[2], b3 = data[3];
  data += 4;
  size -= 4;
  static fz_t f;
  memset(&f, 0, sizeof f);
  f.cur = -1;
  f.k.frozen = (size_t)-1;
  f.read_first = b0 & 1;
  int lim = (b0 >> 1) & 3;
  f.o = mock_opts();
  f.o.max_buf_size = LIMITS[lim].buf;
  f.o.max_headers = LIMITS[lim].headers;
  f.o.max_target = LIMITS[lim].target;
  f.o.keep_alive = !(b0 & 8);
  f.o.half_close = (b0 >> 4) & 1;
  f.o.title_case = (b0 >> 5) & 1;
  f.streamed = (b0 >> 6) & 1;
  f.status = STATUS[b1 & 3];
  f.resp_close = (b1 >> 2) & 1;
  f.pipeline_flush = (b0 >> 7) & 1;
  f.flush_limit = (b1 >> 3) & 1 ? 7 : 0;
  f.trailers = b3 & 1;
  f.o.date_header = !((b3 >> 1) & 1);
  f.rng = (uint32_t)(b3 >> 2) * 2654435761u + 1;
  split_t sp = {b2 & 3, b2 >> 2, (uint32_t)b2 * 2246822519u + 7};
  int eof = !((b1 >> 4) & 1);
  if ((b1 >> 5) & 1) {
    run_conn(&f, data, size, &sp, eof);
  } else {
    run_disp(&f, data, size, &sp, eof, (b1 >> 6) & 1, (b1 >> 7) & 1);
  }
  if (verbose)
    fprintf(stderr, "mode %s: %d requests, %d final responses (%d errors), %zu bytes out%s\n",
            (b1 >> 5) & 1 ? "conn" : "disp", f.nreq, f.k.nfinal, f.k.nerr, f.k.s.n,
            f.k.frozen != (size_t)-1 ? ", closed" : "");
  if (verbose > 1 && f.k.s.n) fwrite(f.k.s.p, 1, f.k.s.n, stderr);
  for (int i = 0; i < f.nreq; i++) free(f.reqs[i].tgt);
  free(f.reqs);
  mock_buf_free(&f.k.s);
  return 0;
}
