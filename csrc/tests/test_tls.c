/* The TLS filter (tls.c) without sockets: a client and a server joined by
 * copying each one's out queue into the other's input, whole or a byte at
 * a time. Certificates are made here with OpenSSL: a CA, a leaf for
 * localhost and 127.0.0.1, an expired one, one for another name, one from
 * a CA nobody trusts, and one for an SNI name. */
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "pem.h"
#include "test.h"
#include "tls.h"
#include "tuning.h"

/* --- certificates --- */

typedef struct {
  char *cert, *key; /* PEM text, malloc */
  X509 *x;
  EVP_PKEY *k;
} pem_t;

static void add_ext(X509 *x, X509 *issuer, int nid, const char *value) {
  X509V3_CTX v;
  X509V3_set_ctx(&v, issuer, x, NULL, NULL, 0);
  X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &v, nid, value);
  X509_add_ext(x, e, -1);
  X509_EXTENSION_free(e);
}

/* a certificate valid from `from` to `to` days from now, signed by issuer
 * (self-signed when NULL); san NULL for a CA */
static pem_t make_cert(const char *cn, const char *san, const pem_t *issuer, long from, long to) {
  static long serial = 1;
  pem_t p = {0};
  p.k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
  p.x = X509_new();
  X509_set_version(p.x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(p.x), serial++);
  X509_gmtime_adj(X509_getm_notBefore(p.x), from * 86400);
  X509_gmtime_adj(X509_getm_notAfter(p.x), to * 86400);
  X509_set_pubkey(p.x, p.k);
  X509_NAME *n = X509_get_subject_name(p.x);
  X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
  X509 *ix = issuer ? issuer->x : p.x;
  X509_set_issuer_name(p.x, X509_get_subject_name(ix));
  if (san) {
    add_ext(p.x, ix, NID_basic_constraints, "critical,CA:FALSE");
    add_ext(p.x, ix, NID_subject_alt_name, san);
    add_ext(p.x, ix, NID_ext_key_usage, "serverAuth,clientAuth");
  } else {
    add_ext(p.x, ix, NID_basic_constraints, "critical,CA:TRUE");
    add_ext(p.x, ix, NID_key_usage, "critical,keyCertSign,cRLSign");
  }
  X509_sign(p.x, issuer ? issuer->k : p.k, EVP_sha256());
  p.cert = to_pem(p.x, NULL);
  p.key = to_pem(NULL, p.k);
  return p;
}

static void pem_free(pem_t *p) {
  free(p->cert);
  free(p->key);
  X509_free(p->x);
  EVP_PKEY_free(p->k);
}

static pem_t ca, other_ca, leaf, expired, wrong_name, stranger, sni_b;

/* --- OpenSSL's allocations counted (set before its first one): record
 * buffers are the blocks of 16 KiB and more --- */

#define BIG (16 * 1024)
static size_t big_live;  /* bytes in live blocks of BIG or more */
static size_t big_made;  /* such blocks allocated in all */

typedef union {
  size_t n;
  max_align_t align;
} mhead_t;

static void *m_malloc(size_t n, const char *file, int line) {
  (void)file, (void)line;
  mhead_t *h = malloc(sizeof *h + n);
  if (!h) return NULL;
  h->n = n;
  if (n >= BIG) big_live += n, big_made++;
  return h + 1;
}

static void m_free(void *p, const char *file, int line) {
  (void)file, (void)line;
  if (!p) return;
  mhead_t *h = (mhead_t *)p - 1;
  if (h->n >= BIG) big_live -= h->n;
  free(h);
}

static void *m_realloc(void *p, size_t n, const char *file, int line) {
  if (!p) return m_malloc(n, file, line);
  mhead_t *h = (mhead_t *)p - 1;
  size_t old = h->n;
  mhead_t *g = realloc(h, sizeof *g + n);
  if (!g) return NULL;
  if (old >= BIG) big_live -= old;
  g->n = n;
  if (n >= BIG) big_live += n, big_made++;
  return g + 1;
}

/* --- a client and a server joined by memcpy --- */

typedef struct {
  lh_tls_t *t;
  lh_conn_t c;
  int rc;       /* the last lh_tls_recv result */
  size_t got;   /* plaintext received in all */
} end_t;

static lh_conn_opts_t conn_opts = {.max_buf_size = 64 * 1024, .max_headers = 100,
                                   .max_target = 8192, .keep_alive = 1};

static int bytewise; /* carry one byte per step */

static lh_tls_ctx_t *server_ctx(const pem_t *p, const lh_tls_opts_t *extra) {
  lh_tls_opts_t o = extra ? *extra : (lh_tls_opts_t){0};
  o.cert = p->cert;
  o.key = p->key;
  lh_tls_ctx_t *x = NULL;
  char err[200];
  int r = lh_tls_ctx_new(LH_ROLE_SERVER, &o, &x, err, sizeof err);
  if (r) printf("# server ctx: %s\n", err);
  return x;
}

static lh_tls_ctx_t *client_ctx(const pem_t *trust, const lh_tls_opts_t *extra) {
  lh_tls_opts_t o = extra ? *extra : (lh_tls_opts_t){0};
  if (trust) o.ca = trust->cert;
  lh_tls_ctx_t *x = NULL;
  char err[200];
  int r = lh_tls_ctx_new(LH_ROLE_CLIENT, &o, &x, err, sizeof err);
  if (r) printf("# client ctx: %s\n", err);
  return x;
}

static void end_init(end_t *e, lh_tls_ctx_t *x, lh_role_t role, const char *name,
                     const char *session) {
  memset(e, 0, sizeof *e);
  lh_conn_init(&e->c, role, &conn_opts);
  int r = lh_tls_new(x, name, session, &e->t);
  if (r) printf("# lh_tls_new: %d\n", r);
}

static void end_free(end_t *e) {
  lh_tls_free(e->t);
  lh_conn_free(&e->c);
}

/* moves what `from` has for its peer into `to`; returns bytes moved */
static size_t carry(end_t *from, end_t *to) {
  lh_wq_t *q = lh_tls_out(from->t);
  size_t moved = 0;
  const char *p;
  size_t n;
  while ((n = lh_wq_peek(q, &p)) > 0) {
    if (bytewise && n > 1) n = 1;
    char *dst;
    long room = lh_tls_in_space(to->t, &dst);
    if (room <= 0) break;
    if (n > (size_t)room) n = (size_t)room;
    memcpy(dst, p, n);
    lh_tls_in_commit(to->t, n);
    lh_wq_consume(q, n);
    moved += n;
    if (bytewise) break;
  }
  return moved;
}

static void step(end_t *e) {
  size_t n = 0;
  if (e->rc < 0) return;
  e->rc = lh_tls_recv(e->t, &e->c, &n);
  e->got += n;
  if (e->rc >= 0) {
    int r = lh_tls_send(e->t, &e->c.wq);
    if (r < 0) e->rc = r;
  }
}

/* runs both sides until neither moves; returns the steps taken */
static int run(end_t *cli, end_t *srv) {
  int steps = 0;
  for (; steps < 200000; steps++) {
    step(cli);
    size_t a = carry(cli, srv);
    step(srv);
    size_t b = carry(srv, cli);
    if (!a && !b) {
      step(cli);
      step(srv);
      if (!lh_wq_pending(lh_tls_out(cli->t)) && !lh_wq_pending(lh_tls_out(srv->t))) break;
    }
  }
  return steps;
}

static void put(end_t *e, const char *s) { lh_wq_append(&e->c.wq, s, strlen(s)); }

static int received(end_t *e, const char *s) {
  size_t n = strlen(s);
  return lh_conn_buffered(&e->c) == n && memcmp(lh_rbuf_data(&e->c.rbuf), s, n) == 0;
}

#define REQ "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"
#define RES "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"

/* --- tests --- */

static void exchange(int version, int bw) {
  lh_tls_opts_t so = {.max_version = version};
  lh_tls_ctx_t *sx = server_ctx(&leaf, &so), *cx = client_ctx(&ca, NULL);
  REQUIRE(sx && cx);
  end_t cli, srv;
  end_init(&cli, cx, LH_ROLE_CLIENT, "localhost", NULL);
  end_init(&srv, sx, LH_ROLE_SERVER, NULL, NULL);
  bytewise = bw;
  put(&cli, REQ);
  run(&cli, &srv);
  CHECK_EQ(cli.rc, 0);
  CHECK_EQ(srv.rc, 0);
  CHECK(lh_tls_is_done(cli.t) && lh_tls_is_done(srv.t));
  CHECK(received(&srv, REQ));
  CHECK_EQ(lh_conn_pending(&cli.c), 0);
  put(&srv, RES);
  run(&cli, &srv);
  CHECK(received(&cli, RES));
  CHECK_STR(lh_tls_version(srv.t), version == 12 ? "TLSv1.2" : "TLSv1.3");
  size_t n;
  const char *alpn = lh_tls_alpn(srv.t, &n);
  CHECK(alpn && n == 8 && !memcmp(alpn, "http/1.1", 8));
  alpn = lh_tls_alpn(cli.t, &n);
  CHECK(alpn && n == 8 && !memcmp(alpn, "http/1.1", 8));
  CHECK_STR(lh_tls_servername(srv.t), "localhost");
  CHECK(!lh_tls_is_resumed(cli.t));
  bytewise = 0;
  end_free(&cli);
  end_free(&srv);
  lh_tls_ctx_unref(sx);
  lh_tls_ctx_unref(cx);
}

static void tls13_handshake_and_data_over_buffers(void) {
  t_ctx = "whole";
  exchange(13, 0);
  t_ctx = "bytes";
  exchange(13, 1);
  t_ctx = NULL;
}

static void tls12_handshake_and_data_over_buffers(void) {
  t_ctx = "whole";
  exchange(12, 0);
  t_ctx = "bytes";
  exchange(12, 1);
  t_ctx = NULL;
}

/* the client's failure and its message, with the server's certificate p
 * and a client trusting `trust` that connects to `name` */
static void refused(const pem_t *p, const pem_t *trust, const char *name, const char *why) {
  lh_tls_ctx_t *sx = server_ctx(p, NULL), *cx = client_ctx(trust, NULL);
  REQUIRE(sx && cx);
  end_t cli, srv;
  end_init(&cli, cx, LH_ROLE_CLIENT, name, NULL);
  end_init(&srv, sx, LH_ROLE_SERVER, NULL, NULL);
  put(&cli, REQ);
  run(&cli, &srv);
  CHECK_EQ(cli.rc, LH_ETLS_VERIFY);
  if (!strstr(lh_tls_why(cli.t), why)) t_fail(__FILE__, __LINE__, "why: %s", lh_tls_why(cli.t));
  /* the client's alert reached the server, which fails too; no request */
  CHECK(srv.rc < 0);
  CHECK_EQ(srv.got, 0);
  end_free(&cli);
  end_free(&srv);
  lh_tls_ctx_unref(sx);
  lh_tls_ctx_unref(cx);
}

static void client_refuses_unknown_ca(void) {
  refused(&stranger, &ca, "localhost", "unable to get local issuer certificate");
}

static void client_refuses_expired_certificate(void) {
  refused(&expired, &ca, "localhost", "certificate has expired");
}

static void client_refuses_wrong_name(void) {
  refused(&wrong_name, &ca, "localhost", "hostname mismatch");
  refused(&leaf, &ca, "example.com", "hostname mismatch");
  refused(&leaf, &ca, "127.0.0.2", "IP address mismatch");
}

static void client_accepts_ip_address_in_certificate(void) {
  lh_tls_ctx_t *sx = server_ctx(&leaf, NULL), *cx = client_ctx(&ca, NULL);
  REQUIRE(sx && cx);
  end_t cli, srv;
  end_init(&cli, cx, LH_ROLE_CLIENT, "127.0.0.1", NULL);
  end_init(&srv, sx, LH_ROLE_SERVER, NULL, NULL);
  put(&cli, REQ);
  run(&cli, &srv);
  CHECK_EQ(cli.rc, 0);
  CHECK(received(&srv, REQ));
  CHECK(lh_tls_servername(srv.t) == NULL); /* no SNI for an address */
  end_free(&cli);
  end_free(&srv);
  lh_tls_ctx_unref(sx);
  lh_tls_ctx_unref(cx);
}

static void client_without_verification_accepts_anything(void) {
  lh_tls_opts_t co = {.no_verify = 1};
  lh_tls_ctx_t *sx = server_ctx(&expired, NULL), *cx = client_ctx(NULL, &co);
  REQUIRE(sx && cx);
  end_t cli, srv;
  end_init(&cli, cx, LH_ROLE_CLIENT, "nowhere.example", NULL);
  end_init(&srv, sx, LH_ROLE_SERVER, NULL, NULL);
  put(&cli, REQ);
  run(&cli, &srv);
  CHECK_EQ(cli.rc, 0);
  CHECK(received(&srv, REQ));
  end_free(&cli);
  end_free(&srv);
  lh_tls_ctx_unref(sx);
  lh_tls_ctx_unref(cx);
}

static void plain_http_gets_a_400_in_plain_text(void) {
  lh_tls_ctx_t *sx = server_ctx(&leaf, NULL);
  REQUIRE(sx);
  end_t srv;
  end_init(&srv, sx, LH_ROLE_SERVER, NULL, NULL);
  char *p;
  REQUIRE(lh_tls_in_space(srv.t, &p) > (long)strlen(REQ));
  memcpy(p, REQ, strlen(REQ));
  lh_tls_in_commit(srv.t, strlen(REQ));
  size_t n;
  CHECK_EQ(lh_tls_recv(srv.t, &srv.c, &n), LH_ETLS_PLAIN_HTTP);
  CHECK_EQ(n, 0);
  const char *out;
  size_t len = lh_wq_peek(lh_tls_out(srv.t), &out);
  CHECK(len > 20 && !memcmp(out, "HTTP/1.1 400 Bad Request\r\n", 26));
  CHECK(len > 20 && strstr(out, "connection: close\r\n") != NULL);
  CHECK_STR(lh_tls_why(srv.t), "plain HTTP request sent to a TLS port");
  /* and it stays failed */
  CHECK_EQ(lh_tls_recv(srv.t, &srv.c, &n), LH_ETLS);
  end_free(&srv);
  lh_tls_ctx_unref(sx);
}

static void garbage_fails_the_handshake_with_openssl_reason(void) {
  lh_tls_ctx_t *sx = server_ctx(&leaf, NULL);
  REQUIRE(sx);
  end_t srv;
  end_init(&srv, sx, LH_ROLE_SERVER, NULL, NULL);
  static const char junk[] = "\x16\x03\x01\x00\x05\x99\x99\x99\x99\x99";
  char *p;
  lh_tls_in_space(srv.t, &p);
  memcpy(p, junk, sizeof junk - 1);
  lh_tls_in_commit(srv.t, sizeof junk - 1);
  size_t n;
  int r = lh_tls_recv(srv.t, &srv.c, &n);
  CHECK_EQ(r, LH_ETLS_HANDSHAKE);
  CHECK(strncmp(lh_tls_why(srv.t), "TLS handshake failed: ", 22) == 0);
  /* an alert waits for the peer */
  CHECK(lh_wq_pending(lh_tls_out(srv.t)) > 0);
  end_free(&srv);
  lh_tls_ctx_unref(sx);
}

static void eof_during_handshake_is_a_quiet_close(void) {
  lh_tls_ctx_t *sx = server_ctx(&leaf, NULL), *cx = client_ctx(&ca, NULL);
  REQUIRE(sx && cx);
  end_t cli, srv;
  end_init(&cli, cx, LH_ROLE_CLIENT, "localhost", NULL);
  end_init(&srv, sx, LH_ROLE_SERVER, NULL, NULL);
  step(&cli);
  /* half the client hello, then the client leaves */
  lh_wq_t *q = lh_tls_out(cli.t);
  const char *p;
  size_t n = lh_wq_peek(q, &p);
  char *dst;
  lh_tls_in_space(srv.t, &dst);
  memcpy(dst, p, n / 2);
  lh_tls_in_commit(srv.t, n / 2);
  step(&srv);
  CHECK_EQ(srv.rc, 0);
  lh_tls_in_eof(srv.t);
  step(&srv);
  CHECK_EQ(srv.rc, 1);
  /* an empty connection that closes is quiet too */
  end_t idle;
  end_init(&idle, sx, LH_ROLE_SERVER, NULL, NULL);
  lh_tls_in_eof(idle.t);
  step(&idle);
  CHECK_EQ(idle.rc, 1);
  end_free(&idle);
  end_free(&cli);
  end_free(&srv);
  lh_tls_ctx_unref(sx);
  lh_tls_ctx_unref(cx);
}

static void close_notify_reads_as_the_peer_closing(void) {
  lh_tls_ctx_t *sx = server_ctx(&leaf, NULL), *cx = client_ctx(&ca, NULL);
  REQUIRE(sx && cx);
  end_t cli, srv;
  end_init(&cli, cx, LH_ROLE_CLIENT, "localhost", NULL);
  end_init(&srv, sx, LH_ROLE_SERVER, NULL, NULL);
  put(&cli, REQ);
  run(&cli, &srv);
  put(&srv, RES);
  lh_tls_send(srv.t, &srv.c.wq);
  lh_tls_close(srv.t);
  lh_tls_close(srv.t); /* once */
  carry(&srv, &cli);
  step(&cli);
  CHECK_EQ(cli.rc, 1);
  CHECK(received(&cli, RES));
  /* nothing is sent after close_notify */
  put(&srv, "more");
  CHECK_EQ(lh_tls_send(srv.t, &srv.c.wq), 0);
  CHECK_EQ(lh_wq_pending(lh_tls_out(srv.t)), 0);
  /* the end of input without close_notify is a close too */
  end_t c2, s2;
  end_init(&c2, cx, LH_ROLE_CLIENT, "localhost", NULL);
  end_init(&s2, sx, LH_ROLE_SERVER, NULL, NULL);
  run(&c2, &s2);
  lh_tls_in_eof(s2.t);
  step(&s2);
  CHECK_EQ(s2.rc, 1);
  end_free(&c2);
  end_free(&s2);
  end_free(&cli);
  end_free(&srv);
  lh_tls_ctx_unref(sx);
  lh_tls_ctx_unref(cx);
}

/* backpressure stays the Conn's: what the out queue cannot take stays in
 * the write queue, and the reader stops at a full read buffer */
static void send_stops_at_the_out_queue_bound(void) {
  lh_tls_ctx_t *sx = server_ctx(&leaf, NULL), *cx = client_ctx(&ca, NULL);
  REQUIRE(sx && cx);
  end_t cli, srv;
  end_init(&cli, cx, LH_ROLE_CLIENT, "localhost", NULL);
  end_init(&srv, sx, LH_ROLE_SERVER, NULL, NULL);
  run(&cli, &srv);
  REQUIRE(lh_tls_is_done(srv.t));
  size_t big = 300 * 1024;
  char *blob = malloc(big);
  for (size_t i = 0; i < big; i++) blob[i] = (char)('a' + i % 26);
  lh_wq_append(&srv.c.wq, blob, big);
  CHECK_EQ(lh_tls_send(srv.t, &srv.c.wq), 0);
  size_t out = lh_wq_pending(lh_tls_out(srv.t));
  CHECK(out >= LH_TLS_OUT_HIGH && out < LH_TLS_OUT_HIGH + 17 * 1024);
  CHECK(lh_conn_pending(&srv.c) > big - LH_TLS_OUT_HIGH - 17 * 1024);
  /* nothing more while the out queue is full */
  size_t before = lh_conn_pending(&srv.c);
  lh_tls_send(srv.t, &srv.c.wq);
  CHECK_EQ(lh_conn_pending(&srv.c), before);
  /* the client's buffer is bounded at 64 KiB: it stops with more waiting */
  size_t total = 0;
  int saw_full = 0;
  for (int i = 0; i < 10000 && total < big; i++) {
    lh_tls_send(srv.t, &srv.c.wq);
    carry(&srv, &cli);
    size_t n;
    int r = lh_tls_recv(cli.t, &cli.c, &n);
    CHECK(r == 0 || r == 2);
    CHECK_EQ(lh_tls_pending(cli.t), r == 2);
    size_t have = lh_conn_buffered(&cli.c);
    /* the reader takes what it has only once its buffer is full, or at the end */
    if (r == 2 || total + have == big) {
      if (r == 2) {
        saw_full = 1;
        CHECK_EQ(have, conn_opts.max_buf_size);
        lh_tls_trim(cli.t); /* OpenSSL holds plaintext: its buffers stay */
      }
      CHECK(!memcmp(lh_rbuf_data(&cli.c.rbuf), blob + total, have));
      total += have;
      cli.c.rbuf.off = cli.c.rbuf.len;
    }
  }
  CHECK(saw_full);
  CHECK_EQ(total, big);
  free(blob);
  end_free(&cli);
  end_free(&srv);
  lh_tls_ctx_unref(sx);
  lh_tls_ctx_unref(cx);
}

static lh_tls_ctx_t *sni_target;
static int sni_calls;
static char sni_seen[64];

static lh_tls_ctx_t *pick(void *arg, const char *name, int *fail) {
  sni_calls++;
  snprintf(sni_seen, sizeof sni_seen, "%s", name);
  if (!strcmp(name, "refused.test")) {
    *fail = 1;
    return NULL;
  }
  if (strcmp(name, "b.test")) return NULL;
  lh_tls_ctx_ref(sni_target);
  return sni_target;
}

static void sni_picks_the_certificate(void) {
  lh_tls_ctx_t *sx = server_ctx(&leaf, NULL), *cx = client_ctx(&ca, NULL);
  lh_tls_opts_t bo = {.keys_from = sx};
  sni_target = server_ctx(&sni_b, &bo);
  REQUIRE(sx && cx && sni_target);
  lh_tls_ctx_set_sni(sx, pick, NULL);
  const char *names[] = {"b.test", "localhost", "refused.test"};
  for (int i = 0; i < 3; i++) {
    end_t cli, srv;
    end_init(&cli, cx, LH_ROLE_CLIENT, names[i], NULL);
    end_init(&srv, sx, LH_ROLE_SERVER, NULL, NULL);
    sni_calls = 0;
    put(&cli, REQ);
    run(&cli, &srv);
    CHECK_EQ(sni_calls, 1);
    CHECK_STR(sni_seen, names[i]);
    if (i < 2) {
      CHECK_EQ(cli.rc, 0);
      CHECK(received(&srv, REQ));
    } else {
      CHECK(cli.rc < 0 && srv.rc < 0);
      CHECK(strstr(lh_tls_why(cli.t), "unrecognized name") != NULL);
    }
    end_free(&cli);
    end_free(&srv);
  }
  lh_tls_ctx_unref(sni_target);
  lh_tls_ctx_unref(sx);
  lh_tls_ctx_unref(cx);
}

/* one connection with the session cache key "k"; 1 when it resumed */
static int connect_once(lh_tls_ctx_t *sx, lh_tls_ctx_t *cx) {
  end_t cli, srv;
  end_init(&cli, cx, LH_ROLE_CLIENT, "localhost", "localhost:443");
  end_init(&srv, sx, LH_ROLE_SERVER, NULL, NULL);
  put(&cli, REQ);
  run(&cli, &srv);
  put(&srv, RES);
  run(&cli, &srv); /* TLS 1.3 tickets come with the records after the handshake */
  int ok = cli.rc == 0 && srv.rc == 0 && received(&srv, REQ) && received(&cli, RES);
  if (!ok) t_fail(__FILE__, __LINE__, "exchange failed: %d %d", cli.rc, srv.rc);
  int resumed = lh_tls_is_resumed(cli.t);
  CHECK_EQ(lh_tls_is_resumed(srv.t), resumed);
  end_free(&cli);
  end_free(&srv);
  return resumed;
}

static void tickets(int version) {
  lh_tls_opts_t so = {.max_version = version, .ticket_rotation = 100};
  lh_tls_ctx_t *sx = server_ctx(&leaf, &so), *cx = client_ctx(&ca, NULL);
  REQUIRE(sx && cx);
  lh_tls_clock_freeze(1000000);
  CHECK(!connect_once(sx, cx));
  CHECK(connect_once(sx, cx));
  /* the next period: the ticket opens under the previous key, renewed */
  lh_tls_clock_freeze(1000000 + 100);
  CHECK(connect_once(sx, cx));
  CHECK(connect_once(sx, cx));
  /* two periods without a visit: the key is gone, a full handshake */
  lh_tls_clock_freeze(1000000 + 350);
  CHECK(!connect_once(sx, cx));
  CHECK(connect_once(sx, cx));
  /* a reloaded context sharing the keys takes the old tickets */
  lh_tls_opts_t ro = so;
  ro.keys_from = sx;
  lh_tls_ctx_t *rx = server_ctx(&leaf, &ro);
  CHECK(connect_once(rx, cx));
  /* a server with keys of its own does not */
  lh_tls_ctx_t *fresh = server_ctx(&leaf, &so);
  CHECK(!connect_once(fresh, cx));
  /* without tickets, no resumption */
  lh_tls_opts_t no = {.max_version = version, .no_tickets = 1};
  lh_tls_ctx_t *nx = server_ctx(&leaf, &no), *cx2 = client_ctx(&ca, NULL);
  CHECK(!connect_once(nx, cx2));
  CHECK(!connect_once(nx, cx2));
  lh_tls_clock_freeze(0);
  lh_tls_ctx_unref(nx);
  lh_tls_ctx_unref(cx2);
  lh_tls_ctx_unref(fresh);
  lh_tls_ctx_unref(rx);
  lh_tls_ctx_unref(sx);
  lh_tls_ctx_unref(cx);
}

static void tickets_resume_and_rotate_tls13(void) { tickets(13); }
static void tickets_resume_and_rotate_tls12(void) { tickets(12); }

static void bad_configuration_is_refused_with_reason(void) {
  char err[200];
  lh_tls_ctx_t *x = NULL;
  lh_tls_opts_t o = {.cert = "/nonexistent/cert.pem", .key = "/nonexistent/key.pem"};
  CHECK_EQ(lh_tls_ctx_new(LH_ROLE_SERVER, &o, &x, err, sizeof err), LH_ETLS_CONFIG);
  CHECK(strstr(err, "cannot load certificate /nonexistent/cert.pem") != NULL);
  o = (lh_tls_opts_t){.cert = leaf.cert, .key = other_ca.key};
  CHECK_EQ(lh_tls_ctx_new(LH_ROLE_SERVER, &o, &x, err, sizeof err), LH_ETLS_CONFIG);
  CHECK(strstr(err, "cannot load key (PEM text): key values mismatch") != NULL);
  o = (lh_tls_opts_t){.cert = leaf.cert, .key = leaf.key, .ciphers = "NOTACIPHER"};
  CHECK_EQ(lh_tls_ctx_new(LH_ROLE_SERVER, &o, &x, err, sizeof err), LH_ETLS_CONFIG);
  CHECK(strstr(err, "ciphers") != NULL);
  o = (lh_tls_opts_t){0};
  CHECK_EQ(lh_tls_ctx_new(LH_ROLE_SERVER, &o, &x, err, sizeof err), LH_ETLS_CONFIG);
  o = (lh_tls_opts_t){.cert = leaf.cert};
  CHECK_EQ(lh_tls_ctx_new(LH_ROLE_CLIENT, &o, &x, err, sizeof err), LH_ETLS_CONFIG);
  CHECK(strstr(err, "cert and key go together") != NULL);
  o = (lh_tls_opts_t){.ca = "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n"};
  CHECK_EQ(lh_tls_ctx_new(LH_ROLE_CLIENT, &o, &x, err, sizeof err), LH_ETLS_CONFIG);
  CHECK(strstr(err, "cannot load ca (PEM text)") != NULL);
}

/* a server with client_ca takes only clients with a certificate it signed */
static void client_certificates_are_required_and_sent(void) {
  lh_tls_opts_t so = {.client_ca = ca.cert};
  lh_tls_opts_t with = {.cert = leaf.cert, .key = leaf.key};
  lh_tls_opts_t foreign = {.cert = stranger.cert, .key = stranger.key};
  lh_tls_ctx_t *sx = server_ctx(&leaf, &so);
  lh_tls_ctx_t *cx[3] = {client_ctx(&ca, NULL), client_ctx(&ca, &with), client_ctx(&ca, &foreign)};
  REQUIRE(sx && cx[0] && cx[1] && cx[2]);
  for (int i = 0; i < 3; i++) {
    end_t cli, srv;
    end_init(&cli, cx[i], LH_ROLE_CLIENT, "localhost", NULL);
    end_init(&srv, sx, LH_ROLE_SERVER, NULL, NULL);
    put(&cli, REQ);
    run(&cli, &srv);
    if (i == 1) {
      CHECK_EQ(srv.rc, 0);
      CHECK(received(&srv, REQ));
    } else {
      CHECK(srv.rc < 0);
      CHECK_EQ(srv.got, 0);
      CHECK(cli.rc < 0); /* the server's alert */
    }
    end_free(&cli);
    end_free(&srv);
    lh_tls_ctx_unref(cx[i]);
  }
  lh_tls_ctx_unref(sx);
}

/* moves at most max bytes of what `from` has for its peer into `to` */
static size_t carry_some(end_t *from, end_t *to, size_t max) {
  lh_wq_t *q = lh_tls_out(from->t);
  const char *p;
  size_t n = lh_wq_peek(q, &p);
  if (n > max) n = max;
  char *dst;
  long room = lh_tls_in_space(to->t, &dst);
  if (room <= 0) return 0;
  if (n > (size_t)room) n = (size_t)room;
  memcpy(dst, p, n);
  lh_tls_in_commit(to->t, n);
  lh_wq_consume(q, n);
  return n;
}

/* a keep-alive exchange through each setting of the TLS shortcuts: two
 * records that arrive together are both read at once (one_read stops only
 * when nothing is left), a record cut in two survives a trim between its
 * halves (OpenSSL's buffers are kept while they hold input), a trim
 * between messages releases what is idle and the next message still
 * flows, and a stale entry in OpenSSL's error queue is not taken for the
 * connection's failure */
static void keep_alive_records_through_trims(void) {
  lh_tuning_t saved = lh_tuning;
  for (int mode = 0; mode < 4; mode++) {
    lh_tuning.tls_one_read = mode & 1;
    lh_tuning.tls_keep_buffers = (mode >> 1) & 1;
    t_ctx = mode == 0 ? "both off" : mode == 1 ? "one_read" : mode == 2 ? "keep_buffers" : "both on";
    lh_tls_ctx_t *sx = server_ctx(&leaf, NULL), *cx = client_ctx(&ca, NULL);
    REQUIRE(sx && cx);
    end_t cli, srv;
    end_init(&cli, cx, LH_ROLE_CLIENT, "localhost", NULL);
    end_init(&srv, sx, LH_ROLE_SERVER, NULL, NULL);
    run(&cli, &srv);
    REQUIRE(lh_tls_is_done(cli.t) && lh_tls_is_done(srv.t));
    for (int round = 0; round < 3; round++) {
      /* two requests, two records, one read */
      put(&cli, REQ);
      CHECK_EQ(lh_tls_send(cli.t, &cli.c.wq), 0);
      put(&cli, REQ);
      CHECK_EQ(lh_tls_send(cli.t, &cli.c.wq), 0);
      carry(&cli, &srv);
      ERR_raise(ERR_LIB_EVP, EVP_R_BAD_DECRYPT); /* someone else's failure, left behind */
      size_t n = 0;
      CHECK_EQ(lh_tls_recv(srv.t, &srv.c, &n), 0);
      CHECK_EQ(n, 2 * strlen(REQ));
      CHECK(received(&srv, REQ REQ));
      srv.c.rbuf.off = srv.c.rbuf.len;
      /* the response in two pieces, a trim between them */
      put(&srv, RES);
      CHECK_EQ(lh_tls_send(srv.t, &srv.c.wq), 0);
      CHECK(carry_some(&srv, &cli, 9) == 9);
      CHECK_EQ(lh_tls_recv(cli.t, &cli.c, &n), 0);
      CHECK_EQ(n, 0);
      lh_tls_trim(cli.t);
      carry(&srv, &cli);
      CHECK_EQ(lh_tls_recv(cli.t, &cli.c, &n), 0);
      CHECK_EQ(n, strlen(RES));
      CHECK(received(&cli, RES));
      cli.c.rbuf.off = cli.c.rbuf.len;
      /* both idle: trimmed */
      lh_tls_trim(cli.t);
      lh_tls_trim(srv.t);
    }
    ERR_clear_error();
    end_free(&cli);
    end_free(&srv);
    lh_tls_ctx_unref(sx);
    lh_tls_ctx_unref(cx);
  }
  t_ctx = NULL;
  lh_tuning = saved;
}

/* one request and its response over a connected pair */
static void round_trip(end_t *cli, end_t *srv) {
  size_t n;
  put(cli, REQ);
  lh_tls_send(cli->t, &cli->c.wq);
  carry(cli, srv);
  CHECK_EQ(lh_tls_recv(srv->t, &srv->c, &n), 0);
  CHECK(received(srv, REQ));
  srv->c.rbuf.off = srv->c.rbuf.len;
  put(srv, RES);
  lh_tls_send(srv->t, &srv->c.wq);
  carry(srv, cli);
  CHECK_EQ(lh_tls_recv(cli->t, &cli->c, &n), 0);
  CHECK(received(cli, RES));
  cli->c.rbuf.off = cli->c.rbuf.len;
}

/* OpenSSL's record buffers: kept from one message to the next (no block
 * made per record), none left once both ends are trimmed; with the switch
 * off, or once lean, made and released with each record */
static void record_buffers_kept_while_busy_released_when_idle(void) {
  lh_tuning_t saved = lh_tuning;
  for (int keep = 0; keep < 2; keep++) {
    lh_tuning.tls_keep_buffers = keep;
    t_ctx = keep ? "keep" : "off";
    lh_tls_ctx_t *sx = server_ctx(&leaf, NULL), *cx = client_ctx(&ca, NULL);
    REQUIRE(sx && cx);
    end_t cli, srv;
    end_init(&cli, cx, LH_ROLE_CLIENT, "localhost", NULL);
    end_init(&srv, sx, LH_ROLE_SERVER, NULL, NULL);
    run(&cli, &srv);
    REQUIRE(lh_tls_is_done(cli.t) && lh_tls_is_done(srv.t));
    round_trip(&cli, &srv);
    size_t made = big_made;
    for (int i = 0; i < 10; i++) round_trip(&cli, &srv);
    if (keep) {
      CHECK_EQ(big_made, made);       /* nothing made per record */
      CHECK(big_live >= 4 * BIG);     /* in and out, at each end */
    } else {
      CHECK(big_made >= made + 40);   /* each record its buffer */
      CHECK_EQ(big_live, 0);
    }
    lh_tls_trim(cli.t);
    lh_tls_trim(srv.t);
    CHECK_EQ(big_live, 0);
    round_trip(&cli, &srv);           /* and back when needed */
    /* lean: released after each record from now on */
    lh_tls_lean(cli.t);
    lh_tls_lean(srv.t);
    round_trip(&cli, &srv);
    round_trip(&cli, &srv);
    CHECK_EQ(big_live, 0);
    end_free(&cli);
    end_free(&srv);
    lh_tls_ctx_unref(sx);
    lh_tls_ctx_unref(cx);
  }
  t_ctx = NULL;
  lh_tuning = saved;
}

int main(void) {
  if (!CRYPTO_set_mem_functions(m_malloc, m_realloc, m_free)) return 1; /* before any allocation */
  ca = make_cert("lhyper test CA", NULL, NULL, -1, 30);
  other_ca = make_cert("untrusted CA", NULL, NULL, -1, 30);
  leaf = make_cert("localhost", "DNS:localhost,IP:127.0.0.1,IP:::1", &ca, -1, 30);
  expired = make_cert("localhost", "DNS:localhost", &ca, -30, -1);
  wrong_name = make_cert("other.test", "DNS:other.test", &ca, -1, 30);
  stranger = make_cert("localhost", "DNS:localhost", &other_ca, -1, 30);
  sni_b = make_cert("b.test", "DNS:b.test", &ca, -1, 30);
  static const test_case_t tests[] = {
    TEST_CASE(tls13_handshake_and_data_over_buffers),
    TEST_CASE(tls12_handshake_and_data_over_buffers),
    TEST_CASE(client_refuses_unknown_ca),
    TEST_CASE(client_refuses_expired_certificate),
    TEST_CASE(client_refuses_wrong_name),
    TEST_CASE(client_accepts_ip_address_in_certificate),
    TEST_CASE(client_without_verification_accepts_anything),
    TEST_CASE(plain_http_gets_a_400_in_plain_text),
    TEST_CASE(garbage_fails_the_handshake_with_openssl_reason),
    TEST_CASE(eof_during_handshake_is_a_quiet_close),
    TEST_CASE(close_notify_reads_as_the_peer_closing),
    TEST_CASE(send_stops_at_the_out_queue_bound),
    TEST_CASE(keep_alive_records_through_trims),
    TEST_CASE(record_buffers_kept_while_busy_released_when_idle),
    TEST_CASE(sni_picks_the_certificate),
    TEST_CASE(tickets_resume_and_rotate_tls13),
    TEST_CASE(tickets_resume_and_rotate_tls12),
    TEST_CASE(bad_configuration_is_refused_with_reason),
    TEST_CASE(client_certificates_are_required_and_sent),
  };
  int r = T_RUN(tests);
  pem_t *all[] = {&ca, &other_ca, &leaf, &expired, &wrong_name, &stranger, &sni_b};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) pem_free(all[i]);
  return r;
}
