/* lhyper.stream: an upgraded connection (req:upgrade) as a raw byte stream. */
#ifndef LH_LSTREAM_H
#define LH_LSTREAM_H

#include "lreq.h"

/* pushes a stream over r's connection, which is raw from now on; the req
 * at stack index ri lives as long as the stream */
void lh_stream_push(lua_State *L, lh_req_t *r, int ri);
/* the connection went away: wakes whoever waits on the stream */
void lh_stream_gone(lh_req_t *r);
/* the stream at idx is handed to raw (ops and conn filled): the stream
 * object can no longer be used. 0, or LH_ECLOSED */
int lh_stream_take(lua_State *L, int idx, lh_raw_t *raw);
/* registers the stream metatable (once per state) */
void lh_stream_open(lua_State *L);

#endif
