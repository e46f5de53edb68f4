/* Listener, accept, max_connections, per-server deadline lists (header read,
 * idle, lingering close) and graceful close. */
#define _GNU_SOURCE /* accept4 */
#include "io_int.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* --- deadlines (deadline.h): one uv_timer per server for all its lists --- */

static void accept_restart(lh_server_t *s);

#define SC_OF_NODE(n) ((lh_sconn_t *)((char *)(n) - offsetof(lh_sconn_t, dnode)))

void lh_server_arm(lh_server_t *s) {
  if (s->timer_closed || uv_is_closing((uv_handle_t *)&s->timer)) return;
  double next = lh_dl_next(&s->dl);
  if (s->grace_deadline && (next == 0 || s->grace_deadline < next)) next = s->grace_deadline;
  if (s->accept_resume && (next == 0 || s->accept_resume < next)) next = s->accept_resume;
  if (next == 0) {
    uv_timer_stop(&s->timer);
    return;
  }
  double now = lh_loop_now(s->loop);
  uint64_t ms = next > now ? (uint64_t)((next - now) * 1000.0 + 0.999) : 0;
  if (uv_is_active((uv_handle_t *)&s->timer) && uv_timer_get_due_in(&s->timer) <= ms) return;
  uv_timer_start(&s->timer, lh_server_timer_cb, ms, 0);
}

/* kind NONE takes the connection off its list; others are due `after`
 * seconds from now */
void lh_sconn_deadline(lh_sconn_t *sc, int kind, double after) {
  lh_server_t *s = sc->srv;
  if (kind == LH_DL_NONE) {
    lh_dl_remove(&s->dl, &sc->dnode);
    return;
  }
  lh_dl_append(&s->dl, &sc->dnode, kind, lh_loop_now(s->loop) + after);
  /* a list's entries share one timeout, so one put behind others is not
   * due before them, and the timer is already set for the head */
  if (!sc->dnode.prev) lh_server_arm(s);
}

void lh_sconn_timer_update(lh_sconn_t *sc) {
  if (sc->closing) return;
  lh_server_t *s = sc->srv;
  if (!sc->d) return; /* asleep: already on the idle list */
  lh_conn_t *c = &sc->d->conn;
  int state = lh_disp_timer_kind(sc->d);
  double t = state == LH_DL_HEAD ? s->opts.header_read_timeout
           : state == LH_DL_IDLE ? s->opts.idle_timeout : 0;
  int kind = t > 0 ? state : LH_DL_NONE;
  if (lh_conn_can_read_head(c) && lh_conn_buffered(c) == 0) {
    /* between messages: hold no buffers */
    lh_rbuf_trim(&c->rbuf, 0);
    lh_wq_trim(&c->wq, 0);
    lh_parser_trim(&c->parser);
  }
  /* a head keeps the deadline it got when it began (slowloris); an idle
   * spell starts anew after each response, even when the whole exchange
   * happened between two updates */
  if (!(kind == sc->dnode.kind && sc->armed_served == sc->d->served)) {
    sc->armed_served = sc->d->served;
    lh_sconn_deadline(sc, kind, t);
  }
  lh_sconn_doze(sc, state == LH_DL_IDLE);
}

void lh_server_timer_cb(uv_timer_t *t) {
  lh_server_t *s = (lh_server_t *)((char *)t - offsetof(lh_server_t, timer));
  if (s->loop->closing || s->timer_closed) return;
  double now = lh_loop_now(s->loop) + 0.0005;
  lh_dnode_t *n;
  int kind;
  while ((n = lh_dl_pop_due(&s->dl, now, &kind))) {
    lh_sconn_t *sc = SC_OF_NODE(n);
    if (kind == LH_DL_LINGER || !sc->d) lh_sconn_close_now(sc);
    else {
      lh_disp_timeout(sc->d, kind);
      lh_sconn_timer_update(sc);
    }
  }
  if (s->accept_resume && s->accept_resume <= now) accept_restart(s);
  if (s->grace_deadline && s->grace_deadline <= now) {
    s->grace_deadline = 0;
    for (lh_sconn_t *sc = s->conns, *next; sc; sc = next) {
      next = sc->next;
      if (sc->closing || !sc->d) {
        lh_sconn_close_now(sc);
        continue;
      }
      sc->no_linger = 1;
      lh_disp_abort(sc->d, LH_ECANCELED);
      lh_sconn_poll(sc);
    }
  }
  lh_server_arm(s);
}

/* --- accept ---
 * The listener is a uv_poll on a socket of our own rather than uv_listen:
 * libuv's accept loop runs accept4 until EAGAIN, and with clients arriving
 * one at a time that failing accept4 comes with nearly every connection
 * (it also takes the listen socket's lock that the handshakes on the other
 * core need). Here each readiness report accepts one connection, as nginx
 * does; the poll is level-triggered, so a backlog is taken one per loop turn. */

static void server_maybe_done(lh_server_t *s);
static void timer_close_cb(uv_handle_t *h);
static void accept_ready(uv_poll_t *p, int status, int events);

/* stop taking connections; after > 0: try again that many seconds on.
 * The poll stays active, watching for POLLPRI, which a listening socket
 * never reports: a stopped handle would let lhyper.run() return while the
 * server is open if nothing else kept the loop alive (every connection
 * parked, say, at max_connections) */
static void accept_pause(lh_server_t *s, double after) {
  if (!s->accept_paused) {
    s->accept_paused = 1;
    if (uv_poll_start(&s->poll, UV_PRIORITIZED, accept_ready)) uv_poll_stop(&s->poll);
  }
  if (after > 0) {
    s->accept_resume = lh_loop_now(s->loop) + after;
    lh_server_arm(s);
  }
}

static void accept_restart(lh_server_t *s) {
  s->accept_resume = 0;
  if (!s->accept_paused || s->closing || s->loop->closing ||
      uv_is_closing((uv_handle_t *)&s->poll))
    return;
  s->accept_paused = 0;
  if (uv_poll_start(&s->poll, UV_READABLE, accept_ready)) accept_pause(s, 0.1);
}

/* New descriptors are close-on-exec and non-blocking from the start where
 * the system takes flags at creation; elsewhere fd_setup sets them after.
 * An accepted socket needs no O_NONBLOCK of ours: uv_tcp_open sets it. */
#if defined(SOCK_NONBLOCK) && defined(SOCK_CLOEXEC)
#define NEW_FD_FLAGS (SOCK_NONBLOCK | SOCK_CLOEXEC)
#define accept_fd(l) accept4(l, NULL, NULL, NEW_FD_FLAGS)
#define fd_setup(fd, nonblock) (fd)
#else
#define NEW_FD_FLAGS 0
#define accept_fd(l) accept(l, NULL, NULL)
/* fd with the flags, or -1 with errno set (fd closed) */
static int fd_setup(int fd, int nonblock) {
  if (fd < 0) return fd;
  int fl = fcntl(fd, F_GETFD);
  int bad = fl < 0 || fcntl(fd, F_SETFD, fl | FD_CLOEXEC) < 0;
  if (!bad && nonblock) {
    fl = fcntl(fd, F_GETFL);
    bad = fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0;
  }
  if (!bad) return fd;
  int e = errno;
  close(fd);
  errno = e;
  return -1;
}
#endif

static void accept_one(lh_server_t *s) {
  int fd = fd_setup(accept_fd(s->fd), 0);
  if (fd < 0) {
    switch (errno) {
      /* nothing waits, or (Linux) an error already pending on the new
       * connection: that one is gone, the next report brings any other */
      case EAGAIN:
#if EWOULDBLOCK != EAGAIN
      case EWOULDBLOCK:
#endif
      case EINTR: case ECONNABORTED: case EPROTO: case ENETDOWN: case ENOPROTOOPT:
      case EHOSTDOWN: case EHOSTUNREACH: case EOPNOTSUPP: case ENETUNREACH:
#ifdef ENONET
      case ENONET:
#endif
      /* (Linux) a firewall rule refused this one */
      case EPERM:
        return;
      default:
        /* out of descriptors or memory (EMFILE, ENFILE, ENOBUFS, ENOMEM):
         * the connection stays in the backlog; a level-triggered poll
         * would report it again at once, so look again in 100 ms */
        accept_pause(s, 0.1);
        return;
    }
  }
  lh_sconn_t *sc = calloc(1, sizeof *sc);
  if (!sc) {
    close(fd);
    accept_pause(s, 0.1);
    return;
  }
  uv_tcp_init(&s->loop->uv, &sc->tcp);
  if (uv_tcp_open(&sc->tcp, fd)) {
    close(fd); /* the handle did not take it */
    uv_close((uv_handle_t *)&sc->tcp, (uv_close_cb)free);
    return;
  }
  sc->next = s->conns;
  if (s->conns) s->conns->prev = sc;
  s->conns = sc;
  s->nconns++;
  lh_sconn_start(s, sc);
}

static void accept_ready(uv_poll_t *p, int status, int events) {
  lh_server_t *s = (lh_server_t *)p;
  if (s->closing || (status == 0 && !(events & UV_READABLE))) return;
  if (status < 0) {
    /* an error on the listening socket itself: do not spin on it */
    accept_pause(s, 0.1);
    return;
  }
  if (s->opts.max_connections && s->nconns >= s->opts.max_connections) {
    /* leave it in the backlog, unread, until a connection goes */
    s->accept_pending = 1;
    accept_pause(s, 0);
    return;
  }
  accept_one(s);
}

void lh_server_conn_gone(lh_server_t *s, lh_sconn_t *sc) {
  if (sc->prev) sc->prev->next = sc->next;
  else s->conns = sc->next;
  if (sc->next) sc->next->prev = sc->prev;
  s->nconns--;
  if (s->accept_pending && !s->closing && !s->loop->closing) {
    s->accept_pending = 0;
    accept_restart(s);
  }
  server_maybe_done(s);
}

/* the server's memory goes when its two handles are closed and no
 * connection points at it any more, whichever comes last (teardown closes
 * them in any order) */
static void server_try_free(lh_server_t *s) {
  if (s->listener_closed && s->timer_closed && s->nconns == 0) free(s);
}

static void timer_close_cb(uv_handle_t *h) {
  lh_server_t *s = (lh_server_t *)((char *)h - offsetof(lh_server_t, timer));
  s->timer_closed = 1;
  server_try_free(s);
}

static void server_maybe_done(lh_server_t *s) {
  if (s->loop->closing) {
    server_try_free(s); /* lh_loop_free's walk closes the handles */
    return;
  }
  if (!s->closing || s->nconns || !s->listener_closed || s->done) return;
  s->done = 1;
  if (s->hooks.server_done) s->hooks.server_done(s);
  if (!uv_is_closing((uv_handle_t *)&s->timer)) uv_close((uv_handle_t *)&s->timer, timer_close_cb);
}

static void listener_close_cb(uv_handle_t *h) {
  lh_server_t *s = (lh_server_t *)h;
  if (s->fd >= 0) close(s->fd);
  s->fd = -1;
  s->listener_closed = 1;
  server_maybe_done(s);
}

/* a non-blocking listening socket bound to addr; -errno on failure */
static int listen_socket(const struct sockaddr *sa, socklen_t salen, const lh_server_opts_t *o) {
  int fd = fd_setup(socket(sa->sa_family, SOCK_STREAM | NEW_FD_FLAGS, 0), 1);
  if (fd < 0) return -errno;
  int one = 1, zero = 0;
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
      /* "::" takes IPv4 clients too, whatever the system default */
      (sa->sa_family == AF_INET6 &&
       setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero) != 0) ||
      (o->reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) ||
      bind(fd, sa, salen) != 0 || listen(fd, o->backlog > 0 ? o->backlog : 511) != 0) {
    int e = -errno;
    close(fd);
    return e;
  }
  return fd;
}

int lh_server_listen(lh_loop_t *l, const char *host, int port, const lh_server_opts_t *o,
                     const lh_server_hooks_t *hooks, void *data, lh_server_t **out) {
  union {
    struct sockaddr sa;
    struct sockaddr_in in4;
    struct sockaddr_in6 in6;
    struct sockaddr_storage ss;
  } addr;
  int r;
  if (strchr(host, ':')) r = uv_ip6_addr(host, port, &addr.in6);
  else r = uv_ip4_addr(host, port, &addr.in4);
  if (r) return r;
  socklen_t alen = addr.sa.sa_family == AF_INET6 ? sizeof addr.in6 : sizeof addr.in4;
  int fd = listen_socket(&addr.sa, alen, o);
  if (fd < 0) return fd;
  alen = sizeof addr;
  lh_server_t *s = NULL;
  if (getsockname(fd, &addr.sa, &alen) != 0) r = -errno;
  else if (!(s = calloc(1, sizeof *s))) r = UV_ENOMEM;
  if (r) {
    close(fd);
    return r;
  }
  s->port = ntohs(addr.sa.sa_family == AF_INET6 ? addr.in6.sin6_port : addr.in4.sin_port);
  s->loop = l;
  s->fd = fd;
  s->opts = *o;
  s->hooks = *hooks;
  s->data = data;
  r = uv_poll_init_socket(&l->uv, &s->poll, fd);
  if (r) {
    close(fd);
    free(s);
    return r;
  }
  uv_timer_init(&l->uv, &s->timer);
  s->poll.data = (void *)listener_close_cb; /* how lh_loop_free closes them */
  s->timer.data = (void *)timer_close_cb;
  r = uv_poll_start(&s->poll, UV_READABLE, accept_ready);
  if (r) {
    s->closing = 1;
    s->done = 1;
    uv_close((uv_handle_t *)&s->poll, listener_close_cb);
    uv_close((uv_handle_t *)&s->timer, timer_close_cb);
    return r;
  }
  *out = s;
  return 0;
}

int lh_server_port(const lh_server_t *s) { return s->port; }
void *lh_server_data(const lh_server_t *s) { return s->data; }
uint32_t lh_server_connections(const lh_server_t *s) { return s->nconns; }

void lh_server_close(lh_server_t *s, double grace) {
  if (s->closing) return;
  s->closing = 1;
  if (!uv_is_closing((uv_handle_t *)&s->poll)) uv_close((uv_handle_t *)&s->poll, listener_close_cb);
  double now = lh_loop_now(s->loop);
  for (lh_sconn_t *sc = s->conns, *next; sc; sc = next) {
    next = sc->next;
    if (sc->closing) continue;
    if (!sc->d) {
      lh_sconn_close_now(sc); /* asleep: idle */
      continue;
    }
    lh_conn_t *c = &sc->d->conn;
    lh_conn_disable_keep_alive(c);
    if (lh_conn_can_read_head(c) && lh_conn_buffered(c) == 0) {
      if (sc->d->served == 0) {
        /* opened but silent: a short window for a request already on its way */
        lh_sconn_deadline(sc, LH_DL_GRACE, grace < 1.0 && grace >= 0 ? grace : 1.0);
        continue;
      }
      lh_conn_close(c);
    }
    lh_sconn_poll(sc);
  }
  if (grace >= 0) s->grace_deadline = now + grace;
  lh_server_arm(s);
}
