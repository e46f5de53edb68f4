/* lhyper.server and the service it gives the dispatcher (lsvc.c). */
#ifndef LH_LSVC_H
#define LH_LSVC_H

#include <lua.h>

#include "lreq.h"
#include "server.h"

/* registers the server metatable (once per state) and adds listen(opts)
 * to the module table at mod */
void lh_svc_open(lua_State *L, int mod);
/* the server at index i (raises if it is not one); NULL once it is closed */
lh_server_t *lh_svc_server(lua_State *L, int i);

/* the upgraded connection of r, taken by raw (lh_stream_take), is raw's
 * alone from now on: r sees it as gone (r->sc NULL) and may be collected
 * while raw goes on; the connection's events go to raw, whose ops and
 * conn are replaced. 0, or LH_ECLOSED when r has no such connection */
int lh_svc_keep_raw(lh_req_t *r, lh_raw_t *raw);
/* the value at L's index vi was raised by Lua code serving the server at
 * index si (not a server: none) outside a request (phase: where): reported
 * as the server's errors are (on_error, or a line on stderr) */
void lh_svc_report(lua_State *L, int si, int vi, const char *phase);

#endif
