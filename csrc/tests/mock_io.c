/* The mock transport and scripted service of mock_io.h, and the guard
 * page the tests end their inputs at. */
#include "mock_io.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* --- guard page --- */

#define GUARD_SPACE (1024 * 1024)

static char *g_lo, *g_end; /* usable [g_lo, g_end); g_end is PROT_NONE */

void guard_init(void) {
  size_t pg = (size_t)sysconf(_SC_PAGESIZE);
  size_t space = (GUARD_SPACE + pg - 1) / pg * pg;
  char *p = mmap(NULL, space + pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED || mprotect(p + space, pg, PROT_NONE)) {
    perror("guard_init");
    exit(2);
  }
  g_lo = p;
  g_end = p + space;
}

static int in_guard(const char *p) { return p && p >= g_lo && p <= g_end; }

const char *guard_place(const void *p, size_t n) {
  if (n > (size_t)(g_end - g_lo)) {
    fprintf(stderr, "guard_place: %zu bytes do not fit\n", n);
    exit(2);
  }
  char *d = g_end - n;
  memmove(d, p, n);
  return d;
}

void conn_feed_guarded(lh_conn_t *c, const char *p, size_t n) {
  lh_rbuf_t *b = &c->rbuf;
  size_t keep = b->len - b->off, total = keep + n;
  char *tmp = malloc(total ? total : 1);
  if (!tmp) abort();
  if (keep) memcpy(tmp, b->base + b->off, keep);
  if (n) memcpy(tmp + keep, p, n);
  if (b->base && !in_guard(b->base)) free(b->base);
  b->base = (char *)guard_place(tmp, total);
  b->off = 0;
  b->len = b->cap = total;
  free(tmp);
}

void conn_free_guarded(lh_conn_t *c) {
  if (in_guard(c->rbuf.base)) memset(&c->rbuf, 0, sizeof c->rbuf);
  lh_conn_free(c);
}

const char *conn_take(lh_conn_t *c, size_t *n) {
  static mock_buf_t b;
  b.n = 0;
  const char *p;
  size_t k;
  while ((k = lh_wq_peek(&c->wq, &p)) > 0) {
    mock_buf_add(&b, p, k);
    lh_wq_consume(&c->wq, k);
  }
  *n = b.n;
  return b.p ? b.p : "";
}

/* --- output buffer --- */

void mock_buf_add(mock_buf_t *b, const char *p, size_t n) {
  if (b->cap - b->n < n + 1) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->n < n + 1) cap *= 2;
    char *q = realloc(b->p, cap);
    if (!q) abort();
    b->p = q;
    b->cap = cap;
  }
  if (n) memcpy(b->p + b->n, p, n);
  b->n += n;
  b->p[b->n] = 0;
}

void mock_buf_free(mock_buf_t *b) {
  free(b->p);
  memset(b, 0, sizeof *b);
}

/* --- transport --- */

static mock_t *M(lh_disp_t *d) { return (mock_t *)d; }

static void io_read_start(lh_disp_t *d) {
  M(d)->reading = 1;
  M(d)->read_start_calls++;
}

static void io_read_stop(lh_disp_t *d) {
  M(d)->reading = 0;
  M(d)->read_stop_calls++;
}

static int io_flush(lh_disp_t *d) {
  mock_t *m = M(d);
  lh_wq_t *q = &d->conn.wq;
  m->flush_calls++;
  if (m->flush_error) return m->flush_error;
  if (m->flight) return 0;
  const char *p;
  size_t n = lh_wq_peek(q, &p);
  if (n == 0) return 0;
  m->flush_bytes_calls++;
  if (m->async) {
    m->flight_p = p;
    m->flight_n = n;
    m->flight = 1;
    lh_wq_begin_flight(q);
    return 0;
  }
  if (m->flush_limit && n > m->flush_limit) n = m->flush_limit;
  mock_buf_add(&m->out, p, n);
  lh_wq_consume(q, n);
  return 0;
}

/* what sconn.c does on close: what is queued still goes out */
static void drain_queue(mock_t *m) {
  const char *p;
  size_t n;
  if (m->flush_error || m->flight) return;
  while ((n = lh_wq_peek(&m->d.conn.wq, &p)) > 0) {
    mock_buf_add(&m->out, p, n);
    lh_wq_consume(&m->d.conn.wq, n);
  }
}

static void io_close(lh_disp_t *d) {
  mock_t *m = M(d);
  m->close_calls++;
  m->reading = 0;
  drain_queue(m);
}

static void io_defer(lh_disp_t *d) { M(d)->defer_calls++; }

const lh_io_t mock_io = {
  .read_start = io_read_start,
  .read_stop = io_read_stop,
  .flush = io_flush,
  .close = io_close,
  .defer = io_defer,
};

/* --- service --- */

static void copy_span(char *dst, size_t cap, const char *base, lh_span_t s) {
  size_t n = s.len < cap - 1 ? s.len : cap - 1;
  memcpy(dst, base + s.off, n);
  dst[n] = 0;
}

static void record(mock_t *m, const lh_head_t *h, const char *base) {
  mock_req_t *r = &m->reqs[m->nrecv % MOCK_MAX_REQS];
  copy_span(r->method, sizeof r->method, base, h->method);
  copy_span(r->target, sizeof r->target, base, h->target);
  r->minor = h->minor;
  r->content_length = h->content_length;
  r->expect_continue = h->expect_continue;
  r->chunked = h->chunked;
  r->keep_alive = h->keep_alive;
  r->has_body = h->has_body;
  r->nfields = h->nfields;
  m->nrecv++;
}

static int svc_recv_msg(lh_disp_t *d, lh_head_t *h, const char *base) {
  mock_t *m = d->data;
  record(m, h, base);
  m->recv_calls++;
  if (m->on_recv) return m->on_recv(m, h, base);
  switch (m->mode) {
    case MOCK_ANSWER_SYNC:
      mock_answer(m);
      break;
    case MOCK_ANSWER_LATER:
      break;
    case MOCK_READ_THEN_ANSWER:
      mock_read_body(m);
      break;
    case MOCK_ANSWER_NEXT:
      mock_answer(m);
      while (lh_disp_next_msg(d, &h, &base)) {
        record(m, h, base);
        mock_answer(m);
      }
      break;
  }
  return m->recv_ret;
}

static void svc_body_ready(lh_disp_t *d) {
  mock_t *m = d->data;
  m->body_ready_calls++;
  if (m->on_body_ready) m->on_body_ready(m);
  else mock_read_body(m);
}

static void svc_write_ready(lh_disp_t *d) {
  mock_t *m = d->data;
  m->write_ready_calls++;
  if (m->on_write_ready) m->on_write_ready(m);
}

static int svc_poll_ready(lh_disp_t *d) {
  mock_t *m = d->data;
  m->poll_ready_calls++;
  return m->ready;
}

static void svc_on_error(lh_disp_t *d, int err) {
  mock_t *m = d->data;
  m->on_error_calls++;
  m->last_error = err;
}

const lh_service_t mock_service = {
  .recv_msg = svc_recv_msg,
  .body_ready = svc_body_ready,
  .write_ready = svc_write_ready,
  .poll_ready = svc_poll_ready,
  .on_error = svc_on_error,
};

void mock_read_body(mock_t *m) {
  for (;;) {
    const char *p;
    size_t n;
    int r = lh_disp_read_body(&m->d, &p, &n);
    if (r == 1) {
      mock_buf_add(&m->body, p, n);
      m->body_chunks++;
      continue;
    }
    if (r == 2) {
      m->body_done = 1;
      if (m->mode == MOCK_READ_THEN_ANSWER) mock_answer(m);
      return;
    }
    if (r < 0) m->body_err = r;
    return;
  }
}

int mock_answer(mock_t *m) {
  lh_conn_t *c = &m->d.conn;
  const char *body = m->rbody ? m->rbody : m->reqs[m->answered % MOCK_MAX_REQS].target;
  size_t blen = strlen(body);
  int r = lh_conn_head_begin(c, m->status);
  for (int i = 0; !r && i < 4 && m->hname[i]; i++)
    r = lh_conn_head_field(c, m->hname[i], strlen(m->hname[i]), m->hval[i], strlen(m->hval[i]));
  if (!r) r = lh_conn_head_end(c, m->known_length ? (int64_t)blen : -1);
  if (r) lh_conn_head_abort(c);
  if (!r) r = lh_conn_write_body(c, body, blen);
  if (!r) r = lh_conn_write_end(c);
  if (r && !m->answer_err) m->answer_err = r;
  m->answered++;
  return r;
}

/* --- setup and input --- */

lh_conn_opts_t mock_opts(void) {
  lh_conn_opts_t o;
  memset(&o, 0, sizeof o);
  o.max_buf_size = 8192;
  o.max_headers = 100;
  o.max_target = 8192;
  o.keep_alive = 1;
  o.date_header = 1;
  return o;
}

void mock_init(mock_t *m, const lh_conn_opts_t *o) {
  memset(m, 0, sizeof *m);
  lh_date_freeze(0);
  lh_disp_init(&m->d, LH_ROLE_SERVER, o, &mock_service, &mock_io, m);
  m->status = 200;
  m->known_length = 1;
  m->ready = 1;
  lh_disp_poll(&m->d);
}

void mock_free(mock_t *m) {
  lh_disp_free(&m->d);
  mock_buf_free(&m->out);
  mock_buf_free(&m->body);
}

static size_t feed(mock_t *m, const char *p, size_t n, size_t step) {
  const char *src = guard_place(p, n);
  size_t done = 0;
  while (done < n && m->reading && !m->d.closing) {
    char *dst;
    long space = lh_conn_read_space(&m->d.conn, &dst);
    if (space <= 0) break; /* the buffer is at its bound: libuv's ENOBUFS */
    size_t k = n - done;
    if (k > step) k = step;
    if (k > (size_t)space) k = (size_t)space;
    memcpy(dst, src + done, k);
    lh_conn_read_commit(&m->d.conn, k);
    done += k;
    lh_disp_read_done(&m->d, (long)k);
  }
  return done;
}

size_t mock_feed(mock_t *m, const char *p, size_t n) { return feed(m, p, n, (size_t)-1); }
size_t mock_feed_bytes(mock_t *m, const char *p, size_t n) { return feed(m, p, n, 1); }
size_t mock_feed_mode(mock_t *m, const char *p, size_t n, int per_byte) {
  return feed(m, p, n, per_byte ? 1 : (size_t)-1);
}
size_t mock_feed_str(mock_t *m, const char *s, int per_byte) {
  return mock_feed_mode(m, s, strlen(s), per_byte);
}

int mock_eof(mock_t *m) {
  if (!m->reading || m->d.closing) return 0;
  lh_disp_read_done(&m->d, 0);
  return 1;
}

void mock_complete_write(mock_t *m, int status) {
  if (!m->flight) return;
  if (status == 0) mock_buf_add(&m->out, m->flight_p, m->flight_n);
  m->flight = 0;
  m->flight_p = NULL;
  m->flight_n = 0;
  /* after io->close too, as sconn.c write_cb: the dispatcher drains the queue */
  lh_disp_write_done(&m->d, status);
}

int mock_run_deferred(mock_t *m) {
  if (!m->d.deferred) return 0;
  lh_disp_defer_done(&m->d); /* as sconn.c's defer_poll_cb */
  lh_disp_poll(&m->d);
  return 1;
}
