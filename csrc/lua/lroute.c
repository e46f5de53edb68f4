/* core.route_walk(root, path, empty): the router's trie walk and its
 * parameters (lua/lhyper/router.lua `lua_route_walk`) in C, over the same
 * Lua tables. In Lua each path segment costs a string.find and a
 * string.sub, each a C call, and they are most of the time a request
 * spends in the router; here a segment is a memchr, one interned string
 * and one raw table read. LHYPER_ROUTER_C=0 makes the router use its Lua
 * walk instead. */
#include <string.h>

#include "lroute.h"

#include <lauxlib.h>

#include "lreq.h"

/* a node's slots (router.lua S, P, C, T, EP, PAT) */
enum { N_S = 1, N_P = 2, N_C = 3, N_T = 4, N_EP = 5, N_PAT = 6 };

#define ROUTE_CAPS 34 /* router.lua allows 32 parameters a pattern; a nest's rest */

typedef struct {
  lua_State *L;
  const char *path;
  size_t len;
  int depth; /* nested walks: one at each node where a branch may fail */
  struct {
    size_t off, len;
  } cap[ROUTE_CAPS + 1]; /* captured segments by position, 1-based */
} walk_t;

#define WALK_DEPTH_MAX 1000

static int hexval(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  c |= 0x20;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

/* pushes seg percent-decoded (router.lua decode); 0 when an escape is
 * malformed or %00 */
static int push_decoded(lua_State *L, const char *p, size_t n) {
  if (!memchr(p, '%', n)) {
    lua_pushlstring(L, p, n);
    return 1;
  }
  luaL_Buffer b;
  char *d = luaL_buffinitsize(L, &b, n);
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    if (p[i] != '%') {
      d[k++] = p[i];
      continue;
    }
    if (i + 2 >= n) {
      luaL_pushresultsize(&b, 0);
      lua_pop(L, 1);
      return 0;
    }
    int a = hexval((unsigned char)p[i + 1]), c = hexval((unsigned char)p[i + 2]);
    if (a < 0 || c < 0 || (a | c) == 0) {
      luaL_pushresultsize(&b, 0);
      lua_pop(L, 1);
      return 0;
    }
    d[k++] = (char)(a * 16 + c);
    i += 2;
  }
  luaL_pushresultsize(&b, k);
  return 1;
}

/* 1 when the constrained node at index c accepts segment p..n: its Lua
 * pattern (string.find at the upvalue) matches the decoded segment */
static int accepts(walk_t *w, int c, const char *p, size_t n) {
  lua_State *L = w->L;
  lua_pushvalue(L, lua_upvalueindex(1));
  if (!push_decoded(L, p, n)) {
    lua_pop(L, 1);
    return 0;
  }
  lua_rawgeti(L, c, N_PAT);
  lua_call(L, 2, 1);
  int ok = !lua_isnil(L, -1);
  lua_pop(L, 1);
  return ok;
}

/* 0 when there is no room (a trie deeper in parameters than patterns may be) */
static int capture(walk_t *w, int nc, const char *p, size_t n) {
  if (nc > ROUTE_CAPS) return 0;
  w->cap[nc].off = (size_t)(p - w->path);
  w->cap[nc].len = n;
  return 1;
}

/* the node's slot at index node pushed; its type */
static int slot(lua_State *L, int node, int i) { return lua_rawgeti(L, node, i); }

static int walk(walk_t *w, int node, size_t pos, int nc);

/* Walks from the node at stack index `node`, the segment starting at
 * pos. On a match pushes the endpoint and returns the number of captures;
 * else pushes nothing and returns -1. The stack above `node` on entry is
 * left as it was found. */
static int walk_at(walk_t *w, int node, size_t pos, int nc) {
  lua_State *L = w->L;
  if (++w->depth > WALK_DEPTH_MAX) luaL_error(L, "router: path too deep");
  luaL_checkstack(L, 12, "router: path too deep");
  int base = lua_gettop(L);
  lua_pushvalue(L, node);
  node = base + 1; /* a slot of our own: the loop moves it down the trie */
  for (;;) {
    const char *p = w->path + pos;
    size_t rem = w->len - pos;
    const char *slash = memchr(p, '/', rem);
    size_t n = slash ? (size_t)(slash - p) : rem;
    size_t next = pos + n + 1; /* valid when slash */
    int top = node;
    int t = top + 1, s = top + 2, c = top + 3, pp = top + 4, child = top + 5;
    int has_t = slot(L, node, N_T) == LUA_TTABLE;
    int has_s = slot(L, node, N_S) == LUA_TTABLE;
    int has_c = slot(L, node, N_C) == LUA_TTABLE;
    int has_p = slot(L, node, N_P) == LUA_TTABLE;
    int has_child = 0;
    if (has_s) {
      lua_pushlstring(L, p, n);
      has_child = lua_rawget(L, s) == LUA_TTABLE;
    } else {
      lua_pushnil(L);
    }
    if (has_child) {
      if (!(has_t || (n && (has_c || has_p)))) {
        if (!slash) {
          if (slot(L, child, N_EP) != LUA_TTABLE) break;
          lua_replace(L, base + 1);
          lua_settop(L, base + 1);
          return nc;
        }
        lua_replace(L, node);
        lua_settop(L, node);
        pos = next;
        continue;
      }
      if (slash) {
        int k = walk(w, child, next, nc);
        if (k >= 0) {
          lua_replace(L, base + 1);
          lua_settop(L, base + 1);
          return k;
        }
      } else if (slot(L, child, N_EP) == LUA_TTABLE) {
        lua_replace(L, base + 1);
        lua_settop(L, base + 1);
        return nc;
      } else {
        lua_pop(L, 1);
      }
    }
    if (n) {
      if (has_c && accepts(w, c, p, n) && capture(w, nc + 1, p, n)) {
        if (slash) {
          int k = walk(w, c, next, nc + 1);
          if (k >= 0) {
            lua_replace(L, base + 1);
            lua_settop(L, base + 1);
            return k;
          }
        } else if (slot(L, c, N_EP) == LUA_TTABLE) {
          lua_replace(L, base + 1);
          lua_settop(L, base + 1);
          return nc + 1;
        } else {
          lua_pop(L, 1);
        }
      }
      if (has_p && capture(w, nc + 1, p, n)) {
        if (!has_t) {
          if (!slash) {
            if (slot(L, pp, N_EP) != LUA_TTABLE) break;
            lua_replace(L, base + 1);
            lua_settop(L, base + 1);
            return nc + 1;
          }
          lua_pushvalue(L, pp);
          lua_replace(L, node);
          lua_settop(L, node);
          pos = next;
          nc++;
          continue;
        }
        if (slash) {
          int k = walk(w, pp, next, nc + 1);
          if (k >= 0) {
            lua_replace(L, base + 1);
            lua_settop(L, base + 1);
            return k;
          }
        } else if (slot(L, pp, N_EP) == LUA_TTABLE) {
          lua_replace(L, base + 1);
          lua_settop(L, base + 1);
          return nc + 1;
        } else {
          lua_pop(L, 1);
        }
      }
    }
    if (has_t) {
      int nest = pos < w->len;
      if (!nest) {
        lua_getfield(L, t, "nest");
        nest = lua_toboolean(L, -1);
        lua_pop(L, 1);
      }
      if (nest && capture(w, nc + 1, p, rem)) {
        lua_pushvalue(L, t);
        lua_replace(L, base + 1);
        lua_settop(L, base + 1);
        return nc + 1;
      }
    }
    break;
  }
  lua_settop(L, base);
  return -1;
}

static int walk(walk_t *w, int node, size_t pos, int nc) {
  int k = walk_at(w, node, pos, nc);
  w->depth--;
  return k;
}

/* Pushes params for the endpoint at ep (the walk's k captures) and, for a
 * nest, its rest (else nil): 2 values; or false and nil when a parameter
 * is badly percent-encoded */
static void push_params(walk_t *w, int ep, int k, int empty) {
  lua_State *L = w->L;
  lua_getfield(L, ep, "names");
  int names = lua_gettop(L);
  int n = lua_istable(L, names) ? (int)lua_rawlen(L, names) : 0;
  if (n > k) n = k;
  if (n == 0) {
    lua_pushvalue(L, empty);
  } else {
    lua_createtable(L, 0, n);
    for (int i = 1; i <= n; i++) {
      lua_rawgeti(L, names, i);
      if (!push_decoded(L, w->path + w->cap[i].off, w->cap[i].len)) {
        lua_settop(L, names - 1);
        lua_pushboolean(L, 0);
        lua_pushnil(L);
        return;
      }
      lua_rawset(L, -3);
    }
  }
  if (k > n) lua_pushlstring(L, w->path + w->cap[k].off, w->cap[k].len);
  else lua_pushnil(L);
  lua_remove(L, names);
}

/* route_walk(root, path, empty) -> endpoint, params, rest; nil when no
 * route matches; endpoint, false when a parameter is badly
 * percent-encoded. params maps the endpoint's names to the decoded
 * captures (empty when it has none); rest is a nest's raw remainder. */
static int l_route_walk(lua_State *L) {
  walk_t w;
  luaL_checktype(L, 1, LUA_TTABLE);
  w.path = luaL_checklstring(L, 2, &w.len);
  w.L = L;
  w.depth = 0;
  lua_settop(L, 3);
  if (w.len == 0 || w.path[0] != '/') return 0;
  int k = walk(&w, 1, 1, 0);
  if (k < 0) return 0;
  push_params(&w, 4, k, 3);
  return 3;
}

/* where route_match finds a router's tables (stack or upvalue indices) */
typedef struct {
  int root, stat, empty; /* its trie, its whole paths, its params for none */
  int get;               /* the string "GET", or 0 */
  int ignore;            /* trailing_slash = "ignore" */
} route_at_t;

/* a router's match of the req r at index 1: pushes path, endpoint,
 * params, rest, method and returns 5; or path, nil and returns 2 when
 * nothing matches. The path is req.path (without a trailing slash with
 * ignore), the method req.method (both as Lua may have set them; the
 * string at a->get is pushed for GET rather than made again); the
 * endpoint comes from static (whole paths) or the walk. On a match
 * req.params and req.route are set, unless the endpoint is a nest; params
 * is false when a parameter is badly encoded. *routed tells whether
 * req.params and req.route were set. */
static int route_match(lua_State *L, lh_req_t *r, const route_at_t *a, int *routed) {
  walk_t w;
  w.L = L;
  w.depth = 0;
  *routed = 0;
  w.path = lh_req_path(L, r, 1, &w.len);
  if (a->ignore && w.len > 1 && w.path[w.len - 1] == '/') w.len--;
  int b = lua_gettop(L);
  lua_pushlstring(L, w.path, w.len); /* b + 1: the path */
  lua_pushvalue(L, b + 1);
  int k = 0;
  if (lua_rawget(L, a->stat) == LUA_TTABLE) { /* b + 2: the endpoint */
    lua_pushvalue(L, a->empty);              /* b + 3: params (none), b + 4: rest */
    lua_pushnil(L);
  } else {
    lua_pop(L, 1);
    if (w.len == 0 || w.path[0] != '/' || (k = walk(&w, a->root, 1, 0)) < 0) {
      lua_pushnil(L);
      return 2;
    }
    push_params(&w, b + 2, k, a->empty);
  }
  /* b + 5: the method */
  if (r->extra) /* req.method = m of a layer's comes first, as for the path */
    lua_getfield(L, 1, "method");
  else if (a->get && r->method.len == 3 && !memcmp(r->bytes + r->method.off, "GET", 3))
    lua_pushvalue(L, a->get);
  else
    lua_pushlstring(L, r->bytes + r->method.off, r->method.len);
  /* a compiled endpoint's [3]: its route, false for a nest (router.lua compile) */
  int t = lua_rawgeti(L, b + 2, 3);
  if (t == LUA_TNIL) {
    lua_pop(L, 1);
    t = lua_getfield(L, b + 2, "nest") == LUA_TNIL ? lua_getfield(L, b + 2, "route") : LUA_TBOOLEAN;
  }
  if (lua_toboolean(L, b + 3) && t == LUA_TSTRING) {
    lua_pushvalue(L, b + 3);
    lh_req_set_route(L, 1);
    *routed = 1;
  }
  lua_settop(L, b + 5);
  return 5;
}

/* route_req(req, root, static, empty, ignore) -> endpoint, params, rest,
 * path, method: a router's dispatch of a request it does not see nested
 * (route_match); nil, path when nothing matches. */
static int l_route_req(lua_State *L) {
  lh_req_t *r = lh_req_at(L, 1, lua_upvalueindex(2));
  luaL_checktype(L, 2, LUA_TTABLE);
  luaL_checktype(L, 3, LUA_TTABLE);
  route_at_t a = {2, 3, 4, 0, lua_toboolean(L, 5)};
  lua_settop(L, 4);
  int routed;
  if (route_match(L, r, &a, &routed) == 2) {
    lua_insert(L, 5); /* nil, path */
    return 2;
  }
  lua_rotate(L, 5, -1); /* endpoint, params, rest, method, path */
  lua_insert(L, 8);     /* endpoint, params, rest, path, method */
  return 5;
}

/* the upvalues of a router's route(req) (route_fn) */
enum { UP_FIND = 1, UP_REQ_MT, UP_ROOT, UP_STATIC, UP_EMPTY, UP_NESTED, UP_IGNORE, UP_GET };

/* route(req) -> service: the function a router's dispatch calls for req,
 * req.params and req.route set: the endpoint's own for the method when
 * the router compiled one (endpoint[1], a method -> service table; else
 * endpoint[2], its service). false and what route_req returns when the
 * router has more to do (no match, a nest, a bad parameter); nothing for
 * a request the router sees nested (nested[req] set) */
static int l_route(lua_State *L) {
  lh_req_t *r = lh_req_at(L, 1, lua_upvalueindex(UP_REQ_MT));
  lua_settop(L, 1);
  if (r->extra) { /* nest_service sets req.path: otherwise no request is nested */
    lua_pushvalue(L, 1);
    if (lua_rawget(L, lua_upvalueindex(UP_NESTED)) != LUA_TNIL) return 0;
    lua_pop(L, 1);
  }
  route_at_t a = {lua_upvalueindex(UP_ROOT), lua_upvalueindex(UP_STATIC),
                  lua_upvalueindex(UP_EMPTY), lua_upvalueindex(UP_GET),
                  lua_toboolean(L, lua_upvalueindex(UP_IGNORE))};
  int routed;
  int n = route_match(L, r, &a, &routed); /* from 2: path, endpoint, params, rest, method */
  if (routed) { /* a match, not a nest */
    if (lua_rawgeti(L, 3, 1) == LUA_TTABLE) {
      lua_pushvalue(L, 6);
      if (lua_rawget(L, -2) == LUA_TFUNCTION) return 1;
      lua_pop(L, 1);
    }
    lua_rawgeti(L, 3, 2);
    if (lua_type(L, -1) == LUA_TFUNCTION) return 1;
    lua_settop(L, 6);
  }
  if (n == 2) {
    lua_insert(L, 2); /* nil, path */
  } else {
    lua_rotate(L, 2, -1); /* endpoint, params, rest, method, path */
    lua_insert(L, 5);     /* endpoint, params, rest, path, method */
  }
  lua_pushboolean(L, 0);
  lua_insert(L, 2);
  return n + 1;
}

/* route_fn(root, static, empty, nested, ignore) -> route: a router's
 * route(req), its tables kept */
static int l_route_fn(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checktype(L, 2, LUA_TTABLE);
  luaL_checktype(L, 3, LUA_TTABLE);
  luaL_checktype(L, 4, LUA_TTABLE);
  lua_settop(L, 5);
  lua_pushvalue(L, lua_upvalueindex(1)); /* string.find */
  lua_pushvalue(L, lua_upvalueindex(2)); /* the req metatable */
  lua_rotate(L, 1, 2);
  lua_pushliteral(L, "GET");
  lua_pushcclosure(L, l_route, UP_GET);
  return 1;
}

void lh_route_open(lua_State *L, int mod) {
  /* string.find for constrained parameters */
  if (lua_getglobal(L, "string") != LUA_TTABLE || lua_getfield(L, -1, "find") != LUA_TFUNCTION) {
    lua_pop(L, 2); /* no string library: the router walks in Lua */
    return;
  }
  lua_remove(L, -2);
  lua_pushvalue(L, -1);
  lua_pushcclosure(L, l_route_walk, 1);
  lua_setfield(L, mod, "route_walk");
  lh_req_push_mt(L); /* upvalue 2: lh_req_at tells a req by it */
  lua_pushvalue(L, -2);
  lua_pushvalue(L, -2);
  lua_pushcclosure(L, l_route_req, 2);
  lua_setfield(L, mod, "route_req");
  lua_pushcclosure(L, l_route_fn, 2);
  lua_setfield(L, mod, "route_fn");
}
