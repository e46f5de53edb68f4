/* libFuzzer target: the WebSocket reader (ws.c) and the permessage-deflate
 * negotiation (wsdeflate.c).
 *
 * Input: 1 config byte, then bytes.
 *   bits 0-1: 0 server reader, 1 client reader, 2 both with permessage-deflate
 *             (server with client_no_context_takeover), 3 negotiation: the
 *             bytes are a Sec-WebSocket-Extensions value
 *   bits 2-3: limits preset
 *   bits 4-7: seed of the chop sizes
 * The bytes go to one reader whole and to another in chops, carried over as
 * a connection's read buffer would; both must make the same events (data
 * joined per message, each control frame) and end with the same error.
 * Every text message must be valid UTF-8, every close code valid, every
 * piece within the limits.
 *
 * FUZZ_WRITE_SEEDS=dir writes the seed corpus and exits; FUZZ_WRITE_DICT=file
 * writes a dictionary and exits (both used by `make fuzz-ws`). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ws.h"

typedef struct {
  uint64_t max_frame, max_message;
} limits_t;

static const limits_t LIMITS[4] = {{0, 1 << 20}, {1000, 4000}, {16, 40}, {0, 0}};

/* the events, as one byte string: kind byte, length, bytes */
typedef struct {
  uint8_t *b;
  size_t n, cap;
  uint8_t *msg;  /* the message being joined */
  size_t mn, mcap;
  int err;
} log_t;

static void put(uint8_t **b, size_t *n, size_t *cap, const void *p, size_t k) {
  if (*n + k > *cap) {
    size_t c = *cap ? *cap : 256;
    while (c < *n + k) c *= 2;
    *b = realloc(*b, c);
    if (!*b) abort();
    *cap = c;
  }
  if (k) memcpy(*b + *n, p, k);
  *n += k;
}

static void log_record(log_t *l, uint8_t kind, const void *p, size_t n) {
  uint8_t h[9];
  h[0] = kind;
  for (int i = 0; i < 8; i++) h[1 + i] = (uint8_t)((uint64_t)n >> (8 * i));
  put(&l->b, &l->n, &l->cap, h, 9);
  put(&l->b, &l->n, &l->cap, p, n);
}

static void check_event(const lh_ws_reader_t *r, const lh_ws_ev_t *ev, log_t *l) {
  if (ev->type == LH_WS_EV_DATA) {
    if (r->max_message && ev->n > r->max_message) abort();
    if (ev->first) l->mn = 0;
    put(&l->msg, &l->mn, &l->mcap, ev->p, ev->n);
    if (r->max_message && l->mn > r->max_message) abort();
    if (ev->fin) {
      if (ev->opcode == LH_WS_TEXT && !lh_utf8_valid(l->msg, l->mn)) abort();
      if (ev->opcode != LH_WS_TEXT && ev->opcode != LH_WS_BINARY) abort();
      log_record(l, (uint8_t)ev->opcode, l->msg, l->mn);
      l->mn = 0;
    }
  } else if (ev->type == LH_WS_EV_CONTROL) {
    if (ev->n > 125) abort();
    if (ev->opcode == LH_WS_CLOSE) {
      if (ev->code != 1005 && !lh_ws_close_code_valid(ev->code)) abort();
      if (!lh_utf8_valid(ev->p, ev->n)) abort();
      uint8_t c[2] = {(uint8_t)(ev->code >> 8), (uint8_t)ev->code};
      log_record(l, 0x80, c, 2);
    }
    log_record(l, (uint8_t)ev->opcode, ev->p, ev->n);
  } else {
    abort();
  }
}

static uint32_t xs(uint32_t *s) {
  uint32_t x = *s;
  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  return *s = x;
}

static void run(int role, int pmd, limits_t lim, const uint8_t *in, size_t n, uint32_t seed,
                log_t *l) {
  lh_pmd_t z;
  lh_pmd_params_t params = {0, role == LH_ROLE_SERVER, 15, 15};
  if (pmd) lh_pmd_init(&z, (lh_role_t)role, &params, -1, 8);
  lh_ws_reader_t r;
  lh_ws_reader_init(&r, (lh_role_t)role, lim.max_frame, lim.max_message, pmd ? &z : NULL);
  uint8_t *buf = malloc(n + 1);
  size_t have = 0, given = 0;
  while (given < n || have) {
    size_t add = seed ? 1 + xs(&seed) % 97 : n;
    if (add > n - given) add = n - given;
    memcpy(buf + have, in + given, add);
    have += add;
    given += add;
    size_t off = 0;
    for (;;) {
      lh_ws_ev_t ev;
      long k = lh_ws_read(&r, buf + off, have - off, &ev);
      if (k < 0) {
        l->err = (int)k;
        goto done;
      }
      if ((size_t)k > have - off) abort();
      off += (size_t)k;
      if (ev.type == LH_WS_EV_NEED) break;
      check_event(&r, &ev, l);
    }
    /* asking for more means every byte given was used */
    if (off != have) abort();
    memmove(buf, buf + off, have - off);
    have -= off;
    if (given == n) break;
  }
done:
  lh_ws_reader_free(&r);
  if (pmd) lh_pmd_free(&z);
  free(buf);
}

static void negotiate(const uint8_t *in, size_t n, uint8_t cfg) {
  lh_pmd_conf_t conf = {(uint8_t)(cfg >> 4 & 1), (uint8_t)(cfg >> 5 & 1),
                        (uint8_t)(8 + (cfg >> 6)), (uint8_t)(cfg >> 7 ? 9 : 0)};
  lh_pmd_params_t p;
  char resp[LH_PMD_HDR_MAX];
  int r = lh_pmd_server_negotiate((const char *)in, n, &conf, &p, resp);
  if (r == 1) {
    if (strlen(resp) >= LH_PMD_HDR_MAX) abort();
    /* our response must satisfy a client that sent what it allows */
    lh_pmd_conf_t client = {0, 0, 0, 0};
    lh_pmd_params_t q;
    if (p.server_max_window_bits < 8 || p.server_max_window_bits > 15) abort();
    if (p.client_max_window_bits < 8 || p.client_max_window_bits > 15) abort();
    if (lh_pmd_client_accept(resp, strlen(resp), &client, &q) != 1) abort();
    if (q.server_max_window_bits != p.server_max_window_bits ||
        q.server_no_context_takeover != p.server_no_context_takeover)
      abort();
  }
  lh_pmd_client_accept((const char *)in, n, &conf, &p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  uint8_t cfg = data[0];
  data++;
  size--;
  int mode = cfg & 3;
  if (mode == 3) {
    negotiate(data, size, cfg);
    return 0;
  }
  limits_t lim = LIMITS[(cfg >> 2) & 3];
  int pmd = mode == 2;
  if (pmd && !lim.max_message) lim.max_message = 1 << 20; /* no bombs without a limit */
  int role = mode == 1 ? LH_ROLE_CLIENT : pmd ? (cfg >> 4) & 1 : LH_ROLE_SERVER;
  log_t whole, chopped;
  memset(&whole, 0, sizeof whole);
  memset(&chopped, 0, sizeof chopped);
  run(role, pmd, lim, data, size, 0, &whole);
  run(role, pmd, lim, data, size, 0x9e3779b9u ^ (uint32_t)(cfg >> 4) * 7919u, &chopped);
  if (whole.n != chopped.n || (whole.n && memcmp(whole.b, chopped.b, whole.n)) || whole.err != chopped.err) {
    fprintf(stderr, "whole and chopped differ: %zu/%zu bytes of events, errors %d/%d\n",
            whole.n, chopped.n, whole.err, chopped.err);
    abort();
  }
  free(whole.b);
  free(whole.msg);
  free(chopped.b);
  free(chopped.msg);
  return 0;
}

/* --- seeds and dictionary --- */

static size_t frame(uint8_t *out, int fin, int rsv, int op, const void *p, size_t n, int masked) {
  static const uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};
  size_t h = lh_wsf_header(out, fin, rsv, op, n, masked ? key : NULL);
  if (masked) lh_ws_mask_copy(out + h, p, n, key, 0);
  else memcpy(out + h, p, n);
  return h + n;
}

static void write_seed(const char *dir, int i, uint8_t cfg, const uint8_t *p, size_t n) {
  char path[512];
  snprintf(path, sizeof path, "%s/seed-%d-%02x", dir, i, cfg);
  FILE *fp = fopen(path, "wb");
  if (!fp) {
    perror(path);
    exit(1);
  }
  fputc(cfg, fp);
  fwrite(p, 1, n, fp);
  fclose(fp);
}

static void write_seeds(const char *dir) {
  mkdir(dir, 0777);
  uint8_t b[4096];
  for (int masked = 0; masked < 2; masked++) {
    uint8_t cfg = masked ? 0 : 1;
    size_t n = 0;
    n += frame(b + n, 1, 0, LH_WS_TEXT, "Hello", 5, masked);
    n += frame(b + n, 0, 0, LH_WS_BINARY, "\x00\x01\x02", 3, masked);
    n += frame(b + n, 1, 0, LH_WS_PING, "ping", 4, masked);
    n += frame(b + n, 1, 0, LH_WS_CONT, "\x03", 1, masked);
    n += frame(b + n, 0, 0, LH_WS_TEXT, "\xce\xba\xe1", 3, masked);
    n += frame(b + n, 1, 0, LH_WS_CONT, "\xbd\xb9", 2, masked);
    n += frame(b + n, 1, 0, LH_WS_PONG, "", 0, masked);
    n += frame(b + n, 1, 0, LH_WS_CLOSE, "\x03\xe8" "bye", 5, masked);
    write_seed(dir, 0, cfg, b, n);
    write_seed(dir, 1, (uint8_t)(cfg | 0x54), b, n);
    n = frame(b, 1, 0, LH_WS_BINARY, b + 1000, 300, masked);
    write_seed(dir, 2, cfg, b, n);
    n = frame(b, 1, 0, LH_WS_TEXT, "\xf4\x90\x80\x80", 4, masked);
    write_seed(dir, 3, cfg, b, n);
  }
  /* compressed, as a client sends them (RFC 7692 7.2.3 examples) */
  static const uint8_t hello[] = {0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00};
  static const uint8_t again[] = {0xf2, 0x00, 0x11, 0x00, 0x00};
  static const uint8_t stored[] = {0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00};
  size_t n = 0;
  n += frame(b + n, 1, LH_WS_RSV1, LH_WS_TEXT, hello, sizeof hello, 1);
  n += frame(b + n, 1, LH_WS_RSV1, LH_WS_TEXT, again, sizeof again, 1);
  n += frame(b + n, 0, LH_WS_RSV1, LH_WS_BINARY, stored, 4, 1);
  n += frame(b + n, 1, 0, LH_WS_PING, "", 0, 1);
  n += frame(b + n, 1, 0, LH_WS_CONT, stored + 4, sizeof stored - 4, 1);
  write_seed(dir, 4, 2, b, n);
  n = 0;
  n += frame(b + n, 1, LH_WS_RSV1, LH_WS_TEXT, hello, sizeof hello, 0);
  n += frame(b + n, 1, 0, LH_WS_TEXT, "plain", 5, 0);
  write_seed(dir, 5, 0x12, b, n);
  static const char *ext[] = {
    "permessage-deflate; client_max_window_bits",
    "permessage-deflate; server_max_window_bits=10; client_no_context_takeover, permessage-deflate",
    "x-webkit-deflate-frame, permessage-deflate; server_no_context_takeover; client_max_window_bits=\"9\"",
  };
  for (int i = 0; i < 3; i++) write_seed(dir, 6 + i, 3 | (uint8_t)(i << 6), (const uint8_t *)ext[i], strlen(ext[i]));
}

static void write_dict(const char *path) {
  static const char *const words[] = {
    "\\x81\\x85", "\\x01\\x83", "\\x80\\x83", "\\x89\\x80", "\\x8a\\x80", "\\x88\\x82\\x03\\xe8",
    "\\xc1\\x87", "\\x82\\xfe\\x01\\x00", "\\x82\\xff\\x00\\x00\\x00\\x00\\x00\\x01\\x00\\x00",
    "\\x00\\x00\\xff\\xff", "\\xce\\xba", "\\xf4\\x90\\x80\\x80", "\\xed\\xa0\\x80",
    "permessage-deflate", "server_no_context_takeover", "client_no_context_takeover",
    "server_max_window_bits", "client_max_window_bits", "=15", "=8", "; ", ", ", "\\\"",
  };
  FILE *fp = fopen(path, "w");
  if (!fp) {
    perror(path);
    exit(1);
  }
  for (size_t i = 0; i < sizeof words / sizeof *words; i++) fprintf(fp, "\"%s\"\n", words[i]);
  fclose(fp);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  const char *dir = getenv("FUZZ_WRITE_SEEDS"), *dict = getenv("FUZZ_WRITE_DICT");
  if (dir) {
    write_seeds(dir);
    exit(0);
  }
  if (dict) {
    write_dict(dict);
    exit(0);
  }
  return 0;
}
