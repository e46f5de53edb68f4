/* lhyper.task: tasks made by lhyper.spawn and lhyper.timeout, as the Lua
 * code that holds them sees them (cancel, join, done, detach). */
#ifndef LH_LSPAWN_H
#define LH_LSPAWN_H

#include "ltask.h"

/* lua_CFunction: spawn(fn, ...) as a task without a parent (signal
 * watchers start their callbacks with it); returns the task */
int lh_spawn_root(lua_State *L);

/* what lh_spawn_within's time running out means, called in the waiting
 * task with its stack as it was when it called lh_spawn_within: -1 lets
 * the child run on with no deadline; n >= 0: the child is cancelled and
 * the n values it pushed are returned */
typedef int (*lh_within_expired_fn)(lua_State *L, void *ud);

/* lhyper.timeout for a caller that decides what expiry means: the
 * function at L's index first, with the values up to index last as
 * arguments, runs at once in a child task of the running one (raises
 * outside a task). What it opened and left open passes to the caller
 * when it returns; its results are returned as they are (none gives
 * none), an error it raised is raised again. If it has not ended after
 * sec seconds, expired(L, ud) decides. Call it as a tail: return
 * lh_spawn_within(...) (it may yield) */
int lh_spawn_within(lua_State *L, double sec, int first, int last, lh_within_expired_fn expired,
                    void *ud);

/* registers the task metatable (once per state) and adds spawn and
 * timeout to the module table at mod */
void lh_spawn_open(lua_State *L, int mod);

#endif
