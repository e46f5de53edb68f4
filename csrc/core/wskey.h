/* The WebSocket opening handshake's keys (RFC 6455 4.2.2): SHA-1 (RFC 3174),
 * base64 (RFC 4648 section 4) and Sec-WebSocket-Accept. No OpenSSL. */
#ifndef LH_WSKEY_H
#define LH_WSKEY_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
  uint32_t h[5];
  uint64_t len;       /* bytes hashed so far */
  uint8_t buf[64];    /* a block being filled */
} lh_sha1_t;

void lh_sha1_init(lh_sha1_t *c);
void lh_sha1_update(lh_sha1_t *c, const void *p, size_t n);
void lh_sha1_final(lh_sha1_t *c, uint8_t out[20]);

/* writes the base64 of p[0..n) and a NUL to out (4 * ((n + 2) / 3) + 1
 * bytes); returns its length */
size_t lh_base64_encode(const uint8_t *p, size_t n, char *out);
/* decodes s[0..n) (padded, no whitespace) into out (3 * n / 4 bytes at
 * most); returns the length, or -1 when s is not canonical base64 */
long lh_base64_decode(const char *s, size_t n, uint8_t *out);

#define LH_WS_ACCEPT_LEN 28
/* 1 when key is a valid Sec-WebSocket-Key: base64 of 16 bytes (RFC 6455 4.1) */
int lh_ws_key_valid(const char *key, size_t n);
/* Sec-WebSocket-Accept for key: base64(SHA-1(key + GUID)), NUL-terminated */
void lh_ws_accept(const char *key, size_t n, char out[LH_WS_ACCEPT_LEN + 1]);

#endif
