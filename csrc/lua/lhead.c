/* The response head writer: status and the handler's header table
 * through the dispatcher into the connection's encoder, and the server's kept head (memo) that skips
 * the fields when a response repeats the last one kept. */
#include "lhead.h"

#include <lauxlib.h>
#include <stdio.h>
#include <string.h>

#include "tuning.h"

void lh_head_memo_init(lua_State *L, lh_head_memo_t *m) {
  m->valid = 0;
  m->misses = LH_MEMO_PATIENCE; /* the first response is kept */
  /* the kept head's strings, filled in place (memo_keep) */
  lua_createtable(L, 2 * LH_MEMO_FIELDS, 0);
  for (int i = 1; i <= 2 * LH_MEMO_FIELDS; i++) {
    lua_pushboolean(L, 0);
    lua_rawseti(L, -2, i);
  }
  m->anchor_ref = luaL_ref(L, LUA_REGISTRYINDEX);
}

void lh_head_memo_free(lua_State *L, lh_head_memo_t *m) {
  luaL_unref(L, LUA_REGISTRYINDEX, m->anchor_ref);
  m->anchor_ref = LUA_NOREF;
  m->valid = 0;
}

/* --- why a head was refused: messages that name the field --- */

/* s (n bytes) for a message: at most 48 bytes, control bytes as '?' */
static const char *shown(char out[64], const char *s, size_t n) {
  size_t k = n > 48 ? 48 : n, j = 0;
  for (size_t i = 0; i < k; i++) out[j++] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];
  if (k < n) out[j++] = '.', out[j++] = '.', out[j++] = '.';
  out[j] = 0;
  return out;
}

void lh_head_why_field(char *why, const char *name, size_t nlen, const char *value, size_t vlen) {
  char a[64], b[64];
  int bad_name = nlen == 0, bad_value = 0;
  for (size_t i = 0; i < nlen; i++) bad_name |= !lh_is_tchar((unsigned char)name[i]);
  for (size_t i = 0; i < vlen; i++) bad_value |= lh_value_bad[(unsigned char)value[i]];
  if (nlen == 0) snprintf(why, LH_HEAD_WHY, "a header name is empty");
  else if (bad_name) snprintf(why, LH_HEAD_WHY, "header name '%s' is not a token", shown(a, name, nlen));
  else if (bad_value) snprintf(why, LH_HEAD_WHY, "header '%s': value holds CR, LF or NUL", shown(a, name, nlen));
  else if (nlen == 14 && !strncasecmp(name, "content-length", 14)) {
    int digits = vlen > 0 && vlen <= 19;
    for (size_t i = 0; i < vlen; i++) digits &= value[i] >= '0' && value[i] <= '9';
    if (!digits)
      snprintf(why, LH_HEAD_WHY, "header 'content-length': '%s' is not a non-negative integer",
               shown(b, value, vlen));
    else
      snprintf(why, LH_HEAD_WHY, "header 'content-length': '%s' differs from an earlier value",
               shown(b, value, vlen));
  } else {
    snprintf(why, LH_HEAD_WHY, "header '%s' refused", shown(a, name, nlen));
  }
}

/* Header tables are read raw (lua_next, lua_rawgeti, lua_rawlen): no
 * metamethod of the handler's runs while a head is half written. */
static int field_value(lua_State *L, lh_disp_t *d, const char *name, size_t nlen, int vi,
                       char *why) {
  size_t vlen;
  char a[64];
  int t = lua_type(L, vi), r;
  if (t == LUA_TSTRING) {
    const char *v = lua_tolstring(L, vi, &vlen);
    r = lh_disp_head_field(d, name, nlen, v, vlen);
    if (r == LH_EUSER_HEADER) lh_head_why_field(why, name, nlen, v, vlen);
    return r;
  }
  if (t == LUA_TNUMBER) {
    /* converted on a copy: the slot may be what lua_next walks from */
    lua_pushvalue(L, vi);
    const char *v = lua_tolstring(L, -1, &vlen);
    r = lh_disp_head_field(d, name, nlen, v, vlen);
    if (r == LH_EUSER_HEADER) lh_head_why_field(why, name, nlen, v, vlen);
    lua_pop(L, 1);
    return r;
  }
  if (t == LUA_TTABLE) {
    lua_Integer n = (lua_Integer)lua_rawlen(L, vi);
    if (n == 0) {
      /* {}: no field; a table of other keys is a mistake */
      lua_pushnil(L);
      if (!lua_next(L, vi)) return 0;
      lua_pop(L, 2);
      snprintf(why, LH_HEAD_WHY, "header '%s': a table value must be an array of values (this one has no array part)",
               shown(a, name, nlen));
      return LH_EUSER_HEADER;
    }
    for (lua_Integer i = 1; i <= n; i++) {
      lua_rawgeti(L, vi, i);
      r = lua_type(L, -1) == LUA_TTABLE ? LH_EUSER_HEADER : field_value(L, d, name, nlen, lua_gettop(L), why);
      if (r == LH_EUSER_HEADER && lua_type(L, -1) == LUA_TTABLE)
        snprintf(why, LH_HEAD_WHY, "header '%s': an array of values holds a table", shown(a, name, nlen));
      lua_pop(L, 1);
      if (r) return r;
    }
    return 0;
  }
  snprintf(why, LH_HEAD_WHY, "header '%s': value must be a string, a number or an array of them, not a %s",
           shown(a, name, nlen), lua_typename(L, t));
  return LH_EUSER_HEADER;
}

static int has_upper(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (s[i] >= 'A' && s[i] <= 'Z') return 1;
  return 0;
}

/* a map whose names differ only in case ("Content-Type", "content-type")
 * would send the field twice: refused (only called when a name had an
 * upper-case letter, as two all-lower-case keys cannot be equal) */
static int map_dups(lua_State *L, int hi, char *why) {
  const char *seen[64];
  size_t len[64];
  int n = 0;
  lua_pushnil(L);
  while (lua_next(L, hi)) {
    lua_pop(L, 1);
    size_t kl;
    const char *k = lua_tolstring(L, -1, &kl); /* keys are strings: checked before */
    for (int j = 0; j < n; j++) {
      if (len[j] == kl && !strncasecmp(seen[j], k, kl)) {
        char a[64], b[64];
        snprintf(why, LH_HEAD_WHY, "headers '%s' and '%s' in one table are the same field: use one name (with an array of values)",
                 shown(a, seen[j], len[j]), shown(b, k, kl));
        lua_pop(L, 1);
        return LH_EUSER_HEADER;
      }
    }
    if (n < 64) {
      /* the strings stay alive: the table holds them */
      seen[n] = k;
      len[n++] = kl;
    }
  }
  return 0;
}

/* 1 when the value at index i is body_len as the full way would write it
 * in a content-length field: an integer, or a string of plain digits */
static int is_body_len(lua_State *L, int i, int64_t body_len) {
  if (body_len < 0) return 0;
  if (lua_isinteger(L, i)) return lua_tointeger(L, i) == body_len;
  if (lua_type(L, i) != LUA_TSTRING) return 0;
  size_t n;
  const char *v = lua_tolstring(L, i, &n);
  if (n == 0 || n > 19 || (v[0] == '0' && n > 1)) return 0;
  uint64_t x = 0;
  for (size_t k = 0; k < n; k++) {
    if (v[k] < '0' || v[k] > '9') return 0;
    x = x * 10 + (uint64_t)(v[k] - '0');
  }
  return x == (uint64_t)body_len;
}

/* the value on top is the kept field i's, which is not a string */
static int memo_value(lua_State *L, const lh_head_memo_t *m, int i, int64_t body_len) {
  if (m->how[i] == LH_MEMO_INT) return lua_isinteger(L, -1) && lua_tointeger(L, -1) == m->num[i];
  return is_body_len(L, -1, body_len);
}

/* 1 when the table at hi (0: no headers) holds the kept head's fields, in
 * the same order. Names and string values are compared by address
 * (lua_topointer): a kept string is anchored, so no other value has its
 * address, and a number has none. */
static int memo_match(lua_State *L, const lh_head_memo_t *m, int hi, int64_t body_len) {
  const void *const *kv = m->kv, *const *end = m->kv + 2 * m->n;
  if (!hi) return kv == end;
  lua_pushnil(L);
  while (lua_next(L, hi)) {
    int ok = kv < end && lua_topointer(L, -2) == kv[0] &&
             (kv[1] ? lua_topointer(L, -1) == kv[1] : memo_value(L, m, (int)(kv - m->kv) / 2, body_len));
    lua_pop(L, 1);
    if (!ok) {
      lua_pop(L, 1);
      return 0;
    }
    kv += 2;
  }
  return kv == end;
}

static int is_content_length(const char *s, size_t n) {
  static const char cl[] = "content-length";
  if (n != 14) return 0;
  for (size_t i = 0; i < 14; i++)
    if ((s[i] >= 'A' && s[i] <= 'Z' ? s[i] + 32 : s[i]) != cl[i]) return 0;
  return 1;
}

/* how the value at index -1 of a field named at -2 is kept (LH_MEMO_*),
 * or -1: not at all. Only strings while LHYPER_KEPT_VALUES is off */
static int memo_how(lua_State *L, int64_t body_len) {
  int vt = lua_type(L, -1);
  if (lua_type(L, -2) != LUA_TSTRING || (vt != LUA_TSTRING && vt != LUA_TNUMBER)) return -1;
  size_t nlen;
  const char *name = lua_tolstring(L, -2, &nlen);
  if (!lh_tuning.kept_values) return vt == LUA_TSTRING && !is_content_length(name, nlen) ? LH_MEMO_STR : -1;
  if (is_content_length(name, nlen)) return is_body_len(L, -1, body_len) ? LH_MEMO_LEN : -1;
  if (vt == LUA_TSTRING) return LH_MEMO_STR;
  return lua_isinteger(L, -1) ? LH_MEMO_INT : -1;
}

/* keeps the head just written from the map at hi (0: none) when every
 * field was a string name with a value memo_how takes, anchoring the
 * strings */
static void memo_keep(lua_State *L, lh_head_memo_t *m, lh_disp_t *d, int hi, int64_t body_len,
                      uint32_t xv, uint32_t xe) {
  m->misses = 0;
  m->valid = 0;
  if (m->anchor_ref == LUA_NOREF || lh_disp_head_keep_x(d, body_len, &m->tpl, xv, xe)) return;
  /* presized when the server was made: nothing here allocates */
  lua_rawgeti(L, LUA_REGISTRYINDEX, m->anchor_ref);
  int a = lua_gettop(L), i = 0;
  if (hi) {
    lua_pushnil(L);
    while (lua_next(L, hi)) {
      int how = i < LH_MEMO_FIELDS ? memo_how(L, body_len) : -1;
      if (how < 0) {
        /* not kept; the slots written so far are cleared with the next */
        m->n = LH_MEMO_FIELDS;
        lua_settop(L, a - 1);
        return;
      }
      m->kv[2 * i] = lua_topointer(L, -2);
      m->kv[2 * i + 1] = how == LH_MEMO_STR ? lua_topointer(L, -1) : NULL;
      m->how[i] = (uint8_t)how;
      if (how == LH_MEMO_INT) m->num[i] = lua_tointeger(L, -1);
      lua_rawseti(L, a, 2 * i + 2);
      lua_pushvalue(L, -1);
      lua_rawseti(L, a, 2 * i + 1);
      i++;
    }
  }
  for (int j = 2 * i; j < 2 * m->n; j++) {
    lua_pushboolean(L, 0); /* not nil: the slot stays in the array part */
    lua_rawseti(L, a, j + 1);
  }
  lua_pop(L, 1);
  m->n = (uint8_t)i;
  m->valid = 1;
}

/* name (nlen bytes, any case) is the extra field's (lower case) */
static int is_extra(const lh_head_extra_t *x, const char *name, size_t n) {
  if (!x || n != x->nlen) return 0;
  for (size_t i = 0; i < n; i++)
    if ((name[i] >= 'A' && name[i] <= 'Z' ? name[i] + 32 : name[i]) != x->name[i]) return 0;
  return 1;
}

/* 1 when the kept head has a slot for the extra field's value (written
 * after the handler's fields, which matched) under x's name, and x's
 * value may go on the wire */
static int memo_extra(const lh_head_memo_t *m, const lh_head_extra_t *x) {
  const lh_head_tpl_t *t = &m->tpl;
  if (!x) return !t->x;
  if (!t->x || x->vlen == 0 || (size_t)t->xat < x->nlen + 3) return 0;
  const char *n = t->bytes + t->xat - 2 - x->nlen;
  if (n[-1] != '\n' || n[x->nlen] != ':' || n[x->nlen + 1] != ' ') return 0;
  if (memcmp(n, x->name, x->nlen) != 0) /* most often written from the same name */
    for (size_t i = 0; i < x->nlen; i++)
      if ((n[i] >= 'A' && n[i] <= 'Z' ? n[i] + 32 : n[i]) != x->name[i]) return 0;
  if (x->clean) return 1;
  int bad = 0;
  for (size_t i = 0; i < x->vlen; i++) bad |= lh_value_bad[(unsigned char)x->value[i]];
  return !bad;
}

int lh_head_write(lua_State *L, lh_disp_t *d, lh_head_memo_t *m, int status, int hi,
                  int64_t body_len, const lh_head_extra_t *x, char *why) {
  int e, is_map, upper = 0;
  int seen_x = 0; /* the handler gave a field of the extra's name: it stays alone */
  if (hi && lua_istable(L, hi)) {
    hi = lua_absindex(L, hi);
  } else if (hi && lua_isnoneornil(L, hi)) {
    hi = 0;
  } else if (hi) {
    snprintf(why, LH_HEAD_WHY, "headers must be a table, not a %s", luaL_typename(L, hi));
    return LH_EUSER_HEADER;
  }
  if (status < 200) m = NULL;
  if (m) {
    /* an array of pairs never matches: its keys are numbers. The extra
     * field's value, which differs each time, has a slot of its own */
    if (m->valid && m->tpl.status == status && m->tpl.key == lh_disp_head_key(d, body_len) &&
        memo_extra(m, x) && memo_match(L, m, hi, body_len)) {
      m->misses = 0;
      return lh_disp_head_replay_x(d, &m->tpl, body_len, x ? x->value : NULL, x ? x->vlen : 0);
    }
    if (m->misses < LH_MEMO_PATIENCE) m->misses++;
  }
  if ((e = lh_disp_head_begin(d, status))) return e;
  lua_Integer n = hi ? (lua_Integer)lua_rawlen(L, hi) : 0;
  is_map = hi && n == 0; /* else an array of {name, value} */
  if (!hi) {
    /* no headers */
  } else if (!is_map) {
    for (lua_Integer i = 1; i <= n && !e; i++) {
      lua_rawgeti(L, hi, i);
      int p = lua_gettop(L);
      if (!lua_istable(L, p)) {
        e = LH_EUSER_HEADER;
        snprintf(why, LH_HEAD_WHY, "headers[%d] must be a {name, value} pair, not a %s", (int)i,
                 luaL_typename(L, p));
      } else {
        lua_rawgeti(L, p, 1);
        lua_rawgeti(L, p, 2);
        size_t nlen;
        const char *name = lua_type(L, -2) == LUA_TSTRING ? lua_tolstring(L, -2, &nlen) : NULL;
        if (name) {
          e = field_value(L, d, name, nlen, lua_gettop(L), why);
          if (is_extra(x, name, nlen)) seen_x = 1;
        } else {
          e = LH_EUSER_HEADER;
          snprintf(why, LH_HEAD_WHY, "headers[%d]: the name must be a string, not a %s", (int)i,
                   luaL_typename(L, -2));
        }
      }
      lua_settop(L, p - 1);
    }
  } else {
    lua_pushnil(L);
    while (!e && lua_next(L, hi)) {
      size_t nlen;
      if (lua_type(L, -2) != LUA_TSTRING) {
        e = LH_EUSER_HEADER;
        snprintf(why, LH_HEAD_WHY, "header names must be strings, not a %s (a map cannot mix in {name, value} pairs)",
                 luaL_typename(L, -2));
      } else {
        const char *name = lua_tolstring(L, -2, &nlen);
        upper |= has_upper(name, nlen);
        e = field_value(L, d, name, nlen, lua_gettop(L), why);
        if (is_extra(x, name, nlen)) seen_x = 1;
      }
      lua_pop(L, 1);
    }
    if (e) lua_pop(L, 1); /* the key lua_next left */
    else if (upper) e = map_dups(L, hi, why);
  }
  uint32_t xv = 0, xe = 0; /* where the extra field's value went */
  if (!e && x && !seen_x) {
    uint32_t at = lh_disp_head_mark(d);
    e = lh_disp_head_field(d, x->name, x->nlen, x->value, x->vlen);
    if (e == LH_EUSER_HEADER) lh_head_why_field(why, x->name, x->nlen, x->value, x->vlen);
    uint32_t end = lh_disp_head_mark(d);
    if (!e && end > at && end - at == x->nlen + x->vlen + 4) xv = at + (uint32_t)x->nlen + 2, xe = end - 2;
    else if (!e) m = NULL; /* not where it was expected: not kept */
  }
  if (x && seen_x) m = NULL; /* the handler's own field stands for it: not kept */
  if (!e) e = lh_disp_head_end(d, body_len);
  if (e) {
    lh_disp_head_abort(d);
    return e;
  }
  if (m && (is_map || !hi) && m->misses >= LH_MEMO_PATIENCE) memo_keep(L, m, d, hi, body_len, xv, xe);
  return 0;
}
