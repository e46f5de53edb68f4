/*
 * ceiling.c - the benchmark ceiling: a canned-response HTTP/1.1 server that
 * parses nothing.  One thread, epoll (level-triggered), non-blocking accept
 * and read.  For every complete request head ("\r\n\r\n", also when split
 * across reads) it appends one fixed keep-alive "Hello, World!" response and
 * writes all of a read batch's responses with one write().  A request head
 * containing "connection: close" (any case) is answered and then the
 * connection is closed.
 *
 *   cc -O2 -o ceiling bench/ceiling.c && ./ceiling 8080
 *
 * Built with -DCEILING_LUA it is the floor of a Lua server instead: for
 * every request head it calls a handler of bench/hello.lua (the environment
 * variable VARIANT, as lhyper@VARIANT) on one plain table standing for the
 * req (bench/shapes_own.lua makes both), and writes the response the
 * handler returned: status, its header table as it is, content-length when
 * the handler gave none, and the body.  No parsing, no req object, no
 * checks: what any server running that handler must do at the least.  (A
 * "Connection: close" request still gets the canned answer.)
 *
 *   cc -O2 -DCEILING_LUA -I/usr/include/lua5.4 -o ceiling_lua bench/ceiling.c \
 *      -l:liblua5.4.a -lm -ldl && VARIANT=cl ./ceiling_lua 8080    (from the repo's top)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
#ifdef CEILING_LUA
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#endif

static const char RESP[] =
    "HTTP/1.1 200 OK\r\n"
    "Content-Type: text/plain\r\n"
    "Content-Length: 13\r\n"
    "\r\n"
    "Hello, World!";
#define RESP_LEN (sizeof(RESP) - 1)
/* the answer to a "Connection: close" request says so, as wrk expects */
static const char RESP_CLOSE[] =
    "HTTP/1.1 200 OK\r\n"
    "Content-Type: text/plain\r\n"
    "Content-Length: 13\r\n"
    "Connection: close\r\n"
    "\r\n"
    "Hello, World!";
#define RESP_CLOSE_LEN (sizeof(RESP_CLOSE) - 1)
#define BATCH 64                       /* responses prebuilt in one buffer */

static const char CLOSE_PAT[] = "connection: close";
#define CLOSE_LEN (sizeof(CLOSE_PAT) - 1)

struct conn {
    uint8_t crlf;       /* how much of "\r\n\r\n" is matched (0..3) */
    uint8_t cmatch;     /* how much of "connection: close" is matched */
    uint8_t close_seen; /* current head asked for close */
    uint8_t closing;    /* close once pending output is flushed */
    char *pend;         /* unwritten output (only after a short write) */
    size_t pend_len, pend_off;
};

static struct conn *conns;
static int nconns;
static int epfd;
static char rbuf[64 * 1024];
static char batch[BATCH * RESP_LEN];

static void conn_close(int fd) {
    struct conn *c = &conns[fd];
    free(c->pend);
    memset(c, 0, sizeof *c);
    close(fd); /* also removes it from the epoll set */
}

#ifdef CEILING_LUA
static lua_State *L;
static int handler_ref, req_ref;
static char *out;               /* the responses of one read batch */
static size_t out_len, out_cap;

static void put(const char *p, size_t n) {
    if (out_len + n > out_cap) {
        while (out_len + n > out_cap) out_cap = out_cap ? 2 * out_cap : 4096;
        out = realloc(out, out_cap);
        if (!out) { perror("ceiling_lua: realloc"); exit(1); }
    }
    memcpy(out + out_len, p, n);
    out_len += n;
}

static void put_uint(unsigned long v) {
    char b[24];
    int i = sizeof b;
    do { b[--i] = (char)('0' + v % 10); v /= 10; } while (v);
    put(b + i, sizeof b - i);
}

/* appends the response of one call of the handler */
static void lua_response(void) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, handler_ref);
    lua_rawgeti(L, LUA_REGISTRYINDEX, req_ref);
    if (lua_pcall(L, 1, 3, 0) != LUA_OK) {
        fprintf(stderr, "ceiling_lua: handler: %s\n", lua_tostring(L, -1));
        exit(1);
    }
    int status = (int)lua_tointeger(L, -3);
    put("HTTP/1.1 ", 9);
    put_uint((unsigned long)status);
    if (status == 200) put(" OK\r\n", 5);
    else put(" Status\r\n", 9);
    int has_cl = 0;
    if (lua_istable(L, -2)) {
        lua_pushnil(L);
        while (lua_next(L, -3)) {
            size_t kl, vl;
            /* (a key that is not a string is left alone: lua_next needs it as it is) */
            const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tolstring(L, -2, &kl) : NULL;
            lua_pushvalue(L, -1); /* a number value is made a string on a copy */
            const char *v = lua_tolstring(L, -1, &vl);
            if (k && v) {
                if (kl == 14 && memcmp(k, "content-length", 14) == 0) has_cl = 1;
                put(k, kl);
                put(": ", 2);
                put(v, vl);
                put("\r\n", 2);
            }
            lua_pop(L, 2);
        }
    }
    size_t bl = 0;
    const char *body = lua_tolstring(L, -1, &bl);
    if (!has_cl) {
        put("content-length: ", 16);
        put_uint((unsigned long)bl);
        put("\r\n", 2);
    }
    put("\r\n", 2);
    if (body) put(body, bl);
    lua_pop(L, 3);
}

/* loads the handler VARIANT of bench/hello.lua and the req (shapes_own.lua) */
static void lua_setup(void) {
    L = luaL_newstate();
    luaL_openlibs(L);
    lua_gc(L, LUA_GCGEN, 0, 0); /* as lua5.4 runs bench/hello.lua */
    if (luaL_loadfile(L, "bench/shapes_own.lua") != LUA_OK) {
        fprintf(stderr, "ceiling_lua: %s (run it from the repository's top)\n", lua_tostring(L, -1));
        exit(1);
    }
    lua_pushliteral(L, "handler");
    if (lua_pcall(L, 1, 2, 0) != LUA_OK || !lua_isfunction(L, -2)) {
        fprintf(stderr, "ceiling_lua: bench/shapes_own.lua: %s\n", lua_tostring(L, -1));
        exit(1);
    }
    req_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    handler_ref = luaL_ref(L, LUA_REGISTRYINDEX);
}
#endif

/* Queue the unwritten tail and wait for EPOLLOUT. */
static void keep_pending(int fd, const char *p, size_t n) {
    struct conn *c = &conns[fd];
    char *np = malloc(c->pend_len - c->pend_off + n);
    if (!np) { conn_close(fd); return; }
    size_t old = c->pend_len - c->pend_off;
    if (old) memcpy(np, c->pend + c->pend_off, old);
    memcpy(np + old, p, n);
    free(c->pend);
    c->pend = np; c->pend_off = 0; c->pend_len = old + n;
    struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT, .data.fd = fd };
    epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev);
}

/* Writes n bytes, or queues what the socket does not take (all of it when
 * output is already queued); -1 when the connection failed. */
static int write_or_keep(int fd, const char *p, size_t n) {
    if (conns[fd].pend) { keep_pending(fd, p, n); return 0; }
    ssize_t w = write(fd, p, n);
    if (w < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK) return -1;
        w = 0;
    }
    if ((size_t)w < n) keep_pending(fd, p + w, n - w);
    return 0;
}

/* Write count responses in as few writes as possible (one when count <= BATCH);
 * with last_close the last of them is the Connection: close answer. */
static int send_responses(int fd, size_t count, int last_close) {
    if (last_close && count == 1) return write_or_keep(fd, RESP_CLOSE, RESP_CLOSE_LEN);
    if (last_close) {
        if (send_responses(fd, count - 1, 0) < 0) return -1;
        return send_responses(fd, 1, 1);
    }
#ifdef CEILING_LUA
    out_len = 0;
    while (count--) lua_response();
    return write_or_keep(fd, out, out_len);
#else
    while (count) {
        size_t k = count > BATCH ? BATCH : count;
        count -= k;
        if (write_or_keep(fd, batch, k * RESP_LEN) < 0) return -1;
    }
    return 0;
#endif
}

static void on_readable(int fd) {
    struct conn *c = &conns[fd];
    ssize_t n = read(fd, rbuf, sizeof rbuf);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
        conn_close(fd);
        return;
    }
    if (n < 0) return;

    size_t heads = 0;
    int close_now = 0;
    uint8_t crlf = c->crlf, cm = c->cmatch;
    for (ssize_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)rbuf[i];
        /* "\r\n\r\n" matcher */
        if (ch == '\r') crlf = (crlf == 2) ? 3 : 1;
        else if (ch == '\n' && (crlf == 1 || crlf == 3)) {
            if (crlf == 3) {
                crlf = 0;
                heads++;
                if (c->close_seen) { close_now = 1; break; }
                continue;
            }
            crlf = 2;
        } else crlf = 0;
        /* "connection: close" matcher (no proper border beyond the leading 'c') */
        unsigned char lc = (ch >= 'A' && ch <= 'Z') ? ch + 32 : ch;
        if (lc == (unsigned char)CLOSE_PAT[cm]) {
            if (++cm == CLOSE_LEN) { c->close_seen = 1; cm = 0; }
        } else cm = (lc == 'c');
    }
    c->crlf = crlf; c->cmatch = cm;

    if (heads && send_responses(fd, heads, close_now) < 0) { conn_close(fd); return; }
    if (close_now) {
        if (conns[fd].pend) {
            conns[fd].closing = 1;
            struct epoll_event ev = { .events = EPOLLOUT, .data.fd = fd };
            epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev);
        } else conn_close(fd);
    }
}

/* Returns 1 when the connection was closed. */
static int on_writable(int fd) {
    struct conn *c = &conns[fd];
    while (c->pend_off < c->pend_len) {
        ssize_t w = write(fd, c->pend + c->pend_off, c->pend_len - c->pend_off);
        if (w < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
            conn_close(fd);
            return 1;
        }
        c->pend_off += (size_t)w;
    }
    free(c->pend);
    c->pend = NULL; c->pend_len = c->pend_off = 0;
    if (c->closing) { conn_close(fd); return 1; }
    struct epoll_event ev = { .events = EPOLLIN, .data.fd = fd };
    epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev);
    return 0;
}

int main(int argc, char **argv) {
    int port = argc > 1 ? atoi(argv[1]) : 8080;
    const char *host = argc > 2 ? argv[2] : "127.0.0.1";
    signal(SIGPIPE, SIG_IGN);
#ifdef CEILING_LUA
    lua_setup();
#endif

    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    nconns = (int)(rl.rlim_cur > 1048576 ? 1048576 : rl.rlim_cur);
    conns = calloc((size_t)nconns, sizeof *conns);
    for (int i = 0; i < BATCH; i++) memcpy(batch + i * RESP_LEN, RESP, RESP_LEN);

    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    inet_pton(AF_INET, host, &sa.sin_addr);
    if (bind(lfd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(lfd, 4096) < 0) {
        perror("ceiling: bind/listen");
        return 1;
    }
    epfd = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = { .events = EPOLLIN, .data.fd = lfd };
    epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &ev);
    fprintf(stderr, "ceiling listening on %s:%d\n", host, port);

    struct epoll_event evs[512];
    for (;;) {
        int n = epoll_wait(epfd, evs, 512, -1);
        if (n < 0) { if (errno == EINTR) continue; perror("epoll_wait"); return 1; }
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == lfd) {
                for (;;) {
                    int cfd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                    if (cfd < 0) break;
                    if (cfd >= nconns) { close(cfd); continue; }
                    setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    struct epoll_event cev = { .events = EPOLLIN, .data.fd = cfd };
                    epoll_ctl(epfd, EPOLL_CTL_ADD, cfd, &cev);
                }
                continue;
            }
            uint32_t e = evs[i].events;
            if ((e & EPOLLOUT) && on_writable(fd)) continue;
            if (conns[fd].closing) { if (e & (EPOLLHUP | EPOLLERR)) conn_close(fd); continue; }
            if (e & (EPOLLIN | EPOLLHUP | EPOLLERR)) on_readable(fd);
        }
    }
}
