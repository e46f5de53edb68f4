/* The HTTP client's Lua side: lhyper.client and lhyper.res (lclient.c). */
#ifndef LH_LCLIENT_H
#define LH_LCLIENT_H

#include <lua.h>

/* registers the client and res metatables (once per state) and adds
 * client_new and client_send to the module table at mod */
void lh_client_open(lua_State *L, int mod);

#endif
