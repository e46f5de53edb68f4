/* lhyper.condition: tasks wait until another task signals them. */
#ifndef LH_LCOND_H
#define LH_LCOND_H

#include "ltask.h"

/* registers the metatable (once per state) and adds condition to the
 * module table at mod */
void lh_cond_open(lua_State *L, int mod);

#endif
