#include "wsframe.h"

#include <string.h>

int lh_wsf_parse(const uint8_t *p, size_t n, lh_wsf_t *f) {
  if (n < 2) return 0;
  size_t need = 2;
  uint64_t len = p[1] & 0x7f;
  if (len == 126) need += 2;
  else if (len == 127) need += 8;
  if (p[1] & 0x80) need += 4;
  if (n < need) return 0;
  f->fin = p[0] >> 7;
  f->rsv = (p[0] >> 4) & 7;
  f->opcode = p[0] & 0x0f;
  f->masked = p[1] >> 7;
  const uint8_t *q = p + 2;
  if (len == 126) {
    len = (uint64_t)q[0] << 8 | q[1];
    q += 2;
  } else if (len == 127) {
    if (q[0] & 0x80) return -1;
    len = 0;
    for (int i = 0; i < 8; i++) len = len << 8 | q[i];
    q += 8;
  }
  f->len = len;
  if (f->masked) memcpy(f->mask, q, 4);
  return (int)need;
}

size_t lh_wsf_header(uint8_t *out, int fin, int rsv, int opcode, uint64_t len,
                     const uint8_t *mask) {
  size_t i = 2;
  out[0] = (uint8_t)((fin ? 0x80 : 0) | (rsv & 7) << 4 | (opcode & 0x0f));
  uint8_t m = mask ? 0x80 : 0;
  if (len < 126) {
    out[1] = (uint8_t)(m | len);
  } else if (len <= 0xffff) {
    out[1] = m | 126;
    out[2] = (uint8_t)(len >> 8);
    out[3] = (uint8_t)len;
    i = 4;
  } else {
    out[1] = m | 127;
    for (int k = 0; k < 8; k++) out[2 + k] = (uint8_t)(len >> (56 - 8 * k));
    i = 10;
  }
  if (mask) {
    memcpy(out + i, mask, 4);
    i += 4;
  }
  return i;
}

/* the key as eight bytes in memory order, starting at offset off */
static uint64_t key_word(const uint8_t key[4], unsigned off) {
  uint8_t b[12];
  memcpy(b, key, 4);
  memcpy(b + 4, key, 4);
  memcpy(b + 8, key, 4);
  uint64_t w;
  memcpy(&w, b + off, 8);
  return w;
}

/* words, then the tail; memcpy makes a word of any address (a payload
 * follows a header of 2 to 14 bytes, so it is seldom aligned). dst may be
 * src: each word is read whole before it is written */
unsigned lh_ws_mask_copy(uint8_t *dst, const uint8_t *src, size_t n, const uint8_t key[4],
                         unsigned off) {
  off &= 3;
  if (n >= 8) {
    uint64_t k = key_word(key, off);
    for (; n >= 8; dst += 8, src += 8, n -= 8) {
      uint64_t w;
      memcpy(&w, src, 8);
      w ^= k;
      memcpy(dst, &w, 8);
    }
  }
  while (n--) {
    *dst++ = *src++ ^ key[off];
    off = (off + 1) & 3;
  }
  return off;
}

unsigned lh_ws_mask(uint8_t *p, size_t n, const uint8_t key[4], unsigned off) {
  return lh_ws_mask_copy(p, p, n, key, off);
}
