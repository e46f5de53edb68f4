/* Log writers (logw.h): two buffers, one filling while the other is in
 * flight on the thread pool (uv_fs_write), and a timer that starts a write
 * when bytes have waited `interval`. */
#include "logw.h"

#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "uvloop.h"

#define LOGW_EAGER (64 * 1024) /* buffered bytes that start a write at once */
#define LOGW_CLOSE_WAIT 2000000000u /* ns a closing writer waits for a full pipe */

struct lh_logw {
  uv_timer_t timer;      /* armed while bytes wait and no write is in flight */
  uv_fs_t req;           /* the write in flight, when busy */
  lh_loop_t *loop;
  int fd;
  unsigned own : 1;      /* close fd at the end */
  unsigned busy : 1;     /* req is in flight */
  unsigned closing : 1;  /* lh_logw_close was called: write the rest, then end */
  unsigned timer_closed : 1;
  char *buf;             /* filling: len bytes of cap */
  size_t len, cap;
  char *out;             /* in flight: bytes off..olen of it remain */
  size_t off, olen, ocap;
  size_t limit;          /* len + olen - off never passes it */
  uint64_t interval_ms;
  uint64_t give_up_at;   /* closing: when what is still held is dropped (uv_hrtime) */
  lh_logw_stats_t st;
};

static void write_next(lh_logw_t *w);

static void timer_cb(uv_timer_t *t) { write_next((lh_logw_t *)t); }

static void logw_free(lh_logw_t *w) {
  if (w->own && w->fd >= 0) {
    uv_fs_t c;
    uv_fs_close(NULL, &c, w->fd, NULL); /* synchronous: a close does not wait on the disk */
    uv_fs_req_cleanup(&c);
  }
  free(w->buf);
  free(w->out);
  free(w);
}

/* the end, once nothing is in flight and the timer is closed */
static void maybe_free(lh_logw_t *w) {
  if (w->closing && !w->busy && w->timer_closed) logw_free(w);
}

static void timer_close_cb(uv_handle_t *h) {
  lh_logw_t *w = (lh_logw_t *)h;
  w->timer_closed = 1;
  maybe_free(w);
}

static int timer_usable(lh_logw_t *w) {
  return !w->timer_closed && !uv_is_closing((uv_handle_t *)&w->timer);
}

/* what is still held is lost: the descriptor took nothing for too long */
static void give_up(lh_logw_t *w) {
  w->st.lost += (w->olen - w->off) + w->len;
  w->off = w->olen;
  w->len = 0;
}

static void write_cb(uv_fs_t *req) {
  lh_logw_t *w = req->data;
  ssize_t r = req->result;
  uv_fs_req_cleanup(req);
  w->busy = 0;
  if (r == UV_EAGAIN || r == UV_EINTR) r = 0; /* a full pipe (non-blocking): again later */
  if (r < 0) {
    /* these bytes are lost; the next lines get their own chance */
    w->st.error = (int)r;
    w->st.lost += w->olen - w->off;
    w->off = w->olen;
  } else {
    w->st.written += (uint64_t)r;
    w->off += (size_t)r;
  }
  if (w->off < w->olen && r == 0) {
    /* nothing went: try again later rather than spin. Closing, wait at
     * most LOGW_CLOSE_WAIT in all; with the loop torn down (no timer),
     * wait here */
    if (!w->closing && timer_usable(w)) {
      uv_timer_start(&w->timer, timer_cb, w->interval_ms ? w->interval_ms : 10, 0);
      return;
    }
    if (w->closing && uv_hrtime() < w->give_up_at) {
      if (timer_usable(w)) {
        uv_timer_start(&w->timer, timer_cb, 20, 0);
        return;
      }
      struct pollfd pf = {w->fd, POLLOUT, 0};
      poll(&pf, 1, 20);
      write_next(w);
      return;
    }
    give_up(w);
  }
  if (w->off < w->olen || w->len >= LOGW_EAGER || (w->closing && w->len)) {
    write_next(w);
    return;
  }
  if (w->len && timer_usable(w) && !uv_is_active((uv_handle_t *)&w->timer))
    uv_timer_start(&w->timer, timer_cb, w->interval_ms, 0);
  if (w->closing && !w->len && !w->busy) {
    if (timer_usable(w)) uv_close((uv_handle_t *)&w->timer, timer_close_cb);
    else maybe_free(w);
  }
}

/* writes the rest of the buffer in flight, or swaps the buffers first */
static void write_next(lh_logw_t *w) {
  if (w->busy) return;
  if (w->off == w->olen) {
    if (!w->len) return;
    char *b = w->out;
    size_t c = w->ocap;
    w->out = w->buf;
    w->ocap = w->cap;
    w->olen = w->len;
    w->off = 0;
    w->buf = b;
    w->cap = c;
    w->len = 0;
  }
  uv_buf_t b = uv_buf_init(w->out + w->off, (unsigned)(w->olen - w->off));
  w->req.data = w;
  int r = uv_fs_write(&w->loop->uv, &w->req, w->fd, &b, 1, -1, write_cb);
  if (r < 0) {
    w->st.error = r;
    w->st.lost += w->olen - w->off;
    w->off = w->olen;
    return;
  }
  w->busy = 1;
  if (timer_usable(w)) uv_timer_stop(&w->timer);
}

lh_logw_t *lh_logw_start(lh_loop_t *l, int fd, int own, size_t limit, double interval) {
  lh_logw_t *w = calloc(1, sizeof *w);
  if (!w) return NULL;
  w->loop = l;
  w->fd = fd;
  w->own = own ? 1 : 0;
  w->limit = limit ? limit : 1;
  w->interval_ms = lh_ms(interval, 0);
  uv_timer_init(&l->uv, &w->timer);
  w->timer.data = (void *)timer_close_cb; /* how lh_loop_free closes it */
  uv_unref((uv_handle_t *)&w->timer);     /* waiting lines do not keep the loop running */
  return w;
}

static int reserve(char **b, size_t *cap, size_t need) {
  if (need <= *cap) return 0;
  size_t n = *cap ? *cap : 4096;
  while (n < need) n *= 2;
  char *p = realloc(*b, n);
  if (!p) return LH_ENOMEM;
  *b = p;
  *cap = n;
  return 0;
}

char *lh_logw_reserve(lh_logw_t *w, size_t n) {
  if (w->closing) return NULL;
  if (w->len + (w->olen - w->off) + n > w->limit || reserve(&w->buf, &w->cap, w->len + n)) return NULL;
  return w->buf + w->len;
}

void lh_logw_commit(lh_logw_t *w, size_t k) {
  if (!k) return;
  w->len += k;
  if (w->busy) return; /* its callback carries on */
  if (w->len >= LOGW_EAGER || w->interval_ms == 0) write_next(w);
  else if (timer_usable(w) && !uv_is_active((uv_handle_t *)&w->timer))
    uv_timer_start(&w->timer, timer_cb, w->interval_ms, 0);
}

int lh_logw_write(lh_logw_t *w, const char *p, size_t n) {
  if (w->closing) return LH_ECLOSED;
  if (n == 0) return 0;
  char *d = lh_logw_reserve(w, n);
  if (!d) {
    w->st.dropped += n;
    return LH_ENOMEM;
  }
  memcpy(d, p, n);
  lh_logw_commit(w, n);
  return 0;
}

void lh_logw_flush(lh_logw_t *w) { write_next(w); }

void lh_logw_stats(const lh_logw_t *w, lh_logw_stats_t *st) {
  *st = w->st;
  st->pending = w->len + (w->olen - w->off);
}

void lh_logw_close(lh_logw_t *w) {
  if (w->closing) return;
  w->closing = 1;
  w->give_up_at = uv_hrtime() + LOGW_CLOSE_WAIT;
  if (timer_usable(w)) uv_timer_stop(&w->timer);
  write_next(w);
  if (w->busy) return; /* write_cb ends it */
  if (timer_usable(w)) uv_close((uv_handle_t *)&w->timer, timer_close_cb);
  else maybe_free(w);
}

uint64_t lh_hrtime(void) { return uv_hrtime(); }
