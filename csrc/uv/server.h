/* HTTP servers and their connections as the binding sees them: listen,
 * close, and per connection its dispatcher, the binding's pointer, the
 * peer's address and polls after the binding changed its state. The
 * binding plugs its service and two hooks in (lh_server_hooks_t). */
#ifndef LH_SERVER_H
#define LH_SERVER_H

#include "dispatch.h"
#include "loop.h"
#include "tls.h"

typedef struct lh_server lh_server_t;
typedef struct lh_sconn lh_sconn_t;

typedef struct {
  lh_conn_opts_t conn;
  int backlog;
  int reuseport;
  uint32_t max_connections;      /* 0: no limit */
  double header_read_timeout;    /* seconds, 0: off */
  double idle_timeout;           /* seconds, 0: off */
} lh_server_opts_t;

/* what the binding plugs into a server */
typedef struct {
  const lh_service_t *svc;
  /* a connection's transport is gone (close callback): drop references to
   * it. Not called while the loop is being torn down. */
  void (*conn_closed)(lh_sconn_t *sc);
  /* the listener is closed and every connection with it */
  void (*server_done)(lh_server_t *s);
  /* optional: the server began to close or drain, and this connection is
   * busy: one that speaks another protocol now (upgraded) can be ended
   * politely by its owner before the grace runs out */
  void (*conn_shutdown)(lh_sconn_t *sc);
} lh_server_hooks_t;

/* listens on host:port (0: any free port); host a numeric address, "*"
 * (every interface: "::", or "0.0.0.0" without IPv6) or a name, resolved
 * now (blocking) to its first IPv4 address, else its first IPv6 one. data
 * goes to the service as disp->data. 0 or a negative code */
int lh_server_listen(lh_loop_t *l, const char *host, int port, const lh_server_opts_t *o,
                     const lh_server_hooks_t *hooks, void *data, lh_server_t **out);
/* the same over a listening socket of someone else's making (inherited,
 * systemd, a supervisor): the server owns fd from here on, and closes it
 * even when this fails. UV_EINVAL: not a listening stream socket */
int lh_server_adopt(lh_loop_t *l, int fd, const lh_server_opts_t *o,
                    const lh_server_hooks_t *hooks, void *data, lh_server_t **out);
int lh_server_port(const lh_server_t *s);
void *lh_server_data(const lh_server_t *s);
/* stops accepting (after taking what waits in the backlog); idle
 * connections close now, busy ones after their response; after grace
 * seconds (< 0: never) the rest are closed */
void lh_server_close(lh_server_t *s, double grace);
uint32_t lh_server_connections(const lh_server_t *s);
/* bytes read from and handed for writing to the server's connections so far */
void lh_server_bytes(const lh_server_t *s, uint64_t *in, uint64_t *out);
/* TLS for the connections accepted from now on (a reference to ctx is
 * taken); open ones go on with their context. Right after listen, before
 * any connection, it makes a plain server a TLS one; later, a TLS server
 * takes only another context (certificates reloaded): LH_ETLS_CONFIG
 * otherwise */
int lh_server_set_tls(lh_server_t *s, lh_tls_ctx_t *ctx);

/* the server drains, gently enough for a load balancer: keep-alive ends
 * (responses not yet begun say Connection: close; idle connections close
 * after `idle` seconds idle), the listener closes after `delay` seconds,
 * having taken what waits in its backlog (and, unless handover, having
 * refused new handshakes for a moment first), and after grace seconds
 * (< 0: never) the rest are closed. Done as lh_server_close is.
 * handover: another process goes on serving the listening socket (a
 * worker's successor): it is closed here at once and left as it is */
void lh_server_drain(lh_server_t *s, double delay, double idle, double grace, int handover);

/* --- for workers.c: sharing a listener between processes --- */
/* the listening socket, -1 once the listener closes */
int lh_server_fd(const lh_server_t *s);
/* 1: the listener is not polled (connections wait in the backlog); 0: it
 * is again */
void lh_server_hold(lh_server_t *s, int hold);
/* a new listening socket on the server's address in one SO_REUSEPORT
 * group with the server's own (which joins it); the fd or a negative code */
int lh_server_reuseport_peer(lh_server_t *s);

lh_sconn_t *lh_sconn_from_disp(lh_disp_t *d);
/* the connection's dispatcher; NULL while an idle connection sleeps
 * (never while a request is attached). An upgraded stream's is woken for
 * the caller: NULL then only when memory is short (the connection closes) */
lh_disp_t *lh_sconn_disp(lh_sconn_t *sc);
/* the data given to lh_server_listen */
void *lh_sconn_data(lh_sconn_t *sc);
/* the binding's per-connection pointer */
void **lh_sconn_udata(lh_sconn_t *sc);
/* peer address as text; returns the port */
int lh_sconn_peer(lh_sconn_t *sc, char *buf, size_t len);
/* the connection's TLS state, NULL for plain HTTP (and before its first read) */
lh_tls_t *lh_sconn_tls(lh_sconn_t *sc);
/* the message of the connection's last TLS failure, NULL if none */
const char *lh_sconn_why(lh_sconn_t *sc);
/* loop-side work after the binding changed the connection's state */
void lh_sconn_poll(lh_sconn_t *sc);
/* the same, from the next loop iteration */
void lh_sconn_defer_poll(lh_sconn_t *sc);

#endif
