/* libFuzzer target: chunked request bodies against a reference decoder.
 *
 * Input: 2 header bytes, then the bytes of a chunked body.
 *   b0: bits0-1 how the message is cut into reads (whole, b1+1 bytes each,
 *       byte by byte, pseudo-random sizes up to 4*b1+4 seeded by b1),
 *       bits2-3 limits preset (head bytes and fields, which bound trailers)
 *   b1: size parameter / seed
 * A fixed head ("Transfer-Encoding: chunked") goes first; the parser reads
 * it and decodes the body in place, piece after piece, the unconsumed bytes
 * in a buffer of their own size (msg_feed.h). ref_chunked.h decodes the
 * same body from the whole buffer. Both must agree: the same outcome
 * (complete, more needed, or the same error), the same body bytes, and
 * when complete the same bytes used and the same trailer fields.
 *
 * FUZZ_WRITE_SEEDS=dir writes the seed corpus and exits; FUZZ_WRITE_DICT=file
 * writes a dictionary and exits (both used by `make fuzz-chunked`). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "fuzz_dict.h"
#include "msg_feed.h"
#include "ref_chunked.h"

#define HEAD "POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"

static const lh_limits_t LIMITS[4] = {
  {65536, 100, 8192}, {256, 4, 8192}, {96, 3, 8192}, {8192, 2, 8192}};

static const char *const SEEDS[] = {
  "5\r\nhello\r\n0\r\n\r\n",
  "5;a=b;c\r\nhello\r\n1;q=\"x\\\"y; z\"\r\n!\r\n0\r\nX-A: 1\r\nX-B:\t2 \r\n\r\n",
  "000a \t;ext\r\n0123456789\r\n0;last\r\n\r\nGET / HTTP/1.1\r\n",
  "1\r\na\r\n2\r\nbc\r\n3\r\ndef\r\n0\r\nT: v\n\n",
  "FFFFFFFFFFFFFFFF\r\nabc",
};

static const char *const DICT[] = {
  "\r\n", "0\r\n\r\n", ";", "=", "\"", "\\", " ", "\t", "0", "f", "F", "ffffffff",
  "0000000000000000", ":", "X-T: v\r\n", "\n", "\r", "\x80", "\x7f", ";a=b", ";a=\"q\"",
};

typedef struct {
  int kind, param;
  uint32_t rng;
} split_t;

static size_t piece(void *ctx, size_t left) {
  split_t *s = ctx;
  size_t k;
  switch (s->kind) {
    case 0: k = left; break;
    case 1: k = (size_t)s->param + 1; break;
    case 2: k = 1; break;
    default: {
      uint32_t x = s->rng ? s->rng : 0x9e3779b9u;
      x ^= x << 13;
      x ^= x >> 17;
      x ^= x << 5;
      s->rng = x;
      k = 1 + x % ((uint32_t)s->param * 4 + 4);
    }
  }
  return k < left ? k : left;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  const char *dir = getenv("FUZZ_WRITE_SEEDS"), *dict = getenv("FUZZ_WRITE_DICT");
  if (dir) {
    mkdir(dir, 0777);
    for (size_t i = 0; i < sizeof SEEDS / sizeof *SEEDS; i++)
      for (uint8_t cfg = 0; cfg < 16; cfg += 5) {
        char path[512];
        uint8_t pre[2] = {cfg, 3};
        snprintf(path, sizeof path, "%s/seed-%02zu-%d", dir, i, cfg);
        fuzz_write_seed(path, SEEDS[i], strlen(SEEDS[i]), pre, 2);
      }
  }
  if (dict) fuzz_write_dict(dict, DICT, sizeof DICT / sizeof *DICT);
  if (dir || dict) exit(0);
  return 0;
}

#define FAIL(...)                                      \
  do {                                                 \
    fprintf(stderr, "fuzz_chunked: " __VA_ARGS__);     \
    fprintf(stderr, "\n");                             \
    abort();                                           \
  } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2) return 0;
  const lh_limits_t *lim = &LIMITS[(data[0] >> 2) & 3];
  split_t sp = {data[0] & 3, data[1], data[1]};
  const char *body = (const char *)data + 2;
  size_t bl = size - 2, hl = sizeof HEAD - 1;
  char *in = malloc(hl + bl + 1);
  memcpy(in, HEAD, hl);
  memcpy(in + hl, body, bl);

  ref_chunked_t ref;
  ref_chunked(body, bl, lim, &ref);
  lh_parser_t p;
  feed_t f;
  lh_parser_init(&p, LH_ROLE_SERVER, lim);
  feed_message(&p, in, hl + bl, piece, &sp, 0, &f);
  if (f.head_r != 1) FAIL("head: %d", f.head_r);
  if (f.r != ref.r) FAIL("outcome: parser %d, reference %d", f.r, ref.r);
  if (f.r >= 0 && (f.body.n != ref.blen || (ref.blen && memcmp(f.body.p, ref.body, ref.blen) != 0)))
    FAIL("body: parser %zu bytes, reference %zu", f.body.n, ref.blen);
  if (f.r == 1) {
    if (f.used != ref.used) FAIL("used: parser %zu, reference %zu", f.used, ref.used);
    if ((int)p.ntrailers != ref.ntr) FAIL("trailers: parser %u, reference %d", p.ntrailers, ref.ntr);
    for (int i = 0; i < ref.ntr; i++) {
      const lh_field_t *t = &p.tfields[i];
      if (t->name.len != ref.tnlen[i] || t->value.len != ref.tvlen[i] ||
          memcmp(p.tbytes + t->name.off, body + ref.tname[i], ref.tnlen[i]) != 0 ||
          (ref.tvlen[i] && memcmp(p.tbytes + t->value.off, body + ref.tval[i], ref.tvlen[i]) != 0))
        FAIL("trailer %d differs", i);
    }
  }
  if (f.r == 0 && f.used != bl) FAIL("more needed with %zu of %zu bytes used", f.used, bl);
  mock_buf_free(&f.body);
  lh_parser_free(&p);
  ref_chunked_free(&ref);
  free(in);
  return 0;
}
