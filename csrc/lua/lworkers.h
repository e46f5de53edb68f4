/* Worker processes and CPU count for Lua (lworkers.c). */
#ifndef LH_LWORKERS_H
#define LH_LWORKERS_H

#include <lua.h>

/* adds workers_run, worker_env, worker_control and cpu_count to the
 * module table at mod */
void lh_workers_open(lua_State *L, int mod);

#endif
