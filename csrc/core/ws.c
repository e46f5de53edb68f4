#include "ws.h"

#include <stdlib.h>
#include <string.h>

void lh_ws_reader_init(lh_ws_reader_t *r, lh_role_t role, uint64_t max_frame,
                       uint64_t max_message, lh_pmd_t *pmd) {
  memset(r, 0, sizeof *r);
  r->role = role;
  r->max_frame = max_frame;
  r->max_message = max_message;
  r->pmd = pmd;
}

void lh_ws_reader_free(lh_ws_reader_t *r) {
  free(r->out);
  free(r->ctl);
  r->out = NULL;
  r->ctl = NULL;
}

void lh_ws_reader_trim(lh_ws_reader_t *r) {
  if (!r->msg_op && r->out) {
    free(r->out);
    r->out = NULL;
  }
  if (!r->in_frame && r->ctl) {
    free(r->ctl);
    r->ctl = NULL;
  }
}

static long fail(lh_ws_reader_t *r, int err) {
  r->error = err;
  return err;
}

/* RFC 6455 5.2-5.5 and RFC 7692 6: what a header may say here */
static int check_header(lh_ws_reader_t *r, const lh_wsf_t *f) {
  int control = f->opcode & 0x8;
  if (f->rsv & (LH_WS_RSV2 | LH_WS_RSV3)) return LH_EWS_PROTOCOL;
  if ((f->rsv & LH_WS_RSV1) && (!r->pmd || control || f->opcode == LH_WS_CONT))
    return LH_EWS_PROTOCOL;
  /* a server reads masked frames only, a client unmasked ones (5.1) */
  if (f->masked != (r->role == LH_ROLE_SERVER)) return LH_EWS_PROTOCOL;
  switch (f->opcode) {
    case LH_WS_CONT:
      if (!r->msg_op) return LH_EWS_PROTOCOL;  /* nothing to continue */
      break;
    case LH_WS_TEXT:
    case LH_WS_BINARY:
      if (r->msg_op) return LH_EWS_PROTOCOL;   /* the previous message is not over */
      break;
    case LH_WS_CLOSE:
    case LH_WS_PING:
    case LH_WS_PONG:
      if (!f->fin || f->len > 125) return LH_EWS_PROTOCOL;
      return 0;
    default:
      return LH_EWS_PROTOCOL;                  /* reserved opcodes */
  }
  if (r->max_frame && f->len > r->max_frame) return LH_EWS_TOO_LARGE;
  uint64_t sofar = f->opcode == LH_WS_CONT ? r->msg_len : 0;
  int z = f->opcode == LH_WS_CONT ? r->msg_z : (f->rsv & LH_WS_RSV1) != 0;
  /* uncompressed, the frame's length says it all at once */
  if (!z && r->max_message && f->len > r->max_message - (sofar < r->max_message ? sofar : r->max_message))
    return LH_EWS_TOO_LARGE;
  return 0;
}

static void start_frame(lh_ws_reader_t *r, const lh_wsf_t *f) {
  r->f = *f;
  r->in_frame = 1;
  r->left = f->len;
  r->moff = 0;
  r->clear = 0;
  if (f->opcode & 0x8) {
    r->ctl_n = 0;
  } else if (f->opcode != LH_WS_CONT) {
    r->msg_op = f->opcode;
    r->msg_z = (f->rsv & LH_WS_RSV1) != 0;
    r->msg_started = 0;
    r->msg_len = 0;
    memset(&r->utf8, 0, sizeof r->utf8);
  }
}

/* reads a header from in (gathering a split one in hbuf): bytes used, or
 * a negative code; r->in_frame says whether one was read */
static long read_header(lh_ws_reader_t *r, const uint8_t *in, size_t n) {
  lh_wsf_t f;
  int h;
  if (r->hn == 0) {
    h = lh_wsf_parse(in, n, &f);
    if (h > 0) {
      int e = check_header(r, &f);
      if (e) return fail(r, e);
      start_frame(r, &f);
      return h;
    }
    if (h < 0) return fail(r, LH_EWS_PROTOCOL);
  }
  size_t had = r->hn, take = LH_WSF_MAX - had < n ? LH_WSF_MAX - had : n;
  memcpy(r->hbuf + had, in, take);
  h = lh_wsf_parse(r->hbuf, had + take, &f);
  if (h < 0) return fail(r, LH_EWS_PROTOCOL);
  if (h == 0) {
    r->hn = (uint8_t)(had + take);
    return (long)take;
  }
  r->hn = 0;
  int e = check_header(r, &f);
  if (e) return fail(r, e);
  start_frame(r, &f);
  return (long)((size_t)h - had);
}

/* unmasks n bytes at p, of which the first r->clear already are */
static void unmask(lh_ws_reader_t *r, uint8_t *p, size_t n) {
  if (!r->f.masked || n <= r->clear) return;
  lh_ws_mask(p + r->clear, n - r->clear, r->f.mask, r->moff + (unsigned)r->clear);
  r->clear = n;
}

static int close_event(lh_ws_reader_t *r, lh_ws_ev_t *ev) {
  ev->code = 1005;
  ev->p = r->ctl;
  ev->n = 0;
  if (r->ctl_n == 0) return 0;
  if (r->ctl_n == 1) return LH_EWS_PROTOCOL;
  int code = r->ctl[0] << 8 | r->ctl[1];
  if (!lh_ws_close_code_valid(code)) return LH_EWS_PROTOCOL;
  if (!lh_utf8_valid(r->ctl + 2, r->ctl_n - 2u)) return LH_EWS_UTF8;
  ev->code = code;
  ev->p = r->ctl + 2;
  ev->n = r->ctl_n - 2u;
  return 0;
}

static long control_payload(lh_ws_reader_t *r, uint8_t *in, size_t avail, lh_ws_ev_t *ev) {
  if (!r->ctl && !(r->ctl = malloc(125))) return fail(r, LH_ENOMEM);
  unmask(r, in, avail);
  memcpy(r->ctl + r->ctl_n, in, avail);
  r->ctl_n = (uint8_t)(r->ctl_n + avail);
  r->left -= avail;
  r->moff += (unsigned)avail;
  r->clear = 0;
  if (r->left) return (long)avail;
  r->in_frame = 0;
  ev->type = LH_WS_EV_CONTROL;
  ev->opcode = r->f.opcode;
  ev->p = r->ctl;
  ev->n = r->ctl_n;
  if (r->f.opcode == LH_WS_CLOSE) {
    int e = close_event(r, ev);
    if (e) return fail(r, e);
    r->closed = 1;
  }
  return (long)avail;
}

static int check_text(lh_ws_reader_t *r, const uint8_t *p, size_t n, int fin) {
  if (r->msg_op != LH_WS_TEXT) return 0;
  int left = lh_utf8_feed(&r->utf8, p, n);
  if (left < 0 || (fin && left > 0)) return LH_EWS_UTF8;
  return 0;
}

static void piece(lh_ws_reader_t *r, lh_ws_ev_t *ev, const uint8_t *p, size_t n, int fin) {
  ev->type = LH_WS_EV_DATA;
  ev->opcode = r->msg_op;
  ev->p = p;
  ev->n = n;
  ev->fin = fin;
  ev->first = !r->msg_started;
  r->msg_started = 1;
  if (fin) r->msg_op = 0;
}

/* an uncompressed piece: handed out in place */
static long plain_payload(lh_ws_reader_t *r, uint8_t *in, size_t avail, lh_ws_ev_t *ev) {
  unmask(r, in, avail);
  r->clear = 0;
  r->left -= avail;
  r->moff += (unsigned)avail;
  r->msg_len += avail;
  int fin = r->left == 0 && r->f.fin;
  int e = check_text(r, in, avail, fin);
  if (e) return fail(r, e);
  if (r->left == 0) r->in_frame = 0;
  if (avail || fin) piece(r, ev, in, avail, fin);
  return (long)avail;
}

/* a compressed piece: inflated into r->out; also runs for the tail alone
 * (avail 0) once the last frame is read */
static long deflated_payload(lh_ws_reader_t *r, uint8_t *in, size_t avail, lh_ws_ev_t *ev) {
  int last = r->f.fin && avail == r->left;
  if (!r->out && !(r->out = malloc(LH_WS_INFLATE_CHUNK))) return fail(r, LH_ENOMEM);
  if (r->in_frame) unmask(r, in, avail);
  size_t used, made;
  int rc = lh_pmd_inflate(r->pmd, in, avail, last, &used, r->out, LH_WS_INFLATE_CHUNK, &made);
  /* failures in the order of the inflated stream, however it was cut:
   * bad text, then the limit, then corrupt data after them */
  size_t room = r->max_message && r->max_message - r->msg_len < made
                    ? (size_t)(r->max_message - r->msg_len) : made;
  int e = check_text(r, r->out, room, rc == 1 && room == made);
  if (e) return fail(r, e);
  if (room < made) return fail(r, LH_EWS_TOO_LARGE);
  if (rc < 0) return fail(r, rc);
  if (r->in_frame) {
    r->clear = r->clear > used ? r->clear - used : 0;
    r->left -= used;
    r->moff += (unsigned)used;
    if (r->left == 0) {
      r->in_frame = 0;
      r->z_tail = r->f.fin && rc == 0;
    }
  } else if (rc == 1) {
    r->z_tail = 0;
  }
  r->msg_len += made;
  if (made || rc == 1) piece(r, ev, r->out, made, rc == 1);
  return (long)used;
}

long lh_ws_read(lh_ws_reader_t *r, uint8_t *in, size_t n, lh_ws_ev_t *ev) {
  ev->type = LH_WS_EV_NEED;
  if (r->error) return r->error;
  if (r->closed) return (long)n; /* nothing follows a close frame (5.5.1) */
  size_t used = 0;
  for (;;) {
    if (r->z_tail) {
      long k = deflated_payload(r, in, 0, ev);
      if (k < 0) return k;
      if (ev->type != LH_WS_EV_NEED) return (long)used;
      continue;
    }
    if (!r->in_frame) {
      if (used == n) return (long)used;
      long k = read_header(r, in + used, n - used);
      if (k < 0) return k;
      used += (size_t)k;
      if (!r->in_frame) return (long)used; /* a split header */
    }
    size_t avail = n - used < r->left ? n - used : (size_t)r->left;
    long k;
    if (r->f.opcode & 0x8) k = control_payload(r, in + used, avail, ev);
    else if (r->msg_z) {
      if (avail == 0 && r->left) return (long)used;
      k = deflated_payload(r, in + used, avail, ev);
    } else {
      if (avail == 0 && r->left) return (long)used;
      k = plain_payload(r, in + used, avail, ev);
    }
    if (k < 0) return k;
    used += (size_t)k;
    if (ev->type != LH_WS_EV_NEED) return (long)used;
    if (r->in_frame && used == n) return (long)used;
  }
}

int lh_ws_close_code_valid(int code) {
  if (code >= 3000 && code <= 4999) return 1;
  if (code < 1000 || code > 1014) return 0;
  return code != 1004 && code != 1005 && code != 1006;
}

int lh_ws_error_close_code(int err) {
  switch (err) {
    case LH_EWS_PROTOCOL: return 1002;
    case LH_EWS_UTF8: return 1007;
    case LH_EWS_DEFLATE: return 1007;
    case LH_EWS_TOO_LARGE: return 1009;
    default: return 1011;
  }
}

size_t lh_ws_close_payload(uint8_t out[125], int code, const char *reason, size_t n) {
  if (!code) return 0;
  out[0] = (uint8_t)(code >> 8);
  out[1] = (uint8_t)code;
  if (n > 123) {
    /* cut at a character boundary */
    n = 123;
    while (n > 0 && ((uint8_t)reason[n] & 0xc0) == 0x80) n--;
  }
  if (n) memcpy(out + 2, reason, n);
  return n + 2;
}
