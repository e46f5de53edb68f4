/* lhyper.headers: a read-only, case-insensitive, ordered view of message
 * fields (a request's, a response's, trailers). */
#ifndef LH_LHEADERS_H
#define LH_LHEADERS_H

#include <lua.h>

#include "lh.h"

/* pushes headers over n fields at base, names already lower-case; the
 * value at index owner holds the bytes and is kept alive with them */
void lh_headers_push(lua_State *L, int owner, const char *base, const lh_field_t *f, uint32_t n);
/* the same with the headers metatable at index mt (lh_headers_open made it:
 * "lhyper.headers" in the registry), which spares a look-up by name */
void lh_headers_push_mt(lua_State *L, int mt, int owner, const char *base, const lh_field_t *f,
                        uint32_t n);
/* pushes headers owning a copy of the n fields over base (blen bytes),
 * names lower-cased */
void lh_headers_copy(lua_State *L, const char *base, const lh_field_t *f, uint32_t n,
                     size_t blen);
/* lower-cases the n field names in place */
void lh_headers_lower(char *base, lh_field_t *f, uint32_t n);
void lh_headers_open(lua_State *L);

#endif
