/* The loop as the libuv layer's own files see it. Not for the binding:
 * this is the header of csrc/uv that includes uv.h. */
#ifndef LH_UVLOOP_H
#define LH_UVLOOP_H

#include <uv.h>

#include "loop.h"

struct lh_loop {
  uv_loop_t uv;
  uv_idle_t defer_idle;   /* runs the defer queue; active only while it is not empty */
  lh_defer_t *dq_head, *dq_tail;
  int closing;            /* lh_loop_free is tearing down: no calls into the binding */
  int fast_close;         /* sconn.c may close sockets early (close_socket_early) */
  int stopped;            /* lh_loop_stop was called during this lh_loop_run */
};

#endif
