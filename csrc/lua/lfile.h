/* lhyper.core.file_info: what stat(2) says of a path, for lhyper.static. */
#ifndef LH_LFILE_H
#define LH_LFILE_H

#include <lua.h>

/* adds file_info to the module table at mod */
void lh_file_open(lua_State *L, int mod);

#endif
