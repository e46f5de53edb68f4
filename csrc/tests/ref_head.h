/* A reference reader of request heads, written for the tests apart from
 * parse.c: top-down over the bytes given, with the grammar of RFC 9112 (2.2
 * lines, 3 request line, 5 field lines) and RFC 9110 (5.6.2 tokens, 5.5
 * values, 7.2 Host, 8.6 Content-Length, 10.1.4 TE), IPv6 literals read by
 * inet_pton, and parse.c's limits and order of checks: the request line is
 * judged byte by byte as it comes (a wrong byte fails at once, a target
 * fails once past max_target), a field line when whole (but a byte no line
 * may hold fails at once), the version, method and target form when the
 * request line is whole, Host, Transfer-Encoding and Content-Length when
 * the head is. Only the HTTP status of a failure is given: the reason
 * codes behind one status may differ. head_diff.h checks the parser
 * against it. */
#ifndef LH_REF_HEAD_H
#define LH_REF_HEAD_H

#include <arpa/inet.h>
#include <stdint.h>
#include <string.h>

#include "parse.h"

#define REF_MAX_FIELDS 512

typedef struct {
  int r;              /* 1 whole, 0 more needed, or an HTTP status (400, 414, ...) */
  size_t len;         /* the head's bytes (r == 1) */
  lh_span_t method, target;
  int minor;
  uint32_t nfields;
  lh_span_t name[REF_MAX_FIELDS], value[REF_MAX_FIELDS];
  int keep_alive, expect, chunked, upgrade, has_body, te_trailers;
  uint64_t length;    /* LH_NO_LENGTH when none */
} ref_head_t;

static int rh_tchar(unsigned char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c && strchr("!#$%&'*+-.^_`|~", c));
}
static int rh_ws(unsigned char c) { return c == ' ' || c == '\t'; }
static int rh_value_byte(unsigned char c) { return c == '\t' || (c >= 0x20 && c != 0x7f); }
/* a VCHAR but those listed: the path refuses '#', '<', '>', '`' and '\',
 * the query (after the first '?') '#', '<', '>' and '"' */
static int rh_target_byte(unsigned char c, int query) {
  return c > 0x20 && c < 0x7f && !strchr(query ? "#<>\"" : "#<>`\\", c);
}
static int rh_digit(unsigned char c) { return c >= '0' && c <= '9'; }
static int rh_hex(unsigned char c) {
  return rh_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* s[0..n) equals the lower-case l, ignoring ASCII case */
static int rh_is(const char *s, size_t n, const char *l) {
  if (n != strlen(l)) return 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c >= 'A' && c <= 'Z') c += 32;
    if (c != (unsigned char)l[i]) return 0;
  }
  return 1;
}

/* calls fn on each non-empty element of a comma list, trimmed */
static void rh_list(const char *v, size_t n, void (*fn)(void *, const char *, size_t), void *ctx) {
  size_t i = 0;
  while (i <= n) {
    size_t j = i;
    while (j < n && v[j] != ',') j++;
    size_t a = i, b = j;
    while (a < b && rh_ws((unsigned char)v[a])) a++;
    while (b > a && rh_ws((unsigned char)v[b - 1])) b--;
    if (b > a) fn(ctx, v + a, b - a);
    i = j + 1;
  }
}

/* uri-host [ ":" port ] (RFC 3986 3.2.2), port required for CONNECT */
static int rh_host(const char *v, size_t n, int need_port) {
  size_t i = 0;
  if (n && v[0] == '[') {
    const char *e = memchr(v, ']', n);
    if (!e) return 0;
    size_t k = (size_t)(e - v) - 1;
    char buf[64];
    unsigned char addr[16];
    int ok = 0;
    if (k < sizeof buf) {
      memcpy(buf, v + 1, k);
      buf[k] = 0;
      ok = inet_pton(AF_INET6, buf, addr) == 1;
    }
    /* IPvFuture = "v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" ) */
    if (!ok && k >= 3 && (v[1] == 'v' || v[1] == 'V')) {
      size_t j = 2;
      while (j < k + 1 && rh_hex((unsigned char)v[j])) j++;
      ok = j > 2 && j < k && v[j] == '.';
      for (j++; ok && j < k + 1; j++)
        ok = strchr("-._~!$&'()*+,;=:", v[j]) || rh_hex((unsigned char)v[j]) ||
             ((v[j] | 0x20) >= 'a' && (v[j] | 0x20) <= 'z');
    }
    if (!ok) return 0;
    i = k + 2;
  } else {
    /* reg-name: unreserved / pct-encoded / sub-delims */
    while (i < n && v[i] != ':') {
      unsigned char c = (unsigned char)v[i];
      if (c == '%') {
        if (i + 2 >= n || !rh_hex((unsigned char)v[i + 1]) || !rh_hex((unsigned char)v[i + 2])) return 0;
        i += 3;
        continue;
      }
      if (!(rh_digit(c) || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') || (c && strchr("-._~!$&'()*+,;=", c))))
        return 0;
      i++;
    }
    if (need_port && i == 0) return 0;
  }
  if (i == n) return !need_port;
  if (v[i] != ':') return 0;
  i++;
  if (need_port && i == n) return 0;
  for (; i < n; i++)
    if (!rh_digit((unsigned char)v[i])) return 0;
  return 1;
}

static int rh_method_known(const char *m, size_t n) {
  static const char *const known[] = {
    "DELETE", "GET", "HEAD", "POST", "PUT", "CONNECT", "OPTIONS", "TRACE", "PATCH", "COPY",
    "LOCK", "MKCOL", "MOVE", "PROPFIND", "PROPPATCH", "SEARCH", "UNLOCK", "BIND", "REBIND",
    "UNBIND", "ACL", "REPORT", "MKACTIVITY", "CHECKOUT", "MERGE", "M-SEARCH", "NOTIFY",
    "SUBSCRIBE", "UNSUBSCRIBE", "PURGE", "MKCALENDAR", "LINK", "UNLINK", "SOURCE", "QUERY", NULL};
  for (int i = 0; known[i]; i++)
    if (strlen(known[i]) == n && memcmp(known[i], m, n) == 0) return 1;
  return 0;
}

/* what the head's fields say */
typedef struct {
  int hosts, host_bad, conn_close, conn_ka, conn_upgrade, expect, upgrade, te_trailers;
  int te, te_items, te_chunked, te_last_chunked;
  int cl, cl_bad;
  uint64_t length;
} rh_notes_t;

static void rh_conn_el(void *ctx, const char *e, size_t n) {
  rh_notes_t *t = ctx;
  if (rh_is(e, n, "close")) t->conn_close = 1;
  if (rh_is(e, n, "keep-alive")) t->conn_ka = 1;
  if (rh_is(e, n, "upgrade")) t->conn_upgrade = 1;
}
static void rh_te_el(void *ctx, const char *e, size_t n) {
  rh_notes_t *t = ctx;
  t->te_items++;
  t->te_last_chunked = rh_is(e, n, "chunked");
  t->te_chunked += t->te_last_chunked;
}
static void rh_tereq_el(void *ctx, const char *e, size_t n) {
  if (rh_is(e, n, "trailers")) ((rh_notes_t *)ctx)->te_trailers = 1;
}

/* Content-Length: comma-separated 1*DIGIT, all equal, each below 2^63 */
static void rh_length(rh_notes_t *t, const char *v, size_t n) {
  size_t i = 0;
  for (;;) {
    while (i < n && rh_ws((unsigned char)v[i])) i++;
    size_t a = i;
    uint64_t x = 0;
    while (i < n && rh_digit((unsigned char)v[i])) {
      unsigned d = (unsigned)(v[i] - '0');
      if (x > ((uint64_t)INT64_MAX - d) / 10) { t->cl_bad = 1; return; }
      x = x * 10 + d;
      i++;
    }
    while (i < n && rh_ws((unsigned char)v[i])) i++;
    if (i == a || (i < n && v[i] != ',')) { t->cl_bad = 1; return; }
    if (t->cl++ && x != t->length) { t->cl_bad = 1; return; }
    t->length = x;
    if (i == n) return;
    i++;
  }
}

static void ref_head(const char *d, size_t size, const lh_limits_t *lim, ref_head_t *o) {
  memset(o, 0, sizeof *o);
  size_t n = size < lim->max_head ? size : lim->max_head;
  size_t i = 0;
#define RH_OUT(st) do { o->r = (st); return; } while (0)
#define RH_MORE() RH_OUT(n >= lim->max_head ? 431 : 0)
  /* empty lines before the request line */
  while (i < n && (d[i] == '\r' || d[i] == '\n')) {
    if (d[i] == '\n') { i++; continue; }
    if (i + 1 == n) RH_MORE();
    if (d[i + 1] != '\n') RH_OUT(400);
    i += 2;
  }
  /* method SP */
  size_t m0 = i;
  while (i < n && rh_tchar((unsigned char)d[i])) i++;
  if (i == n) RH_MORE();
  if (d[i] != ' ' || i == m0) RH_OUT(400);
  o->method.off = (uint32_t)m0;
  o->method.len = (uint32_t)(i - m0);
  /* request-target SP, failing once longer than max_target */
  size_t t0 = ++i;
  int query = 0;
  while (i < n && rh_target_byte((unsigned char)d[i], query)) {
    query |= d[i] == '?';
    i++;
    if (i - t0 > lim->max_target) RH_OUT(414);
  }
  if (i == n) RH_MORE();
  if (d[i] != ' ' || i == t0) RH_OUT(400);
  o->target.off = (uint32_t)t0;
  o->target.len = (uint32_t)(i - t0);
  /* HTTP-version, then CRLF or LF */
  static const char pat[] = "HTTP/d.d";
  size_t v0 = ++i;
  for (int k = 0; k < 8; k++, i++) {
    if (i == n) RH_MORE();
    if (pat[k] == 'd' ? !rh_digit((unsigned char)d[i]) : d[i] != pat[k]) RH_OUT(400);
  }
  if (i == n) RH_MORE();
  if (d[i] == '\r') {
    if (++i == n) RH_MORE();
  }
  if (d[i] != '\n') RH_OUT(400);
  i++;
  if (d[v0 + 5] != '1') RH_OUT(505);
  o->minor = d[v0 + 7] == '0' ? 0 : 1;
  const char *m = d + m0, *t = d + t0;
  size_t tl = o->target.len;
  if (!rh_method_known(m, o->method.len)) RH_OUT(501);
  int connect = o->method.len == 7 && !memcmp(m, "CONNECT", 7);
  if (connect) {
    if (!rh_host(t, tl, 1)) RH_OUT(400);
  } else if (t[0] == '*' && tl == 1) {
    if (!(o->method.len == 7 && !memcmp(m, "OPTIONS", 7))) RH_OUT(400);
  } else if (t[0] != '/') {
    size_t s = rh_is(t, tl < 7 ? tl : 7, "http://") && tl > 7 ? 7
             : rh_is(t, tl < 8 ? tl : 8, "https://") && tl > 8 ? 8 : 0;
    if (!s) RH_OUT(400);
    size_t a = s;
    while (a < tl && t[a] != '/' && t[a] != '?') a++;
    if (a == s || t[s] == ':' || !rh_host(t + s, a - s, 0)) RH_OUT(400);
  }
  /* field lines */
  rh_notes_t nt;
  memset(&nt, 0, sizeof nt);
  for (;;) {
    size_t j = i;
    while (j < n && d[j] != '\n') j++;
    if (j == n) {
      for (size_t k = i; k < n; k++) {
        unsigned char c = (unsigned char)d[k];
        if ((c < 0x20 && c != '\t' && c != '\r') || c == 0x7f || (c == '\r' && k + 1 < n)) RH_OUT(400);
      }
      RH_MORE();
    }
    size_t le = j > i && d[j - 1] == '\r' ? j - 1 : j;
    if (le == i) {
      i = j + 1;
      break;
    }
    if (rh_ws((unsigned char)d[i])) RH_OUT(400);
    size_t k = i;
    while (k < le && rh_tchar((unsigned char)d[k])) k++;
    if (k == i || k == le || d[k] != ':') RH_OUT(400);
    size_t ne = k++;
    while (k < le && rh_ws((unsigned char)d[k])) k++;
    size_t vs = k;
    for (; k < le; k++)
      if (!rh_value_byte((unsigned char)d[k])) RH_OUT(400);
    while (le > vs && rh_ws((unsigned char)d[le - 1])) le--;
    if (o->nfields >= lim->max_headers) RH_OUT(431);
    if (o->nfields >= REF_MAX_FIELDS) RH_OUT(431);
    o->name[o->nfields] = (lh_span_t){(uint32_t)i, (uint32_t)(ne - i)};
    o->value[o->nfields] = (lh_span_t){le > vs ? (uint32_t)vs : 0, (uint32_t)(le - vs)};
    o->nfields++;
    const char *nm = d + i, *v = d + vs;
    size_t nl = ne - i, vl = le - vs;
    if (rh_is(nm, nl, "host")) nt.hosts++, nt.host_bad |= !rh_host(v, vl, 0);
    else if (rh_is(nm, nl, "connection")) rh_list(v, vl, rh_conn_el, &nt);
    else if (rh_is(nm, nl, "expect")) nt.expect |= rh_is(v, vl, "100-continue");
    else if (rh_is(nm, nl, "upgrade")) nt.upgrade = 1;
    else if (rh_is(nm, nl, "te")) rh_list(v, vl, rh_tereq_el, &nt);
    else if (rh_is(nm, nl, "transfer-encoding")) nt.te++, rh_list(v, vl, rh_te_el, &nt);
    else if (rh_is(nm, nl, "content-length")) rh_length(&nt, v, vl);
    i = j + 1;
  }
  o->len = i;
  /* RFC 9112 3.2, 6.1, 6.3 and RFC 9110 8.6 */
  if (nt.hosts > 1 || (nt.hosts == 0 && o->minor == 1) || nt.host_bad) RH_OUT(400);
  if (nt.te) {
    if (o->minor == 1 && !nt.cl && nt.te_items && !nt.te_chunked) RH_OUT(501);
    if (o->minor == 0 || nt.cl || nt.te_chunked != 1 || !nt.te_last_chunked) RH_OUT(400);
    if (nt.te_items > 1) RH_OUT(501);
  }
  if (nt.cl_bad) RH_OUT(400);
  o->keep_alive = !nt.conn_close && (o->minor == 1 || nt.conn_ka);
  o->expect = o->minor == 1 && nt.expect;
  o->chunked = nt.te > 0;
  o->upgrade = connect || (nt.conn_upgrade && nt.upgrade);
  o->te_trailers = nt.te_trailers;
  o->length = nt.cl && !nt.te ? nt.length : LH_NO_LENGTH;
  o->has_body = o->chunked || (o->length != LH_NO_LENGTH && o->length > 0);
  o->r = 1;
#undef RH_OUT
#undef RH_MORE
}

#endif
