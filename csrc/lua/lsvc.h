/* lhyper.server and the service it gives the dispatcher (lsvc.c). */
#ifndef LH_LSVC_H
#define LH_LSVC_H

#include <lua.h>

#include "server.h"

/* registers the server metatable (once per state) and adds listen(opts)
 * to the module table at mod */
void lh_svc_open(lua_State *L, int mod);
/* the server at index i (raises if it is not one); NULL once it is closed */
lh_server_t *lh_svc_server(lua_State *L, int i);

#endif
