/* A free-list cache in front of the Lua state's allocator.
 *
 * A request makes a few small Lua objects (the req userdata, the handler's
 * header table and its node array) and the collector frees them in
 * batches. Through glibc each such pair costs a few hundred instructions,
 * because a sweep overflows malloc's per-thread cache. Here a freed block of
 * n bytes (n <= LA_MAX) waits on a list of blocks of exactly n bytes and
 * serves the next allocation of n bytes.
 *
 * Sizes are exact, never rounded: every block the underlying allocator
 * sees come back has the size it was allocated with. So the cache can be
 * put in front of any allocator and taken away at any time (lua_close) —
 * blocks allocated through it are ordinary blocks of the allocator below.
 * It holds at most LA_BYTES bytes; an allocation that fails empties it and
 * tries once more. The binding attaches it unless LHYPER_ALLOC_CACHE=0
 * (tuning.h). */
#include "lalloc.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define LA_MAX 1024            /* largest block size kept */
#define LA_PER_SIZE 512        /* blocks kept per size */
#define LA_BYTES (1u << 20)    /* bytes kept in all */

typedef struct la_block {
  struct la_block *next;
} la_block_t;

struct lh_alloc {
  lua_Alloc f;                 /* the allocator below */
  void *ud;
  size_t bytes;                /* held on the lists */
  int off;                     /* pass everything through (could not detach) */
  la_block_t *list[LA_MAX + 1];
  uint16_t n[LA_MAX + 1];
};

static void la_flush(lh_alloc_t *a) {
  for (size_t s = sizeof(la_block_t); s <= LA_MAX; s++) {
    la_block_t *b = a->list[s];
    while (b) {
      la_block_t *next = b->next;
      a->f(a->ud, b, s, 0);
      b = next;
    }
    a->list[s] = NULL;
    a->n[s] = 0;
  }
  a->bytes = 0;
}

/* the allocator below, for what the lists do not serve; out of line, so
 * that the paths through the lists need no saved registers (one in eight
 * of a request's instructions went to this allocator's prologues) */
static __attribute__((noinline)) void *la_below(lh_alloc_t *a, void *p, size_t osize,
                                                size_t nsize) {
  void *q = a->f(a->ud, p, osize, nsize);
  if (!q && nsize && a->bytes) {
    /* out of memory: give back what the lists hold and try once more */
    la_flush(a);
    q = a->f(a->ud, p, osize, nsize);
  }
  return q;
}

static void *la_alloc(void *ud, void *p, size_t osize, size_t nsize) {
  lh_alloc_t *a = ud;
  if (nsize == 0) {
    if (!p) return NULL; /* free(NULL): Lua asks for it when it resizes an empty part */
    if (osize >= sizeof(la_block_t) && osize <= LA_MAX && a->n[osize] < LA_PER_SIZE &&
        a->bytes + osize <= LA_BYTES && !a->off) {
      la_block_t *b = p;
      b->next = a->list[osize];
      a->list[osize] = b;
      a->n[osize]++;
      a->bytes += osize;
      return NULL;
    }
  } else if (!p && nsize <= LA_MAX && a->list[nsize]) {
    la_block_t *b = a->list[nsize];
    a->list[nsize] = b->next;
    a->n[nsize]--;
    a->bytes -= nsize;
    return b;
  }
  /* a new block (osize is then the object's type), a resize, or a free
   * the lists do not keep */
  return la_below(a, p, osize, nsize);
}

lh_alloc_t *lh_alloc_attach(lua_State *L) {
  void *ud;
  lua_Alloc f = lua_getallocf(L, &ud);
  lh_alloc_t *a = f(ud, NULL, 0, sizeof *a);
  if (!a) return NULL;
  memset(a, 0, sizeof *a);
  a->f = f;
  a->ud = ud;
  lua_setallocf(L, la_alloc, a);
  return a;
}

void lh_alloc_detach(lua_State *L, lh_alloc_t *a) {
  if (!a) return;
  void *ud;
  lua_Alloc f = lua_getallocf(L, &ud);
  la_flush(a);
  if (f == la_alloc && ud == a) {
    lua_setallocf(L, a->f, a->ud);
    a->f(a->ud, a, sizeof *a, 0);
  } else {
    /* someone put an allocator in front of ours: stay, as a pass-through */
    a->off = 1;
  }
}
