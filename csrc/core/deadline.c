/* Deadline lists, one per kind of timeout (deadline.h). */
#include "deadline.h"

#include <stddef.h>

void lh_dl_remove(lh_deadlines_t *d, lh_dnode_t *n) {
  if (n->kind == LH_DL_NONE) return;
  int k = n->kind;
  if (n->prev) n->prev->next = n->next;
  else d->head[k] = n->next;
  if (n->next) n->next->prev = n->prev;
  else d->tail[k] = n->prev;
  n->prev = n->next = NULL;
  n->kind = LH_DL_NONE;
}

void lh_dl_append(lh_deadlines_t *d, lh_dnode_t *n, int kind, double at) {
  lh_dl_remove(d, n);
  if (kind == LH_DL_NONE) return;
  n->kind = (uint8_t)kind;
  n->at = at;
  n->next = NULL;
  n->prev = d->tail[kind];
  if (d->tail[kind]) d->tail[kind]->next = n;
  else d->head[kind] = n;
  d->tail[kind] = n;
}

double lh_dl_next(const lh_deadlines_t *d) {
  double next = 0;
  for (int k = 1; k < LH_DL_KINDS; k++)
    if (d->head[k] && (next == 0 || d->head[k]->at < next)) next = d->head[k]->at;
  return next;
}

lh_dnode_t *lh_dl_pop_due(lh_deadlines_t *d, double now, int *kind) {
  for (int k = 1; k < LH_DL_KINDS; k++) {
    lh_dnode_t *n = d->head[k];
    if (n && n->at <= now) {
      lh_dl_remove(d, n);
      *kind = k;
      return n;
    }
  }
  return NULL;
}
