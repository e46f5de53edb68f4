/* lhyper.core.deflater / lhyper.core.inflater: zlib streams for Lua, used
 * by the compression layer (lua/lhyper/layers/compression.lua) and the
 * client's decoding of compressed responses (lua/lhyper/client.lua).
 *
 *   core.deflater(format, level) -> d      format "gzip" | "deflate" (zlib)
 *   d:push(data [, flush]) -> string       flush nil: as zlib likes, "sync":
 *                                          everything so far (a streamed
 *                                          chunk), "finish": the end
 *   core.inflater(format [, max]) -> z     format "gzip" | "deflate" (zlib,
 *                                          or raw deflate as some servers
 *                                          send) | "auto" (gzip or zlib)
 *   z:push(data) -> string, done | nil, err, kind
 *                                          at most `max` bytes out in all
 *                                          (kind "too_large"), a corrupt
 *                                          stream is kind "protocol"
 *   x:close()                              frees zlib's state now (also on
 *                                          collection and at `<close>`)
 *
 * A stream's zlib state is freed at close, at its end (finish pushed, or
 * the compressed stream ended) and on collection; pushing to a closed
 * stream raises. */
#include "lzstream.h"

#include <lauxlib.h>
#include <string.h>
#include <zlib.h>

#define DEFLATER_MT "lhyper.deflater"
#define INFLATER_MT "lhyper.inflater"

typedef struct {
  z_stream z;
  int live;           /* zlib's state is allocated: set at init, cleared at end */
  int raw_retry;      /* inflate "deflate": may still restart as raw deflate */
  lua_Integer max;    /* inflate: bytes out allowed in all (0: no limit) */
  lua_Integer out;    /* inflate: bytes out so far */
} lh_zstream_t;

static lh_zstream_t *check_z(lua_State *L, const char *mt) {
  lh_zstream_t *s = luaL_checkudata(L, 1, mt);
  if (!s->live) luaL_error(L, "%s: the stream is closed", mt + 7);
  return s;
}

static void z_end(lh_zstream_t *s, int deflating) {
  if (!s->live) return;
  if (deflating) deflateEnd(&s->z);
  else inflateEnd(&s->z);
  s->live = 0;
}

static const char *const FORMATS[] = {"gzip", "deflate", "auto", NULL};

/* window bits for a format: gzip 16+15, zlib 15, either (inflate) 32+15 */
static int window_bits(int format) { return format == 0 ? 31 : format == 1 ? 15 : 47; }

static int l_deflater(lua_State *L) {
  int format = luaL_checkoption(L, 1, NULL, FORMATS);
  if (format == 2) return luaL_argerror(L, 1, "\"gzip\" or \"deflate\" expected");
  lua_Integer level = luaL_optinteger(L, 2, Z_DEFAULT_COMPRESSION);
  luaL_argcheck(L, level >= -1 && level <= 9, 2, "level must be -1 to 9");
  lh_zstream_t *s = lua_newuserdatauv(L, sizeof *s, 0);
  memset(s, 0, sizeof *s);
  luaL_setmetatable(L, DEFLATER_MT);
  if (deflateInit2(&s->z, (int)level, Z_DEFLATED, window_bits(format), 8, Z_DEFAULT_STRATEGY) != Z_OK)
    return luaL_error(L, "deflater: zlib could not start (out of memory)");
  s->live = 1;
  return 1;
}

static int deflater_push(lua_State *L) {
  static const char *const FLUSH[] = {"none", "sync", "finish", NULL};
  static const int ZFLUSH[] = {Z_NO_FLUSH, Z_SYNC_FLUSH, Z_FINISH};
  lh_zstream_t *s = check_z(L, DEFLATER_MT);
  size_t n;
  const char *data = luaL_optlstring(L, 2, "", &n);
  int flush = ZFLUSH[luaL_checkoption(L, 3, "none", FLUSH)];
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  s->z.next_in = (Bytef *)data;
  s->z.avail_in = (uInt)n;
  int rc;
  do {
    size_t room = n / 2 + 64;
    if (room > 65536) room = 65536;
    char *p = luaL_prepbuffsize(&b, room);
    s->z.next_out = (Bytef *)p;
    s->z.avail_out = (uInt)room;
    rc = deflate(&s->z, flush);
    luaL_addsize(&b, room - s->z.avail_out);
    if (rc == Z_STREAM_ERROR) return luaL_error(L, "deflater: zlib stream error");
  } while (s->z.avail_out == 0 || s->z.avail_in > 0 || (flush == Z_FINISH && rc != Z_STREAM_END));
  s->z.next_in = NULL;
  if (flush == Z_FINISH) z_end(s, 1);
  luaL_pushresult(&b);
  return 1;
}

static int l_inflater(lua_State *L) {
  int format = luaL_checkoption(L, 1, NULL, FORMATS);
  lua_Integer max = luaL_optinteger(L, 2, 0);
  luaL_argcheck(L, max >= 0, 2, "max must not be negative");
  lh_zstream_t *s = lua_newuserdatauv(L, sizeof *s, 0);
  memset(s, 0, sizeof *s);
  luaL_setmetatable(L, INFLATER_MT);
  if (inflateInit2(&s->z, window_bits(format)) != Z_OK)
    return luaL_error(L, "inflater: zlib could not start (out of memory)");
  s->live = 1;
  s->raw_retry = format == 1;
  s->max = max;
  return 1;
}

/* "deflate" is meant to be zlib (RFC 9110 8.4.1.2), but some servers send
 * raw deflate: a first header that is not zlib's restarts the stream raw */
static int inflate_restart_raw(lh_zstream_t *s, const char *data, size_t n) {
  s->raw_retry = 0;
  if (inflateReset2(&s->z, -15) != Z_OK) return 0;
  s->z.next_in = (Bytef *)data;
  s->z.avail_in = (uInt)n;
  return 1;
}

static int inflater_push(lua_State *L) {
  lh_zstream_t *s = check_z(L, INFLATER_MT);
  size_t n;
  const char *data = luaL_checklstring(L, 2, &n);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  s->z.next_in = (Bytef *)data;
  s->z.avail_in = (uInt)n;
  int rc;
  for (;;) {
    char *p = luaL_prepbuffsize(&b, 16384);
    s->z.next_out = (Bytef *)p;
    s->z.avail_out = 16384;
    rc = inflate(&s->z, Z_NO_FLUSH);
    size_t got = 16384 - s->z.avail_out;
    if (rc == Z_DATA_ERROR && s->raw_retry && s->z.total_out == 0 && inflate_restart_raw(s, data, n))
      continue;
    if (rc == Z_NEED_DICT || rc == Z_DATA_ERROR || rc == Z_MEM_ERROR || rc == Z_STREAM_ERROR) {
      const char *why = rc == Z_MEM_ERROR ? "out of memory" : s->z.msg ? s->z.msg : "corrupt stream";
      lua_pushnil(L);
      lua_pushfstring(L, "the compressed body is corrupt: %s", why);
      lua_pushliteral(L, "protocol");
      z_end(s, 0);
      return 3;
    }
    if (rc != Z_BUF_ERROR) s->raw_retry = 0;
    luaL_addsize(&b, got);
    s->out += (lua_Integer)got;
    if (s->max > 0 && s->out > s->max) {
      z_end(s, 0);
      lua_pushnil(L);
      lua_pushfstring(L, "the decompressed body is over %I bytes", (LUAI_UACINT)s->max);
      lua_pushliteral(L, "too_large");
      return 3;
    }
    /* the end, or all input taken and nothing more to give, or no progress */
    if (rc == Z_STREAM_END || rc == Z_BUF_ERROR || (s->z.avail_in == 0 && s->z.avail_out != 0)) break;
  }
  int done = rc == Z_STREAM_END;
  s->z.next_in = NULL;
  if (done) z_end(s, 0);
  luaL_pushresult(&b);
  lua_pushboolean(L, done);
  return 2;
}

static int deflater_close(lua_State *L) {
  z_end(luaL_checkudata(L, 1, DEFLATER_MT), 1);
  return 0;
}

static int inflater_close(lua_State *L) {
  z_end(luaL_checkudata(L, 1, INFLATER_MT), 0);
  return 0;
}

static void open_type(lua_State *L, const char *mt, const luaL_Reg *methods, lua_CFunction close) {
  if (luaL_newmetatable(L, mt)) {
    lua_newtable(L);
    luaL_setfuncs(L, methods, 0);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, close);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, close);
    lua_setfield(L, -2, "__close");
  }
  lua_pop(L, 1);
}

void lh_zstream_open(lua_State *L, int mod) {
  static const luaL_Reg deflater_methods[] = {
    {"push", deflater_push}, {"close", deflater_close}, {NULL, NULL}};
  static const luaL_Reg inflater_methods[] = {
    {"push", inflater_push}, {"close", inflater_close}, {NULL, NULL}};
  open_type(L, DEFLATER_MT, deflater_methods, deflater_close);
  open_type(L, INFLATER_MT, inflater_methods, inflater_close);
  lua_pushcfunction(L, l_deflater);
  lua_setfield(L, mod, "deflater");
  lua_pushcfunction(L, l_inflater);
  lua_setfield(L, mod, "inflater");
}
