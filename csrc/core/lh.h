/* lhyper: shared types and error codes.
 * Everything here is free of libuv and Lua so the Conn state machine can be
 * built and tested alone. */
#ifndef LH_H
#define LH_H

#include <stddef.h>
#include <stdint.h>

/* Error codes live far below libuv's (which stop near -4100), so one int
 * carries either; lh_strerror falls back to the caller's table for the rest.
 *   XX(name, kind, what, message)
 * kind follows hyper's error.rs Kind, what its Parse detail. */
#define LH_ERRNO_MAP(XX)                                                        \
  XX(EPARSE_METHOD, "parse", "method", "invalid HTTP method")                   \
  XX(EPARSE_METHOD_UNKNOWN, "parse", "method", "unknown HTTP method")           \
  XX(EPARSE_URI, "parse", "uri", "invalid request target")                      \
  XX(EPARSE_URI_TOO_LONG, "parse", "uri_too_long", "request target too long")   \
  XX(EPARSE_VERSION, "parse", "version", "invalid HTTP version")                \
  XX(EPARSE_VERSION_H2, "parse", "version", "unsupported HTTP version")         \
  XX(EPARSE_HEADER, "parse", "header", "invalid header field")                  \
  XX(EPARSE_HOST, "parse", "header", "missing or repeated Host header")         \
  XX(EPARSE_TOO_LARGE, "parse", "too_large", "message head too large")          \
  XX(EPARSE_TOO_MANY, "parse", "too_large", "too many header fields")           \
  XX(EPARSE_CONTENT_LENGTH, "parse", "content_length", "invalid Content-Length")\
  XX(EPARSE_TE, "parse", "transfer_encoding", "invalid Transfer-Encoding")      \
  XX(EPARSE_TE_UNSUPPORTED, "parse", "transfer_encoding_unsupported",           \
     "unsupported transfer coding")                                             \
  XX(EPARSE_CHUNK, "parse", "chunk", "invalid chunked encoding")                \
  XX(EPARSE_CHUNK_EXT, "parse", "chunk_ext_too_large", "chunk extensions too large") \
  XX(EPARSE_STATUS, "parse", "status", "invalid response status")               \
  XX(EPARSE_INTERNAL, "parse", "internal", "malformed message")                 \
  XX(EINCOMPLETE, "incomplete", "", "connection closed before message completed") \
  XX(EUNEXPECTED, "unexpected_message", "", "received unexpected message")      \
  XX(EHEADER_TIMEOUT, "header_timeout", "", "timed out reading a message head") \
  XX(ETIMEOUT, "timeout", "", "operation timed out")                            \
  XX(EUSER_BODY, "user_body", "", "body does not match its declared length")    \
  XX(EUSER_HEADER, "user_service", "",                                          \
     "invalid response header (name or value has CR, LF, NUL or bad token)")    \
  XX(EUSER_STATUS, "user_service", "", "invalid response status")               \
  XX(EUSER_SERVICE, "user_service", "", "handler failed")                       \
  XX(EBODY_TOO_LARGE, "user_body", "", "body too large")                        \
  XX(ECANCELED, "canceled", "", "operation canceled")                           \
  XX(ECLOSED, "closed", "", "connection closed")                              \
  XX(EWS_PROTOCOL, "parse", "websocket", "WebSocket protocol error")           \
  XX(EWS_UTF8, "parse", "websocket_utf8", "invalid UTF-8 in a WebSocket text message") \
  XX(EWS_TOO_LARGE, "parse", "too_large", "WebSocket message too large")       \
  XX(EWS_DEFLATE, "parse", "websocket_deflate", "invalid compressed WebSocket message") \
  XX(EWS_HANDSHAKE, "parse", "websocket_handshake", "invalid WebSocket handshake") \
  XX(ETLS, "tls", "", "TLS failure")                                           \
  XX(ETLS_HANDSHAKE, "tls", "handshake", "TLS handshake failed")               \
  XX(ETLS_VERIFY, "tls", "verify", "TLS certificate verification failed")      \
  XX(ETLS_PLAIN_HTTP, "tls", "plain_http", "plain HTTP request sent to a TLS port") \
  XX(ETLS_CONFIG, "tls", "config", "invalid TLS configuration")

typedef enum {
  LH__ERR_BASE = -20000,
#define XX(name, kind, what, msg) LH_##name,
  LH_ERRNO_MAP(XX)
#undef XX
  LH__ERR_END
} lh_errno_t;

/* out of memory: the errno value, as libuv reports it on unix */
#define LH_ENOMEM (-12)

#define LH_IS_ERR(e) ((e) < LH__ERR_END && (e) > LH__ERR_BASE)

/* message, kind string and parse detail of one of our codes, NULL if not ours */
const char *lh_err_message(int err);
const char *lh_err_kind(int err);
const char *lh_err_what(int err);
const char *lh_err_name(int err);

/* a byte range relative to a base pointer kept by its owner */
typedef struct {
  uint32_t off;
  uint32_t len;
} lh_span_t;

typedef struct {
  lh_span_t name;
  lh_span_t value;
} lh_field_t;

typedef enum { LH_ROLE_SERVER = 0, LH_ROLE_CLIENT = 1 } lh_role_t;

#endif
