/* libuv glue seen from the rest of lhyper: opaque loop, server, connection
 * and timer handles. Only io.c, server.c and timer.c include uv.h. */
#ifndef LH_IO_H
#define LH_IO_H

#include "dispatch.h"

typedef struct lh_loop lh_loop_t;
typedef struct lh_server lh_server_t;
typedef struct lh_sconn lh_sconn_t;
typedef struct lh_timer lh_timer_t;

/* work to run on a later loop iteration; embed it in its owner */
typedef struct lh_defer {
  void (*cb)(struct lh_defer *);
  struct lh_defer *next;
  int queued;
} lh_defer_t;

typedef struct {
  lh_conn_opts_t conn;
  int backlog;
  int reuseport;
  int pipeline_flush;
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
} lh_server_hooks_t;

lh_loop_t *lh_loop_new(void);
/* runs until lh_loop_stop or nothing is left; returns 0, or 1 if stopped */
int lh_loop_run(lh_loop_t *l);
void lh_loop_stop(lh_loop_t *l);
/* closes every handle without calling back into the binding, then frees */
void lh_loop_free(lh_loop_t *l);
double lh_loop_now(lh_loop_t *l);       /* seconds, cached loop time */
int lh_loop_is_closing(lh_loop_t *l);
void lh_loop_defer(lh_loop_t *l, lh_defer_t *d);
void lh_loop_undefer(lh_loop_t *l, lh_defer_t *d);
const char *lh_strerror(int err);
/* the code's name: "EPARSE_HEADER", "ECONNRESET", ... */
const char *lh_errname(int err);

int lh_server_listen(lh_loop_t *l, const char *host, int port, const lh_server_opts_t *o,
                     const lh_server_hooks_t *hooks, void *data, lh_server_t **out);
int lh_server_port(const lh_server_t *s);
void *lh_server_data(const lh_server_t *s);
/* stops accepting; idle connections close now, busy ones after their
 * response; after grace seconds (< 0: never) the rest are closed */
void lh_server_close(lh_server_t *s, double grace);
uint32_t lh_server_connections(const lh_server_t *s);

lh_sconn_t *lh_sconn_from_disp(lh_disp_t *d);
lh_disp_t *lh_sconn_disp(lh_sconn_t *sc);
lh_server_t *lh_sconn_server(lh_sconn_t *sc);
/* the binding's per-connection pointer */
void **lh_sconn_udata(lh_sconn_t *sc);
/* peer address as text; returns the port */
int lh_sconn_peer(lh_sconn_t *sc, char *buf, size_t len);
/* loop-side work after the binding changed the connection's state */
void lh_sconn_poll(lh_sconn_t *sc);
/* the same, from the next loop iteration */
void lh_sconn_defer_poll(lh_sconn_t *sc);

/* signal watcher: cb(data, signum) on each delivery; it does not keep the
 * loop alive. lh_signal_stop frees it. */
typedef struct lh_signal lh_signal_t;
lh_signal_t *lh_signal_start(lh_loop_t *l, int signum, void (*cb)(void *, int), void *data);
void lh_signal_stop(lh_signal_t *s);

/* one-shot timer: cb(data) after sec seconds unless cancelled first */
lh_timer_t *lh_timer_start(lh_loop_t *l, double sec, void (*cb)(void *), void *data);
void lh_timer_cancel(lh_timer_t *t);

#endif
