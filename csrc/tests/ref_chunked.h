/* A reference decoder for chunked bodies, written for the tests apart from
 * decode.c: it reads a whole buffer top-down with the grammar of RFC 9112
 * 7.1 (chunk-size, chunk-ext with BWS, tokens and quoted strings, CRLF
 * after the size line and after the data, last-chunk, trailer section with
 * the field grammar of a request head) and decode.c's limits: extension
 * bytes (and size digits past the sixteenth) per message, trailer bytes
 * and trailer count. A wrong byte is an error where it stands; input that
 * ends before the body does is "more needed". fuzz_chunked and test_parse
 * check the parser against it. */
#ifndef LH_REF_CHUNKED_H
#define LH_REF_CHUNKED_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "decode.h"
#include "parse.h"

#define REF_MAX_TRAILERS 256 /* above every max_headers the tests use */

typedef struct {
  int r;            /* 1 complete, 0 more needed, or the LH_E* code */
  char *body;       /* the data of the chunks, in order (malloc) */
  size_t blen;
  size_t used;      /* bytes of the body, trailer section included (r == 1) */
  int ntr;          /* trailer fields; their name and value as offsets */
  size_t tname[REF_MAX_TRAILERS], tnlen[REF_MAX_TRAILERS];
  size_t tval[REF_MAX_TRAILERS], tvlen[REF_MAX_TRAILERS];
} ref_chunked_t;

static int ref_is_tchar(unsigned char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c && strchr("!#$%&'*+-.^_`|~", c));
}

static int ref_hex(unsigned char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

static int ref_ws(unsigned char c) { return c == ' ' || c == '\t'; }

/* qdtext and what a quoted-pair escapes: HTAB, SP, VCHAR, obs-text */
static int ref_qtext(unsigned char c) { return c == '\t' || (c >= 0x20 && c != 0x7f); }

/* field-vchar, SP and HTAB */
static int ref_vchar(unsigned char c) { return c == '\t' || (c >= 0x20 && c != 0x7f); }

/* one trailer field line s[a..b): 0 or an error */
static int ref_trailer(ref_chunked_t *o, const char *s, size_t a, size_t b, uint32_t max) {
  size_t i = a;
  while (i < b && ref_is_tchar((unsigned char)s[i])) i++;
  if (i == a || i == b || s[i] != ':') return LH_EPARSE_HEADER;
  size_t ne = i++;
  while (i < b && ref_ws((unsigned char)s[i])) i++;
  size_t vs = i;
  for (; i < b; i++)
    if (!ref_vchar((unsigned char)s[i])) return LH_EPARSE_HEADER;
  while (b > vs && ref_ws((unsigned char)s[b - 1])) b--;
  if ((uint32_t)o->ntr >= max) return LH_EPARSE_TOO_MANY;
  if (o->ntr >= REF_MAX_TRAILERS) abort();
  o->tname[o->ntr] = a;
  o->tnlen[o->ntr] = ne - a;
  o->tval[o->ntr] = vs;
  o->tvlen[o->ntr] = b - vs;
  o->ntr++;
  return 0;
}

static void ref_chunked(const char *s, size_t n, const lh_limits_t *lim, ref_chunked_t *o) {
  size_t i = 0;
  uint32_t ext = 0;
  memset(o, 0, sizeof *o);
  o->body = malloc(n ? n : 1);
#define R_NEED(k) do { if ((k) >= n) { o->r = 0; return; } } while (0)
#define R_BAD() do { o->r = LH_EPARSE_CHUNK; return; } while (0)
#define R_EXT() do { if (++ext > LH_CHUNK_EXT_MAX) { o->r = LH_EPARSE_CHUNK_EXT; return; } } while (0)
  for (;;) {
    /* chunk-size = 1*HEXDIG */
    uint64_t size = 0;
    int digits = 0;
    R_NEED(i);
    if (ref_hex((unsigned char)s[i]) < 0) R_BAD();
    while (i < n && ref_hex((unsigned char)s[i]) >= 0) {
      if (size >> 60) R_BAD();
      size = size * 16 + (uint64_t)ref_hex((unsigned char)s[i]);
      if (++digits > 16) R_EXT();
      i++;
    }
    /* *( BWS ";" BWS name [ BWS "=" BWS ( token / quoted-string ) ] ) CRLF */
    for (;;) {
      while (i < n && ref_ws((unsigned char)s[i])) { R_EXT(); i++; }
      R_NEED(i);
      if (s[i] == '\r') {
        if (ref_ws((unsigned char)s[i - 1])) R_BAD(); /* BWS goes before ';' or '=' only */
        break;
      }
      if (s[i] != ';') R_BAD();
      R_EXT(); i++;
      while (i < n && ref_ws((unsigned char)s[i])) { R_EXT(); i++; }
      R_NEED(i);
      if (!ref_is_tchar((unsigned char)s[i])) R_BAD();
      while (i < n && ref_is_tchar((unsigned char)s[i])) { R_EXT(); i++; }
      size_t after_name = i;
      while (i < n && ref_ws((unsigned char)s[i])) { R_EXT(); i++; }
      R_NEED(i);
      if (s[i] != '=') {
        if (s[i] == '\r' && i > after_name) R_BAD();
        if (s[i] != '\r' && s[i] != ';') R_BAD();
        continue;
      }
      R_EXT(); i++;
      while (i < n && ref_ws((unsigned char)s[i])) { R_EXT(); i++; }
      R_NEED(i);
      if (s[i] == '"') {
        R_EXT(); i++;
        for (;;) {
          R_NEED(i);
          unsigned char c = (unsigned char)s[i];
          if (c == '"') { R_EXT(); i++; break; }
          if (c == '\\') {
            R_EXT(); i++;
            R_NEED(i);
            if (!ref_qtext((unsigned char)s[i])) R_BAD();
            R_EXT(); i++;
            continue;
          }
          if (!ref_qtext(c)) R_BAD();
          R_EXT(); i++;
        }
        /* after a quoted string: BWS ";", ";" or CR */
        R_NEED(i);
        if (!ref_ws((unsigned char)s[i]) && s[i] != ';' && s[i] != '\r') R_BAD();
      } else {
        if (!ref_is_tchar((unsigned char)s[i])) R_BAD();
        while (i < n && ref_is_tchar((unsigned char)s[i])) { R_EXT(); i++; }
        R_NEED(i);
        if (!ref_ws((unsigned char)s[i]) && s[i] != ';' && s[i] != '\r') R_BAD();
      }
    }
    R_NEED(i + 1);
    if (s[i + 1] != '\n') R_BAD();
    i += 2;
    if (size == 0) break;
    /* chunk-data CRLF */
    size_t k = n - i < size ? n - i : (size_t)size;
    memcpy(o->body + o->blen, s + i, k);
    o->blen += k;
    i += k;
    if (k < size) R_NEED(n);
    R_NEED(i);
    if (s[i] != '\r') R_BAD();
    R_NEED(i + 1);
    if (s[i + 1] != '\n') R_BAD();
    i += 2;
  }
  /* trailer-section = *( field-line CRLF ), then CRLF; a line may end in
   * LF alone as in a head (RFC 9112 2.2) */
  size_t total = 0;
  for (;;) {
    size_t j = i;
    while (j < n && s[j] != '\n') j++;
    if (j == n) {
      total += n - i;
      o->r = total > lim->max_head ? LH_EPARSE_TOO_LARGE : 0;
      return;
    }
    total += j + 1 - i;
    if (total > lim->max_head) {
      o->r = LH_EPARSE_TOO_LARGE;
      return;
    }
    size_t le = j > i && s[j - 1] == '\r' ? j - 1 : j;
    if (le == i) {
      o->r = 1;
      o->used = j + 1;
      return;
    }
    if (ref_ws((unsigned char)s[i])) {
      o->r = LH_EPARSE_HEADER; /* obs-fold in a request */
      return;
    }
    int e = ref_trailer(o, s, i, le, lim->max_headers);
    if (e) {
      o->r = e;
      return;
    }
    i = j + 1;
  }
#undef R_NEED
#undef R_BAD
#undef R_EXT
}

static void ref_chunked_free(ref_chunked_t *o) {
  free(o->body);
  o->body = NULL;
}

#endif
