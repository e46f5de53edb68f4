/* libFuzzer target: the server side of the TLS filter (tls.c) fed bytes
 * from a peer, as the transport would feed them.
 *
 * Input: 1 header byte (bits 0-3: chunk size class, bit 4: a small read
 * buffer, bit 5: EOF at the end), then the bytes the client sends. They go
 * in chunks through lh_tls_in_space/commit, each followed by lh_tls_recv
 * and lh_tls_send (with a response queued once the handshake is done).
 * Checked: lh_tls_recv returns 0, 1, 2 or an LH_ETLS_* code (LH_ENOMEM
 * aside); a failure sticks; plaintext only comes after the handshake; the
 * out queue stays bounded; nothing leaks (ASan).
 *
 * FUZZ_WRITE_SEEDS=dir writes the seed corpus (a real client hello, a plain
 * HTTP request, a truncated hello) and exits; FUZZ_WRITE_DICT=file a
 * dictionary of record headers. */
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz_dict.h"
#include "pem.h"
#include "tls.h"

static lh_tls_ctx_t *server, *client;
static const lh_conn_opts_t small = {.max_buf_size = 8192, .max_headers = 100, .max_target = 8192,
                                     .keep_alive = 1};
static const lh_conn_opts_t large = {.max_buf_size = 65536, .max_headers = 100,
                                     .max_target = 8192, .keep_alive = 1};

/* a self-signed certificate for localhost, made once */
static void make_contexts(void) {
  EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
  X509 *x = X509_new();
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
  X509_gmtime_adj(X509_getm_notBefore(x), -86400);
  X509_gmtime_adj(X509_getm_notAfter(x), 86400 * 30);
  X509_set_pubkey(x, k);
  X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                             (const unsigned char *)"localhost", -1, -1, 0);
  X509_set_issuer_name(x, X509_get_subject_name(x));
  X509_sign(x, k, EVP_sha256());
  char *cert = to_pem(x, NULL), *key = to_pem(NULL, k);
  lh_tls_opts_t so = {.cert = cert, .key = key};
  lh_tls_opts_t co = {.no_verify = 1};
  char err[200];
  if (lh_tls_ctx_new(LH_ROLE_SERVER, &so, &server, err, sizeof err) ||
      lh_tls_ctx_new(LH_ROLE_CLIENT, &co, &client, err, sizeof err)) {
    fprintf(stderr, "fuzz_tls: contexts: %s\n", err);
    abort();
  }
  free(cert);
  free(key);
  X509_free(x);
  EVP_PKEY_free(k);
}

/* the client hello a real client sends */
static size_t client_hello(char *buf, size_t cap) {
  lh_tls_t *t;
  lh_conn_t c;
  lh_conn_init(&c, LH_ROLE_CLIENT, &large);
  if (lh_tls_new(client, "localhost", NULL, &t)) abort();
  size_t n;
  lh_tls_recv(t, &c, &n);
  const char *p;
  size_t len = lh_wq_peek(lh_tls_out(t), &p);
  if (len > cap) len = cap;
  memcpy(buf, p, len);
  lh_tls_free(t);
  lh_conn_free(&c);
  return len;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  make_contexts();
  const char *dir = getenv("FUZZ_WRITE_SEEDS"), *dict = getenv("FUZZ_WRITE_DICT");
  if (dir) {
    static char hello[4096];
    size_t n = client_hello(hello, sizeof hello);
    static const char plain[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    char path[512];
    mkdir(dir, 0777);
    for (uint8_t cfg = 0; cfg < 64; cfg += 9) {
      snprintf(path, sizeof path, "%s/hello-%u", dir, cfg);
      fuzz_write_seed(path, hello, n, &cfg, 1);
      snprintf(path, sizeof path, "%s/half-%u", dir, cfg);
      fuzz_write_seed(path, hello, n / 2, &cfg, 1);
      snprintf(path, sizeof path, "%s/plain-%u", dir, cfg);
      fuzz_write_seed(path, plain, sizeof plain - 1, &cfg, 1);
    }
    exit(0);
  }
  if (dict) {
    static const char *const words[] = {
      "\\x16\\x03\\x01", "\\x16\\x03\\x03", "\\x17\\x03\\x03", "\\x15\\x03\\x03\\x00\\x02",
      "\\x14\\x03\\x03\\x00\\x01\\x01", "\\x01\\x00", "GET ", "\\x00\\x2b", "\\x00\\x33",
      "\\x03\\x04", "\\x00\\x10", "http/1.1", "localhost"};
    FILE *fp = fopen(dict, "w");
    if (!fp) {
      perror(dict);
      exit(1);
    }
    for (size_t i = 0; i < sizeof words / sizeof *words; i++) fprintf(fp, "\"%s\"\n", words[i]);
    fclose(fp);
    exit(0);
  }
  return 0;
}

#define RESP "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  uint8_t cfg = data[0];
  data++, size--;
  static const size_t chunks[16] = {1, 2, 3, 5, 7, 16, 64, 100, 512, 1000, 4096,
                                    5000, 16384, 16389, 65536, 1 << 20};
  size_t chunk = chunks[cfg & 15];
  lh_conn_t c;
  lh_conn_init(&c, LH_ROLE_SERVER, (cfg & 16) ? &small : &large);
  lh_tls_t *t;
  if (lh_tls_new(server, NULL, NULL, &t)) abort();
  int failed = 0, sent = 0;
  size_t off = 0;
  for (int round = 0; off < size || round == 0; round++) {
    char *p;
    long room = lh_tls_in_space(t, &p);
    if (room < 0) break;
    size_t k = size - off;
    if (k > chunk) k = chunk;
    if (k > (size_t)room) k = (size_t)room;
    memcpy(p, data + off, k);
    lh_tls_in_commit(t, k);
    off += k;
    if (off == size && (cfg & 32)) lh_tls_in_eof(t);
    size_t n;
    int r = lh_tls_recv(t, &c, &n);
    if (r < 0 && r != LH_ENOMEM && !(r >= LH_ETLS && r <= LH_ETLS_CONFIG)) abort();
    if (failed && r != LH_ETLS) abort(); /* a failure sticks */
    if (r < 0) failed = 1;
    if (r > 2) abort();
    if (n && !lh_tls_is_done(t)) abort(); /* no plaintext before the handshake */
    if (n) c.rbuf.off = c.rbuf.len;       /* the reader takes it */
    if (lh_tls_is_done(t) && !sent) {
      lh_wq_append(&c.wq, RESP, sizeof RESP - 1);
      sent = 1;
    }
    if (lh_tls_send(t, &c.wq) < 0) failed = 1;
    /* the peer reads everything we write */
    lh_wq_t *q = lh_tls_out(t);
    const char *o;
    size_t on;
    if (lh_wq_pending(q) > LH_TLS_OUT_HIGH + 17 * 1024 + 8192) abort();
    while ((on = lh_wq_peek(q, &o)) > 0) lh_wq_consume(q, on);
    if (k == 0 && r != 2) break; /* no room and nothing left to give */
    if (failed) break;
  }
  lh_tls_close(t);
  lh_tls_free(t);
  lh_conn_free(&c);
  return 0;
}
