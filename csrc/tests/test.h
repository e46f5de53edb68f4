/* A tiny TAP harness. One function per behaviour; CHECK* record a failure
 * (file:line and a message as a TAP diagnostic) and go on, REQUIRE* also
 * return from the test function. The runner prints "1..N" and one
 * "ok K - name" / "not ok K - name" line per test, and main returns non-zero
 * when any test failed. */
#ifndef LH_TEST_H
#define LH_TEST_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  const char *name;
  void (*fn)(void);
} test_case_t;

#define TEST_CASE(fn) { #fn, fn }

static int t_cur_failed;
/* what the current sub-case is ("whole", "bytes", ...), shown with failures */
static const char *t_ctx;

__attribute__((unused, format(printf, 3, 4)))
static void t_fail(const char *file, int line, const char *fmt, ...) {
  va_list ap;
  t_cur_failed++;
  fflush(stdout);
  printf("# %s:%d: ", file, line);
  if (t_ctx) printf("[%s] ", t_ctx);
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  printf("\n");
  fflush(stdout);
}

/* prints bytes with CR, LF and non-printables escaped */
__attribute__((unused))
static void t_dump(const char *label, const char *p, size_t n) {
  printf("#   %s (%zu bytes): \"", label, n);
  for (size_t i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)p[i];
    if (ch == '\r') printf("\\r");
    else if (ch == '\n') printf("\\n");
    else if (ch == '"' || ch == '\\') printf("\\%c", ch);
    else if (ch < 32 || ch > 126) printf("\\x%02x", ch);
    else putchar(ch);
    if (i >= 600 && n > 640) {
      printf("...");
      break;
    }
  }
  printf("\"\n");
}

__attribute__((unused))
static int t_mem_eq(const char *file, int line, const char *what, const char *got,
                    size_t got_n, const char *exp, size_t exp_n) {
  if (got_n == exp_n && (exp_n == 0 || memcmp(got, exp, exp_n) == 0)) return 1;
  size_t i = 0;
  while (i < got_n && i < exp_n && got[i] == exp[i]) i++;
  t_fail(file, line, "%s: bytes differ from offset %zu", what, i);
  if (i > 40) {
    size_t from = i - 40;
    t_dump("expected, from there", exp + from, exp_n - from);
    t_dump("got, from there     ", got + from, got_n - from);
  }
  t_dump("expected", exp, exp_n);
  t_dump("got     ", got ? got : "", got ? got_n : 0);
  return 0;
}

#define CHECK(cond)                                                       \
  do {                                                                    \
    if (!(cond)) t_fail(__FILE__, __LINE__, "check failed: %s", #cond);   \
  } while (0)

#define REQUIRE(cond)                                                     \
  do {                                                                    \
    if (!(cond)) {                                                        \
      t_fail(__FILE__, __LINE__, "required: %s", #cond);                  \
      return;                                                             \
    }                                                                     \
  } while (0)

#define CHECK_EQ(got, exp)                                                    \
  do {                                                                        \
    long long t_g_ = (long long)(got), t_e_ = (long long)(exp);               \
    if (t_g_ != t_e_)                                                         \
      t_fail(__FILE__, __LINE__, "%s == %s: got %lld, expected %lld", #got,   \
             #exp, t_g_, t_e_);                                               \
  } while (0)

#define REQUIRE_EQ(got, exp)                                                  \
  do {                                                                        \
    long long t_g_ = (long long)(got), t_e_ = (long long)(exp);               \
    if (t_g_ != t_e_) {                                                       \
      t_fail(__FILE__, __LINE__, "%s == %s: got %lld, expected %lld", #got,   \
             #exp, t_g_, t_e_);                                               \
      return;                                                                 \
    }                                                                         \
  } while (0)

/* bytes [p, p+n) equal the C string literal or string s */
#define CHECK_MEM(p, n, s) \
  ((void)t_mem_eq(__FILE__, __LINE__, #p, (p), (n), (s), strlen(s)))

#define CHECK_STR(got, exp)                                                     \
  do {                                                                          \
    const char *t_g_ = (got), *t_e_ = (exp);                                    \
    if (!t_g_ || strcmp(t_g_, t_e_))                                            \
      t_fail(__FILE__, __LINE__, "%s: got \"%s\", expected \"%s\"", #got,       \
             t_g_ ? t_g_ : "(null)", t_e_);                                     \
  } while (0)

__attribute__((unused))
static int t_run(const test_case_t *tests, size_t n) {
  int failed = 0;
  printf("1..%zu\n", n);
  for (size_t i = 0; i < n; i++) {
    t_cur_failed = 0;
    t_ctx = NULL;
    tests[i].fn();
    t_ctx = NULL;
    if (t_cur_failed) failed++;
    printf("%sok %zu - %s\n", t_cur_failed ? "not " : "", i + 1, tests[i].name);
    fflush(stdout);
  }
  if (failed) printf("# %d of %zu failed\n", failed, n);
  return failed ? 1 : 0;
}

#define T_RUN(arr) t_run((arr), sizeof(arr) / sizeof((arr)[0]))

#endif
