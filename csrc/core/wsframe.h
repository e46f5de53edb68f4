/* WebSocket frame codec (RFC 6455 5.2): header parsing and writing, and
 * the masking of payloads. Pure C; see ws.h for the reader that checks
 * what the header means. */
#ifndef LH_WSFRAME_H
#define LH_WSFRAME_H

#include <stddef.h>
#include <stdint.h>

enum {
  LH_WS_CONT = 0x0,
  LH_WS_TEXT = 0x1,
  LH_WS_BINARY = 0x2,
  LH_WS_CLOSE = 0x8,
  LH_WS_PING = 0x9,
  LH_WS_PONG = 0xa
};

#define LH_WSF_MAX 14      /* longest header: 2 + 8 (length) + 4 (mask key) */
#define LH_WS_RSV1 0x4     /* lh_wsf_t.rsv bits, in the order of the wire */
#define LH_WS_RSV2 0x2
#define LH_WS_RSV3 0x1

typedef struct {
  uint64_t len;       /* payload length */
  uint8_t fin;
  uint8_t rsv;        /* LH_WS_RSV* */
  uint8_t opcode;
  uint8_t masked;
  uint8_t mask[4];    /* when masked */
} lh_wsf_t;

/* parses the header at p[0..n). returns its length (2..14) with *f filled,
 * 0 when n is shorter than the whole header, -1 when the 64-bit length has
 * its most significant bit set (RFC 6455 5.2). The opcode and bits are not
 * judged here. */
int lh_wsf_parse(const uint8_t *p, size_t n, lh_wsf_t *f);

/* writes a header (the shortest length encoding) to out, which has room
 * for LH_WSF_MAX bytes; mask: the 4-byte key, NULL for an unmasked frame.
 * returns its length */
size_t lh_wsf_header(uint8_t *out, int fin, int rsv, int opcode, uint64_t len,
                     const uint8_t *mask);

/* XORs p[0..n) in place with key, the payload's byte `off` (mod 4) first;
 * returns the offset of the byte after. Eight bytes at a time. */
unsigned lh_ws_mask(uint8_t *p, size_t n, const uint8_t key[4], unsigned off);
/* the same from src to dst: the same buffer (lh_ws_mask), or apart */
unsigned lh_ws_mask_copy(uint8_t *dst, const uint8_t *src, size_t n, const uint8_t key[4],
                         unsigned off);

#endif
