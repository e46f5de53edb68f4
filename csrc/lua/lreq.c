/* Lua objects of a request: req (lazy fields over a copy of the head),
 * headers (case-insensitive, ordered) and the body iterator. */
#include <string.h>

#include "lcore.h"

#define REQ_MT "lhyper.req"
#define HEADERS_MT "lhyper.headers"
#define REQ_METHODS "lhyper.req_methods"

/* user values: the headers object and trailers (made when asked for), the
 * server (kept alive by its requests) and the peer's address (looked up
 * once, when asked for) */
enum { UV_HEADERS = 1, UV_TRAILERS = 2, UV_SERVER = 3, UV_PEER = 4, REQ_NUV = 4 };

static lh_req_t *check_req(lua_State *L, int i) { return luaL_checkudata(L, i, REQ_MT); }

void lh_lower_names(char *base, lh_field_t *f, uint32_t n) {
  for (uint32_t i = 0; i < n; i++) {
    char *s = base + f[i].name.off;
    for (uint32_t k = 0; k < f[i].name.len; k++)
      if (s[k] >= 'A' && s[k] <= 'Z') s[k] = (char)(s[k] + 32);
  }
}

lh_req_t *lh_req_new(lua_State *L, lh_lsrv_t *s, lh_sconn_t *sc, const lh_head_t *h,
                     const char *base, int mt, int srv) {
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
  r->srv = s;
  lua_pushvalue(L, srv);
  lua_setiuservalue(L, -2, UV_SERVER);
  return r;
}

/* --- headers --- */

typedef struct {
  const char *base;
  const lh_field_t *f;
  uint32_t n;
} lh_headers_t;

int lh_headers_push(lua_State *L, int owner, const char *base, const lh_field_t *f,
                    uint32_t n, int lowered) {
  owner = lua_absindex(L, owner);
  lh_headers_t *h = lua_newuserdatauv(L, sizeof *h, 1);
  h->base = base;
  h->f = f;
  h->n = n;
  (void)lowered;
  lua_pushvalue(L, owner);
  lua_setiuservalue(L, -2, 1);
  luaL_setmetatable(L, HEADERS_MT);
  return 1;
}

/* headers that own their bytes: a copy of fields + bytes in one block */
int lh_headers_copy(lua_State *L, const char *base, const lh_field_t *f, uint32_t n,
                        size_t blen) {
  size_t fsz = n * sizeof *f;
  char *blk = lua_newuserdatauv(L, fsz + blen + 1, 0);
  lh_field_t *nf = (lh_field_t *)blk;
  if (fsz) memcpy(nf, f, fsz);
  if (blen) memcpy(blk + fsz, base, blen);
  lh_lower_names(blk + fsz, nf, n);
  lh_headers_push(L, -1, blk + fsz, nf, n, 1);
  lua_remove(L, -2);
  return 1;
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

static int headers_get(lua_State *L) {
  lh_headers_t *h = check_headers(L, 1);
  char buf[256];
  size_t n;
  const char *k = lower_key(L, 2, &n, buf, sizeof buf);
  int i = find_from(h, 0, k, n);
  if (i < 0) lua_pushnil(L);
  else lua_pushlstring(L, h->base + h->f[i].value.off, h->f[i].value.len);
  return 1;
}

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

static int headers_index(lua_State *L) {
  /* methods first; any other key is a field name */
  if (lua_type(L, 2) == LUA_TSTRING) {
    lua_pushvalue(L, 2);
    if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL) return 1;
    lua_pop(L, 1);
  }
  return headers_get(L);
}

static int headers_tostring(lua_State *L) {
  lh_headers_t *h = check_headers(L, 1);
  lua_pushfstring(L, "lhyper.headers (%d fields)", (int)h->n);
  return 1;
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

static int req_headers(lua_State *L, lh_req_t *r) {
  if (lua_getiuservalue(L, 1, UV_HEADERS) != LUA_TNIL) return 1;
  lua_pop(L, 1);
  if (!r->lowered) {
    lh_lower_names(r->bytes, r->fields, r->nfields);
    r->lowered = 1;
  }
  lh_headers_push(L, 1, r->bytes, r->fields, r->nfields, 1);
  lua_pushvalue(L, -1);
  lua_setiuservalue(L, 1, UV_HEADERS);
  return 1;
}

static int req_index(lua_State *L) {
  lh_req_t *r = check_req(L, 1);
  size_t n;
  const char *k = lua_tolstring(L, 2, &n);
  if (!k) return 0;
  lh_span_t path, query;
  int has_q;
  switch (n) {
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
    case 5:
      if (!memcmp(k, "query", 5)) {
        target_parts(r, &path, &query, &has_q);
        if (!has_q) return 0;
        return push_span(L, r, query);
      }
      break;
    case 6:
      if (!memcmp(k, "method", 6)) return push_span(L, r, r->method);
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
        if (lua_getiuservalue(L, 1, UV_PEER) == LUA_TNIL) {
          /* kept once known: the request may outlive its connection */
          char peer[48];
          int port = r->sc ? lh_sconn_peer(r->sc, peer, sizeof peer) : -1;
          if (port < 0) return 0;
          lua_pushstring(L, peer);
          lua_pushvalue(L, -1);
          lua_setiuservalue(L, 1, UV_PEER);
          r->peer_port = port;
        }
        if (k[7] == 'p') lua_pushinteger(L, r->peer_port);
        return 1;
      }
      break;
  }
  lua_pushvalue(L, 2);
  lua_rawget(L, lua_upvalueindex(1));
  return 1;
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
  (void)status; (void)ctx;
  return body_next(L);
}

static int body_end(lua_State *L, lh_req_t *r, lh_conn_t *c) {
  r->body_done = 1;
  lh_parser_t *p = &c->parser;
  if (p->ntrailers) {
    lua_pushvalue(L, lua_upvalueindex(1));
    lh_headers_copy(L, p->tbytes, p->tfields, p->ntrailers, p->tlen);
    lua_setiuservalue(L, -2, UV_TRAILERS);
    lua_pop(L, 1);
  }
  return 0;
}

static int body_next(lua_State *L) {
  lh_req_t *r = check_req(L, lua_upvalueindex(1));
  if (r->body_done) return 0;
  if (!r->sc) return lh_raise(L, LH_ECLOSED, "connection closed before the body was read");
  lh_disp_t *d = lh_sconn_disp(r->sc);
  const char *p;
  size_t n;
  int rc = lh_disp_read_body(d, &p, &n);
  if (rc == 1) {
    lua_pushlstring(L, p, n);
    return 1;
  }
  if (rc == 2) return body_end(L, r, &d->conn);
  if (rc == 0) {
    lh_task_t *t = lh_task_of(L);
    if (!t || t->req != r) return luaL_error(L, "req:body() must be iterated in its handler's coroutine");
    return lh_task_yield(L, LH_WAIT_BODY, body_next_k);
  }
  /* the failure is the server's to report, whatever the handler does with it */
  lh_report(r->srv, rc, NULL, r);
  return lh_raise(L, rc, NULL);
}

static int req_body(lua_State *L) {
  check_req(L, 1);
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
  if (r->sc) lh_conn_disable_keep_alive(&lh_sconn_disp(r->sc)->conn);
  return 0;
}

/* --- upgrade: the connection as a raw stream --- */

#define STREAM_MT "lhyper.stream"

typedef struct {
  lh_req_t *r;
  int closed;
} lh_stream_t;

static lh_stream_t *check_stream(lua_State *L) {
  lh_stream_t *s = luaL_checkudata(L, 1, STREAM_MT);
  if (s->closed) luaL_error(L, "attempt to use a closed stream");
  return s;
}

void lh_stream_gone(lh_req_t *r) {
  lh_task_t *w = r->waiter;
  r->waiter = NULL;
  if (w && (w->wait == LH_WAIT_BODY || w->wait == LH_WAIT_WRITE)) {
    /* resumed next iteration: it then sees the stream closed */
    w->wait = LH_WAIT_TICK;
    lh_loop_defer(w->st->loop, &w->tick);
  }
}

static int stream_wait(lua_State *L, lh_req_t *r, int wait, lua_KFunction k) {
  lh_task_t *t = lh_task_of(L);
  if (!t || !t->running) return luaL_error(L, "stream: not inside an lhyper handler or task");
  if (r->waiter && r->waiter != t) return luaL_error(L, "stream: another task is already waiting on it");
  r->waiter = t;
  return lh_task_yield(L, wait, k);
}

static int stream_read(lua_State *L);
static int stream_read_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status; (void)ctx;
  return stream_read(L);
}

/* stream:read() -> bytes, or nil at EOF, or nil, err, kind */
static int stream_read(lua_State *L) {
  lh_stream_t *s = check_stream(L);
  lh_req_t *r = s->r;
  r->waiter = NULL;
  if (!r->sc) {
    lh_conn_t *c = NULL;
    (void)c;
    return 0; /* the peer is gone: EOF */
  }
  lh_disp_t *d = lh_sconn_disp(r->sc);
  const char *p;
  size_t n;
  int rc = lh_disp_read_raw(d, &p, &n);
  if (rc == 1) {
    lua_pushlstring(L, p, n);
    return 1;
  }
  if (rc == 2) {
    if (d->io_error) return lh_push_fail(L, d->io_error, NULL);
    return 0;
  }
  lh_sconn_defer_poll(r->sc); /* turns reading on */
  return stream_wait(L, r, LH_WAIT_BODY, stream_read_k);
}

static int stream_write_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status; (void)ctx;
  lh_stream_t *s = luaL_checkudata(L, 1, STREAM_MT);
  s->r->waiter = NULL;
  if (!s->r->sc) return lh_push_fail(L, LH_ECLOSED, "stream closed by the peer");
  lua_pushboolean(L, 1);
  return 1;
}

/* stream:write(s) -> true, or nil, err, kind; yields while the socket is backed up */
static int stream_write(lua_State *L) {
  lh_stream_t *s = check_stream(L);
  size_t n;
  const char *p = luaL_checklstring(L, 2, &n);
  lh_req_t *r = s->r;
  if (!r->sc) return lh_push_fail(L, LH_ECLOSED, "stream closed by the peer");
  lh_disp_t *d = lh_sconn_disp(r->sc);
  int e = lh_disp_write_raw(d, p, n);
  if (e) return lh_push_fail(L, e, NULL);
  lh_sconn_defer_poll(r->sc);
  if (!lh_disp_can_write(d)) return stream_wait(L, r, LH_WAIT_WRITE, stream_write_k);
  lua_pushboolean(L, 1);
  return 1;
}

static void stream_shut(lh_stream_t *s) {
  if (s->closed) return;
  s->closed = 1;
  lh_req_t *r = s->r;
  if (r->sc) {
    lh_sconn_t *sc = r->sc;
    lh_conn_close(&lh_sconn_disp(sc)->conn); /* queued bytes still go out */
    *lh_sconn_udata(sc) = NULL;
    r->sc = NULL;
    lh_sconn_defer_poll(sc);
  }
}

static int stream_close(lua_State *L) {
  lh_stream_t *s = luaL_checkudata(L, 1, STREAM_MT);
  stream_shut(s);
  lua_pushboolean(L, 1);
  return 1;
}

static int stream_tostring(lua_State *L) {
  lh_stream_t *s = luaL_checkudata(L, 1, STREAM_MT);
  lua_pushstring(L, s->closed ? "lhyper.stream (closed)" : "lhyper.stream");
  return 1;
}

/* req:upgrade(headers) -> stream: 101 Switching Protocols (200 to CONNECT) */
static int req_upgrade(lua_State *L) {
  lh_req_t *r = check_req(L, 1);
  if (!r->sc) return lh_push_fail(L, LH_ECLOSED, NULL);
  lh_disp_t *d = lh_sconn_disp(r->sc);
  lh_conn_t *c = &d->conn;
  if (!c->upgrade) return luaL_error(L, "req:upgrade: the request asked for no upgrade");
  if (c->writing != LH_WRITING_INIT) return luaL_error(L, "req:upgrade: a response was already sent");
  if (c->reading != LH_READING_KEEPALIVE)
    return luaL_error(L, "req:upgrade: read the request body first");
  int e = lh_req_write_head(L, r, c->connect ? 200 : 101, 2, -1, 0);
  if (!e) e = lh_disp_upgrade(d);
  if (e) return lh_push_fail(L, e, NULL);
  r->upgraded = 1;
  r->responded = 1;
  lh_sconn_defer_poll(r->sc);
  lh_stream_t *s = lua_newuserdatauv(L, sizeof *s, 1);
  s->r = r;
  s->closed = 0;
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, -2, 1); /* the req lives as long as its stream */
  luaL_setmetatable(L, STREAM_MT);
  return 1;
}

static const luaL_Reg stream_methods[] = {
  {"read", stream_read}, {"write", stream_write}, {"close", stream_close}, {NULL, NULL}};

/* --- response head from Lua values --- */

/* Header tables are read raw (lua_next, lua_rawgeti, lua_rawlen): no
 * metamethod of the handler's runs while a head is half written. */
static int field_value(lua_State *L, lh_conn_t *c, const char *name, size_t nlen, int vi) {
  size_t vlen;
  int t = lua_type(L, vi);
  if (t == LUA_TSTRING) {
    const char *v = lua_tolstring(L, vi, &vlen);
    return lh_conn_head_field(c, name, nlen, v, vlen);
  }
  if (t == LUA_TNUMBER) {
    /* converted on a copy: the slot may be what lua_next walks from */
    lua_pushvalue(L, vi);
    const char *v = lua_tolstring(L, -1, &vlen);
    int r = lh_conn_head_field(c, name, nlen, v, vlen);
    lua_pop(L, 1);
    return r;
  }
  if (t == LUA_TTABLE) {
    lua_Integer n = (lua_Integer)lua_rawlen(L, vi);
    for (lua_Integer i = 1; i <= n; i++) {
      lua_rawgeti(L, vi, i);
      int r = field_value(L, c, name, nlen, lua_gettop(L));
      lua_pop(L, 1);
      if (r) return r;
    }
    return 0;
  }
  return LH_EUSER_HEADER;
}

/* 1 when the table at hi (0: no headers) holds the kept head's strings, in
 * the same order. Compared by address (lua_topointer): a kept string is
 * anchored, so no other value has its address, and a number has none. */
static int memo_match(lua_State *L, const lh_head_memo_t *m, int hi) {
  int i = 0, n = 2 * m->n;
  if (!hi) return n == 0;
  lua_pushnil(L);
  while (lua_next(L, hi)) {
    if (i == n || lua_topointer(L, -2) != m->kv[i] || lua_topointer(L, -1) != m->kv[i + 1]) {
      lua_pop(L, 2);
      return 0;
    }
    i += 2;
    lua_pop(L, 1);
  }
  return i == n;
}

/* keeps the head just written from the map at hi (0: none) when every
 * field was a string pair, anchoring the strings */
static void memo_keep(lua_State *L, lh_head_memo_t *m, lh_conn_t *c, int hi, int64_t body_len) {
  m->misses = 0;
  m->valid = 0;
  if (m->anchor_ref == LUA_NOREF || lh_conn_head_keep(c, body_len, &m->tpl)) return;
  /* presized when the server was made: nothing here allocates */
  lua_rawgeti(L, LUA_REGISTRYINDEX, m->anchor_ref);
  int a = lua_gettop(L), i = 0;
  if (hi) {
    lua_pushnil(L);
    while (lua_next(L, hi)) {
      if (i == 2 * LH_MEMO_FIELDS || lua_type(L, -2) != LUA_TSTRING ||
          lua_type(L, -1) != LUA_TSTRING) {
        /* not kept; the slots written so far are cleared with the next */
        m->n = LH_MEMO_FIELDS;
        lua_settop(L, a - 1);
        return;
      }
      m->kv[i] = lua_topointer(L, -2);
      m->kv[i + 1] = lua_topointer(L, -1);
      lua_rawseti(L, a, i + 2);
      lua_pushvalue(L, -1);
      lua_rawseti(L, a, i + 1);
      i += 2;
    }
  }
  for (int j = i; j < 2 * m->n; j++) {
    lua_pushboolean(L, 0); /* not nil: the slot stays in the array part */
    lua_rawseti(L, a, j + 1);
  }
  lua_pop(L, 1);
  m->n = (uint8_t)(i / 2);
  m->valid = 1;
}

int lh_req_write_head(lua_State *L, lh_req_t *r, int status, int hi, int64_t body_len, int memo) {
  lh_conn_t *c = &lh_sconn_disp(r->sc)->conn;
  lh_head_memo_t *m = &r->srv->memo;
  int e, is_map;
  if (hi && lua_istable(L, hi)) {
    hi = lua_absindex(L, hi);
  } else if (hi && lua_isnoneornil(L, hi)) {
    hi = 0;
  } else if (hi) {
    if ((e = lh_conn_head_begin(c, status))) return e;
    lh_conn_head_abort(c);
    return LH_EUSER_HEADER;
  }
  memo = memo && status >= 200;
  if (memo) {
    /* an array of pairs never matches: its keys are numbers */
    if (m->valid && m->tpl.status == status && m->tpl.key == lh_conn_head_key(c, body_len) &&
        memo_match(L, m, hi)) {
      m->misses = 0;
      return lh_conn_head_replay(c, &m->tpl, body_len);
    }
    if (m->misses < LH_MEMO_PATIENCE) m->misses++;
  }
  if ((e = lh_conn_head_begin(c, status))) return e;
  lua_Integer n = hi ? (lua_Integer)lua_rawlen(L, hi) : 0;
  is_map = hi && n == 0; /* else an array of {name, value} */
  if (!hi) {
    /* no headers */
  } else if (!is_map) {
    for (lua_Integer i = 1; i <= n && !e; i++) {
      lua_rawgeti(L, hi, i);
      int p = lua_gettop(L);
      if (!lua_istable(L, p)) e = LH_EUSER_HEADER;
      else {
        lua_rawgeti(L, p, 1);
        lua_rawgeti(L, p, 2);
        size_t nlen;
        const char *name = lua_type(L, -2) == LUA_TSTRING ? lua_tolstring(L, -2, &nlen) : NULL;
        e = name ? field_value(L, c, name, nlen, lua_gettop(L)) : LH_EUSER_HEADER;
      }
      lua_settop(L, p - 1);
    }
  } else {
    lua_pushnil(L);
    while (!e && lua_next(L, hi)) {
      size_t nlen;
      if (lua_type(L, -2) != LUA_TSTRING) e = LH_EUSER_HEADER;
      else {
        const char *name = lua_tolstring(L, -2, &nlen);
        e = field_value(L, c, name, nlen, lua_gettop(L));
      }
      lua_pop(L, 1);
    }
    if (e) lua_pop(L, 1); /* the key lua_next left */
  }
  if (!e) e = lh_conn_head_end(c, body_len);
  if (e) {
    lh_conn_head_abort(c);
    return e;
  }
  if (memo && (is_map || !hi) && m->misses >= LH_MEMO_PATIENCE) memo_keep(L, m, c, hi, body_len);
  return 0;
}

static const luaL_Reg req_methods[] = {
  {"body", req_body}, {"trailers", req_trailers}, {"upgrade", req_upgrade},
  {"_too_large", req_too_large}, {NULL, NULL}};

static const luaL_Reg headers_methods[] = {
  {"get", headers_get}, {"get_all", headers_get_all}, {"each", headers_each}, {NULL, NULL}};

void lh_req_open(lua_State *L, lh_lstate_t *st) {
  luaL_newlib(L, req_methods);
  lua_pushvalue(L, -1);
  lua_setfield(L, LUA_REGISTRYINDEX, REQ_METHODS);
  luaL_newmetatable(L, REQ_MT);
  lua_pushvalue(L, -2);
  lua_pushcclosure(L, req_index, 1);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, req_tostring);
  lua_setfield(L, -2, "__tostring");
  /* an integer ref is found without hashing a name, once per request */
  lua_pushvalue(L, -1);
  st->req_mt = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pop(L, 2);

  luaL_newmetatable(L, STREAM_MT);
  luaL_newlib(L, stream_methods);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, stream_close);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, stream_close);
  lua_setfield(L, -2, "__close");
  lua_pushcfunction(L, stream_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pop(L, 1);

  luaL_newmetatable(L, HEADERS_MT);
  luaL_newlib(L, headers_methods);
  lua_pushcclosure(L, headers_index, 1);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, headers_len);
  lua_setfield(L, -2, "__len");
  lua_pushcfunction(L, headers_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pop(L, 1);
}
