/* TLS as a transport beneath the Conn, over OpenSSL 3. One lh_tls_t is a
 * byte filter: ciphertext from the peer goes into a buffer the transport
 * fills (lh_tls_in_space, lh_tls_in_commit), ciphertext for the peer comes
 * out of a queue the transport drains (lh_tls_out); plaintext goes to the
 * Conn's read buffer (lh_tls_recv) and is taken from its write queue
 * (lh_tls_send). Nothing here knows sockets or the loop: a test joins a
 * client and a server with memcpy. Contexts (certificates, verification,
 * ticket keys, client session cache) are lh_tls_ctx_t. */
#ifndef LH_TLS_H
#define LH_TLS_H

#include "conn.h"

typedef struct lh_tls_ctx lh_tls_ctx_t;
typedef struct lh_tls lh_tls_t;

/* server: the context for the name a client asked for (SNI). Returns a
 * context holding a reference for the caller (it is released after use),
 * or NULL for the default one; *fail = 1 refuses the handshake. Called
 * from inside lh_tls_recv. */
typedef lh_tls_ctx_t *(*lh_tls_sni_fn)(void *arg, const char *name, int *fail);

/* ciphersuite lists when none is given: TLS 1.2 with forward secrecy and
 * AEAD only (ECDHE + AES-GCM / ChaCha20-Poly1305) */
#define LH_TLS_CIPHERS                                                          \
  "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                  \
  "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                  \
  "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

/* Zero-filled is a valid start (then: server needs cert and key). */
typedef struct {
  const char *cert;          /* PEM file path or PEM text (starts "-----BEGIN"): leaf first, then chain */
  const char *key;           /* PEM file path or PEM text */
  const char *ca;            /* client: PEM of the certificates to trust; NULL = the system store */
  const char *ciphers;       /* TLS 1.2 list in OpenSSL's syntax; NULL = LH_TLS_CIPHERS */
  const char *ciphersuites;  /* TLS 1.3 list; NULL = OpenSSL's */
  int min_version;           /* 12 or 13; 0 = 12 */
  int max_version;           /* 12 or 13; 0 = the highest */
  const unsigned char *alpn; /* protocols in wire format (length-prefixed); NULL = "http/1.1" */
  size_t alpn_len;
  const char *client_ca;     /* server: clients must present a certificate these PEM CAs signed */
  int no_verify;             /* client: do not check the peer's certificate or name */
  int no_tickets;            /* server: no session tickets */
  uint32_t ticket_rotation;  /* server: seconds each ticket key encrypts; 0 = 3600 */
  lh_tls_ctx_t *keys_from;   /* server: share this context's ticket keys (SNI, reload) */
} lh_tls_opts_t;

/* a context for role. returns 0, or a negative code (LH_ETLS_CONFIG with
 * the reason in err, err_len bytes at most, or LH_ENOMEM) */
int lh_tls_ctx_new(lh_role_t role, const lh_tls_opts_t *o, lh_tls_ctx_t **out, char *err,
                   size_t err_len);
/* contexts are shared by reference: each connection holds one */
void lh_tls_ctx_ref(lh_tls_ctx_t *c);
void lh_tls_ctx_unref(lh_tls_ctx_t *c);
lh_role_t lh_tls_ctx_role(const lh_tls_ctx_t *c);
/* server: the context for a name a client asks for comes from fn (see
 * lh_tls_sni_fn); NULL: this context's certificate for every name. arg
 * must stay valid while connections over c may still be in a handshake */
void lh_tls_ctx_set_sni(lh_tls_ctx_t *c, lh_tls_sni_fn fn, void *arg);

/* a connection over ctx. Client: name is the server's name (SNI, and what
 * the certificate must match unless verification is off; an IP address
 * is matched as one and sent without SNI), session the key under which its
 * sessions are kept for resumption (NULL: none). Server: both NULL.
 * returns 0 or LH_ENOMEM */
int lh_tls_new(lh_tls_ctx_t *ctx, const char *name, const char *session, lh_tls_t **out);
void lh_tls_free(lh_tls_t *t);

/* --- ciphertext in and out, for the transport --- */
/* room for bytes from the peer: returns its size (0 when the buffer is at
 * its bound: stop reading), -1 when out of memory */
long lh_tls_in_space(lh_tls_t *t, char **p);
void lh_tls_in_commit(lh_tls_t *t, size_t n);
/* the peer shut down its side of the connection */
void lh_tls_in_eof(lh_tls_t *t);
/* ciphertext waiting for the peer (handshake, records, alerts) */
lh_wq_t *lh_tls_out(lh_tls_t *t);
/* releases buffers while nothing is in them (an idle connection) */
void lh_tls_trim(lh_tls_t *t);
/* OpenSSL's record buffers go if nothing is in them (a connection whose
 * handler waits: they come back with the next record) */
void lh_tls_release(lh_tls_t *t);
/* from now on OpenSSL's record buffers go after each record, as they did
 * before lh_tls_trim could take them: for a stream that may wait for
 * hours between messages without the trim of an idle connection (an
 * upgraded one: WebSocket). Once; later calls do nothing */
void lh_tls_lean(lh_tls_t *t);

/* --- plaintext --- */
/* runs the handshake and decrypts what is buffered into c's read buffer,
 * as far as lh_conn_read_space allows; *n is the plaintext committed.
 * returns 0 (more ciphertext needed), 1 the peer closed (close_notify or
 * end of input), 2 c's buffer is full and more is waiting (call again once
 * it has room), or a negative code (LH_ETLS_*: the connection is done;
 * an alert, or the answer to a plain HTTP request, may wait in the out
 * queue and should be sent) */
int lh_tls_recv(lh_tls_t *t, lh_conn_t *c, size_t *n);
/* 1 when lh_tls_recv stopped at a full buffer with more to give */
int lh_tls_pending(const lh_tls_t *t);
/* encrypts plaintext from q into the out queue while the out queue holds
 * less than LH_TLS_OUT_HIGH (the rest stays in q: backpressure is q's);
 * nothing before the handshake is done. 0 or a negative code */
#define LH_TLS_OUT_HIGH (32 * 1024)
int lh_tls_send(lh_tls_t *t, lh_wq_t *q);
/* queues close_notify (once; only on a healthy, established connection) */
void lh_tls_close(lh_tls_t *t);

/* --- state --- */
int lh_tls_is_done(const lh_tls_t *t);        /* handshake complete */
int lh_tls_is_resumed(const lh_tls_t *t);     /* the session was resumed */
const char *lh_tls_version(const lh_tls_t *t);/* "TLSv1.3", ... */
const char *lh_tls_cipher(const lh_tls_t *t);
/* the protocol ALPN agreed on ("http/1.1"), NULL when none */
const char *lh_tls_alpn(const lh_tls_t *t, size_t *len);
/* server: the name the client asked for (SNI), NULL when none */
const char *lh_tls_servername(const lh_tls_t *t);
/* the message of the failure lh_tls_recv or lh_tls_send returned:
 * OpenSSL's reason ("certificate has expired", "wrong version number") */
const char *lh_tls_why(const lh_tls_t *t);

/* tests: the ticket keys' clock reads this (unix seconds) from now on;
 * 0 goes back to the real clock */
void lh_tls_clock_freeze(int64_t unix_seconds);

#endif
