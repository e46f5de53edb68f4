/* luaopen_lhyper_core: the module table of the C core, the shortcut
 * switches it reads once (tuning.h), and the one hook through which the
 * Lua side (lua/lhyper) adds methods written in Lua to lhyper's C objects.
 * Everything else lives with its object: ltask.c (state, tasks, errors),
 * lsvc.c (servers), lreq.c, lheaders.c, lstream.c, lclient.c, llayer.c
 * (what layers need), llogw.c (log writers), lroute.c (the router's walk), lworkers.c
 * (worker processes), lws.c (WebSocket), ltls.c (TLS contexts), lzstream.c
 * (zlib streams), lfile.c (stat for lhyper.static). */
#include <lauxlib.h>
#include <lua.h>

#include "lchannel.h"
#include "lclient.h"
#include "lcond.h"
#include "lfile.h"
#include "lheaders.h"
#include "llayer.h"
#include "llogw.h"
#include "lroute.h"
#include "lreq.h"
#include "lspawn.h"
#include "lstream.h"
#include "lsvc.h"
#include "lws.h"
#include "ltls.h"
#include "ltask.h"
#include "tuning.h"
#include "lworkers.h"
#include "lzstream.h"

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

/* tuning() -> { fast_head = true, kept_heads = true, ... }: the switches
 * as read at load */
static int l_tuning(lua_State *L) {
  lua_createtable(L, 0, 11);
  lua_pushboolean(L, lh_tuning.fast_head);
  lua_setfield(L, -2, "fast_head");
  lua_pushboolean(L, lh_tuning.kept_heads);
  lua_setfield(L, -2, "kept_heads");
  lua_pushboolean(L, lh_tuning.kept_values);
  lua_setfield(L, -2, "kept_values");
  lua_pushboolean(L, lh_tuning.next_msg);
  lua_setfield(L, -2, "next_msg");
  lua_pushboolean(L, lh_tuning.doze);
  lua_setfield(L, -2, "doze");
  lua_pushboolean(L, lh_tuning.fast_close);
  lua_setfield(L, -2, "fast_close");
  lua_pushboolean(L, lh_tuning.alloc_cache);
  lua_setfield(L, -2, "alloc_cache");
  lua_pushboolean(L, lh_tuning.router_c);
  lua_setfield(L, -2, "router_c");
  lua_pushboolean(L, lh_tuning.tls_one_read);
  lua_setfield(L, -2, "tls_one_read");
  lua_pushboolean(L, lh_tuning.tls_keep_buffers);
  lua_setfield(L, -2, "tls_keep_buffers");
  lua_pushboolean(L, lh_tuning.fast_layers);
  lua_setfield(L, -2, "fast_layers");
  return 1;
}

__attribute__((visibility("default"))) int luaopen_lhyper_core(lua_State *L) {
  lh_tuning_load();
  lh_state_open(L);
  lua_newtable(L);
  int mod = lua_gettop(L);
  lh_task_open(L, mod);
  lh_spawn_open(L, mod);
  lh_channel_open(L, mod);
  lh_cond_open(L, mod);
  lh_headers_open(L);
  lh_req_open(L);
  lh_stream_open(L);
  lh_svc_open(L, mod);
  lh_client_open(L, mod);
  lh_layer_open(L, mod);
  lh_logw_open(L, mod);
  lh_route_open(L, mod);
  lh_workers_open(L, mod);
  lh_ws_open(L, mod);
  lh_ltls_open(L, mod);
  lh_zstream_open(L, mod);
  lh_file_open(L, mod);
  lua_pushcfunction(L, l_methods);
  lua_setfield(L, mod, "methods");
  lua_pushcfunction(L, l_tuning);
  lua_setfield(L, mod, "tuning");
  return 1;
}
