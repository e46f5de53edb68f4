/* Deadline lists: one list per kind of timeout. Every entry of a list has
 * the same duration, so appending keeps it sorted and one timer serves all
 * of a server's connections. No libuv: `now` is whatever clock the caller
 * keeps (the loop's, or a virtual one in tests). */
#ifndef LH_DEADLINE_H
#define LH_DEADLINE_H

#include <stdint.h>

enum {
  LH_DL_NONE = 0,
  LH_DL_HEAD,    /* a request head is due (header_read_timeout) */
  LH_DL_IDLE,    /* a keep-alive connection sits idle (idle_timeout) */
  LH_DL_LINGER,  /* our FIN is out, unread input is being drained */
  LH_DL_GRACE,   /* server closing: a silent connection's short window */
  LH_DL_KINDS
};

/* embed in the owner; zero-filled is "on no list" */
typedef struct lh_dnode {
  struct lh_dnode *prev, *next;
  double at;
  uint8_t kind;
} lh_dnode_t;

typedef struct {
  lh_dnode_t *head[LH_DL_KINDS];
  lh_dnode_t *tail[LH_DL_KINDS];
} lh_deadlines_t;

/* puts n at the end of kind's list, due at `at` (removed from any list first) */
void lh_dl_append(lh_deadlines_t *d, lh_dnode_t *n, int kind, double at);
void lh_dl_remove(lh_deadlines_t *d, lh_dnode_t *n);
/* the earliest due time over all lists, 0 when all are empty */
double lh_dl_next(const lh_deadlines_t *d);
/* removes and returns one entry due at or before now (its kind in *kind),
 * NULL when none is due */
lh_dnode_t *lh_dl_pop_due(lh_deadlines_t *d, double now, int *kind);

#endif
