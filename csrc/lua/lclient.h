/* The HTTP client's Lua side: lhyper.client and lhyper.res (lclient.c). */
#ifndef LH_LCLIENT_H
#define LH_LCLIENT_H

#include <lua.h>

#include "lraw.h"

/* registers the client and res metatables (once per state) and adds
 * client_new and client_send to the module table at mod */
void lh_client_open(lua_State *L, int mod);
/* the 101 response at idx hands its connection to raw (ops and conn
 * filled); the request's timeouts no longer apply, and the res leaves the
 * ownership of its task (the taker answers for it). 0, or LH_ECLOSED */
int lh_res_take(lua_State *L, int idx, lh_raw_t *raw);

#endif
