/* An upgraded connection handed over to C code (the WebSocket, lws.c). The
 * side that owns the connection (lstream.c for a server's req:upgrade
 * stream, lclient.c for a client's 101 response) fills ops and conn; the
 * taker sets event, which the owner then calls instead of waking a task.
 * A narrow hook: the taker reads and writes the connection in place
 * through the dispatcher's raw API (lh_disp_raw_*, dispatch.h). */
#ifndef LH_LRAW_H
#define LH_LRAW_H

#include "dispatch.h"

enum {
  LH_RAW_READABLE = 1, /* the reader that peeked nothing can go on (body_ready) */
  LH_RAW_WRITABLE,     /* the write queue drained below its mark (write_ready) */
  LH_RAW_GONE,         /* the connection failed or closed: disp is NULL from now on */
  LH_RAW_DONE,         /* server: the handler's coroutine ended */
  LH_RAW_FAILED,       /* server: the handler raised (DONE follows) */
  LH_RAW_SHUTDOWN      /* server: the server began to close or drain: end politely */
};

typedef struct lh_raw lh_raw_t;
typedef struct {
  lh_disp_t *(*disp)(lh_raw_t *raw); /* NULL once the connection is gone or closed */
  void (*kick)(lh_raw_t *raw);       /* poll the connection soon: bytes queued or wanted */
  void (*close)(lh_raw_t *raw);      /* nothing more will be queued: close once written;
                                      * no event after this */
  void (*release)(lh_raw_t *raw);    /* the taker is going away: no event after this */
  /* optional (NULL: the owner stays): the taker keeps the connection
   * alone, so that the owner (a server's req) can go; may replace ops and
   * conn. 0, or an LH_E* code */
  int (*keep)(lh_raw_t *raw);
  /* server: 1 when the server is already closing or draining (taken after
   * LH_RAW_SHUTDOWN would have come); NULL for a client */
  int (*shutting)(lh_raw_t *raw);
} lh_raw_ops_t;

struct lh_raw {
  const lh_raw_ops_t *ops;           /* set by the owner */
  void *conn;                        /* set by the owner: its req or res */
  void (*event)(lh_raw_t *raw, int ev); /* set by the taker */
};

#endif
