#include "decode.h"

#include <string.h>

#include "parse.h" /* lh_tchar */

/* RFC 9112 7.1:
 *   chunk          = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
 *   last-chunk     = 1*("0") [ chunk-ext ] CRLF
 *   chunk-ext      = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
 *   chunk-ext-val  = token / quoted-string
 * Every state but CS_DATA reads one byte of a size line or of the CRLF
 * after the data. Bare LF ends no line here: RFC 9112 2.2 allows it in the
 * head's lines only. */
enum {
  CS_SIZE0 = 0, /* a size line begins: a hex digit */
  CS_SIZE,      /* more digits, then ';', BWS or CR */
  CS_BWS,       /* whitespace that must end in ';' */
  CS_EXT_PRE,   /* after ';': BWS, then a name */
  CS_EXT_NAME,  /* name characters, then BWS, '=', ';' or CR */
  CS_NAME_BWS,  /* whitespace after a name: '=' or ';' follows */
  CS_EXT_EQ,    /* after '=': BWS, then a token or a quoted string */
  CS_EXT_TOKEN, /* value characters, then BWS, ';' or CR */
  CS_QUOTED,    /* inside a quoted string */
  CS_QUOTED_ESC,/* after a backslash in a quoted string */
  CS_QUOTED_END,/* after the closing quote: BWS, ';' or CR */
  CS_SIZE_LF,   /* CR of a size line seen: LF */
  CS_DATA,      /* remaining bytes of chunk data */
  CS_DATA_CR,   /* the CRLF after the data */
  CS_DATA_LF,
  CS_TRAILERS   /* the last chunk was read */
};

void lh_decoder_length(lh_decoder_t *d, uint64_t n) {
  memset(d, 0, sizeof *d);
  d->kind = LH_DEC_LENGTH;
  d->remaining = n;
}

void lh_decoder_chunked(lh_decoder_t *d) {
  memset(d, 0, sizeof *d);
  d->kind = LH_DEC_CHUNKED;
  d->state = CS_SIZE0;
}

void lh_decoder_eof(lh_decoder_t *d) {
  memset(d, 0, sizeof *d);
  d->kind = LH_DEC_EOF;
}

static inline int hexval(unsigned char c) {
  if (c >= '0' && c <= '9') return c - '0';
  c |= 0x20;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

static inline int is_ws(unsigned char c) { return c == ' ' || c == '\t'; }

/* qdtext and the bytes a quoted-pair may escape (RFC 9110 5.6.4): HTAB,
 * SP, VCHAR and obs-text; qdtext leaves out '"' and '\' */
static inline int is_qtext(unsigned char c) { return c == '\t' || (c >= 0x20 && c != 0x7f); }

/* the state after byte c of a size line in state s, CS_SIZE_LF after its
 * CR, or -1 when c cannot stand there. The size itself is taken by the caller */
static int size_line_step(int s, unsigned char c) {
  switch (s) {
    case CS_SIZE:
      if (c == ';') return CS_EXT_PRE;
      if (is_ws(c)) return CS_BWS;
      break;
    case CS_BWS:
      if (c == ';') return CS_EXT_PRE;
      if (is_ws(c)) return CS_BWS;
      return -1;
    case CS_EXT_PRE:
      if (is_ws(c)) return CS_EXT_PRE;
      return lh_tchar[c] ? CS_EXT_NAME : -1;
    case CS_EXT_NAME:
      if (lh_tchar[c]) return CS_EXT_NAME;
      if (c == '=') return CS_EXT_EQ;
      if (c == ';') return CS_EXT_PRE;
      if (is_ws(c)) return CS_NAME_BWS;
      break;
    case CS_NAME_BWS:
      if (is_ws(c)) return CS_NAME_BWS;
      if (c == '=') return CS_EXT_EQ;
      if (c == ';') return CS_EXT_PRE;
      return -1;
    case CS_EXT_EQ:
      if (is_ws(c)) return CS_EXT_EQ;
      if (c == '"') return CS_QUOTED;
      return lh_tchar[c] ? CS_EXT_TOKEN : -1;
    case CS_EXT_TOKEN:
      if (lh_tchar[c]) return CS_EXT_TOKEN;
      if (c == ';') return CS_EXT_PRE;
      if (is_ws(c)) return CS_BWS;
      break;
    case CS_QUOTED:
      if (c == '"') return CS_QUOTED_END;
      if (c == '\\') return CS_QUOTED_ESC;
      return is_qtext(c) ? CS_QUOTED : -1;
    case CS_QUOTED_ESC:
      return is_qtext(c) ? CS_QUOTED : -1;
    case CS_QUOTED_END:
      if (c == ';') return CS_EXT_PRE;
      if (is_ws(c)) return CS_BWS;
      break;
    default:
      return -1;
  }
  return c == '\r' ? CS_SIZE_LF : -1;
}

/* one byte of framing (every state but CS_DATA). 0 or a negative code */
static int chunked_step(lh_decoder_t *d, unsigned char c) {
  int v, s = d->state;
  switch (s) {
    case CS_SIZE0:
    case CS_SIZE:
      v = hexval(c);
      if (v >= 0) {
        /* RFC 9112 7.1: recipients must anticipate large sizes and guard
         * against overflow; leading zeros past sixteen digits count as
         * extension bytes */
        if (d->remaining > (UINT64_MAX >> 4)) return LH_EPARSE_CHUNK;
        d->remaining = d->remaining << 4 | (uint64_t)v;
        if ((d->digits > 16 || ++d->digits > 16) && ++d->ext > LH_CHUNK_EXT_MAX)
          return LH_EPARSE_CHUNK_EXT;
        d->state = CS_SIZE;
        return 0;
      }
      if (s == CS_SIZE0) return LH_EPARSE_CHUNK;
      break;
    case CS_SIZE_LF:
      if (c != '\n') return LH_EPARSE_CHUNK;
      d->digits = 0;
      d->state = d->remaining ? CS_DATA : CS_TRAILERS;
      return 0;
    case CS_DATA_CR:
      if (c != '\r') return LH_EPARSE_CHUNK;
      d->state = CS_DATA_LF;
      return 0;
    case CS_DATA_LF:
      if (c != '\n') return LH_EPARSE_CHUNK;
      d->state = CS_SIZE0;
      return 0;
  }
  int next = size_line_step(s, c);
  if (next < 0) return LH_EPARSE_CHUNK;
  if (next != CS_SIZE_LF && ++d->ext > LH_CHUNK_EXT_MAX) return LH_EPARSE_CHUNK_EXT;
  d->state = (uint8_t)next;
  return 0;
}

/* hex digit values plus one; 0 for other bytes */
static const uint8_t hex1[256] = {
  ['0'] = 1, ['1'] = 2, ['2'] = 3, ['3'] = 4, ['4'] = 5, ['5'] = 6, ['6'] = 7, ['7'] = 8,
  ['8'] = 9, ['9'] = 10, ['a'] = 11, ['b'] = 12, ['c'] = 13, ['d'] = 14, ['e'] = 15,
  ['f'] = 16, ['A'] = 11, ['B'] = 12, ['C'] = 13, ['D'] = 14, ['E'] = 15, ['F'] = 16,
};

/* the usual size line whole at data + i: up to 16 digits and CRLF, no
 * extension. Returns the bytes it took (the size in *size), 0 when the
 * line is not such a one or not whole: then it goes byte by byte */
static inline size_t plain_size_line(const char *data, size_t i, size_t len, uint64_t *size) {
  const unsigned char *u = (const unsigned char *)data;
  uint64_t v = 0;
  size_t j = i, end = len - i > 16 ? i + 16 : len;
  unsigned h;
  while (j < end && (h = hex1[u[j]])) {
    v = v << 4 | (h - 1);
    j++;
  }
  if (j == i || j + 2 > len || u[j] != '\r' || u[j + 1] != '\n') return 0;
  *size = v;
  return j + 2 - i;
}

/* Chunk data stays where it is; the data of the chunks after it is moved
 * up behind it, until the run is DEC_RUN bytes long: the rest is handed
 * out in later calls, as moving more costs more than another piece */
#define DEC_RUN (8 * 1024)

static int chunked_decode(lh_decoder_t *d, char *data, size_t len, size_t *consumed,
                          size_t *body_off, size_t *body_len) {
  size_t i = 0, w = 0, start = 0, k;
  int r = 0, run = 0;
  while (i < len) {
    /* the usual chunk: data, CRLF, a plain size line, without a trip
     * through the byte machine */
    if (d->state == CS_DATA) {
      if (!run) {
        run = 1;
        start = w = i;
      } else if (w != i && w - start >= DEC_RUN) {
        break;
      }
      k = len - i;
      if (k > d->remaining) k = (size_t)d->remaining;
      if (w != i) memmove(data + w, data + i, k);
      w += k;
      i += k;
      d->remaining -= k;
      if (d->remaining) break;
      d->state = CS_DATA_CR;
    }
    if (d->state == CS_DATA_CR && i + 2 <= len && data[i] == '\r' && data[i + 1] == '\n') {
      i += 2;
      d->state = CS_SIZE0;
    }
    if (d->state == CS_SIZE0 && (k = plain_size_line(data, i, len, &d->remaining))) {
      i += k;
      if (d->remaining) {
        d->state = CS_DATA;
        continue;
      }
      d->state = CS_TRAILERS;
      r = LH_DEC_TRAILERS;
      break;
    }
    if (i == len) break;
    if ((r = chunked_step(d, (unsigned char)data[i++])) < 0) break;
    if (d->state == CS_TRAILERS) {
      r = LH_DEC_TRAILERS;
      break;
    }
  }
  *consumed = i;
  *body_off = start;
  *body_len = w - start;
  return r;
}

int lh_decoder_decode(lh_decoder_t *d, char *data, size_t len, size_t *consumed,
                      size_t *body_off, size_t *body_len) {
  *body_off = 0;
  switch (d->kind) {
    case LH_DEC_LENGTH: {
      size_t k = len;
      if (k > d->remaining) k = (size_t)d->remaining;
      d->remaining -= k;
      *consumed = *body_len = k;
      return d->remaining == 0 ? LH_DEC_DONE : 0;
    }
    case LH_DEC_EOF:
      *consumed = *body_len = len;
      return 0;
    case LH_DEC_CHUNKED:
      if (d->state == CS_TRAILERS) {
        *consumed = *body_len = 0;
        return LH_DEC_TRAILERS;
      }
      return chunked_decode(d, data, len, consumed, body_off, body_len);
  }
  return LH_EPARSE_INTERNAL;
}
