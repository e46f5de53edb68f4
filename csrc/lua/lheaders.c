/* lhyper.headers: fields of a message as Lua sees them. The object points
 * into bytes its owner (a req, a res, or a copy of trailers) keeps; it
 * holds the owner in its user value. Names are compared lower-case. */
#include "lheaders.h"

#include <lauxlib.h>
#include <string.h>

#define HEADERS_MT "lhyper.headers"

typedef struct {
  const char *base;
  const lh_field_t *f;
  uint32_t n;
} lh_headers_t;

void lh_headers_lower(char *base, lh_field_t *f, uint32_t n) {
  for (uint32_t i = 0; i < n; i++) {
    char *s = base + f[i].name.off;
    for (uint32_t k = 0; k < f[i].name.len; k++)
      if (s[k] >= 'A' && s[k] <= 'Z') s[k] = (char)(s[k] + 32);
  }
}

void lh_headers_push_mt(lua_State *L, int mt, int owner, const char *base, const lh_field_t *f,
                        uint32_t n) {
  mt = lua_absindex(L, mt);
  owner = lua_absindex(L, owner);
  lh_headers_t *h = lua_newuserdatauv(L, sizeof *h, 1);
  h->base = base;
  h->f = f;
  h->n = n;
  lua_pushvalue(L, owner);
  lua_setiuservalue(L, -2, 1);
  lua_pushvalue(L, mt);
  lua_setmetatable(L, -2);
}

void lh_headers_push(lua_State *L, int owner, const char *base, const lh_field_t *f, uint32_t n) {
  owner = lua_absindex(L, owner);
  luaL_getmetatable(L, HEADERS_MT);
  lh_headers_push_mt(L, -1, owner, base, f, n);
  lua_remove(L, -2);
}

/* headers that own their bytes: a copy of fields + bytes in one block */
void lh_headers_copy(lua_State *L, const char *base, const lh_field_t *f, uint32_t n,
                     size_t blen) {
  size_t fsz = n * sizeof *f;
  char *blk = lua_newuserdatauv(L, fsz + blen + 1, 0);
  lh_field_t *nf = (lh_field_t *)blk;
  if (fsz) memcpy(nf, f, fsz);
  if (blen) memcpy(blk + fsz, base, blen);
  lh_headers_lower(blk + fsz, nf, n);
  lh_headers_push(L, -1, blk + fsz, nf, n);
  lua_remove(L, -2);
}

static lh_headers_t *check_headers(lua_State *L, int i) { return luaL_checkudata(L, i, HEADERS_MT); }

static const char *lower_key(lua_State *L, int i, size_t *n, char *buf, size_t cap) {
  const char *k = luaL_checklstring(L, i, n);
  if (*n > cap) return k; /* longer than any field we would match cheaply: compare as is */
  for (size_t j = 0; j < *n; j++) buf[j] = (k[j] >= 'A' && k[j] <= 'Z') ? (char)(k[j] + 32) : k[j];
  return buf;
}

static int find_from(const lh_headers_t *h, uint32_t from, const char *k, size_t n) {
  for (uint32_t i = from; i < h->n; i++)
    if (h->f[i].name.len == n && memcmp(h->base + h->f[i].name.off, k, n) == 0) return (int)i;
  return -1;
}

/* pushes the value of the field named at index 2, or nil */
static int get(lua_State *L, const lh_headers_t *h) {
  char buf[256];
  size_t n;
  const char *k = lower_key(L, 2, &n, buf, sizeof buf);
  int i = find_from(h, 0, k, n);
  if (i < 0) lua_pushnil(L);
  else lua_pushlstring(L, h->base + h->f[i].value.off, h->f[i].value.len);
  return 1;
}

static int headers_get(lua_State *L) { return get(L, check_headers(L, 1)); }

static int headers_get_all(lua_State *L) {
  lh_headers_t *h = check_headers(L, 1);
  char buf[256];
  size_t n;
  const char *k = lower_key(L, 2, &n, buf, sizeof buf);
  lua_newtable(L);
  int j = 0;
  for (int i = find_from(h, 0, k, n); i >= 0; i = find_from(h, (uint32_t)i + 1, k, n)) {
    lua_pushlstring(L, h->base + h->f[i].value.off, h->f[i].value.len);
    lua_rawseti(L, -2, ++j);
  }
  return 1;
}

static int headers_each_next(lua_State *L) {
  lh_headers_t *h = check_headers(L, lua_upvalueindex(1));
  lua_Integer i = lua_tointeger(L, lua_upvalueindex(2));
  if ((uint32_t)i >= h->n) return 0;
  lua_pushinteger(L, i + 1);
  lua_replace(L, lua_upvalueindex(2));
  lua_pushlstring(L, h->base + h->f[i].name.off, h->f[i].name.len);
  lua_pushlstring(L, h->base + h->f[i].value.off, h->f[i].value.len);
  return 2;
}

static int headers_each(lua_State *L) {
  check_headers(L, 1);
  lua_settop(L, 1);
  lua_pushinteger(L, 0);
  lua_pushcclosure(L, headers_each_next, 2);
  return 1;
}

static int headers_len(lua_State *L) {
  lua_pushinteger(L, check_headers(L, 1)->n);
  return 1;
}

/* __index: upvalue 1 is the methods table, 2 the metatable, which tells
 * a headers object without a look-up by name (luaL_checkudata) */
static int headers_index(lua_State *L) {
  lh_headers_t *h = lua_touserdata(L, 1);
  int ok = h && lua_getmetatable(L, 1) && lua_rawequal(L, -1, lua_upvalueindex(2));
  if (!ok) h = check_headers(L, 1); /* raises */
  /* methods first; any other key is a field name (get raises for what
   * is not a string or a number) */
  lua_pushvalue(L, 2);
  if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL) return 1;
  lua_pop(L, 1);
  return get(L, h);
}

static int headers_tostring(lua_State *L) {
  lh_headers_t *h = check_headers(L, 1);
  lua_pushfstring(L, "lhyper.headers (%d fields)", (int)h->n);
  return 1;
}

static const luaL_Reg headers_methods[] = {
  {"get", headers_get}, {"get_all", headers_get_all}, {"each", headers_each}, {NULL, NULL}};

void lh_headers_open(lua_State *L) {
  if (luaL_newmetatable(L, HEADERS_MT)) {
    luaL_newlib(L, headers_methods);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, "__methods");
    lua_pushvalue(L, -2);
    lua_pushcclosure(L, headers_index, 2);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, headers_len);
    lua_setfield(L, -2, "__len");
    lua_pushcfunction(L, headers_tostring);
    lua_setfield(L, -2, "__tostring");
  }
  lua_pop(L, 1);
}
