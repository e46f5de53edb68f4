/* A free-list cache in front of a Lua state's allocator (lalloc.c). */
#ifndef LH_LALLOC_H
#define LH_LALLOC_H

#include <lua.h>

typedef struct lh_alloc lh_alloc_t;

/* puts the cache in front of L's allocator; NULL when out of memory */
lh_alloc_t *lh_alloc_attach(lua_State *L);
/* at lua_close: empties the cache and takes it away when it is still in front */
void lh_alloc_detach(lua_State *L, lh_alloc_t *a);

#endif
