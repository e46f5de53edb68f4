/* lhyper's HTTP/1 parser: bytes -> message head (RFC 9112 start line and
 * field lines, RFC 9110 field semantics), body bytes through decode.c, and
 * the trailer fields of a chunked body. Heads are parsed in place: spans
 * point into the caller's buffer. */
#ifndef LH_PARSE_H
#define LH_PARSE_H

#include "decode.h"
#include "lh.h"

#define LH_NO_LENGTH UINT64_MAX

/* the request methods lhyper knows: RFC 9110's, PATCH, WebDAV's and a few
 * more; any other token is answered 501 (RFC 9110 9.1) */
#define LH_METHOD_MAP(XX)                                                        \
  XX(DELETE, "DELETE") XX(GET, "GET") XX(HEAD, "HEAD") XX(POST, "POST")           \
  XX(PUT, "PUT") XX(CONNECT, "CONNECT") XX(OPTIONS, "OPTIONS") XX(TRACE, "TRACE") \
  XX(PATCH, "PATCH") XX(COPY, "COPY") XX(LOCK, "LOCK") XX(MKCOL, "MKCOL")         \
  XX(MOVE, "MOVE") XX(PROPFIND, "PROPFIND") XX(PROPPATCH, "PROPPATCH")            \
  XX(SEARCH, "SEARCH") XX(UNLOCK, "UNLOCK") XX(BIND, "BIND") XX(REBIND, "REBIND") \
  XX(UNBIND, "UNBIND") XX(ACL, "ACL") XX(REPORT, "REPORT")                        \
  XX(MKACTIVITY, "MKACTIVITY") XX(CHECKOUT, "CHECKOUT") XX(MERGE, "MERGE")        \
  XX(MSEARCH, "M-SEARCH") XX(NOTIFY, "NOTIFY") XX(SUBSCRIBE, "SUBSCRIBE")         \
  XX(UNSUBSCRIBE, "UNSUBSCRIBE") XX(PURGE, "PURGE") XX(MKCALENDAR, "MKCALENDAR")  \
  XX(LINK, "LINK") XX(UNLINK, "UNLINK") XX(SOURCE, "SOURCE") XX(QUERY, "QUERY")

typedef enum {
  LH_METHOD_NONE = 0, /* a response, or no head yet */
#define XX(name, str) LH_METHOD_##name,
  LH_METHOD_MAP(XX)
#undef XX
} lh_method_t;

/* A parsed head. Spans are relative to the first byte of the head; the bytes
 * stay in the read buffer until the head is consumed. */
typedef struct {
  uint32_t len;            /* bytes of the head, the empty line included */
  lh_span_t method;        /* request */
  lh_span_t target;        /* request */
  lh_span_t reason;        /* response */
  int status;              /* response */
  int method_id;           /* lh_method_t, request */
  uint8_t major, minor;    /* a request's 1.2 .. 1.9 reads as 1.1 (RFC 9112 2.3) */
  uint64_t content_length; /* LH_NO_LENGTH when absent */
  lh_field_t *fields;
  uint32_t nfields;
  uint8_t keep_alive;      /* version and Connection allow reuse */
  uint8_t expect_continue; /* Expect: 100-continue on a request */
  uint8_t chunked;
  uint8_t upgrade;         /* Connection: upgrade + Upgrade, or CONNECT */
  uint8_t has_body;        /* a body follows (length > 0, chunked, or close-delimited) */
  uint8_t close_delimited; /* response body runs to EOF */
  uint8_t te_trailers;     /* request: TE lists "trailers" (trailers may be sent) */
} lh_head_t;

typedef struct {
  uint32_t max_head;     /* bytes; a longer head is EPARSE_TOO_LARGE */
  uint32_t max_headers;  /* fields; more is EPARSE_TOO_MANY */
  uint32_t max_target;   /* bytes; a longer target is EPARSE_URI_TOO_LONG */
} lh_limits_t;

typedef enum {
  LH_PARSE_HEAD = 0,   /* between messages or inside a head */
  LH_PARSE_BODY,       /* head delivered, body (or trailers) being decoded */
  LH_PARSE_DONE        /* message complete; lh_parser_next starts the next */
} lh_parse_state_t;

/* what the fields of one head say about its framing and connection,
 * gathered field by field; cleared when a head begins */
typedef struct {
  uint16_t hosts;        /* Host field lines */
  uint16_t te;           /* Transfer-Encoding field lines */
  uint16_t te_items;     /* codings listed in them */
  uint16_t te_chunked;   /* of which "chunked" */
  uint8_t te_last_chunked;  /* the last coding listed is chunked */
  uint8_t host_bad;      /* a Host value that is not uri-host [ ":" port ] */
  uint8_t conn;          /* Connection options (parse.c's CONN_*) */
  uint8_t expect;        /* Expect: 100-continue */
  uint8_t upgrade;       /* an Upgrade field */
  uint8_t cl;            /* Content-Length field lines */
  uint8_t cl_bad;        /* one that is not 1*DIGIT, or differs from another */
  uint8_t framing;       /* Content-Length, Transfer-Encoding or Upgrade, or a bad Host */
  uint8_t te_trailers;   /* a TE field lists "trailers" */
  uint64_t length;       /* their value */
} lh_notes_t;

typedef struct {
  lh_role_t role;
  lh_parse_state_t state;
  lh_limits_t limits;
  lh_head_t head;
  uint32_t fields_cap;
  /* the head being read: set by lh_parser_head, cleared by lh_parser_next;
   * scan is 0 until the head's first byte was looked at, and all four are 0 then */
  uint32_t fed;            /* bytes of whole lines parsed (the next line starts here) */
  uint32_t scan;           /* bytes of the head checked so far (the line at fed is partial) */
  uint8_t rl_phase;        /* request line: which part the scan is in (parse.c RL_*) */
  uint8_t start_done;      /* the start line was parsed */
  lh_notes_t notes;
  int skip_body;           /* client: the response to HEAD has none; set per request */
  int slow_only;           /* every head through the line parser, no fast path
                            * (LHYPER_FAST_HEAD=0, tests) */
  int fast;                /* the last head was taken by the fast path (tests) */
  uint8_t host_len;        /* fast path: the last Host value found valid, to take */
  char host[24];           /* the next one alike without a walk (0: "", valid too) */
  lh_decoder_t dec;        /* the body's framing, set when a head with a body ends */
  int in_trailers;         /* the last chunk was read: trailer lines follow */
  /* trailers, copied out of the read buffer as they arrive (the body
   * around them is decoded in place and the buffer may move) */
  lh_field_t *tfields;
  uint32_t ntrailers, tfields_cap;
  char *tbytes;
  uint32_t tlen, tcap;
  uint32_t tline;          /* start of the trailer line being read, in tbytes */
} lh_parser_t;

int lh_parser_init(lh_parser_t *p, lh_role_t role, const lh_limits_t *limits);
void lh_parser_free(lh_parser_t *p);

/* parses the head that starts at `data` (len bytes buffered in all; the
 * first p->fed of them were taken before). returns 1 when p->head is
 * complete, 0 when more bytes are needed, or a negative LH_E* code. A
 * response's obs-fold is replaced with spaces in place (RFC 9112 5.2). */
int lh_parser_head(lh_parser_t *p, char *data, size_t len);

/* decodes body bytes of data[0..len) in place: on return the body bytes are
 * at *body, *body_len of them, and *consumed input bytes were used. returns
 * 1 when the message is complete (trailers, if any, are then in p->tfields),
 * 0 when more input is needed, or a negative LH_E* code */
int lh_parser_body(lh_parser_t *p, char *data, size_t len, size_t *consumed, char **body,
                   size_t *body_len);

/* the peer closed: ends a close-delimited body (1) or reports EINCOMPLETE */
int lh_parser_eof(lh_parser_t *p);

/* between messages: frees the trailer arrays and a field array larger
 * than usual; the usual one stays for the next head and goes back to a
 * per-thread pool with lh_parser_free */
void lh_parser_trim(lh_parser_t *p);

/* ready for the next message's head */
void lh_parser_next(lh_parser_t *p);

/* bytes of a length-delimited body not yet decoded (the decoder counts
 * them down); LH_NO_LENGTH for a chunked or close-delimited body, or none */
static inline uint64_t lh_parser_body_left(const lh_parser_t *p) {
  if (p->state != LH_PARSE_BODY || p->dec.kind != LH_DEC_LENGTH) return LH_NO_LENGTH;
  return p->dec.remaining;
}

/* RFC 9110 5.6.2 tchar */
extern const char lh_tchar[256];
static inline int lh_is_tchar(unsigned char c) { return lh_tchar[c]; }

/* bytes no field value may hold, whoever wrote it: CR, LF and NUL (RFC 9110 5.5) */
extern const char lh_value_bad[256];

/* a field as it may go on the wire: a non-empty token name and a value
 * without CR, LF or NUL; every byte checked, no early exit */
static inline int lh_field_ok(const char *name, size_t nlen, const char *value, size_t vlen) {
  int bad = nlen == 0;
  for (size_t i = 0; i < nlen; i++) bad |= !lh_tchar[(unsigned char)name[i]];
  for (size_t i = 0; i < vlen; i++) bad |= lh_value_bad[(unsigned char)value[i]];
  return !bad;
}

/* case-insensitive comparison of a field name */
int lh_name_eq(const char *base, lh_span_t s, const char *lower_name, size_t n);

/* 1 if `token` (lower-case) appears in the comma-separated list v */
int lh_list_has(const char *v, size_t n, const char *token);

/* RFC 9110 7.2 / RFC 3986 3.2.2: uri-host [ ":" port ]; with need_port,
 * the authority-form of CONNECT (RFC 9112 3.2.3): uri-host ":" port */
int lh_host_ok(const char *v, size_t n, int need_port);

#endif
