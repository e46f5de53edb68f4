/* A response head from a handler's Lua values (status and a headers
 * table), and the server's kept head: the memo that lets the next response
 * with the same status and the same field strings be written again from
 * its bytes (lh_conn_head_replay). */
#ifndef LH_LHEAD_H
#define LH_LHEAD_H

#include <lua.h>

#include "dispatch.h"

/* the server's last response head, kept (lh_conn_head_keep) with the
 * handler's field names and values it was made from; the strings are
 * anchored so that while kept no other string can have their addresses.
 * Zero-filled plus lh_head_memo_init is a valid start. */
#define LH_MEMO_FIELDS 8
#define LH_MEMO_PATIENCE 8 /* responses unlike the kept head before another is kept */
enum {
  LH_MEMO_STR = 0, /* a string value, the same string (by address) */
  LH_MEMO_INT,     /* an integer value, the same integer */
  LH_MEMO_LEN      /* content-length: the body's length, as a string or an integer */
};
typedef struct {
  lh_head_tpl_t tpl;
  const void *kv[2 * LH_MEMO_FIELDS]; /* lua_topointer of each name and string
                                       * value; NULL for a value kept otherwise */
  lua_Integer num[LH_MEMO_FIELDS];    /* each LH_MEMO_INT value */
  uint8_t how[LH_MEMO_FIELDS];        /* how each value matches: LH_MEMO_* */
  uint8_t n;             /* fields */
  uint8_t valid;         /* tpl and kv describe the kept head */
  uint8_t misses;        /* responses since the last that matched (at most LH_MEMO_PATIENCE) */
  int anchor_ref;        /* registry ref of the table holding kv's strings; LUA_NOREF: none */
} lh_head_memo_t;

/* makes the memo's anchor table (presized: keeping a head allocates nothing) */
void lh_head_memo_init(lua_State *L, lh_head_memo_t *m);
void lh_head_memo_free(lua_State *L, lh_head_memo_t *m);

/* a field a layer adds after the handler's (request_id's), unless the
 * handler gave one of that name; name lower case */
typedef struct {
  const char *name, *value;
  size_t nlen, vlen;
  int clean; /* set when value is known to hold no byte a field value may not
              * (a request id request_id checked or made): not scanned again */
} lh_head_extra_t;

#define LH_HEAD_WHY 200 /* room for the reason a head was refused */

/* writes the head for status with the headers at index hi (0: none) and a
 * body of body_len bytes (-1: streamed) through d. The header value is nil,
 * a map or an array of {name, value}, read raw. m (NULL: none) may serve
 * the head, or keep it; x (NULL: none) adds its field, whose value has a
 * slot of its own in a kept head. 0, or a negative code with nothing
 * written; for LH_EUSER_HEADER, why (LH_HEAD_WHY bytes) names the field
 * and the reason */
int lh_head_write(lua_State *L, lh_disp_t *d, lh_head_memo_t *m, int status, int hi,
                  int64_t body_len, const lh_head_extra_t *x, char *why);
/* why the field name: value was refused (lh_conn_head_field said
 * LH_EUSER_HEADER): "header 'x': value holds CR, LF or NUL", ... */
void lh_head_why_field(char *why, const char *name, size_t nlen, const char *value, size_t vlen);

#endif
