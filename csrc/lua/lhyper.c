/* luaopen_lhyper_core: the module table of the C core, and the one hook
 * through which the Lua side (lua/lhyper) adds methods written in Lua to
 * lhyper's C objects. Everything else lives with its object: ltask.c
 * (state, tasks, errors), lsvc.c (servers), lreq.c, lheaders.c,
 * lstream.c, lclient.c. */
#include <lauxlib.h>
#include <lua.h>

#include "lclient.h"
#include "lheaders.h"
#include "lreq.h"
#include "lstream.h"
#include "lsvc.h"
#include "ltask.h"

/* methods(type, t): adds the functions of t to the methods of the object
 * type "lhyper.<type>" (req, res, client, server, stream, headers, ...);
 * each such metatable keeps its methods table in __methods. A name the
 * type already has is refused: Lua adds, it never replaces. The modules of
 * lua/lhyper call this when they are loaded (init.lua: req:read_all;
 * client.lua: client:request, res:read_all). */
static int l_methods(lua_State *L) {
  const char *type = luaL_checkstring(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_settop(L, 2);
  lua_pushfstring(L, "lhyper.%s", type);
  if (luaL_getmetatable(L, lua_tostring(L, -1)) != LUA_TTABLE ||
      lua_getfield(L, -1, "__methods") != LUA_TTABLE)
    return luaL_argerror(L, 1, "not an lhyper object type");
  int m = lua_gettop(L);
  lua_pushnil(L);
  while (lua_next(L, 2)) {
    if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TFUNCTION)
      return luaL_argerror(L, 2, "names and functions expected");
    lua_pushvalue(L, -2);
    if (lua_rawget(L, m) != LUA_TNIL)
      return luaL_error(L, "lhyper.%s already has a method '%s'", type, lua_tostring(L, -3));
    lua_pop(L, 1);
    lua_pushvalue(L, -2);
    lua_insert(L, -2);
    lua_rawset(L, m);
  }
  return 0;
}

__attribute__((visibility("default"))) int luaopen_lhyper_core(lua_State *L) {
  lh_state_open(L);
  lua_newtable(L);
  int mod = lua_gettop(L);
  lh_task_open(L, mod);
  lh_headers_open(L);
  lh_req_open(L);
  lh_stream_open(L);
  lh_svc_open(L, mod);
  lh_client_open(L, mod);
  lua_pushcfunction(L, l_methods);
  lua_setfield(L, mod, "methods");
  return 1;
}
