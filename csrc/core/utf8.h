/* An incremental UTF-8 validator (RFC 3629) that fails at the first byte
 * no valid text can continue with: a text message is checked piece by
 * piece as it arrives, across frames (RFC 6455 8.1). Pure C. */
#ifndef LH_UTF8_H
#define LH_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* Where the text seen so far stopped. Zero-filled: at the start of a text. */
typedef struct {
  uint8_t need;  /* continuation bytes still due for the current character */
  uint8_t lo;    /* range of the next continuation byte (narrower right after */
  uint8_t hi;    /* E0, ED, F0 and F4: no overlongs, surrogates or > U+10FFFF) */
} lh_utf8_t;

/* checks n more bytes. returns -1 if they hold a byte no valid UTF-8 text
 * can have there (the state is then meaningless), else the number of bytes
 * of a character left incomplete at the end (0..3) */
int lh_utf8_feed(lh_utf8_t *s, const uint8_t *p, size_t n);

/* 1 when the text so far ends between characters */
static inline int lh_utf8_complete(const lh_utf8_t *s) { return s->need == 0; }

/* 1 when the whole of p[0..n) is valid UTF-8 */
int lh_utf8_valid(const uint8_t *p, size_t n);

#endif
