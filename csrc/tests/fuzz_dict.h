/* fuzz_dict.h - what the fuzzers write when asked (FUZZ_WRITE_DICT,
 * FUZZ_WRITE_SEEDS): a libFuzzer dictionary, one quoted entry per line,
 * with '"', '\\' and bytes outside printable ASCII escaped; and seed files. */
#ifndef LH_FUZZ_DICT_H
#define LH_FUZZ_DICT_H

#include <stdio.h>
#include <stdlib.h>

static inline void fuzz_write_dict(const char *path, const char *const *dict, size_t n) {
  FILE *fp = fopen(path, "w");
  if (!fp) {
    perror(path);
    exit(1);
  }
  for (size_t i = 0; i < n; i++) {
    fputc('"', fp);
    for (const unsigned char *s = (const unsigned char *)dict[i]; *s; s++) {
      if (*s == '"' || *s == '\\') fprintf(fp, "\\%c", *s);
      else if (*s < 0x20 || *s > 0x7e) fprintf(fp, "\\x%02X", *s);
      else fputc(*s, fp);
    }
    fputs("\"\n", fp);
  }
  fclose(fp);
}

/* a seed file: the pn bytes at pre (the fuzzer's configuration bytes), then
 * the n bytes at p */
static inline void fuzz_write_seed(const char *path, const void *p, size_t n, const void *pre, size_t pn) {
  FILE *fp = fopen(path, "wb");
  if (!fp) {
    perror(path);
    exit(1);
  }
  if (pn) fwrite(pre, 1, pn, fp);
  fwrite(p, 1, n, fp);
  fclose(fp);
}

#endif
