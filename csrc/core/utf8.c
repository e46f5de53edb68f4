#include "utf8.h"

#include <string.h>

/* what a lead byte asks for: the number of continuation bytes (0xff: the
 * byte cannot start a character) and the range of the first of them.
 * Ranges from RFC 3629 section 4 (UTF8-2 .. UTF8-4). */
static void lead(uint8_t b, lh_utf8_t *s) {
  s->lo = 0x80;
  s->hi = 0xbf;
  if (b < 0xc2) s->need = 0xff;        /* continuation byte, or overlong C0/C1 */
  else if (b < 0xe0) s->need = 1;
  else if (b < 0xf0) {
    s->need = 2;
    if (b == 0xe0) s->lo = 0xa0;       /* overlong below U+0800 */
    else if (b == 0xed) s->hi = 0x9f;  /* surrogates U+D800..U+DFFF */
  } else if (b < 0xf5) {
    s->need = 3;
    if (b == 0xf0) s->lo = 0x90;       /* overlong below U+10000 */
    else if (b == 0xf4) s->hi = 0x8f;  /* above U+10FFFF */
  } else {
    s->need = 0xff;
  }
}

#define HIGH_BITS 0x8080808080808080ull

int lh_utf8_feed(lh_utf8_t *s, const uint8_t *p, size_t n) {
  if (n == 0) return s->need; /* p may be NULL then: no pointer arithmetic on it */
  const uint8_t *end = p + n;
  lh_utf8_t st = *s;
  while (p < end) {
    if (st.need == 0) {
      /* between characters: ASCII runs go eight bytes at a time */
      while (end - p >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        if (w & HIGH_BITS) break;
        p += 8;
      }
      while (p < end && *p < 0x80) p++;
      if (p == end) break;
      lead(*p++, &st);
      if (st.need == 0xff) return -1;
      continue;
    }
    uint8_t b = *p++;
    if (b < st.lo || b > st.hi) return -1;
    st.lo = 0x80;
    st.hi = 0xbf;
    st.need--;
  }
  *s = st;
  return st.need;
}

int lh_utf8_valid(const uint8_t *p, size_t n) {
  lh_utf8_t s = {0, 0, 0};
  return lh_utf8_feed(&s, p, n) == 0;
}
