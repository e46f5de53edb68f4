/* Internal to the libuv layer (io.c, server.c, timer.c). */
#ifndef LH_IO_INT_H
#define LH_IO_INT_H

#include <netinet/in.h>
#include <uv.h>

#include "deadline.h"
#include "io.h"

struct lh_loop {
  uv_loop_t uv;
  uv_idle_t defer_idle;   /* runs the defer queue; active only while it is not empty */
  lh_defer_t *dq_head, *dq_tail;
  int closing;            /* lh_loop_free is tearing down: no calls into the binding */
  int fast_close;         /* close_socket_early may be used (io.c) */
  int stopped;
};


struct lh_sconn {
  uv_tcp_t tcp;            /* first: the handle's address is the connection's */
  lh_disp_t *d;            /* message state; NULL while idle (taken back from a free list) */
  lh_server_t *srv;
  lh_sconn_t *prev, *next; /* server's list of connections */
  lh_dnode_t dnode;        /* on the server's deadline list of its kind */
  lh_defer_t defer;
  void *udata;
  union {
    struct sockaddr sa;
    struct sockaddr_in in4;
    struct sockaddr_in6 in6;
  } peer;
  unsigned writing : 1;    /* wreq in flight */
  unsigned closing : 1;    /* io close sequence started */
  unsigned handle_closing : 1; /* uv_close called */
  unsigned no_linger : 1;  /* close at once (grace period over) */
  unsigned wrote : 1;      /* a write was made (see before_write) */
  unsigned nodelay : 1;    /* TCP_NODELAY is set */
  uint32_t armed_served;   /* d->served when the deadline was set */
  uint32_t served;         /* d->served kept while idle */
  unsigned reading_on : 1; /* d->reading_on kept while idle */
};

typedef struct lh_sdisp lh_sdisp_t; /* a dispatcher as io.c allocates it */

struct lh_server {
  uv_poll_t poll;          /* first: the listening socket is readable (a connection waits) */
  int fd;                  /* the listening socket; closed in the poll handle's close callback */
  lh_loop_t *loop;
  lh_server_opts_t opts;
  lh_server_hooks_t hooks;
  void *data;
  lh_sconn_t *conns;
  uint32_t nconns;
  int port;
  uv_timer_t timer;        /* earliest deadline of the lists below */
  lh_deadlines_t dl;
  double grace_deadline;   /* when closing: force-close time, 0 none */
  double accept_resume;    /* accepting paused after an error: when to try again, 0 none */
  lh_sdisp_t *doze_head, *doze_tail; /* idle connections still awake, oldest first */
  uint32_t ndozing;
  unsigned closing : 1;
  unsigned accept_pending : 1; /* a connection waits in the backlog (max_connections) */
  unsigned accept_paused : 1;  /* the listener is not polled (max_connections, or an error) */
  unsigned listener_closed : 1;
  unsigned timer_closed : 1;
  unsigned done : 1;
};

void lh_sconn_start(lh_server_t *s, lh_sconn_t *sc);
void lh_sconn_close_now(lh_sconn_t *sc);
int sconn_wake(lh_sconn_t *sc);
/* the connection is idle (1) or not (0): an idle one dozes, then sleeps */
void lh_sconn_doze(lh_sconn_t *sc, int idle);
void lh_sconn_timer_update(lh_sconn_t *sc);
void lh_server_conn_gone(lh_server_t *s, lh_sconn_t *sc);
void lh_server_timer_cb(uv_timer_t *t);
void lh_server_arm(lh_server_t *s);
void lh_sconn_deadline(lh_sconn_t *sc, int kind, double after);

#endif
