/*
 * wsclient.c - WebSocket load client for bench/ws.sh (epoll, one thread).
 *
 *   wsclient echo PORT PATH CONNS SIZE SECONDS [text|binary]
 *       CONNS connections; each sends a masked message of SIZE bytes, waits
 *       for its echo (checked: same length and bytes), sends the next, for
 *       SECONDS. Prints "msgs N seconds S errors E": echoes received.
 *   wsclient pace PORT PATH CONNS SIZE SECONDS RATE
 *       the same at a fixed offered rate: each connection sends its next
 *       message RATE/CONNS times a second at most (when its echo has come and
 *       its time is due), so that servers are compared at the same load
 *       (bench/ws.sh with RATE: CPU time per message) rather than saturated.
 *   wsclient rounds PORT PATH SIZE N
 *       one connection, N round trips of SIZE bytes, then a close (for
 *       bench/ws.sh's callgrind figure).
 *   wsclient idle PORT PATH N [HOLD_S]
 *       N connections (at most 256 handshaking at a time); each sends one
 *       small message and reads its echo, then stays open and idle. Prints
 *       "ready OK FAILED" when all are done, then holds them until HOLD_S
 *       seconds pass (default 60) or SIGTERM.
 *
 * Server frames may be fragmented (continuations are joined) and must not be
 * masked; pings are answered with pongs.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef struct {
  int fd;
  int state;          /* 0 handshake sent, 1 open, 2 failed/closed */
  char *in;           /* received bytes */
  size_t in_len, in_cap;
  char *out;          /* bytes to send */
  size_t out_len, out_off;
  size_t msg_got;     /* echo bytes gathered for the current message */
  int done_one;       /* idle mode: the one echo came */
  int waiting;        /* pace mode: the echo came, the next is not due yet */
  double due;         /* pace mode: when the next message may go */
} conn_t;

static int port;
static const char *path;
static size_t msg_size;
static int opcode = 2;
static char *frame;   /* the masked message, built once */
static size_t frame_len;
static const uint8_t key[4] = {0x12, 0x34, 0x56, 0x78};
static volatile sig_atomic_t stop_flag;
static long msgs, errors;
static long max_msgs;   /* rounds: stop after this many echoes */
static double interval; /* pace: seconds between a connection's messages; 0: closed loop */

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void on_term(int sig) {
  (void)sig;
  stop_flag = 1;
}

static void build_frame(void) {
  size_t hl = msg_size < 126 ? 2 : msg_size < 65536 ? 4 : 10;
  frame_len = hl + 4 + msg_size;
  frame = malloc(frame_len);
  frame[0] = (char)(0x80 | opcode);
  if (hl == 2) frame[1] = (char)(0x80 | msg_size);
  else if (hl == 4) {
    frame[1] = (char)(0x80 | 126);
    frame[2] = (char)(msg_size >> 8);
    frame[3] = (char)msg_size;
  } else {
    frame[1] = (char)(0x80 | 127);
    for (int i = 0; i < 8; i++) frame[2 + i] = (char)((uint64_t)msg_size >> (56 - 8 * i));
  }
  memcpy(frame + hl, key, 4);
  for (size_t i = 0; i < msg_size; i++) frame[hl + 4 + i] = (char)(('a' + i % 26) ^ key[i & 3]);
}

static int connect_one(void) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  if (fd < 0) return -1;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0 && errno != EINPROGRESS) {
    close(fd);
    return -1;
  }
  return fd;
}

static void queue(conn_t *c, const char *p, size_t n) {
  if (c->out_off == c->out_len) c->out_off = c->out_len = 0;
  char *q = realloc(c->out, c->out_len + n);
  if (!q) abort();
  c->out = q;
  memcpy(c->out + c->out_len, p, n);
  c->out_len += n;
}

static void start(conn_t *c) {
  char req[512];
  int n = snprintf(req, sizeof req,
                   "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                   "Sec-WebSocket-Version: 13\r\n\r\n", path, port);
  queue(c, req, (size_t)n);
}

static int flush_out(conn_t *c) {
  while (c->out_off < c->out_len) {
    ssize_t w = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
    if (w < 0) return errno == EAGAIN ? 0 : -1;
    c->out_off += (size_t)w;
  }
  return 0;
}

/* parses what arrived: -1 on error, else 0; counts finished echoes */
static int parse(conn_t *c, int idle) {
  for (;;) {
    if (c->state == 0) {
      char *e = memmem(c->in, c->in_len, "\r\n\r\n", 4);
      if (!e) return 0;
      if (c->in_len < 12 || memcmp(c->in + 9, "101", 3)) return -1;
      size_t hl = (size_t)(e - c->in) + 4;
      memmove(c->in, c->in + hl, c->in_len - hl);
      c->in_len -= hl;
      c->state = 1;
      c->due = now();
      queue(c, frame, frame_len);
      continue;
    }
    if (c->in_len < 2) return 0;
    uint8_t *b = (uint8_t *)c->in;
    if (b[1] & 0x80) return -1;
    size_t n = b[1] & 0x7f, hl = 2;
    if (n == 126) {
      if (c->in_len < 4) return 0;
      n = (size_t)b[2] << 8 | b[3];
      hl = 4;
    } else if (n == 127) {
      if (c->in_len < 10) return 0;
      n = 0;
      for (int i = 0; i < 8; i++) n = n << 8 | b[2 + i];
      hl = 10;
    }
    if (c->in_len < hl + n) return 0;
    int op = b[0] & 0x0f, fin = b[0] >> 7;
    if (op == 9) {
      char pong[2 + 4 + 125];
      pong[0] = (char)0x8a;
      pong[1] = (char)(0x80 | n);
      memcpy(pong + 2, key, 4);
      for (size_t i = 0; i < n; i++) pong[6 + i] = (char)(b[hl + i] ^ key[i & 3]);
      queue(c, pong, 6 + n);
    } else if (op == 8) {
      return -1;
    } else if (op == 0 || op == 1 || op == 2) {
      for (size_t i = 0; i < n; i++)
        if (b[hl + i] != (uint8_t)('a' + (c->msg_got + i) % 26)) return -1;
      c->msg_got += n;
      if (fin) {
        if (c->msg_got != msg_size) return -1;
        c->msg_got = 0;
        msgs++;
        if (idle) c->done_one = 1;
        else if (max_msgs && msgs >= max_msgs) stop_flag = 1;
        else if (interval > 0) c->waiting = 1; /* sent when due (run) */
        else if (!stop_flag) queue(c, frame, frame_len);
      }
    }
    memmove(c->in, c->in + hl + n, c->in_len - hl - n);
    c->in_len -= hl + n;
  }
}

static int read_in(conn_t *c) {
  for (;;) {
    if (c->in_cap - c->in_len < 65536) {
      size_t cap = c->in_cap ? c->in_cap * 2 : 131072;
      while (cap - c->in_len < 65536) cap *= 2;
      c->in = realloc(c->in, cap);
      c->in_cap = cap;
    }
    ssize_t r = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
    if (r > 0) {
      c->in_len += (size_t)r;
      continue;
    }
    if (r == 0) return -1;
    return errno == EAGAIN ? 0 : -1;
  }
}

static void fail(conn_t *c, int ep) {
  if (c->state == 2) return;
  c->state = 2;
  errors++;
  epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
  close(c->fd);
}

static void run(int nconns, double seconds, int idle, double hold) {
  int ep = epoll_create1(0);
  conn_t *cs = calloc((size_t)nconns, sizeof *cs);
  int opened = 0, ready = 0;
  double t0 = now(), deadline = t0 + seconds;
  struct epoll_event evs[256];
  int printed = 0;
  long start_msgs = 0;
  double start_t = t0;
  for (;;) {
    /* open more while fewer than 256 are still handshaking */
    while (opened < nconns && opened - ready < 256) {
      conn_t *c = &cs[opened];
      c->fd = connect_one();
      if (c->fd < 0) {
        c->state = 2;
        errors++;
        opened++;
        continue;
      }
      start(c);
      struct epoll_event ev = {EPOLLIN | EPOLLOUT | EPOLLET, {.ptr = c}};
      epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
      opened++;
    }
    int timeout = 100;
    if (interval > 0) { /* wake for the next connection due */
      double t = now(), first = t + 0.1;
      for (int k = 0; k < opened; k++)
        if (cs[k].waiting && cs[k].due + interval < first) first = cs[k].due + interval;
      timeout = first <= t ? 0 : (int)((first - t) * 1000) + 1;
    }
    int n = epoll_wait(ep, evs, 256, timeout);
    for (int i = 0; i < n; i++) {
      conn_t *c = evs[i].data.ptr;
      if (c->state == 2) continue;
      int was_done = c->done_one;
      if ((evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && (read_in(c) < 0 || parse(c, idle) < 0)) {
        fail(c, ep);
        continue;
      }
      if (flush_out(c) < 0) fail(c, ep);
      if (idle && c->done_one && !was_done) ready++;
    }
    if (interval > 0 && !stop_flag) {
      double t = now();
      for (int k = 0; k < opened; k++) {
        conn_t *c = &cs[k];
        if (!c->waiting || c->state != 1 || c->due + interval > t) continue;
        /* keep to the rate, but do not make up for more than one late slot */
        c->due = c->due + interval < t - interval ? t : c->due + interval;
        c->waiting = 0;
        queue(c, frame, frame_len);
        if (flush_out(c) < 0) fail(c, ep);
      }
    }
    if (!idle) {
      /* count from when every connection is open */
      if (!printed && opened == nconns) {
        printed = 1;
        start_msgs = msgs;
        start_t = now();
        deadline = start_t + seconds;
      }
      if (stop_flag || (printed && now() >= deadline)) break;
    } else {
      int failed = 0;
      for (int k = 0; k < opened; k++) failed += cs[k].state == 2;
      if (!printed && opened == nconns && ready + failed >= nconns) {
        printf("ready %d %d\n", ready, failed);
        fflush(stdout);
        printed = 1;
        deadline = now() + hold;
      }
      if (stop_flag || (printed && now() >= deadline)) break;
      if (!printed && now() - t0 > 120) {
        printf("ready %d %d\n", ready, nconns - ready);
        fflush(stdout);
        break;
      }
    }
  }
  if (!idle) printf("msgs %ld seconds %.3f errors %ld\n", msgs - start_msgs, now() - start_t, errors);
  for (int k = 0; k < opened; k++)
    if (cs[k].state != 2) close(cs[k].fd);
}

int main(int argc, char **argv) {
  if (argc < 6) {
    fprintf(stderr, "usage: wsclient echo PORT PATH CONNS SIZE SECONDS [text|binary]\n"
                    "       wsclient pace PORT PATH CONNS SIZE SECONDS RATE\n"
                    "       wsclient rounds PORT PATH SIZE N\n"
                    "       wsclient idle PORT PATH N [HOLD_S]\n");
    return 2;
  }
  signal(SIGTERM, on_term);
  signal(SIGINT, on_term);
  signal(SIGPIPE, SIG_IGN);
  port = atoi(argv[2]);
  path = argv[3];
  if (!strcmp(argv[1], "echo")) {
    if (argc < 7) return 2;
    msg_size = (size_t)atol(argv[5]);
    if (argc > 7 && !strcmp(argv[7], "text")) opcode = 1;
    build_frame();
    run(atoi(argv[4]), atof(argv[6]), 0, 0);
    return errors ? 1 : 0;
  }
  if (!strcmp(argv[1], "pace")) {
    if (argc < 8) return 2;
    int nconns = atoi(argv[4]);
    double rate = atof(argv[7]);
    if (nconns < 1 || rate <= 0) return 2;
    msg_size = (size_t)atol(argv[5]);
    interval = nconns / rate;
    build_frame();
    run(nconns, atof(argv[6]), 0, 0);
    return errors ? 1 : 0;
  }
  if (!strcmp(argv[1], "rounds")) {
    msg_size = (size_t)atol(argv[4]);
    max_msgs = atol(argv[5]);
    build_frame();
    run(1, 1e9, 0, 0);
    return errors || msgs < max_msgs ? 1 : 0;
  }
  if (!strcmp(argv[1], "idle")) {
    msg_size = 16;
    build_frame();
    run(atoi(argv[4]), 0, 1, argc > 5 ? atof(argv[5]) : 60);
    return 0;
  }
  return 2;
}
