/* lhyper.channel: a bounded queue of values between tasks. */
#ifndef LH_LCHANNEL_H
#define LH_LCHANNEL_H

#include "ltask.h"

/* registers the metatable (once per state) and adds channel to the module
 * table at mod */
void lh_channel_open(lua_State *L, int mod);

#endif
