/* The connections of one server, as the listener (server.c) drives them.
 * sconn.c owns each connection (transport, deadlines, dozing) and what a
 * server's connections share (their list, deadline lists and doze list);
 * server.c owns the listener and the timer, and hears from the set only
 * through the two callbacks below. Internal to csrc/uv. */
#ifndef LH_SCONN_H
#define LH_SCONN_H

#include "deadline.h"
#include "server.h"
#include "tls.h"

typedef struct lh_sdisp lh_sdisp_t;

/* zero-filled plus loop, opts, hooks, data, the callbacks and
 * lh_sconn_set_tls is a valid start */
typedef struct lh_sconn_set {
  lh_loop_t *loop;
  const lh_io_t *io;      /* its connections' transport (lh_sconn_set_tls) */
  lh_tls_ctx_t *tls;      /* TLS context for new connections, a reference; NULL: plain */
  lh_server_opts_t opts;
  lh_server_hooks_t hooks;
  void *data;             /* the binding's, handed to the service */
  lh_sconn_t *conns;      /* every connection not yet freed */
  uint32_t nconns;
  uint64_t bytes_in, bytes_out; /* socket bytes read, and sent or queued to libuv */
  lh_deadlines_t dl;      /* head, idle, linger and grace deadlines */
  lh_sdisp_t *doze_head, *doze_tail; /* idle connections still awake, oldest first */
  uint32_t ndozing;
  unsigned closing : 1;   /* the server is closing or draining: no keep-alive from now on */
  unsigned draining : 1;  /* lh_sconn_set_drain: idle connections get drain_idle, not idle_timeout */
  double drain_idle;      /* set with draining */
  /* a deadline went first on its list: the timer may have to run sooner */
  void (*arm)(struct lh_sconn_set *set);
  /* a connection was freed (also while the loop is torn down) */
  void (*gone)(struct lh_sconn_set *set);
} lh_sconn_set_t;

/* the transport of new connections: TLS over ctx (a reference is taken,
 * the previous context's let go), or plain when ctx is NULL. Connections
 * keep the context they began with. A set changes between plain and TLS
 * only while it has no connection: LH_ETLS_CONFIG then */
int lh_sconn_set_tls(lh_sconn_set_t *set, lh_tls_ctx_t *ctx);
/* a new connection over the accepted socket fd; 0, or a negative code
 * (fd is closed then) */
int lh_sconn_accept(lh_sconn_set_t *set, int fd);
/* fires the deadlines due at `now` */
void lh_sconn_set_expire(lh_sconn_set_t *set, double now);
/* the server closes: idle connections close now, busy ones after their
 * response, one that never sent a byte gets a short window (at most grace).
 * The first of close and drain tells the binding of each busy connection
 * (hooks.conn_shutdown) */
void lh_sconn_set_close(lh_sconn_set_t *set, double grace);
/* the server drains: no connection is kept alive after a response whose
 * head is not out yet (it says Connection: close), and a connection that
 * is idle now, or becomes idle after a response that promised keep-alive,
 * is closed once idle for `idle` seconds. Busy connections are not touched */
void lh_sconn_set_drain(lh_sconn_set_t *set, double idle);
/* the grace period is over: every connection is closed now */
void lh_sconn_set_abort(lh_sconn_set_t *set);

#endif
