/*
 * objcost.c - a Lua module for bench/objcost.sh: what reading a field of a
 * userdata through a C __index costs the Lua VM, beside a table field, and
 * what making such a userdata costs. Nothing of lhyper's: the bare object
 * model a req of lhyper's is built on.
 *
 *   objcost.new()          a userdata whose __index returns the string "/"
 *                          for "path" (a kept upvalue, no interning)
 *   objcost.new_checked()  the same, whose __index first checks that its
 *                          argument is one of its own (getmetatable and
 *                          rawequal, as lhyper's do) and makes the string
 *   objcost.table_req()    a table req made whole, as a server would make it
 *                          from a parsed head: method, target, path and a
 *                          headers table with the Host field, each string
 *                          made from bytes
 */
#include <lauxlib.h>
#include <lua.h>
#include <string.h>

static int plain_index(lua_State *L) {
  size_t n;
  const char *k = lua_tolstring(L, 2, &n);
  if (k && n == 4 && !memcmp(k, "path", 4)) {
    lua_pushvalue(L, lua_upvalueindex(1));
    return 1;
  }
  return 0;
}

static int checked_index(lua_State *L) {
  int ok = lua_touserdata(L, 1) && lua_getmetatable(L, 1) && lua_rawequal(L, -1, lua_upvalueindex(1));
  if (!ok) return luaL_argerror(L, 1, "objcost object expected");
  size_t n;
  const char *k = lua_tolstring(L, 2, &n);
  if (k && n == 4 && !memcmp(k, "path", 4)) {
    lua_pushlstring(L, "/", 1);
    return 1;
  }
  return 0;
}

static int new_object(lua_State *L) {
  lua_newuserdatauv(L, 64, 0);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_setmetatable(L, -2);
  return 1;
}

static int table_req(lua_State *L) {
  static const char head[] = "GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n";
  lua_createtable(L, 0, 4);
  lua_pushlstring(L, head, 3);
  lua_setfield(L, -2, "method");
  lua_pushlstring(L, head + 4, 1);
  lua_setfield(L, -2, "target");
  lua_pushlstring(L, head + 4, 1);
  lua_setfield(L, -2, "path");
  lua_createtable(L, 0, 1);
  lua_pushlstring(L, head + 22, 14);
  lua_setfield(L, -2, "host");
  lua_setfield(L, -2, "headers");
  return 1;
}

int luaopen_objcost(lua_State *L) {
  lua_newtable(L); /* the module */
  lua_newtable(L); /* the plain metatable */
  lua_pushliteral(L, "/");
  lua_pushcclosure(L, plain_index, 1);
  lua_setfield(L, -2, "__index");
  lua_pushcclosure(L, new_object, 1);
  lua_setfield(L, -2, "new");
  lua_newtable(L); /* the checked metatable, its own __index's upvalue */
  lua_pushvalue(L, -1);
  lua_pushcclosure(L, checked_index, 1);
  lua_setfield(L, -2, "__index");
  lua_pushcclosure(L, new_object, 1);
  lua_setfield(L, -2, "new_checked");
  lua_pushcfunction(L, table_req);
  lua_setfield(L, -2, "table_req");
  return 1;
}
