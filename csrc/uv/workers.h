/* Worker processes over a program's listeners (lhyper.workers), and
 * listeners handed over by another process (systemd's LISTEN_FDS).
 *
 * The master makes the listening sockets once (one per worker and server
 * with SO_REUSEPORT, or one per server shared by all), then forks its
 * workers and supervises them: restarts one that died (with a back-off),
 * starts a new generation from freshly loaded code on SIGHUP (exec of the
 * same program, which takes its sockets through LISTEN_FDS) and drains the
 * old one once the new is ready, drains everything on SIGTERM or SIGINT
 * and stops at once on a second one or SIGQUIT, forwards SIGUSR1 and
 * SIGUSR2, and reports each event on stderr. The master never polls a
 * listener. A worker hears from the master over a control socket; EOF on
 * it (the master died) drains the worker. Linux only (signalfd). */
#ifndef LH_WORKERS_H
#define LH_WORKERS_H

#include "server.h"

typedef struct {
  int n;               /* workers, >= 1 */
  int shared;          /* 1: one listener per server for all; 0: one each (SO_REUSEPORT) */
  double grace;        /* a draining worker's time; KILL after it (and a slack) */
  const char *exe;     /* the program a new generation runs (reload); NULL: no reload */
  char *const *argv;   /* its arguments, NULL-terminated */
} lh_workers_opts_t;

typedef struct {
  int id;              /* 1..n */
  int generation;      /* 0: forked from the master; each reload counts one up */
  int ctl;             /* the control socket to the master */
} lh_worker_info_t;

/* In the master: makes the sockets, starts the workers and supervises them
 * until all have exited after a shutdown; then the servers' listeners are
 * no longer the master's (close the servers). Returns 0 there, 1 in a
 * forked worker (*w filled; the loop is usable again after uv_loop_fork and
 * each server listens on the worker's socket), or a negative code when the
 * workers could not start (the servers are as they were, unless the
 * supervision was under way). */
int lh_workers_run(lh_loop_t *l, lh_server_t *const *srv, int nsrv, const lh_workers_opts_t *o,
                   lh_worker_info_t *w);

/* A worker the master started with exec: its info from the environment
 * (LHYPER_WORKER, then unset), and inherited sockets no server took are
 * closed. 1 in such a worker, else 0 */
int lh_worker_from_env(lh_worker_info_t *w);

/* what the master asks of a worker (and the worker's own SIGTERM, SIGQUIT) */
enum {
  LH_WORKER_DRAIN = 'd',  /* shutdown: drain and exit */
  LH_WORKER_RETIRE = 'x', /* a new generation serves: stop accepting, finish, exit */
  LH_WORKER_QUIT = 'q'    /* stop at once */
};

/* In a worker: watches the control socket (and SIGTERM, SIGQUIT) without
 * keeping the loop alive, and tells the master the worker serves on the
 * loop's first iteration. cb(data, cmd) for each command; EOF from the
 * master is LH_WORKER_DRAIN. 0 or a negative code */
int lh_worker_ctl_start(lh_loop_t *l, int fd, void (*cb)(void *data, int cmd), void *data);

/* the next listening socket handed over with systemd's protocol
 * (LISTEN_PID is this process, LISTEN_FDS counts them from fd 3; the
 * variables are unset when first read), -1 when none is left */
int lh_inherited_next(void);

/* the CPUs this process may run on (sched_getaffinity), at least 1 */
int lh_cpu_count(void);

#endif
