/* lhyper.websocket: the WebSocket object over an upgraded connection
 * (lws.c); the handshake is lua/lhyper/websocket.lua's. */
#ifndef LH_LWS_H
#define LH_LWS_H

#include <lua.h>

/* registers the websocket metatable (once per state) and adds ws_new and
 * the handshake helpers to the module table at mod */
void lh_ws_open(lua_State *L, int mod);

#endif
