/* Checks that parse.c's fast request-head path agrees with llhttp: the same
 * bytes go to one parser that may take the fast path and to one that sends
 * every head through llhttp (slow_only), head after head as a pipelined
 * stream. Used by test_conn (fixed cases and their mutations) and fuzz_head. */
#ifndef LH_HEAD_DIFF_H
#define LH_HEAD_DIFF_H

#include <stdio.h>
#include <string.h>

#include "parse.h"

/* what differs, in `why` (NULL when both agree); the number of heads that
 * were compared in *nheads */
static const char *head_diff(const char *data, size_t size, const lh_limits_t *lim,
                             int *nheads, char *why, size_t whylen) {
  lh_parser_t a, b;
  lh_parser_init(&a, LH_ROLE_SERVER, lim);
  lh_parser_init(&b, LH_ROLE_SERVER, lim);
  b.slow_only = 1;
  const char *res = NULL;
  size_t off = 0;
  *nheads = 0;
#define DIFF(...) do { snprintf(why, whylen, __VA_ARGS__); res = why; goto out; } while (0)
  for (int k = 0; k < 64 && off < size; k++) {
    int ra = lh_parser_head(&a, data + off, size - off);
    int rb = lh_parser_head(&b, data + off, size - off);
    if (ra != rb) DIFF("head %d at %zu: fast %d, llhttp %d", k, off, ra, rb);
    if (ra != 1) break;
    (*nheads)++;
    const lh_head_t *x = &a.head, *y = &b.head;
#define SAME(f) if (x->f != y->f) DIFF("head %d: %s fast %lld, llhttp %lld", k, #f, \
                                       (long long)x->f, (long long)y->f)
    SAME(len); SAME(method.off); SAME(method.len); SAME(target.off); SAME(target.len);
    SAME(major); SAME(minor); SAME(method_id); SAME(content_length); SAME(nfields);
    SAME(keep_alive); SAME(expect_continue); SAME(chunked); SAME(upgrade); SAME(has_body);
    for (uint32_t i = 0; i < x->nfields; i++) {
      SAME(fields[i].name.off); SAME(fields[i].name.len); SAME(fields[i].value.len);
      if (x->fields[i].value.len) SAME(fields[i].value.off);
    }
#undef SAME
    if (a.state != b.state) DIFF("head %d: state fast %d, llhttp %d", k, a.state, b.state);
    /* a body follows, or no next head would be read (lh_conn_try_keep_alive) */
    if (a.state != LH_PARSE_DONE || !x->keep_alive || x->upgrade) break;
    off += x->len;
    lh_parser_next(&a);
    lh_parser_next(&b);
  }
#undef DIFF
out:
  lh_parser_free(&a);
  lh_parser_free(&b);
  return res;
}

#endif
