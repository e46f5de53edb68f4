/* lhyper.task: tasks made by lhyper.spawn and lhyper.timeout, as the Lua
 * code that holds them sees them (cancel, join, done, detach). */
#ifndef LH_LSPAWN_H
#define LH_LSPAWN_H

#include "ltask.h"

/* lua_CFunction: spawn(fn, ...) as a task without a parent (signal
 * watchers start their callbacks with it); returns the task */
int lh_spawn_root(lua_State *L);

/* registers the task metatable (once per state) and adds spawn and
 * timeout to the module table at mod */
void lh_spawn_open(lua_State *L, int mod);

#endif
