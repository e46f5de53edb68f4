/* What layers (lua/lhyper/layers) need from the core: how a request's
 * response ended (req:on_end), access log lines made in C, request ids,
 * a request's server, a clock, the status of an error code and the
 * timeout layer's call. */
#ifndef LH_LLAYER_H
#define LH_LLAYER_H

#include "lreq.h"

/* r's response ended, complete or not (the service glue calls this once,
 * after its task is over, when r->watched or r->alog): the access log
 * line, then the functions given to req:on_end */
void lh_layer_ended(lh_req_t *r);
/* registers the metatables and adds req_on_end, access_log,
 * access_log_begin, request_id, req_server, hrtime, error_status,
 * serve_within and layer_service (request_id, access_log and timeout
 * services as one C function) to the module table at mod */
void lh_layer_open(lua_State *L, int mod);

#endif
