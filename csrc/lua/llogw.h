/* lhyper.log_writer: the Lua object over a log writer (csrc/uv/logw.h),
 * buffered lines written without blocking the loop. */
#ifndef LH_LLOGW_H
#define LH_LLOGW_H

#include <lauxlib.h>
#include <lua.h>

#include "logw.h"

#define LH_LOGW_MT "lhyper.log_writer"

/* the userdata: a box, so that the writer's memory is libuv's to free */
typedef struct {
  lh_logw_t *w; /* NULL once closed */
} lh_llogw_t;

/* registers the metatable and adds log_writer to the module table at mod */
void lh_logw_open(lua_State *L, int mod);

#endif
