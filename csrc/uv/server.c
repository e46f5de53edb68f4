/* A server: its listener (accept, max_connections, pauses after errors),
 * the one timer for its connections' deadlines, graceful close, and the
 * end of it all (server_done). Its connections are sconn.c's. */
#define _GNU_SOURCE /* accept4 */
#include "server.h"

#include <errno.h>
#include <fcntl.h>
#ifdef __linux__
#include <linux/filter.h>
#endif
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sconn.h"
#include "uvloop.h"

struct lh_server {
  uv_poll_t poll;          /* first: the listening socket is readable (a connection waits) */
  int fd;                  /* the listening socket; closed in the poll handle's close callback */
  lh_sconn_set_t set;      /* its connections */
  int port;
  uv_timer_t timer;        /* earliest of the connections' deadlines, grace and accept_resume */
  double grace_deadline;   /* when closing: force-close time, 0 none */
  double accept_resume;    /* accepting paused after an error: when to try again, 0 none */
  double listener_close_at;/* draining: when the listener closes (or stops taking SYNs), 0 none */
  unsigned closing : 1;    /* the listener is closed or closing: no more accepts */
  unsigned close_called : 1; /* lh_server_close ran */
  unsigned held : 1;       /* lh_server_hold: the listener is not polled at all */
  unsigned handover : 1;   /* draining, and the socket lives on in another process */
  unsigned syn_blocked : 1;/* draining: new handshakes are refused, those begun complete */
  unsigned accept_pending : 1; /* a connection waits in the backlog (max_connections) */
  unsigned accept_paused : 1;  /* the listener is not polled (max_connections, or an error) */
  unsigned listener_closed : 1;
  unsigned timer_closed : 1;
  unsigned done : 1;
};

#define SERVER_OF_SET(x) ((lh_server_t *)((char *)(x) - offsetof(lh_server_t, set)))

/* --- the timer: one uv_timer per server for all its deadlines --- */

static void accept_restart(lh_server_t *s);
static void listener_stop(lh_server_t *s);
static void listener_end(lh_server_t *s);
static void timer_cb(uv_timer_t *t);

static void server_arm(lh_server_t *s) {
  if (s->timer_closed || uv_is_closing((uv_handle_t *)&s->timer)) return;
  double next = lh_dl_next(&s->set.dl);
  if (s->grace_deadline && (next == 0 || s->grace_deadline < next)) next = s->grace_deadline;
  if (s->accept_resume && (next == 0 || s->accept_resume < next)) next = s->accept_resume;
  if (s->listener_close_at && (next == 0 || s->listener_close_at < next)) next = s->listener_close_at;
  if (next == 0) {
    uv_timer_stop(&s->timer);
    return;
  }
  double now = lh_loop_now(s->set.loop);
  uint64_t ms = lh_ms(next - now, 1); /* 0 when it is due */
  if (uv_is_active((uv_handle_t *)&s->timer) && uv_timer_get_due_in(&s->timer) <= ms) return;
  uv_timer_start(&s->timer, timer_cb, ms, 0);
}

static void set_arm(lh_sconn_set_t *set) { server_arm(SERVER_OF_SET(set)); }

static void timer_cb(uv_timer_t *t) {
  lh_server_t *s = (lh_server_t *)((char *)t - offsetof(lh_server_t, timer));
  if (s->set.loop->closing || s->timer_closed) return;
  double now = lh_loop_now(s->set.loop) + 0.0005;
  lh_sconn_set_expire(&s->set, now);
  if (s->accept_resume && s->accept_resume <= now) accept_restart(s);
  if (s->listener_close_at && s->listener_close_at <= now) {
    s->listener_close_at = 0;
    listener_end(s);
  }
  if (s->grace_deadline && s->grace_deadline <= now) {
    s->grace_deadline = 0;
    lh_sconn_set_abort(&s->set);
  }
  server_arm(s);
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
  if (!s->accept_paused && !s->held) {
    s->accept_paused = 1;
    if (uv_poll_start(&s->poll, UV_PRIORITIZED, accept_ready)) uv_poll_stop(&s->poll);
  }
  if (after > 0) {
    s->accept_resume = lh_loop_now(s->set.loop) + after;
    server_arm(s);
  }
}

static void accept_restart(lh_server_t *s) {
  s->accept_resume = 0;
  if (!s->accept_paused || s->closing || s->held || s->set.loop->closing ||
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
  if (lh_sconn_accept(&s->set, fd) == LH_ENOMEM) accept_pause(s, 0.1);
}

static void accept_ready(uv_poll_t *p, int status, int events) {
  lh_server_t *s = (lh_server_t *)p;
  if (s->closing || (status == 0 && !(events & UV_READABLE))) return;
  if (status < 0) {
    /* an error on the listening socket itself: do not spin on it */
    accept_pause(s, 0.1);
    return;
  }
  if (s->set.opts.max_connections && s->set.nconns >= s->set.opts.max_connections) {
    /* leave it in the backlog, unread, until a connection goes */
    s->accept_pending = 1;
    accept_pause(s, 0);
    return;
  }
  accept_one(s);
}

/* a connection was freed */
static void set_gone(lh_sconn_set_t *set) {
  lh_server_t *s = SERVER_OF_SET(set);
  if (s->accept_pending && !s->closing && !s->set.loop->closing) {
    s->accept_pending = 0;
    accept_restart(s);
  }
  server_maybe_done(s);
}

/* the server's memory goes when its two handles are closed and no
 * connection points at it any more, whichever comes last (teardown closes
 * them in any order) */
static void server_try_free(lh_server_t *s) {
  if (!s->listener_closed || !s->timer_closed || s->set.nconns) return;
  if (s->set.tls) lh_tls_ctx_unref(s->set.tls);
  free(s);
}

static void timer_close_cb(uv_handle_t *h) {
  lh_server_t *s = (lh_server_t *)((char *)h - offsetof(lh_server_t, timer));
  s->timer_closed = 1;
  server_try_free(s);
}

static void server_maybe_done(lh_server_t *s) {
  if (s->set.loop->closing) {
    server_try_free(s); /* lh_loop_free's walk closes the handles */
    return;
  }
  if (!s->closing || s->set.nconns || !s->listener_closed || s->done) return;
  s->done = 1;
  if (s->set.hooks.server_done) s->set.hooks.server_done(s);
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
static int listen_socket(const struct sockaddr *sa, socklen_t salen, int reuseport, int backlog) {
  int fd = fd_setup(socket(sa->sa_family, SOCK_STREAM | NEW_FD_FLAGS, 0), 1);
  if (fd < 0) return -errno;
  int one = 1, zero = 0;
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
      /* "::" takes IPv4 clients too, whatever the system default */
      (sa->sa_family == AF_INET6 &&
       setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero) != 0) ||
      (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) ||
      bind(fd, sa, salen) != 0 || listen(fd, backlog > 0 ? backlog : 511) != 0) {
    int e = -errno;
    close(fd);
    return e;
  }
  return fd;
}

typedef union {
  struct sockaddr sa;
  struct sockaddr_in in4;
  struct sockaddr_in6 in6;
  struct sockaddr_storage ss;
} server_addr;

/* a server over the listening socket fd, which it owns from here on (closed
 * on failure too) */
static int server_start(lh_loop_t *l, int fd, const lh_server_opts_t *o,
                        const lh_server_hooks_t *hooks, void *data, lh_server_t **out) {
  server_addr addr;
  socklen_t alen = sizeof addr;
  lh_server_t *s = NULL;
  int r = 0;
  if (getsockname(fd, &addr.sa, &alen) != 0) r = -errno;
  else if (addr.sa.sa_family != AF_INET && addr.sa.sa_family != AF_INET6) r = UV_EAFNOSUPPORT;
  else if (!(s = calloc(1, sizeof *s))) r = UV_ENOMEM;
  if (r) {
    close(fd);
    return r;
  }
  s->port = ntohs(addr.sa.sa_family == AF_INET6 ? addr.in6.sin6_port : addr.in4.sin_port);
  s->fd = fd;
  s->set.loop = l;
  s->set.opts = *o;
  s->set.hooks = *hooks;
  s->set.data = data;
  s->set.arm = set_arm;
  s->set.gone = set_gone;
  lh_sconn_set_tls(&s->set, NULL);
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
    s->closing = s->close_called = 1;
    s->done = 1;
    uv_close((uv_handle_t *)&s->poll, listener_close_cb);
    uv_close((uv_handle_t *)&s->timer, timer_close_cb);
    return r;
  }
  *out = s;
  return 0;
}

/* host to an address: a numeric one as it is, a name resolved here (once,
 * blocking: a server is made at start-up), its first IPv4 address, else
 * its first IPv6 one. 0 or a negative code (UV_EAI_* for a name) */
static int resolve(lh_loop_t *l, const char *host, int port, server_addr *addr) {
  if (uv_ip4_addr(host, port, &addr->in4) == 0) return 0;
  if (uv_ip6_addr(host, port, &addr->in6) == 0) return 0;
  uv_getaddrinfo_t req;
  struct addrinfo hints;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  int r = uv_getaddrinfo(&l->uv, &req, NULL, host, NULL, &hints);
  if (r) return r;
  struct addrinfo *pick = NULL;
  for (struct addrinfo *a = req.addrinfo; a; a = a->ai_next)
    if (a->ai_family == AF_INET || (a->ai_family == AF_INET6 && !pick)) pick = a;
  if (pick && pick->ai_family != AF_INET)
    for (struct addrinfo *a = req.addrinfo; a; a = a->ai_next)
      if (a->ai_family == AF_INET) pick = a;
  if (pick) {
    memcpy(addr, pick->ai_addr, pick->ai_addrlen);
    if (pick->ai_family == AF_INET) addr->in4.sin_port = htons((uint16_t)port);
    else addr->in6.sin6_port = htons((uint16_t)port);
  } else {
    r = UV_EAI_NONAME;
  }
  uv_freeaddrinfo(req.addrinfo);
  return r;
}

int lh_server_listen(lh_loop_t *l, const char *host, int port, const lh_server_opts_t *o,
                     const lh_server_hooks_t *hooks, void *data, lh_server_t **out) {
  if (!strcmp(host, "*")) {
    /* every interface: IPv6 and IPv4 on one socket, or IPv4 where there is no IPv6 */
    int r = lh_server_listen(l, "::", port, o, hooks, data, out);
    if (r == UV_EAFNOSUPPORT || r == UV_EADDRNOTAVAIL) r = lh_server_listen(l, "0.0.0.0", port, o, hooks, data, out);
    return r;
  }
  server_addr addr;
  int r = resolve(l, host, port, &addr);
  if (r) return r;
  socklen_t alen = addr.sa.sa_family == AF_INET6 ? sizeof addr.in6 : sizeof addr.in4;
  int fd = listen_socket(&addr.sa, alen, o->reuseport, o->backlog);
  if (fd < 0) return fd;
  return server_start(l, fd, o, hooks, data, out);
}

int lh_server_adopt(lh_loop_t *l, int fd, const lh_server_opts_t *o,
                    const lh_server_hooks_t *hooks, void *data, lh_server_t **out) {
  int v = 0;
  socklen_t vlen = sizeof v;
  if (fd < 0 || fcntl(fd, F_GETFD) < 0) return UV_EBADF;
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &v, &vlen) != 0) return -errno;
  if (v != SOCK_STREAM) return UV_EINVAL;
  vlen = sizeof v;
#ifdef SO_ACCEPTCONN
  if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &vlen) != 0) return -errno;
  if (!v) return UV_EINVAL; /* not listening */
#endif
  /* inherited descriptors may come blocking and without close-on-exec */
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) return -errno;
  fl = fcntl(fd, F_GETFD);
  if (fl < 0 || fcntl(fd, F_SETFD, fl | FD_CLOEXEC) < 0) return -errno;
  server_addr addr;
  socklen_t alen = sizeof addr;
  if (getsockname(fd, &addr.sa, &alen) != 0) return -errno;
  if (addr.sa.sa_family != AF_INET && addr.sa.sa_family != AF_INET6) return UV_EAFNOSUPPORT;
  return server_start(l, fd, o, hooks, data, out);
}

int lh_server_port(const lh_server_t *s) { return s->port; }
void *lh_server_data(const lh_server_t *s) { return s->set.data; }
uint32_t lh_server_connections(const lh_server_t *s) { return s->set.nconns; }
int lh_server_fd(const lh_server_t *s) { return s->closing ? -1 : s->fd; }

int lh_server_reuseport_peer(lh_server_t *s) {
  if (s->closing) return UV_EINVAL;
  int one = 1;
  server_addr addr;
  socklen_t alen = sizeof addr;
  if (getsockname(s->fd, &addr.sa, &alen) != 0) return -errno;
  /* the server's socket joins the group the first peer makes (Linux puts
   * a listener in a SO_REUSEPORT group when a second one binds next to it) */
  if (setsockopt(s->fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) return -errno;
  return listen_socket(&addr.sa, alen, 1, s->set.opts.backlog);
}

void lh_server_hold(lh_server_t *s, int hold) {
  if (s->closing || uv_is_closing((uv_handle_t *)&s->poll)) return;
  if (hold) {
    s->held = 1;
    uv_poll_stop(&s->poll);
    return;
  }
  if (!s->held) return;
  s->held = 0;
  s->accept_paused = 1; /* accept_restart polls it again */
  accept_restart(s);
}

/* The listener closes: what already waits in the backlog is taken first
 * (the kernel completed those handshakes, and closing the socket would
 * reset them), as many as the backlog may hold, unless another process
 * goes on serving the socket (held, handover): the backlog is its. Then
 * the poll handle goes, and its close callback closes the descriptor. */
#define BACKLOG_TAKE_MAX 65536
static void listener_stop(lh_server_t *s) {
  s->closing = 1;
  s->listener_close_at = 0;
  if (uv_is_closing((uv_handle_t *)&s->poll)) return;
  for (int i = 0; !s->held && !s->handover && i < BACKLOG_TAKE_MAX; i++) {
    int fd = fd_setup(accept_fd(s->fd), 0);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO) continue;
      break; /* EAGAIN: the backlog is empty; anything else: give up on it */
    }
    if (lh_sconn_accept(&s->set, fd) == LH_ENOMEM) break;
  }
  uv_close((uv_handle_t *)&s->poll, listener_close_cb);
}

/* A draining listener that is the last of its socket closes in two steps,
 * because one close cannot be timed against a handshake: a connection
 * completed between the last accept and close(2) is reset, and a balancer
 * that sent a POST on it reports a 502. First a socket filter drops new
 * SYNs (their senders try again a second later and find the port closed,
 * or another listener of the SO_REUSEPORT group), while handshakes already
 * begun complete and are accepted as usual; LISTEN_LINGER seconds later
 * the listener takes its backlog and closes. */
#define LISTEN_LINGER 0.25
static int block_syns(lh_server_t *s) {
#ifdef __linux__
  struct sock_filter code[] = {
    BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 13),          /* the TCP header's flags */
    BPF_STMT(BPF_ALU | BPF_AND | BPF_K, 0x12),       /* SYN | ACK */
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0x02, 0, 1), /* a SYN alone: */
    BPF_STMT(BPF_RET | BPF_K, 0),                    /* dropped */
    BPF_STMT(BPF_RET | BPF_K, 0xffffffffu),
  };
  struct sock_fprog prog;
  memset(&prog, 0, sizeof prog); /* the padding goes to the kernel too */
  prog.len = sizeof code / sizeof *code;
  prog.filter = code;
  return setsockopt(s->fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof prog) == 0;
#else
  (void)s;
  return 0;
#endif
}

/* the drain's delay is over: the listener goes, gently when it may */
static void listener_end(lh_server_t *s) {
  if (s->closing) return;
  if (!s->handover && !s->syn_blocked && !s->held && block_syns(s)) {
    s->syn_blocked = 1;
    s->listener_close_at = lh_loop_now(s->set.loop) + LISTEN_LINGER;
    server_arm(s);
    return;
  }
  listener_stop(s);
}

static void set_grace(lh_server_t *s, double grace) {
  if (grace < 0) return;
  double at = lh_loop_now(s->set.loop) + grace;
  if (!s->grace_deadline || at < s->grace_deadline) s->grace_deadline = at;
}

void lh_server_bytes(const lh_server_t *s, uint64_t *in, uint64_t *out) {
  *in = s->set.bytes_in;
  *out = s->set.bytes_out;
}

int lh_server_set_tls(lh_server_t *s, lh_tls_ctx_t *ctx) {
  if (ctx && lh_tls_ctx_role(ctx) != LH_ROLE_SERVER) return LH_ETLS_CONFIG;
  return lh_sconn_set_tls(&s->set, ctx);
}

void lh_server_close(lh_server_t *s, double grace) {
  if (s->close_called) return;
  s->close_called = 1;
  listener_stop(s);
  lh_sconn_set_close(&s->set, grace);
  set_grace(s, grace);
  server_arm(s);
}

void lh_server_drain(lh_server_t *s, double delay, double idle, double grace, int handover) {
  if (s->close_called || s->set.draining) return;
  s->handover = handover ? 1 : 0;
  lh_sconn_set_drain(&s->set, idle);
  set_grace(s, grace);
  if (grace >= 0 && delay > grace) delay = grace;
  if (delay > 0 && !s->closing) s->listener_close_at = lh_loop_now(s->set.loop) + delay;
  else listener_end(s);
  server_arm(s);
}
