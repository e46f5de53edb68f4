/* Client connections: resolve, connect, transport, deadlines and the
 * keep-alive pool per host:port (after hyper's client/pool.rs). */
#include "client.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "uvloop.h"

typedef struct lh_host {
  struct lh_host *next;
  lh_cconn_t *idle;   /* idle connections, most recently used first */
  uint32_t nidle;
  int port;
  lh_tls_ctx_t *tls;  /* https: its context (a reference); NULL: plain */
  const char *sni;    /* https: the name asked for, after name's NUL */
  char name[];        /* lower case, then the TLS name */
} lh_host_t;

struct lh_client {
  lh_loop_t *loop;
  lh_client_opts_t opts;
  lh_client_hooks_t hooks;
  void *data;
  lh_host_t *hosts;
  uint32_t nconns;    /* connections not yet freed */
  uint32_t nidle;
  unsigned closing : 1;
};

struct lh_cconn {
  uv_tcp_t tcp;              /* first: the handle's address is the connection's; open while tcp_open */
  uv_timer_t timer;          /* the earliest deadline below */
  lh_disp_t disp;
  lh_client_t *cl;
  lh_host_t *host;
  lh_cconn_t *pprev, *pnext; /* host's idle list, while pooled */
  uv_getaddrinfo_t gai;      /* in flight while resolving */
  uv_connect_t creq;
  uv_write_t wreq;
  lh_defer_t defer;
  struct addrinfo *ai;       /* resolved addresses, freed once connected */
  struct addrinfo *ai_next;  /* the next one to try */
  lh_tls_t *tls;             /* https; NULL: plain */
  void *udata;               /* the exchange that owns it, NULL when pooled or let go */
  int refs;                  /* open handles + a pending getaddrinfo: freed at 0 */
  int last_err;              /* the last connect failure, for the final report */
  int local_port;            /* 0 until asked for once connected */
  const char *why;           /* message of the deadline that expired */
  /* deadlines in loop seconds, 0 when unset */
  double connect_deadline;   /* while connecting, and for https until the handshake is done */
  double deadline;           /* the whole exchange */
  double read_idle;          /* seconds; the clock runs from last_read */
  double last_read;
  double cont_deadline;      /* Expect: 100-continue wait */
  double idle_deadline;      /* while pooled */
  unsigned tcp_open : 1;
  unsigned resolving : 1;
  unsigned connected : 1;
  unsigned pooled : 1;
  unsigned closing : 1;      /* close sequence started */
  unsigned writing : 1;      /* wreq in flight */
};

static void cc_close(lh_cconn_t *cc);
static void cc_after(lh_cconn_t *cc);
static void cc_arm(lh_cconn_t *cc);

static int teardown(lh_client_t *cl) { return lh_loop_is_closing(cl->loop); }

/* --- client and hosts --- */

int lh_client_new(lh_loop_t *l, const lh_client_opts_t *o, const lh_client_hooks_t *hooks,
                  void *data, lh_client_t **out) {
  lh_client_t *cl = calloc(1, sizeof *cl);
  if (!cl) return UV_ENOMEM;
  cl->loop = l;
  cl->opts = *o;
  cl->hooks = *hooks;
  cl->data = data;
  *out = cl;
  return 0;
}

static void client_maybe_free(lh_client_t *cl) {
  if (!cl->closing || cl->nconns) return;
  for (lh_host_t *h = cl->hosts, *next; h; h = next) {
    next = h->next;
    if (h->tls) lh_tls_ctx_unref(h->tls);
    free(h);
  }
  free(cl);
}

uint32_t lh_client_connections(const lh_client_t *cl) { return cl->nconns; }
uint32_t lh_client_idle(const lh_client_t *cl) { return cl->nidle; }

/* the pool of host:port, apart for each TLS context and name */
static lh_host_t *host_get(lh_client_t *cl, const char *name, int port, const lh_client_tls_t *tls) {
  size_t n = strlen(name);
  lh_tls_ctx_t *ctx = tls ? tls->ctx : NULL;
  const char *sni = ctx ? (tls->name ? tls->name : name) : "";
  size_t sn = strlen(sni);
  lh_host_t **pp = &cl->hosts;
  for (lh_host_t *h = cl->hosts; h; pp = &h->next, h = h->next) {
    if (h->port == port && h->tls == ctx && strncasecmp(h->name, name, n) == 0 && h->name[n] == 0 &&
        strcasecmp(h->sni, sni) == 0) {
      /* move to front: a few hosts take most requests */
      *pp = h->next;
      h->next = cl->hosts;
      cl->hosts = h;
      return h;
    }
  }
  lh_host_t *h = calloc(1, sizeof *h + n + 1 + sn + 1);
  if (!h) return NULL;
  for (size_t i = 0; i < n; i++)
    h->name[i] = (char)((name[i] >= 'A' && name[i] <= 'Z') ? name[i] + 32 : name[i]);
  h->sni = h->name + n + 1;
  memcpy(h->name + n + 1, sni, sn);
  h->port = port;
  h->tls = ctx;
  if (ctx) lh_tls_ctx_ref(ctx);
  h->next = cl->hosts;
  cl->hosts = h;
  return h;
}

/* --- pool --- */

static void pool_remove(lh_cconn_t *cc) {
  if (!cc->pooled) return;
  lh_host_t *h = cc->host;
  if (cc->pprev) cc->pprev->pnext = cc->pnext;
  else h->idle = cc->pnext;
  if (cc->pnext) cc->pnext->pprev = cc->pprev;
  cc->pprev = cc->pnext = NULL;
  cc->pooled = 0;
  h->nidle--;
  cc->cl->nidle--;
  cc->idle_deadline = 0;
  /* busy connections keep the loop running, idle ones do not */
  if (cc->tcp_open) uv_ref((uv_handle_t *)&cc->tcp);
  uv_ref((uv_handle_t *)&cc->timer);
}

static void pool_put(lh_cconn_t *cc) {
  lh_client_t *cl = cc->cl;
  lh_host_t *h = cc->host;
  if (cc->pooled) return;
  if (cl->closing || h->nidle >= cl->opts.pool_max_idle_per_host ||
      lh_conn_is_keep_alive_disabled(lh_disp_conn(&cc->disp))) {
    cc_close(cc);
    return;
  }
  cc->pnext = h->idle;
  cc->pprev = NULL;
  if (h->idle) h->idle->pprev = cc;
  h->idle = cc;
  h->nidle++;
  cl->nidle++;
  cc->pooled = 1;
  cc->deadline = cc->read_idle = cc->cont_deadline = 0;
  cc->why = NULL;
  if (cc->tls) lh_tls_trim(cc->tls);
  if (cl->opts.pool_idle_timeout > 0)
    cc->idle_deadline = lh_loop_now(cl->loop) + cl->opts.pool_idle_timeout;
  lh_conn_trim(&cc->disp.conn);
  uv_unref((uv_handle_t *)&cc->tcp);
  uv_unref((uv_handle_t *)&cc->timer);
  cc_arm(cc);
}

/* an idle connection may be handed out: nothing arrived on it, and the
 * kernel holds no EOF or bytes the loop has not seen yet (hyper#3077: a
 * connection the server closed while idle must not take a request) */
static int cc_alive(lh_cconn_t *cc) {
  if (!lh_disp_is_reusable(&cc->disp) || (cc->tls && lh_tls_pending(cc->tls))) return 0;
  uv_os_fd_t fd;
  if (uv_fileno((uv_handle_t *)&cc->tcp, &fd)) return 0;
  char b;
  ssize_t n;
  do n = recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
  while (n < 0 && errno == EINTR);
  return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

void lh_client_close(lh_client_t *cl) {
  if (cl->closing) return;
  cl->closing = 1;
  for (lh_host_t *h = cl->hosts; h; h = h->next) {
    while (h->idle) {
      lh_cconn_t *cc = h->idle;
      pool_remove(cc);
      cc_close(cc);
    }
  }
  client_maybe_free(cl);
}

/* --- connection lifetime --- */

static void cc_unref(lh_cconn_t *cc) {
  if (--cc->refs > 0) return;
  lh_client_t *cl = cc->cl;
  if (!teardown(cl) && cl->hooks.conn_closed) cl->hooks.conn_closed(cc);
  lh_loop_undefer(cl->loop, &cc->defer);
  lh_disp_free(&cc->disp);
  lh_tls_free(cc->tls);
  if (cc->ai) uv_freeaddrinfo(cc->ai);
  cl->nconns--;
  free(cc);
  client_maybe_free(cl);
}

static void tcp_close_cb(uv_handle_t *h) {
  lh_cconn_t *cc = (lh_cconn_t *)h;
  cc->tcp_open = 0;
  cc_unref(cc);
}

static void timer_close_cb(uv_handle_t *h) {
  cc_unref((lh_cconn_t *)((char *)h - offsetof(lh_cconn_t, timer)));
}

static void cc_close(lh_cconn_t *cc) {
  if (cc->closing) return;
  cc->closing = 1;
  pool_remove(cc);
  if (cc->resolving) uv_cancel((uv_req_t *)&cc->gai);
  if (!uv_is_closing((uv_handle_t *)&cc->timer)) uv_close((uv_handle_t *)&cc->timer, timer_close_cb);
  /* a pending connect or write is cancelled before the close callback */
  if (cc->tcp_open && !uv_is_closing((uv_handle_t *)&cc->tcp))
    uv_close((uv_handle_t *)&cc->tcp, tcp_close_cb);
}

/* the exchange fails with err (message why): the service hears it through
 * on_error, then the dispatcher closes the connection */
static void cc_fail(lh_cconn_t *cc, int err, const char *why) {
  if (cc->closing) return;
  cc->why = why;
  lh_disp_abort(&cc->disp, err);
  lh_disp_poll(&cc->disp);
  cc_close(cc);
}

/* after every poll: a connection nobody owns goes back to the pool when
 * it is idle and closes otherwise */
static void cc_after(lh_cconn_t *cc) {
  if (cc->closing || lh_disp_is_polling(&cc->disp) || cc->udata || cc->pooled) return;
  if (lh_disp_is_closing(&cc->disp)) return;
  if (cc->connected && lh_disp_is_idle(&cc->disp)) {
    pool_put(cc);
    return;
  }
  lh_disp_abort(&cc->disp, LH_ECANCELED);
  lh_disp_poll(&cc->disp);
  cc_close(cc);
}

static void cc_poll(lh_cconn_t *cc) {
  if (cc->closing) return;
  lh_disp_poll(&cc->disp);
  cc_after(cc);
}

/* --- deadlines --- */

static int waiting_read(lh_cconn_t *cc) {
  return cc->connected && lh_disp_awaits_input(&cc->disp);
}

static void cc_timer_cb(uv_timer_t *t) {
  lh_cconn_t *cc = (lh_cconn_t *)((char *)t - offsetof(lh_cconn_t, timer));
  if (cc->closing || teardown(cc->cl)) return;
  double now = lh_loop_now(cc->cl->loop) + 0.0005;
  if (cc->pooled) {
    if (cc->idle_deadline && cc->idle_deadline <= now) cc_close(cc);
    else cc_arm(cc);
    return;
  }
  if (cc->connect_deadline && cc->connect_deadline <= now) {
    cc_fail(cc, LH_ETIMEOUT, cc->connected ? "TLS handshake timed out" : "connect timed out");
    return;
  }
  if (cc->deadline && cc->deadline <= now) {
    cc_fail(cc, LH_ETIMEOUT, "request timed out");
    return;
  }
  if (cc->read_idle) {
    if (!waiting_read(cc)) cc->last_read = now; /* the clock runs only while a response is awaited */
    else if (cc->last_read + cc->read_idle <= now) {
      cc_fail(cc, LH_ETIMEOUT, "read timed out");
      return;
    }
  }
  if (cc->cont_deadline && cc->cont_deadline <= now) {
    cc->cont_deadline = 0;
    lh_disp_continue_expired(&cc->disp);
    cc_poll(cc);
  }
  cc_arm(cc);
}

static void cc_arm(lh_cconn_t *cc) {
  if (cc->closing) return;
  double next = 0;
#define CONSIDER(x) \
  do { \
    double x_ = (x); \
    if (x_ > 0 && (next == 0 || x_ < next)) next = x_; \
  } while (0)
  if (cc->pooled) {
    CONSIDER(cc->idle_deadline);
  } else {
    CONSIDER(cc->connect_deadline);
    CONSIDER(cc->deadline);
    if (cc->read_idle > 0) CONSIDER(cc->last_read + cc->read_idle);
    CONSIDER(cc->cont_deadline);
  }
#undef CONSIDER
  if (next == 0) {
    uv_timer_stop(&cc->timer);
    return;
  }
  double now = lh_loop_now(cc->cl->loop);
  uint64_t ms = lh_ms(next - now, 1); /* 0 when it is due */
  uv_timer_start(&cc->timer, cc_timer_cb, ms, 0);
}

void lh_cconn_set_timeouts(lh_cconn_t *cc, double deadline, double read_idle) {
  cc->deadline = deadline;
  cc->read_idle = read_idle > 0 ? read_idle : 0;
  cc->last_read = lh_loop_now(cc->cl->loop);
  cc_arm(cc);
}

void lh_cconn_touch(lh_cconn_t *cc) { cc->last_read = lh_loop_now(cc->cl->loop); }

void lh_cconn_continue_after(lh_cconn_t *cc, double sec) {
  cc->cont_deadline = lh_loop_now(cc->cl->loop) + (sec > 0.001 ? sec : 0.001);
  cc_arm(cc);
}

const char *lh_cconn_why(lh_cconn_t *cc) { return cc->why; }

/* --- transport --- */

lh_cconn_t *lh_cconn_from_disp(lh_disp_t *d) {
  return (lh_cconn_t *)((char *)d - offsetof(lh_cconn_t, disp));
}
lh_disp_t *lh_cconn_disp(lh_cconn_t *cc) { return &cc->disp; }
lh_tls_t *lh_cconn_tls(lh_cconn_t *cc) { return cc->tls; }
void *lh_cconn_udata(lh_cconn_t *cc) { return cc->udata; }

int lh_cconn_local_port(lh_cconn_t *cc) {
  union {
    struct sockaddr sa;
    struct sockaddr_in in4;
    struct sockaddr_in6 in6;
    struct sockaddr_storage ss;
  } a;
  int len = sizeof a;
  if (cc->local_port || !cc->connected || cc->closing) return cc->local_port;
  if (uv_tcp_getsockname(&cc->tcp, &a.sa, &len)) return 0;
  cc->local_port = ntohs(a.sa.sa_family == AF_INET6 ? a.in6.sin6_port : a.in4.sin_port);
  return cc->local_port;
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  lh_cconn_t *cc = (lh_cconn_t *)h;
  char *p = NULL;
  long n = lh_conn_read_space(&cc->disp.conn, &p);
  *buf = uv_buf_init(n > 0 ? p : NULL, n > 0 ? (unsigned)n : 0);
}

/* The start read_cb and tls_read_cb share: 1 when nread is data, the end
 * of the stream or an error, for the caller to take (last_read stamped);
 * 0 when it is all done here: nothing read, the connection closing, or the
 * buffer (plain or ciphertext) at its bound, reading stopped until the
 * dispatcher consumes it. */
static inline int cc_read_begin(lh_cconn_t *cc, ssize_t nread) {
  if (nread == 0 || cc->closing) return 0;
  if (nread == UV_ENOBUFS) {
    uv_read_stop((uv_stream_t *)&cc->tcp);
    lh_disp_read_stopped(&cc->disp);
    cc_poll(cc);
    return 0;
  }
  cc->last_read = lh_loop_now(cc->cl->loop);
  return 1;
}

static void read_cb(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf) {
  lh_cconn_t *cc = (lh_cconn_t *)st;
  if (!cc_read_begin(cc, nread)) return;
  if (nread > 0) {
    lh_conn_read_commit(&cc->disp.conn, (size_t)nread);
    lh_disp_read_done(&cc->disp, (long)nread);
  } else {
    lh_disp_read_done(&cc->disp, nread == UV_EOF ? 0 : (long)nread);
  }
  cc_after(cc);
}

static void write_cb(uv_write_t *req, int status) {
  lh_cconn_t *cc = req->data;
  cc->writing = 0;
  if (cc->closing) return;
  lh_disp_write_done(&cc->disp, status);
  cc_after(cc);
}

static int io_flush(lh_disp_t *d) {
  lh_cconn_t *cc = lh_cconn_from_disp(d);
  /* bytes queued while connecting go out once connected */
  if (!cc->connected || cc->writing || cc->closing) return 0;
  lh_wq_t *q = lh_disp_out(d);
  const char *p;
  size_t n = lh_wq_peek(q, &p);
  if (n == 0) return 0;
  uv_buf_t b = uv_buf_init((char *)p, (unsigned)n);
  int r = uv_try_write((uv_stream_t *)&cc->tcp, &b, 1);
  if (r == (int)n) {
    lh_wq_consume(q, n);
    return 0;
  }
  if (r < 0 && r != UV_EAGAIN) return r;
  if (r > 0) lh_wq_consume(q, (size_t)r);
  n = lh_wq_peek(q, &p);
  b = uv_buf_init((char *)p, (unsigned)n);
  lh_wq_begin_flight(q);
  cc->wreq.data = cc;
  r = uv_write(&cc->wreq, (uv_stream_t *)&cc->tcp, &b, 1, write_cb);
  if (r < 0) {
    lh_wq_end_flight(q);
    return r;
  }
  cc->writing = 1;
  return 0;
}

static void io_read_start(lh_disp_t *d) {
  lh_cconn_t *cc = lh_cconn_from_disp(d);
  if (!cc->connected || cc->closing ||
      uv_read_start((uv_stream_t *)&cc->tcp, alloc_cb, read_cb))
    lh_disp_read_stopped(d); /* asked again once connected */
}

static void io_read_stop(lh_disp_t *d) {
  lh_cconn_t *cc = lh_cconn_from_disp(d);
  if (cc->connected && !cc->closing) uv_read_stop((uv_stream_t *)&cc->tcp);
}

static void io_close(lh_disp_t *d) { cc_close(lh_cconn_from_disp(d)); }

static void defer_cb(lh_defer_t *df) {
  lh_cconn_t *cc = (lh_cconn_t *)((char *)df - offsetof(lh_cconn_t, defer));
  lh_disp_defer_done(&cc->disp);
  cc_poll(cc);
}

static void io_defer(lh_disp_t *d) {
  lh_cconn_t *cc = lh_cconn_from_disp(d);
  lh_loop_defer(cc->cl->loop, &cc->defer);
}

static const lh_io_t cconn_io = {
  .read_start = io_read_start,
  .read_stop = io_read_stop,
  .flush = io_flush,
  .close = io_close,
  .defer = io_defer,
};

/* --- TLS transport (https): ciphertext through lh_tls_t (tls.h) under
 * the dispatcher, as for server connections (sconn.c); its own libuv
 * callbacks and lh_io_t. The handshake starts once connected; requests
 * queued before it is done go out after. --- */

static void tls_write_cb(uv_write_t *req, int status);

/* encrypts the queued request bytes and sends the ciphertext: what the
 * kernel takes now, the rest with one uv_write. 0 or a negative code */
static int tls_flush(lh_cconn_t *cc) {
  if (!cc->connected || cc->writing || cc->closing) return 0;
  lh_wq_t *q = lh_tls_out(cc->tls);
  const char *p;
  size_t n;
  uv_buf_t b;
  /* an upgraded stream (WebSocket) never goes back to the pool to be trimmed */
  if (cc->disp.raw) lh_tls_lean(cc->tls);
  for (;;) {
    int e = lh_tls_send(cc->tls, lh_disp_out(&cc->disp));
    if (e < 0) return e;
    n = lh_wq_peek(q, &p);
    if (n == 0) return 0;
    b = uv_buf_init((char *)p, (unsigned)n);
    int r = uv_try_write((uv_stream_t *)&cc->tcp, &b, 1);
    if (r < 0 && r != UV_EAGAIN) return r;
    if (r > 0) lh_wq_consume(q, (size_t)r);
    if (r != (int)n) break;
  }
  n = lh_wq_peek(q, &p);
  b = uv_buf_init((char *)p, (unsigned)n);
  lh_wq_begin_flight(q);
  cc->wreq.data = cc;
  int r = uv_write(&cc->wreq, (uv_stream_t *)&cc->tcp, &b, 1, tls_write_cb);
  if (r < 0) {
    lh_wq_end_flight(q);
    return r;
  }
  cc->writing = 1;
  return 0;
}

static void tls_write_cb(uv_write_t *req, int status) {
  lh_cconn_t *cc = req->data;
  cc->writing = 0;
  if (cc->closing) return;
  lh_wq_end_flight(lh_tls_out(cc->tls));
  if (status >= 0) status = tls_flush(cc);
  if (status < 0) {
    cc_fail(cc, status, NULL);
    return;
  }
  cc_poll(cc); /* a writer may wait for the room made */
}

/* hands decrypted bytes to the dispatcher and what OpenSSL has for the
 * server (handshake, alerts) to the socket */
static void tls_pump(lh_cconn_t *cc) {
  lh_disp_t *d = &cc->disp;
  size_t n, queued = lh_wq_pending(lh_disp_out(d));
  if (d->raw) lh_tls_lean(cc->tls); /* see tls_flush */
  int r = lh_tls_recv(cc->tls, &d->conn, &n);
  int w = tls_flush(cc); /* once the handshake is done, what waited goes too */
  if (r < 0 || w < 0) {
    cc_fail(cc, r < 0 ? r : w, r < 0 ? lh_tls_why(cc->tls) : NULL);
    return;
  }
  if (cc->connect_deadline && lh_tls_is_done(cc->tls)) {
    cc->connect_deadline = 0; /* connect_timeout covered the handshake */
    cc_arm(cc);
  }
  if (r == 2) {
    /* the read buffer is full: the socket waits until the dispatcher asks again */
    uv_read_stop((uv_stream_t *)&cc->tcp);
    lh_disp_read_stopped(d);
  }
  if (r == 1) lh_disp_read_done(d, 0); /* with what came before close_notify */
  else if (n > 0) lh_disp_read_done(d, (long)n);
  /* a writer may wait for the room the flush made */
  else if (lh_wq_pending(lh_disp_out(d)) < queued) lh_disp_poll(d);
  cc_after(cc);
}

static void tls_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)suggested;
  lh_cconn_t *cc = (lh_cconn_t *)h;
  char *p = NULL;
  long n = lh_tls_in_space(cc->tls, &p);
  *buf = uv_buf_init(n > 0 ? p : NULL, n > 0 ? (unsigned)n : 0);
}

static void tls_read_cb(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf) {
  (void)buf;
  lh_cconn_t *cc = (lh_cconn_t *)st;
  if (!cc_read_begin(cc, nread)) return;
  if (nread > 0) {
    lh_tls_in_commit(cc->tls, (size_t)nread);
  } else if (nread == UV_EOF) {
    lh_tls_in_eof(cc->tls);
  } else {
    lh_disp_read_done(&cc->disp, (long)nread);
    cc_after(cc);
    return;
  }
  tls_pump(cc);
}

static void tls_defer_cb(lh_defer_t *df) {
  lh_cconn_t *cc = (lh_cconn_t *)((char *)df - offsetof(lh_cconn_t, defer));
  lh_disp_defer_done(&cc->disp);
  if (!cc->closing && cc->connected && lh_disp_is_reading(&cc->disp) && lh_tls_pending(cc->tls))
    tls_pump(cc);
  cc_poll(cc);
}

static void tls_io_read_start(lh_disp_t *d) {
  lh_cconn_t *cc = lh_cconn_from_disp(d);
  if (!cc->connected || cc->closing ||
      uv_read_start((uv_stream_t *)&cc->tcp, tls_alloc_cb, tls_read_cb))
    lh_disp_read_stopped(d); /* asked again once connected */
  /* what stopped at a full read buffer goes on without new bytes */
  else if (lh_tls_pending(cc->tls)) lh_loop_defer(cc->cl->loop, &cc->defer);
}

static int tls_io_flush(lh_disp_t *d) { return tls_flush(lh_cconn_from_disp(d)); }

static const lh_io_t cconn_tls_io = {
  .read_start = tls_io_read_start,
  .read_stop = io_read_stop,
  .flush = tls_io_flush,
  .close = io_close,
  .defer = io_defer,
};

void lh_cconn_kick(lh_cconn_t *cc) {
  if (cc->closing) return;
  lh_disp_kick(&cc->disp);
}

void lh_cconn_release(lh_cconn_t *cc) {
  cc->udata = NULL;
  cc->deadline = cc->read_idle = cc->cont_deadline = 0;
  if (cc->closing) return;
  if (!cc->connected) {
    /* still connecting for an exchange that is gone */
    lh_disp_abort(&cc->disp, LH_ECANCELED);
    cc_close(cc);
    return;
  }
  if (lh_disp_is_polling(&cc->disp)) {
    /* inside this connection's own poll (the exchange's task runs from one
     * of its callbacks): when both messages are done it is idle now, so the
     * task's next request can take it; else the poll under way ends with
     * cc_after */
    if (lh_disp_keep_alive(&cc->disp)) pool_put(cc);
    lh_disp_kick(&cc->disp);
    return;
  }
  cc_poll(cc);
}

/* --- connect --- */

static void connect_next(lh_cconn_t *cc);

static void connect_cb(uv_connect_t *req, int status) {
  lh_cconn_t *cc = req->data;
  if (status == UV_ECANCELED || cc->closing || teardown(cc->cl)) return;
  if (status < 0) {
    cc->last_err = status;
    if (cc->ai_next) {
      /* RFC 8305 in its simplest form: the next address, one at a time */
      connect_next(cc);
      return;
    }
    cc_fail(cc, status, NULL);
    return;
  }
  cc->connected = 1;
  if (!cc->tls) cc->connect_deadline = 0; /* https: once the handshake is done */
  if (cc->ai) {
    uv_freeaddrinfo(cc->ai);
    cc->ai = cc->ai_next = NULL;
  }
  cc->last_read = lh_loop_now(cc->cl->loop);
  cc_arm(cc);
  if (cc->tls) tls_pump(cc); /* the client hello */
  cc_poll(cc);
}

static int cc_connect(lh_cconn_t *cc, const struct sockaddr *sa) {
  int r = uv_tcp_init(&cc->cl->loop->uv, &cc->tcp);
  if (r) return r;
  cc->tcp.data = (void *)tcp_close_cb; /* how lh_loop_free closes it */
  cc->tcp_open = 1;
  cc->refs++;
  uv_tcp_nodelay(&cc->tcp, 1);
  cc->creq.data = cc;
  return uv_tcp_connect(&cc->creq, &cc->tcp, sa, connect_cb);
}

static void retry_close_cb(uv_handle_t *h) {
  lh_cconn_t *cc = (lh_cconn_t *)h;
  cc->tcp_open = 0;
  if (cc->closing || teardown(cc->cl)) {
    cc_unref(cc);
    return;
  }
  cc->refs--; /* the timer still holds one */
  connect_next(cc);
}

/* tries the next resolved address; a handle that failed is closed first */
static void connect_next(lh_cconn_t *cc) {
  if (cc->tcp_open) {
    uv_close((uv_handle_t *)&cc->tcp, retry_close_cb);
    return;
  }
  struct addrinfo *a = cc->ai_next;
  if (!a) {
    cc_fail(cc, cc->last_err ? cc->last_err : UV_EAI_NONAME, NULL);
    return;
  }
  cc->ai_next = a->ai_next;
  int r = cc_connect(cc, a->ai_addr);
  if (r) {
    cc->last_err = r;
    connect_next(cc);
  }
}

static void gai_cb(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
  lh_cconn_t *cc = req->data;
  cc->resolving = 0;
  if (status < 0 || cc->closing || teardown(cc->cl)) {
    if (res) uv_freeaddrinfo(res);
    if (status < 0 && status != UV_ECANCELED && !cc->closing && !teardown(cc->cl))
      cc_fail(cc, status, NULL);
    cc_unref(cc);
    return;
  }
  cc->ai = cc->ai_next = res;
  connect_next(cc);
  cc_unref(cc);
}

int lh_client_checkout(lh_client_t *cl, const char *host, int port, const lh_client_tls_t *tls,
                       double connect_timeout, void *udata, lh_cconn_t **out, int *reused) {
  if (cl->closing) return LH_ECLOSED;
  if (tls && (!tls->ctx || lh_tls_ctx_role(tls->ctx) != LH_ROLE_CLIENT)) return LH_ETLS_CONFIG;
  lh_host_t *h = host_get(cl, host, port, tls);
  if (!h) return UV_ENOMEM;
  while (h->idle) {
    lh_cconn_t *cc = h->idle;
    pool_remove(cc);
    if (!cc_alive(cc)) {
      cc_close(cc);
      continue;
    }
    uv_timer_stop(&cc->timer);
    cc->udata = udata;
    cc->why = NULL;
    *out = cc;
    *reused = 1;
    return 0;
  }
  lh_cconn_t *cc = calloc(1, sizeof *cc);
  if (!cc) return UV_ENOMEM;
  cc->cl = cl;
  cc->host = h;
  cc->defer.cb = defer_cb;
  cc->gai.data = cc;
  if (h->tls) {
    /* sessions are kept per host, port and name for resumption */
    char key[300];
    snprintf(key, sizeof key, "%s:%d/%s", h->name, port, h->sni);
    if (lh_tls_new(h->tls, h->sni, key, &cc->tls)) {
      free(cc);
      return UV_ENOMEM;
    }
    cc->defer.cb = tls_defer_cb;
  }
  lh_disp_init(&cc->disp, LH_ROLE_CLIENT, &cl->opts.conn, cl->hooks.svc,
               cc->tls ? &cconn_tls_io : &cconn_io, cl->data);
  uv_timer_init(&cl->loop->uv, &cc->timer);
  cc->timer.data = (void *)timer_close_cb; /* how lh_loop_free closes it */
  cc->refs = 1;
  cl->nconns++;
  union {
    struct sockaddr sa;
    struct sockaddr_in in4;
    struct sockaddr_in6 in6;
  } a;
  int r;
  if (uv_ip4_addr(host, port, &a.in4) == 0 || uv_ip6_addr(host, port, &a.in6) == 0) {
    r = cc_connect(cc, &a.sa);
  } else {
    char ps[8];
    snprintf(ps, sizeof ps, "%d", port);
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    r = uv_getaddrinfo(&cl->loop->uv, &cc->gai, gai_cb, host, ps, &hints);
    if (!r) {
      cc->resolving = 1;
      cc->refs++;
    }
  }
  if (r) {
    cc_close(cc);
    return r;
  }
  cc->udata = udata;
  if (connect_timeout > 0) {
    cc->connect_deadline = lh_loop_now(cl->loop) + connect_timeout;
    cc_arm(cc);
  }
  *out = cc;
  *reused = 0;
  return 0;
}
