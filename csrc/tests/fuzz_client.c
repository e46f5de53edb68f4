/* libFuzzer target: the client role reading arbitrary response bytes.
 *
 * Input: 3 header bytes, then the byte stream the server sends.
 *   b0: bit0 keep_alive off, bits1-2 limits preset, bit3 the body is read
 *       from the driver after each read (else inside recv_msg and
 *       body_ready), bit4 no EOF at the end, bit5 the transport takes 5
 *       bytes per flush
 *   b1: bits0-1 how the stream is cut into reads (whole, fixed size, byte
 *       by byte, pseudo-random sizes), bits2-7 size parameter
 *   b2: seed of the request choices (GET, HEAD, POST with a body, PUT
 *       chunked with a trailer, DELETE)
 *
 * A request is written (lh_conn_req_begin ...) whenever the connection is
 * idle, then response bytes are read. Checked after every read: what was
 * written is exactly the requests sent, whole, and nothing after the
 * connection closed; one final head per request at most (1xx other than
 * 101 are interim); heads within their limits and spans; HEAD, 204 and 304
 * responses have no body; body bytes never exceed Content-Length and end
 * exactly at it; EOF closes the connection.
 *
 * FUZZ_WRITE_SEEDS=dir / FUZZ_WRITE_DICT=file write the seeds / dictionary
 * and exit (used by `make fuzz-client`). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz_dict.h"
#include "mock_io.h"

#define FAIL(...)                                                            \
  do {                                                                       \
    fprintf(stderr, "fuzz_client invariant (%s:%d): ", __FILE__, __LINE__);  \
    fprintf(stderr, __VA_ARGS__);                                            \
    fprintf(stderr, "\n");                                                   \
    abort();                                                                 \
  } while (0)

static const struct { uint32_t buf, headers; } LIMITS[4] = {
  {65536, 100}, {8192, 8}, {512, 4}, {8192, 100}};

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

typedef struct {
  mock_t m;            /* first: the io callbacks find it from the disp */
  int lazy;            /* read bodies from the driver */
  uint32_t rng;
  mock_buf_t exp;      /* what the client must have written */
  int nsent, nfinal, ninterim;
  int head_req;        /* the request in flight is HEAD */
  int have_final;      /* the request in flight got its final head */
  uint64_t cl;         /* its Content-Length, LH_NO_LENGTH if none */
  int chunked, bodiless;
  uint64_t got;
  int body_done, body_err;
  size_t frozen;       /* bytes written when the conn was seen closed */
} fz_t;

static fz_t *F(mock_t *m) { return m->user; }


/* --- the service --- */

static void read_body(fz_t *f) {
  lh_conn_t *c = &f->m.d.conn;
  for (;;) {
    const char *p = NULL;
    size_t n = 0;
    int r = lh_disp_read_body(&f->m.d, &p, &n);
    if (r == 1) {
      if (n == 0) FAIL("body read of 0 bytes");
      if (p < c->rbuf.base || p + n > c->rbuf.base + c->rbuf.len) FAIL("body bytes outside the read buffer");
      if (f->bodiless) FAIL("body bytes for a bodiless response");
      f->got += n;
      if (f->cl != LH_NO_LENGTH && f->got > f->cl) FAIL("body longer than Content-Length");
      continue;
    }
    if (r == 2) {
      if (!f->body_done && f->cl != LH_NO_LENGTH && !f->bodiless && f->got != f->cl)
        FAIL("body of %llu bytes ended, Content-Length %llu", (unsigned long long)f->got,
             (unsigned long long)f->cl);
      f->body_done = 1;
      lh_parser_t *ps = &c->parser;
      for (uint32_t i = 0; i < ps->ntrailers; i++) {
        lh_field_t *t = &ps->tfields[i];
        if ((uint64_t)t->name.off + t->name.len > ps->tlen || (uint64_t)t->value.off + t->value.len > ps->tlen)
          FAIL("trailer span outside the trailer bytes");
        const unsigned char *tb = (const unsigned char *)ps->tbytes;
        for (uint32_t j = 0; j < t->value.len; j++) {
          unsigned char ch = tb[t->value.off + j];
          if (ch == '\r' || ch == '\n' || ch == 0) FAIL("trailer value has byte 0x%02x", ch);
        }
        if (t->name.len == 0) FAIL("trailer with an empty name");
        for (uint32_t j = 0; j < t->name.len; j++)
          if (!lh_is_tchar(tb[t->name.off + j])) FAIL("trailer name has byte 0x%02x", tb[t->name.off + j]);
      }
    }
    if (r < 0) f->body_err = r;
    return;
  }
}

static int on_recv(mock_t *m, lh_head_t *h, const char *base) {
  fz_t *f = F(m);
  lh_conn_t *c = &m->d.conn;
  if (!m->d.in_flight) FAIL("a response head with no request in flight");
  if (f->have_final) FAIL("a second final head for request %d", f->nsent);
  if (h->status < 0 || h->status > 999) FAIL("status %d", h->status);
  if (h->status < 100 || h->major != 1)
    FAIL("status %d version %d.%d accepted", h->status, h->major, h->minor);
  if (h->len > c->opts.max_buf_size) FAIL("head of %u bytes over max_buf_size", h->len);
  if (h->nfields > c->opts.max_headers) FAIL("%u fields over max_headers", h->nfields);
  if ((uint64_t)h->reason.off + h->reason.len > h->len) FAIL("reason outside the head");
  for (uint32_t i = 0; i < h->nfields; i++) {
    lh_field_t *fl = &h->fields[i];
    if ((uint64_t)fl->name.off + fl->name.len > h->len || (uint64_t)fl->value.off + fl->value.len > h->len)
      FAIL("field span outside the head");
    if (fl->name.len == 0) FAIL("empty field name");
  }
  (void)base;
  if (h->status / 100 == 1 && h->status != 101) {
    f->ninterim++;
    return 0;
  }
  f->have_final = 1;
  f->nfinal++;
  if (f->nfinal > f->nsent) FAIL("%d final heads for %d requests", f->nfinal, f->nsent);
  f->bodiless = f->head_req || h->status == 204 || h->status == 304 || h->status == 101;
  if (f->bodiless && h->has_body) FAIL("bodiless response (status %d, HEAD %d) has_body", h->status, f->head_req);
  if (h->chunked && h->content_length != LH_NO_LENGTH) FAIL("chunked with a Content-Length");
  f->cl = h->content_length;
  f->chunked = h->chunked;
  if (!f->lazy) read_body(f);
  return 0;
}

static void on_body_ready(mock_t *m) { read_body(F(m)); }

/* --- requests --- */

static void expect_field(fz_t *f, const char *name, const char *value) {
  mock_buf_add(&f->exp, name, strlen(name));
  mock_buf_add(&f->exp, ": ", 2);
  mock_buf_add(&f->exp, value, strlen(value));
  mock_buf_add(&f->exp, "\r\n", 2);
}

static void send_request(fz_t *f) {
  static const char *const METHODS[] = {"GET", "HEAD", "POST", "PUT", "DELETE"};
  lh_conn_t *c = &f->m.d.conn;
  int which = (int)(xs(&f->rng) % 5);
  const char *meth = METHODS[which];
  char target[32];
  snprintf(target, sizeof target, "/r%d", f->nsent);
  int e = lh_conn_req_begin(c, meth, strlen(meth), target, strlen(target));
  if (!e) e = lh_conn_head_field(c, "host", 4, "h", 1);
  int ka_off = c->ka == LH_KA_DISABLED;
  int64_t blen = which == 2 ? 3 : which == 3 ? -1 : 0;
  if (!e) e = lh_conn_head_end(c, blen);
  if (e) FAIL("request head refused: %d", e);
  mock_buf_add(&f->exp, meth, strlen(meth));
  mock_buf_add(&f->exp, " ", 1);
  mock_buf_add(&f->exp, target, strlen(target));
  mock_buf_add(&f->exp, " HTTP/1.1\r\n", 11);
  expect_field(f, "host", "h");
  if (which == 2) expect_field(f, "content-length", "3");
  if (which == 3) expect_field(f, "transfer-encoding", "chunked");
  if (ka_off) expect_field(f, "connection", "close");
  mock_buf_add(&f->exp, "\r\n", 2);
  f->m.d.in_flight = 1;
  if (which == 2) {
    e = lh_conn_write_body(c, "abc", 3);
    mock_buf_add(&f->exp, "abc", 3);
  } else if (which == 3) {
    e = lh_conn_write_body(c, "hello", 5);
    if (!e) e = lh_conn_write_trailer(c, "x-sum", 5, "1", 1);
    mock_buf_add(&f->exp, "5\r\nhello\r\n0\r\nx-sum: 1\r\n", 23);
  }
  if (!e) e = lh_conn_write_end(c);
  if (which == 3) mock_buf_add(&f->exp, "\r\n", 2);
  if (e) FAIL("request body refused: %d", e);
  f->nsent++;
  f->head_req = which == 1;
  f->have_final = 0;
  f->cl = LH_NO_LENGTH;
  f->got = 0;
  f->body_done = f->body_err = f->chunked = f->bodiless = 0;
  lh_disp_poll(&f->m.d);
}

static void check(fz_t *f) {
  mock_t *m = &f->m;
  size_t pend = lh_conn_pending(&m->d.conn);
  if (m->out.n + pend != f->exp.n)
    FAIL("written %zu + queued %zu bytes, the requests sent are %zu", m->out.n, pend, f->exp.n);
  if (m->out.n && memcmp(m->out.p, f->exp.p, m->out.n)) FAIL("written bytes are not the requests sent");
  if (f->frozen != (size_t)-1 && m->out.n + pend != f->frozen) FAIL("bytes written after close");
  if (lh_conn_is_closed(&m->d.conn) && f->frozen == (size_t)-1) f->frozen = m->out.n + pend;
  if (m->close_calls > 1) FAIL("io close called %d times", m->close_calls);
  if (m->d.closing && m->reading) FAIL("reading after close");
}

static void settle(fz_t *f, size_t budget) {
  mock_t *m = &f->m;
  size_t runs = 0;
  for (;;) {
    while (m->d.deferred) {
      if (++runs > budget) FAIL("deferred polls never settle");
      mock_run_deferred(m);
    }
    /* the binding resumes a reader that waits on the body */
    if (f->lazy && f->have_final && !f->body_done && !f->body_err && !m->d.closing &&
        lh_conn_can_read_body(&m->d.conn)) {
      int before = (int)f->got;
      read_body(f);
      lh_disp_poll(&m->d);
      if (++runs > budget) FAIL("lazy body reads never settle");
      if ((int)f->got != before || f->body_done || f->body_err) continue;
    }
    break;
  }
  check(f);
}

static const char *const SEEDS[] = {
  "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
  "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n"
  "HTTP/1.1 204 No Content\r\n\r\n",
  "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
  "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
  "HTTP/1.0 200 OK\r\n\r\nuntil the end",
  "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
  "HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: ws\r\n\r\nraw",
  "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabcHTTP/1.1 200 OK\r\n\r\n",
  "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
};

static const char *const DICT[] = {
  "HTTP/1.1 ", "HTTP/1.0 ", "200 OK\r\n", "100 Continue\r\n", "101 ", "204 ", "304 ",
  "\r\n", "\r\n\r\n", "Content-Length: ", "Transfer-Encoding: chunked\r\n", "chunked",
  "Connection: ", "close", "keep-alive", "upgrade", "0\r\n\r\n", ";ext=v", "\r\n ",
};

static void write_seeds(const char *dir) {
  mkdir(dir, 0777);
  static const uint8_t cfg[][3] = {{0x00, 0x00, 0x00}, {0x08, 0x02, 0x11}, {0x22, 0x17, 0x5a}};
  int w = 0;
  for (size_t i = 0; i < sizeof SEEDS / sizeof *SEEDS; i++)
    for (size_t j = 0; j < sizeof cfg / sizeof *cfg; j++) {
      char path[512];
      snprintf(path, sizeof path, "%s/seed-%02zu-%zu", dir, i, j);
      FILE *fp = fopen(path, "wb");
      if (!fp) {
        perror(path);
        exit(1);
      }
      fwrite(cfg[j], 1, 3, fp);
      fwrite(SEEDS[i], 1, strlen(SEEDS[i]), fp);
      fclose(fp);
      w++;
    }
  fprintf(stderr, "wrote %d seeds to %s\n", w, dir);
}

static void write_dict(const char *path) { fuzz_write_dict(path, DICT, sizeof DICT / sizeof *DICT); }

static int verbose;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  const char *s = getenv("FUZZ_WRITE_SEEDS"), *dct = getenv("FUZZ_WRITE_DICT");
  if (s) write_seeds(s);
  if (dct) write_dict(dct);
  if (s || dct) exit(0);
  verbose = getenv("FUZZ_VERBOSE") != NULL;
  lh_date_freeze(0);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 3) return 0;
  uint8_t b0 = data[0], b1 = data[1], b2 = data[2];
  data += 3;
  size -= 3;
  static fz_t f;
  memset(&f, 0, sizeof f);
  f.frozen = (size_t)-1;
  f.lazy = (b0 >> 3) & 1;
  f.rng = (uint32_t)b2 * 2654435761u + 3;
  lh_conn_opts_t o = mock_opts();
  o.keep_alive = !(b0 & 1);
  o.max_buf_size = LIMITS[(b0 >> 1) & 3].buf;
  o.max_headers = LIMITS[(b0 >> 1) & 3].headers;
  split_t sp = {b1 & 3, b1 >> 2, (uint32_t)b1 * 2246822519u + 7};
  mock_t *m = &f.m;
  lh_disp_init(&m->d, LH_ROLE_CLIENT, &o, &mock_service, &mock_io, m);
  m->ready = 1;
  m->user = &f;
  m->on_recv = on_recv;
  m->on_body_ready = on_body_ready;
  m->flush_limit = (b0 >> 5) & 1 ? 5 : 0;
  lh_disp_poll(&m->d);
  size_t pos = 0, budget = size + 64;
  for (;;) {
    lh_conn_t *c = &m->d.conn;
    if (!m->d.closing && !m->d.in_flight && lh_conn_can_write_head(c) && c->reading == LH_READING_INIT) {
      send_request(&f);
      settle(&f, budget);
    }
    if (pos >= size || !m->reading || m->d.closing) break;
    size_t want = next_len(&sp, size - pos), done = 0;
    while (done < want && m->reading && !m->d.closing) {
      char *dst;
      long space = lh_conn_read_space(c, &dst);
      if (space < 0) FAIL("read_space out of memory");
      if (space == 0) FAIL("reading into a full buffer (%zu buffered, reading %d)", lh_conn_buffered(c), c->reading);
      size_t k = want - done < (size_t)space ? want - done : (size_t)space;
      memcpy(dst, data + pos + done, k);
      lh_conn_read_commit(c, k);
      done += k;
      lh_disp_read_done(&m->d, (long)k);
      settle(&f, budget);
    }
    if (done == 0) break;
    pos += done;
  }
  int eof_sent = 0;
  if (!((b0 >> 4) & 1) && m->reading && !m->d.closing) {
    eof_sent = mock_eof(m);
    settle(&f, budget);
  }
  if (eof_sent && !m->d.closing)
    FAIL("EOF did not close the connection (reading %d writing %d in_flight %d)", m->d.conn.reading,
         m->d.conn.writing, m->d.in_flight);
  if (verbose)
    fprintf(stderr, "%d requests, %d final heads, %d interim, %zu bytes out%s\n", f.nsent, f.nfinal,
            f.ninterim, m->out.n, m->d.closing ? ", closed" : "");
  lh_disp_free(&m->d);
  mock_buf_free(&m->out);
  mock_buf_free(&f.exp);
  return 0;
}
