/* Client connections and their keep-alive pool: name resolution, connect
 * (with fallback over the resolved addresses), the transport of one client
 * connection, per-connection deadlines and the idle checks of hyper's pool.
 * The binding sees opaque handles; no uv.h here (see loop.h). */
#ifndef LH_CLIENT_H
#define LH_CLIENT_H

#include "dispatch.h"
#include "loop.h"
#include "tls.h"

typedef struct lh_client lh_client_t;
typedef struct lh_cconn lh_cconn_t;

typedef struct {
  lh_conn_opts_t conn;              /* response head limits, keep_alive */
  uint32_t pool_max_idle_per_host;  /* idle connections kept per host:port */
  double pool_idle_timeout;         /* seconds an idle connection is kept, 0: no limit */
} lh_client_opts_t;

/* what the binding plugs into a client */
typedef struct {
  const lh_service_t *svc;
  /* a connection is gone (its handles are closed): drop references to it.
   * Not called while the loop is being torn down. */
  void (*conn_closed)(lh_cconn_t *cc);
} lh_client_hooks_t;

/* returns 0 or a negative code; data is handed to the service as disp->data */
int lh_client_new(lh_loop_t *l, const lh_client_opts_t *o, const lh_client_hooks_t *hooks,
                  void *data, lh_client_t **out);
/* idle connections close now, busy ones when their exchange lets go; the
 * client is freed after its last connection. No checkout after this. */
void lh_client_close(lh_client_t *cl);
uint32_t lh_client_connections(const lh_client_t *cl);
uint32_t lh_client_idle(const lh_client_t *cl);

/* TLS for a connection (https): the client context, and the name the
 * server is asked for (SNI) and must prove (NULL: the host) */
typedef struct {
  lh_tls_ctx_t *ctx;
  const char *name;
} lh_client_tls_t;

/* a connection to host:port for one exchange (udata): an idle one that
 * passed the liveness check (EOF or stray bytes while idle close it), with
 * *reused = 1, else a new one that starts resolving and connecting now;
 * bytes queued meanwhile go out once connected (and, with tls, once the
 * handshake is done). tls NULL: plain; connections are pooled apart by
 * context and name. connect_timeout in seconds, 0: none. returns 0 or a
 * negative code (nothing to release then) */
int lh_client_checkout(lh_client_t *cl, const char *host, int port, const lh_client_tls_t *tls,
                       double connect_timeout, void *udata, lh_cconn_t **out, int *reused);

lh_cconn_t *lh_cconn_from_disp(lh_disp_t *d);
lh_disp_t *lh_cconn_disp(lh_cconn_t *cc);
void *lh_cconn_udata(lh_cconn_t *cc);
/* the exchange lets go: an idle connection goes back to the pool, any other
 * closes (a response not read to its end never poisons the pool) */
void lh_cconn_release(lh_cconn_t *cc);
/* the binding changed the connection's state: poll it from the next loop
 * iteration, or in another turn when it is being polled now */
void lh_cconn_kick(lh_cconn_t *cc);
/* deadline: loop seconds for the whole exchange (0: none); read_idle:
 * seconds without a byte while a response is awaited (0: none) */
void lh_cconn_set_timeouts(lh_cconn_t *cc, double deadline, double read_idle);
/* the read-idle clock starts again (the exchange begins to wait) */
void lh_cconn_touch(lh_cconn_t *cc);
/* the service's write_ready is called after sec seconds (Expect: 100-continue) */
void lh_cconn_continue_after(lh_cconn_t *cc, double sec);
/* the message of the last deadline that expired, NULL if none */
const char *lh_cconn_why(lh_cconn_t *cc);
/* local port of the connection, 0 while not connected */
int lh_cconn_local_port(lh_cconn_t *cc);
/* the connection's TLS state, NULL for plain HTTP */
lh_tls_t *lh_cconn_tls(lh_cconn_t *cc);

#endif
