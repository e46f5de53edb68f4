/* libFuzzer target: parse.c's two request-head readers against each other.
 *
 * Input: 1 header byte (bits 0-1: limits preset), then a byte stream of
 * request heads. The stream goes head after head to a parser that may take
 * the fast path, to one that sends every head through the line parser, and
 * to a line parser given one more byte per call; all must give the same
 * result for each head (complete, incomplete or the same error) and, when
 * complete, the same spans, version, method, framing and keep-alive. See
 * head_diff.h.
 *
 * FUZZ_WRITE_SEEDS=dir writes the seed corpus and exits; FUZZ_WRITE_DICT=file
 * writes a dictionary and exits (both used by `make fuzz-head`). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "fuzz_dict.h"
#include "head_diff.h"

static const lh_limits_t LIMITS[4] = {
  {65536, 100, 8192}, {8192, 8, 8192}, {64, 4, 16}, {200, 3, 30}};

static const char *const SEEDS[] = {
  "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
  "GET /a/b?c=d&e=%20f HTTP/1.1\r\nHost: example.com:8080\r\nAccept: */*\r\n\r\n",
  "HEAD /h HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
  "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET / HTTP/1.0\r\n\r\n",
  "DELETE /d HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nEmpty:\r\nT:\tv \r\n\r\n",
  "OPTIONS /o HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
  "POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
  "POST /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
  "OPTIONS * HTTP/1.1\r\nHost: [::1]:8080\r\n\r\nCONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n",
  "\r\nGET http://h:1/p?q HTTP/1.2\nHost: h\nX: \x80\xff\n\n",
};

static const char *const DICT[] = {
  "GET ", "HEAD ", "POST ", "PUT ", "PATCH ", "DELETE ", "OPTIONS ", "CONNECT ",
  " HTTP/1.1\r\n", " HTTP/1.0\r\n", "\r\n", "\r\n\r\n", "Host: x\r\n", "Content-Length: ",
  "Transfer-Encoding: chunked\r\n", "Connection: ", "close", "keep-alive", "upgrade",
  "Upgrade: ", "Proxy-Connection: ", "Expect: 100-continue\r\n", ":", "\t", " ", "?", "%",
  "#", "*", "http://h/", "\\", "<", ">", "`", "{", "^", "Transfer-Encoding: ", "chunked",
  "gzip, ", "Content-Length: 5\r\n",
  "Host: [::1]:80\r\n", "HTTP/1.2", "\n", "\r", "\x80", "\x7f", "\"",
};

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  const char *dir = getenv("FUZZ_WRITE_SEEDS"), *dict = getenv("FUZZ_WRITE_DICT");
  if (dir) {
    mkdir(dir, 0777);
    for (size_t i = 0; i < sizeof SEEDS / sizeof *SEEDS; i++)
      for (uint8_t cfg = 0; cfg < 4; cfg++) {
        char path[512];
        snprintf(path, sizeof path, "%s/seed-%02zu-%d", dir, i, cfg);
        fuzz_write_seed(path, SEEDS[i], strlen(SEEDS[i]), &cfg, 1);
      }
  }
  if (dict) fuzz_write_dict(dict, DICT, sizeof DICT / sizeof *DICT);
  if (dir || dict) exit(0);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  const lh_limits_t *lim = &LIMITS[data[0] & 3];
  char why[256];
  int n;
  const char *d = head_diff((const char *)data + 1, size - 1, lim, &n, why, sizeof why);
  if (d) {
    fprintf(stderr, "fuzz_head: %s\n", d);
    abort();
  }
  return 0;
}
