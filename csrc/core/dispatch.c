/* The Dispatcher: the poll loop that moves a Conn between the transport
 * and the service, in both roles (hyper's proto/h1/dispatch.rs), and the
 * functions through which the layers above act on a connection. */
#include "dispatch.h"

#include "deadline.h"

#include <string.h>

void lh_disp_init(lh_disp_t *d, lh_role_t role, const lh_conn_opts_t *o,
                  const lh_service_t *svc, const lh_io_t *io, void *data) {
  memset(d, 0, sizeof *d);
  lh_conn_init(&d->conn, role, o);
  d->svc = svc;
  d->io = io;
  d->data = data;
  d->pipeline_flush = o->pipeline_flush;
}

void lh_disp_free(lh_disp_t *d) { lh_conn_free(&d->conn); }

/* what keeps any dispatcher busy: a poll running or deferred, a writer
 * waiting, input held, a failure or EOF, bytes buffered or queued */
static int is_busy(const lh_disp_t *d) {
  const lh_conn_t *c = &d->conn;
  return d->polling || d->deferred || d->want_write || d->held || d->io_error || c->eof ||
         lh_conn_buffered(c) || lh_conn_pending(c);
}

int lh_disp_is_quiet(const lh_disp_t *d) {
  return !(is_busy(d) || d->in_flight || d->want_body || d->raw || !lh_conn_is_idle(&d->conn));
}

int lh_disp_raw_is_quiet(const lh_disp_t *d) {
  const lh_conn_t *c = &d->conn;
  return d->raw && !(is_busy(d) || d->closing || c->error || c->unread ||
                     c->reading == LH_READING_CLOSED || c->writing == LH_WRITING_CLOSED);
}

int lh_disp_is_reusable(const lh_disp_t *d) {
  const lh_conn_t *c = &d->conn;
  return lh_conn_is_idle(c) && !c->eof && !lh_conn_buffered(c) && !d->closing && !c->error;
}

int lh_disp_awaits_input(const lh_disp_t *d) {
  const lh_conn_t *c = &d->conn;
  return d->in_flight && c->writing != LH_WRITING_BODY &&
         (c->reading == LH_READING_INIT || d->want_body);
}

void lh_disp_carry(lh_disp_t *d, uint32_t served, int reading_on) {
  d->served = served;
  d->reading_on = reading_on ? 1 : 0;
}

void lh_disp_carry_raw(lh_disp_t *d, int in_flight, int want_body) {
  lh_conn_t *c = &d->conn;
  /* as lh_disp_upgrade left it */
  c->reading = LH_READING_KEEPALIVE;
  c->writing = c->role == LH_ROLE_SERVER ? LH_WRITING_BODY : LH_WRITING_KEEPALIVE;
  lh_conn_disable_keep_alive(c);
  lh_parser_free(&c->parser);
  d->raw = 1;
  d->in_flight = in_flight ? 1 : 0;
  d->want_body = want_body ? 1 : 0;
}

void lh_disp_continue_expired(lh_disp_t *d) { d->svc->write_ready(d); }

void lh_disp_kick(lh_disp_t *d) {
  if (d->polling) d->repoll = 1;
  else d->io->defer(d);
}

int lh_disp_keep_alive(lh_disp_t *d) {
  lh_conn_t *c = &d->conn;
  if (c->reading != LH_READING_KEEPALIVE || c->writing != LH_WRITING_KEEPALIVE ||
      !lh_conn_try_keep_alive(c))
    return 0;
  d->in_flight = 0;
  return 1;
}

void lh_disp_respond_empty(lh_disp_t *d, int status) {
  lh_conn_t *c = &d->conn;
  lh_conn_body_unwanted(c); /* nobody reads the request body after this */
  if (lh_conn_head_begin(c, status) || lh_conn_head_end(c, 0) || lh_conn_write_end(c)) {
    lh_conn_head_abort(c);
    lh_conn_close(c);
  }
}

void lh_disp_abort(lh_disp_t *d, int err) {
  lh_conn_t *c = &d->conn;
  if (!c->error) c->error = err;
  lh_conn_close(c);
  d->want_body = d->want_write = 0;
  if (d->in_flight) {
    d->in_flight = 0;
    d->svc->on_error(d, err);
  }
}

/* a head could not be parsed: answer with its status and close */
static void fail_head(lh_disp_t *d, int err) {
  lh_conn_t *c = &d->conn;
  int quiet = err == LH_ECLOSED || (err == LH_EINCOMPLETE && lh_conn_buffered(c) == 0);
  if (!quiet && lh_conn_can_write_head(c)) lh_conn_write_error(c, lh_error_status(err));
  lh_conn_close(c);
  if (err != LH_ECLOSED) d->svc->on_error(d, err);
}

/* client role (hyper's Client dispatch): a response head is read only for
 * a request in flight; 1xx heads reach recv_msg too and reading stays INIT */
static int poll_read_client(lh_disp_t *d) {
  lh_conn_t *c = &d->conn;
  if (c->reading == LH_READING_INIT) {
    if (lh_conn_buffered(c) == 0 && !c->eof) return 0;
    if (!d->in_flight) {
      /* idle: EOF is the server closing a pooled connection; bytes are a
       * response nobody asked for */
      if (lh_conn_buffered(c) > 0 && !c->error) c->error = LH_EUNEXPECTED;
      lh_conn_close(c);
      return 1;
    }
    lh_head_t *head;
    const char *base;
    int r = lh_conn_read_head(c, &head, &base);
    if (r == 0) return 0;
    if (r < 0) {
      lh_disp_abort(d, r == LH_ECLOSED ? LH_EINCOMPLETE : r);
      return 1;
    }
    r = d->svc->recv_msg(d, head, base);
    if (r < 0) lh_disp_abort(d, r);
    return 1;
  }
  if (d->want_body && lh_conn_can_read_body(c) && (lh_conn_buffered(c) > 0 || c->eof)) {
    d->want_body = 0;
    d->svc->body_ready(d);
    return 1;
  }
  return 0;
}

/* server: the next request head, when the service is ready for it.
 * 1: a head, now in flight; 0: nothing to do yet; -1: it failed (answered
 * and the connection closing) */
static int take_head(lh_disp_t *d, lh_head_t **head, const char **base) {
  lh_conn_t *c = &d->conn;
  if (lh_conn_buffered(c) == 0 && !c->eof) return 0;
  if (!d->svc->poll_ready(d)) {
    d->held = 1; /* lh_disp_poll again when the service is ready */
    return 0;
  }
  d->held = 0;
  int r = lh_conn_read_head(c, head, base);
  if (r == 0) return 0;
  if (r < 0) {
    fail_head(d, r);
    return -1;
  }
  d->in_flight = 1;
  d->served++;
  return 1;
}

static int poll_read(lh_disp_t *d) {
  lh_conn_t *c = &d->conn;
  if (d->raw) {
    if (d->want_body && (lh_conn_buffered(c) > 0 || c->eof || c->reading == LH_READING_CLOSED)) {
      d->want_body = 0;
      d->svc->body_ready(d);
      return 1;
    }
    return 0;
  }
  if (c->role == LH_ROLE_CLIENT) return poll_read_client(d);
  if (lh_conn_can_read_head(c)) {
    lh_head_t *head;
    const char *base;
    int r = take_head(d, &head, &base);
    if (r <= 0) return r < 0;
    r = d->svc->recv_msg(d, head, base);
    if (r < 0) lh_disp_abort(d, r);
    return 1;
  }
  if (d->want_body && lh_conn_can_read_body(c) &&
      (lh_conn_buffered(c) > 0 || c->eof || c->reading == LH_READING_CONTINUE)) {
    d->want_body = 0;
    d->svc->body_ready(d);
    return 1;
  }
  if (c->eof && c->discarding) {
    /* the client gave up the upload its response answered: quietly */
    d->in_flight = 0;
    lh_conn_close(c);
    return 1;
  }
  if (c->eof && d->in_flight && !c->opts.half_close && !d->want_body &&
      c->reading != LH_READING_CLOSED) {
    /* the client shut down while its request is served (hyper's default,
     * http1_half_close = false): give up on it */
    lh_disp_abort(d, lh_conn_can_read_body(c) ? LH_EINCOMPLETE : LH_ECANCELED);
    return 1;
  }
  return 0;
}

static int poll_write(lh_disp_t *d) {
  lh_conn_t *c = &d->conn;
  if (d->want_write &&
      (c->writing == LH_WRITING_BODY || c->writing == LH_WRITING_INIT ||
       (d->raw && c->writing != LH_WRITING_CLOSED)) &&
      lh_conn_pending(c) < LH_WRITE_HIGH) {
    d->want_write = 0;
    d->svc->write_ready(d);
    return 1;
  }
  return 0;
}

/* the response is complete: drain or close the request body, then
 * try_keep_alive. returns 1 when the next head is already buffered */
static void flush(lh_disp_t *d);

static int poll_keep_alive(lh_disp_t *d) {
  lh_conn_t *c = &d->conn;
  if (d->raw) return 0;
  if (c->writing != LH_WRITING_KEEPALIVE && c->writing != LH_WRITING_CLOSED) return 0;
  if (c->role == LH_ROLE_SERVER && lh_conn_can_read_body(c) && !d->want_body) lh_conn_drain(c);
  if (c->reading != LH_READING_KEEPALIVE && c->reading != LH_READING_CLOSED) return 0;
  int was_busy = d->in_flight;
  d->in_flight = 0;
  if (lh_conn_try_keep_alive(c)) {
    if (d->pipeline_flush && was_busy) flush(d);
    /* after EOF (half-close) the next poll_read closes */
    return lh_conn_buffered(c) > 0 || c->eof;
  }
  return 0;
}

static void set_read_interest(lh_disp_t *d) {
  lh_conn_t *c = &d->conn;
  int want = 0;
  if (d->raw) {
    /* a stream reads only while someone waits on it */
    want = d->want_body && !c->eof && !d->closing && c->reading != LH_READING_CLOSED;
  } else if (!c->eof && !d->closing) {
    switch (c->reading) {
      case LH_READING_INIT:
        /* a held connection leaves new heads in the kernel */
        want = lh_conn_can_read_head(c) && !(d->held && lh_conn_buffered(c) > 0);
        break;
      case LH_READING_CONTINUE:
      case LH_READING_BODY:
        /* what the handler pulls, and a bounded read-ahead so a client
         * that leaves is noticed even while its body is not read */
        want = d->want_body ||
               (c->role == LH_ROLE_SERVER && lh_conn_buffered(c) < LH_READ_AHEAD);
        break;
      case LH_READING_KEEPALIVE:
        /* watch for the client going away while its response is made;
         * the read buffer bounds what a pipelining client can push */
        want = d->in_flight && lh_conn_buffered(c) < c->opts.max_buf_size;
        break;
      case LH_READING_CLOSED:
        break;
    }
  }
  if (want && !d->reading_on) {
    d->reading_on = 1;
    d->io->read_start(d);
  } else if (!want && d->reading_on) {
    d->reading_on = 0;
    d->io->read_stop(d);
  }
}

static void flush(lh_disp_t *d) {
  if (lh_conn_pending(&d->conn) == 0 || d->closing) return;
  int r = d->io->flush(d);
  if (r < 0) {
    d->io_error = r;
    lh_disp_abort(d, r);
  }
}

void lh_disp_poll(lh_disp_t *d) {
  if (d->polling) {
    d->repoll = 1;
    return;
  }
  if (d->closing) return;
  d->polling = 1;
  int more = 0;
  for (d->turns = 0; d->turns < LH_POLL_TURNS; d->turns++) {
    d->repoll = 0;
    int progress = poll_read(d);
    progress |= poll_write(d);
    more = poll_keep_alive(d);
    if (lh_conn_pending(&d->conn) >= LH_WRITE_HIGH) flush(d);
    if (lh_conn_is_closed(&d->conn)) break;
    if (more || progress || d->repoll) continue;
    if (d->want_write) {
      /* a waiting writer goes on as soon as the kernel took the bytes */
      flush(d);
      if (lh_conn_pending(&d->conn) < LH_WRITE_HIGH && !lh_conn_is_closed(&d->conn)) continue;
    }
    break;
  }
  flush(d);
  if (lh_conn_is_closed(&d->conn)) {
    d->closing = 1;
    if (d->reading_on) {
      d->reading_on = 0;
      d->io->read_stop(d);
    }
    if (d->in_flight) {
      d->in_flight = 0;
      d->svc->on_error(d, d->conn.error ? d->conn.error : LH_ECLOSED);
    }
    d->polling = 0;
    d->io->close(d);
    return;
  }
  if (d->raw && d->want_body && lh_conn_pending(&d->conn) == 0 && lh_conn_buffered(&d->conn) == 0) {
    /* an upgraded stream waiting for its peer holds no buffers (an idle
     * WebSocket): the next read takes a pooled block */
    lh_rbuf_trim(&d->conn.rbuf, 0);
    lh_wq_trim(&d->conn.wq, 0);
  }
  set_read_interest(d);
  d->polling = 0;
  if (d->turns == LH_POLL_TURNS && !d->deferred) {
    /* out of turns with work left: yield to the loop, come back next tick */
    d->deferred = 1;
    d->io->defer(d);
  }
}

int lh_disp_next_msg(lh_disp_t *d, lh_head_t **head, const char **base) {
  lh_conn_t *c = &d->conn;
  if (!d->polling || d->closing || d->raw || d->want_body || d->want_write ||
      c->role != LH_ROLE_SERVER)
    return 0;
  /* what the poll loop does between two messages: end this one, keep the
   * connection, flush a full queue; then one turn for the next */
  if (!poll_keep_alive(d)) return 0;
  if (lh_conn_pending(c) >= LH_WRITE_HIGH) flush(d);
  if (lh_conn_is_closed(c) || d->turns + 1 >= LH_POLL_TURNS || !lh_conn_can_read_head(c) ||
      lh_conn_buffered(c) == 0)
    return 0;
  d->turns++;
  return take_head(d, head, base) > 0;
}

void lh_disp_read_done(lh_disp_t *d, long n) {
  if (n == 0) lh_conn_read_eof(&d->conn);
  else if (n < 0) {
    d->io_error = (int)n;
    lh_conn_read_eof(&d->conn);
    lh_disp_abort(d, (int)n);
  }
  lh_disp_poll(d);
}

void lh_disp_write_done(lh_disp_t *d, int status) {
  lh_wq_end_flight(&d->conn.wq);
  if (d->closing) {
    /* no service to tell: the queue drains before the transport closes */
    if (status < 0) d->io_error = status;
    else if (lh_conn_pending(&d->conn) && d->io->flush(d) < 0) d->io_error = -1;
    return;
  }
  if (status < 0) {
    d->io_error = status;
    lh_disp_abort(d, status);
  }
  lh_disp_poll(d);
}

int lh_disp_read_body(lh_disp_t *d, const char **p, size_t *n) {
  int r = lh_conn_read_body(&d->conn, p, n);
  if (r == 0) d->want_body = 1;
  return r;
}

int lh_disp_can_write(lh_disp_t *d) {
  if (lh_conn_pending(&d->conn) < LH_WRITE_HIGH) return 1;
  d->want_write = 1;
  return 0;
}

int lh_disp_upgrade(lh_disp_t *d) {
  lh_conn_t *c = &d->conn;
  lh_writing_t w = c->role == LH_ROLE_SERVER ? LH_WRITING_BODY : LH_WRITING_KEEPALIVE;
  if (c->reading != LH_READING_KEEPALIVE || c->writing != w) return LH_ECLOSED;
  d->raw = 1;
  lh_conn_disable_keep_alive(c);
  lh_parser_free(&c->parser); /* no head is parsed on this connection again */
  return 0;
}

int lh_disp_read_raw(lh_disp_t *d, const char **p, size_t *n) {
  lh_conn_t *c = &d->conn;
  *n = lh_conn_buffered(c);
  if (*n) {
    *p = lh_rbuf_data(&c->rbuf);
    c->rbuf.off += *n;
    return 1;
  }
  if (c->eof || c->reading == LH_READING_CLOSED) return 2;
  d->want_body = 1;
  return 0;
}

int lh_disp_write_raw(lh_disp_t *d, const char *p, size_t n) {
  lh_conn_t *c = &d->conn;
  if (c->writing == LH_WRITING_CLOSED || d->closing) return LH_ECLOSED;
  if (n && lh_wq_append(&c->wq, p, n)) return LH_ENOMEM;
  return 0;
}

int lh_disp_raw_peek(lh_disp_t *d, char **p, size_t *n) {
  lh_conn_t *c = &d->conn;
  *n = lh_conn_buffered(c);
  *p = c->rbuf.base + c->rbuf.off;
  if (*n) return 1;
  if (c->eof || c->reading == LH_READING_CLOSED) return 2;
  d->want_body = 1;
  return 0;
}

void lh_disp_raw_consume(lh_disp_t *d, size_t n) {
  lh_conn_t *c = &d->conn;
  if (n > lh_conn_buffered(c)) n = lh_conn_buffered(c);
  c->rbuf.off += n;
}

char *lh_disp_raw_reserve(lh_disp_t *d, size_t n) {
  lh_conn_t *c = &d->conn;
  if (c->writing == LH_WRITING_CLOSED || d->closing) return NULL;
  return lh_wq_reserve(&c->wq, n);
}

void lh_disp_raw_commit(lh_disp_t *d, size_t n) { lh_wq_commit(&d->conn.wq, n); }

void lh_disp_raw_close(lh_disp_t *d) {
  lh_conn_t *c = &d->conn;
  lh_conn_close(c);
  if (!c->eof) c->unread = 1;
}

int lh_disp_timer_kind(const lh_disp_t *d) {
  const lh_conn_t *c = &d->conn;
  /* a head held back by the service (max_in_flight) waits on us, not on the client */
  /* an unread body dropped after its response: within the head's time */
  if (c->discarding && c->reading == LH_READING_BODY && !d->closing && !c->eof) return LH_DL_HEAD;
  if (d->raw || d->closing || d->held || c->eof || !lh_conn_can_read_head(c)) return LH_DL_NONE;
  if (c->role == LH_ROLE_CLIENT) return LH_DL_NONE;
  return lh_conn_buffered(c) > 0 || d->served == 0 ? LH_DL_HEAD : LH_DL_IDLE;
}

void lh_disp_timeout(lh_disp_t *d, int kind) {
  lh_conn_t *c = &d->conn;
  if (d->closing) return;
  if (kind == LH_DL_HEAD && lh_conn_buffered(c) > 0 && lh_conn_can_write_head(c)) {
    lh_conn_write_error(c, 408);
    c->error = LH_EHEADER_TIMEOUT;
    d->svc->on_error(d, LH_EHEADER_TIMEOUT);
  }
  lh_conn_close(c);
  lh_disp_poll(d);
}

int lh_disp_write_body(lh_disp_t *d, const char *p, size_t n) {
  lh_conn_t *c = &d->conn;
  char hdr[20];
  size_t hlen, tlen;
  int r = lh_conn_body_frame(c, n, hdr, &hlen, &tlen);
  if (r) return r < 0 ? r : 0;
  if (n == 0) return 0;
  struct iovec iov[3] = {{hdr, hlen}, {(void *)p, n}, {(void *)"\r\n", tlen}};
  size_t done = 0, total = hlen + n + tlen;
  if (d->io->try_write && !d->closing && lh_conn_pending(c) == 0 && !c->wq.flight) {
    long w = d->io->try_write(d, hlen ? iov : iov + 1, hlen ? 3 : 1);
    if (w < 0) {
      d->io_error = (int)w;
      return (int)w;
    }
    if (w > 0) done = (size_t)w;
  }
  /* queue what the kernel did not take, in order */
  for (int i = 0; i < 3 && done < total; i++) {
    size_t len = iov[i].iov_len;
    if (done >= len) {
      done -= len;
      total -= len;
      continue;
    }
    if (lh_wq_append(&c->wq, (char *)iov[i].iov_base + done, len - done)) return LH_ENOMEM;
    total -= len;
    done = 0;
  }
  return 0;
}
