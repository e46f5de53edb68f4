/* TLS contexts as Lua values (ltls.c): lhyper.tls_ctx userdata made from
 * the tls option table, which servers and clients hand to the C core. */
#ifndef LH_LTLS_H
#define LH_LTLS_H

#include <lua.h>

#include "tls.h"

/* the context at index i (raises if it is not one) */
lh_tls_ctx_t *lh_ltls_check(lua_State *L, int i);
/* the same, NULL instead of raising (where Lua must not unwind: OpenSSL's callbacks) */
lh_tls_ctx_t *lh_ltls_test(lua_State *L, int i);
/* pushes { version, cipher, alpn, sni, resumed } of a connection, or nil
 * for none (plain HTTP, or a connection that is gone) */
void lh_ltls_push_info(lua_State *L, lh_tls_t *t);
/* registers the metatable and adds tls_ctx to the module table at mod */
void lh_ltls_open(lua_State *L, int mod);

#endif
