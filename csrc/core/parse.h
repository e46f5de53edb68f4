/* llhttp wrapper: bytes -> message head, body bytes and trailers.
 * llhttp owns tokens and chunk framing; this file owns head semantics
 * (limits, keep-alive, Expect, Transfer-Encoding rules) and header storage. */
#ifndef LH_PARSE_H
#define LH_PARSE_H

#include "lh.h"
#include "llhttp.h"

#define LH_NO_LENGTH UINT64_MAX

/* A parsed head. Spans are relative to the first byte of the head; the bytes
 * stay in the read buffer until the head is consumed. */
typedef struct {
  uint32_t len;            /* bytes of the head, CRLFCRLF included */
  lh_span_t method;        /* request */
  lh_span_t target;        /* request */
  lh_span_t reason;        /* response */
  int status;              /* response */
  int method_id;           /* llhttp_method_t, request */
  uint8_t major, minor;
  uint64_t content_length; /* LH_NO_LENGTH when absent */
  lh_field_t *fields;
  uint32_t nfields;
  unsigned keep_alive : 1;      /* version and Connection allow reuse */
  unsigned expect_continue : 1; /* Expect: 100-continue on a request */
  unsigned chunked : 1;
  unsigned upgrade : 1;         /* Connection: upgrade + Upgrade, or CONNECT */
  unsigned has_body : 1;        /* a body follows (length > 0, chunked, or close-delimited) */
  unsigned close_delimited : 1; /* response body runs to EOF */
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

typedef struct {
  llhttp_t http;
  lh_role_t role;
  lh_parse_state_t state;
  lh_limits_t limits;
  lh_head_t head;
  uint32_t fields_cap;
  uint32_t fed;            /* bytes of the current head given to llhttp so far */
  const char *base;        /* start of the current head during an execute */
  int err;                 /* our code set by a callback, 0 otherwise */
  int last;                /* last data callback: 0 none, 1 field, 2 value */
  int in_trailers;         /* header callbacks now describe trailer fields */
  int skip_body;           /* client: the response to HEAD or 1xx/204/304 has none */
  int slow_only;           /* tests: every head through llhttp, no fast path */
  int http_used;           /* llhttp saw bytes of the current message */
  char *body_w;            /* in-place body decoding: next write position */
  /* trailers, copied out of the read buffer when the message completes */
  lh_field_t *tfields;
  uint32_t ntrailers;
  char *tbytes;
  uint32_t tlen, tcap;
} lh_parser_t;

int lh_parser_init(lh_parser_t *p, lh_role_t role, const lh_limits_t *limits);
void lh_parser_free(lh_parser_t *p);

/* feeds the head that starts at `data` (len bytes buffered in all; the first
 * p->fed of them were seen before). returns 1 when p->head is complete,
 * 0 when more bytes are needed, or a negative LH_E* code */
int lh_parser_head(lh_parser_t *p, const char *data, size_t len);

/* decodes body bytes of data[0..len) in place: on return the body bytes are
 * data[0..*body_len) and *consumed input bytes were used. returns 1 when the
 * message is complete (trailers, if any, are then in p->tfields), 0 when more
 * input is needed, or a negative LH_E* code */
int lh_parser_body(lh_parser_t *p, char *data, size_t len, size_t *consumed,
                   size_t *body_len);

/* the peer closed: ends a close-delimited body (1) or reports EINCOMPLETE */
int lh_parser_eof(lh_parser_t *p);

/* between messages: frees the trailer arrays and a field array larger
 * than usual; the usual one stays for the next head and goes back to a
 * per-thread pool with lh_parser_free */
void lh_parser_trim(lh_parser_t *p);

/* ready for the next message's head */
void lh_parser_next(lh_parser_t *p);

/* bytes of a length-delimited body not yet decoded (llhttp counts them
 * down); LH_NO_LENGTH for a chunked or close-delimited body, or none */
static inline uint64_t lh_parser_body_left(const lh_parser_t *p) {
  if (p->state != LH_PARSE_BODY || p->head.chunked || p->head.content_length == LH_NO_LENGTH)
    return LH_NO_LENGTH;
  return p->http.content_length;
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

#endif
