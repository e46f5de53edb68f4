/*
 * hclient.c - tiny HTTP/1.1 client used by bench/idle.sh and bench/callgrind.sh.
 *
 *   hclient seq  PORT N [PATH]      one keep-alive connection, N requests one after
 *                                   another, each response read fully; exit 1 on any
 *                                   non-200 or error.
 *   hclient pipe PORT N DEPTH [PATH] one keep-alive connection, N requests sent in
 *                                   batches of DEPTH written at once (pipelined);
 *                                   every batch's responses read before the next.
 *   hclient close PORT N            N connections one after another, each sending
 *                                   one request with "Connection: close" and reading
 *                                   its response until the server closes.
 *   hclient upload PORT N SIZE [CHUNK]
 *                                   one keep-alive connection, N requests
 *                                   "POST /up" one after another, each with a
 *                                   chunked body of SIZE bytes in chunks of
 *                                   CHUNK bytes (default 16384), written at
 *                                   once; each response must be 200 with the
 *                                   byte count as its body (bench/stream.lua).
 *   hclient idle PORT N [HOLD_S]    open N connections (at most 256 connecting at a
 *                                   time); each sends one request and reads the full
 *                                   response, then stays open and idle.  Prints
 *                                   "ready OK FAILED" when all are done, then holds
 *                                   them until HOLD_S seconds pass (default 60)
 *                                   or SIGTERM.
 *
 * Responses are framed by Content-Length or by chunked encoding (chunks walked,
 * trailers skipped); a response with neither has no body (as the hello servers'
 * responses always carry one of the two).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static char req[512];
static size_t req_len;

/* 0: incomplete, >0: bytes of a complete response, -1: malformed. *status set. */
static long response_complete(const char *buf, size_t len, int *status) {
    const char *end = memmem(buf, len, "\r\n\r\n", 4);
    if (!end) return 0;
    size_t head = (size_t)(end - buf) + 4;
    if (len < 12 || memcmp(buf, "HTTP/1.", 7) != 0) return -1;
    *status = atoi(buf + 9);
    long clen = -1;
    int chunked = 0;
    for (const char *p = buf; p < end;) {
        const char *nl = memmem(p, (size_t)(end - p), "\r\n", 2);
        if (!nl) nl = end;
        if ((size_t)(nl - p) > 15 && strncasecmp(p, "content-length:", 15) == 0)
            clen = atol(p + 15);
        else if ((size_t)(nl - p) > 18 && strncasecmp(p, "transfer-encoding:", 18) == 0 &&
                 memmem(p, (size_t)(nl - p), "chunked", 7))
            chunked = 1;
        p = nl + 2;
    }
    if (chunked) {
        /* walk the chunks: size line, data, CRLF; the last chunk (size 0)
         * ends at the blank line after any trailer fields */
        size_t at = head;
        for (;;) {
            const char *nl = memmem(buf + at, len - at, "\r\n", 2);
            if (!nl) return 0;
            char *endp;
            unsigned long size = strtoul(buf + at, &endp, 16);
            if (endp == buf + at) return -1;
            at = (size_t)(nl - buf) + 2;
            if (size == 0) {
                const char *fin = memmem(buf + at - 2, len - (at - 2), "\r\n\r\n", 4);
                return fin ? (long)(fin - buf) + 4 : 0;
            }
            if (len - at < size + 2) return 0;
            at += size + 2;
        }
    }
    if (clen < 0) clen = 0; /* hello servers always send a length */
    if (len - head < (size_t)clen) return 0;
    return (long)(head + (size_t)clen);
}

static int connect_to(int port, int nonblock) {
    int fd = socket(AF_INET, SOCK_STREAM | (nonblock ? SOCK_NONBLOCK : 0), 0);
    if (fd < 0) return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((unsigned short)port) };
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    return fd;
}

static int run_seq(int port, long n, long depth) {
    int fd = connect_to(port, 0);
    if (fd < 0) { perror("connect"); return 1; }
    static char buf[1 << 16];
    static char batch[1 << 14];
    size_t have = 0;
    if (depth < 1 || (size_t)depth * req_len > sizeof batch) { fprintf(stderr, "bad depth\n"); return 2; }
    for (long d = 0; d < depth; d++) memcpy(batch + (size_t)d * req_len, req, req_len);
    for (long i = 0; i < n; i++) {
        if (i % depth == 0) {
            size_t k = (size_t)(n - i < depth ? n - i : depth) * req_len;
            if (write(fd, batch, k) != (ssize_t)k) { perror("write"); return 1; }
        }
        for (;;) {
            int status = 0;
            long r = response_complete(buf, have, &status);
            if (r < 0) { fprintf(stderr, "malformed response\n"); return 1; }
            if (r > 0) {
                if (status != 200) { fprintf(stderr, "status %d\n", status); return 1; }
                memmove(buf, buf + r, have - (size_t)r);
                have -= (size_t)r;
                break;
            }
            if (have == sizeof buf) { fprintf(stderr, "response too big\n"); return 1; }
            ssize_t k = read(fd, buf + have, sizeof buf - have);
            if (k <= 0) { fprintf(stderr, "read: connection closed after %ld responses\n", i); return 1; }
            have += (size_t)k;
        }
    }
    close(fd);
    printf("%ld\n", n);
    return 0;
}

/* POST /up with a chunked body of size bytes in chunks of chunk bytes, the
 * same bytes for every request, written with one write() each */
static int run_upload(int port, long n, long size, long chunk) {
    if (size < 0 || chunk < 1) { fprintf(stderr, "bad size or chunk\n"); return 2; }
    size_t cap = (size_t)size + ((size_t)size / (size_t)chunk + 1) * 24 + 256;
    char *msg = malloc(cap);
    if (!msg) return 1;
    size_t len = (size_t)snprintf(msg, cap, "POST /up HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                                  "Transfer-Encoding: chunked\r\n\r\n", port);
    for (long left = size; left > 0;) {
        long k = left < chunk ? left : chunk;
        len += (size_t)snprintf(msg + len, cap - len, "%lx\r\n", k);
        memset(msg + len, 'x', (size_t)k);
        len += (size_t)k;
        memcpy(msg + len, "\r\n", 2);
        len += 2;
        left -= k;
    }
    memcpy(msg + len, "0\r\n\r\n", 5);
    len += 5;
    int fd = connect_to(port, 0);
    if (fd < 0) { perror("connect"); return 1; }
    static char buf[1 << 16];
    char want[32];
    snprintf(want, sizeof want, "%ld", size);
    size_t have = 0;
    for (long i = 0; i < n; i++) {
        for (size_t off = 0; off < len;) {
            ssize_t w = write(fd, msg + off, len - off);
            if (w <= 0) { perror("write"); return 1; }
            off += (size_t)w;
        }
        for (;;) {
            int status = 0;
            long r = response_complete(buf, have, &status);
            if (r < 0) { fprintf(stderr, "malformed response\n"); return 1; }
            if (r > 0) {
                const char *body = memmem(buf, (size_t)r, "\r\n\r\n", 4) + 4;
                if (status != 200 || (size_t)(buf + r - body) != strlen(want) ||
                    memcmp(body, want, strlen(want)) != 0) {
                    fprintf(stderr, "request %ld: status %d or wrong count\n", i, status);
                    return 1;
                }
                memmove(buf, buf + r, have - (size_t)r);
                have -= (size_t)r;
                break;
            }
            if (have == sizeof buf) { fprintf(stderr, "response too big\n"); return 1; }
            ssize_t k = read(fd, buf + have, sizeof buf - have);
            if (k <= 0) { fprintf(stderr, "read: connection closed after %ld responses\n", i); return 1; }
            have += (size_t)k;
        }
    }
    close(fd);
    free(msg);
    printf("%ld\n", n);
    return 0;
}

static int run_close(int port, long n) {
    static char buf[4096];
    for (long i = 0; i < n; i++) {
        int fd = connect_to(port, 0);
        if (fd < 0) { perror("connect"); return 1; }
        if (write(fd, req, req_len) != (ssize_t)req_len) { perror("write"); return 1; }
        size_t have = 0;
        ssize_t k;
        while (have < sizeof buf && (k = read(fd, buf + have, sizeof buf - have)) > 0) have += (size_t)k;
        close(fd);
        int status = 0;
        long r = response_complete(buf, have, &status);
        if (r <= 0 || (size_t)r != have || status != 200) {
            fprintf(stderr, "connection %ld: bad or incomplete response (%zu bytes)\n", i, have);
            return 1;
        }
    }
    printf("%ld\n", n);
    return 0;
}

struct iconn { int fd; int state; /* 0 connecting/sending, 1 reading, 2 done, 3 failed */ size_t have; char buf[512]; };

static volatile sig_atomic_t stop_flag;
static void on_term(int sig) { (void)sig; stop_flag = 1; }

static int run_idle(int port, long n, int hold) {
    struct iconn *cs = calloc((size_t)n, sizeof *cs);
    int ep = epoll_create1(0);
    long next = 0, active = 0, ok = 0, failed = 0;
    const long max_active = 256;
    struct epoll_event evs[256];
    time_t deadline = time(NULL) + 120;
    while ((ok + failed) < n && time(NULL) < deadline) {
        while (next < n && active < max_active) {
            struct iconn *c = &cs[next];
            c->fd = connect_to(port, 1);
            if (c->fd < 0) { c->state = 3; failed++; next++; continue; }
            struct epoll_event ev = { .events = EPOLLOUT, .data.u64 = (unsigned long)next };
            epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
            next++; active++;
        }
        int k = epoll_wait(ep, evs, 256, 1000);
        for (int i = 0; i < k; i++) {
            struct iconn *c = &cs[evs[i].data.u64];
            int fail = 0, done = 0;
            if (c->state == 0) {
                int err = 0; socklen_t el = sizeof err;
                getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
                if (err || write(c->fd, req, req_len) != (ssize_t)req_len) fail = 1;
                else {
                    c->state = 1;
                    struct epoll_event ev = { .events = EPOLLIN, .data.u64 = evs[i].data.u64 };
                    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
                }
            } else if (c->state == 1) {
                ssize_t r = read(c->fd, c->buf + c->have, sizeof c->buf - c->have);
                if (r <= 0) fail = !(r < 0 && errno == EAGAIN);
                else {
                    int status = 0;
                    c->have += (size_t)r;
                    long cr = response_complete(c->buf, c->have, &status);
                    if (cr < 0 || (cr > 0 && status != 200)) fail = 1;
                    else if (cr > 0) done = 1;
                    else if (c->have == sizeof c->buf) fail = 1;
                }
            }
            if (fail || done) {
                epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                active--;
                if (done) { c->state = 2; ok++; }
                else { c->state = 3; failed++; close(c->fd); }
            }
        }
    }
    printf("ready %ld %ld\n", ok, n - ok);
    fflush(stdout);
    time_t end = time(NULL) + hold;
    while (!stop_flag && time(NULL) < end) poll(NULL, 0, 200);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: hclient seq PORT N [PATH] | hclient pipe PORT N DEPTH | hclient close PORT N |"
                        " hclient upload PORT N SIZE [CHUNK] | hclient idle PORT N [HOLD_S]\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, on_term);
    int port = atoi(argv[2]);
    long n = atol(argv[3]);
    const char *path = "/";
    if (strcmp(argv[1], "seq") == 0 && argc > 4) path = argv[4];
    if (strcmp(argv[1], "pipe") == 0 && argc > 5) path = argv[5];
    req_len = (size_t)snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n%s\r\n", path, port,
                               strcmp(argv[1], "close") == 0 ? "Connection: close\r\n" : "");
    if (strcmp(argv[1], "seq") == 0) return run_seq(port, n, 1);
    if (strcmp(argv[1], "pipe") == 0) return run_seq(port, n, argc > 4 ? atol(argv[4]) : 16);
    if (strcmp(argv[1], "close") == 0) return run_close(port, n);
    if (strcmp(argv[1], "upload") == 0)
        return run_upload(port, n, argc > 4 ? atol(argv[4]) : 65536, argc > 5 ? atol(argv[5]) : 16384);
    if (strcmp(argv[1], "idle") == 0) return run_idle(port, n, argc > 4 ? atoi(argv[4]) : 60);
    fprintf(stderr, "unknown mode %s\n", argv[1]);
    return 2;
}
