/* Checks that the two readers of parse.c agree, that the line parser does
 * not depend on how the bytes arrive, and that both give what the reference
 * reader of ref_head.h gives: the same bytes go to a parser that may take
 * the fast path, to one that sends every head through the line parser
 * (slow_only), both with all the bytes at once, to a slow_only one given
 * one more byte per call, and to ref_head; head after head as a pipelined
 * stream. Used by test_conn (fixed cases and their mutations) and fuzz_head. */
#ifndef LH_HEAD_DIFF_H
#define LH_HEAD_DIFF_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parse.h"
#include "ref_head.h"

/* the head in p from `data` on, given one more byte per call */
static int head_by_bytes(lh_parser_t *p, char *data, size_t size) {
  int r = 0;
  for (size_t k = 1; k <= size && r == 0; k++) r = lh_parser_head(p, data, k);
  return r;
}

/* what differs, in `why` (NULL when all agree); the number of heads that
 * were compared in *nheads */
static const char *head_diff(const char *in, size_t size, const lh_limits_t *lim,
                             int *nheads, char *why, size_t whylen) {
  lh_parser_t a, b, c;
  char *data = malloc(size ? size : 1);
  memcpy(data, in, size);
  lh_parser_init(&a, LH_ROLE_SERVER, lim);
  lh_parser_init(&b, LH_ROLE_SERVER, lim);
  lh_parser_init(&c, LH_ROLE_SERVER, lim);
  b.slow_only = c.slow_only = 1;
  const char *res = NULL;
  size_t off = 0;
  *nheads = 0;
#define DIFF(...) do { snprintf(why, whylen, __VA_ARGS__); res = why; goto out; } while (0)
  for (int k = 0; k < 64 && off < size; k++) {
    int ra = lh_parser_head(&a, data + off, size - off);
    int rb = lh_parser_head(&b, data + off, size - off);
    int rc = head_by_bytes(&c, data + off, size - off);
    if (ra != rb) DIFF("head %d at %zu: fast %d, slow %d", k, off, ra, rb);
    if (rb != rc) DIFF("head %d at %zu: slow %d, byte by byte %d", k, off, rb, rc);
    static ref_head_t ref;
    ref_head(data + off, size - off, lim, &ref);
    int st = rb < 0 ? lh_error_status(rb) : rb;
    if (st != ref.r) DIFF("head %d at %zu: slow %d (%s), reference %d", k, off, st,
                          rb < 0 ? lh_err_name(rb) : "", ref.r);
    if (ra != 1) break;
    (*nheads)++;
    for (int pass = 0; pass < 2; pass++) {
      const lh_head_t *x = pass ? &c.head : &a.head, *y = &b.head;
      const char *who = pass ? "bytes" : "fast";
#define SAME(f) if (x->f != y->f) DIFF("head %d: %s %s %lld, slow %lld", k, #f, who, \
                                       (long long)x->f, (long long)y->f)
      SAME(len); SAME(method.off); SAME(method.len); SAME(target.off); SAME(target.len);
      SAME(major); SAME(minor); SAME(method_id); SAME(content_length); SAME(nfields);
      SAME(keep_alive); SAME(expect_continue); SAME(chunked); SAME(upgrade); SAME(has_body);
      SAME(te_trailers);
      for (uint32_t i = 0; i < x->nfields; i++) {
        SAME(fields[i].name.off); SAME(fields[i].name.len); SAME(fields[i].value.len);
        SAME(fields[i].value.off);
      }
#undef SAME
    }
    {
      const lh_head_t *y = &b.head;
#define REF(f, g) if ((long long)(f) != (long long)(g)) DIFF("head %d: %s slow %lld, reference %lld", \
                                                             k, #f, (long long)(f), (long long)(g))
      REF(y->len, ref.len); REF(y->method.off, ref.method.off); REF(y->method.len, ref.method.len);
      REF(y->target.off, ref.target.off); REF(y->target.len, ref.target.len);
      REF(y->minor, ref.minor); REF(y->nfields, ref.nfields); REF(y->keep_alive, ref.keep_alive);
      REF(y->expect_continue, ref.expect); REF(y->chunked, ref.chunked); REF(y->upgrade, ref.upgrade);
      REF(y->has_body, ref.has_body); REF(y->te_trailers, ref.te_trailers);
      REF(y->content_length, ref.length);
      for (uint32_t i = 0; i < y->nfields && i < ref.nfields; i++) {
        REF(y->fields[i].name.off, ref.name[i].off); REF(y->fields[i].name.len, ref.name[i].len);
        REF(y->fields[i].value.off, ref.value[i].off); REF(y->fields[i].value.len, ref.value[i].len);
      }
#undef REF
    }
    if (a.state != b.state || b.state != c.state)
      DIFF("head %d: state fast %d, slow %d, bytes %d", k, a.state, b.state, c.state);
    /* a body follows, or no next head would be read (lh_conn_try_keep_alive) */
    if (a.state != LH_PARSE_DONE || !a.head.keep_alive || a.head.upgrade) break;
    off += a.head.len;
    lh_parser_next(&a);
    lh_parser_next(&b);
    lh_parser_next(&c);
  }
#undef DIFF
out:
  lh_parser_free(&a);
  lh_parser_free(&b);
  lh_parser_free(&c);
  free(data);
  return res;
}

#endif
