/* lhyper.core.deflater and lhyper.core.inflater: zlib streams (gzip,
 * zlib) for the compression layer and the client's response decoding. */
#ifndef LH_LZSTREAM_H
#define LH_LZSTREAM_H

#include <lua.h>

/* registers the metatables (once per state) and adds deflater and
 * inflater to the module table at mod */
void lh_zstream_open(lua_State *L, int mod);

#endif
