/* The WebSocket codec: SHA-1/base64 and the accept key, UTF-8 validation,
 * frame headers and masking, permessage-deflate negotiation and codec, and
 * the reader, each input fed whole and byte by byte. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "test.h"
#include "ws.h"
#include "wskey.h"

/* --- guard page: inputs end where reading on faults --- */

static uint8_t *guard_end;

/* a copy of p[0..n) that ends at a guard page (the reader may write into it) */
static uint8_t *at_guard(const void *p, size_t n) {
  uint8_t *q = guard_end - n;
  memcpy(q, p, n);
  return q;
}

static void hex(const uint8_t *d, size_t n, char *out) {
  for (size_t i = 0; i < n; i++) sprintf(out + 2 * i, "%02x", d[i]);
}

/* --- SHA-1, base64, accept --- */

static void sha1_hex(const void *p, size_t n, char out[41]) {
  lh_sha1_t c;
  uint8_t d[20];
  lh_sha1_init(&c);
  lh_sha1_update(&c, p, n);
  lh_sha1_final(&c, d);
  hex(d, 20, out);
}

static void sha1_matches_rfc3174_vectors(void) {
  char h[41];
  sha1_hex("abc", 3, h);
  CHECK_STR(h, "a9993e364706816aba3e25717850c26c9cd0d89d");
  sha1_hex("", 0, h);
  CHECK_STR(h, "da39a3ee5e6b4b0d3255bfef95601890afd80709");
  const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
  sha1_hex(two, strlen(two), h);
  CHECK_STR(h, "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
  /* a million 'a', fed in uneven pieces */
  lh_sha1_t c;
  uint8_t d[20], buf[997];
  memset(buf, 'a', sizeof buf);
  lh_sha1_init(&c);
  size_t left = 1000000;
  for (size_t k = 1; left; k = k % 997 + 1) {
    size_t n = k < left ? k : left;
    lh_sha1_update(&c, buf, n);
    left -= n;
  }
  lh_sha1_final(&c, d);
  hex(d, 20, h);
  CHECK_STR(h, "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
}

static void sha1_pads_at_every_length_around_a_block(void) {
  /* 55, 56 and 63, 64 bytes straddle the padding's length field */
  static const char *want[] = {
    "c1c8bbdc22796e28c0e15163d20899b65621d65a", /* 55 'a' */
    "c2db330f6083854c99d4b5bfb6e8f29f201be699", /* 56 'a' */
    "03f09f5b158a7a8cdad920bddc29b81c18a551f5", /* 63 'a' */
    "0098ba824b5c16427bd7a1122a5a442a25ec644d", /* 64 'a' */
  };
  static const size_t len[] = {55, 56, 63, 64};
  char buf[64], h[41];
  memset(buf, 'a', sizeof buf);
  for (int i = 0; i < 4; i++) {
    sha1_hex(buf, len[i], h);
    CHECK_STR(h, want[i]);
  }
}

static void accept_key_matches_rfc6455_example(void) {
  char out[LH_WS_ACCEPT_LEN + 1];
  const char *key = "dGhlIHNhbXBsZSBub25jZQ==";
  lh_ws_accept(key, strlen(key), out);
  CHECK_STR(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  CHECK(lh_ws_key_valid(key, strlen(key)));
}

static void key_must_be_base64_of_sixteen_bytes(void) {
  CHECK(!lh_ws_key_valid("dGhlIHNhbXBsZSBub25jZQ=", 23));
  CHECK(!lh_ws_key_valid("dGhlIHNhbXBsZSBub25jZR==", 24));  /* not canonical */
  CHECK(!lh_ws_key_valid("dGhlIHNhbXBsZSBub25j!Q==", 24));
  CHECK(!lh_ws_key_valid("dGhlIHNhbXBsZSBub25jZXg=", 24));  /* 17 bytes */
  CHECK(!lh_ws_key_valid("", 0));
}

static void base64_round_trips(void) {
  uint8_t in[40], back[40];
  char enc[64];
  for (size_t n = 0; n < sizeof in; n++) {
    for (size_t i = 0; i < n; i++) in[i] = (uint8_t)(i * 37 + n);
    size_t e = lh_base64_encode(in, n, enc);
    CHECK_EQ(e, 4 * ((n + 2) / 3));
    CHECK_EQ(lh_base64_decode(enc, e, back), (long)n);
    CHECK(memcmp(in, back, n) == 0);
  }
  lh_base64_encode((const uint8_t *)"foobar", 6, enc);
  CHECK_STR(enc, "Zm9vYmFy");
  lh_base64_encode((const uint8_t *)"fo", 2, enc);
  CHECK_STR(enc, "Zm8=");
  CHECK_EQ(lh_base64_decode("Zm8", 3, back), -1);
  CHECK_EQ(lh_base64_decode("Z=8=", 4, back), -1);
  CHECK_EQ(lh_base64_decode("Zm9=", 4, back), -1); /* nonzero dropped bits */
}

/* --- UTF-8 --- */

typedef struct {
  const char *what;
  const char *bytes;
  int valid;
  int bad_at;  /* invalid: index of the first byte that must fail, -1: only at the end */
} utf8_case;

static const utf8_case UTF8[] = {
  {"ascii", "Hello, World!", 1, 0},
  {"greek", "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5", 1, 0},
  {"U+0080", "\xc2\x80", 1, 0},
  {"U+07FF", "\xdf\xbf", 1, 0},
  {"U+0800", "\xe0\xa0\x80", 1, 0},
  {"U+FFFF", "\xef\xbf\xbf", 1, 0},
  {"U+D7FF", "\xed\x9f\xbf", 1, 0},
  {"U+E000", "\xee\x80\x80", 1, 0},
  {"U+10000", "\xf0\x90\x80\x80", 1, 0},
  {"U+10FFFF", "\xf4\x8f\xbf\xbf", 1, 0},
  {"overlong C0", "ab\xc0\x80", 0, 2},
  {"overlong C1", "\xc1\xbf", 0, 0},
  {"overlong E0", "\xe0\x9f\xbf", 0, 1},
  {"overlong F0", "\xf0\x8f\xbf\xbf", 0, 1},
  {"surrogate", "\xed\xa0\x80", 0, 1},
  {"surrogate high", "x\xed\xbf\xbf", 0, 2},
  {"above U+10FFFF", "\xce\xba\xf4\x90\x80\x80", 0, 3},
  {"F5", "\xf5\x80\x80\x80", 0, 0},
  {"FF", "abc\xff", 0, 3},
  {"lone continuation", "a\x80", 0, 1},
  {"ascii after lead", "\xc2" "a", 0, 1},
  {"truncated 2", "\xc2", 0, -1},
  {"truncated 3", "ab\xe2\x82", 0, -1},
  {"truncated 4", "\xf0\x9f\x98", 0, -1},
  {"long ascii then bad", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\xfe", 0, 48},
};

static void utf8_accepts_and_rejects_whole_texts(void) {
  for (size_t i = 0; i < sizeof UTF8 / sizeof *UTF8; i++) {
    t_ctx = UTF8[i].what;
    const char *b = UTF8[i].bytes;
    uint8_t *p = at_guard(b, strlen(b));
    CHECK_EQ(lh_utf8_valid(p, strlen(b)), UTF8[i].valid);
  }
}

/* an empty frame's payload may have no place at all (NULL, 0) */
static void utf8_takes_nothing_at_no_place(void) {
  lh_utf8_t s = {0, 0, 0};
  CHECK_EQ(lh_utf8_feed(&s, NULL, 0), 0);
  CHECK_EQ(lh_utf8_valid(NULL, 0), 1);
  const uint8_t half[] = {0xc3}; /* the first of two bytes */
  CHECK_EQ(lh_utf8_feed(&s, half, 1), 1);
  CHECK_EQ(lh_utf8_feed(&s, NULL, 0), 1);
}

static void utf8_fails_at_the_first_impossible_byte(void) {
  for (size_t i = 0; i < sizeof UTF8 / sizeof *UTF8; i++) {
    t_ctx = UTF8[i].what;
    const char *b = UTF8[i].bytes;
    size_t n = strlen(b);
    lh_utf8_t s = {0, 0, 0};
    int failed_at = -1;
    for (size_t k = 0; k < n; k++) {
      uint8_t *p = at_guard(b + k, 1);
      if (lh_utf8_feed(&s, p, 1) < 0) {
        failed_at = (int)k;
        break;
      }
    }
    if (UTF8[i].valid) {
      CHECK_EQ(failed_at, -1);
      CHECK(lh_utf8_complete(&s));
    } else if (UTF8[i].bad_at >= 0) {
      CHECK_EQ(failed_at, UTF8[i].bad_at);
    } else {
      CHECK_EQ(failed_at, -1);
      CHECK(!lh_utf8_complete(&s));
    }
  }
}

static void utf8_checks_every_code_point(void) {
  /* every scalar value encodes to valid text; every surrogate to invalid */
  uint8_t b[4];
  for (uint32_t cp = 0; cp <= 0x10ffff; cp++) {
    size_t n;
    if (cp < 0x80) b[0] = (uint8_t)cp, n = 1;
    else if (cp < 0x800) b[0] = (uint8_t)(0xc0 | cp >> 6), b[1] = (uint8_t)(0x80 | (cp & 63)), n = 2;
    else if (cp < 0x10000) {
      b[0] = (uint8_t)(0xe0 | cp >> 12);
      b[1] = (uint8_t)(0x80 | ((cp >> 6) & 63));
      b[2] = (uint8_t)(0x80 | (cp & 63));
      n = 3;
    } else {
      b[0] = (uint8_t)(0xf0 | cp >> 18);
      b[1] = (uint8_t)(0x80 | ((cp >> 12) & 63));
      b[2] = (uint8_t)(0x80 | ((cp >> 6) & 63));
      b[3] = (uint8_t)(0x80 | (cp & 63));
      n = 4;
    }
    int want = !(cp >= 0xd800 && cp <= 0xdfff);
    if (lh_utf8_valid(b, n) != want) {
      t_fail(__FILE__, __LINE__, "code point U+%04X: expected %s", cp, want ? "valid" : "invalid");
      return;
    }
  }
}

/* --- frames --- */

static void frame_header_parses_each_length_form(void) {
  lh_wsf_t f;
  uint8_t a[] = {0x81, 0x05};
  CHECK_EQ(lh_wsf_parse(at_guard(a, 2), 2, &f), 2);
  CHECK_EQ(f.fin, 1);
  CHECK_EQ(f.opcode, 1);
  CHECK_EQ(f.len, 5);
  CHECK_EQ(f.masked, 0);
  uint8_t b[] = {0x82, 0xfe, 0x01, 0x00, 1, 2, 3, 4};
  CHECK_EQ(lh_wsf_parse(at_guard(b, 8), 8, &f), 8);
  CHECK_EQ(f.len, 256);
  CHECK_EQ(f.masked, 1);
  CHECK_EQ(f.mask[3], 4);
  uint8_t c[] = {0x02, 0x7f, 0, 0, 0, 1, 0, 0, 0, 0};
  CHECK_EQ(lh_wsf_parse(at_guard(c, 10), 10, &f), 10);
  CHECK_EQ(f.len, 1ull << 32);
  CHECK_EQ(f.fin, 0);
  uint8_t d[] = {0x72, 0x7f, 0x80, 0, 0, 0, 0, 0, 0, 0};
  CHECK_EQ(lh_wsf_parse(at_guard(d, 10), 10, &f), -1);
  /* every shorter prefix asks for more */
  for (size_t n = 0; n < 8; n++) CHECK_EQ(lh_wsf_parse(at_guard(b, n), n, &f), 0);
  for (size_t n = 0; n < 10; n++) CHECK_EQ(lh_wsf_parse(at_guard(c, n), n, &f), 0);
  CHECK_EQ(lh_wsf_parse(at_guard(d, 10), 10, &f), -1);
}

static void frame_header_round_trips(void) {
  static const uint64_t lens[] = {0, 1, 125, 126, 127, 65535, 65536, 1ull << 32, (1ull << 63) - 1};
  uint8_t key[4] = {0xde, 0xad, 0xbe, 0xef}, h[LH_WSF_MAX];
  for (size_t i = 0; i < sizeof lens / sizeof *lens; i++) {
    for (int m = 0; m < 2; m++) {
      size_t n = lh_wsf_header(h, i & 1, LH_WS_RSV1, LH_WS_BINARY, lens[i], m ? key : NULL);
      size_t want = (lens[i] < 126 ? 2 : lens[i] < 65536 ? 4 : 10) + (m ? 4 : 0);
      CHECK_EQ(n, want);
      lh_wsf_t f;
      CHECK_EQ(lh_wsf_parse(at_guard(h, n), n, &f), (int)n);
      CHECK_EQ(f.len, lens[i]);
      CHECK_EQ(f.fin, (int)(i & 1));
      CHECK_EQ(f.rsv, LH_WS_RSV1);
      CHECK_EQ(f.masked, m);
      if (m) CHECK(memcmp(f.mask, key, 4) == 0);
    }
  }
}

static void masking_matches_bytewise_xor_at_any_alignment_and_offset(void) {
  uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};
  uint8_t src[300], a[320], b[320], c[320];
  for (size_t i = 0; i < sizeof src; i++) src[i] = (uint8_t)(i * 131 + 7);
  for (size_t align = 0; align < 8; align++)
    for (unsigned off = 0; off < 4; off++)
      for (size_t n = 0; n < 70; n += (n < 20 ? 1 : 7)) {
        memcpy(a + align, src, n);
        unsigned o = lh_ws_mask(a + align, n, key, off);
        unsigned o2 = lh_ws_mask_copy(c + align, src, n, key, off);
        for (size_t i = 0; i < n; i++) b[i] = src[i] ^ key[(off + i) & 3];
        CHECK_EQ(o, (off + n) & 3);
        CHECK_EQ(o2, (off + n) & 3);
        if (memcmp(a + align, b, n) || memcmp(c + align, b, n)) {
          t_fail(__FILE__, __LINE__, "mask differs: align %zu off %u n %zu", align, off, n);
          return;
        }
      }
  /* masking twice gives the input back, also when split unevenly */
  memcpy(a, src, 300);
  unsigned o = lh_ws_mask(a, 13, key, 0);
  o = lh_ws_mask(a + 13, 200, key, o);
  lh_ws_mask(a + 213, 87, key, o);
  lh_ws_mask(a, 300, key, 0);
  CHECK(memcmp(a, src, 300) == 0);
}

/* --- the reader --- */

/* what the reader made of an input: data per message, controls, the error */
typedef struct {
  char log[8192];   /* one line per event: "T:<hex of message>" "P:<hex>" "C:code:<reason>" */
  size_t len;
  char msg[8192];   /* the data message being gathered, hex */
  size_t mlen;
  int err;
  size_t consumed;
} trace_t;

static void trace_add(trace_t *t, const char *s) {
  size_t n = strlen(s);
  if (t->len + n + 2 > sizeof t->log) n = sizeof t->log - t->len - 2; /* cut a long line */
  if (t->len + 2 < sizeof t->log) {
    memcpy(t->log + t->len, s, n);
    t->len += n;
    t->log[t->len++] = '\n';
    t->log[t->len] = 0;
  }
}

static void trace_event(trace_t *t, const lh_ws_ev_t *ev) {
  char line[8400];
  if (ev->type == LH_WS_EV_DATA) {
    if (ev->first) t->mlen = 0;
    for (size_t i = 0; i < ev->n && t->mlen + 3 < sizeof t->msg; i++)
      t->mlen += (size_t)sprintf(t->msg + t->mlen, "%02x", ev->p[i]);
    t->msg[t->mlen] = 0;
    if (ev->fin) {
      snprintf(line, sizeof line, "%c:%s", ev->opcode == LH_WS_TEXT ? 'T' : 'B', t->msg);
      trace_add(t, line);
      t->mlen = 0;
    }
  } else if (ev->type == LH_WS_EV_CONTROL) {
    char h[260] = "";
    hex(ev->p, ev->n, h);
    if (ev->opcode == LH_WS_CLOSE) snprintf(line, sizeof line, "C:%d:%.*s", ev->code, (int)ev->n, (const char *)ev->p);
    else snprintf(line, sizeof line, "%s:%s", ev->opcode == LH_WS_PING ? "PING" : "PONG", h);
    trace_add(t, line);
  }
}

typedef struct {
  lh_role_t role;      /* the reader's */
  uint64_t max_frame, max_message;
  int pmd;             /* permessage-deflate negotiated */
  lh_pmd_params_t params;
} rcfg_t;

/* feeds in[0..n) in pieces of `step` bytes (0: whole), each piece at a
 * guard page, as a connection would: unused bytes carried to the next call */
static void run_reader(const rcfg_t *cfg, const uint8_t *in, size_t n, size_t step, trace_t *t) {
  lh_ws_reader_t r;
  lh_pmd_t z;
  memset(t, 0, sizeof *t);
  if (cfg->pmd) lh_pmd_init(&z, cfg->role, &cfg->params, -1, 8);
  lh_ws_reader_init(&r, cfg->role, cfg->max_frame, cfg->max_message, cfg->pmd ? &z : NULL);
  uint8_t *buf = malloc(n + 1);
  size_t have = 0, given = 0;
  for (;;) {
    size_t add = step ? step : n;
    if (add > n - given) add = n - given;
    memcpy(buf + have, in + given, add);
    have += add;
    given += add;
    /* the unread part moves to the guard, as the read buffer keeps it */
    uint8_t *p = at_guard(buf, have);
    size_t off = 0;
    for (;;) {
      lh_ws_ev_t ev;
      long k = lh_ws_read(&r, p + off, have - off, &ev);
      if (k < 0) {
        t->err = (int)k;
        goto done;
      }
      off += (size_t)k;
      if (ev.type == LH_WS_EV_NEED) break;
      trace_event(t, &ev);
    }
    t->consumed += off;
    memmove(buf, p + off, have - off);
    have -= off;
    if (given == n) break;
  }
done:
  lh_ws_reader_free(&r);
  if (cfg->pmd) lh_pmd_free(&z);
  free(buf);
}

/* runs the input whole, byte by byte and in 3-byte steps: same outcome */
static void expect_reader(const rcfg_t *cfg, const void *in, size_t n, const char *want_log, int want_err) {
  static const size_t steps[] = {0, 1, 3, 7};
  static const char *names[] = {"whole", "bytes", "steps of 3", "steps of 7"};
  for (int i = 0; i < 4; i++) {
    trace_t t;
    const char *ctx = t_ctx;
    t_ctx = names[i];
    run_reader(cfg, in, n, steps[i], &t);
    if (strcmp(t.log, want_log)) {
      t_fail(__FILE__, __LINE__, "events differ");
      printf("#   expected:\n%s#   got:\n%s", want_log, t.log);
    }
    CHECK_EQ(t.err, want_err);
    t_ctx = ctx;
  }
}

static const rcfg_t SERVER = {LH_ROLE_SERVER, 0, 0, 0, {0, 0, 15, 15}};
static const rcfg_t CLIENT = {LH_ROLE_CLIENT, 0, 0, 0, {0, 0, 15, 15}};

/* a frame from the client (masked) or the server */
static size_t frame(uint8_t *out, int fin, int rsv, int op, const void *payload, size_t n, int masked) {
  static const uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};
  size_t h = lh_wsf_header(out, fin, rsv, op, n, masked ? key : NULL);
  if (masked) lh_ws_mask_copy(out + h, payload, n, key, 0);
  else memcpy(out + h, payload, n);
  return h + n;
}

static void reader_reads_rfc6455_examples(void) {
  /* 5.7: a single-frame masked text message, and unmasked */
  uint8_t masked[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
  expect_reader(&SERVER, masked, sizeof masked, "T:48656c6c6f\n", 0);
  uint8_t plain[] = {0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
  expect_reader(&CLIENT, plain, sizeof plain, "T:48656c6c6f\n", 0);
  /* a fragmented unmasked text message */
  uint8_t frag[] = {0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f};
  expect_reader(&CLIENT, frag, sizeof frag, "T:48656c6c6f\n", 0);
  /* unmasked ping and masked pong */
  uint8_t ping[] = {0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
  expect_reader(&CLIENT, ping, sizeof ping, "PING:48656c6c6f\n", 0);
  uint8_t pong[] = {0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
  expect_reader(&SERVER, pong, sizeof pong, "PONG:48656c6c6f\n", 0);
  /* 256 bytes and 64 KiB binary messages in single unmasked frames */
  static uint8_t big[65536 + 10];
  uint8_t *payload = malloc(65536);
  for (int i = 0; i < 65536; i++) payload[i] = (uint8_t)i;
  size_t n = frame(big, 1, 0, LH_WS_BINARY, payload, 256, 0);
  trace_t t;
  run_reader(&CLIENT, big, n, 0, &t);
  CHECK_EQ(t.err, 0);
  CHECK_EQ(t.consumed, 260);
  n = frame(big, 1, 0, LH_WS_BINARY, payload, 65536, 0);
  CHECK_EQ(n, 65536 + 10);
  run_reader(&CLIENT, big, n, 1000, &t);
  CHECK_EQ(t.err, 0);
  CHECK_EQ(t.consumed, 65546);
  CHECK(t.len > 0 && t.log[0] == 'B');
  free(payload);
}

static void reader_passes_controls_between_fragments(void) {
  uint8_t in[200];
  size_t n = 0;
  n += frame(in + n, 0, 0, LH_WS_TEXT, "fra", 3, 1);
  n += frame(in + n, 1, 0, LH_WS_PING, "p", 1, 1);
  n += frame(in + n, 0, 0, LH_WS_CONT, "gm", 2, 1);
  n += frame(in + n, 1, 0, LH_WS_PONG, "", 0, 1);
  n += frame(in + n, 1, 0, LH_WS_CONT, "ent", 3, 1);
  n += frame(in + n, 1, 0, LH_WS_BINARY, "\0\1", 2, 1);
  n += frame(in + n, 1, 0, LH_WS_CLOSE, "\x03\xe8" "bye", 5, 1);
  expect_reader(&SERVER, in, n, "PING:70\nPONG:\nT:667261676d656e74\nB:0001\nC:1000:bye\n", 0);
}

static void reader_delivers_empty_messages_and_fragments(void) {
  uint8_t in[100];
  size_t n = 0;
  n += frame(in + n, 1, 0, LH_WS_TEXT, "", 0, 1);
  n += frame(in + n, 0, 0, LH_WS_BINARY, "", 0, 1);
  n += frame(in + n, 0, 0, LH_WS_CONT, "", 0, 1);
  n += frame(in + n, 1, 0, LH_WS_CONT, "", 0, 1);
  n += frame(in + n, 1, 0, LH_WS_CLOSE, "", 0, 1);
  expect_reader(&SERVER, in, n, "T:\nB:\nC:1005:\n", 0);
}

static void reader_ignores_what_follows_a_close(void) {
  uint8_t in[100];
  size_t n = 0;
  n += frame(in + n, 1, 0, LH_WS_CLOSE, "\x03\xe9", 2, 1);
  n += frame(in + n, 1, 0, LH_WS_TEXT, "late", 4, 1);
  n += frame(in + n, 1, 0x7, 0xf, "junk", 4, 1);
  trace_t t;
  run_reader(&SERVER, in, n, 0, &t);
  CHECK_STR(t.log, "C:1001:\n");
  CHECK_EQ(t.err, 0);
  CHECK_EQ(t.consumed, n);
}

typedef struct {
  const char *what;
  int fin, rsv, op;
  const char *payload;
  size_t n;
  int err;
} bad_frame_t;

static void reader_rejects_protocol_violations(void) {
  static const bad_frame_t bad[] = {
    {"rsv1 without deflate", 1, LH_WS_RSV1, LH_WS_TEXT, "x", 1, LH_EWS_PROTOCOL},
    {"rsv2", 1, LH_WS_RSV2, LH_WS_TEXT, "x", 1, LH_EWS_PROTOCOL},
    {"rsv3 on ping", 1, LH_WS_RSV3, LH_WS_PING, "", 0, LH_EWS_PROTOCOL},
    {"opcode 3", 1, 0, 3, "", 0, LH_EWS_PROTOCOL},
    {"opcode 7", 1, 0, 7, "x", 1, LH_EWS_PROTOCOL},
    {"opcode 0xb", 1, 0, 0xb, "", 0, LH_EWS_PROTOCOL},
    {"opcode 0xf", 1, 0, 0xf, "x", 1, LH_EWS_PROTOCOL},
    {"continuation first", 1, 0, LH_WS_CONT, "x", 1, LH_EWS_PROTOCOL},
    {"fragmented ping", 0, 0, LH_WS_PING, "x", 1, LH_EWS_PROTOCOL},
    {"ping of 126 bytes", 1, 0, LH_WS_PING, NULL, 126, LH_EWS_PROTOCOL},
    {"close of 1 byte", 1, 0, LH_WS_CLOSE, "\x03", 1, LH_EWS_PROTOCOL},
    {"close code 999", 1, 0, LH_WS_CLOSE, "\x03\xe7", 2, LH_EWS_PROTOCOL},
    {"close code 1005", 1, 0, LH_WS_CLOSE, "\x03\xed", 2, LH_EWS_PROTOCOL},
    {"close code 1016", 1, 0, LH_WS_CLOSE, "\x03\xf8", 2, LH_EWS_PROTOCOL},
    {"close code 2999", 1, 0, LH_WS_CLOSE, "\x0b\xb7", 2, LH_EWS_PROTOCOL},
    {"close code 5000", 1, 0, LH_WS_CLOSE, "\x13\x88", 2, LH_EWS_PROTOCOL},
    {"close code 65535", 1, 0, LH_WS_CLOSE, "\xff\xff", 2, LH_EWS_PROTOCOL},
    {"close reason not UTF-8", 1, 0, LH_WS_CLOSE, "\x03\xe8\xce\xba\xff", 5, LH_EWS_UTF8},
    {"text not UTF-8", 1, 0, LH_WS_TEXT, "ab\xc0\x80", 4, LH_EWS_UTF8},
    {"text cut mid character", 1, 0, LH_WS_TEXT, "ab\xe2\x82", 4, LH_EWS_UTF8},
  };
  static char big[126];
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    t_ctx = bad[i].what;
    uint8_t in[200];
    size_t n = frame(in, bad[i].fin, bad[i].rsv, bad[i].op, bad[i].payload ? bad[i].payload : big,
                     bad[i].n, 1);
    expect_reader(&SERVER, in, n, "", bad[i].err);
  }
  t_ctx = NULL;
  /* masking: a server refuses unmasked frames, a client masked ones */
  uint8_t in[20];
  size_t n = frame(in, 1, 0, LH_WS_TEXT, "x", 1, 0);
  expect_reader(&SERVER, in, n, "", LH_EWS_PROTOCOL);
  n = frame(in, 1, 0, LH_WS_TEXT, "x", 1, 1);
  expect_reader(&CLIENT, in, n, "", LH_EWS_PROTOCOL);
  /* a new message while one is fragmented */
  n = frame(in, 0, 0, LH_WS_TEXT, "a", 1, 1);
  n += frame(in + n, 1, 0, LH_WS_BINARY, "b", 1, 1);
  expect_reader(&SERVER, in, n, "", LH_EWS_PROTOCOL);
  /* a 64-bit length with its top bit set */
  uint8_t huge[] = {0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4};
  expect_reader(&SERVER, huge, sizeof huge, "", LH_EWS_PROTOCOL);
  /* after a failure, the same error every time */
  lh_ws_reader_t r;
  lh_ws_reader_init(&r, LH_ROLE_SERVER, 0, 0, NULL);
  lh_ws_ev_t ev;
  n = frame(in, 1, LH_WS_RSV2, LH_WS_TEXT, "x", 1, 1);
  CHECK_EQ(lh_ws_read(&r, in, n, &ev), LH_EWS_PROTOCOL);
  n = frame(in, 1, 0, LH_WS_TEXT, "x", 1, 1);
  CHECK_EQ(lh_ws_read(&r, in, n, &ev), LH_EWS_PROTOCOL);
  lh_ws_reader_free(&r);
}

static void reader_accepts_every_valid_close_code(void) {
  static const int ok[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012,
                           1013, 1014, 3000, 3999, 4000, 4999};
  for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
    uint8_t pl[2] = {(uint8_t)(ok[i] >> 8), (uint8_t)ok[i]}, in[20];
    size_t n = frame(in, 1, 0, LH_WS_CLOSE, pl, 2, 1);
    char want[32];
    snprintf(want, sizeof want, "C:%d:\n", ok[i]);
    expect_reader(&SERVER, in, n, want, 0);
  }
  /* a reason of 123 bytes is the most a close frame holds */
  uint8_t pl[125], in[140];
  pl[0] = 0x03;
  pl[1] = 0xe8;
  memset(pl + 2, 'r', 123);
  size_t n = frame(in, 1, 0, LH_WS_CLOSE, pl, 125, 1);
  trace_t t;
  run_reader(&SERVER, in, n, 1, &t);
  CHECK_EQ(t.err, 0);
  CHECK_EQ(strlen(t.log), strlen("C:1000:\n") + 123);
}

/* Autobahn 6.4.x in spirit: text that turns invalid must fail with the
 * bytes that make it so, before the rest of the message is given */
static void reader_fails_fast_on_utf8_inside_a_fragmented_message(void) {
  uint8_t in[100];
  size_t n1 = frame(in, 0, 0, LH_WS_TEXT, "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5", 11, 1);
  size_t n2 = frame(in + n1, 0, 0, LH_WS_CONT, "\xf4\x90\x80\x80", 4, 1);
  size_t n3 = frame(in + n1 + n2, 1, 0, LH_WS_CONT, "edited", 6, 1);
  lh_ws_reader_t r;
  lh_ws_ev_t ev;
  lh_ws_reader_init(&r, LH_ROLE_SERVER, 0, 0, NULL);
  uint8_t *p = at_guard(in, n1);
  long k = lh_ws_read(&r, p, n1, &ev);
  CHECK_EQ(k, (long)n1);
  CHECK_EQ(ev.type, LH_WS_EV_DATA);
  CHECK_EQ(ev.fin, 0);
  /* the second frame's header and first two bytes: F4 90 is already wrong */
  p = at_guard(in + n1, n2 - 2);
  k = lh_ws_read(&r, p, n2 - 2, &ev);
  CHECK_EQ(k, LH_EWS_UTF8);
  lh_ws_reader_free(&r);
  (void)n3;
  /* one frame written in chops: fails in the chop holding the bad byte */
  const char *txt = "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80" "edited";
  size_t n = frame(in, 1, 0, LH_WS_TEXT, txt, strlen(txt), 1);
  lh_ws_reader_init(&r, LH_ROLE_SERVER, 0, 0, NULL);
  size_t at = 0;
  int failed_chop = -1;
  for (int chop = 0; at < n; chop++) {
    size_t c = n - at < 4 ? n - at : 4;
    p = at_guard(in + at, c);
    size_t off = 0;
    for (;;) {
      k = lh_ws_read(&r, p + off, c - off, &ev);
      if (k < 0 || ev.type == LH_WS_EV_NEED) break;
      off += (size_t)k;
    }
    if (k < 0) {
      failed_chop = chop;
      break;
    }
    at += c;
  }
  /* header 6 bytes, then payload byte 12 (0xa0 after 0xed) is in chop 4 */
  CHECK_EQ(failed_chop, 4);
  lh_ws_reader_free(&r);
}

static void reader_enforces_frame_and_message_limits(void) {
  rcfg_t cfg = SERVER;
  cfg.max_frame = 4;
  uint8_t in[100];
  size_t n = frame(in, 1, 0, LH_WS_BINARY, "12345", 5, 1);
  expect_reader(&cfg, in, n, "", LH_EWS_TOO_LARGE);
  n = frame(in, 1, 0, LH_WS_BINARY, "1234", 4, 1);
  expect_reader(&cfg, in, n, "B:31323334\n", 0);
  cfg.max_frame = 0;
  cfg.max_message = 6;
  n = frame(in, 0, 0, LH_WS_TEXT, "1234", 4, 1);
  n += frame(in + n, 1, 0, LH_WS_CONT, "56", 2, 1);
  expect_reader(&cfg, in, n, "T:313233343536\n", 0);
  n = frame(in, 0, 0, LH_WS_TEXT, "1234", 4, 1);
  n += frame(in + n, 1, 0, LH_WS_CONT, "567", 3, 1);
  expect_reader(&cfg, in, n, "", LH_EWS_TOO_LARGE);
  /* controls are not data: a limit of 6 lets a 10-byte ping through */
  n = frame(in, 1, 0, LH_WS_PING, "0123456789", 10, 1);
  expect_reader(&cfg, in, n, "PING:30313233343536373839\n", 0);
}

/* --- permessage-deflate --- */

static void pmd_server_accepts_first_valid_offer(void) {
  lh_pmd_conf_t conf = {0, 0, 0, 0};
  lh_pmd_params_t p;
  char resp[LH_PMD_HDR_MAX];
  const char *h = "permessage-deflate; client_max_window_bits";
  CHECK_EQ(lh_pmd_server_negotiate(h, strlen(h), &conf, &p, resp), 1);
  CHECK_STR(resp, "permessage-deflate");
  CHECK_EQ(p.client_max_window_bits, 15);
  CHECK_EQ(p.server_max_window_bits, 15);
  /* a declined offer (unknown parameter), then one with a window limit */
  h = "permessage-deflate; foo, x-webkit-deflate-frame, permessage-deflate;server_max_window_bits=10;"
      " client_no_context_takeover";
  CHECK_EQ(lh_pmd_server_negotiate(h, strlen(h), &conf, &p, resp), 1);
  CHECK_STR(resp, "permessage-deflate; client_no_context_takeover; server_max_window_bits=10");
  CHECK_EQ(p.server_max_window_bits, 10);
  CHECK_EQ(p.client_no_context_takeover, 1);
  /* quoted values are values */
  h = "permessage-deflate; server_max_window_bits=\"8\"; server_no_context_takeover";
  CHECK_EQ(lh_pmd_server_negotiate(h, strlen(h), &conf, &p, resp), 1);
  CHECK_STR(resp, "permessage-deflate; server_no_context_takeover; server_max_window_bits=8");
  CHECK_EQ(p.server_max_window_bits, 8);
  /* the server's own wishes */
  lh_pmd_conf_t mine = {1, 1, 12, 10};
  h = "permessage-deflate; client_max_window_bits=12";
  CHECK_EQ(lh_pmd_server_negotiate(h, strlen(h), &mine, &p, resp), 1);
  CHECK_STR(resp, "permessage-deflate; server_no_context_takeover; client_no_context_takeover;"
                  " server_max_window_bits=12; client_max_window_bits=10");
  CHECK_EQ(p.client_max_window_bits, 10);
  /* a client that did not allow client_max_window_bits is not told one */
  h = "permessage-deflate";
  CHECK_EQ(lh_pmd_server_negotiate(h, strlen(h), &mine, &p, resp), 1);
  CHECK_STR(resp, "permessage-deflate; server_no_context_takeover; client_no_context_takeover;"
                  " server_max_window_bits=12");
  CHECK_EQ(p.client_max_window_bits, 15);
}

static void pmd_server_declines_invalid_offers(void) {
  static const char *bad[] = {
    "permessage-deflate; server_max_window_bits",      /* needs a value */
    "permessage-deflate; server_max_window_bits=7",
    "permessage-deflate; server_max_window_bits=16",
    "permessage-deflate; server_max_window_bits=010",
    "permessage-deflate; client_max_window_bits=0",
    "permessage-deflate; server_no_context_takeover=1",
    "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
    "permessage-deflate; client_max_window_bits; client_max_window_bits=9",
    "permessage-deflate; foo=bar",
    "x-deflate",
    "",
  };
  lh_pmd_conf_t conf = {0, 0, 0, 0};
  lh_pmd_params_t p;
  char resp[LH_PMD_HDR_MAX];
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    t_ctx = bad[i];
    CHECK_EQ(lh_pmd_server_negotiate(bad[i], strlen(bad[i]), &conf, &p, resp), 0);
  }
  static const char *malformed[] = {
    "permessage-deflate; ", "permessage-deflate;;", ";x", "permessage-deflate; a=\"b",
    "permessage-deflate; a=\"b c\"", "permessage deflate", "permessage-deflate; a=",
  };
  for (size_t i = 0; i < sizeof malformed / sizeof *malformed; i++) {
    t_ctx = malformed[i];
    CHECK_EQ(lh_pmd_server_negotiate(malformed[i], strlen(malformed[i]), &conf, &p, resp), -1);
  }
}

static void pmd_client_checks_the_response(void) {
  lh_pmd_conf_t conf = {0, 0, 0, 0};
  lh_pmd_params_t p;
  char offer[LH_PMD_HDR_MAX];
  lh_pmd_client_offer(&conf, offer);
  CHECK_STR(offer, "permessage-deflate; client_max_window_bits");
  const char *h = "permessage-deflate; server_no_context_takeover; client_max_window_bits=9";
  CHECK_EQ(lh_pmd_client_accept(h, strlen(h), &conf, &p), 1);
  CHECK_EQ(p.server_no_context_takeover, 1);
  CHECK_EQ(p.client_max_window_bits, 9);
  CHECK_EQ(lh_pmd_client_accept("", 0, &conf, &p), 0);
  static const char *bad[] = {
    "x-other", "permessage-deflate, permessage-deflate", "permessage-deflate; client_max_window_bits",
    "permessage-deflate; foo", "permessage-deflate; server_max_window_bits=16",
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    t_ctx = bad[i];
    CHECK_EQ(lh_pmd_client_accept(bad[i], strlen(bad[i]), &conf, &p), -1);
  }
  t_ctx = NULL;
  lh_pmd_conf_t ask = {1, 0, 10, 0};
  lh_pmd_client_offer(&ask, offer);
  CHECK_STR(offer, "permessage-deflate; server_no_context_takeover; server_max_window_bits=10;"
                   " client_max_window_bits");
  h = "permessage-deflate; server_no_context_takeover";  /* window limit not honoured */
  CHECK_EQ(lh_pmd_client_accept(h, strlen(h), &ask, &p), -1);
  h = "permessage-deflate; server_max_window_bits=10";  /* context takeover not honoured */
  CHECK_EQ(lh_pmd_client_accept(h, strlen(h), &ask, &p), -1);
  h = "permessage-deflate; server_no_context_takeover; server_max_window_bits=9";
  CHECK_EQ(lh_pmd_client_accept(h, strlen(h), &ask, &p), 1);
  CHECK_EQ(p.server_max_window_bits, 9);
}

static rcfg_t deflate_cfg(lh_role_t role) {
  rcfg_t c = {role, 0, 0, 1, {0, 0, 15, 15}};
  return c;
}

static void reader_inflates_rfc7692_examples(void) {
  rcfg_t c = deflate_cfg(LH_ROLE_CLIENT);
  /* 7.2.3.1: "Hello" compressed, and again with the first as context */
  uint8_t one[] = {0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00};
  expect_reader(&c, one, sizeof one, "T:48656c6c6f\n", 0);
  uint8_t two[] = {0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00,
                   0xc1, 0x05, 0xf2, 0x00, 0x11, 0x00, 0x00};
  expect_reader(&c, two, sizeof two, "T:48656c6c6f\nT:48656c6c6f\n", 0);
  /* 7.2.3.1 fragmented: the compressed bytes split over two frames */
  uint8_t frag[] = {0x41, 0x03, 0xf2, 0x48, 0xcd, 0x80, 0x04, 0xc9, 0xc9, 0x07, 0x00};
  expect_reader(&c, frag, sizeof frag, "T:48656c6c6f\n", 0);
  /* 7.2.3.2: a stored (uncompressed) DEFLATE block */
  uint8_t stored[] = {0xc1, 0x0b, 0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00};
  expect_reader(&c, stored, sizeof stored, "T:48656c6c6f\n", 0);
  /* 7.2.3.3: a block with BFINAL set */
  uint8_t final[] = {0xc1, 0x08, 0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00};
  expect_reader(&c, final, sizeof final, "T:48656c6c6f\n", 0);
  /* RSV1 on a continuation frame is a protocol error */
  uint8_t cont[] = {0x41, 0x03, 0xf2, 0x48, 0xcd, 0xc0, 0x04, 0xc9, 0xc9, 0x07, 0x00};
  expect_reader(&c, cont, sizeof cont, "", LH_EWS_PROTOCOL);
  /* garbage */
  uint8_t junk[] = {0xc1, 0x04, 0xff, 0xff, 0xff, 0xff};
  expect_reader(&c, junk, sizeof junk, "", LH_EWS_DEFLATE);
}

/* compresses msgs with lh_pmd_deflate as a server would send them (frames of
 * at most frag bytes), then reads them back with a client's reader */
static void deflate_round_trip(const lh_pmd_params_t *params, size_t frag, int level) {
  static const char *msgs[] = {"Hello", "Hello", "", "a much longer message, a much longer message",
                               "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"};
  lh_pmd_t tx;
  lh_pmd_init(&tx, LH_ROLE_SERVER, params, level, 8);
  uint8_t *wire = malloc(1 << 20);
  size_t n = 0;
  char want[4096] = "";
  for (int rep = 0; rep < 3; rep++)
    for (size_t i = 0; i < sizeof msgs / sizeof *msgs; i++) {
      uint8_t *buf = NULL;
      size_t len = 0, cap = 0;
      REQUIRE_EQ(lh_pmd_deflate(&tx, (const uint8_t *)msgs[i], strlen(msgs[i]), 1, &buf, &len, &cap), 0);
      size_t at = 0;
      do {
        size_t k = len - at < frag ? len - at : frag;
        n += frame(wire + n, at + k == len, at == 0 ? LH_WS_RSV1 : 0, at == 0 ? LH_WS_TEXT : LH_WS_CONT,
                   buf + at, k, 0);
        at += k;
      } while (at < len);
      free(buf);
      strcat(want, "T:");
      for (const char *s = msgs[i]; *s; s++) sprintf(want + strlen(want), "%02x", (uint8_t)*s);
      strcat(want, "\n");
    }
  lh_pmd_free(&tx);
  rcfg_t c = deflate_cfg(LH_ROLE_CLIENT);
  c.params = *params;
  expect_reader(&c, wire, n, want, 0);
  free(wire);
}

static void deflate_round_trips_with_each_negotiation(void) {
  lh_pmd_params_t p = {0, 0, 15, 15};
  t_ctx = "takeover";
  deflate_round_trip(&p, 1 << 20, -1);
  t_ctx = "fragments of 3";
  deflate_round_trip(&p, 3, -1);
  p.server_no_context_takeover = 1;
  t_ctx = "no takeover";
  deflate_round_trip(&p, 1 << 20, 9);
  p.server_no_context_takeover = 0;
  p.server_max_window_bits = 8;
  t_ctx = "window 8";
  deflate_round_trip(&p, 5, -1);
  p.server_max_window_bits = 9;
  t_ctx = "window 9, level 0";
  deflate_round_trip(&p, 1 << 20, 0);
  t_ctx = NULL;
}

static void reader_inflates_large_messages_in_bounded_pieces(void) {
  /* 1 MiB of a repeating pattern compresses to little and inflates in
   * pieces of at most LH_WS_INFLATE_CHUNK */
  size_t big = 1 << 20;
  uint8_t *msg = malloc(big);
  for (size_t i = 0; i < big; i++) msg[i] = (uint8_t)("abcdefgh"[i % 8] + (i / 65536) % 3);
  lh_pmd_params_t p = {0, 0, 15, 15};
  lh_pmd_t tx, rx;
  lh_pmd_init(&tx, LH_ROLE_CLIENT, &p, -1, 8);
  uint8_t *buf = NULL;
  size_t len = 0, cap = 0;
  REQUIRE_EQ(lh_pmd_deflate(&tx, msg, big, 1, &buf, &len, &cap), 0);
  lh_pmd_free(&tx);
  uint8_t *wire = malloc(len + 14);
  size_t n = frame(wire, 1, LH_WS_RSV1, LH_WS_BINARY, buf, len, 1);
  lh_pmd_init(&rx, LH_ROLE_SERVER, &p, -1, 8);
  lh_ws_reader_t r;
  lh_ws_reader_init(&r, LH_ROLE_SERVER, 0, 0, &rx);
  size_t off = 0, got = 0, events = 0;
  int fin = 0, same = 1;
  while (!fin) {
    lh_ws_ev_t ev;
    long k = lh_ws_read(&r, wire + off, n - off, &ev);
    REQUIRE(k >= 0);
    off += (size_t)k;
    REQUIRE(ev.type == LH_WS_EV_DATA);
    CHECK(ev.n <= LH_WS_INFLATE_CHUNK);
    if (memcmp(ev.p, msg + got, ev.n)) same = 0;
    got += ev.n;
    fin = ev.fin;
    events++;
  }
  CHECK_EQ(got, big);
  CHECK(same);
  CHECK_EQ(off, n);
  CHECK(events >= big / LH_WS_INFLATE_CHUNK);
  /* a limit below the inflated size stops it */
  lh_ws_reader_free(&r);
  lh_pmd_free(&rx);
  lh_pmd_init(&rx, LH_ROLE_SERVER, &p, -1, 8);
  lh_ws_reader_init(&r, LH_ROLE_SERVER, 0, 100000, &rx);
  n = frame(wire, 1, LH_WS_RSV1, LH_WS_BINARY, buf, len, 1);
  off = 0;
  long k;
  lh_ws_ev_t ev;
  while ((k = lh_ws_read(&r, wire + off, n - off, &ev)) >= 0 && ev.type != LH_WS_EV_NEED) off += (size_t)k;
  CHECK_EQ(k, LH_EWS_TOO_LARGE);
  lh_ws_reader_free(&r);
  lh_pmd_free(&rx);
  free(buf);
  free(wire);
  free(msg);
}

static void close_payload_is_cut_at_a_character(void) {
  uint8_t out[125];
  char reason[200];
  memset(reason, 'a', 122);
  memcpy(reason + 122, "\xce\xba", 2); /* a character across byte 123 */
  size_t n = lh_ws_close_payload(out, 1000, reason, 124);
  CHECK_EQ(n, 2 + 122);
  CHECK(lh_utf8_valid(out + 2, n - 2));
  CHECK_EQ(lh_ws_close_payload(out, 0, "x", 1), 0);
  CHECK_EQ(lh_ws_error_close_code(LH_EWS_UTF8), 1007);
  CHECK_EQ(lh_ws_error_close_code(LH_EWS_TOO_LARGE), 1009);
  CHECK_EQ(lh_ws_error_close_code(LH_EWS_PROTOCOL), 1002);
}

int main(void) {
  long pg = sysconf(_SC_PAGESIZE);
  size_t span = (size_t)pg * 64; /* room for the largest input before the guard */
  uint8_t *m = mmap(NULL, span + (size_t)pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) return 2;
  mprotect(m + span, (size_t)pg, PROT_NONE);
  guard_end = m + span;
  static const test_case_t tests[] = {
    TEST_CASE(sha1_matches_rfc3174_vectors),
    TEST_CASE(sha1_pads_at_every_length_around_a_block),
    TEST_CASE(accept_key_matches_rfc6455_example),
    TEST_CASE(key_must_be_base64_of_sixteen_bytes),
    TEST_CASE(base64_round_trips),
    TEST_CASE(utf8_accepts_and_rejects_whole_texts),
    TEST_CASE(utf8_takes_nothing_at_no_place),
    TEST_CASE(utf8_fails_at_the_first_impossible_byte),
    TEST_CASE(utf8_checks_every_code_point),
    TEST_CASE(frame_header_parses_each_length_form),
    TEST_CASE(frame_header_round_trips),
    TEST_CASE(masking_matches_bytewise_xor_at_any_alignment_and_offset),
    TEST_CASE(reader_reads_rfc6455_examples),
    TEST_CASE(reader_passes_controls_between_fragments),
    TEST_CASE(reader_delivers_empty_messages_and_fragments),
    TEST_CASE(reader_ignores_what_follows_a_close),
    TEST_CASE(reader_rejects_protocol_violations),
    TEST_CASE(reader_accepts_every_valid_close_code),
    TEST_CASE(reader_fails_fast_on_utf8_inside_a_fragmented_message),
    TEST_CASE(reader_enforces_frame_and_message_limits),
    TEST_CASE(pmd_server_accepts_first_valid_offer),
    TEST_CASE(pmd_server_declines_invalid_offers),
    TEST_CASE(pmd_client_checks_the_response),
    TEST_CASE(reader_inflates_rfc7692_examples),
    TEST_CASE(deflate_round_trips_with_each_negotiation),
    TEST_CASE(reader_inflates_large_messages_in_bounded_pieces),
    TEST_CASE(close_payload_is_cut_at_a_character),
  };
  return T_RUN(tests);
}
