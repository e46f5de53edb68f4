#include "parse.h"

#include <stdlib.h>
#include <string.h>

#define PARSER(h) ((lh_parser_t *)(h)) /* http is the first member */

const char lh_value_bad[256] = {[0] = 1, ['\r'] = 1, ['\n'] = 1};

const char lh_tchar[256] = {
  ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1, ['*'] = 1,
  ['+'] = 1, ['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1, ['`'] = 1, ['|'] = 1,
  ['~'] = 1,
  ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1,
  ['7'] = 1, ['8'] = 1, ['9'] = 1,
  ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1,
  ['H'] = 1, ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1,
  ['O'] = 1, ['P'] = 1, ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1,
  ['V'] = 1, ['W'] = 1, ['X'] = 1, ['Y'] = 1, ['Z'] = 1,
  ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1,
  ['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1,
  ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1, ['u'] = 1,
  ['v'] = 1, ['w'] = 1, ['x'] = 1, ['y'] = 1, ['z'] = 1,
};


static inline char lower(char c) {
  return (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
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

static inline void span_add(lh_span_t *s, const char *base, const char *at, size_t n) {
  if (s->len == 0) s->off = (uint32_t)(at - base);
  s->len += (uint32_t)n;
}

/* a new message: an empty head (its field array kept), no trailers */
static void message_begin(lh_parser_t *p) {
  lh_field_t *f = p->head.fields;
  memset(&p->head, 0, sizeof p->head);
  p->head.fields = f;
  p->head.content_length = LH_NO_LENGTH;
  p->last = 0;
  p->in_trailers = 0;
  p->ntrailers = 0;
  p->tlen = 0;
}

static int on_message_begin(llhttp_t *h) {
  message_begin(PARSER(h));
  return 0;
}

static int on_method(llhttp_t *h, const char *at, size_t n) {
  lh_parser_t *p = PARSER(h);
  span_add(&p->head.method, p->base, at, n);
  return 0;
}

static int on_url(llhttp_t *h, const char *at, size_t n) {
  lh_parser_t *p = PARSER(h);
  span_add(&p->head.target, p->base, at, n);
  if (p->head.target.len > p->limits.max_target) {
    p->err = LH_EPARSE_URI_TOO_LONG;
    return -1;
  }
  return 0;
}

static int on_status(llhttp_t *h, const char *at, size_t n) {
  lh_parser_t *p = PARSER(h);
  span_add(&p->head.reason, p->base, at, n);
  return 0;
}

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

/* trailer bytes are copied as they arrive: the body around them is decoded
 * in place and the read buffer may move between calls */
static int trailer_add(lh_parser_t *p, lh_span_t *s, const char *at, size_t n) {
  if (n == 0) return 0;
  if (p->tlen + n > p->limits.max_head) {
    p->err = LH_EPARSE_TOO_LARGE;
    return -1;
  }
  if (p->tlen + n > p->tcap) {
    uint32_t ncap = p->tcap ? p->tcap : 256;
    while (ncap < p->tlen + n) ncap *= 2;
    char *b = realloc(p->tbytes, ncap);
    if (!b) return -1;
    p->tbytes = b;
    p->tcap = ncap;
  }
  if (s->len == 0) s->off = p->tlen;
  memcpy(p->tbytes + p->tlen, at, n);
  p->tlen += (uint32_t)n;
  s->len += (uint32_t)n;
  return 0;
}

static int on_header_field(llhttp_t *h, const char *at, size_t n) {
  lh_parser_t *p = PARSER(h);
  lh_field_t **arr = p->in_trailers ? &p->tfields : &p->head.fields;
  uint32_t *count = p->in_trailers ? &p->ntrailers : &p->head.nfields;
  if (p->last != 1) {
    if (*count >= p->limits.max_headers) {
      p->err = LH_EPARSE_TOO_MANY;
      return -1;
    }
    uint32_t cap = p->in_trailers ? p->ntrailers : p->fields_cap;
    if (p->in_trailers) {
      /* trailers grow exactly; they are rare */
      lh_field_t *a = realloc(p->tfields, (*count + 1) * sizeof *a);
      if (!a) return -1;
      p->tfields = a;
    } else if (grow_fields(arr, &cap, *count + 1)) {
      return -1;
    } else {
      p->fields_cap = cap;
    }
    memset(&(*arr)[*count], 0, sizeof(lh_field_t));
    (*count)++;
    p->last = 1;
  }
  lh_field_t *f = &(*arr)[*count - 1];
  if (p->in_trailers) return trailer_add(p, &f->name, at, n);
  span_add(&f->name, p->base, at, n);
  return 0;
}

static int on_header_value(llhttp_t *h, const char *at, size_t n) {
  lh_parser_t *p = PARSER(h);
  p->last = 2;
  if (p->in_trailers) return trailer_add(p, &p->tfields[p->ntrailers - 1].value, at, n);
  span_add(&p->head.fields[p->head.nfields - 1].value, p->base, at, n);
  return 0;
}

static void trim_values(const char *base, lh_field_t *f, uint32_t n) {
  for (uint32_t i = 0; i < n; i++) {
    lh_span_t *v = &f[i].value;
    while (v->len && (base[v->off + v->len - 1] == ' ' || base[v->off + v->len - 1] == '\t'))
      v->len--;
  }
}

/* RFC 9112 5.1 and 5.2: names are tokens (no space before the colon);
 * obs-fold and bare CR, LF or NUL in values are refused */
static int check_fields(const char *base, const lh_field_t *f, uint32_t n) {
  for (uint32_t i = 0; i < n; i++)
    if (!lh_field_ok(base + f[i].name.off, f[i].name.len, base + f[i].value.off, f[i].value.len))
      return -1;
  return 0;
}

/* RFC 9112 6.1: chunked must be the final coding, applied once; any other
 * coding is one we do not implement */
static int check_te(const char *v, size_t n, int *chunked_last, int *nchunked, int *other) {
  size_t i = 0, len;
  const char *el;
  int items = 0;
  *chunked_last = 0;
  while (list_next(v, n, &i, &el, &len)) {
    items++;
    *chunked_last = token_is(el, len, "chunked", 7);
    if (*chunked_last) (*nchunked)++;
    else (*other)++;
  }
  return items;
}

/* what the framing rules need from the request or status line and from
 * llhttp's view of Content-Length and Transfer-Encoding */
typedef struct {
  int has_length;    /* a valid Content-Length was seen */
  int chunked;       /* chunked is the final coding */
  uint64_t length;
  int method;        /* llhttp_method_t */
} lh_framing_t;

/* a response to HEAD, or 1xx, 204 and 304, has no content (RFC 9110 6.4.1) */
static int response_bodiless(const lh_parser_t *p) {
  int s = p->head.status;
  return p->skip_body || s / 100 == 1 || s == 204 || s == 304;
}

/* RFC 9110 and 9112 rules over a parsed head: Host, Transfer-Encoding,
 * Connection, Expect, Upgrade. Returns 1 when a body follows, 0 when the
 * message ends with its head, or -1 with p->err set */
static int head_rules(lh_parser_t *p, const lh_framing_t *fr) {
  lh_head_t *hd = &p->head;
  const char *b = p->base;
  int conn = 0, hosts = 0, te = 0, upgrade_hdr = 0;
  int chunked_last = 0, nchunked = 0, other = 0, te_items = 0;
  if (fr->has_length && fr->length > INT64_MAX) {
    /* past any body we could count (and 2^64 - 1 would read as no length) */
    p->err = LH_EPARSE_CONTENT_LENGTH;
    return -1;
  }

  for (uint32_t i = 0; i < hd->nfields; i++) {
    lh_field_t *f = &hd->fields[i];
    const char *v = b + f->value.off;
    size_t vn = f->value.len;
    switch (f->name.len) {
      case 4:
        if (lh_name_eq(b, f->name, "host", 4)) hosts++;
        break;
      case 6:
        if (lh_name_eq(b, f->name, "expect", 6) && expects_continue(v, vn)) hd->expect_continue = 1;
        break;
      case 7:
        if (lh_name_eq(b, f->name, "upgrade", 7)) upgrade_hdr = 1;
        break;
      case 10:
        if (lh_name_eq(b, f->name, "connection", 10)) conn |= connection_field(v, vn);
        break;
      case 17:
        if (lh_name_eq(b, f->name, "transfer-encoding", 17)) {
          te++;
          te_items += check_te(v, vn, &chunked_last, &nchunked, &other);
        }
        break;
    }
  }

  if (p->role == LH_ROLE_SERVER) {
    if (hd->major != 1) { p->err = LH_EPARSE_VERSION_H2; return -1; }
    /* RFC 9112 3.2: exactly one Host in 1.1, at most one otherwise */
    if (hosts_bad(hosts, hd->minor)) { p->err = LH_EPARSE_HOST; return -1; }
    if (te) {
      /* RFC 9112 6.1 and 6.3: TE on 1.0, TE with CL, or chunked not final
       * cannot be framed reliably; a coding we lack is 501 */
      if (hd->minor == 0 || fr->has_length || te_items == 0 || nchunked != 1 || !chunked_last) {
        p->err = other && nchunked == 0 && hd->minor >= 1 && !fr->has_length
                     ? LH_EPARSE_TE_UNSUPPORTED : LH_EPARSE_TE;
        return -1;
      }
      if (other) { p->err = LH_EPARSE_TE_UNSUPPORTED; return -1; }
    }
    if (hd->minor >= 1) hd->expect_continue &= 1;
    else hd->expect_continue = 0;
  } else if (te && fr->has_length) {
    p->err = LH_EPARSE_TE;
    return -1;
  } else if (hd->major != 1) {
    p->err = LH_EPARSE_VERSION;
    return -1;
  } else if (hd->status < 100 || hd->status > 999) {
    /* RFC 9112 4: status-code = 3DIGIT */
    p->err = LH_EPARSE_STATUS;
    return -1;
  }

  hd->keep_alive = keeps_alive(hd->minor, conn);
  hd->chunked = fr->chunked ? 1 : 0;
  if (!hd->chunked && fr->has_length) hd->content_length = fr->length;
  hd->upgrade = (fr->method == HTTP_CONNECT && p->role == LH_ROLE_SERVER) ||
                ((conn & CONN_UPGRADE) && upgrade_hdr);

  p->state = LH_PARSE_BODY; /* head seen */
  if (p->role == LH_ROLE_SERVER) {
    hd->has_body = hd->chunked || (hd->content_length != LH_NO_LENGTH && hd->content_length > 0);
  } else if (response_bodiless(p)) {
    hd->has_body = 0;
  } else {
    hd->has_body = hd->chunked || hd->content_length != 0;
    hd->close_delimited = !hd->chunked && hd->content_length == LH_NO_LENGTH;
    if (hd->close_delimited) hd->keep_alive = 0;
  }
  return hd->has_body;
}

static int on_headers_complete(llhttp_t *h) {
  lh_parser_t *p = PARSER(h);
  lh_head_t *hd = &p->head;
  trim_values(p->base, hd->fields, hd->nfields);
  if (check_fields(p->base, hd->fields, hd->nfields)) {
    p->err = LH_EPARSE_HEADER;
    return -1;
  }
  hd->major = h->http_major;
  hd->minor = h->http_minor;
  hd->method_id = h->method;
  hd->status = h->status_code;
  lh_framing_t fr = {(h->flags & F_CONTENT_LENGTH) != 0, (h->flags & F_CHUNKED) != 0,
                     h->content_length, h->method};
  int r = head_rules(p, &fr);
  if (r < 0) return -1;
  if (p->role == LH_ROLE_CLIENT && response_bodiless(p)) return 1; /* llhttp: no body */
  return r ? HPE_PAUSED : 0;
}

static int on_body(llhttp_t *h, const char *at, size_t n) {
  lh_parser_t *p = PARSER(h);
  if (p->body_w != at) memmove(p->body_w, at, n);
  p->body_w += n;
  return 0;
}

static int on_chunk_header(llhttp_t *h) {
  lh_parser_t *p = PARSER(h);
  if (h->content_length == 0) {
    /* last chunk: what follows are trailer fields */
    p->in_trailers = 1;
    p->last = 0;
  }
  return 0;
}

static int on_message_complete(llhttp_t *h) {
  lh_parser_t *p = PARSER(h);
  if (p->ntrailers) {
    /* trailer fields follow the rules of head fields (RFC 9112 7.1.2) */
    trim_values(p->tbytes, p->tfields, p->ntrailers);
    if (check_fields(p->tbytes, p->tfields, p->ntrailers)) {
      p->err = LH_EPARSE_HEADER;
      return -1;
    }
  }
  p->state = LH_PARSE_DONE;
  return HPE_PAUSED;
}

static const llhttp_settings_t settings = {
  .on_message_begin = on_message_begin,
  .on_method = on_method,
  .on_url = on_url,
  .on_status = on_status,
  .on_header_field = on_header_field,
  .on_header_value = on_header_value,
  .on_headers_complete = on_headers_complete,
  .on_body = on_body,
  .on_chunk_header = on_chunk_header,
  .on_message_complete = on_message_complete,
};

int lh_parser_init(lh_parser_t *p, lh_role_t role, const lh_limits_t *limits) {
  memset(p, 0, sizeof *p);
  llhttp_init(&p->http, role == LH_ROLE_SERVER ? HTTP_REQUEST : HTTP_RESPONSE, &settings);
  p->role = role;
  p->limits = *limits;
  p->head.content_length = LH_NO_LENGTH;
  return 0;
}

void lh_parser_free(lh_parser_t *p) {
  fields_free(p->head.fields, p->fields_cap);
  free(p->tfields);
  free(p->tbytes);
  p->head.fields = NULL;
  p->tfields = NULL;
  p->tbytes = NULL;
  p->fields_cap = p->tcap = 0;
}

/* "HTTP/d.d" with other digits is a version we do not support (505);
 * anything else is a syntax error (400) */
static int version_error(const char *data, size_t len) {
  const char *e = data + len, *s = memchr(data, '\n', len);
  if (s) e = s;
  for (const char *q = data; q + 8 <= e; q++)
    if (memcmp(q, "HTTP/", 5) == 0 && q[5] >= '0' && q[5] <= '9' && q[6] == '.' &&
        q[7] >= '0' && q[7] <= '9')
      return LH_EPARSE_VERSION_H2;
  return LH_EPARSE_VERSION;
}

/* an unknown method in an otherwise well-formed request line is 501
 * (RFC 9110 9.1); anything else is 400. returns 0 while the line is still
 * arriving */
static int method_error(const char *data, size_t len) {
  size_t i = 0;
  while (i < len && lh_is_tchar((unsigned char)data[i])) i++;
  if (i == len) return i > 0 ? 0 : LH_EPARSE_METHOD;
  if (i == 0 || data[i] != ' ') return LH_EPARSE_METHOD;
  size_t t = ++i;
  while (i < len && (unsigned char)data[i] > ' ' && data[i] != 0x7f) i++;
  if (i == len) return 0;
  if (i == t || data[i] != ' ') return LH_EPARSE_METHOD;
  i++;
  static const char v[] = "HTTP/d.d\r\n";
  for (size_t k = 0; k < sizeof v - 1; k++, i++) {
    if (i == len) return 0;
    char c = data[i];
    if (v[k] == 'd' ? (c < '0' || c > '9') : c != v[k]) return LH_EPARSE_METHOD;
  }
  return LH_EPARSE_METHOD_UNKNOWN;
}

static int map_error(lh_parser_t *p, llhttp_errno_t e, const char *data, size_t len) {
  if (p->err) return p->err;
  switch (e) {
    case HPE_INVALID_METHOD: {
      int r = method_error(data, len);
      return r ? r : LH_EPARSE_METHOD;
    }
    case HPE_INVALID_URL: return LH_EPARSE_URI;
    case HPE_INVALID_VERSION: return version_error(data, len);
    case HPE_INVALID_STATUS: return LH_EPARSE_STATUS;
    case HPE_INVALID_CONTENT_LENGTH:
    case HPE_UNEXPECTED_CONTENT_LENGTH: return LH_EPARSE_CONTENT_LENGTH;
    case HPE_INVALID_TRANSFER_ENCODING: return LH_EPARSE_TE;
    case HPE_INVALID_CHUNK_SIZE: return LH_EPARSE_CHUNK;
    case HPE_INVALID_HEADER_TOKEN:
    case HPE_UNEXPECTED_SPACE:
    case HPE_CR_EXPECTED:
    case HPE_LF_EXPECTED:
    case HPE_INVALID_CONSTANT:
      return p->state == LH_PARSE_BODY ? LH_EPARSE_CHUNK : LH_EPARSE_HEADER;
    default:
      return p->state == LH_PARSE_BODY ? LH_EPARSE_CHUNK : LH_EPARSE_INTERNAL;
  }
}

/* --- request heads without llhttp ---
 * Most requests are a short head with no body: a known method, an
 * origin-form target, HTTP/1.1 or 1.0, and plain fields. fast_head takes
 * such a head when it is whole in the buffer and leaves everything else
 * (a partial head, a body, anything unusual or wrong) to llhttp from the
 * first byte, so llhttp alone decides errors and framing. What it accepts
 * is a subset of what llhttp accepts, with the same result; fuzz_head
 * checks the two against each other. */

/* origin-form characters taken here: unreserved, sub-delims, ":@/?%" */
static const char target_ok[256] = {
  ['!'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1, ['('] = 1, [')'] = 1,
  ['*'] = 1, ['+'] = 1, [','] = 1, ['-'] = 1, ['.'] = 1, ['/'] = 1, [':'] = 1,
  [';'] = 1, ['='] = 1, ['?'] = 1, ['@'] = 1, ['_'] = 1, ['~'] = 1,
  ['0' ... '9'] = 1, ['A' ... 'Z'] = 1, ['a' ... 'z'] = 1,
};

/* field-value characters taken here: HTAB, SP and VCHAR (no obs-text) */
static const char value_ok[256] = {['\t'] = 1, [' ' ... '~'] = 1};

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
  while (i < n && value_ok[(unsigned char)d[i]]) i++;
  return i;
}

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

enum { FAST_NO = 0, FAST_OK = 1 };

static int fast_method(const char *d, size_t n, int *id, size_t *ml) {
  if (n < 8) return FAST_NO;
  switch (d[0]) {
    case 'G': if (memcmp(d, "GET ", 4) == 0) { *id = HTTP_GET; *ml = 3; return FAST_OK; } break;
    case 'H': if (memcmp(d, "HEAD ", 5) == 0) { *id = HTTP_HEAD; *ml = 4; return FAST_OK; } break;
    case 'P':
      if (memcmp(d, "POST ", 5) == 0) { *id = HTTP_POST; *ml = 4; return FAST_OK; }
      if (memcmp(d, "PUT ", 4) == 0) { *id = HTTP_PUT; *ml = 3; return FAST_OK; }
      if (memcmp(d, "PATCH ", 6) == 0) { *id = HTTP_PATCH; *ml = 5; return FAST_OK; }
      break;
    case 'D': if (memcmp(d, "DELETE ", 7) == 0) { *id = HTTP_DELETE; *ml = 6; return FAST_OK; } break;
    case 'O': if (memcmp(d, "OPTIONS ", 8) == 0) { *id = HTTP_OPTIONS; *ml = 7; return FAST_OK; } break;
  }
  return FAST_NO;
}

/* what a field name means to fast_head: names whose meaning llhttp keeps
 * to itself (framing, upgrade) send the head to llhttp; Host, Expect and
 * Connection are the ones head_rules reads */
enum { FF_OTHER, FF_LLHTTP, FF_HOST, FF_EXPECT, FF_CONNECTION };
static int fast_field(const char *s, size_t n) {
  switch (n) {
    case 4: return name_is(s, n, "host") ? FF_HOST : FF_OTHER;
    case 6: return name_is(s, n, "expect") ? FF_EXPECT : FF_OTHER;
    case 7: return name_is(s, n, "upgrade") ? FF_LLHTTP : FF_OTHER;
    case 10: return name_is(s, n, "connection") ? FF_CONNECTION : FF_OTHER;
    case 14: return name_is(s, n, "content-length") ? FF_LLHTTP : FF_OTHER;
    case 16: return name_is(s, n, "proxy-connection") ? FF_LLHTTP : FF_OTHER;
    case 17: return name_is(s, n, "transfer-encoding") ? FF_LLHTTP : FF_OTHER;
  }
  return FF_OTHER;
}

static int fast_head(lh_parser_t *p, const char *d, size_t n) {
  lh_head_t *hd = &p->head;
  int method;
  size_t ml, i;
  if (!fast_method(d, n, &method, &ml)) return FAST_NO;
  i = ml + 1;
  if (i >= n || d[i] != '/') return FAST_NO;
  size_t ts = i;
  while (i < n && target_ok[(unsigned char)d[i]]) i++;
  size_t tl = i - ts;
  if (tl > p->limits.max_target || n - i < 11 || memcmp(d + i, " HTTP/1.", 8) != 0 ||
      (d[i + 8] != '1' && d[i + 8] != '0') || d[i + 9] != '\r' || d[i + 10] != '\n')
    return FAST_NO;
  int minor = d[i + 8] - '0';
  i += 11;

  message_begin(p);
  uint32_t nf = 0;
  int hosts = 0, conn = 0, expect = 0;
  for (;;) {
    if (i + 2 > n) return FAST_NO;
    if (d[i] == '\r') {
      if (d[i + 1] != '\n') return FAST_NO;
      i += 2;
      break;
    }
    size_t ns = i;
    while (i < n && lh_tchar[(unsigned char)d[i]]) i++;
    if (i == ns || i == n || d[i] != ':') return FAST_NO;
    size_t nl = i - ns;
    /* the fields head_rules would look at: Host, Expect and Connection
     * are taken here; framing and upgrade fields are llhttp's */
    int kind = fast_field(d + ns, nl);
    if (kind == FF_LLHTTP) return FAST_NO;
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
    /* as llhttp reports it: an empty value is no span at all */
    fl->value.off = ve > vs ? (uint32_t)vs : 0;
    fl->value.len = (uint32_t)(ve - vs);
    if (kind == FF_HOST) {
      hosts++;
    } else if (kind == FF_CONNECTION) {
      /* Connection: upgrade goes with an Upgrade field, which llhttp takes */
      conn |= connection_field(d + vs, ve - vs);
    } else if (kind == FF_EXPECT) {
      expect |= expects_continue(d + vs, ve - vs);
    }
  }
  if (i > p->limits.max_head) return FAST_NO;
  /* a Host error is llhttp's to report */
  if (hosts_bad(hosts, minor)) return FAST_NO;

  hd->nfields = nf;
  hd->method.off = 0;
  hd->method.len = (uint32_t)ml;
  hd->target.off = (uint32_t)ts;
  hd->target.len = (uint32_t)tl;
  hd->major = 1;
  hd->minor = (uint8_t)minor;
  hd->method_id = method;
  p->base = d;
  /* what head_rules gives a server for such a head: no body, no upgrade */
  hd->expect_continue = minor >= 1 && expect;
  hd->keep_alive = keeps_alive(minor, conn);
  hd->len = (uint32_t)i;
  p->state = LH_PARSE_DONE;
  return FAST_OK;
}

int lh_parser_head(lh_parser_t *p, const char *data, size_t len) {
  if (len <= p->fed) return 0;
  if (p->fed == 0 && p->role == LH_ROLE_SERVER && !p->slow_only && fast_head(p, data, len))
    return 1;
  p->base = data;
  p->http_used = 1;
  llhttp_errno_t e = llhttp_execute(&p->http, data + p->fed, len - p->fed);
  if (e == HPE_OK) {
    p->fed = (uint32_t)len;
    if (p->state != LH_PARSE_HEAD) {
      /* head done, no body, message not closed yet: cannot happen for
       * requests; a response body that ends at EOF also lands here */
      p->head.len = (uint32_t)len;
      return 1;
    }
    if (len >= p->limits.max_head) return LH_EPARSE_TOO_LARGE;
    return 0;
  }
  if ((e == HPE_PAUSED || e == HPE_PAUSED_UPGRADE) && p->state == LH_PARSE_HEAD) {
    /* paused before any message began: nothing was parsed */
    return LH_EPARSE_INTERNAL;
  }
  if (e == HPE_PAUSED || e == HPE_PAUSED_UPGRADE) {
    const char *pos = llhttp_get_error_pos(&p->http);
    p->head.len = (uint32_t)(pos - data);
    if (e == HPE_PAUSED_UPGRADE) llhttp_resume_after_upgrade(&p->http);
    else llhttp_resume(&p->http);
    p->fed = 0;
    if (p->head.len > p->limits.max_head) return LH_EPARSE_TOO_LARGE;
    return 1;
  }
  if (e == HPE_INVALID_METHOD && !p->err && method_error(data, len) == 0) {
    /* an unknown method still arriving: decide 400 or 501 when the space
     * after it comes (llhttp keeps its error; we parse again from the start) */
    llhttp_init(&p->http, HTTP_REQUEST, p->http.settings);
    p->fed = 0;
    return len >= p->limits.max_head ? LH_EPARSE_TOO_LARGE : 0;
  }
  return map_error(p, e, data, len);
}

int lh_parser_body(lh_parser_t *p, char *data, size_t len, size_t *consumed,
                   size_t *body_len) {
  *consumed = *body_len = 0;
  if (p->state == LH_PARSE_DONE) return 1;
  if (len == 0) return 0;
  p->base = data;
  p->body_w = data;
  llhttp_errno_t e = llhttp_execute(&p->http, data, len);
  *body_len = (size_t)(p->body_w - data);
  if (e == HPE_OK) {
    *consumed = len;
    return 0;
  }
  if (e == HPE_PAUSED || e == HPE_PAUSED_UPGRADE) {
    *consumed = (size_t)(llhttp_get_error_pos(&p->http) - data);
    if (e == HPE_PAUSED_UPGRADE) llhttp_resume_after_upgrade(&p->http);
    else llhttp_resume(&p->http);
    return p->state == LH_PARSE_DONE ? 1 : 0;
  }
  return map_error(p, e, data, len);
}

int lh_parser_eof(lh_parser_t *p) {
  if (p->state == LH_PARSE_DONE) return 1;
  if (p->state == LH_PARSE_BODY && p->head.close_delimited) {
    p->state = LH_PARSE_DONE;
    return 1;
  }
  return LH_EINCOMPLETE;
}

void lh_parser_next(lh_parser_t *p) {
  p->state = LH_PARSE_HEAD;
  p->fed = 0;
  p->err = 0;
  /* every message starts from a fresh llhttp: whether there is a next
   * message is the Conn's decision, not llhttp's (its own reading of
   * Connection, and its stop after an upgrade, would otherwise carry over
   * into the next head); heads the fast path took left it fresh */
  if (p->http_used) {
    llhttp_reset(&p->http);
    p->http_used = 0;
  }
}

void lh_parser_trim(lh_parser_t *p) {
  if (p->state != LH_PARSE_HEAD || p->fed) return;
  if (p->fields_cap != FIELDS_STD || p->tfields || p->tbytes) {
    /* a usual array stays for the next head (it goes with the dispatcher) */
    lh_parser_free(p);
  }
  p->head.nfields = 0;
  p->ntrailers = 0;
  p->tlen = 0;
}
