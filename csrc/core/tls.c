/* TLS over OpenSSL 3 as a byte filter (see tls.h). OpenSSL reads and
 * writes through a BIO of our own whose ends are the connection's
 * ciphertext buffers (as h2o does), so nothing is copied through a memory
 * BIO pair and nothing here touches a socket.
 *
 * Nothing is registered with OpenSSL for the life of the process (no
 * ex_data index, no shared BIO method): the module may be unloaded with
 * its Lua state while libcrypto stays. Each context owns its BIO method;
 * a connection holds references to the contexts its callbacks reach (its
 * own, and the one SNI switched it to), so they outlive its SSL. */
#include "tls.h"
#include "tuning.h"

#include <arpa/inet.h>
#include <limits.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#if OPENSSL_VERSION_NUMBER < 0x30000000L
#error "lhyper needs OpenSSL 3 (Debian: libssl-dev)"
#endif

#define IN_FIRST 4096        /* the first read of a connection, a pooled block */
#define IN_READ (16 * 1024)  /* a read once a connection moves more: a record */
#define IN_MAX (64 * 1024)   /* ciphertext held before reading stops */
#define SESS_MAX 64          /* client: hosts whose session is kept for resumption */
#define DEFAULT_ROTATION 3600

/* --- ticket keys: derived, not stored ---
 * Each period of `period` seconds has its keys, derived with HMAC-SHA256
 * from a random secret and the period's number. A ticket is made with the
 * current period's keys and accepted under those of the current and the
 * previous period (renewed then), so one lives at most two periods. No
 * timer rotates anything, and processes that share the secret (workers
 * forked after the server was made) agree on the keys at all times. */
typedef struct {
  unsigned char name[16]; /* period number (8 bytes, big-endian), then 8 bytes of MAC */
  unsigned char aes[32];
  unsigned char mac[32];
} tkey_t;

typedef struct {
  int refs;
  uint32_t period;
  int64_t epoch;          /* period of cur; -1 before the first ticket */
  tkey_t cur, prev;
  unsigned char secret[32];
} tkeys_t;

typedef struct {
  char *key;              /* "host:port/name", malloc */
  SSL_SESSION *s;
  uint64_t used;
} sess_t;

struct lh_tls_ctx {
  int refs;               /* lh_tls_ctx_ref/unref; freed at 0 */
  SSL_CTX *ssl;
  BIO_METHOD *bio;        /* our BIO (see bio_read, bio_write) for its connections */
  lh_role_t role;
  unsigned verify : 1;    /* client: peer certificate and name checked */
  tkeys_t *keys;          /* server with tickets; shared by a server's contexts */
  lh_tls_sni_fn sni;
  void *sni_arg;
  unsigned char *alpn;    /* wire format, malloc */
  size_t alpn_len;
  sess_t sess[SESS_MAX];  /* client: the latest session per host */
  uint64_t sess_clock;
};

struct lh_tls {
  SSL *ssl;
  lh_tls_ctx_t *ctx;      /* a reference held */
  lh_tls_ctx_t *sni_ctx;  /* server: the context SNI switched to, a reference; NULL if none */
  lh_rbuf_t in;           /* ciphertext not yet taken by OpenSSL */
  lh_wq_t out;            /* ciphertext for the peer */
  size_t in_want;         /* size of the next read: grows while reads fill it */
  char *session;          /* client: session cache key, NULL for none */
  unsigned in_eof : 1;    /* the peer shut down its side */
  unsigned seen : 1;      /* a first byte arrived and was looked at */
  unsigned done : 1;      /* handshake complete */
  unsigned failed : 1;    /* lh_tls_recv or lh_tls_send failed: nothing more */
  unsigned shut : 1;      /* close_notify queued */
  unsigned more : 1;      /* recv stopped at a full read buffer with more waiting */
  unsigned lean : 1;      /* OpenSSL's buffers released after each record (lh_tls_lean) */
  char why[200];
};

/* OpenSSL's error queue is emptied before each call whose failure is read
 * through SSL_get_error (a stale entry would read as this call's). Most
 * of the time it is empty already, and ERR_clear_error wipes all its
 * slots whatever they hold (some 800 instructions, a tenth of a
 * keep-alive request's): it runs only when there is something to clear */
static inline void err_reset(void) {
  if (ERR_peek_error()) ERR_clear_error();
}

/* --- process-wide: the type number of our BIO (a number, nothing to free) --- */

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int bio_type;
static int64_t frozen_clock;

static int64_t clock_now(void) { return frozen_clock ? frozen_clock : (int64_t)time(NULL); }
void lh_tls_clock_freeze(int64_t unix_seconds) { frozen_clock = unix_seconds; }

static void keys_unref(tkeys_t *k) {
  if (!k || --k->refs > 0) return;
  OPENSSL_cleanse(k, sizeof *k);
  free(k);
}

static void ctx_free(lh_tls_ctx_t *x) {
  SSL_CTX_free(x->ssl);
  BIO_meth_free(x->bio);
  keys_unref(x->keys);
  free(x->alpn);
  for (int i = 0; i < SESS_MAX; i++) {
    free(x->sess[i].key);
    SSL_SESSION_free(x->sess[i].s);
  }
  free(x);
}

static int bio_write(BIO *b, const char *p, int n) {
  lh_tls_t *t = BIO_get_data(b);
  BIO_clear_retry_flags(b);
  if (n <= 0) return 0;
  if (lh_wq_append(&t->out, p, (size_t)n)) return -1;
  return n;
}

static int bio_read(BIO *b, char *p, int n) {
  lh_tls_t *t = BIO_get_data(b);
  BIO_clear_retry_flags(b);
  size_t avail = lh_rbuf_avail(&t->in);
  if (avail == 0) {
    if (t->in_eof) return 0;
    BIO_set_retry_read(b);
    return -1;
  }
  if (n <= 0) return 0;
  if ((size_t)n > avail) n = (int)avail;
  memcpy(p, lh_rbuf_data(&t->in), (size_t)n);
  t->in.off += (size_t)n;
  return n;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr) {
  (void)num, (void)ptr;
  lh_tls_t *t = BIO_get_data(b);
  switch (cmd) {
    case BIO_CTRL_FLUSH: return 1;
    case BIO_CTRL_PENDING: return t ? (long)lh_rbuf_avail(&t->in) : 0;
    case BIO_CTRL_EOF: return t && t->in_eof && lh_rbuf_avail(&t->in) == 0;
    default: return 0;
  }
}

static int bio_create(BIO *b) {
  BIO_set_init(b, 1);
  return 1;
}

static void init_once(void) { bio_type = BIO_get_new_index() | BIO_TYPE_SOURCE_SINK; }

static BIO_METHOD *bio_method(void) {
  BIO_METHOD *m = BIO_meth_new(bio_type, "lhyper");
  if (m && BIO_meth_set_write(m, bio_write) && BIO_meth_set_read(m, bio_read) &&
      BIO_meth_set_ctrl(m, bio_ctrl) && BIO_meth_set_create(m, bio_create))
    return m;
  BIO_meth_free(m);
  return NULL;
}

/* --- loading certificates and keys: a path, or PEM text --- */

static int is_pem(const char *s) { return strstr(s, "-----BEGIN") != NULL; }

/* never ask for a passphrase on the terminal: an encrypted key fails */
static int no_pass_cb(char *buf, int size, int rw, void *u) {
  (void)buf, (void)size, (void)rw, (void)u;
  return 0;
}

/* err := "<what> <where>: <OpenSSL's reason>" */
static int config_error(char *err, size_t len, const char *what, const char *src) {
  unsigned long e = ERR_peek_last_error();
  const char *r = e ? ERR_reason_error_string(e) : NULL;
  const char *where = !src ? "" : is_pem(src) ? " (PEM text)" : src;
  if (err && len) snprintf(err, len, "%s%s%s: %s", what, *where == ' ' || !*where ? "" : " ",
                           where, r ? r : "invalid");
  ERR_clear_error();
  return LH_ETLS_CONFIG;
}

/* the end of a PEM stream reads as an error: not one */
static void clear_pem_end(void) {
  unsigned long e = ERR_peek_last_error();
  if (ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE) ERR_clear_error();
}

static int use_cert(SSL_CTX *c, const char *s) {
  if (!is_pem(s)) return SSL_CTX_use_certificate_chain_file(c, s) == 1;
  BIO *b = BIO_new_mem_buf(s, -1);
  if (!b) return 0;
  X509 *x = PEM_read_bio_X509_AUX(b, NULL, no_pass_cb, NULL);
  int ok = x && SSL_CTX_use_certificate(c, x) == 1 && SSL_CTX_clear_chain_certs(c) == 1;
  X509_free(x);
  while (ok && (x = PEM_read_bio_X509(b, NULL, no_pass_cb, NULL))) {
    if (SSL_CTX_add0_chain_cert(c, x) != 1) {
      X509_free(x);
      ok = 0;
    }
  }
  if (ok) clear_pem_end();
  BIO_free(b);
  return ok;
}

static int use_key(SSL_CTX *c, const char *s) {
  if (!is_pem(s)) return SSL_CTX_use_PrivateKey_file(c, s, SSL_FILETYPE_PEM) == 1;
  BIO *b = BIO_new_mem_buf(s, -1);
  if (!b) return 0;
  EVP_PKEY *k = PEM_read_bio_PrivateKey(b, NULL, no_pass_cb, NULL);
  int ok = k && SSL_CTX_use_PrivateKey(c, k) == 1;
  EVP_PKEY_free(k);
  BIO_free(b);
  return ok;
}

/* trusted certificates: a PEM file, a directory of hashed names, or PEM text */
static int load_ca(SSL_CTX *c, const char *s) {
  if (!is_pem(s)) {
    struct stat st;
    if (stat(s, &st) == 0 && S_ISDIR(st.st_mode)) return SSL_CTX_load_verify_dir(c, s) == 1;
    return SSL_CTX_load_verify_file(c, s) == 1;
  }
  BIO *b = BIO_new_mem_buf(s, -1);
  if (!b) return 0;
  X509_STORE *store = SSL_CTX_get_cert_store(c);
  X509 *x;
  int n = 0, ok = 1;
  while (ok && (x = PEM_read_bio_X509(b, NULL, no_pass_cb, NULL))) {
    ok = X509_STORE_add_cert(store, x) == 1;
    X509_free(x);
    n++;
  }
  if (ok && n) clear_pem_end();
  BIO_free(b);
  return ok && n > 0;
}

/* --- session tickets (server) --- */

static int hmac(const unsigned char *key, const char *label, int64_t epoch, unsigned char out[32]) {
  unsigned char msg[64];
  size_t n = strlen(label);
  memcpy(msg, label, n);
  for (int i = 0; i < 8; i++) msg[n + i] = (unsigned char)((uint64_t)epoch >> (56 - 8 * i));
  size_t olen = 0;
  return EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, key, 32, msg, n + 8, out, 32, &olen) &&
         olen == 32;
}

static int derive(const tkeys_t *k, int64_t epoch, tkey_t *out) {
  unsigned char tag[32];
  if (!hmac(k->secret, "lhyper ticket aes", epoch, out->aes) ||
      !hmac(k->secret, "lhyper ticket mac", epoch, out->mac) ||
      !hmac(k->secret, "lhyper ticket name", epoch, tag))
    return 0;
  for (int i = 0; i < 8; i++) out->name[i] = (unsigned char)((uint64_t)epoch >> (56 - 8 * i));
  memcpy(out->name + 8, tag, 8);
  return 1;
}

/* brings the current and previous keys to the period of now */
static int keys_update(tkeys_t *k) {
  int64_t e = clock_now() / k->period;
  if (e == k->epoch) return 1;
  if (k->epoch >= 0 && e == k->epoch + 1) k->prev = k->cur;
  else if (!derive(k, e - 1, &k->prev)) return 0;
  if (!derive(k, e, &k->cur)) return 0;
  k->epoch = e;
  return 1;
}

static int ticket_mac_key(EVP_MAC_CTX *h, unsigned char *key) {
  OSSL_PARAM p[3];
  p[0] = OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, key, 32);
  p[1] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
  p[2] = OSSL_PARAM_construct_end();
  return EVP_MAC_CTX_set_params(h, p);
}

/* OpenSSL's ticket key callback: enc 1 makes a ticket (1 done, -1 error);
 * enc 0 opens one: 1 good, 2 good and to be renewed, 0 unknown key */
static int ticket_cb(SSL *s, unsigned char name[16], unsigned char *iv, EVP_CIPHER_CTX *ectx,
                     EVP_MAC_CTX *hctx, int enc) {
  lh_tls_t *t = SSL_get_app_data(s);
  tkeys_t *k = t ? t->ctx->keys : NULL; /* the keys of the context it began with */
  if (!k || !keys_update(k)) return enc ? -1 : 0;
  if (enc) {
    memcpy(name, k->cur.name, 16);
    if (RAND_bytes(iv, EVP_MAX_IV_LENGTH) != 1 ||
        !EVP_EncryptInit_ex(ectx, EVP_aes_256_cbc(), NULL, k->cur.aes, iv) ||
        !ticket_mac_key(hctx, k->cur.mac))
      return -1;
    return 1;
  }
  tkey_t *key = !memcmp(name, k->cur.name, 16) ? &k->cur
              : !memcmp(name, k->prev.name, 16) ? &k->prev : NULL;
  if (!key) return 0;
  if (!ticket_mac_key(hctx, key->mac) ||
      !EVP_DecryptInit_ex(ectx, EVP_aes_256_cbc(), NULL, key->aes, iv))
    return -1;
  /* a TLS 1.3 client uses a ticket once (RFC 8446 C.4): it gets a new one
   * with each resumption, as with a key about to go */
  return key == &k->cur && SSL_version(s) < TLS1_3_VERSION ? 1 : 2;
}

static tkeys_t *keys_new(uint32_t period) {
  tkeys_t *k = calloc(1, sizeof *k);
  if (!k) return NULL;
  k->refs = 1;
  k->period = period ? period : DEFAULT_ROTATION;
  k->epoch = -1;
  if (RAND_bytes(k->secret, sizeof k->secret) != 1) {
    free(k);
    return NULL;
  }
  return k;
}

/* --- server callbacks: SNI and ALPN --- */

static int servername_cb(SSL *s, int *alert, void *arg) {
  lh_tls_ctx_t *x = arg;
  const char *name = SSL_get_servername(s, TLSEXT_NAMETYPE_host_name);
  if (!name || !x->sni) return SSL_TLSEXT_ERR_OK;
  int fail = 0;
  lh_tls_ctx_t *y = x->sni(x->sni_arg, name, &fail);
  if (fail) {
    if (y) lh_tls_ctx_unref(y);
    *alert = SSL_AD_UNRECOGNIZED_NAME;
    return SSL_TLSEXT_ERR_ALERT_FATAL;
  }
  if (y) {
    lh_tls_t *t = SSL_get_app_data(s);
    SSL_CTX *set = y->role == LH_ROLE_SERVER && t ? SSL_set_SSL_CTX(s, y->ssl) : NULL;
    if (!set) {
      lh_tls_ctx_unref(y);
      *alert = SSL_AD_INTERNAL_ERROR;
      return SSL_TLSEXT_ERR_ALERT_FATAL;
    }
    /* its callbacks (ALPN) now run with y: kept until the connection goes
     * (a second client hello, after a retry request, asks again) */
    if (t->sni_ctx) lh_tls_ctx_unref(t->sni_ctx);
    t->sni_ctx = y;
  }
  return SSL_TLSEXT_ERR_OK;
}

/* the first of our protocols the client offers; none in common: no ALPN */
static int alpn_cb(SSL *s, const unsigned char **out, unsigned char *outlen,
                   const unsigned char *in, unsigned int inlen, void *arg) {
  (void)s;
  lh_tls_ctx_t *x = arg;
  unsigned char *sel = NULL;
  if (SSL_select_next_proto(&sel, outlen, x->alpn, (unsigned)x->alpn_len, in, inlen) !=
      OPENSSL_NPN_NEGOTIATED)
    return SSL_TLSEXT_ERR_NOACK;
  *out = sel;
  return SSL_TLSEXT_ERR_OK;
}

/* --- client session cache: the latest session per host --- */

static sess_t *sess_find(lh_tls_ctx_t *x, const char *key) {
  for (int i = 0; i < SESS_MAX; i++)
    if (x->sess[i].key && !strcmp(x->sess[i].key, key)) return &x->sess[i];
  return NULL;
}

/* keeps sess (a reference handed over) as the latest for key; 0 when out of memory */
static int sess_store(lh_tls_ctx_t *x, const char *key, SSL_SESSION *sess) {
  sess_t *e = sess_find(x, key);
  if (!e) {
    /* a free slot, else the least recently used */
    e = &x->sess[0];
    for (int i = 0; i < SESS_MAX && e->key; i++)
      if (!x->sess[i].key || x->sess[i].used < e->used) e = &x->sess[i];
    char *k = strdup(key);
    if (!k) return 0;
    free(e->key);
    SSL_SESSION_free(e->s);
    e->key = k;
    e->s = NULL;
  }
  SSL_SESSION_free(e->s);
  e->s = sess;
  e->used = ++x->sess_clock;
  return 1;
}

static int new_session_cb(SSL *s, SSL_SESSION *sess) {
  lh_tls_t *t = SSL_get_app_data(s);
  return t && t->session && sess_store(t->ctx, t->session, sess);
}

/* a TLS 1.2 client that resumed and got a new ticket is not told through
 * new_session_cb: keep the connection's session when it changed */
static void sess_after_handshake(lh_tls_t *t) {
  if (!t->session || !SSL_session_reused(t->ssl)) return;
  sess_t *e = sess_find(t->ctx, t->session);
  SSL_SESSION *cur = SSL_get1_session(t->ssl);
  if (!cur || (e && e->s == cur) || !sess_store(t->ctx, t->session, cur)) SSL_SESSION_free(cur);
}

/* --- contexts --- */

static const unsigned char http11[] = "\x08http/1.1";

int lh_tls_ctx_new(lh_role_t role, const lh_tls_opts_t *o, lh_tls_ctx_t **out, char *err,
                   size_t err_len) {
  pthread_once(&once, init_once);
  ERR_clear_error();
  lh_tls_ctx_t *x = calloc(1, sizeof *x);
  if (!x) return LH_ENOMEM;
  x->refs = 1;
  x->role = role;
  SSL_CTX *c = x->ssl =
      SSL_CTX_new(role == LH_ROLE_SERVER ? TLS_server_method() : TLS_client_method());
  if (!c || !(x->bio = bio_method())) {
    ctx_free(x);
    ERR_clear_error();
    return LH_ENOMEM;
  }
  int r = 0;
  const unsigned char *alpn = o->alpn ? o->alpn : http11;
  size_t alpn_len = o->alpn ? o->alpn_len : sizeof http11 - 1;
  if (!(x->alpn = malloc(alpn_len ? alpn_len : 1))) r = LH_ENOMEM;
  else {
    memcpy(x->alpn, alpn, alpn_len);
    x->alpn_len = alpn_len;
  }
  SSL_CTX_set_min_proto_version(c, o->min_version == 13 ? TLS1_3_VERSION : TLS1_2_VERSION);
  if (o->max_version == 12) SSL_CTX_set_max_proto_version(c, TLS1_2_VERSION);
  /* renegotiation is a DoS lever and HTTP/1.1 over TLS 1.2 has no need
   * of it; a peer that closes without close_notify is at its end (RFC
   * 9112 9.8 leaves incomplete closes to the framing) */
  SSL_CTX_set_options(c, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                             SSL_OP_IGNORE_UNEXPECTED_EOF |
                             (role == LH_ROLE_SERVER ? SSL_OP_CIPHER_SERVER_PREFERENCE : 0));
  SSL_CTX_set_default_passwd_cb(c, no_pass_cb);
  if (!r && SSL_CTX_set_cipher_list(c, o->ciphers ? o->ciphers : LH_TLS_CIPHERS) != 1)
    r = config_error(err, err_len, "ciphers", NULL);
  if (!r && o->ciphersuites && SSL_CTX_set_ciphersuites(c, o->ciphersuites) != 1)
    r = config_error(err, err_len, "ciphersuites", NULL);
  if (!r && (o->cert != NULL) != (o->key != NULL)) {
    if (err && err_len) snprintf(err, err_len, "cert and key go together: one is missing");
    r = LH_ETLS_CONFIG;
  }
  if (!r && role == LH_ROLE_SERVER && !o->cert) {
    if (err && err_len) snprintf(err, err_len, "a server needs cert and key");
    r = LH_ETLS_CONFIG;
  }
  if (!r && o->cert && !use_cert(c, o->cert))
    r = config_error(err, err_len, "cannot load certificate", o->cert);
  if (!r && o->key && !use_key(c, o->key)) r = config_error(err, err_len, "cannot load key", o->key);
  if (!r && o->cert && SSL_CTX_check_private_key(c) != 1)
    r = config_error(err, err_len, "key does not match certificate", o->cert);
  if (!r && role == LH_ROLE_SERVER) {
    SSL_CTX_set_alpn_select_cb(c, alpn_cb, x);
    SSL_CTX_set_tlsext_servername_callback(c, servername_cb);
    SSL_CTX_set_tlsext_servername_arg(c, x);
    /* stateless resumption only: tickets under our keys, no session
     * cache in each process */
    SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_session_id_context(c, (const unsigned char *)"lhyper", 6);
    if (o->client_ca) {
      STACK_OF(X509_NAME) *names = NULL;
      if (!load_ca(c, o->client_ca)) r = config_error(err, err_len, "cannot load client_ca", o->client_ca);
      else if (!is_pem(o->client_ca) && (names = SSL_load_client_CA_file(o->client_ca)))
        SSL_CTX_set_client_CA_list(c, names);
      SSL_CTX_set_verify(c, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    }
    if (o->no_tickets) {
      SSL_CTX_set_options(c, SSL_OP_NO_TICKET);
      SSL_CTX_set_num_tickets(c, 0);
    } else {
      lh_tls_ctx_t *from = o->keys_from;
      if (from && from->keys) {
        x->keys = from->keys;
        x->keys->refs++;
      } else if (!(x->keys = keys_new(o->ticket_rotation))) {
        r = LH_ENOMEM;
      }
      if (!r) SSL_CTX_set_tlsext_ticket_key_evp_cb(c, ticket_cb);
      /* the lifetime hint a client gets: a ticket is good for at least one
       * period (made under the current key, taken under the next one) */
      if (!r) SSL_CTX_set_timeout(c, (long)x->keys->period);
    }
  }
  if (!r && role == LH_ROLE_CLIENT) {
    x->verify = !o->no_verify;
    SSL_CTX_set_verify(c, x->verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
    if (o->ca) {
      if (!load_ca(c, o->ca)) r = config_error(err, err_len, "cannot load ca", o->ca);
    } else if (x->verify && SSL_CTX_set_default_verify_paths(c) != 1) {
      r = config_error(err, err_len, "cannot load the system's trusted certificates", NULL);
    }
    if (!r && SSL_CTX_set_alpn_protos(c, x->alpn, (unsigned)x->alpn_len) != 0) r = LH_ENOMEM;
    SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(c, new_session_cb);
  }
  ERR_clear_error();
  if (r) {
    ctx_free(x);
    return r;
  }
  *out = x;
  return 0;
}

void lh_tls_ctx_ref(lh_tls_ctx_t *c) { c->refs++; }
void lh_tls_ctx_unref(lh_tls_ctx_t *c) {
  if (--c->refs == 0) ctx_free(c);
}
lh_role_t lh_tls_ctx_role(const lh_tls_ctx_t *c) { return c->role; }

void lh_tls_ctx_set_sni(lh_tls_ctx_t *c, lh_tls_sni_fn fn, void *arg) {
  c->sni = fn;
  c->sni_arg = arg;
}

/* --- connections --- */

static int is_ip(const char *s) {
  unsigned char b[16];
  return inet_pton(AF_INET, s, b) == 1 || inet_pton(AF_INET6, s, b) == 1;
}

static int client_setup(lh_tls_t *t, const char *name, const char *session) {
  SSL *s = t->ssl;
  SSL_set_connect_state(s);
  if (name && *name) {
    if (is_ip(name)) {
      /* RFC 6066 3: no literal addresses in SNI; the certificate must
       * name the address itself */
      if (t->ctx->verify && X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(s), name) != 1) return 0;
    } else {
      if (SSL_set_tlsext_host_name(s, name) != 1) return 0;
      if (t->ctx->verify) {
        SSL_set_hostflags(s, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        if (SSL_set1_host(s, name) != 1) return 0;
      }
    }
  }
  if (session) {
    if (!(t->session = strdup(session))) return 0;
    sess_t *e = sess_find(t->ctx, session);
    if (e && e->s && SSL_SESSION_is_resumable(e->s)) {
      e->used = ++t->ctx->sess_clock;
      SSL_set_session(s, e->s);
    }
  }
  return 1;
}

int lh_tls_new(lh_tls_ctx_t *ctx, const char *name, const char *session, lh_tls_t **out) {
  lh_tls_t *t = calloc(1, sizeof *t);
  if (!t) return LH_ENOMEM;
  t->ctx = ctx;
  lh_tls_ctx_ref(ctx);
  t->in_want = IN_FIRST;
  BIO *b = NULL;
  t->ssl = SSL_new(ctx->ssl);
  if (t->ssl) b = BIO_new(ctx->bio);
  if (!b) {
    lh_tls_free(t);
    ERR_clear_error();
    return LH_ENOMEM;
  }
  BIO_set_data(b, t);
  SSL_set_bio(t->ssl, b, b);
  SSL_set_app_data(t->ssl, t);
  /* OpenSSL's record buffers (some 17 KiB in, 17 KiB out): kept from one
   * record to the next while the connection is in use, released by
   * lh_tls_trim when it goes idle; or, switch off, released after each
   * record (a malloc and free of each per request) */
  if (!lh_tuning.tls_keep_buffers) lh_tls_lean(t);
  /* OpenSSL takes all the ciphertext there is in one BIO read, not a
   * record's header and then its body */
  if (lh_tuning.tls_one_read) SSL_set_read_ahead(t->ssl, 1);
  int ok = 1;
  if (ctx->role == LH_ROLE_SERVER) SSL_set_accept_state(t->ssl);
  else ok = client_setup(t, name, session);
  ERR_clear_error();
  if (!ok) {
    lh_tls_free(t);
    return LH_ENOMEM;
  }
  *out = t;
  return 0;
}

void lh_tls_free(lh_tls_t *t) {
  if (!t) return;
  /* OpenSSL makes the session of a connection freed without close_notify
   * unusable for resumption; one that ended well keeps it (HTTP closes
   * idle connections without a word) */
  if (t->ssl && t->done && !t->failed) SSL_set_shutdown(t->ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
  SSL_free(t->ssl); /* and the BIO */
  lh_rbuf_free(&t->in);
  lh_wq_free(&t->out);
  free(t->session);
  if (t->sni_ctx) lh_tls_ctx_unref(t->sni_ctx);
  lh_tls_ctx_unref(t->ctx);
  free(t);
}

long lh_tls_in_space(lh_tls_t *t, char **p) {
  long n = lh_rbuf_reserve(&t->in, t->in_want, IN_MAX);
  if (n > 0) *p = t->in.base + t->in.len;
  return n;
}

void lh_tls_in_commit(lh_tls_t *t, size_t n) {
  /* a read that filled what it was offered: the next gets a record's room */
  if (n >= t->in.cap - t->in.len && t->in_want < IN_READ) t->in_want = IN_READ;
  t->in.len += n;
}

void lh_tls_lean(lh_tls_t *t) {
  if (t->lean) return;
  t->lean = 1;
  SSL_set_mode(t->ssl, SSL_MODE_RELEASE_BUFFERS);
  if (!SSL_has_pending(t->ssl)) SSL_free_buffers(t->ssl);
}

void lh_tls_in_eof(lh_tls_t *t) { t->in_eof = 1; }
lh_wq_t *lh_tls_out(lh_tls_t *t) { return &t->out; }

void lh_tls_release(lh_tls_t *t) {
  /* not while OpenSSL holds input (part of a record, or plaintext not yet
   * taken, which points into its buffer): kept until the next call */
  if (!t->lean && !SSL_has_pending(t->ssl)) SSL_free_buffers(t->ssl);
}

void lh_tls_trim(lh_tls_t *t) {
  lh_tls_release(t);
  lh_rbuf_trim(&t->in, 0);
  if (lh_wq_pending(&t->out) == 0) lh_wq_trim(&t->out, 0);
  t->in_want = IN_FIRST;
}

/* --- the handshake and records --- */

#define PLAIN_BODY "This port speaks HTTPS: a plain HTTP request was sent to a TLS port.\n"

/* a server whose first byte is not a TLS record (a handshake record opens
 * with 22) but a letter has a plain HTTP request: it gets an answer it
 * can read, in plain text, and the connection closes */
static int plain_http(lh_tls_t *t) {
  char head[160];
  int n = snprintf(head, sizeof head,
                   "HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\n"
                   "content-length: %zu\r\nconnection: close\r\n\r\n",
                   sizeof PLAIN_BODY - 1);
  t->failed = 1;
  snprintf(t->why, sizeof t->why, "plain HTTP request sent to a TLS port");
  if (lh_wq_append(&t->out, head, (size_t)n) ||
      lh_wq_append(&t->out, PLAIN_BODY, sizeof PLAIN_BODY - 1))
    return LH_ENOMEM;
  t->in.off = t->in.len; /* the request is not read */
  return LH_ETLS_PLAIN_HTTP;
}

/* the operation failed with SSL_get_error's e: why, and which code */
static int tls_fail(lh_tls_t *t, int e) {
  t->failed = 1;
  unsigned long code = ERR_peek_error();
  long v = t->ctx->role == LH_ROLE_CLIENT ? SSL_get_verify_result(t->ssl) : X509_V_OK;
  int r = t->done ? LH_ETLS : LH_ETLS_HANDSHAKE;
  if (v != X509_V_OK && !t->done) {
    snprintf(t->why, sizeof t->why, "certificate verification failed: %s",
             X509_verify_cert_error_string(v));
    r = LH_ETLS_VERIFY;
  } else if (code) {
    const char *reason = ERR_reason_error_string(code);
    snprintf(t->why, sizeof t->why, "%s%s", t->done ? "" : "TLS handshake failed: ",
             reason ? reason : "unknown error");
  } else if (e == SSL_ERROR_SYSCALL || e == SSL_ERROR_ZERO_RETURN) {
    snprintf(t->why, sizeof t->why, "connection closed during the TLS handshake");
  } else {
    snprintf(t->why, sizeof t->why, "TLS failure (%d)", e);
  }
  ERR_clear_error();
  return r;
}

static int handshake(lh_tls_t *t) {
  if (!t->seen && t->ctx->role == LH_ROLE_SERVER) {
    if (lh_rbuf_avail(&t->in) == 0) return t->in_eof ? 1 : 0;
    t->seen = 1;
    unsigned char b = (unsigned char)lh_rbuf_data(&t->in)[0];
    if (b >= 'A' && b <= 'Z') return plain_http(t);
  }
  err_reset();
  int r = SSL_do_handshake(t->ssl);
  if (r == 1) {
    t->done = 1;
    if (t->ctx->role == LH_ROLE_CLIENT) sess_after_handshake(t);
    return 0;
  }
  int e = SSL_get_error(t->ssl, r);
  if (e == SSL_ERROR_WANT_READ && !t->in_eof) return 0;
  if (t->in_eof && ERR_peek_error() == 0) {
    /* the peer left in the middle of the handshake: no failure of ours */
    ERR_clear_error();
    t->failed = 1;
    return 1;
  }
  return tls_fail(t, e);
}

int lh_tls_recv(lh_tls_t *t, lh_conn_t *c, size_t *n) {
  *n = 0;
  t->more = 0;
  if (t->failed) return LH_ETLS;
  if (!t->done) {
    int r = handshake(t);
    if (r != 0 || !t->done) return r;
  }
  for (;;) {
    char *p;
    long space = lh_conn_read_space(c, &p);
    if (space < 0) return LH_ENOMEM;
    if (space == 0) {
      t->more = SSL_has_pending(t->ssl) || lh_rbuf_avail(&t->in) > 0;
      return t->more ? 2 : 0;
    }
    err_reset();
    int r = SSL_read(t->ssl, p, space > INT_MAX ? INT_MAX : (int)space);
    if (r > 0) {
      lh_conn_read_commit(c, (size_t)r);
      *n += (size_t)r;
      /* all ciphertext taken and nothing left inside OpenSSL (no
       * plaintext, no partial record): another SSL_read could only say
       * WANT_READ */
      if (lh_tuning.tls_one_read && lh_rbuf_avail(&t->in) == 0 && !t->in_eof &&
          !SSL_has_pending(t->ssl))
        return 0;
      continue;
    }
    int e = SSL_get_error(t->ssl, r);
    if (e == SSL_ERROR_WANT_READ) return t->in_eof ? 1 : 0;
    if (e == SSL_ERROR_ZERO_RETURN) return 1;
    if (e == SSL_ERROR_SYSCALL && t->in_eof && ERR_peek_error() == 0) return 1;
    return tls_fail(t, e);
  }
}

int lh_tls_pending(const lh_tls_t *t) { return t->more; }

int lh_tls_send(lh_tls_t *t, lh_wq_t *q) {
  if (!t->done || t->failed || t->shut) return 0;
  size_t have;
  while ((have = lh_wq_pending(&t->out)) < LH_TLS_OUT_HIGH) {
    const char *p;
    size_t n = lh_wq_peek(q, &p);
    if (n == 0) return 0;
    size_t room = LH_TLS_OUT_HIGH - have;
    if (n > room) n = room < 16384 ? 16384 : room; /* whole records */
    err_reset();
    int r = SSL_write(t->ssl, p, (int)n);
    if (r <= 0) return tls_fail(t, SSL_get_error(t->ssl, r));
    lh_wq_consume(q, (size_t)r);
  }
  return 0;
}

void lh_tls_close(lh_tls_t *t) {
  if (!t->done || t->failed || t->shut) return;
  t->shut = 1;
  err_reset();
  SSL_shutdown(t->ssl);
  err_reset();
}

int lh_tls_is_done(const lh_tls_t *t) { return t->done; }
int lh_tls_is_resumed(const lh_tls_t *t) { return SSL_session_reused(t->ssl); }
const char *lh_tls_version(const lh_tls_t *t) { return SSL_get_version(t->ssl); }

const char *lh_tls_cipher(const lh_tls_t *t) {
  const char *c = SSL_get_cipher_name(t->ssl);
  return c ? c : "";
}

const char *lh_tls_alpn(const lh_tls_t *t, size_t *len) {
  const unsigned char *p = NULL;
  unsigned n = 0;
  SSL_get0_alpn_selected(t->ssl, &p, &n);
  *len = n;
  return n ? (const char *)p : NULL;
}

const char *lh_tls_servername(const lh_tls_t *t) {
  return SSL_get_servername(t->ssl, TLSEXT_NAMETYPE_host_name);
}

const char *lh_tls_why(const lh_tls_t *t) { return t->why[0] ? t->why : "TLS failure"; }
