#include "parse.h"

#include <stdlib.h>
#include <string.h>

/* RFC 9112 2.1:
 *   HTTP-message = start-line CRLF *( field-line CRLF ) CRLF [ message-body ]
 *   field-line   = field-name ":" OWS field-value OWS
 * Two readers produce the same lh_head_t. fast_head takes a usual request
 * head whole in one pass; anything else, and any head that is not whole yet,
 * goes through the line parser (slow_head), which reads line by line and
 * keeps its place between calls. Both note what the fields mean with
 * note_field and apply the framing rules in head_finish. */

const char lh_value_bad[256] = {[0] = 1, ['\r'] = 1, ['\n'] = 1};

const char lh_tchar[256] = {
  ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1, ['*'] = 1,
  ['+'] = 1, ['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1, ['`'] = 1, ['|'] = 1,
  ['~'] = 1, ['0' ... '9'] = 1, ['A' ... 'Z'] = 1, ['a' ... 'z'] = 1,
};

/* field-value bytes (RFC 9110 5.5): HTAB, SP, VCHAR and obs-text; no other
 * control byte, no DEL */
static const char field_vchar[256] = {['\t'] = 1, [' ' ... '~'] = 1, [0x80 ... 0xff] = 1};

/* request-target bytes (RFC 9112 3.2, RFC 3986 3.3 and 3.4), before and
 * after the first '?'; no obs-text, no '#' (a fragment is no part of a
 * request-target). As hyper (the http crate's scan of path and query), the
 * path takes '"', '{', '}', '|', '^', '[' and ']' unencoded, which some
 * clients send, but not '<', '>' or '`'; the query takes every VCHAR but
 * '"', '<' and '>'. Unlike hyper, a '\' in the path is refused: a WHATWG
 * URL parser (a browser, many proxies) reads it as '/', so lhyper and
 * what is in front of it would disagree on the path (the query's is
 * sent raw by browsers and means nothing there) */
static const char path_char[256] = {
  ['!'] = 1, ['"'] = 1, ['$' ... ';'] = 1, ['='] = 1, ['@' ... '['] = 1, [']' ... '_'] = 1,
  ['a' ... '~'] = 1,
};
static const char query_char[256] = {['!'] = 1, ['$' ... ';'] = 1, ['='] = 1, ['?' ... '~'] = 1};

/* uri-host bytes outside an IP-literal (RFC 3986 3.2.2 reg-name, which
 * covers IPv4address): unreserved and sub-delims; '%' is checked apart */
static const char regname_char[256] = {
  ['-'] = 1, ['.'] = 1, ['_'] = 1, ['~'] = 1, ['!'] = 1, ['$'] = 1, ['&'] = 1,
  ['\''] = 1, ['('] = 1, [')'] = 1, ['*'] = 1, ['+'] = 1, [','] = 1, [';'] = 1,
  ['='] = 1, ['0' ... '9'] = 1, ['A' ... 'Z'] = 1, ['a' ... 'z'] = 1,
};

static inline char lower(char c) {
  return (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
}

static inline int is_digit(char c) { return c >= '0' && c <= '9'; }
static inline int is_ws(char c) { return c == ' ' || c == '\t'; }

static inline int hexval(char ch) {
  unsigned char c = (unsigned char)ch;
  if (c >= '0' && c <= '9') return c - '0';
  c |= 0x20;
  return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* a (length n) equals the lower-case lname (length ln), ignoring case */
static int token_is(const char *a, size_t n, const char *lname, size_t ln) {
  if (n != ln) return 0;
  for (size_t i = 0; i < n; i++)
    if (lower(a[i]) != lname[i]) return 0;
  return 1;
}

int lh_name_eq(const char *base, lh_span_t s, const char *lname, size_t n) {
  return token_is(base + s.off, s.len, lname, n);
}

/* the next non-empty element of a comma-separated list (RFC 9110 5.6.1),
 * without the whitespace around it; 0 at the end of the list */
static int list_next(const char *v, size_t n, size_t *i, const char **el, size_t *len) {
  while (*i < n) {
    while (*i < n && (v[*i] == ' ' || v[*i] == '\t' || v[*i] == ',')) (*i)++;
    size_t s = *i;
    while (*i < n && v[*i] != ',') (*i)++;
    size_t e = *i;
    while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t')) e--;
    if (e > s) {
      *el = v + s;
      *len = e - s;
      return 1;
    }
  }
  return 0;
}

int lh_list_has(const char *v, size_t n, const char *token) {
  size_t tl = strlen(token), i = 0, len;
  const char *el;
  while (list_next(v, n, &i, &el, &len))
    if (token_is(el, len, token, tl)) return 1;
  return 0;
}

/* the Connection options a head's framing depends on, in one pass */
enum { CONN_CLOSE = 1, CONN_KEEP_ALIVE = 2, CONN_UPGRADE = 4 };
static int conn_options(const char *v, size_t n) {
  int found = 0;
  size_t i = 0, len;
  const char *el;
  while (list_next(v, n, &i, &el, &len)) {
    if (token_is(el, len, "close", 5)) found |= CONN_CLOSE;
    else if (token_is(el, len, "keep-alive", 10)) found |= CONN_KEEP_ALIVE;
    else if (token_is(el, len, "upgrade", 7)) found |= CONN_UPGRADE;
  }
  return found;
}

/* the options of one Connection field value, the usual single option
 * without a list walk */
static int connection_field(const char *v, size_t n) {
  if (n == 5 && token_is(v, n, "close", 5)) return CONN_CLOSE;
  if (n == 10 && token_is(v, n, "keep-alive", 10)) return CONN_KEEP_ALIVE;
  return conn_options(v, n);
}

/* RFC 9112 9.3: 1.1 persists unless closed, 1.0 only when asked to */
static int keeps_alive(int minor, int conn) {
  return minor >= 1 ? !(conn & CONN_CLOSE) : (conn & CONN_KEEP_ALIVE) && !(conn & CONN_CLOSE);
}

/* Expect: 100-continue, the one expectation defined (RFC 9110 10.1.1) */
static int expects_continue(const char *v, size_t n) {
  return n == 12 && token_is(v, n, "100-continue", 12);
}

/* RFC 9112 3.2: exactly one Host in 1.1, at most one otherwise */
static int hosts_bad(int hosts, int minor) { return hosts > 1 || (hosts == 0 && minor >= 1); }

/* --- Host and authority (RFC 3986 3.2.2) --- */

/* dec-octet "." dec-octet "." dec-octet "." dec-octet, no leading zeros */
static int ipv4_ok(const char *s, size_t n) {
  size_t i = 0;
  for (int part = 0; part < 4; part++) {
    if (part && (i >= n || s[i++] != '.')) return 0;
    size_t st = i;
    unsigned v = 0;
    while (i < n && is_digit(s[i]) && i - st < 3) v = v * 10 + (unsigned)(s[i++] - '0');
    if (i == st || v > 255 || (i - st > 1 && s[st] == '0')) return 0;
  }
  return i == n;
}

/* RFC 4291 2.2 text forms: eight groups of 1 to 4 hex digits, one "::"
 * standing for one or more of them, the last two as an IPv4 address */
static int ipv6_ok(const char *s, size_t n) {
  size_t i = 0;
  int groups = 0, dbl = 0;
  if (n >= 2 && s[0] == ':' && s[1] == ':') {
    dbl = 1;
    i = 2;
    if (i == n) return 1;
  }
  for (;;) {
    size_t st = i;
    while (i < n && hexval(s[i]) >= 0 && i - st < 5) i++;
    if (i < n && s[i] == '.') {
      if (!ipv4_ok(s + st, n - st)) return 0;
      groups += 2;
      break;
    }
    if (i == st || i - st > 4) return 0;
    groups++;
    if (i == n) break;
    if (s[i++] != ':' || i == n) return 0;
    if (s[i] == ':') {
      if (dbl) return 0;
      dbl = 1;
      if (++i == n) break;
    }
  }
  return dbl ? groups <= 7 : groups == 8;
}

/* "v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" ) */
static int ipvfuture_ok(const char *s, size_t n) {
  size_t i = 1;
  if (n < 4 || (s[0] != 'v' && s[0] != 'V')) return 0;
  while (i < n && hexval(s[i]) >= 0) i++;
  if (i == 1 || i >= n - 1 || s[i] != '.') return 0;
  for (i++; i < n; i++)
    if (!regname_char[(unsigned char)s[i]] && s[i] != ':') return 0;
  return 1;
}

static int host_ok_slow(const char *v, size_t n, int need_port) {
  size_t i = 0;
  if (n && v[0] == '[') {
    const char *e = memchr(v, ']', n);
    if (!e) return 0;
    size_t k = (size_t)(e - v) - 1;
    if (!ipv6_ok(v + 1, k) && !ipvfuture_ok(v + 1, k)) return 0;
    i = k + 2;
  } else {
    for (; i < n && v[i] != ':'; i++) {
      if (regname_char[(unsigned char)v[i]]) continue;
      if (v[i] != '%' || i + 2 >= n || hexval(v[i + 1]) < 0 || hexval(v[i + 2]) < 0) return 0;
      i += 2;
    }
    if (need_port && i == 0) return 0;
  }
  if (i == n) return !need_port;
  if (v[i++] != ':' || (need_port && i == n)) return 0;
  for (; i < n; i++)
    if (!is_digit(v[i])) return 0;
  return 1;
}

/* the first byte from i on that is not in the table t, four at a time */
static inline size_t run_of(const char *t, const char *v, size_t i, size_t n) {
  const unsigned char *u = (const unsigned char *)v;
  while (i + 4 <= n && (t[u[i]] & t[u[i + 1]] & t[u[i + 2]] & t[u[i + 3]])) i += 4;
  while (i < n && t[u[i]]) i++;
  return i;
}

static const char digit_char[256] = {['0' ... '9'] = 1};

int lh_host_ok(const char *v, size_t n, int need_port) {
  /* the usual name or IPv4 address and port, in one short walk */
  size_t i = run_of(regname_char, v, 0, n);
  if (i < n && v[i] != ':') return host_ok_slow(v, n, need_port);
  if (need_port && (i == 0 || i + 1 >= n)) return 0;
  if (i < n) i++;
  return run_of(digit_char, v, i, n) == n;
}

/* --- field arrays --- */

/* Field arrays of FIELDS_STD entries cover nearly every head; a small free
 * list per thread saves a malloc/free pair per message (see buf.c's blocks) */
#define FIELDS_STD 16
#define FIELDS_POOL_MAX 64
static __thread struct {
  lh_field_t *a[FIELDS_POOL_MAX];
  int n;
} fpool;

static void fields_free(lh_field_t *a, uint32_t cap) {
  if (a && cap == FIELDS_STD && fpool.n < FIELDS_POOL_MAX) fpool.a[fpool.n++] = a;
  else free(a);
}

static int grow_fields(lh_field_t **arr, uint32_t *cap, uint32_t need) {
  if (need <= *cap) return 0;
  if (*cap == 0 && need <= FIELDS_STD && fpool.n) {
    *arr = fpool.a[--fpool.n];
    *cap = FIELDS_STD;
    return 0;
  }
  uint32_t ncap = *cap ? *cap * 2 : FIELDS_STD;
  while (ncap < need) ncap *= 2;
  lh_field_t *a = realloc(*arr, ncap * sizeof *a);
  if (!a) return -1;
  *arr = a;
  *cap = ncap;
  return 0;
}

/* --- what fields mean --- */

static inline uint64_t load8(const char *p) {
  uint64_t v;
  memcpy(&v, p, 8);
  return v;
}

static inline uint32_t load4(const char *p) {
  uint32_t v;
  memcpy(&v, p, 4);
  return v;
}

#define ONES8 0x0101010101010101ull
#define HIGH8 0x8080808080808080ull

/* a token name s (n bytes, 4 <= n <= 24) equals the lower-case lname,
 * ignoring case: OR-ing in 0x20 lowers a letter and leaves the other token
 * characters ('-', digits and the like) as they are; no other token
 * character becomes a letter that way */
static inline int name_is(const char *s, size_t n, const char *lname) {
  if (n < 8)
    return ((load4(s) | 0x20202020u) == load4(lname)) &
           ((load4(s + n - 4) | 0x20202020u) == load4(lname + n - 4));
  uint64_t low = 0x20 * ONES8;
  int eq = ((load8(s) | low) == load8(lname)) & ((load8(s + n - 8) | low) == load8(lname + n - 8));
  if (n > 16) eq &= (load8(s + 8) | low) == load8(lname + 8);
  return eq;
}

/* the fields whose meaning the parser needs (FF_TE is Transfer-Encoding,
 * FF_TE_REQ the TE request field) */
enum { FF_OTHER, FF_HOST, FF_EXPECT, FF_UPGRADE, FF_CONNECTION, FF_CONTENT_LENGTH, FF_TE, FF_TE_REQ };
static inline __attribute__((always_inline)) int field_kind(const char *s, size_t n) {
  switch (n) {
    case 2: return (s[0] | 0x20) == 't' && (s[1] | 0x20) == 'e' ? FF_TE_REQ : FF_OTHER;
    case 4: return name_is(s, n, "host") ? FF_HOST : FF_OTHER;
    case 6: return name_is(s, n, "expect") ? FF_EXPECT : FF_OTHER;
    case 7: return name_is(s, n, "upgrade") ? FF_UPGRADE : FF_OTHER;
    case 10: return name_is(s, n, "connection") ? FF_CONNECTION : FF_OTHER;
    case 14: return name_is(s, n, "content-length") ? FF_CONTENT_LENGTH : FF_OTHER;
    case 17: return name_is(s, n, "transfer-encoding") ? FF_TE : FF_OTHER;
  }
  return FF_OTHER;
}

/* RFC 9110 8.6: Content-Length = 1*DIGIT. A list of equal values, or equal
 * field lines, is one length (an upstream may have joined duplicates); any
 * other difference, an empty element or a number past 2^63 - 1 is invalid */
static void note_length(lh_notes_t *nt, const char *v, size_t n) {
  size_t i = 0;
  do {
    while (i < n && is_ws(v[i])) i++;
    uint64_t x = 0;
    size_t st = i;
    for (; i < n && is_digit(v[i]); i++) {
      uint64_t dig = (uint64_t)(v[i] - '0');
      if (x > (INT64_MAX - dig) / 10) {
        nt->cl_bad = 1;
        return;
      }
      x = x * 10 + dig;
    }
    while (i < n && is_ws(v[i])) i++;
    if (i == st || (i < n && v[i] != ',') || (nt->cl++ && x != nt->length)) {
      nt->cl_bad = 1;
      return;
    }
    nt->length = x;
  } while (i++ < n);
}

/* RFC 9112 6.1: the codings of one Transfer-Encoding field line, in order */
static void note_te(lh_notes_t *nt, const char *v, size_t n) {
  size_t i = 0, len;
  const char *el;
  nt->te++;
  while (list_next(v, n, &i, &el, &len)) {
    nt->te_items++;
    nt->te_last_chunked = token_is(el, len, "chunked", 7);
    nt->te_chunked += nt->te_last_chunked;
  }
}

static inline void note_field(lh_notes_t *nt, int kind, const char *v, size_t n) {
  switch (kind) {
    case FF_HOST:
      nt->hosts++;
      nt->host_bad |= !lh_host_ok(v, n, 0);
      nt->framing |= nt->host_bad;
      break;
    case FF_EXPECT:
      nt->expect |= expects_continue(v, n);
      break;
    case FF_UPGRADE:
      nt->upgrade = nt->framing = 1;
      break;
    case FF_CONNECTION:
      nt->conn |= (uint8_t)connection_field(v, n);
      break;
    case FF_CONTENT_LENGTH:
      nt->framing = 1;
      note_length(nt, v, n);
      break;
    case FF_TE:
      nt->framing = 1;
      note_te(nt, v, n);
      break;
    case FF_TE_REQ:
      /* RFC 9110 10.1.4: TE = #t-codings; "trailers" says they are welcome */
      nt->te_trailers |= lh_list_has(v, n, "trailers");
      break;
  }
}

/* a response to HEAD, or 1xx, 204 and 304, has no content (RFC 9110 6.4.1) */
static int response_bodiless(const lh_parser_t *p) {
  int s = p->head.status;
  return p->skip_body || s / 100 == 1 || s == 204 || s == 304;
}

/* RFC 9112 6.1 and 6.3 for a request: Transfer-Encoding on 1.0, with
 * Content-Length, or with chunked not once and last cannot be framed
 * reliably (400); a coding we lack is 501 */
static int request_te_error(const lh_notes_t *nt, int minor) {
  if (minor >= 1 && !nt->cl && nt->te_items && !nt->te_chunked) return LH_EPARSE_TE_UNSUPPORTED;
  if (minor == 0 || nt->cl || nt->te_chunked != 1 || !nt->te_last_chunked) return LH_EPARSE_TE;
  return nt->te_items > 1 ? LH_EPARSE_TE_UNSUPPORTED : 0;
}

/* RFC 9110 and 9112 rules over a whole head: Host, framing, Connection,
 * Expect, Upgrade. Sets the body's decoder and the parser's state; 0 or an
 * error */
static int head_finish(lh_parser_t *p) {
  lh_head_t *hd = &p->head;
  const lh_notes_t *nt = &p->notes;
  int chunked = 0;
  if (p->role == LH_ROLE_SERVER) {
    if (hosts_bad(nt->hosts, hd->minor) || nt->host_bad) return LH_EPARSE_HOST;
    if (nt->te) {
      int e = request_te_error(nt, hd->minor);
      if (e) return e;
      chunked = 1;
    }
    if (nt->cl_bad) return LH_EPARSE_CONTENT_LENGTH;
    hd->expect_continue = hd->minor >= 1 && nt->expect;
  } else {
    if (nt->te && nt->cl) return LH_EPARSE_TE;
    if (nt->cl_bad) return LH_EPARSE_CONTENT_LENGTH;
    if (nt->te_chunked > 1) return LH_EPARSE_TE;
    /* RFC 9112 6.3: chunked not last leaves the length to the close */
    chunked = nt->te && nt->te_last_chunked;
  }
  hd->keep_alive = (uint8_t)keeps_alive(hd->minor, nt->conn);
  hd->te_trailers = nt->te_trailers;
  hd->chunked = (uint8_t)chunked;
  hd->content_length = nt->cl && !nt->te ? nt->length : LH_NO_LENGTH;
  hd->upgrade = (p->role == LH_ROLE_SERVER && hd->method_id == LH_METHOD_CONNECT) ||
                ((nt->conn & CONN_UPGRADE) && nt->upgrade);
  if (p->role == LH_ROLE_SERVER) {
    hd->has_body = chunked || (hd->content_length != LH_NO_LENGTH && hd->content_length > 0);
  } else if (response_bodiless(p)) {
    hd->has_body = 0;
  } else {
    hd->has_body = chunked || hd->content_length != 0;
    hd->close_delimited = !chunked && hd->content_length == LH_NO_LENGTH;
    if (hd->close_delimited) hd->keep_alive = 0;
  }
  if (!hd->has_body) {
    p->state = LH_PARSE_DONE;
    return 0;
  }
  if (chunked) lh_decoder_chunked(&p->dec);
  else if (hd->close_delimited) lh_decoder_eof(&p->dec);
  else lh_decoder_length(&p->dec, hd->content_length);
  p->state = LH_PARSE_BODY;
  return 0;
}

/* a new message: an empty head (its field array kept), no trailers; the
 * place in the head is at its start already (scan is 0) */
static void message_begin(lh_parser_t *p) {
  lh_field_t *f = p->head.fields;
  memset(&p->head, 0, sizeof p->head);
  p->head.fields = f;
  p->head.content_length = LH_NO_LENGTH;
  memset(&p->notes, 0, sizeof p->notes);
  p->in_trailers = 0;
  p->ntrailers = 0;
  p->tlen = p->tline = 0;
}

/* --- the fast path ---
 * Most requests are a short head: a usual method, an origin-form target,
 * HTTP/1.1 or 1.0, plain fields with CRLF. fast_head takes such a head when
 * it is whole in the buffer, in one pass; anything else (a partial head,
 * anything unusual or wrong) goes to the line parser from the first byte,
 * which alone reports errors. What fast_head takes comes out exactly as
 * the line parser has it; fuzz_head checks the two against each other. */

/* origin-form characters taken here: unreserved, sub-delims, ":@/?%" */
static const char fast_target[256] = {
  ['!'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1, ['('] = 1, [')'] = 1,
  ['*'] = 1, ['+'] = 1, [','] = 1, ['-'] = 1, ['.'] = 1, ['/'] = 1, [':'] = 1,
  [';'] = 1, ['='] = 1, ['?'] = 1, ['@'] = 1, ['_'] = 1, ['~'] = 1,
  ['0' ... '9'] = 1, ['A' ... 'Z'] = 1, ['a' ... 'z'] = 1,
};

/* field-value characters taken here: HTAB, SP and VCHAR (no obs-text) */
static const char fast_value[256] = {['\t'] = 1, [' ' ... '~'] = 1};

/* the end of a run of HTAB, SP and VCHAR from d + i, eight bytes at a
 * time: a word's flags mark each byte below 0x20, DEL or from 0x80 up. A
 * flag can be false only above a true one (a borrow goes up), so the
 * lowest flag is the first such byte: an HTAB there is taken and the
 * scan goes on, anything else ends the run */
static size_t value_span(const char *d, size_t i, size_t n) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  while (i + 8 <= n) {
    uint64_t w = load8(d + i);
    uint64_t del = w ^ (0x7f * ONES8);
    uint64_t m = ((w - 0x20 * ONES8) & ~w) | ((del - ONES8) & ~del) | w;
    m &= HIGH8;
    if (!m) {
      i += 8;
      continue;
    }
    i += (size_t)__builtin_ctzll(m) >> 3;
    if (d[i] != '\t') return i;
    i++;
  }
#endif
  while (i < n && fast_value[(unsigned char)d[i]]) i++;
  return i;
}

enum { FAST_NO = 0, FAST_OK = 1 };

/* the n bytes at a (at most 24) equal those at b (24 bytes readable) */
static inline int same_bytes(const char *a, const char *b, size_t n) {
  if (n < 8) {
    int d = 0;
    for (size_t i = 0; i < n; i++) d |= a[i] ^ b[i];
    return d == 0;
  }
  uint64_t x = (load8(a) ^ load8(b)) | (load8(a + n - 8) ^ load8(b + n - 8));
  if (n > 16) x |= load8(a + 8) ^ load8(b + 8);
  return x == 0;
}

/* a Host field: the requests on one connection name the same host, so a
 * value equal to the last one found valid is taken as it is */
static inline void fast_host(lh_parser_t *p, const char *v, size_t n) {
  if (n == p->host_len && same_bytes(v, p->host, n)) { /* "" (none yet) is valid too */
    p->notes.hosts++;
    return;
  }
  note_field(&p->notes, FF_HOST, v, n);
  if (!p->notes.host_bad && n <= sizeof p->host) {
    memcpy(p->host, v, n);
    p->host_len = (uint8_t)n;
  }
}

static int fast_method(const char *d, size_t n, int *id, size_t *ml) {
  if (n < 8) return FAST_NO;
  switch (d[0]) {
    case 'G': if (memcmp(d, "GET ", 4) == 0) { *id = LH_METHOD_GET; *ml = 3; return FAST_OK; } break;
    case 'H': if (memcmp(d, "HEAD ", 5) == 0) { *id = LH_METHOD_HEAD; *ml = 4; return FAST_OK; } break;
    case 'P':
      if (memcmp(d, "POST ", 5) == 0) { *id = LH_METHOD_POST; *ml = 4; return FAST_OK; }
      if (memcmp(d, "PUT ", 4) == 0) { *id = LH_METHOD_PUT; *ml = 3; return FAST_OK; }
      if (memcmp(d, "PATCH ", 6) == 0) { *id = LH_METHOD_PATCH; *ml = 5; return FAST_OK; }
      break;
    case 'D': if (memcmp(d, "DELETE ", 7) == 0) { *id = LH_METHOD_DELETE; *ml = 6; return FAST_OK; } break;
    case 'O': if (memcmp(d, "OPTIONS ", 8) == 0) { *id = LH_METHOD_OPTIONS; *ml = 7; return FAST_OK; } break;
  }
  return FAST_NO;
}

static int fast_head(lh_parser_t *p, const char *d, size_t n) {
  lh_head_t *hd = &p->head;
  int method;
  size_t ml, i;
  if (!fast_method(d, n, &method, &ml)) return FAST_NO;
  i = ml + 1;
  if (i >= n || d[i] != '/') return FAST_NO;
  size_t ts = i;
  while (i < n && fast_target[(unsigned char)d[i]]) i++;
  size_t tl = i - ts;
  if (tl > p->limits.max_target || n - i < 11 || memcmp(d + i, " HTTP/1.", 8) != 0 ||
      (d[i + 8] != '1' && d[i + 8] != '0') || d[i + 9] != '\r' || d[i + 10] != '\n')
    return FAST_NO;
  int minor = d[i + 8] - '0';
  i += 11;

  uint32_t nf = 0;
  for (;;) {
    if (i + 2 > n) return FAST_NO;
    if (d[i] == '\r') {
      if (d[i + 1] != '\n') return FAST_NO;
      i += 2;
      break;
    }
    size_t ns = i;
    i = run_of(lh_tchar, d, i, n);
    if (i == ns || i == n || d[i] != ':') return FAST_NO;
    size_t nl = i - ns;
    i++;
    while (i < n && (d[i] == ' ' || d[i] == '\t')) i++;
    size_t vs = i;
    i = value_span(d, i, n);
    if (i + 2 > n || d[i] != '\r' || d[i + 1] != '\n') return FAST_NO;
    size_t ve = i;
    while (ve > vs && (d[ve - 1] == ' ' || d[ve - 1] == '\t')) ve--;
    i += 2;
    if (nf >= p->limits.max_headers) return FAST_NO;
    if (nf >= p->fields_cap && grow_fields(&hd->fields, &p->fields_cap, nf + 1)) return FAST_NO;
    lh_field_t *fl = &hd->fields[nf++];
    fl->name.off = (uint32_t)ns;
    fl->name.len = (uint32_t)nl;
    /* an empty value is no span at all */
    fl->value.off = ve > vs ? (uint32_t)vs : 0;
    fl->value.len = (uint32_t)(ve - vs);
    int kind = field_kind(d + ns, nl);
    if (kind == FF_HOST) fast_host(p, d + vs, ve - vs);
    else if (kind != FF_OTHER) note_field(&p->notes, kind, d + vs, ve - vs);
  }
  if (i > p->limits.max_head) return FAST_NO;

  hd->nfields = nf;
  hd->method.off = 0;
  hd->method.len = (uint32_t)ml;
  hd->target.off = (uint32_t)ts;
  hd->target.len = (uint32_t)tl;
  hd->major = 1;
  hd->minor = (uint8_t)minor;
  hd->method_id = method;
  hd->len = (uint32_t)i;
  const lh_notes_t *nt = &p->notes;
  if (!nt->framing && nt->hosts == (minor >= 1)) {
    /* what head_finish makes of a head without framing fields: no body
     * (the fast methods leave CONNECT out) */
    hd->keep_alive = (uint8_t)keeps_alive(minor, nt->conn);
    hd->expect_continue = minor >= 1 && nt->expect;
    hd->te_trailers = nt->te_trailers;
    p->state = LH_PARSE_DONE;
    return FAST_OK;
  }
  /* an error is the line parser's to report */
  return head_finish(p) == 0 ? FAST_OK : FAST_NO;
}

/* --- the line parser --- */

static int method_lookup(const char *s, size_t n) {
  static const struct { const char *s; uint8_t n; } m[] = {
#define XX(name, str) {str, sizeof str - 1},
    LH_METHOD_MAP(XX)
#undef XX
  };
  for (size_t i = 0; i < sizeof m / sizeof *m; i++)
    if (m[i].n == n && memcmp(m[i].s, s, n) == 0) return (int)i + 1;
  return LH_METHOD_NONE;
}

/* absolute-form (RFC 9112 3.2.2) for the schemes served here: "http" or
 * "https" (any case), "://", an authority that is a host with an optional
 * port (no userinfo, RFC 9110 4.2.4; no empty host, 4.2.1), then the path
 * and query */
static int absolute_ok(const char *t, size_t n) {
  size_t i;
  if (n > 7 && token_is(t, 7, "http://", 7)) i = 7;
  else if (n > 8 && token_is(t, 8, "https://", 8)) i = 8;
  else return 0;
  size_t a = i;
  while (i < n && t[i] != '/' && t[i] != '?') i++;
  return i > a && t[a] != ':' && lh_host_ok(t + a, i - a, 0);
}

/* the request line once whole: version, method, target form (RFC 9112 3) */
static int request_line_end(lh_parser_t *p, const char *d, size_t vs) {
  lh_head_t *hd = &p->head;
  /* RFC 9112 2.3: a higher 1.x minor is read as 1.1; another major is not ours */
  if (d[vs + 5] != '1') return LH_EPARSE_VERSION_H2;
  hd->major = 1;
  hd->minor = d[vs + 7] == '0' ? 0 : 1;
  hd->method_id = method_lookup(d + hd->method.off, hd->method.len);
  if (hd->method_id == LH_METHOD_NONE) return LH_EPARSE_METHOD_UNKNOWN;
  const char *t = d + hd->target.off;
  size_t tl = hd->target.len;
  if (hd->method_id == LH_METHOD_CONNECT) return lh_host_ok(t, tl, 1) ? 0 : LH_EPARSE_URI;
  if (t[0] == '/') return 0;
  if (tl == 1 && t[0] == '*') return hd->method_id == LH_METHOD_OPTIONS ? 0 : LH_EPARSE_URI;
  return absolute_ok(t, tl) ? 0 : LH_EPARSE_URI;
}

/* where the request line's scan is: RL_TARGET in the target's path (or
 * authority, or '*'), RL_QUERY after its first '?' */
enum { RL_METHOD = 0, RL_TARGET, RL_QUERY, RL_VERSION };

/* request-line = method SP request-target SP HTTP-version, read from
 * p->scan on and checked byte by byte as it arrives, so a wrong line fails
 * at its first wrong byte and a long target as soon as it is too long.
 * Empty lines before it are skipped (RFC 9112 2.2). 1 when the line is
 * whole (p->fed at the next line), 0 for more, or an error */
static int request_line(lh_parser_t *p, const char *d, size_t n) {
  lh_head_t *hd = &p->head;
  size_t i = p->scan;
  switch (p->rl_phase) {
    case RL_METHOD:
      while (i == p->fed && i < n && (d[i] == '\r' || d[i] == '\n')) {
        if (d[i] == '\r' && i + 1 == n) goto more;
        if (d[i] == '\r' && d[++i] != '\n') return LH_EPARSE_METHOD;
        p->fed = (uint32_t)++i;
      }
      while (i < n && lh_tchar[(unsigned char)d[i]]) i++;
      if (i == n) goto more;
      if (d[i] != ' ' || i == p->fed) return LH_EPARSE_METHOD;
      hd->method.off = p->fed;
      hd->method.len = (uint32_t)(i - p->fed);
      hd->target.off = (uint32_t)++i;
      p->rl_phase = RL_TARGET;
      /* fall through */
    case RL_TARGET:
      while (i < n && path_char[(unsigned char)d[i]]) i++;
      if (i < n && d[i] == '?') {
        p->rl_phase = RL_QUERY;
        i++;
      }
      /* fall through */
    case RL_QUERY:
      if (p->rl_phase == RL_QUERY)
        while (i < n && query_char[(unsigned char)d[i]]) i++;
      hd->target.len = (uint32_t)(i - hd->target.off);
      if (hd->target.len > p->limits.max_target) return LH_EPARSE_URI_TOO_LONG;
      if (i == n) goto more;
      if (d[i] != ' ' || hd->target.len == 0) return LH_EPARSE_URI;
      p->rl_phase = RL_VERSION;
      i++;
      /* fall through */
    case RL_VERSION: {
      /* "HTTP/" DIGIT "." DIGIT, then CRLF or LF; nothing else, not even a space */
      static const char pat[] = "HTTP/d.d";
      size_t vs = hd->target.off + hd->target.len + 1;
      for (; i < n; i++) {
        size_t k = i - vs;
        char c = d[i];
        if (k < 8) {
          if (pat[k] == 'd' ? !is_digit(c) : c != pat[k]) return LH_EPARSE_VERSION;
        } else if (c == '\n') {
          p->fed = p->scan = (uint32_t)(i + 1);
          int r = request_line_end(p, d, vs);
          return r ? r : 1;
        } else if (k > 8 || c != '\r') {
          return LH_EPARSE_VERSION; /* a bare CR, or anything after the version */
        }
      }
      goto more;
    }
  }
more:
  p->scan = (uint32_t)i;
  return 0;
}

/* status-line = HTTP-version SP status-code SP [ reason-phrase ]; the SP
 * before an absent reason may be missing too. d[ls..le) is the whole line */
static int status_line(lh_parser_t *p, const char *d, size_t ls, size_t le) {
  lh_head_t *hd = &p->head;
  const char *s = d + ls;
  size_t n = le - ls;
  if (n < 12 || memcmp(s, "HTTP/", 5) != 0 || !is_digit(s[5]) || s[6] != '.' ||
      !is_digit(s[7]) || s[8] != ' ')
    return LH_EPARSE_VERSION;
  if (s[5] != '1') return LH_EPARSE_VERSION;
  if (!is_digit(s[9]) || !is_digit(s[10]) || !is_digit(s[11]) || s[9] == '0' ||
      (n > 12 && s[12] != ' '))
    return LH_EPARSE_STATUS;
  for (size_t i = 13; i < n; i++)
    if (!field_vchar[(unsigned char)s[i]]) return LH_EPARSE_STATUS;
  hd->major = 1;
  hd->minor = s[7] == '0' ? 0 : 1;
  hd->status = (s[9] - '0') * 100 + (s[10] - '0') * 10 + (s[11] - '0');
  hd->reason.off = (uint32_t)(ls + 13);
  hd->reason.len = n > 13 ? (uint32_t)(n - 13) : 0;
  if (!hd->reason.len) hd->reason.off = 0;
  return 0;
}

/* a field line b[ls..le) (without its line end) into the head's fields,
 * or the trailers. An obs-fold (a line that starts with whitespace) is
 * refused in a request, and in a response joined to the field before it
 * with spaces in place of the line break (RFC 9112 5.2) */
static int field_line(lh_parser_t *p, char *b, size_t ls, size_t le, int trailer) {
  lh_field_t **arr = trailer ? &p->tfields : &p->head.fields;
  uint32_t *count = trailer ? &p->ntrailers : &p->head.nfields;
  uint32_t *cap = trailer ? &p->tfields_cap : &p->fields_cap;
  size_t i = ls;
  if (is_ws(b[ls])) {
    if (p->role == LH_ROLE_SERVER || *count == 0) return LH_EPARSE_HEADER;
    while (i < le && is_ws(b[i])) i++;
    size_t vs = i;
    for (; i < le; i++)
      if (!field_vchar[(unsigned char)b[i]]) return LH_EPARSE_HEADER;
    while (le > vs && is_ws(b[le - 1])) le--;
    if (le == vs) return 0;
    lh_span_t *v = &(*arr)[*count - 1].value;
    if (v->len == 0) {
      v->off = (uint32_t)vs;
    } else {
      memset(b + v->off + v->len, ' ', vs - (v->off + v->len));
    }
    v->len = (uint32_t)(le - v->off);
    return 0;
  }
  while (i < le && lh_tchar[(unsigned char)b[i]]) i++;
  if (i == ls || i == le || b[i] != ':') return LH_EPARSE_HEADER;
  size_t nl = i - ls;
  for (i++; i < le && is_ws(b[i]); i++) {}
  size_t vs = i;
  for (; i < le; i++)
    if (!field_vchar[(unsigned char)b[i]]) return LH_EPARSE_HEADER;
  while (le > vs && is_ws(b[le - 1])) le--;
  if (*count >= p->limits.max_headers) return LH_EPARSE_TOO_MANY;
  if (grow_fields(arr, cap, *count + 1)) return LH_ENOMEM;
  lh_field_t *f = &(*arr)[(*count)++];
  f->name.off = (uint32_t)ls;
  f->name.len = (uint32_t)nl;
  f->value.off = le > vs ? (uint32_t)vs : 0;
  f->value.len = (uint32_t)(le - vs);
  return 0;
}

/* the bytes of a line that has not ended yet, from i on: a byte that no
 * line may hold fails at once (a control byte but HTAB, DEL, a CR with a
 * byte after it that is not LF); the rest waits for the line's end */
static int partial_line_ok(const char *d, size_t i, size_t n) {
  for (; i < n; i++) {
    unsigned char c = (unsigned char)d[i];
    if ((c < 0x20 && c != '\t' && c != '\r') || c == 0x7f || (c == '\r' && i + 1 < n)) return 0;
  }
  return 1;
}

/* the end of the line at p->fed: 1 with its content ending at *le and the
 * next line at *next; 0 when it has not ended (its bytes so far checked) */
static int line_end(lh_parser_t *p, const char *d, size_t n, size_t *le, size_t *next, int *err) {
  size_t ls = p->fed, i = p->scan > ls ? p->scan : ls;
  const char *lf = memchr(d + i, '\n', n - i);
  *err = 0;
  if (!lf) {
    if (!partial_line_ok(d, i, n)) *err = 1;
    /* a CR at the end is looked at again with the byte after it */
    p->scan = (uint32_t)(n > i && d[n - 1] == '\r' ? n - 1 : n);
    return 0;
  }
  size_t j = (size_t)(lf - d);
  *le = j > ls && d[j - 1] == '\r' ? j - 1 : j;
  *next = j + 1;
  return 1;
}

static int slow_head(lh_parser_t *p, char *d, size_t n) {
  size_t le, next;
  int r, bad;
  if (!p->start_done) {
    if (p->role == LH_ROLE_SERVER) {
      r = request_line(p, d, n);
      if (r <= 0) return r;
    } else {
      /* a status line is judged whole: it comes from a server we chose */
      if (!line_end(p, d, n, &le, &next, &bad)) return 0;
      if ((r = status_line(p, d, p->fed, le))) return r;
      p->fed = p->scan = (uint32_t)next;
    }
    p->start_done = 1;
  }
  for (;;) {
    if (!line_end(p, d, n, &le, &next, &bad)) return bad ? LH_EPARSE_HEADER : 0;
    if (le == p->fed) break;
    if ((r = field_line(p, d, p->fed, le, 0))) return r;
    p->fed = p->scan = (uint32_t)next;
  }
  p->fed = p->scan = (uint32_t)next;
  p->head.len = (uint32_t)next;
  if (next > p->limits.max_head) return LH_EPARSE_TOO_LARGE;
  /* what the fields mean, once a response's obs-folds are joined */
  for (uint32_t k = 0; k < p->head.nfields; k++) {
    const lh_field_t *f = &p->head.fields[k];
    int kind = field_kind(d + f->name.off, f->name.len);
    if (kind != FF_OTHER) note_field(&p->notes, kind, d + f->value.off, f->value.len);
  }
  r = head_finish(p);
  return r ? r : 1;
}

/* --- trailers (RFC 9112 7.1.2): field lines after the last chunk, read
 * with the head's field grammar into bytes of their own --- */

static int trailer_bytes(lh_parser_t *p, const char *at, size_t n) {
  if (p->tlen + n > p->limits.max_head) return LH_EPARSE_TOO_LARGE;
  if (p->tlen + n > p->tcap) {
    uint32_t ncap = p->tcap ? p->tcap : 256;
    while (ncap < p->tlen + n) ncap *= 2;
    char *b = realloc(p->tbytes, ncap);
    if (!b) return LH_ENOMEM;
    p->tbytes = b;
    p->tcap = ncap;
  }
  memcpy(p->tbytes + p->tlen, at, n);
  p->tlen += (uint32_t)n;
  return 0;
}

/* the trailer section from data on: 1 after its empty line (*used bytes
 * were its), 0 for more, or an error */
static int trailers_read(lh_parser_t *p, const char *data, size_t len, size_t *used) {
  size_t i = 0;
  int r = 0;
  while (i < len) {
    const char *lf = memchr(data + i, '\n', len - i);
    size_t k = lf ? (size_t)(lf - data) + 1 - i : len - i;
    if ((r = trailer_bytes(p, data + i, k))) break;
    i += k;
    if (!lf) break;
    size_t ls = p->tline, j = p->tlen - 1;
    size_t le = j > ls && p->tbytes[j - 1] == '\r' ? j - 1 : j;
    if (le == ls) {
      r = 1;
      break;
    }
    if ((r = field_line(p, p->tbytes, ls, le, 1))) break;
    p->tline = p->tlen;
  }
  *used = i;
  return r;
}

/* --- the parser --- */

int lh_parser_init(lh_parser_t *p, lh_role_t role, const lh_limits_t *limits) {
  memset(p, 0, sizeof *p);
  p->role = role;
  p->limits = *limits;
  p->head.content_length = LH_NO_LENGTH;
  return 0;
}

void lh_parser_free(lh_parser_t *p) {
  fields_free(p->head.fields, p->fields_cap);
  fields_free(p->tfields, p->tfields_cap);
  free(p->tbytes);
  p->head.fields = NULL;
  p->tfields = NULL;
  p->tbytes = NULL;
  p->fields_cap = p->tfields_cap = p->tcap = 0;
}

int lh_parser_head(lh_parser_t *p, char *data, size_t len) {
  if (p->state != LH_PARSE_HEAD) return LH_EPARSE_INTERNAL;
  if (p->scan == 0) {
    /* nothing of this head was looked at yet (the start line sets scan) */
    if (len == 0) return 0;
    message_begin(p);
    if (p->role == LH_ROLE_SERVER && !p->slow_only) {
      /* it takes no head longer than max_head */
      if ((p->fast = fast_head(p, data, len))) return 1;
      message_begin(p);
    }
  }
  /* nothing past the largest head is looked at: what it holds cannot
   * change the outcome, however the bytes arrived */
  if (len > p->limits.max_head) len = p->limits.max_head;
  if (len <= p->scan) return 0;
  int r = slow_head(p, data, len);
  if (r == 0 && len >= p->limits.max_head) return LH_EPARSE_TOO_LARGE;
  return r;
}

int lh_parser_body(lh_parser_t *p, char *data, size_t len, size_t *consumed, char **body,
                   size_t *body_len) {
  size_t used = 0, boff = 0, blen = 0, tused = 0;
  *consumed = *body_len = 0;
  *body = data;
  if (p->state == LH_PARSE_DONE) return 1;
  if (p->state != LH_PARSE_BODY) return LH_EPARSE_INTERNAL;
  if (len == 0) return 0;
  int r = p->in_trailers ? LH_DEC_TRAILERS
                         : lh_decoder_decode(&p->dec, data, len, &used, &boff, &blen);
  if (r == LH_DEC_TRAILERS) {
    p->in_trailers = 1;
    r = trailers_read(p, data + used, len - used, &tused);
    used += tused;
  }
  *consumed = used;
  *body = data + boff;
  *body_len = blen;
  if (r == 1) p->state = LH_PARSE_DONE;
  return r;
}

int lh_parser_eof(lh_parser_t *p) {
  if (p->state == LH_PARSE_DONE) return 1;
  if (p->state == LH_PARSE_BODY && p->dec.kind == LH_DEC_EOF) {
    p->state = LH_PARSE_DONE;
    return 1;
  }
  return LH_EINCOMPLETE;
}

void lh_parser_next(lh_parser_t *p) {
  /* the trailers of the message just read stay until the next one begins */
  p->state = LH_PARSE_HEAD;
  p->fed = p->scan = 0;
  p->start_done = 0;
  p->rl_phase = 0;
}

void lh_parser_trim(lh_parser_t *p) {
  if (p->state != LH_PARSE_HEAD || p->scan) return; /* scan 0: fed 0 too */
  if (p->fields_cap != FIELDS_STD || p->tfields || p->tbytes) {
    /* a usual array stays for the next head (it goes with the dispatcher) */
    lh_parser_free(p);
  }
  p->head.nfields = 0;
  p->ntrailers = 0;
  p->tlen = 0;
}
