/* What layers (lua/lhyper/layers) need from the core: the end of a
 * request's response (req:on_end), the access log's lines made in C,
 * request ids, a request's server, a clock for durations, the HTTP
 * status of an error code, the timeout layer's call, and the services of
 * request_id, access_log and timeout as one C function (a chain). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "llayer.h"

#include "llogw.h"
#include "logw.h"
#include "lspawn.h"
#include "tuning.h"

#define REQ_MT "lhyper.req"
#define ALOG_MT "lhyper.access_log"

/* A watched request's end table, anchored by r->end_ref until it ends:
 * [END_REQ] the req, then the functions given to req:on_end. */
enum { END_REQ = 1, END_FN };

/* the functions' upvalues: the req and access log metatables */
enum { UP_REQ_MT = 1, UP_ALOG_MT };

static lh_req_t *check_req(lua_State *L, int i) { return lh_req_at(L, i, lua_upvalueindex(UP_REQ_MT)); }

/* pushes the end table of the req at idx, made on first use */
static void end_table(lua_State *L, lh_req_t *r, int idx) {
  if (r->finished) luaL_error(L, "the request is already over");
  if (r->watched) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, r->end_ref);
    return;
  }
  lua_createtable(L, 2, 0);
  lua_pushvalue(L, idx);
  lua_rawseti(L, -2, END_REQ);
  lua_pushvalue(L, -1);
  r->end_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  r->watched = 1;
}

/* core.req_on_end(req, fn): fn(req, complete, status, bytes) runs once,
 * when the response was written to its end (complete) or given up
 * (the client left, the handler raised mid-body). It runs outside the
 * handler's coroutine, or at its very end: it must not yield. */
static int l_req_on_end(lua_State *L) {
  lh_req_t *r = check_req(L, 1);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  end_table(L, r, 1);
  lua_pushvalue(L, 2);
  lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
  return 0;
}

/* --- access log lines (the access_log layer's "combined" and "json") --- */

enum { ALOG_COMBINED, ALOG_JSON };

typedef struct lh_alog {
  lh_llogw_t *out; /* the writer's box, anchored as user value 1 */
  int fmt;
} lh_alog_t;

/* core.access_log(writer, format) -> a log for core.access_log_begin */
static int l_access_log(lua_State *L) {
  static const char *const fmts[] = {"combined", "json", NULL};
  lh_llogw_t *w = luaL_checkudata(L, 1, LH_LOGW_MT);
  int fmt = luaL_checkoption(L, 2, NULL, fmts);
  lh_alog_t *a = lua_newuserdatauv(L, sizeof *a, 1);
  a->out = w;
  a->fmt = fmt;
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, -2, 1);
  luaL_setmetatable(L, ALOG_MT);
  return 1;
}

/* access_log_begin with the log a at index li and the req at ri (the
 * top): 1 when the exchange's line is now the log's, 0 when it had one */
static int alog_begin(lua_State *L, lh_alog_t *a, int li, int ri) {
  lh_req_t *r = check_req(L, ri);
  if (r->finished) return luaL_error(L, "access_log: the request is already over");
  if (r->alog) return 0;
  lua_pushvalue(L, li);
  lh_req_keep(L, ri, LH_REQ_KEEP_LOG);
  r->alog = a;
  r->t0 = lh_hrtime();
  r->wall = (int64_t)time(NULL);
  lh_req_peer(L, r, ri); /* now: an exchange the client leaves has no connection at its end */
  return 1;
}

/* core.access_log_begin(log, req) -> true: the exchange gets a line in
 * log when its response ends (lh_req_ended); its time and duration start
 * now. false when the request has a log already (a request holds one: a
 * second access_log layer writes its line from req:on_end) */
static int l_access_log_begin(lua_State *L) {
  lh_alog_t *a = lua_touserdata(L, 1);
  int ok = a && lua_getmetatable(L, 1) && lua_rawequal(L, -1, lua_upvalueindex(UP_ALOG_MT));
  lua_settop(L, 2);
  if (!ok) a = luaL_checkudata(L, 1, ALOG_MT); /* raises */
  lua_pushboolean(L, alog_begin(L, a, 1, 2));
  return 1;
}

/* the value of the request's first field `name` (lower case), or NULL */
static const char *field(const lh_req_t *r, const char *name, size_t n, size_t *len) {
  for (uint32_t i = 0; i < r->nfields; i++) {
    const lh_field_t *f = &r->fields[i];
    if (f->name.len == n && strncasecmp(r->bytes + f->name.off, name, n) == 0) {
      *len = f->value.len;
      return r->bytes + f->value.off;
    }
  }
  return NULL;
}

static char *put(char *p, const char *s, size_t n) {
  memcpy(p, s, n);
  return p + n;
}
#define PUTS(p, lit) put(p, lit, sizeof lit - 1)

static char *put_uint(char *p, uint64_t v) {
  int n = 1;
  for (uint64_t t = v; t >= 10; t /= 10) n++;
  char *e = p + n;
  do {
    *--e = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  return p + n;
}

static const char HEX[] = "0123456789ABCDEF";

/* combined: as nginx escapes, \" \\ and \xHH for bytes outside printable
 * ASCII (at most 4 bytes out for one in) */
static char *put_clf(char *p, const char *s, size_t n) {
  /* 1 for the bytes written as they are */
  static const unsigned char plain[256] = {
    [' '] = 1, ['!'] = 1, ['#' ... '['] = 1, [']' ... '~'] = 1,
  };
  if (!s) {
    *p++ = '-';
    return p;
  }
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (plain[c]) {
      /* a run of them at once */
      size_t j = i + 1;
      while (j < n && plain[(unsigned char)s[j]]) j++;
      p = put(p, s + i, j - i);
      i = j - 1;
      continue;
    }
    if (c == '"' || c == '\\') {
      *p++ = '\\';
      *p++ = (char)c;
    } else if (c < 0x20 || c > 0x7e) {
      *p++ = '\\';
      *p++ = 'x';
      *p++ = HEX[c >> 4];
      *p++ = HEX[c & 15];
    } else {
      *p++ = (char)c;
    }
  }
  return p;
}

/* the length of the UTF-8 sequence at s (at most n bytes), 0 if malformed */
static size_t utf8_len(const unsigned char *s, size_t n) {
  unsigned c = s[0];
  size_t k;
  unsigned min;
  if (c < 0x80) return 1;
  if (c >= 0xc2 && c <= 0xdf) k = 2, min = 0x80;
  else if (c >= 0xe0 && c <= 0xef) k = 3, min = 0x800;
  else if (c >= 0xf0 && c <= 0xf4) k = 4, min = 0x10000;
  else return 0;
  if (k > n) return 0;
  unsigned v = c & (0x3f >> (k - 1));
  for (size_t i = 1; i < k; i++) {
    if ((s[i] & 0xc0) != 0x80) return 0;
    v = (v << 6) | (s[i] & 0x3f);
  }
  if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) return 0;
  return k;
}

/* json: a string per RFC 8259; bytes that are not UTF-8 as \u00XX (at most
 * 6 bytes out for one in, and 2 quotes) */
static char *put_json(char *p, const char *s, size_t n) {
  if (!s) return PUTS(p, "null");
  *p++ = '"';
  for (size_t i = 0; i < n;) {
    unsigned char c = (unsigned char)s[i];
    size_t k = utf8_len((const unsigned char *)s + i, n - i);
    if (c == '"' || c == '\\') {
      *p++ = '\\';
      *p++ = (char)c;
      i++;
    } else if (c < 0x20 || k == 0) {
      p = PUTS(p, "\\u00");
      *p++ = HEX[c >> 4];
      *p++ = HEX[c & 15];
      i++;
    } else {
      p = put(p, s + i, k);
      i += k;
    }
  }
  *p++ = '"';
  return p;
}

/* when as the combined format's date (10/Oct/2000:13:55:36 +0000) or, with
 * iso, as 2000-10-10T13:55:36Z; the last one of each is kept */
static const char *date_of(time_t when, int iso) {
  static struct {
    time_t t;
    char s[32];
  } kept[2] = {{-1, ""}, {-1, ""}};
  static const char *const mon[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  if (kept[iso].t != when) {
    struct tm tm;
    gmtime_r(&when, &tm);
    int y = (tm.tm_year + 1900) % 10000;
    if (iso)
      snprintf(kept[iso].s, sizeof kept[iso].s, "%04d-%02d-%02dT%02d:%02d:%02dZ", y,
               tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    else
      snprintf(kept[iso].s, sizeof kept[iso].s, "%02d/%s/%04d:%02d:%02d:%02d +0000", tm.tm_mday,
               mon[tm.tm_mon], y, tm.tm_hour, tm.tm_min, tm.tm_sec);
    kept[iso].t = when;
  }
  return kept[iso].s;
}

/* what a line holds besides the request's own fields */
typedef struct {
  const char *ua, *ref; /* user agent and referer, or NULL */
  size_t ualen, reflen;
  uint64_t us; /* duration */
  int complete;
} line_t;

/* writes r's line in format fmt at p, which has room for the longest it
 * can be (log_line's max); returns its end */
static char *put_line(char *p, const lh_req_t *r, int fmt, const line_t *x) {
  const char *method = r->bytes + r->method.off, *target = r->bytes + r->target.off;
  const char *version = r->minor == 0 ? "1.0" : "1.1";
  if (fmt == ALOG_COMBINED) {
    p = r->peer ? put(p, r->peer, r->peerlen) : PUTS(p, "-");
    p = PUTS(p, " - - [");
    p = put(p, date_of((time_t)r->wall, 0), 26);
    p = PUTS(p, "] \"");
    p = put(p, method, r->method.len);
    *p++ = ' ';
    p = put_clf(p, target, r->target.len);
    p = PUTS(p, " HTTP/");
    p = put(p, version, 3);
    p = PUTS(p, "\" ");
    if (r->status) p = put_uint(p, r->status);
    else *p++ = '-';
    *p++ = ' ';
    p = put_uint(p, r->sent);
    p = PUTS(p, " \"");
    p = put_clf(p, x->ref, x->reflen);
    p = PUTS(p, "\" \"");
    p = put_clf(p, x->ua, x->ualen);
    p = PUTS(p, "\" ");
    p = put_uint(p, x->us);
    p = PUTS(p, " \"");
    /* an id request_id checked or made needs no escapes */
    p = r->id_clean ? put(p, r->id, r->idlen) : put_clf(p, r->id, r->idlen);
    return x->complete ? PUTS(p, "\" ok\n") : PUTS(p, "\" aborted\n");
  }
  p = PUTS(p, "{\"time\":\"");
  p = put(p, date_of((time_t)r->wall, 1), 20);
  p = PUTS(p, "\",\"peer\":");
  p = put_json(p, r->peer, r->peerlen);
  p = PUTS(p, ",\"method\":");
  p = put_json(p, method, r->method.len);
  p = PUTS(p, ",\"target\":");
  p = put_json(p, target, r->target.len);
  p = PUTS(p, ",\"version\":\"");
  p = put(p, version, 3);
  p = PUTS(p, "\",\"status\":");
  p = r->status ? put_uint(p, r->status) : PUTS(p, "null");
  p = PUTS(p, ",\"bytes\":");
  p = put_uint(p, r->sent);
  p = PUTS(p, ",\"duration_us\":");
  p = put_uint(p, x->us);
  p = PUTS(p, ",\"user_agent\":");
  p = put_json(p, x->ua, x->ualen);
  p = PUTS(p, ",\"referer\":");
  p = put_json(p, x->ref, x->reflen);
  p = PUTS(p, ",\"request_id\":");
  if (r->id_clean) {
    *p++ = '"';
    p = put(p, r->id, r->idlen);
    *p++ = '"';
  } else {
    p = put_json(p, r->id, r->idlen);
  }
  p = PUTS(p, ",\"route\":");
  p = put_json(p, r->route, r->routelen);
  return x->complete ? PUTS(p, ",\"complete\":true}\n") : PUTS(p, ",\"complete\":false}\n");
}

/* the exchange's line, made in place at the end of its log's buffer; no
 * Lua runs. Dropped (and its bytes counted) when the buffer is full */
static void log_line(lh_req_t *r) {
  lh_alog_t *a = r->alog;
  lh_logw_t *w = a->out->w;
  if (!w) return; /* the writer was closed */
  line_t x = {NULL, NULL, 0, 0, (lh_hrtime() - r->t0) / 1000, r->ended || r->upgraded};
  x.ua = field(r, "user-agent", 10, &x.ualen);
  x.ref = field(r, "referer", 7, &x.reflen);
  /* the most each part can take: escapes are 4 (combined) or 6 (json) a byte */
  size_t esc = a->fmt == ALOG_JSON ? 6 : 4;
  size_t max = 300 + r->peerlen + r->method.len +
               esc * ((size_t)r->target.len + x.ualen + x.reflen + r->idlen + r->routelen);
  char *p = lh_logw_reserve(w, max);
  if (p) {
    lh_logw_commit(w, (size_t)(put_line(p, r, a->fmt, &x) - p));
    return;
  }
  /* no room for the longest it could be: made aside, the line goes in if
   * it fits as it is, else lh_logw_write counts its bytes as dropped */
  char *tmp = malloc(max);
  if (!tmp) return;
  lh_logw_write(w, tmp, (size_t)(put_line(tmp, r, a->fmt, &x) - tmp));
  free(tmp);
}

typedef struct {
  lh_req_t *r;
  int ref;
} ended_ctx;

/* the log line, then each function under its own protection: one that
 * raises is reported and the others still run */
static int ended_p(lua_State *L) {
  ended_ctx *x = lua_touserdata(L, 1);
  lh_req_t *r = x->r;
  lua_rawgeti(L, LUA_REGISTRYINDEX, x->ref);
  int t = lua_gettop(L);
  lua_Integer n = (lua_Integer)lua_rawlen(L, t);
  for (lua_Integer i = END_FN; i <= n; i++) {
    lua_rawgeti(L, t, i);
    lua_rawgeti(L, t, END_REQ);
    lua_pushboolean(L, r->ended || r->upgraded);
    if (r->status) lua_pushinteger(L, r->status);
    else lua_pushnil(L);
    lua_pushinteger(L, (lua_Integer)r->sent);
    if (lua_pcall(L, 4, 0, 0) != LUA_OK) {
      const char *m = lua_tostring(L, -1);
      lh_req_report(r, LH_EUSER_SERVICE, m ? m : "req:on_end function raised an error", NULL, 0, NULL);
      lua_settop(L, t);
    }
  }
  return 0;
}

void lh_layer_ended(lh_req_t *r) {
  if (r->alog) {
    log_line(r);
    r->alog = NULL;
  }
  if (!r->watched) return;
  ended_ctx x = {r, r->end_ref};
  r->watched = 0;
  r->end_ref = LUA_NOREF;
  /* the request's own thread when it ends inside it (pipelined requests
   * answered in one run), else the main thread, from a loop callback */
  lua_State *L = r->task.running && r->task.co ? r->task.co : r->task.st->L;
  int top = lua_gettop(L);
  lua_pushcfunction(L, ended_p);
  lua_pushlightuserdata(L, &x);
  if (lua_pcall(L, 1, 0, 0) != LUA_OK)
    fprintf(stderr, "lhyper: req:on_end: %s\n", lua_isstring(L, -1) ? lua_tostring(L, -1) : "error");
  lua_settop(L, top);
  /* the table anchored the req until here; nothing touches r after */
  luaL_unref(L, LUA_REGISTRYINDEX, x.ref);
}

/* --- request ids --- */

/* xoshiro256** (Blackman and Vigna), seeded from getrandom in each
 * process: a forked child seeds again before its first id */
static struct {
  uint64_t s[4];
  int seeded;
} rng;

static void rng_forked(void) { rng.seeded = 0; }

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t rng_next(void) {
  if (!rng.seeded) {
    if (getrandom(rng.s, sizeof rng.s, 0) != (ssize_t)sizeof rng.s) {
      uint64_t t = lh_hrtime() ^ ((uint64_t)getpid() << 32);
      for (int i = 0; i < 4; i++) rng.s[i] = t = t * 6364136223846793005ULL + 1442695040888963407ULL;
    }
    rng.seeded = 1;
  }
  uint64_t *s = rng.s;
  uint64_t r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 45);
  return r;
}

/* 8 hex digits of x at out, the lowest nibble first: each nibble spread
 * to a byte of its own, then made a digit, all eight at once */
static void hex8(char *out, uint32_t x) {
  uint64_t n = x;
  n = ((n & 0xFFFF0000ull) << 16) | (n & 0xFFFFull);
  n = ((n & 0x0000FF000000FF00ull) << 8) | (n & 0x000000FF000000FFull);
  n = ((n & 0x00F000F000F000F0ull) << 4) | (n & 0x000F000F000F000Full);
  uint64_t ten = ((n + 0x0606060606060606ull) >> 4) & 0x0101010101010101ull; /* nibbles >= 10 */
  n += 0x3030303030303030ull + ten * ('a' - '0' - 10);
  memcpy(out, &n, 8); /* every byte a digit, whatever the byte order */
}

/* 32 hex digits of 128 random bits at id */
static void make_id(char id[32]) {
  uint64_t a = rng_next(), b = rng_next();
  hex8(id, (uint32_t)a);
  hex8(id + 8, (uint32_t)(a >> 32));
  hex8(id + 16, (uint32_t)b);
  hex8(id + 24, (uint32_t)(b >> 32));
}

/* the usual request id field, which needs no string to anchor it */
static const char XNAME[] = "x-request-id";

static int id_char(unsigned char c) {
  return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') || c == '.' ||
         c == '_' || c == '~' || c == ':' || c == '+' || c == '/' || c == '=' || c == '@' || c == '-';
}

/* req.id := the string at index i; the response's field `name` (the string
 * at index 2) carries it */
static void set_id(lua_State *L, lh_req_t *r, int i) {
  lua_pushvalue(L, i);
  lh_req_set_id(L, 1);
  if (!r->xname) {
    lua_pushvalue(L, 2);
    lh_req_keep(L, 1, LH_REQ_KEEP_XNAME);
  }
}

/* core.request_id(req, name, make) -> the request's id: its field `name`
 * (lower case) when that is a valid id (1..128 of letters, digits and
 * . _ ~ : + / = @ -), else with make a new one (32 hex digits); nil when
 * neither. The id becomes req.id and the response's field `name` (unless
 * the handler gives one). core.request_id(req, name, nil, id) sets id.
 * With LHYPER_FAST_LAYERS (the default) the id is returned as true: its
 * string is made only when req.id is read. */
/* the request's valid id in its field name (n bytes, lower case), or NULL */
static const char *id_field(const lh_req_t *r, const char *name, size_t n, size_t *vlen) {
  const char *v = field(r, name, n, vlen);
  int ok = v && *vlen >= 1 && *vlen <= 128;
  for (size_t i = 0; ok && i < *vlen; i++) ok = id_char((unsigned char)v[i]);
  return ok ? v : NULL;
}

/* r (the req at index 1) takes the id v (vlen bytes that stay as long as
 * it: the head's copy, r->idbuf), under the field name at index ni (n
 * bytes): req.id's string is made if it is read; the name is kept as the
 * layer's string unless it is the usual one (LHYPER_FAST_LAYERS) */
static void id_bytes(lua_State *L, lh_req_t *r, int ni, const char *name, size_t n, const char *v,
                     size_t vlen) {
  lh_req_set_id_bytes(L, 1, v, vlen);
  if (r->xname) return;
  if (n == sizeof XNAME - 1 && !memcmp(name, XNAME, n)) {
    r->xname = XNAME;
    r->xnlen = (uint32_t)n;
  } else {
    lua_pushvalue(L, ni);
    lh_req_keep(L, 1, LH_REQ_KEEP_XNAME);
  }
}

static int l_request_id(lua_State *L) {
  lh_req_t *r = check_req(L, 1);
  size_t n, vlen;
  const char *name = luaL_checklstring(L, 2, &n);
  if (r->finished) return luaL_error(L, "request_id: the request is already over");
  lua_settop(L, 4);
  if (lua_type(L, 4) == LUA_TSTRING) {
    set_id(L, r, 4);
    lua_pushvalue(L, 4);
    return 1;
  }
  const char *v = id_field(r, name, n, &vlen);
  if (!v && !lua_toboolean(L, 3)) return 0;
  if (!v) {
    make_id(r->idbuf);
    v = r->idbuf;
    vlen = sizeof r->idbuf;
  }
  if (lh_tuning.fast_layers) {
    id_bytes(L, r, 2, name, n, v, vlen);
    lua_pushboolean(L, 1);
    return 1;
  }
  lua_pushlstring(L, v, vlen);
  set_id(L, r, 5);
  return 1;
}

/* --- the timeout layer --- */

/* core.serve_within's time ran out. A request whose head already went out
 * (req:upgrade's 101) is its service's from then on: it runs on with no
 * deadline. Else the answer: the status at index 2, a short text */
static int within_expired(lua_State *L, void *ud) {
  lh_req_t *r = ud;
  if (r && (r->responded || r->upgraded)) return -1;
  lua_pushvalue(L, 2);
  lua_createtable(L, 0, 1);
  lua_pushliteral(L, "text/plain");
  lua_setfield(L, -2, "content-type");
  lua_pushliteral(L, "timed out\n");
  return 3;
}

/* core.serve_within(seconds, status, service, req) -> what service(req)
 * returns, run at once in a child task; if it has not returned within
 * seconds, the child is cancelled and the answer is status, a text/plain
 * field and "timed out\n" (lua/lhyper/layers/timeout.lua) */
static int l_serve_within(lua_State *L) {
  double sec = luaL_checknumber(L, 1);
  luaL_checkinteger(L, 2);
  luaL_checktype(L, 3, LUA_TFUNCTION);
  lua_settop(L, 4);
  lh_req_t *r = lua_touserdata(L, 4);
  if (!r || !lua_getmetatable(L, 4) || !lua_rawequal(L, -1, lua_upvalueindex(UP_REQ_MT))) r = NULL;
  lua_settop(L, 4);
  return lh_spawn_within(L, sec, 3, 4, within_expired, r);
}

/* --- layers' services as C functions (LHYPER_FAST_LAYERS) --- */

/* A chain: the services of request_id, access_log (with a built-in format)
 * and timeout layers, one around the next, as one C function: the req is
 * told once, and no call is made from one to the next. Its upvalues: the
 * req and access log metatables, the steps' kinds (a string, outermost
 * first), each step's values, then the service inside the last:
 *   'R' request_id: the field name
 *   'A' access_log: the log, and the Lua service a request that has a line
 *       already goes to (which calls the rest of the chain's own service)
 *   'W' timeout: seconds, status (always the last step)
 * core.layer_service makes one, taking an inner chain's steps as its own */
enum { UP_KINDS = 3, UP_STEPS };

#define CHAIN_MAX 60 /* steps in one chain; a longer one goes around another */

static int step_values(char kind) { return kind == 'R' ? 1 : 2; }

/* the inner service's results: everything above the req */
static int inner_k(lua_State *L, int status, lua_KContext ctx) { return lua_gettop(L) - 1; }

/* returns what the service at upvalue `up` returns for the req at index 1 */
static int call_inner(lua_State *L, int up) {
  if (lua_gettop(L) != 1) lua_settop(L, 1);
  lua_pushvalue(L, lua_upvalueindex(up));
  lua_pushvalue(L, 1);
  lua_callk(L, 1, LUA_MULTRET, 0, inner_k);
  return inner_k(L, LUA_OK, 0);
}

static int chain_service(lua_State *L) {
  size_t n;
  const char *k = lua_tolstring(L, lua_upvalueindex(UP_KINDS), &n);
  lua_settop(L, 1);
  lh_req_t *r = lua_touserdata(L, 1);
  if (!r || !lua_getmetatable(L, 1) || !lua_rawequal(L, -1, lua_upvalueindex(UP_REQ_MT))) {
    /* a timeout alone serves any value, as serve_within does */
    if (k[0] != 'W')
      return luaL_error(L, "%s: bad argument #1 to the service (lhyper.req expected, got %s)",
                        k[0] == 'R' ? "request_id" : "access_log", luaL_typename(L, 1));
    r = NULL;
  }
  lua_settop(L, 1);
  int up = UP_STEPS;
  for (size_t i = 0; i < n; up += step_values(k[i]), i++) {
    if (k[i] == 'R') {
      size_t nl, vlen;
      int ni = lua_upvalueindex(up);
      const char *name = lua_tolstring(L, ni, &nl);
      if (r->finished) return luaL_error(L, "request_id: the request is already over");
      const char *v = id_field(r, name, nl, &vlen);
      if (!v) {
        make_id(r->idbuf);
        v = r->idbuf;
        vlen = sizeof r->idbuf;
      }
      id_bytes(L, r, ni, name, nl, v, vlen);
    } else if (k[i] == 'A') {
      int li = lua_upvalueindex(up);
      if (!alog_begin(L, lua_touserdata(L, li), li, 1)) return call_inner(L, up + 1);
    } else { /* 'W': req, status, service, req, as serve_within has them */
      lua_pushvalue(L, lua_upvalueindex(up + 1));
      lua_pushvalue(L, lua_upvalueindex(up + 2));
      lua_pushvalue(L, 1);
      return lh_spawn_within(L, lua_tonumber(L, lua_upvalueindex(up)), 3, 4, within_expired, r);
    }
  }
  return call_inner(L, up);
}

/* pushes a chain: the step `kind` with the values at indices v .. top,
 * around the service at index inner, whose steps it takes as its own when
 * that is a chain */
static void push_chain(lua_State *L, char kind, int v, int inner) {
  int nv = lua_gettop(L) - v + 1;
  char kinds[CHAIN_MAX + 1];
  size_t m = 0;
  int inner_top = 0; /* the inner chain's last upvalue (its service), 0: not taken in */
  if (kind != 'W' && lua_tocfunction(L, inner) == chain_service) { /* 'W' stays last */
    lua_getupvalue(L, inner, UP_KINDS);
    const char *ik = lua_tolstring(L, -1, &m);
    if (m < CHAIN_MAX) {
      memcpy(kinds + 1, ik, m);
      inner_top = UP_STEPS;
      for (size_t i = 0; i < m; i++) inner_top += step_values(ik[i]);
    } else {
      m = 0;
    }
    lua_pop(L, 1);
  }
  kinds[0] = kind;
  luaL_checkstack(L, 3 + nv + (inner_top ? inner_top : 1), "too many layers");
  lua_pushvalue(L, lua_upvalueindex(UP_REQ_MT));
  lua_pushvalue(L, lua_upvalueindex(UP_ALOG_MT));
  lua_pushlstring(L, kinds, m + 1);
  for (int i = 0; i < nv; i++) lua_pushvalue(L, v + i);
  int nup = UP_KINDS + nv;
  if (inner_top) { /* its step values and its service */
    for (int i = UP_STEPS; i <= inner_top; i++) lua_getupvalue(L, inner, i);
    nup += inner_top - UP_STEPS + 1;
  } else {
    lua_pushvalue(L, inner);
    nup++;
  }
  lua_pushcclosure(L, chain_service, nup);
}

/* core.layer_service(kind, ...) -> function(req): a layer's service as one
 * C function (a chain): "request_id", name, inner; "access_log", log,
 * inner, second; "timeout", seconds, status, inner */
static int l_layer_service(lua_State *L) {
  static const char *const kinds[] = {"request_id", "access_log", "timeout", NULL};
  int kind = luaL_checkoption(L, 1, NULL, kinds);
  if (kind == 0) {
    luaL_checkstring(L, 2);
    luaL_checktype(L, 3, LUA_TFUNCTION);
    lua_settop(L, 3);
    lua_insert(L, 2); /* inner, name */
    push_chain(L, 'R', 3, 2);
  } else if (kind == 1) {
    luaL_checkudata(L, 2, ALOG_MT);
    luaL_checktype(L, 3, LUA_TFUNCTION);
    luaL_checktype(L, 4, LUA_TFUNCTION);
    lua_settop(L, 4);
    lua_rotate(L, 2, 2); /* inner, second, log */
    lua_insert(L, 3);    /* inner, log, second */
    push_chain(L, 'A', 3, 2);
  } else {
    luaL_checknumber(L, 2);
    luaL_checkinteger(L, 3);
    luaL_checktype(L, 4, LUA_TFUNCTION);
    lua_settop(L, 4);
    lua_rotate(L, 2, 1); /* inner, seconds, status */
    push_chain(L, 'W', 3, 2);
  }
  return 1;
}

/* --- the rest --- */

/* core.req_server(req) -> the server that received it */
static int l_req_server(lua_State *L) {
  check_req(L, 1);
  lh_req_push_server(L, 1);
  return 1;
}

/* core.hrtime() -> the monotonic clock in nanoseconds (an integer) */
static int l_hrtime(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)lh_hrtime());
  return 1;
}

/* core.error_status(code) -> the status lhyper answers an error code with */
static int l_error_status(lua_State *L) {
  lua_pushinteger(L, lh_error_status((int)luaL_checkinteger(L, 1)));
  return 1;
}

static const luaL_Reg funcs[] = {
  {"req_on_end", l_req_on_end},     {"access_log", l_access_log},
  {"access_log_begin", l_access_log_begin}, {"request_id", l_request_id},
  {"req_server", l_req_server},     {"hrtime", l_hrtime},
  {"error_status", l_error_status}, {"serve_within", l_serve_within},
  {"layer_service", l_layer_service}, {NULL, NULL}};

void lh_layer_open(lua_State *L, int mod) {
  if (luaL_newmetatable(L, ALOG_MT)) pthread_atfork(NULL, NULL, rng_forked);
  int alog = lua_gettop(L);
  lua_pushvalue(L, mod);
  lh_req_push_mt(L); /* lh_req_open made it */
  lua_pushvalue(L, alog);
  luaL_setfuncs(L, funcs, 2);
  lua_pop(L, 2);
}
