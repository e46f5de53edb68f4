/* TLS contexts for Lua: core.tls_ctx(role, opts) makes one from a tls
 * option table that lhyper/init.lua or lhyper/client.lua has checked. The
 * userdata holds a reference to the context; servers and connections take
 * their own, so it may be collected while they run. */
#include "ltls.h"

#include <lauxlib.h>
#include <string.h>

#include "ltask.h"

#define CTX_MT "lhyper.tls_ctx"

typedef struct {
  lh_tls_ctx_t *ctx; /* NULL until made, and once collected */
} lh_ltls_t;

lh_tls_ctx_t *lh_ltls_check(lua_State *L, int i) {
  lh_ltls_t *x = luaL_checkudata(L, i, CTX_MT);
  if (!x->ctx) luaL_argerror(L, i, "TLS context is gone");
  return x->ctx;
}

lh_tls_ctx_t *lh_ltls_test(lua_State *L, int i) {
  lh_ltls_t *x = luaL_testudata(L, i, CTX_MT);
  return x ? x->ctx : NULL;
}

/* t[k] as a string, NULL when absent; the value stays on the stack */
static const char *opt_str(lua_State *L, int t, const char *k) {
  lua_getfield(L, t, k);
  return lua_tostring(L, -1);
}

static int opt_version(lua_State *L, int t, const char *k) {
  const char *v = opt_str(L, t, k);
  return !v ? 0 : !strcmp(v, "1.3") ? 13 : 12;
}

/* tls_ctx(role, opts) -> ctx | nil, err, kind. opts: cert, key, ca,
 * client_ca, ciphers, ciphersuites, min_version and max_version ("1.2",
 * "1.3"), alpn (array of names), verify, session_tickets,
 * ticket_rotation, and _keys_from (a context whose ticket keys to share) */
static int l_tls_ctx(lua_State *L) {
  static const char *const roles[] = {"server", "client", NULL};
  lh_role_t role = luaL_checkoption(L, 1, NULL, roles) ? LH_ROLE_CLIENT : LH_ROLE_SERVER;
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_settop(L, 2);
  lh_ltls_t *x = lua_newuserdatauv(L, sizeof *x, 0);
  x->ctx = NULL;
  luaL_setmetatable(L, CTX_MT);
  int ud = lua_gettop(L);
  lh_tls_opts_t o;
  memset(&o, 0, sizeof o);
  o.cert = opt_str(L, 2, "cert");
  o.key = opt_str(L, 2, "key");
  o.ca = opt_str(L, 2, "ca");
  o.client_ca = opt_str(L, 2, "client_ca");
  o.ciphers = opt_str(L, 2, "ciphers");
  o.ciphersuites = opt_str(L, 2, "ciphersuites");
  o.min_version = opt_version(L, 2, "min_version");
  o.max_version = opt_version(L, 2, "max_version");
  if (lua_getfield(L, 2, "verify") == LUA_TBOOLEAN && !lua_toboolean(L, -1)) o.no_verify = 1;
  if (lua_getfield(L, 2, "session_tickets") == LUA_TBOOLEAN && !lua_toboolean(L, -1)) o.no_tickets = 1;
  o.ticket_rotation = (uint32_t)lh_opt_uint(L, 2, "ticket_rotation", 0, UINT32_MAX);
  if (lua_getfield(L, 2, "_keys_from") != LUA_TNIL) o.keys_from = lh_ltls_check(L, -1);
  unsigned char alpn[512];
  if (lua_getfield(L, 2, "alpn") == LUA_TTABLE) {
    /* names -> wire format: each one length-prefixed (RFC 7301 3.1) */
    lua_Integer n = luaL_len(L, -1);
    size_t len, w = 0;
    for (lua_Integer i = 1; i <= n; i++) {
      lua_geti(L, -1, i);
      const char *p = lua_tolstring(L, -1, &len);
      if (!p || len == 0 || len > 255 || w + 1 + len > sizeof alpn)
        return luaL_error(L, "tls.alpn: protocol names of 1 to 255 bytes expected");
      alpn[w++] = (unsigned char)len;
      memcpy(alpn + w, p, len);
      w += len;
      lua_pop(L, 1);
    }
    o.alpn = alpn;
    o.alpn_len = w;
  }
  char err[256];
  int r = lh_tls_ctx_new(role, &o, &x->ctx, err, sizeof err);
  if (r) return lh_push_fail(L, r, r == LH_ETLS_CONFIG ? err : NULL);
  lua_pushvalue(L, ud);
  return 1;
}

static int ctx_gc(lua_State *L) {
  lh_ltls_t *x = luaL_checkudata(L, 1, CTX_MT);
  if (x->ctx) lh_tls_ctx_unref(x->ctx);
  x->ctx = NULL;
  return 0;
}

static int ctx_tostring(lua_State *L) {
  lh_ltls_t *x = luaL_checkudata(L, 1, CTX_MT);
  lua_pushfstring(L, "lhyper.tls_ctx (%s)",
                  !x->ctx ? "gone" : lh_tls_ctx_role(x->ctx) == LH_ROLE_SERVER ? "server" : "client");
  return 1;
}

void lh_ltls_push_info(lua_State *L, lh_tls_t *t) {
  if (!t || !lh_tls_is_done(t)) {
    lua_pushnil(L);
    return;
  }
  lua_createtable(L, 0, 5);
  lua_pushstring(L, lh_tls_version(t));
  lua_setfield(L, -2, "version");
  lua_pushstring(L, lh_tls_cipher(t));
  lua_setfield(L, -2, "cipher");
  size_t n;
  const char *alpn = lh_tls_alpn(t, &n);
  if (alpn) {
    lua_pushlstring(L, alpn, n);
    lua_setfield(L, -2, "alpn");
  }
  const char *sni = lh_tls_servername(t);
  if (sni) {
    lua_pushstring(L, sni);
    lua_setfield(L, -2, "sni");
  }
  lua_pushboolean(L, lh_tls_is_resumed(t));
  lua_setfield(L, -2, "resumed");
}

void lh_ltls_open(lua_State *L, int mod) {
  if (luaL_newmetatable(L, CTX_MT)) {
    lua_pushcfunction(L, ctx_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, ctx_tostring);
    lua_setfield(L, -2, "__tostring");
  }
  lua_pop(L, 1);
  lua_pushcfunction(L, l_tls_ctx);
  lua_setfield(L, mod, "tls_ctx");
}
