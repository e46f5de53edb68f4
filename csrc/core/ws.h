/* The WebSocket reader (RFC 6455 5, 6.2, 8.1; RFC 7692 6.2): frames in,
 * events out, one at a time. It judges every header (bits, opcodes,
 * masking, control frame rules, fragmentation order, limits), unmasks
 * payloads in place, inflates compressed messages, and checks text as it
 * arrives so that invalid UTF-8 fails the connection at the first bad byte,
 * even inside a fragment. No I/O: the caller hands it the bytes it has.
 * Pure C (and zlib through wsdeflate.h). */
#ifndef LH_WS_H
#define LH_WS_H

#include "utf8.h"
#include "wsdeflate.h"
#include "wsframe.h"

enum {
  LH_WS_EV_NEED = 0,   /* every byte given was used: call again with more */
  LH_WS_EV_DATA,       /* a piece of a data message */
  LH_WS_EV_CONTROL     /* a whole control frame (close, ping or pong) */
};

typedef struct {
  int type;            /* LH_WS_EV_* */
  int opcode;          /* DATA: the message's (LH_WS_TEXT or LH_WS_BINARY);
                        * CONTROL: LH_WS_CLOSE, LH_WS_PING or LH_WS_PONG */
  const uint8_t *p;    /* DATA: the piece (in the input, or the reader's
                        * inflate buffer); CONTROL: the payload (for a close:
                        * its reason). Valid until the next call. */
  size_t n;
  int first;           /* DATA: the piece begins its message */
  int fin;             /* DATA: the piece ends its message */
  int code;            /* CLOSE: its status code, 1005 when it has none */
} lh_ws_ev_t;

#define LH_WS_INFLATE_CHUNK (64 * 1024) /* inflated bytes handed out at a time */

/* Zero-filled plus lh_ws_reader_init is a valid start. Fields are in
 * order of size: a reader is part of every WebSocket, idle ones included. */
typedef struct {
  uint64_t max_frame;      /* largest frame payload, 0: no limit */
  uint64_t max_message;    /* largest message (inflated), 0: no limit; may be
                            * changed between calls */
  lh_pmd_t *pmd;           /* permessage-deflate, NULL when not negotiated */
  /* the frame being read */
  lh_wsf_t f;
  uint64_t left;           /* payload bytes of f still to come */
  size_t clear;            /* bytes at the head of the next input already
                            * unmasked (inflate took fewer than were unmasked) */
  /* the data message in progress: its bytes so far (inflated) */
  uint64_t msg_len;
  /* the control frame being read: its payload gathered in ctl (125 bytes,
   * made for the first one, given back by lh_ws_reader_trim) */
  uint8_t *ctl;
  /* inflate output, made for the first compressed message */
  uint8_t *out;
  lh_role_t role;          /* ours: a server reads masked frames, a client unmasked */
  unsigned moff;           /* mask offset of the next payload byte */
  int error;               /* the first failure, 0 if none: returned again */
  uint8_t hbuf[LH_WSF_MAX];/* a header split across inputs, gathered */
  uint8_t hn;              /* bytes in hbuf, 0 when none */
  uint8_t in_frame;        /* a header was read; set until its payload is used */
  /* the data message in progress */
  uint8_t msg_op;          /* its opcode, 0 between messages */
  uint8_t msg_z;           /* compressed (RSV1 on its first frame) */
  uint8_t msg_started;     /* a piece of it was handed out */
  uint8_t z_tail;          /* its last frame is read, inflate output still due */
  lh_utf8_t utf8;          /* text: where validation stopped */
  uint8_t ctl_n;           /* bytes gathered in ctl */
  uint8_t closed;          /* a close frame was read: input is ignored */
} lh_ws_reader_t;

void lh_ws_reader_init(lh_ws_reader_t *r, lh_role_t role, uint64_t max_frame,
                       uint64_t max_message, lh_pmd_t *pmd);
void lh_ws_reader_free(lh_ws_reader_t *r);
/* while idle: the inflate buffer (between messages) and the control
 * frame buffer (between frames) are given back */
void lh_ws_reader_trim(lh_ws_reader_t *r);

/* reads from in[0..n), which it may rewrite (unmasking). returns the bytes
 * used, with *ev the event they made (LH_WS_EV_NEED when all were used and
 * more are needed), or a negative code: LH_EWS_PROTOCOL, LH_EWS_UTF8,
 * LH_EWS_TOO_LARGE, LH_EWS_DEFLATE, LH_ENOMEM; the reader is then failed.
 * Call again after every event that is not NEED, with what is left of the
 * input (maybe nothing: inflate output can still be due). */
long lh_ws_read(lh_ws_reader_t *r, uint8_t *in, size_t n, lh_ws_ev_t *ev);

/* 1 when a close frame may carry code (RFC 6455 7.4; 1004-1006 and 1015
 * are reserved, 1016-2999 unassigned, 3000-4999 for applications) */
int lh_ws_close_code_valid(int code);
/* the close code that reports a reader failure (1002, 1007, 1009, 1011) */
int lh_ws_error_close_code(int err);
/* a close frame's payload: code (0: none) and reason; returns its length
 * (at most 125; the reason is cut to fit) */
size_t lh_ws_close_payload(uint8_t out[125], int code, const char *reason, size_t n);

#endif
