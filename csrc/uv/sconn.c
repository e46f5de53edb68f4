/* A server connection: its transport (read into the dispatcher's buffer,
 * send straight, write queue, lingering close), its deadlines, and its
 * message state on demand (dozing, sleeping). Also what a server's
 * connections share: their list, deadline lists and doze list
 * (lh_sconn_set_t), driven by server.c. */
#include "sconn.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#ifdef __linux__
#include <sys/epoll.h>
#endif
#include <sys/socket.h>
#include <unistd.h>

#include "tuning.h"
#include "uvloop.h"

/* Lingering close (nginx's lingering_close): after our FIN, input is read
 * and dropped until the peer closes, so that unread bytes do not turn the
 * close into a reset that destroys the response before the client reads
 * it; given up after LINGER_IDLE seconds without input, LINGER_MAX in all */
#define LINGER_IDLE 2.0
#define LINGER_MAX 30.0

struct lh_sconn {
  uv_tcp_t tcp;            /* first: the handle's address is the connection's */
  lh_disp_t *d;            /* message state; NULL while asleep (taken back to a free list) */
  lh_sconn_set_t *set;
  lh_sconn_t *prev, *next; /* set's list of connections */
  lh_dnode_t dnode;        /* on the set's deadline list of its kind */
  lh_defer_t defer;
  void *udata;
  lh_tls_t *tls;           /* TLS state, made at the first read of a TLS connection; NULL: plain */
  union {
    struct sockaddr sa;
    struct sockaddr_in in4;
    struct sockaddr_in6 in6;
  } peer;                  /* AF_UNSPEC until asked for */
  unsigned writing : 1;    /* wreq in flight */
  unsigned closing : 1;    /* io close sequence started */
  unsigned handle_closing : 1; /* uv_close called */
  unsigned no_linger : 1;  /* close at once (grace period over) */
  unsigned wrote : 1;      /* a write was made (see before_write) */
  unsigned nodelay : 1;    /* TCP_NODELAY is set */
  unsigned reading_on : 1; /* d->reading_on kept while asleep */
  /* an upgraded stream (WebSocket) asleep: set by sconn_sleep, with its
   * dispatcher's in_flight and want_body; cleared by sconn_wake */
  unsigned raw : 1;
  unsigned raw_in_flight : 1;
  unsigned raw_want_body : 1;
  uint32_t armed_served;   /* d->served when the deadline was set */
  uint32_t served;         /* d->served kept while asleep */
  double linger_end;       /* lingering: loop time it ends at the latest, 0 before */
};

/* a connection's message state, from a free list (see sconn_wake) */
struct lh_sdisp {
  lh_disp_t d; /* first: sc->d points here */
  lh_sconn_t *sc;
  lh_sdisp_t *prev, *next; /* the set's doze list */
  unsigned dozing : 1;
};

static void sconn_deadline(lh_sconn_t *sc, int kind, double after);
static void sconn_timer_update(lh_sconn_t *sc);
static void sconn_doze(lh_sconn_t *sc, int idle);
static int sconn_wake(lh_sconn_t *sc);
static void sconn_close_now(lh_sconn_t *sc);

/* --- transport --- */

lh_sconn_t *lh_sconn_from_disp(lh_disp_t *d) { return ((lh_sdisp_t *)d)->sc; }
/* an upgraded stream asleep, woken for its user, and polled soon so that
 * it goes back to sleep if nothing comes of it */
static __attribute__((noinline)) lh_disp_t *sconn_raw_wake(lh_sconn_t *sc) {
  if (sc->closing) return NULL;
  if (!sconn_wake(sc)) {
    sconn_close_now(sc);
    return NULL;
  }
  lh_loop_defer(sc->set->loop, &sc->defer);
  return sc->d;
}

lh_disp_t *lh_sconn_disp(lh_sconn_t *sc) {
  if (sc->d || !sc->raw) return sc->d;
  return sconn_raw_wake(sc);
}
void *lh_sconn_data(lh_sconn_t *sc) { return sc->set->data; }
void **lh_sconn_udata(lh_sconn_t *sc) { return &sc->udata; }

/* a.b.c.d into buf (at least 16 bytes, else empty) */
static void ip4_text(const struct sockaddr_in *in, char *buf, size_t len) {
  /* the last one made, again (LHYPER_FAST_LAYERS): a client's requests
   * come one after another (per thread: a program may run a Lua state in
   * each) */
  static _Thread_local struct {
    uint32_t addr;
    uint8_t n; /* bytes of text, its NUL included; 0: none made yet */
    char text[16];
  } last;
  const unsigned char *a = (const unsigned char *)&in->sin_addr.s_addr;
  char *p = buf;
  if (len < 16) {
    if (len) buf[0] = 0;
    return;
  }
  if (last.n && last.addr == in->sin_addr.s_addr && lh_tuning.fast_layers) {
    memcpy(buf, last.text, last.n);
    return;
  }
  for (int i = 0; i < 4; i++) {
    unsigned v = a[i];
    if (v >= 100) *p++ = (char)('0' + v / 100);
    if (v >= 10) *p++ = (char)('0' + v / 10 % 10);
    *p++ = (char)('0' + v % 10);
    *p++ = i < 3 ? '.' : '\0';
  }
  last.n = (uint8_t)(p - buf);
  memcpy(last.text, buf, last.n);
  last.addr = in->sin_addr.s_addr;
}

int lh_sconn_peer(lh_sconn_t *sc, char *buf, size_t len) {
  buf[0] = 0;
  if (sc->peer.sa.sa_family == AF_UNSPEC) {
    /* asked for rarely: no getpeername per connection until then */
    int n = sizeof sc->peer;
    if (uv_tcp_getpeername(&sc->tcp, &sc->peer.sa, &n)) return 0;
  }
  if (sc->peer.sa.sa_family == AF_INET6) {
    uv_ip6_name(&sc->peer.in6, buf, len);
    return ntohs(sc->peer.in6.sin6_port);
  }
  if (sc->peer.sa.sa_family == AF_INET) {
    ip4_text(&sc->peer.in4, buf, len); /* uv_ip4_name formats through snprintf: 10x the cost */
    return ntohs(sc->peer.in4.sin_port);
  }
  return 0;
}

static void disp_put(lh_disp_t *d);
static const lh_io_t sconn_io;

static void conn_close_cb(uv_handle_t *h) {
  lh_sconn_t *sc = (lh_sconn_t *)h;
  lh_sconn_set_t *set = sc->set;
  lh_loop_t *l = set->loop;
  lh_loop_undefer(l, &sc->defer);
  if (!l->closing && set->hooks.conn_closed) set->hooks.conn_closed(sc);
  if (sc->d) disp_put(sc->d);
  if (sc->prev) sc->prev->next = sc->next;
  else set->conns = sc->next;
  if (sc->next) sc->next->prev = sc->prev;
  set->nconns--;
  free(sc);
  set->gone(set); /* may free the set */
}

/* uv_close takes a socket out of epoll (epoll_ctl DEL) before it closes
 * it, though closing a socket's last reference drops it from every epoll
 * set anyway: one syscall per connection for nothing. With libuv 1.44 (see
 * fast_close_usable) we do without it. Once reading has stopped and no
 * write waits for POLLOUT, the watcher has left the loop; we void the
 * socket in the event batch being dispatched, as uv_close would, close it
 * and leave the handle's descriptor at -1, which tells uv_close there is
 * nothing left to take out or close. Otherwise uv_close does it all. */
static void close_socket_early(lh_sconn_t *sc) {
#ifndef __linux__
  (void)sc; /* fast_close is never set */
#else
  uv_tcp_t *t = &sc->tcp;
  uv_loop_t *loop = t->loop;
  uv__io_t *w = &t->io_watcher;
  if (!sc->set->loop->fast_close || w->fd < 0 || !loop->watchers) return;
  uv_read_stop((uv_stream_t *)t);
  if (w->pevents != 0 || ((unsigned)w->fd < loop->nwatchers && loop->watchers[w->fd]))
    return;
  /* uv__io_poll keeps the batch it dispatches after the watcher table */
  struct epoll_event *ev = (struct epoll_event *)loop->watchers[loop->nwatchers];
  uintptr_t n = (uintptr_t)loop->watchers[loop->nwatchers + 1];
  for (uintptr_t i = 0; ev && i < n; i++)
    if (ev[i].data.fd == w->fd) ev[i].data.fd = -1;
  close(w->fd);
  w->fd = -1;
#endif
}

static void sconn_close_now(lh_sconn_t *sc) {
  /* lh_loop_free's walk may have closed the handle already */
  if (sc->handle_closing || uv_is_closing((uv_handle_t *)&sc->tcp)) return;
  sc->handle_closing = 1;
  sc->closing = 1;
  sconn_deadline(sc, LH_DL_NONE, 0);
  close_socket_early(sc);
  /* tcp.data: conn_close_cb, or tls_close_cb for a TLS connection */
  uv_close((uv_handle_t *)&sc->tcp, (uv_close_cb)sc->tcp.data);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  lh_sconn_t *sc = (lh_sconn_t *)h;
  char *p = NULL;
  if (!sc->d && !sconn_wake(sc)) {
    *buf = uv_buf_init(NULL, 0);
    return;
  }
  long n = lh_conn_read_space(&sc->d->conn, &p);
  *buf = uv_buf_init(n > 0 ? p : NULL, n > 0 ? (unsigned)n : 0);
}

/* The start read_cb and tls_read_cb share: 1 when nread is data, the end
 * of the stream or an error, for the caller to take; 0 when it is all done
 * here: nothing read, no message state to be had (closed), or the buffer
 * (plain or ciphertext) at its bound, reading stopped until the dispatcher
 * consumes it. */
static inline int sconn_read_begin(lh_sconn_t *sc, ssize_t nread) {
  if (nread == 0) return 0;
  if (!sc->d && !sconn_wake(sc)) {
    sconn_close_now(sc);
    return 0;
  }
  if (nread == UV_ENOBUFS) {
    uv_read_stop((uv_stream_t *)&sc->tcp);
    lh_disp_read_stopped(sc->d);
    lh_sconn_poll(sc);
    return 0;
  }
  return 1;
}

static void read_cb(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf) {
  lh_sconn_t *sc = (lh_sconn_t *)st;
  if (!sconn_read_begin(sc, nread)) return;
  if (nread > 0) {
    sc->set->bytes_in += (uint64_t)nread;
    lh_conn_read_commit(&sc->d->conn, (size_t)nread);
    lh_disp_read_done(sc->d, (long)nread);
  } else {
    lh_disp_read_done(sc->d, nread == UV_EOF ? 0 : (long)nread);
  }
  sconn_timer_update(sc);
}

static void linger_read_cb(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf) {
  lh_sconn_t *sc = (lh_sconn_t *)st;
  if (nread < 0) {
    sconn_close_now(sc);
    return;
  }
  /* input after our FIN is dropped: the buffer is reused */
  lh_conn_discard_input(&sc->d->conn);
  if (nread == 0) return;
  /* one duration for the whole list keeps it sorted: the total is checked here */
  if (lh_loop_now(sc->set->loop) >= sc->linger_end) sconn_close_now(sc);
  else sconn_deadline(sc, LH_DL_LINGER, LINGER_IDLE);
}

static void shutdown_cb(uv_shutdown_t *req, int status) {
  lh_sconn_t *sc = req->data;
  free(req);
  if (sc->handle_closing) return;
  if (status < 0 || lh_conn_is_eof(&sc->d->conn) || lh_disp_io_error(sc->d)) {
    sconn_close_now(sc);
    return;
  }
  lh_conn_discard_input(&sc->d->conn);
  if (uv_read_start((uv_stream_t *)&sc->tcp, alloc_cb, linger_read_cb)) {
    sconn_close_now(sc);
    return;
  }
  sc->linger_end = lh_loop_now(sc->set->loop) + LINGER_MAX;
  sconn_deadline(sc, LH_DL_LINGER, LINGER_IDLE);
}

static void finish_close(lh_sconn_t *sc) {
  if (sc->handle_closing || sc->writing) return;
  if (!sc->d) {
    sconn_close_now(sc);
    return;
  }
  /* with nothing left unread, close() sends the FIN after the queued bytes;
   * otherwise linger so the kernel does not answer unread input with RST */
  if (lh_disp_io_error(sc->d) || !lh_conn_has_unread(&sc->d->conn) || sc->no_linger) {
    sconn_close_now(sc);
    return;
  }
  /* requests live only while in use: an idle connection does not carry them */
  uv_shutdown_t *req = malloc(sizeof *req);
  if (!req) {
    sconn_close_now(sc);
    return;
  }
  req->data = sc;
  if (uv_shutdown(req, (uv_stream_t *)&sc->tcp, shutdown_cb)) {
    free(req);
    sconn_close_now(sc);
  }
}

static void write_cb(uv_write_t *req, int status) {
  lh_sconn_t *sc = req->data;
  free(req);
  sc->writing = 0;
  if (sc->handle_closing) return;
  if (sc->closing) {
    lh_disp_write_done(sc->d, status); /* drains the rest: nothing is polled */
    finish_close(sc);
    return;
  }
  lh_disp_write_done(sc->d, status);
  sconn_timer_update(sc);
}

/* Nagle holds a segment back only while earlier bytes are unacknowledged.
 * A connection's first write of at most one segment goes out at once
 * without TCP_NODELAY, so the option (a syscall) is set only for
 * connections that write again (keep-alive, streamed bodies) or start
 * with more than a segment; a one-response connection is spared it. */
#define NODELAY_FIRST_MAX 1400
static void before_write(lh_sconn_t *sc, size_t n) {
  if (sc->nodelay) return;
  if (sc->wrote || n > NODELAY_FIRST_MAX) {
    uv_tcp_nodelay(&sc->tcp, 1);
    sc->nodelay = 1;
  }
  sc->wrote = 1;
}

/* What uv_try_write does when nothing is queued (the only time we write
 * past libuv): one send, or sendmsg for several pieces. send skips the
 * file layer that write goes through; MSG_NOSIGNAL keeps EPIPE an error
 * even where the program wants SIGPIPE. Bytes written, 0 when the socket
 * is full, or a negative libuv error. */
#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0
#endif
static long sock_send(lh_sconn_t *sc, const struct iovec *iov, int n) {
  int fd = sc->tcp.io_watcher.fd;
  ssize_t r;
  do {
    if (n == 1) r = send(fd, iov[0].iov_base, iov[0].iov_len, MSG_NOSIGNAL);
    else {
      struct msghdr m = {0};
      m.msg_iov = (struct iovec *)iov;
      m.msg_iovlen = (size_t)n;
      r = sendmsg(fd, &m, MSG_NOSIGNAL);
    }
  } while (r < 0 && errno == EINTR);
  if (r >= 0) {
    sc->set->bytes_out += (uint64_t)r;
    return (long)r;
  }
  if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) return 0;
  return -errno; /* libuv's errors are negated errno values on Unix */
}

/* sends the n bytes at p, the head of q, with one uv_write; cb (write_cb or
 * tls_write_cb) frees the request and ends q's flight. 0 or a negative
 * code (then nothing is in flight) */
static int sconn_write_start(lh_sconn_t *sc, lh_wq_t *q, const char *p, size_t n, uv_write_cb cb) {
  uv_write_t *req = malloc(sizeof *req);
  if (!req) return UV_ENOMEM;
  lh_wq_begin_flight(q);
  req->data = sc;
  uv_buf_t b = uv_buf_init((char *)p, (unsigned)n);
  int r = uv_write(req, (uv_stream_t *)&sc->tcp, &b, 1, cb);
  if (r < 0) {
    free(req);
    lh_wq_end_flight(q);
    return r;
  }
  sc->set->bytes_out += n;
  sc->writing = 1;
  return 0;
}

static int io_flush(lh_disp_t *d) {
  lh_sconn_t *sc = lh_sconn_from_disp(d);
  if (sc->writing || sc->handle_closing) return 0;
  lh_wq_t *q = lh_disp_out(d);
  const char *p;
  size_t n = lh_wq_peek(q, &p);
  if (n == 0) return 0;
  before_write(sc, n);
  struct iovec v = {(void *)p, n};
  long r = sock_send(sc, &v, 1);
  if (r == (long)n) {
    lh_wq_consume(q, n);
    lh_wq_trim(q, 64 * 1024);
    return 0;
  }
  if (r < 0) return (int)r;
  if (r > 0) lh_wq_consume(q, (size_t)r);
  n = lh_wq_peek(q, &p);
  before_write(sc, n);
  return sconn_write_start(sc, q, p, n, write_cb);
}

static long io_try_write(lh_disp_t *d, const struct iovec *iov, int n) {
  lh_sconn_t *sc = lh_sconn_from_disp(d);
  if (sc->writing || sc->handle_closing) return 0;
  size_t total = 0;
  for (int i = 0; i < n; i++) total += iov[i].iov_len;
  before_write(sc, total);
  return sock_send(sc, iov, n);
}

static void io_read_start(lh_disp_t *d) {
  lh_sconn_t *sc = lh_sconn_from_disp(d);
  if (uv_read_start((uv_stream_t *)&sc->tcp, alloc_cb, read_cb)) lh_disp_read_stopped(d);
}

static void io_read_stop(lh_disp_t *d) {
  lh_sconn_t *sc = lh_sconn_from_disp(d);
  uv_read_stop((uv_stream_t *)&sc->tcp);
}

static void io_close(lh_disp_t *d) {
  lh_sconn_t *sc = lh_sconn_from_disp(d);
  if (sc->closing) return;
  sc->closing = 1;
  sconn_deadline(sc, LH_DL_NONE, 0);
  /* the poll flushed before it closed: what is left is in flight */
  uv_read_stop((uv_stream_t *)&sc->tcp);
  finish_close(sc);
}

static void defer_poll_cb(lh_defer_t *df) {
  lh_sconn_t *sc = (lh_sconn_t *)((char *)df - offsetof(lh_sconn_t, defer));
  if (sc->d) lh_disp_defer_done(sc->d);
  lh_sconn_poll(sc);
}

static void io_defer(lh_disp_t *d) {
  lh_sconn_t *sc = lh_sconn_from_disp(d);
  lh_loop_defer(sc->set->loop, &sc->defer);
}

static const lh_io_t sconn_io = {
  .read_start = io_read_start,
  .read_stop = io_read_stop,
  .flush = io_flush,
  .close = io_close,
  .defer = io_defer,
  .try_write = io_try_write,
};

void lh_sconn_poll(lh_sconn_t *sc) {
  if (sc->closing) return;
  if (sc->d) lh_disp_poll(sc->d);
  sconn_timer_update(sc);
}

void lh_sconn_defer_poll(lh_sconn_t *sc) {
  if (!sc->closing) lh_loop_defer(sc->set->loop, &sc->defer);
}

/* --- TLS transport: the same socket, with lh_tls_t (tls.h) between it and
 * the dispatcher, which sees plaintext. Ciphertext is read into the TLS
 * input buffer and sent from its out queue; plaintext is decrypted into the
 * Conn's read buffer and encrypted from its write queue only while the out
 * queue has room, so the write queue's bound is the backpressure, as
 * without TLS. These are their own libuv callbacks and lh_io_t: a plain
 * connection runs none of this. --- */

static void tls_write_cb(uv_write_t *req, int status);

/* encrypts what the dispatcher queued and sends the ciphertext: what the
 * kernel takes now, the rest with one uv_write. Once the connection is
 * closing and everything is encrypted, close_notify goes last. 0 or a
 * negative code */
static int tls_flush(lh_sconn_t *sc) {
  if (sc->writing || sc->handle_closing || !sc->tls) return 0;
  lh_wq_t *q = lh_tls_out(sc->tls);
  const char *p;
  size_t n;
  /* an upgraded stream (WebSocket) is never trimmed as an idle connection */
  if (sc->d && sc->d->raw) lh_tls_lean(sc->tls);
  for (;;) {
    if (sc->d) {
      lh_wq_t *plain = lh_disp_out(sc->d);
      int e = lh_tls_send(sc->tls, plain);
      if (e < 0) return e;
      if (sc->closing && lh_wq_pending(plain) == 0) lh_tls_close(sc->tls);
    }
    n = lh_wq_peek(q, &p);
    if (n == 0) return 0;
    before_write(sc, n);
    struct iovec v = {(void *)p, n};
    long r = sock_send(sc, &v, 1);
    if (r < 0) return (int)r;
    lh_wq_consume(q, (size_t)r);
    if ((size_t)r < n) break;
  }
  n = lh_wq_peek(q, &p);
  return sconn_write_start(sc, q, p, n, tls_write_cb);
}

static void tls_write_cb(uv_write_t *req, int status) {
  lh_sconn_t *sc = req->data;
  free(req);
  sc->writing = 0;
  if (sc->handle_closing) return;
  lh_wq_end_flight(lh_tls_out(sc->tls));
  if (status >= 0) status = tls_flush(sc);
  if (sc->closing) {
    /* a failure only decides how the socket closes (no lingering) */
    if (status < 0 && sc->d) lh_disp_read_done(sc->d, status);
    finish_close(sc);
    return;
  }
  if (status < 0) lh_disp_read_done(sc->d, status); /* aborts, then polls */
  else lh_disp_poll(sc->d); /* a writer may wait for the room made */
  sconn_timer_update(sc);
}

/* the TLS layer failed (err from lh_tls_recv): the alert, or the answer to
 * a plain HTTP request, goes out before the connection closes; a failure
 * no handler saw is reported as the service reports bad heads */
static void tls_fail(lh_sconn_t *sc, int err) {
  lh_disp_t *d = sc->d;
  int unseen = lh_disp_served(d) == 0 || lh_disp_is_idle(d);
  lh_disp_abort(d, err);
  if (unseen) sc->set->hooks.svc->on_error(d, err);
  lh_sconn_poll(sc);
}

/* hands decrypted bytes to the dispatcher and what OpenSSL has for the
 * peer (handshake, tickets, alerts) to the socket */
static void tls_pump(lh_sconn_t *sc) {
  lh_disp_t *d = sc->d;
  size_t n, queued = lh_wq_pending(lh_disp_out(d));
  if (d->raw) lh_tls_lean(sc->tls); /* see tls_flush */
  int r = lh_tls_recv(sc->tls, &d->conn, &n);
  int w = tls_flush(sc);
  if (r < 0) {
    tls_fail(sc, r);
    return;
  }
  if (r == 2) {
    /* the read buffer is full: the socket waits until the dispatcher asks
     * for more (tls_io_read_start goes on with what is buffered) */
    uv_read_stop((uv_stream_t *)&sc->tcp);
    lh_disp_read_stopped(d);
  }
  if (w < 0) lh_disp_read_done(d, w);
  else if (r == 1) lh_disp_read_done(d, 0); /* with what came before close_notify */
  else if (n > 0) lh_disp_read_done(d, (long)n);
  /* also when a writer may wait for the room the flush made */
  else if (r == 2 || lh_wq_pending(lh_disp_out(d)) < queued) lh_sconn_poll(sc);
  sconn_timer_update(sc);
}

static void tls_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)suggested;
  lh_sconn_t *sc = (lh_sconn_t *)h;
  char *p = NULL;
  long n = lh_tls_in_space(sc->tls, &p);
  *buf = uv_buf_init(n > 0 ? p : NULL, n > 0 ? (unsigned)n : 0);
}

static void tls_read_cb(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf) {
  (void)buf;
  lh_sconn_t *sc = (lh_sconn_t *)st;
  if (!sconn_read_begin(sc, nread)) return;
  if (nread > 0) {
    sc->set->bytes_in += (uint64_t)nread;
    lh_tls_in_commit(sc->tls, (size_t)nread);
  } else if (nread == UV_EOF) {
    lh_tls_in_eof(sc->tls);
  } else {
    lh_disp_read_done(sc->d, (long)nread);
    sconn_timer_update(sc);
    return;
  }
  tls_pump(sc);
}

static void tls_close_cb(uv_handle_t *h) {
  lh_sconn_t *sc = (lh_sconn_t *)h;
  lh_tls_free(sc->tls);
  sc->tls = NULL;
  conn_close_cb(h);
}

static void tls_defer_cb(lh_defer_t *df) {
  lh_sconn_t *sc = (lh_sconn_t *)((char *)df - offsetof(lh_sconn_t, defer));
  if (sc->d) {
    lh_disp_defer_done(sc->d);
    if (!sc->closing && lh_disp_is_reading(sc->d) && lh_tls_pending(sc->tls)) tls_pump(sc);
  }
  lh_sconn_poll(sc);
}

static void tls_io_read_start(lh_disp_t *d) {
  lh_sconn_t *sc = lh_sconn_from_disp(d);
  if (!sc->tls) {
    /* the context of the server now: a reload applies from here on */
    if (lh_tls_new(sc->set->tls, NULL, NULL, &sc->tls)) {
      lh_disp_read_stopped(d);
      lh_disp_abort(d, LH_ENOMEM);
      lh_sconn_defer_poll(sc);
      return;
    }
    sc->tcp.data = (void *)tls_close_cb; /* how it is closed, by us or lh_loop_free */
    sc->defer.cb = tls_defer_cb;
  }
  if (uv_read_start((uv_stream_t *)&sc->tcp, tls_alloc_cb, tls_read_cb)) lh_disp_read_stopped(d);
  /* what stopped at a full read buffer goes on without new bytes */
  else if (lh_tls_pending(sc->tls)) lh_loop_defer(sc->set->loop, &sc->defer);
}

static int tls_io_flush(lh_disp_t *d) { return tls_flush(lh_sconn_from_disp(d)); }

static void tls_io_close(lh_disp_t *d) {
  lh_sconn_t *sc = lh_sconn_from_disp(d);
  if (sc->closing) return;
  sc->closing = 1;
  sconn_deadline(sc, LH_DL_NONE, 0);
  uv_read_stop((uv_stream_t *)&sc->tcp);
  /* the rest of the write queue, then close_notify */
  int e = lh_disp_io_error(d) ? 0 : tls_flush(sc);
  if (e < 0) lh_disp_read_done(d, e);
  finish_close(sc);
}

static const lh_io_t sconn_tls_io = {
  .read_start = tls_io_read_start,
  .read_stop = io_read_stop,
  .flush = tls_io_flush,
  .close = tls_io_close,
  .defer = io_defer,
};

lh_tls_t *lh_sconn_tls(lh_sconn_t *sc) { return sc->tls; }
const char *lh_sconn_why(lh_sconn_t *sc) { return sc->tls ? lh_tls_why(sc->tls) : NULL; }

int lh_sconn_set_tls(lh_sconn_set_t *set, lh_tls_ctx_t *ctx) {
  if (set->io && (set->tls != NULL) != (ctx != NULL) && set->nconns) return LH_ETLS_CONFIG;
  if (ctx) lh_tls_ctx_ref(ctx);
  if (set->tls) lh_tls_ctx_unref(set->tls);
  set->tls = ctx;
  set->io = ctx ? &sconn_tls_io : &sconn_io;
  return 0;
}

/* --- message state on demand: an idle connection keeps only its handle,
 * its links and a few flags; the dispatcher comes from a free list.
 *
 * Going to sleep the moment a response is out would cost a keep-alive
 * client's next request a dispatcher set-up, so an idle connection first
 * dozes: it keeps its dispatcher on its server's list of dozing
 * connections, and only when more than DOZE_MAX others went idle after it
 * does it sleep. Memory stays bounded by DOZE_MAX per server. --- */

#define DISP_POOL 64
#define DOZE_MAX 64

static __thread struct {
  lh_sdisp_t *d[DISP_POOL];
  int n;
} dpool;

static void doze_remove(lh_sconn_set_t *s, lh_sdisp_t *x) {
  if (!x->dozing) return;
  x->dozing = 0;
  if (x->prev) x->prev->next = x->next;
  else s->doze_head = x->next;
  if (x->next) x->next->prev = x->prev;
  else s->doze_tail = x->prev;
  x->prev = x->next = NULL;
  s->ndozing--;
}

static void disp_put(lh_disp_t *d) {
  lh_sdisp_t *x = (lh_sdisp_t *)d;
  doze_remove(lh_sconn_from_disp(d)->set, x);
  lh_disp_free(d);
  if (dpool.n < DISP_POOL) dpool.d[dpool.n++] = x;
  else free(x);
}

/* gives an idle connection its message state back; 0 on OOM */
static int sconn_wake(lh_sconn_t *sc) {
  lh_sconn_set_t *s = sc->set;
  lh_sdisp_t *x = dpool.n ? dpool.d[--dpool.n] : malloc(sizeof *x);
  if (!x) return 0;
  x->prev = x->next = NULL;
  x->dozing = 0;
  lh_disp_t *d = &x->d;
  lh_disp_init(d, LH_ROLE_SERVER, &s->opts.conn, s->hooks.svc, s->io, s->data);
  x->sc = sc;
  lh_disp_carry(d, sc->served, sc->reading_on);
  if (sc->raw) lh_disp_carry_raw(d, sc->raw_in_flight, sc->raw_want_body);
  sc->raw = 0;
  if (s->closing) lh_disp_disable_keep_alive(d);
  sc->d = d;
  return 1;
}

/* an upgraded stream with nothing in progress (an idle WebSocket): no
 * poll asked for (a reader that just began to wait has its socket read
 * only once that poll runs), a waiting reader's socket read, and its TLS
 * layer holding nothing for it either */
static int sconn_raw_quiet(lh_sconn_t *sc) {
  lh_disp_t *d = sc->d;
  if (sc->defer.queued || !lh_disp_raw_is_quiet(d)) return 0;
  if (d->want_body && !lh_disp_is_reading(d)) return 0;
  return !sc->tls || (!lh_tls_pending(sc->tls) && lh_wq_pending(lh_tls_out(sc->tls)) == 0);
}

/* an idle connection with nothing pending, or an upgraded stream with
 * nothing in progress, gives its message state back */
static void sconn_sleep(lh_sconn_t *sc) {
  lh_disp_t *d = sc->d;
  if (sc->closing || sc->writing) return;
  int raw = d->raw;
  if (raw ? !sconn_raw_quiet(sc) : sc->udata || !lh_disp_is_quiet(d)) return;
  sc->served = lh_disp_served(d);
  sc->reading_on = lh_disp_is_reading(d);
  sc->raw = raw;
  sc->raw_in_flight = d->in_flight;
  sc->raw_want_body = d->want_body;
  sc->d = NULL;
  disp_put(d);
  /* a stream's TLS layer is lean (tls_flush): OpenSSL's buffers go after
   * each record; its own read buffer and queue go here, as an idle
   * connection's do (sconn_raw_quiet made sure nothing is in them) */
  if (sc->tls) lh_tls_trim(sc->tls);
}

/* the connection is idle (1) or not (0): an idle one dozes, then sleeps */
static void sconn_doze(lh_sconn_t *sc, int idle) {
  lh_sconn_set_t *s = sc->set;
  lh_sdisp_t *x = (lh_sdisp_t *)sc->d;
  if (!idle) {
    doze_remove(s, x);
    return;
  }
  if (!lh_tuning.doze) {
    sconn_sleep(sc); /* refused: it tries again after its next event */
    return;
  }
  if (x->dozing) return; /* idle since earlier: keeps its place */
  x->dozing = 1;
  x->next = NULL;
  x->prev = s->doze_tail;
  if (s->doze_tail) s->doze_tail->next = x;
  else s->doze_head = x;
  s->doze_tail = x;
  s->ndozing++;
  while (s->ndozing > DOZE_MAX) {
    lh_sdisp_t *old = s->doze_head;
    doze_remove(s, old);
    sconn_sleep(lh_sconn_from_disp(&old->d)); /* refused: it dozes again when idle */
  }
}

/* --- deadlines ---
 * kind NONE takes the connection off its list; others are due `after`
 * seconds from now */
static void sconn_deadline(lh_sconn_t *sc, int kind, double after) {
  lh_sconn_set_t *s = sc->set;
  if (kind == LH_DL_NONE) {
    lh_dl_remove(&s->dl, &sc->dnode);
    return;
  }
  lh_dl_append(&s->dl, &sc->dnode, kind, lh_loop_now(s->loop) + after);
  /* a list's entries share one timeout, so one put behind others is not
   * due before them, and the timer is already set for the head */
  if (!sc->dnode.prev) s->arm(s);
}

/* after the connection's state changed: its deadline, buffers and doze */
static void sconn_timer_update(lh_sconn_t *sc) {
  if (sc->closing) return;
  lh_sconn_set_t *s = sc->set;
  if (!sc->d) return; /* asleep: already on the idle list */
  lh_conn_t *c = &sc->d->conn;
  int state = lh_disp_timer_kind(sc->d);
  double t = state == LH_DL_HEAD ? s->opts.header_read_timeout
           : state == LH_DL_IDLE ? s->opts.idle_timeout : 0;
  if (state == LH_DL_IDLE && s->draining) {
    /* a keep-alive response went out while draining: its next response
     * closes, or it goes after a short idle spell (lh_sconn_set_drain) */
    lh_conn_disable_keep_alive(c);
    state = LH_DL_GRACE;
    t = s->drain_idle > 0 ? s->drain_idle : 0.001;
  }
  int kind = t > 0 ? state : LH_DL_NONE;
  /* a request whose handler waits (a long poll, an upstream call) with
   * nothing to send does not hold OpenSSL's record buffers meanwhile; a
   * handler that answers at once finds the connection idle here */
  if (sc->tls && state == LH_DL_NONE && !sc->writing && lh_wq_pending(lh_disp_out(sc->d)) == 0)
    lh_tls_release(sc->tls);
  if (lh_conn_can_read_head(c) && lh_conn_buffered(c) == 0) lh_conn_trim(c); /* between messages: hold no buffers */
  /* a head keeps the deadline it got when it began (slowloris); an idle
   * spell starts anew after each response, even when the whole exchange
   * happened between two updates */
  if (!(kind == sc->dnode.kind && sc->armed_served == lh_disp_served(sc->d))) {
    sc->armed_served = lh_disp_served(sc->d);
    sconn_deadline(sc, kind, t);
  }
  /* an upgraded stream dozes busy or not: whether it is quiet is asked
   * when it would sleep (sconn_sleep), not after each of its events */
  sconn_doze(sc, state == LH_DL_IDLE || sc->d->raw);
}

/* --- the set of a server's connections --- */

int lh_sconn_accept(lh_sconn_set_t *set, int fd) {
  lh_sconn_t *sc = calloc(1, sizeof *sc);
  if (!sc) {
    close(fd);
    return LH_ENOMEM;
  }
  uv_tcp_init(&set->loop->uv, &sc->tcp);
  int r = uv_tcp_open(&sc->tcp, fd);
  if (r) {
    close(fd); /* the handle did not take it */
    uv_close((uv_handle_t *)&sc->tcp, (uv_close_cb)free);
    return r;
  }
  sc->set = set;
  sc->next = set->conns;
  if (set->conns) set->conns->prev = sc;
  set->conns = sc;
  set->nconns++;
  sc->tcp.data = (void *)conn_close_cb; /* how lh_loop_free closes it */
  sc->defer.cb = defer_poll_cb;
  if (!sconn_wake(sc)) {
    sconn_close_now(sc);
    return 0;
  }
  lh_sconn_poll(sc);
  return 0;
}

#define SC_OF_NODE(n) ((lh_sconn_t *)((char *)(n) - offsetof(lh_sconn_t, dnode)))

void lh_sconn_set_expire(lh_sconn_set_t *set, double now) {
  lh_dnode_t *n;
  int kind;
  while ((n = lh_dl_pop_due(&set->dl, now, &kind))) {
    lh_sconn_t *sc = SC_OF_NODE(n);
    if (kind == LH_DL_LINGER || !sc->d) sconn_close_now(sc);
    else {
      lh_disp_timeout(sc->d, kind);
      sconn_timer_update(sc);
    }
  }
}

/* the binding hears of every busy connection that the server is going */
static void set_shutdown(lh_sconn_set_t *set) {
  if (!set->hooks.conn_shutdown) return;
  for (lh_sconn_t *sc = set->conns, *next; sc; sc = next) {
    next = sc->next;
    if (!sc->closing && (sc->d || sc->raw)) set->hooks.conn_shutdown(sc);
  }
}

void lh_sconn_set_close(lh_sconn_set_t *set, double grace) {
  int was = set->closing;
  set->closing = 1;
  for (lh_sconn_t *sc = set->conns, *next; sc; sc = next) {
    next = sc->next;
    if (sc->closing || (!sc->d && sc->raw)) continue; /* a stream asleep: told below */
    if (!sc->d) {
      sconn_close_now(sc); /* asleep: idle */
      continue;
    }
    lh_disp_t *d = sc->d;
    lh_disp_disable_keep_alive(d);
    if (lh_conn_can_read_head(lh_disp_conn(d)) && lh_disp_buffered(d) == 0) {
      if (lh_disp_served(d) == 0) {
        /* opened but silent: a short window for a request already on its way */
        sconn_deadline(sc, LH_DL_GRACE, grace < 1.0 && grace >= 0 ? grace : 1.0);
        continue;
      }
      lh_disp_close(d);
    }
    lh_sconn_poll(sc);
  }
  if (!was) set_shutdown(set);
}

void lh_sconn_set_drain(lh_sconn_set_t *set, double idle) {
  int was = set->closing;
  set->closing = 1;
  set->draining = 1;
  set->drain_idle = idle;
  for (lh_sconn_t *sc = set->conns, *next; sc; sc = next) {
    next = sc->next;
    if (sc->closing || (!sc->d && sc->raw)) continue; /* a stream asleep: busy */
    if (!sc->d) {
      /* asleep: idle. A request that wakes it is answered with Connection: close */
      sc->armed_served = sc->served;
      sconn_deadline(sc, LH_DL_GRACE, idle > 0 ? idle : 0.001);
      continue;
    }
    lh_conn_t *c = &sc->d->conn;
    /* a response whose head is out keeps what it promised: the connection
     * turns idle after it and gets its window then */
    if (lh_conn_can_write_head(c)) lh_conn_disable_keep_alive(c);
    if (lh_conn_can_read_head(c) && lh_conn_buffered(c) == 0) {
      sc->armed_served = sc->d->served;
      sconn_deadline(sc, LH_DL_GRACE, idle > 0 ? idle : 0.001);
    }
  }
  if (!was) set_shutdown(set);
}

void lh_sconn_set_abort(lh_sconn_set_t *set) {
  for (lh_sconn_t *sc = set->conns, *next; sc; sc = next) {
    next = sc->next;
    if (!sc->closing && !sc->d && sc->raw) sconn_wake(sc); /* a stream asleep: aborted as a busy one */
    if (sc->closing || !sc->d) {
      sconn_close_now(sc);
      continue;
    }
    sc->no_linger = 1;
    lh_disp_abort(sc->d, LH_ECANCELED);
    lh_sconn_poll(sc);
  }
}
