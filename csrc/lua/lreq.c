/* lhyper.req: a request's Lua object (lazy fields over a copy of its
 * head, the body iterator, trailers, upgrade) and its life: answered from
 * the handler's values, its body iterator pumped, failed when the handler
 * raises, finished when the handler's coroutine ends, dropped when the
 * connection goes. Every lh_req_* function is here. */
#include "lreq.h"

#include <string.h>

#include "lheaders.h"
#include "lstream.h"
#include "ltls.h"
#include "tuning.h"

#define REQ_MT "lhyper.req"

/* user values: the headers object and trailers (made when asked for), the
 * server (kept alive by its requests), the peer's address (looked up
 * once, when asked for), the fields Lua sets (made on the first), and
 * slots of their own for what routers and layers set on every request:
 * req.params, req.route, req.id, and what C keeps for layers (lh_req_keep) */
enum {
  UV_HEADERS = 1, UV_TRAILERS, UV_SERVER, UV_PEER, UV_FIELDS,
  UV_PARAMS, UV_ROUTE, UV_ID, UV_XNAME, UV_LOG, REQ_NUV = UV_LOG
};

void lh_req_report(const lh_req_t *r, int code, const char *msg, lua_State *vL, int vi,
                   const char *phase) {
  lh_report_t rep = {code, msg, vL, vi, phase ? phase : r->pumping ? "body" : "handler"};
  r->host->report(r->host, &rep, r);
}

static void report(const lh_req_t *r, int code, const char *msg) {
  lh_req_report(r, code, msg, NULL, 0, NULL);
}

static lh_req_t *check_req(lua_State *L, int i) { return luaL_checkudata(L, i, REQ_MT); }

lh_req_t *lh_req_new(lua_State *L, lh_req_host_t *host, lh_sconn_t *sc, const lh_head_t *h,
                     const char *base, int mt, int owner) {
  size_t fsz = h->nfields * sizeof(lh_field_t);
  /* sizes in steps of 32 bytes: freed reqs serve later ones (lalloc.c) */
  size_t sz = (sizeof(lh_req_t) + fsz + h->len + 31) & ~(size_t)31;
  lh_req_t *r = lua_newuserdatauv(L, sz, REQ_NUV);
  memset(r, 0, sizeof *r);
  lua_pushvalue(L, mt);
  lua_setmetatable(L, -2);
  r->fields = (lh_field_t *)(r + 1);
  r->bytes = (char *)(r + 1) + fsz;
  if (fsz) memcpy(r->fields, h->fields, fsz);
  memcpy(r->bytes, base, h->len);
  r->nfields = h->nfields;
  r->head_len = h->len;
  r->method = h->method;
  r->target = h->target;
  r->minor = h->minor;
  r->sc = sc;
  r->host = host;
  lua_pushvalue(L, owner);
  lua_setiuservalue(L, -2, UV_SERVER);
  return r;
}

/* --- req --- */

static int push_span(lua_State *L, const lh_req_t *r, lh_span_t s) {
  lua_pushlstring(L, r->bytes + s.off, s.len);
  return 1;
}

/* path of origin-form or absolute-form (RFC 9112 3.2); the target itself
 * for authority-form and asterisk-form */
static void target_parts(const lh_req_t *r, lh_span_t *path, lh_span_t *query, int *has_q) {
  const char *t = r->bytes + r->target.off;
  uint32_t n = r->target.len, start = 0;
  *has_q = 0;
  if (n && t[0] != '/') {
    const char *sch = memchr(t, ':', n);
    if (sch && (uint32_t)(sch - t) + 2 < n && sch[1] == '/' && sch[2] == '/') {
      uint32_t i = (uint32_t)(sch - t) + 3;
      while (i < n && t[i] != '/' && t[i] != '?') i++;
      start = i;
    }
  }
  uint32_t q = start;
  while (q < n && t[q] != '?') q++;
  path->off = r->target.off + start;
  path->len = q - start;
  if (q < n) {
    *has_q = 1;
    query->off = r->target.off + q + 1;
    query->len = n - q - 1;
  }
}

const char *lh_req_path(lua_State *L, lh_req_t *r, int idx, size_t *n) {
  if (r->extra) {
    lua_getiuservalue(L, idx, UV_FIELDS);
    int t = lua_getfield(L, -1, "path");
    const char *p = t == LUA_TSTRING ? lua_tolstring(L, -1, n) : NULL;
    lua_pop(L, 2); /* the fields table keeps it */
    if (p) return p;
  }
  lh_span_t path, query;
  int has_q;
  target_parts(r, &path, &query, &has_q);
  if (path.len == 0 && r->target.len && r->bytes[r->target.off] != '*' &&
      r->bytes[r->target.off] != '/' && memchr(r->bytes + r->target.off, '/', r->target.len)) {
    *n = 1; /* http://host with no path */
    return "/";
  }
  if (!path.len) path = r->target;
  *n = path.len;
  return r->bytes + path.off;
}

/* req_index's upvalues */
enum { UP_METHODS = 1, UP_REQ_MT, UP_HEADERS_MT };

static int req_headers(lua_State *L, lh_req_t *r) {
  if (r->lowered) {
    lua_getiuservalue(L, 1, UV_HEADERS);
    return 1;
  }
  lh_headers_lower(r->bytes, r->fields, r->nfields);
  r->lowered = 1;
  lh_headers_push_mt(L, lua_upvalueindex(UP_HEADERS_MT), 1, r->bytes, r->fields, r->nfields);
  lua_pushvalue(L, -1);
  lua_setiuservalue(L, 1, UV_HEADERS);
  return 1;
}

/* __index: fields, then methods. The req is told by its metatable, an
 * upvalue, without a look-up by name (luaL_checkudata) */
static int req_index(lua_State *L) {
  lh_req_t *r = lua_touserdata(L, 1);
  int ok = r && lua_getmetatable(L, 1) && lua_rawequal(L, -1, lua_upvalueindex(UP_REQ_MT));
  if (!ok) r = check_req(L, 1); /* raises */
  /* the metatable stays above the key: what is pushed next is returned */
  if (r->extra) {
    lua_getiuservalue(L, 1, UV_FIELDS);
    lua_pushvalue(L, 2);
    if (lua_rawget(L, -2) != LUA_TNIL) return 1;
    lua_pop(L, 2);
  }
  size_t n;
  const char *k = lua_tolstring(L, 2, &n);
  if (!k) return 0;
  lh_span_t path, query;
  int has_q;
  switch (n) {
    case 3:
      if (!memcmp(k, "tls", 3)) {
        /* https: the connection's TLS, nil for http or once it is gone */
        lh_ltls_push_info(L, r->sc ? lh_sconn_tls(r->sc) : NULL);
        return 1;
      }
      break;
    case 4:
      if (!memcmp(k, "path", 4)) {
        target_parts(r, &path, &query, &has_q);
        if (path.len == 0 && r->target.len && r->bytes[r->target.off] != '*' &&
            r->bytes[r->target.off] != '/' && memchr(r->bytes + r->target.off, '/', r->target.len)) {
          lua_pushliteral(L, "/"); /* http://host with no path */
          return 1;
        }
        return push_span(L, r, path.len || !r->target.len ? path : r->target);
      }
      break;
    case 2:
      if (!memcmp(k, "id", 2)) {
        if (lua_getiuservalue(L, 1, UV_ID) == LUA_TNIL && r->id) {
          /* set by lh_req_set_id_bytes: its string now (r->id stays on its bytes) */
          lua_pushlstring(L, r->id, r->idlen);
          lua_pushvalue(L, -1);
          lua_setiuservalue(L, 1, UV_ID);
        }
        return 1;
      }
      break;
    case 5:
      if (!memcmp(k, "route", 5)) return lua_getiuservalue(L, 1, UV_ROUTE), 1;
      if (!memcmp(k, "query", 5)) {
        target_parts(r, &path, &query, &has_q);
        if (!has_q) return 0;
        return push_span(L, r, query);
      }
      break;
    case 6:
      if (!memcmp(k, "method", 6)) return push_span(L, r, r->method);
      if (!memcmp(k, "params", 6)) return lua_getiuservalue(L, 1, UV_PARAMS), 1;
      if (!memcmp(k, "target", 6)) return push_span(L, r, r->target);
      break;
    case 7:
      if (!memcmp(k, "version", 7)) {
        lua_pushstring(L, r->minor == 0 ? "1.0" : "1.1");
        return 1;
      }
      if (!memcmp(k, "headers", 7)) return req_headers(L, r);
      break;
    case 11:
      if (!memcmp(k, "remote_addr", 11) || !memcmp(k, "remote_port", 11)) {
        if (lh_req_peer(L, r, 1) < 0) return 0;
        if (k[7] == 'p') lua_pushinteger(L, r->peer_port);
        else if (lua_getiuservalue(L, 1, UV_PEER) == LUA_TNIL) {
          /* kept in r->peerbuf: its string now */
          lua_pushlstring(L, r->peer, r->peerlen);
          lua_pushvalue(L, -1);
          lua_setiuservalue(L, 1, UV_PEER);
        }
        return 1;
      }
      break;
  }
  lua_pushvalue(L, 2);
  lua_rawget(L, lua_upvalueindex(UP_METHODS));
  return 1;
}

int lh_req_peer(lua_State *L, lh_req_t *r, int idx) {
  if (r->peer) return 0;
  /* kept once known: the request may outlive its connection */
  char peer[48];
  if (lh_tuning.fast_layers) {
    /* the bytes in the req; the string only if Lua reads it */
    int port = r->sc ? lh_sconn_peer(r->sc, r->peerbuf, sizeof r->peerbuf) : -1;
    if (port < 0) return -1;
    r->peer = r->peerbuf;
    r->peerlen = (uint32_t)strlen(r->peerbuf);
    r->peer_port = port;
    return 0;
  }
  int port = r->sc ? lh_sconn_peer(r->sc, peer, sizeof peer) : -1;
  if (port < 0) return -1;
  idx = lua_absindex(L, idx);
  size_t n;
  lua_pushstring(L, peer);
  r->peer = lua_tolstring(L, -1, &n);
  r->peerlen = (uint32_t)n;
  lua_setiuservalue(L, idx, UV_PEER);
  r->peer_port = port;
  return 0;
}

void lh_req_push_server(lua_State *L, int idx) { lua_getiuservalue(L, idx, UV_SERVER); }

/* pushes the req's fields table (the req at idx), made when missing */
static void fields(lua_State *L, lh_req_t *r, int idx) {
  if (lua_getiuservalue(L, idx, UV_FIELDS) == LUA_TTABLE) return;
  lua_pop(L, 1);
  lua_createtable(L, 0, 4);
  lua_pushvalue(L, -1);
  lua_setiuservalue(L, idx, UV_FIELDS);
  r->extra = 1;
}

/* the string on top, popped into slot uv of the req at idx; *p follows it */
static void set_string(lua_State *L, int idx, int uv, const char **p, uint32_t *len) {
  size_t n = 0;
  *p = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &n) : NULL;
  *len = (uint32_t)n;
  lua_setiuservalue(L, idx, uv);
}

void lh_req_set_route(lua_State *L, int idx) {
  lh_req_t *r = lua_touserdata(L, idx);
  idx = lua_absindex(L, idx);
  lua_setiuservalue(L, idx, UV_PARAMS);
  set_string(L, idx, UV_ROUTE, &r->route, &r->routelen);
}

void lh_req_set_id(lua_State *L, int idx) {
  lh_req_t *r = lua_touserdata(L, idx);
  set_string(L, lua_absindex(L, idx), UV_ID, &r->id, &r->idlen);
  r->id_clean = 0;
}

void lh_req_set_id_bytes(lua_State *L, int idx, const char *id, size_t n) {
  lh_req_t *r = lua_touserdata(L, idx);
  if (r->id) { /* a string of an earlier id goes */
    lua_pushnil(L);
    lua_setiuservalue(L, lua_absindex(L, idx), UV_ID);
  }
  r->id = id;
  r->idlen = (uint32_t)n;
  r->id_clean = 1;
}

void lh_req_keep(lua_State *L, int idx, int what) {
  lh_req_t *r = lua_touserdata(L, idx);
  idx = lua_absindex(L, idx);
  if (what == LH_REQ_KEEP_XNAME) set_string(L, idx, UV_XNAME, &r->xname, &r->xnlen);
  else lua_setiuservalue(L, idx, UV_LOG);
}

/* req.k = v: fields set from Lua live in a table of their own and come
 * before the request's own (a router sets req.path for a nested
 * service); req.k = nil takes one away. req.params, req.route and req.id
 * have slots of their own, followed by the C side (r->route, r->id) */
static int req_newindex(lua_State *L) {
  lh_req_t *r = check_req(L, 1);
  size_t kl;
  const char *k = lua_tolstring(L, 2, &kl);
  luaL_argexpected(L, lua_type(L, 2) == LUA_TSTRING, 2, "string");
  lua_settop(L, 3);
  if (kl == 2 && !memcmp(k, "id", 2)) {
    lh_req_set_id(L, 1);
    return 0;
  }
  if (kl == 5 && !memcmp(k, "route", 5)) {
    set_string(L, 1, UV_ROUTE, &r->route, &r->routelen);
    return 0;
  }
  if (kl == 6 && !memcmp(k, "params", 6)) {
    lua_setiuservalue(L, 1, UV_PARAMS);
    return 0;
  }
  if (lua_isnil(L, 3) && !r->extra) return 0;
  fields(L, r, 1);
  lua_insert(L, 2);
  lua_rawset(L, 2);
  return 0;
}

static int req_tostring(lua_State *L) {
  lh_req_t *r = check_req(L, 1);
  push_span(L, r, r->method);
  push_span(L, r, r->target);
  lua_pushfstring(L, "lhyper.req (%s %s)", lua_tostring(L, -2), lua_tostring(L, -1));
  return 1;
}

/* --- body --- */

static int body_next(lua_State *L);

static int body_next_k(lua_State *L, int status, lua_KContext ctx) {
  lh_task_unslot(lh_task_current(L));
  return body_next(L);
}

/* trailers are copied out of the parser, which reuses them for the next message */
static int body_end(lua_State *L, lh_req_t *r, const lh_disp_t *d) {
  r->body_done = 1;
  const lh_field_t *f;
  const char *base;
  size_t len;
  uint32_t n = lh_disp_trailers(d, &f, &base, &len);
  if (n) {
    lua_pushvalue(L, lua_upvalueindex(1));
    lh_headers_copy(L, base, f, n, len);
    lua_setiuservalue(L, -2, UV_TRAILERS);
    lua_pop(L, 1);
  }
  return 0;
}

/* req:body() once the request has no connection: the connection went
 * away (an error object, kind closed), or the handler returned */
static int body_gone(lua_State *L, lh_req_t *r) {
  if (r->dropped) return lh_raise(L, LH_ECLOSED, "connection closed before the body was read");
  return luaL_error(L, "req:body(): the request is over (its handler returned)");
}

static int body_next(lua_State *L) {
  lh_req_t *r = check_req(L, lua_upvalueindex(1));
  if (r->body_done) return 0;
  lh_disp_t *d = lh_req_disp(r);
  if (!d) return body_gone(L, r);
  const char *p;
  size_t n;
  int rc = lh_disp_read_body(d, &p, &n);
  if (rc == 1) {
    /* the handler's connection is polled after each of its resumes; for
     * another task of the request it is done here */
    if (lh_task_current(L) != &r->task) lh_sconn_defer_poll(r->sc);
    lua_pushlstring(L, p, n);
    return 1;
  }
  if (rc == 2) return body_end(L, r, d);
  if (rc == 0) {
    if (lh_task_current(L) != &r->task) lh_sconn_defer_poll(r->sc);
    return lh_req_wait(L, r, LH_WAIT_BODY, body_next_k);
  }
  /* the failure is the server's to report, whatever the handler does with it */
  r->body_failed = 1;
  report(r, rc, NULL);
  return lh_raise(L, rc, NULL);
}

/* req:body() -> iterator over the body's chunks; raises when the body was
 * already read to its end */
static int req_body(lua_State *L) {
  lh_req_t *r = check_req(L, 1);
  if (r->body_done) return luaL_error(L, "req:body(): the body was already read to its end");
  lua_settop(L, 1);
  lua_pushcclosure(L, body_next, 1);
  return 1;
}

static int req_trailers(lua_State *L) {
  check_req(L, 1);
  lua_getiuservalue(L, 1, UV_TRAILERS);
  return 1;
}

/* marks the body as too large: a handler that answers nothing gets 413 */
static int req_too_large(lua_State *L) {
  lh_req_t *r = check_req(L, 1);
  r->too_large = 1;
  lh_disp_t *d = lh_req_disp(r);
  if (d) lh_disp_disable_keep_alive(d);
  return 0;
}

/* --- upgrade: the connection as a raw stream --- */

/* 1 when the headers at index i (nil, a map or an array of pairs) have a
 * field named name (lower-case), in any case */
static int headers_have(lua_State *L, int i, const char *name) {
  size_t n = strlen(name), kl;
  if (!lua_istable(L, i)) return 0;
  int found = 0;
  if (lua_rawlen(L, i) == 0) {
    lua_pushnil(L);
    while (!found && lua_next(L, i)) {
      const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tolstring(L, -2, &kl) : NULL;
      found = k && kl == n && !strncasecmp(k, name, n);
      lua_pop(L, found ? 2 : 1);
    }
    return found;
  }
  int top = lua_gettop(L);
  for (lua_Integer j = 1; !found && j <= (lua_Integer)lua_rawlen(L, i); j++) {
    if (lua_rawgeti(L, i, j) == LUA_TTABLE && lua_rawgeti(L, -1, 1) == LUA_TSTRING) {
      const char *k = lua_tolstring(L, -1, &kl);
      found = kl == n && !strncasecmp(k, name, n);
    }
    lua_settop(L, top);
  }
  return found;
}

/* pushes a copy of the headers at index i (nil, a map or an array of
 * pairs) with the field name: value added */
static void headers_with(lua_State *L, int i, const char *name, const char *v, size_t vl) {
  lua_Integer n = lua_istable(L, i) ? (lua_Integer)lua_rawlen(L, i) : 0;
  lua_newtable(L);
  if (n > 0) {
    for (lua_Integer j = 1; j <= n; j++) {
      lua_rawgeti(L, i, j);
      lua_rawseti(L, -2, j);
    }
    lua_createtable(L, 2, 0);
    lua_pushstring(L, name);
    lua_rawseti(L, -2, 1);
    lua_pushlstring(L, v, vl);
    lua_rawseti(L, -2, 2);
    lua_rawseti(L, -2, n + 1);
    return;
  }
  if (lua_istable(L, i)) {
    lua_pushnil(L);
    while (lua_next(L, i)) {
      lua_pushvalue(L, -2);
      lua_insert(L, -2);
      lua_rawset(L, -4);
    }
  }
  lua_pushlstring(L, v, vl);
  lua_setfield(L, -2, name);
}

/* req:upgrade(headers) -> stream: 101 Switching Protocols (200 to CONNECT).
 * A 101 without an Upgrade field in headers answers the protocol the
 * request named (RFC 9110 7.8); one that offers several must be told which */
static int req_upgrade(lua_State *L) {
  lh_req_t *r = check_req(L, 1);
  /* before the dispatcher is asked for: an upgraded stream may be asleep,
   * and the one it wakes with knows nothing of the request */
  if (r->upgraded) return luaL_error(L, "req:upgrade: a response was already sent");
  if (!r->sc && !r->dropped)
    return luaL_error(L, "req:upgrade(): the request is over (its handler returned)");
  if (!r->sc) return lh_push_fail(L, LH_ECLOSED, NULL);
  lh_disp_t *d = lh_sconn_disp(r->sc); /* not upgraded: never asleep */
  const lh_conn_t *c = lh_disp_conn(d);
  if (!lh_conn_wants_upgrade(c)) return luaL_error(L, "req:upgrade: the request asked for no upgrade");
  if (!lh_conn_can_write_head(c)) return luaL_error(L, "req:upgrade: a response was already sent");
  if (!lh_conn_is_read_done(c)) return luaL_error(L, "req:upgrade: read the request body first");
  int hi = 2;
  lua_settop(L, 2);
  if (!lh_conn_is_connect(c) && !headers_have(L, 2, "upgrade")) {
    const char *proto = NULL;
    size_t plen = 0;
    for (uint32_t i = 0; i < r->nfields && !proto; i++) {
      if (lh_name_eq(r->bytes, r->fields[i].name, "upgrade", 7)) {
        proto = r->bytes + r->fields[i].value.off;
        plen = r->fields[i].value.len;
      }
    }
    if (!proto) return luaL_error(L, "req:upgrade: the request asked for no upgrade");
    if (memchr(proto, ',', plen))
      return luaL_error(L, "req:upgrade: the request offers several protocols (%s): name the one chosen in an 'upgrade' header",
                        lua_pushlstring(L, proto, plen));
    headers_with(L, 2, "upgrade", proto, plen);
    hi = lua_gettop(L);
  }
  char why[LH_HEAD_WHY];
  /* request_id's field too, as on any response */
  lh_head_extra_t x = {r->xname, r->id, r->xnlen, r->idlen, r->id_clean};
  int e = lh_head_write(L, d, NULL, lh_conn_is_connect(c) ? 200 : 101, hi, -1,
                        r->xname && r->id ? &x : NULL, why);
  if (e == LH_EUSER_HEADER) return luaL_error(L, "req:upgrade: %s", why);
  if (!e) e = lh_disp_upgrade(d);
  if (e) return lh_push_fail(L, e, NULL);
  r->upgraded = 1;
  r->responded = 1;
  r->status = lh_conn_is_connect(c) ? 200 : 101;
  lh_sconn_defer_poll(r->sc);
  lh_stream_push(L, r, 1);
  return 1;
}

/* --- answering --- */

/* a whole response without a body, the server's own; r notes how it went */
static void answer_empty(lh_req_t *r, lh_disp_t *d, int status) {
  lh_disp_respond_empty(d, status);
  r->status = (uint16_t)status;
  r->ended = lh_conn_is_write_done(lh_disp_conn(d));
}

/* writes the response from the handler's values status, headers, body at
 * S's indices si, si + 1, si + 2 (S: the running coroutine, or the handler's
 * finished one). returns 1 when a body iterator is to run, 0 when the
 * response is complete (or failed and was answered), LH_ECLOSED when a
 * response was already sent */
static int respond(lua_State *S, lh_req_t *r, int si) {
  if (r->upgraded) return 0;
  if (!r->sc) return 0;
  lh_disp_t *d = lh_sconn_disp(r->sc);
  const lh_conn_t *c = lh_disp_conn(d);
  if (!lh_conn_can_write_head(c)) return LH_ECLOSED;
  int isnum, hi = si + 1, bi = si + 2;
  lua_Integer status = lua_tointegerx(S, si, &isnum);
  int e = 0;
  const char *why = NULL;
  if (lua_isnoneornil(S, si)) {
    status = r->too_large ? 413 : 500;
    if (!r->too_large) why = "handler returned no status (nothing, or nil first)";
    hi = bi = 0;
  } else if (!isnum || status < 100 || status > 999 || (status < 200 && status != 101) ||
             status == 101) {
    e = LH_EUSER_STATUS;
    why = status == 101 ? "status 101 is only sent by req:upgrade" : NULL;
  }
  if (lh_conn_is_connect(c)) {
    /* CONNECT is served only by a tunnel (req:upgrade): refused otherwise,
     * and what follows the head may be tunnel bytes, so the connection ends */
    e = 0;
    status = 501;
    hi = bi = 0;
    lh_disp_disable_keep_alive(d);
  }
  int64_t len = 0;
  int bt = bi ? lua_type(S, bi) : LUA_TNIL;
  if (!e) {
    if (bt == LUA_TSTRING) len = (int64_t)lua_rawlen(S, bi);
    else if (bt == LUA_TFUNCTION) len = -1;
    else if (bt != LUA_TNIL && bt != LUA_TNONE) {
      e = LH_EUSER_SERVICE;
      why = "response body must be nil, a string or an iterator function";
    }
  }
  /* the handler is done: unless an iterator body reads it, the rest of
   * the request body is read by nobody */
  if (!e && bt != LUA_TFUNCTION) lh_disp_body_unwanted(d);
  char hwhy[LH_HEAD_WHY];
  if (!e) {
    /* request_id's field goes after the handler's (r->xname: its name, req.id its value) */
    lh_head_extra_t x = {r->xname, r->id, r->xnlen, r->idlen, r->id_clean};
    e = lh_head_write(S, d, lh_tuning.kept_heads ? &r->host->memo : NULL, (int)status, hi, len,
                      r->xname && r->id ? &x : NULL, hwhy);
    if (e == LH_EUSER_HEADER) why = hwhy;
  }
  if (e) {
    answer_empty(r, d, 500);
    report(r, e, why);
    return 0;
  }
  r->responded = 1;
  r->status = (uint16_t)status;
  if (why) report(r, LH_EUSER_STATUS, why); /* no status: 500, and said why */
  if (bt == LUA_TFUNCTION) {
    if (!lh_conn_is_bodyless(c)) return 1;
    r->ended = !lh_disp_write_end(d);
    return 0;
  }
  if (bt == LUA_TSTRING && len > 0 && !lh_conn_is_bodyless(c)) {
    e = lh_disp_queue_body(d, lua_tostring(S, bi), (size_t)len);
    if (!e) r->sent = (uint64_t)len;
  }
  if (!e) e = lh_disp_write_end(d);
  r->ended = !e;
  if (e) {
    report(r, e, NULL);
    lh_disp_close(d);
  }
  return 0;
}

/* --- the body iterator, pumped in the handler's coroutine --- */

#define WRITE_BURST (256 * 1024) /* streamed bytes between turns given to the loop */

/* one body chunk; yields (then goes on in k) while the socket is backed
 * up, and now and then anyway so a fast client cannot starve the others */
static void write_chunk(lua_State *L, lh_req_t *r, const char *p, size_t n, lua_KFunction k) {
  lh_disp_t *d = lh_req_disp(r);
  if (!d) lh_raise(L, LH_ECLOSED, "connection closed");
  int e = lh_disp_write_body(d, p, n);
  if (e) lh_raise(L, e, e == LH_EUSER_BODY ? "body longer than its content-length" : NULL);
  r->sent += n;
  if (!lh_disp_can_write(d)) {
    r->burst = 0;
    lh_req_wait(L, r, LH_WAIT_WRITE, k);
  }
  r->burst += n;
  if (r->burst >= WRITE_BURST) {
    r->burst = 0;
    lh_loop_defer(r->task.st->loop, &r->task.tick);
    lh_task_yield(L, LH_WAIT_TICK, k);
  }
}

/* ends a streamed body with the trailers at index ti (a map or an array of
 * {name, value}; anything else: none) */
static void finish_body(lua_State *L, lh_req_t *r, int ti) {
  lh_disp_t *d = lh_req_disp(r);
  if (!d) lh_raise(L, LH_ECLOSED, "connection closed");
  int e = 0;
  if (lua_istable(L, ti)) {
    lua_pushnil(L);
    while (!e && lua_next(L, ti)) {
      size_t nl, vl;
      if (lua_type(L, -2) == LUA_TSTRING && (lua_type(L, -1) == LUA_TSTRING || lua_type(L, -1) == LUA_TNUMBER)) {
        const char *name = lua_tolstring(L, -2, &nl);
        lua_pushvalue(L, -1);
        const char *v = lua_tolstring(L, -1, &vl);
        e = lh_disp_write_trailer(d, name, nl, v, vl);
        lua_pop(L, 1);
      } else if (lua_istable(L, -1) && lua_type(L, -2) == LUA_TNUMBER) {
        lua_geti(L, -1, 1);
        lua_geti(L, -2, 2);
        if (lua_type(L, -2) == LUA_TSTRING && lua_isstring(L, -1)) {
          const char *name = lua_tolstring(L, -2, &nl);
          const char *v = lua_tolstring(L, -1, &vl);
          e = lh_disp_write_trailer(d, name, nl, v, vl);
        } else {
          e = LH_EUSER_HEADER;
        }
        lua_pop(L, 2);
      } else {
        e = LH_EUSER_HEADER;
      }
      lua_pop(L, 1);
    }
    if (e) lua_pop(L, 1);
  }
  if (!e) e = lh_disp_write_end(d);
  if (e) lh_raise(L, e, e == LH_EUSER_BODY ? "body shorter than its content-length" : NULL);
  r->ended = 1;
}

/* pump(req, body): calls body() until it returns nil (or nil, trailers),
 * writing each chunk, a string or a number. Its stack: the req, the
 * iterator, and what the last call returned. */
static int pump_next(lua_State *L, int status, lua_KContext ctx);

static int pump_got(lua_State *L, int status, lua_KContext ctx) {
  lh_req_t *r = lua_touserdata(L, 1);
  for (;;) {
    int t = lua_type(L, 3);
    if (t == LUA_TNIL) {
      finish_body(L, r, 4);
      return 0;
    }
    if (t != LUA_TSTRING && t != LUA_TNUMBER) {
      lua_pushfstring(L, "body iterator returned a %s, expected a string or nil", luaL_typename(L, 3));
      return lua_error(L);
    }
    size_t n;
    const char *p = lua_tolstring(L, 3, &n); /* a number becomes its text in place */
    if (n > 0) write_chunk(L, r, p, n, pump_next);
    lua_settop(L, 2);
    lua_pushvalue(L, 2);
    lua_callk(L, 0, 2, 0, pump_got);
  }
}

static int pump_next(lua_State *L, int status, lua_KContext ctx) {
  lh_task_unslot(lh_task_current(L));
  lua_settop(L, 2);
  lua_pushvalue(L, 2);
  lua_callk(L, 0, 2, 0, pump_got);
  return pump_got(L, LUA_OK, 0);
}

static int pump(lua_State *L) { return pump_next(L, LUA_OK, 0); }

void lh_req_answer(lua_State *co, lh_req_t *r, int si) {
  if (respond(co, r, si) != 1) return;
  /* the body iterator runs in the same thread, which may yield */
  r->pumping = 1;
  lua_pushcfunction(co, pump);
  lua_pushlightuserdata(co, r);
  lua_pushvalue(co, si + 2);
  lua_callk(co, 2, 0, 0, lh_k_none);
}

/* --- failing and finishing --- */

/* the request's own connection is gone or broken, or the handler is on
 * its way out: an error about something closed is no news then */
static int own_conn_gone(const lh_req_t *r) {
  return !r->sc || r->dropped || r->body_failed || r->upgraded || r->task.cancel;
}

/* what raising the value at L's index i means for r: the status to
 * answer (0: none, the client is gone), whether it is reported (not for a
 * malformed body, reported where it happened; a client that went away; an
 * error status below 500 a helper chose for bad input) and whether the
 * request's framing is broken. An error of an outbound exchange
 * (err.upstream, lclient.c) answers its err.status (502, 504) unless the
 * client left first; any other closed, canceled or incomplete one is about
 * the client only when r's connection is gone, else it is a plain 500 */
static void classify(lua_State *L, const lh_req_t *r, int i, int *status, int *quiet, int *framing) {
  *status = 500;
  *quiet = *framing = 0;
  if (lh_is_error(L, i)) {
    lua_getfield(L, i, "kind");
    lua_getfield(L, i, "code");
    int upstream = lua_getfield(L, i, "upstream") == LUA_TBOOLEAN && lua_toboolean(L, -1);
    const char *k = lua_tostring(L, -3);
    int code = lua_isinteger(L, -2) ? (int)lua_tointeger(L, -2) : LH_EUSER_SERVICE;
    int gone = k && (!strcmp(k, "closed") || !strcmp(k, "canceled") || !strcmp(k, "incomplete"));
    if (!upstream && k && !strcmp(k, "parse") && code != LH_EUSER_SERVICE)
      *status = lh_error_status(code), *quiet = *framing = 1;
    if (gone && own_conn_gone(r)) *status = 0, *quiet = 1;
    lua_pop(L, 3);
  }
  if (lua_istable(L, i) && *status) {
    /* err.status (400..599): the answer a helper chose for bad input, such
     * as invalid JSON (400) or a body over its limit (413), or the client
     * for an upstream's failure; the client's mistakes are not the
     * server's errors to report */
    lua_Integer given = 0;
    if (lua_getfield(L, i, "status") == LUA_TNUMBER && lua_isinteger(L, -1)) given = lua_tointeger(L, -1);
    lua_pop(L, 1);
    if (given >= 400 && given <= 599) {
      *status = (int)given;
      if (given < 500) *quiet = 1;
    }
  }
}

/* the handler raised the value at L's index i (text: its text with the
 * traceback, NULL for an error object): answer 500 (or the error's
 * status) when nothing was sent yet, and report it */
static void fail(lua_State *L, lh_req_t *r, int i, const char *text) {
  int status, quiet, framing;
  classify(L, r, i, &status, &quiet, &framing);
  if (r->sc && r->raw) r->raw->event(r->raw, LH_RAW_FAILED);
  if (r->sc && !r->upgraded) {
    lh_disp_t *d = lh_sconn_disp(r->sc);
    lh_disp_head_abort(d); /* a head the error cut short */
    if (lh_conn_can_write_head(lh_disp_conn(d)) && status) {
      /* a body left unread past an error answer is not worth draining */
      if (framing || (status != 500 && !lh_conn_is_read_done(lh_disp_conn(d))))
        lh_disp_disable_keep_alive(d);
      answer_empty(r, d, status);
    } else if (!lh_conn_is_write_done(lh_disp_conn(d))) {
      lh_disp_close(d);
    }
  }
  if (!quiet) lh_req_report(r, LH_EUSER_SERVICE, text, L, i, NULL);
}

/* req_main (lsvc.c) answers what the handler returns; this is for a
 * handler (or that answer, or its body iterator) that raised. The value is
 * read on L: the coroutine is dead */
void lh_req_raised(lua_State *L, lh_req_t *r) {
  lua_State *co = r->task.co;
  int top = lua_gettop(L);
  luaL_checkstack(L, 4, NULL);
  lua_pushvalue(co, -1);
  lua_xmove(co, L, 1);
  /* lhyper error objects stand as they are; the rest get a traceback */
  const char *text = lh_is_error(L, top + 1) ? NULL : lh_push_traceback(L, co, -1);
  if (r->pumping || r->task.cancel) {
    /* the head is out (or the handler is being cancelled): report only */
    int status, quiet, framing;
    classify(L, r, top + 1, &status, &quiet, &framing);
    if (!quiet) lh_req_report(r, LH_EUSER_SERVICE, text, L, top + 1, NULL);
  } else {
    fail(L, r, top + 1, text);
  }
  lua_settop(L, top);
}

void lh_req_finish(lh_req_t *r) {
  r->finished = 1;
  if (r->upgraded) {
    /* the stream is the task's that upgraded: closed when that one ends;
     * C code that took it is told */
    if (r->sc && r->raw) r->raw->event(r->raw, LH_RAW_DONE);
    return;
  }
  if (r->sc) {
    lh_disp_t *d = lh_sconn_disp(r->sc);
    if (lh_conn_can_write_head(lh_disp_conn(d))) {
      /* the handler ended without answering */
      answer_empty(r, d, r->too_large ? 413 : 500);
    } else if (lh_conn_can_write_body(lh_disp_conn(d))) {
      /* a streamed body that did not end: the framing is broken */
      lh_disp_close(d);
    }
    lh_req_detach(r);
  }
  lh_req_wake_all(r); /* a task still reading finds the request over */
}

/* --- the connection going away --- */

void lh_req_drop(lh_req_t *r) {
  r->dropped = 1;
  lh_req_detach(r);
  if (r->upgraded) {
    lh_stream_gone(r);
    if (r->raw) r->raw->event(r->raw, LH_RAW_GONE);
    return;
  }
  lh_req_wake_all(r);
  lh_task_cancel(&r->task);
}

int lh_req_wait(lua_State *L, lh_req_t *r, int wait, lua_KFunction k) {
  lh_task_t *t = lh_task_current(L);
  if (!t) return luaL_error(L, "not inside an lhyper handler or task");
  lh_task_t **slot = wait == LH_WAIT_WRITE ? &r->writer : &r->reader;
  if (*slot && *slot != t)
    return luaL_error(L, wait == LH_WAIT_WRITE ? "another task is already waiting to write here"
                                                : "another task is already reading here");
  *slot = t;
  t->slot = slot;
  return lh_task_yield(L, wait, k);
}

void lh_req_wake(lh_req_t *r, int wait) {
  if (r->raw) {
    r->raw->event(r->raw, wait == LH_WAIT_BODY ? LH_RAW_READABLE : LH_RAW_WRITABLE);
    return;
  }
  lh_task_t *t = wait == LH_WAIT_WRITE ? r->writer : r->reader;
  if (t && t->wait == wait) lh_task_resume(t);
}

void lh_req_shutdown(lh_req_t *r) {
  if (r->upgraded && r->sc && r->raw) r->raw->event(r->raw, LH_RAW_SHUTDOWN);
}

void lh_req_wake_all(lh_req_t *r) {
  if (r->reader) lh_task_wake(r->reader);
  if (r->writer) lh_task_wake(r->writer);
}

/* req:_respond(status, headers, body) -> true: answers now, for Lua code
 * answering on the handler's behalf (lhyper.websocket.accept refusing a
 * handshake); what the handler returns afterwards is ignored. body: nil
 * or a string. Raises when a response was already sent. */
static int req_respond_now(lua_State *L) {
  lh_req_t *r = check_req(L, 1);
  luaL_argcheck(L, lua_isnoneornil(L, 4) || lua_type(L, 4) == LUA_TSTRING, 4, "nil or string expected");
  lua_settop(L, 4);
  if (respond(L, r, 2) == LH_ECLOSED) return luaL_error(L, "req:_respond: a response was already sent");
  lua_pushboolean(L, 1);
  return 1;
}

static const luaL_Reg req_methods[] = {
  {"body", req_body}, {"trailers", req_trailers}, {"upgrade", req_upgrade},
  {"_too_large", req_too_large}, {"_respond", req_respond_now}, {NULL, NULL}};

void lh_req_open(lua_State *L) {
  if (luaL_newmetatable(L, REQ_MT)) {
    luaL_newlib(L, req_methods);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, "__methods");
    lua_pushvalue(L, -2);
    luaL_getmetatable(L, "lhyper.headers"); /* lh_headers_open ran first */
    lua_pushcclosure(L, req_index, 3);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, req_newindex);
    lua_setfield(L, -2, "__newindex");
    lua_pushcfunction(L, req_tostring);
    lua_setfield(L, -2, "__tostring");
  }
  lua_pop(L, 1);
}

void lh_req_push_mt(lua_State *L) { luaL_getmetatable(L, REQ_MT); }
