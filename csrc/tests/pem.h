/* pem.h - a certificate and/or a private key as PEM text in a malloc'd
 * string (the caller frees it), for the TLS tests (test_tls, fuzz_tls),
 * which make their certificates with OpenSSL at start. */
#ifndef LH_TEST_PEM_H
#define LH_TEST_PEM_H

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdlib.h>
#include <string.h>

static inline char *to_pem(X509 *x, EVP_PKEY *k) {
  BIO *b = BIO_new(BIO_s_mem());
  if (x) PEM_write_bio_X509(b, x);
  if (k) PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL);
  char *p;
  long n = BIO_get_mem_data(b, &p);
  char *s = malloc((size_t)n + 1);
  memcpy(s, p, (size_t)n);
  s[n] = 0;
  BIO_free(b);
  return s;
}

#endif
