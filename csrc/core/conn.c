/* Conn, the state machine of one HTTP/1 connection (conn.h): reading
 * heads and bodies through the parser, writing heads and bodies through
 * the encoder, keep-alive, kept heads. Start reading here. */
#include "conn.h"

#include <assert.h>

#include "tuning.h"
#include <stdio.h>
#include <string.h>

#define READ_CHUNK (64 * 1024) /* what one read asks for */

/* decimal digits of v into d; returns their count */
static int fmt_dec(char *d, uint64_t v) {
  char t[20];
  int n = 0;
  do t[n++] = (char)('0' + v % 10); while ((v /= 10));
  for (int i = 0; i < n; i++) d[i] = t[n - 1 - i];
  return n;
}

static int fmt_hex(char *d, uint64_t v) {
  char t[16];
  int n = 0;
  do t[n++] = "0123456789abcdef"[v & 15]; while ((v >>= 4));
  for (int i = 0; i < n; i++) d[i] = t[n - 1 - i];
  return n;
}

void lh_conn_init(lh_conn_t *c, lh_role_t role, const lh_conn_opts_t *o) {
  memset(c, 0, sizeof *c);
  c->role = role;
  c->opts = *o;
  c->ka = LH_KA_IDLE;
  c->minor = 1;
  if (!o->keep_alive) c->ka = LH_KA_DISABLED;
  lh_limits_t lim = {o->max_buf_size, o->max_headers, o->max_target};
  lh_parser_init(&c->parser, role, &lim);
  c->parser.slow_only = !lh_tuning.fast_head; /* every head through the full parser */
}

void lh_conn_free(lh_conn_t *c) {
  lh_parser_free(&c->parser);
  lh_rbuf_free(&c->rbuf);
  lh_wq_free(&c->wq);
}

long lh_conn_read_space(lh_conn_t *c, char **p) {
  /* a head must fit in max_buf_size; body bytes are held one read at a time */
  size_t max = c->opts.max_buf_size;
  if (max < READ_CHUNK) max = READ_CHUNK;
  /* a head, or a buffer given back while idle: one pooled block first */
  size_t want = c->reading == LH_READING_INIT || c->rbuf.cap == 0 ? 4096 : READ_CHUNK;
  if (c->reading == LH_READING_INIT && c->rbuf.cap >= READ_CHUNK) want = READ_CHUNK;
  long n = lh_rbuf_reserve(&c->rbuf, want, max);
  if (n > 0) *p = c->rbuf.base + c->rbuf.len;
  return n;
}

void lh_conn_read_eof(lh_conn_t *c) { c->eof = 1; }

void lh_conn_trim(lh_conn_t *c) {
  lh_rbuf_trim(&c->rbuf, 0);
  lh_wq_trim(&c->wq, 0);
  lh_parser_trim(&c->parser);
}

uint32_t lh_conn_trailers(const lh_conn_t *c, const lh_field_t **f, const char **base,
                          size_t *len) {
  const lh_parser_t *p = &c->parser;
  *f = p->tfields;
  *base = p->tbytes;
  *len = p->tlen;
  return p->ntrailers;
}

/* --- keep-alive: BUSY while a message is exchanged, IDLE between
 * messages, DISABLED for good. Turning busy is the one transition that
 * could undo a disable: it happens only here, and never does. --- */

static void ka_busy(lh_conn_t *c) {
  if (c->ka != LH_KA_DISABLED) c->ka = LH_KA_BUSY;
}

static void ka_idle(lh_conn_t *c) {
  assert(c->ka == LH_KA_BUSY);
  c->ka = LH_KA_IDLE;
}

void lh_conn_disable_keep_alive(lh_conn_t *c) { c->ka = LH_KA_DISABLED; }

void lh_conn_close_read(lh_conn_t *c) {
  if (c->reading == LH_READING_BODY || c->reading == LH_READING_CONTINUE ||
      lh_rbuf_avail(&c->rbuf) > 0 || c->error)
    c->unread = 1;
  c->reading = LH_READING_CLOSED;
  c->ka = LH_KA_DISABLED;
}

void lh_conn_close_write(lh_conn_t *c) {
  c->writing = LH_WRITING_CLOSED;
  c->ka = LH_KA_DISABLED;
}

void lh_conn_close(lh_conn_t *c) {
  lh_conn_close_read(c);
  lh_conn_close_write(c);
}

int lh_conn_read_head(lh_conn_t *c, lh_head_t **head, const char **base) {
  assert(c->reading == LH_READING_INIT);
  size_t avail = lh_rbuf_avail(&c->rbuf);
  if (avail == 0) {
    if (c->eof) {
      /* EOF between messages is a clean close */
      lh_conn_close(c);
      return LH_ECLOSED;
    }
    return 0;
  }
  char *data = c->rbuf.base + c->rbuf.off;
  int r = lh_parser_head(&c->parser, data, avail);
  if (r == 0) {
    if (c->eof) r = LH_EINCOMPLETE;
    else if (avail >= c->opts.max_buf_size) r = LH_EPARSE_TOO_LARGE;
    else return 0;
  }
  if (r < 0) {
    c->error = r;
    lh_conn_close_read(c);
    return r;
  }
  lh_head_t *h = &c->parser.head;
  c->rbuf.off += h->len;
  *head = h;
  *base = data;
  if (c->role == LH_ROLE_CLIENT) {
    if (h->status / 100 == 1 && h->status != 101) {
      /* RFC 9110 15.2: an interim response; the final one follows */
      lh_parser_next(&c->parser);
      return 1;
    }
    if (!h->keep_alive || h->status == 101) lh_conn_disable_keep_alive(c);
    if (c->parser.state == LH_PARSE_DONE) {
      lh_parser_next(&c->parser);
      c->reading = LH_READING_KEEPALIVE;
    } else {
      c->reading = LH_READING_BODY;
    }
    return 1;
  }
  if (c->role == LH_ROLE_SERVER) {
    c->minor = h->minor;
    c->head_method = h->method_id == LH_METHOD_HEAD;
    c->upgrade = h->upgrade;
    c->connect = h->method_id == LH_METHOD_CONNECT;
    c->te_trailers = h->te_trailers;
    if (h->keep_alive) ka_busy(c);
    else lh_conn_disable_keep_alive(c);
    if (c->parser.state == LH_PARSE_DONE) {
      lh_parser_next(&c->parser);
      c->reading = LH_READING_KEEPALIVE;
    } else {
      c->reading = h->expect_continue ? LH_READING_CONTINUE : LH_READING_BODY;
    }
  }
  return 1;
}

int lh_conn_write_continue(lh_conn_t *c) {
  static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
  if (c->reading != LH_READING_CONTINUE) return 0;
  c->reading = LH_READING_BODY;
  if (c->writing != LH_WRITING_INIT) return 0; /* answered already: no 100 */
  return lh_wq_append(&c->wq, cont, sizeof cont - 1) ? LH_ENOMEM : 0;
}

/* a request body whose framing broke (or passed a size limit) is the
 * client's fault: when no response head went out, the answer is ours
 * (400, 413 for the chunk extension limit, 431 for trailers), with
 * Connection: close; whatever the service answers after it is refused */
static void body_failed(lh_conn_t *c, int err) {
  c->error = err;
  lh_conn_close_read(c);
  if (c->role != LH_ROLE_SERVER || c->writing != LH_WRITING_INIT || err == LH_EINCOMPLETE) return;
  if (lh_conn_head_begin(c, lh_error_status(err)) || lh_conn_head_end(c, 0) ||
      lh_conn_write_end(c)) {
    lh_conn_head_abort(c);
    lh_conn_close(c);
  }
}

int lh_conn_read_body(lh_conn_t *c, const char **p, size_t *n) {
  *n = 0;
  if (c->reading == LH_READING_KEEPALIVE) return 2;
  if (c->reading == LH_READING_CONTINUE) {
    int r = lh_conn_write_continue(c);
    if (r < 0) return r;
  }
  if (c->reading != LH_READING_BODY) return LH_ECLOSED;
  for (;;) {
    size_t avail = lh_rbuf_avail(&c->rbuf), used, blen;
    char *data = c->rbuf.base + c->rbuf.off, *body;
    if (avail == 0) {
      if (!c->eof) return 0;
      int r = lh_parser_eof(&c->parser);
      if (r == 1) {
        lh_parser_next(&c->parser);
        c->reading = LH_READING_KEEPALIVE;
        return 2;
      }
      c->error = r;
      lh_conn_close_read(c);
      return r;
    }
    int r = lh_parser_body(&c->parser, data, avail, &used, &body, &blen);
    if (r < 0) {
      body_failed(c, r);
      return r;
    }
    c->rbuf.off += used;
    if (r == 1) {
      /* trailers stay in the parser until the next message starts */
      c->reading = LH_READING_KEEPALIVE;
      lh_parser_next(&c->parser);
    }
    if (blen > 0) {
      *p = body;
      *n = blen;
      return 1;
    }
    if (r == 1) return 2;
    if (used == 0) return 0;
  }
}

void lh_conn_body_unwanted(lh_conn_t *c) {
  if (c->role != LH_ROLE_SERVER) return;
  if (c->reading == LH_READING_CONTINUE) {
    lh_conn_disable_keep_alive(c);
  } else if (c->reading == LH_READING_BODY) {
    uint64_t left = lh_parser_body_left(&c->parser);
    size_t buffered = lh_rbuf_avail(&c->rbuf);
    /* a chunked body's size is not known: it is dropped as it comes */
    if (left != LH_NO_LENGTH && left > buffered && left - buffered > LH_DISCARD_MAX)
      lh_conn_disable_keep_alive(c);
  }
}

int lh_conn_drain(lh_conn_t *c) {
  if (c->reading == LH_READING_CONTINUE || (c->reading == LH_READING_BODY && c->ka == LH_KA_DISABLED)) {
    /* no 100 was sent (the client may or may not send the body), or the
     * connection ends after this response anyway */
    lh_conn_close_read(c);
    return 0;
  }
  if (c->reading == LH_READING_BODY && !c->discarding) {
    c->discarding = 1;
    c->discard_left = LH_DISCARD_MAX;
  }
  while (c->reading == LH_READING_BODY) {
    if (lh_rbuf_avail(&c->rbuf) == 0 && c->eof) {
      /* the client gave up its upload: not an error of ours */
      lh_conn_close_read(c);
      return 0;
    }
    const char *p;
    size_t n;
    int r = lh_conn_read_body(c, &p, &n);
    if (r == 0) return 0; /* the rest is still to come */
    if (r < 0) return 0;  /* the read side is closed */
    if (r == 1 && n > c->discard_left) {
      lh_conn_close_read(c);
      return 0;
    }
    if (r == 1) c->discard_left -= (uint32_t)n;
  }
  return c->reading == LH_READING_KEEPALIVE;
}

/* --- writing --- */

static int put(lh_conn_t *c, const char *s, size_t n) {
  return lh_wq_append(&c->wq, s, n) ? LH_ENOMEM : 0;
}

/* inlined: most callers pass constant names, whose copies then need no call */
static inline __attribute__((always_inline)) int put_field(lh_conn_t *c, const char *name,
                                                           size_t nlen, const char *value,
                                                           size_t vlen) {
  char *d = lh_wq_reserve(&c->wq, nlen + vlen + 4);
  if (!d) return LH_ENOMEM;
  memcpy(d, name, nlen);
  if (c->opts.title_case) {
    int up = 1;
    for (size_t i = 0; i < nlen; i++) {
      char ch = d[i];
      if (up && ch >= 'a' && ch <= 'z') d[i] = (char)(ch - 32);
      else if (!up && ch >= 'A' && ch <= 'Z') d[i] = (char)(ch + 32);
      up = ch == '-';
    }
  }
  d[nlen] = ':';
  d[nlen + 1] = ' ';
  memcpy(d + nlen + 2, value, vlen);
  d[nlen + 2 + vlen] = '\r';
  d[nlen + 3 + vlen] = '\n';
  lh_wq_commit(&c->wq, nlen + vlen + 4);
  return 0;
}

static int name_is(const char *name, size_t nlen, const char *lname, size_t ln) {
  if (nlen != ln) return 0;
  for (size_t i = 0; i < ln; i++) {
    char ch = name[i];
    if (ch >= 'A' && ch <= 'Z') ch = (char)(ch + 32);
    if (ch != lname[i]) return 0;
  }
  return 1;
}

int lh_conn_head_begin(lh_conn_t *c, int status) {
  if (c->writing != LH_WRITING_INIT) return LH_ECLOSED;
  if (status < 100 || status > 999) return LH_EUSER_STATUS;
  memset(&c->enc, 0, sizeof c->enc);
  c->enc.status = status;
  c->enc.head_mark = (uint32_t)lh_wq_mark(&c->wq);
  c->enc.begun = 1;
  /* RFC 9110 9.3.6: a 2xx to CONNECT starts a tunnel, it has no content */
  c->enc.no_body = c->head_method || status / 100 == 1 || status == 204 || status == 304 ||
                   (c->connect && status / 100 == 2);
  const char *reason = lh_reason(status);
  size_t rl = strlen(reason);
  char *d = lh_wq_reserve(&c->wq, 14 + rl + 2);
  if (!d) return LH_ENOMEM;
  memcpy(d, c->minor == 0 && c->role == LH_ROLE_SERVER ? "HTTP/1.0 " : "HTTP/1.1 ", 9);
  d[9] = (char)('0' + status / 100);
  d[10] = (char)('0' + status / 10 % 10);
  d[11] = (char)('0' + status % 10);
  d[12] = ' ';
  memcpy(d + 13, reason, rl);
  d[13 + rl] = '\r';
  d[14 + rl] = '\n';
  lh_wq_commit(&c->wq, 15 + rl);
  return 0;
}

int lh_conn_req_begin(lh_conn_t *c, const char *m, size_t ml, const char *t, size_t tl) {
  if (c->role != LH_ROLE_CLIENT || c->writing != LH_WRITING_INIT) return LH_ECLOSED;
  if (ml == 0 || tl == 0) return LH_EUSER_HEADER;
  for (size_t i = 0; i < ml; i++)
    if (!lh_is_tchar((unsigned char)m[i])) return LH_EUSER_HEADER;
  for (size_t i = 0; i < tl; i++)
    if ((unsigned char)t[i] <= ' ' || t[i] == 0x7f) return LH_EUSER_HEADER;
  memset(&c->enc, 0, sizeof c->enc);
  c->enc.head_mark = (uint32_t)lh_wq_mark(&c->wq);
  c->enc.begun = 1;
  /* RFC 9110 8.6: a user agent should not send Content-Length: 0 when the
   * method gives no meaning to a body */
  static const char *const bodyless[] = {"GET", "HEAD", "DELETE", "OPTIONS", "TRACE", "CONNECT", NULL};
  for (int i = 0; bodyless[i]; i++)
    if (ml == strlen(bodyless[i]) && memcmp(m, bodyless[i], ml) == 0) c->enc.bodyless = 1;
  c->parser.skip_body = ml == 4 && memcmp(m, "HEAD", 4) == 0;
  ka_busy(c);
  char *d = lh_wq_reserve(&c->wq, ml + tl + 12);
  if (!d) return LH_ENOMEM;
  memcpy(d, m, ml);
  d[ml] = ' ';
  memcpy(d + ml + 1, t, tl);
  memcpy(d + ml + 1 + tl, " HTTP/1.1\r\n", 11);
  lh_wq_commit(&c->wq, ml + tl + 12);
  return 0;
}

void lh_conn_head_abort(lh_conn_t *c) {
  if (c->writing == LH_WRITING_INIT && c->enc.begun) lh_wq_rollback(&c->wq, c->enc.head_mark);
  c->enc.begun = 0;
}

static int parse_length(const char *v, size_t n, uint64_t *out) {
  uint64_t x = 0;
  if (n == 0 || n > 19) return -1;
  for (size_t i = 0; i < n; i++) {
    if (v[i] < '0' || v[i] > '9') return -1;
    x = x * 10 + (uint64_t)(v[i] - '0');
  }
  *out = x;
  return 0;
}

int lh_conn_head_field(lh_conn_t *c, const char *name, size_t nlen, const char *value,
                       size_t vlen) {
  assert(c->writing == LH_WRITING_INIT && c->enc.begun);
  if (!lh_field_ok(name, nlen, value, vlen)) return LH_EUSER_HEADER;
  switch (nlen) {
    case 4:
      if (name_is(name, nlen, "date", 4)) c->enc.user_date = 1;
      break;
    case 10:
      if (name_is(name, nlen, "connection", 10)) {
        c->enc.user_conn = 1;
        if (c->enc.status == 101) return put_field(c, name, nlen, value, vlen);
        if (lh_list_has(value, vlen, "close")) {
          c->enc.user_close = 1;
          lh_conn_disable_keep_alive(c);
        }
        if (lh_list_has(value, vlen, "keep-alive")) return 0; /* ours decides */
        if (c->enc.user_close) return put_field(c, name, nlen, value, vlen);
      }
      break;
    case 14:
      if (name_is(name, nlen, "content-length", 14)) {
        uint64_t n;
        if (parse_length(value, vlen, &n)) return LH_EUSER_HEADER;
        if (c->enc.status / 100 == 1 || c->enc.status == 204) return 0;
        if (c->enc.user_length && n != c->enc.remaining) return LH_EUSER_HEADER;
        if (c->enc.user_length) return 0;
        c->enc.user_length = 1;
        c->enc.remaining = n;
        /* its place, as put_length notes ours, for lh_conn_head_keep */
        c->enc.cl_mark = (uint32_t)lh_wq_mark(&c->wq);
        int r = put_field(c, name, nlen, value, vlen);
        c->enc.cl_end = (uint32_t)lh_wq_mark(&c->wq);
        return r;
      }
      break;
    case 17:
      /* framing is ours: chunked or not is decided in head_end */
      if (name_is(name, nlen, "transfer-encoding", 17)) return 0;
      break;
  }
  return put_field(c, name, nlen, value, vlen);
}

/* our content-length field, its place noted for lh_conn_head_keep */
static int put_length(lh_conn_t *c, uint64_t n) {
  char num[24];
  int k = fmt_dec(num, n);
  c->enc.cl_mark = (uint32_t)lh_wq_mark(&c->wq);
  int r = put_field(c, "content-length", 14, num, (size_t)k);
  c->enc.cl_end = (uint32_t)lh_wq_mark(&c->wq);
  return r;
}

int lh_conn_head_end(lh_conn_t *c, int64_t body_len) {
  int r;
  assert(c->writing == LH_WRITING_INIT && c->enc.begun);
  if (c->enc.no_body) {
    c->enc.kind = LH_ENC_NONE;
    /* HEAD: the length a GET would have had */
    if (c->head_method && !c->enc.user_length && body_len >= 0 && c->enc.status != 204 &&
        c->enc.status != 304 && c->enc.status / 100 != 1) {
      if ((r = put_length(c, (uint64_t)body_len))) return r;
    }
  } else if (c->enc.user_length) {
    /* the handler's own field was written as it came */
    c->enc.kind = LH_ENC_LENGTH;
  } else if (body_len == 0 && c->role == LH_ROLE_CLIENT && c->enc.bodyless) {
    c->enc.kind = LH_ENC_LENGTH;
    c->enc.remaining = 0;
  } else if (body_len >= 0) {
    c->enc.kind = LH_ENC_LENGTH;
    c->enc.remaining = (uint64_t)body_len;
    if ((r = put_length(c, (uint64_t)body_len))) return r;
  } else if (c->minor >= 1 || c->role == LH_ROLE_CLIENT) {
    c->enc.kind = LH_ENC_CHUNKED;
    if ((r = put_field(c, "transfer-encoding", 17, "chunked", 7))) return r;
  } else {
    /* HTTP/1.0 cannot take chunked: the body ends with the connection */
    c->enc.kind = LH_ENC_CLOSE;
    lh_conn_disable_keep_alive(c);
  }
  if (c->role == LH_ROLE_SERVER) {
    if (c->enc.status == 101) {
      if (!c->enc.user_conn && (r = put_field(c, "connection", 10, "upgrade", 7))) return r;
    } else if (c->connect && c->enc.status / 100 == 2) {
      /* a tunnel: no Connection header */
    } else {
      if (c->ka == LH_KA_DISABLED && !c->enc.user_close) {
        if ((r = put_field(c, "connection", 10, "close", 5))) return r;
      } else if (c->ka != LH_KA_DISABLED && c->minor == 0) {
        if ((r = put_field(c, "connection", 10, "keep-alive", 10))) return r;
      }
    }
    if (c->opts.date_header && !c->enc.user_date)
      if ((r = put_field(c, "date", 4, lh_date(), 29))) return r;
  } else if (c->ka == LH_KA_DISABLED && !c->enc.user_close) {
    if ((r = put_field(c, "connection", 10, "close", 5))) return r;
  }
  if ((r = put(c, "\r\n", 2))) return r;
  c->enc.begun = 0;
  if (c->enc.status / 100 == 1 && c->enc.status != 101) {
    /* an informational head: the final one is still to come */
    return 0;
  }
  c->writing = LH_WRITING_BODY;
  return 0;
}

/* --- kept heads ---
 * A server's responses often differ only in their body: same status, same
 * handler fields, same connection state. lh_conn_head_keep copies a head
 * just written; lh_conn_head_replay writes it again with the length of the
 * new body and the current date, leaving the connection as head_begin,
 * the fields and head_end would have. Whoever keeps a head checks that the
 * fields are the same (lreq.c compares the handler's strings). */

int lh_conn_head_keep(const lh_conn_t *c, int64_t body_len, lh_head_tpl_t *t) {
  return lh_conn_head_keep_x(c, body_len, t, 0, 0);
}

/* copies [from, to) of the head at b, without the bytes [xv, xe), to p;
 * returns the end */
static char *copy_without(char *p, const char *b, uint32_t from, uint32_t to, uint32_t xv,
                          uint32_t xe) {
  if (xe > xv && xv >= from && xe <= to) {
    memcpy(p, b + from, xv - from);
    p += xv - from;
    from = xe;
  }
  memcpy(p, b + from, to - from);
  return p + (to - from);
}

int lh_conn_head_keep_x(const lh_conn_t *c, int64_t body_len, lh_head_tpl_t *t, uint32_t xv,
                        uint32_t xe) {
  const lh_bytes_t *b = &c->wq.blk[c->wq.cur];
  uint32_t mark = c->enc.head_mark;
  if (c->role != LH_ROLE_SERVER || c->writing != LH_WRITING_BODY || c->enc.status < 200) return -1;
  /* the handler's fields changed nothing but the bytes */
  if (c->enc.kind == LH_ENC_CLOSE || c->enc.user_date || c->enc.user_conn || c->enc.user_close)
    return -1;
  uint32_t xlen = xe > xv ? xe - xv : 0;
  if (b->len < mark || b->len - mark - xlen > sizeof t->bytes) return -1;
  if (xlen && (xv < mark || xe > b->len)) return -1;
  int cl = c->enc.cl_end > c->enc.cl_mark;
  if (cl && (c->enc.cl_mark < mark || c->enc.cl_end > b->len)) return -1;
  /* the value is a whole field's, apart from the content-length digits */
  if (xlen && cl && !(xe + 2 <= c->enc.cl_mark || xv >= c->enc.cl_end)) return -1;
  if (c->enc.user_length) {
    /* the handler's content-length, kept as ours when it is what ours
     * would be: the body's length, in plain digits */
    const char *v = b->data + c->enc.cl_mark + 16;
    if (!cl || body_len < 0 || c->enc.remaining != (uint64_t)body_len ||
        (v[0] == '0' && c->enc.cl_end - c->enc.cl_mark > 19))
      return -1;
  }
  t->key = lh_conn_head_key(c, body_len);
  t->status = c->enc.status;
  t->kind = (uint8_t)c->enc.kind;
  t->no_body = c->enc.no_body;
  t->date = c->opts.date_header;
  t->cl = (uint8_t)cl;
  t->user_length = c->enc.user_length;
  /* pre ends with the name of our content-length field, suf begins with
   * the CRLF after its digits */
  uint32_t pre_end = cl ? c->enc.cl_mark + 16 : (uint32_t)b->len;
  uint32_t suf_at = cl ? c->enc.cl_end - 2 : (uint32_t)b->len;
  int x_in_pre = xlen && xe <= pre_end;
  t->pre = (uint16_t)(pre_end - mark - (x_in_pre ? xlen : 0));
  t->suf = (uint16_t)(b->len - suf_at - (xlen && !x_in_pre ? xlen : 0));
  t->x = xlen > 0;
  t->xat = (uint16_t)(!xlen ? 0 : x_in_pre ? xv - mark : t->pre + (xv - suf_at));
  char *p = copy_without(t->bytes, b->data, mark, pre_end, xv, xe);
  if (cl) copy_without(p, b->data, suf_at, (uint32_t)b->len, xv, xe);
  return 0;
}

int lh_conn_head_replay(lh_conn_t *c, const lh_head_tpl_t *t, int64_t body_len) {
  return lh_conn_head_replay_x(c, t, body_len, NULL, 0);
}

/* copies [from, to) of the template's bytes to p, with v put at t->xat
 * when that falls in it; returns the end */
static char *copy_with(char *p, const lh_head_tpl_t *t, size_t from, size_t to, const char *v,
                       size_t vlen) {
  if (t->x && t->xat >= from && t->xat < to) {
    memcpy(p, t->bytes + from, t->xat - from);
    p += t->xat - from;
    memcpy(p, v, vlen);
    p += vlen;
    from = t->xat;
  }
  memcpy(p, t->bytes + from, to - from);
  return p + (to - from);
}

int lh_conn_head_replay_x(lh_conn_t *c, const lh_head_tpl_t *t, int64_t body_len, const char *v,
                          size_t vlen) {
  if (c->writing != LH_WRITING_INIT) return LH_ECLOSED;
  if (!t->x) vlen = 0;
  char num[24];
  size_t k = t->cl ? (size_t)fmt_dec(num, (uint64_t)body_len) : 0;
  size_t n = t->pre + k + t->suf + vlen;
  uint32_t mark = (uint32_t)lh_wq_mark(&c->wq);
  char *d = lh_wq_reserve(&c->wq, n);
  if (!d) return LH_ENOMEM;
  char *p = copy_with(d, t, 0, t->pre, v, vlen);
  if (t->cl) {
    memcpy(p, num, k);
    copy_with(p + k, t, t->pre, (size_t)t->pre + t->suf, v, vlen);
  }
  /* the date is the last field: "date: <29 bytes>\r\n\r\n" */
  if (t->date) memcpy(d + n - 33, lh_date(), 29);
  lh_wq_commit(&c->wq, n);
  memset(&c->enc, 0, sizeof c->enc);
  c->enc.status = t->status;
  c->enc.head_mark = mark;
  c->enc.kind = (lh_enc_kind_t)t->kind;
  c->enc.no_body = t->no_body;
  c->enc.user_length = t->user_length;
  if (c->enc.kind == LH_ENC_LENGTH || t->user_length) c->enc.remaining = (uint64_t)body_len;
  c->writing = LH_WRITING_BODY;
  return 0;
}

int lh_conn_body_frame(lh_conn_t *c, size_t n, char hdr[20], size_t *hlen, size_t *tlen) {
  *hlen = *tlen = 0;
  if (c->writing != LH_WRITING_BODY) return LH_ECLOSED;
  if (n == 0) return 0;
  switch (c->enc.kind) {
    case LH_ENC_NONE:
      return 1;
    case LH_ENC_LENGTH:
      if (n > c->enc.remaining) {
        c->error = LH_EUSER_BODY;
        return LH_EUSER_BODY;
      }
      c->enc.remaining -= n;
      return 0;
    case LH_ENC_CLOSE:
      return 0;
    case LH_ENC_CHUNKED: {
      int k = fmt_hex(hdr, n);
      hdr[k++] = '\r';
      hdr[k++] = '\n';
      *hlen = (size_t)k;
      *tlen = 2;
      return 0;
    }
  }
  return 0;
}

int lh_conn_write_body(lh_conn_t *c, const char *p, size_t n) {
  if (c->writing != LH_WRITING_BODY) return LH_ECLOSED;
  if (n == 0) return 0; /* an empty chunk would end a chunked body */
  switch (c->enc.kind) {
    case LH_ENC_NONE:
      return 0;
    case LH_ENC_LENGTH:
      if (n > c->enc.remaining) {
        c->error = LH_EUSER_BODY;
        return LH_EUSER_BODY;
      }
      c->enc.remaining -= n;
      return put(c, p, n);
    case LH_ENC_CLOSE:
      return put(c, p, n);
    case LH_ENC_CHUNKED: {
      char *d = lh_wq_reserve(&c->wq, 20 + n);
      if (!d) return LH_ENOMEM;
      int k = fmt_hex(d, n);
      d[k++] = '\r';
      d[k++] = '\n';
      memcpy(d + k, p, n);
      d[k + n] = '\r';
      d[k + n + 1] = '\n';
      lh_wq_commit(&c->wq, (size_t)k + n + 2);
      return 0;
    }
  }
  return 0;
}

/* RFC 9110 6.5.1: fields that frame, route or authenticate never go in trailers */
static int trailer_forbidden(const char *name, size_t n) {
  static const char *const bad[] = {
    "content-length", "transfer-encoding", "host", "content-type", "content-encoding",
    "content-range", "trailer", "connection", "keep-alive", "te", "upgrade",
    "authorization", "set-cookie", "cache-control", "expect", "max-forwards",
    "pragma", "range", "proxy-authorization", "proxy-authenticate", "www-authenticate",
    "age", "expires", "date", "location", "retry-after", "vary", "warning", NULL};
  for (int i = 0; bad[i]; i++)
    if (name_is(name, n, bad[i], strlen(bad[i]))) return 1;
  return 0;
}

int lh_conn_write_trailer(lh_conn_t *c, const char *name, size_t nlen, const char *value,
                          size_t vlen) {
  if (c->writing != LH_WRITING_BODY) return LH_ECLOSED;
  if (!lh_field_ok(name, nlen, value, vlen)) return LH_EUSER_HEADER;
  if (c->enc.kind != LH_ENC_CHUNKED || trailer_forbidden(name, nlen)) return 0;
  if (c->role == LH_ROLE_SERVER && !c->te_trailers) return 0;
  int r;
  if (!c->enc.trailers) {
    if ((r = put(c, "0\r\n", 3))) return r;
    c->enc.trailers = 1;
  }
  return put_field(c, name, nlen, value, vlen);
}

int lh_conn_write_end(lh_conn_t *c) {
  int r = 0;
  if (c->writing != LH_WRITING_BODY) return LH_ECLOSED;
  switch (c->enc.kind) {
    case LH_ENC_LENGTH:
      if (c->enc.remaining) {
        c->error = LH_EUSER_BODY;
        lh_conn_close_write(c);
        return LH_EUSER_BODY;
      }
      break;
    case LH_ENC_CHUNKED:
      r = c->enc.trailers ? put(c, "\r\n", 2) : put(c, "0\r\n\r\n", 5);
      break;
    case LH_ENC_CLOSE:
      lh_conn_close_write(c);
      return 0;
    case LH_ENC_NONE:
      break;
  }
  if (r) return r;
  c->writing = LH_WRITING_KEEPALIVE;
  return 0;
}

int lh_conn_write_error(lh_conn_t *c, int status) {
  if (c->writing != LH_WRITING_INIT) {
    lh_conn_close(c);
    return LH_ECLOSED;
  }
  lh_conn_disable_keep_alive(c);
  c->minor = 1;
  c->head_method = 0;
  int r = lh_conn_head_begin(c, status);
  if (!r) r = lh_conn_head_end(c, 0);
  if (!r) r = lh_conn_write_end(c);
  lh_conn_close_read(c);
  c->writing = LH_WRITING_CLOSED;
  return r;
}

int lh_conn_try_keep_alive(lh_conn_t *c) {
  if (c->reading == LH_READING_KEEPALIVE && c->writing == LH_WRITING_KEEPALIVE) {
    if (c->ka == LH_KA_BUSY) {
      c->reading = LH_READING_INIT;
      c->writing = LH_WRITING_INIT;
      c->discarding = 0;
      ka_idle(c);
      c->upgrade = 0;
      c->connect = 0;
      c->head_method = 0;
      return 1;
    }
    lh_conn_close(c);
  } else if ((c->reading == LH_READING_CLOSED && c->writing == LH_WRITING_KEEPALIVE) ||
             (c->writing == LH_WRITING_CLOSED && c->reading == LH_READING_KEEPALIVE)) {
    lh_conn_close(c);
  }
  return 0;
}
