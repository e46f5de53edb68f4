/* The router's trie walk in C (lua/lhyper/router.lua keeps the same in
 * Lua, used with LHYPER_ROUTER_C=0). */
#ifndef LH_LROUTE_H
#define LH_LROUTE_H

#include <lua.h>

/* adds route_walk and route_req to the module table at mod */
void lh_route_open(lua_State *L, int mod);

#endif
