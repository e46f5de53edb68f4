/* permessage-deflate (RFC 7692): the extension's negotiation over the
 * Sec-WebSocket-Extensions header (RFC 6455 9.1 grammar) and the
 * per-connection compressor and decompressor over zlib. Pure C and zlib. */
#ifndef LH_WSDEFLATE_H
#define LH_WSDEFLATE_H

#include <stddef.h>
#include <stdint.h>

#include "lh.h"

/* what a connection agreed on (RFC 7692 7.1) */
typedef struct {
  uint8_t server_no_context_takeover;
  uint8_t client_no_context_takeover;
  uint8_t server_max_window_bits;   /* 8..15 (15 when not named) */
  uint8_t client_max_window_bits;   /* 8..15 */
} lh_pmd_params_t;

/* what an endpoint asks for. Zero-filled: nothing asked, 15-bit windows */
typedef struct {
  uint8_t server_no_context_takeover;
  uint8_t client_no_context_takeover;
  uint8_t server_max_window_bits;   /* 0: 15; the server's compressor window */
  uint8_t client_max_window_bits;   /* 0: no limit asked of the client */
} lh_pmd_conf_t;

#define LH_PMD_HDR_MAX 160  /* room for any offer or response we write */

/* server: the first permessage-deflate offer in the header value
 * hdr[0..n) (fields joined with ", ") that conf can accept. returns 1 with
 * *out set and the response (NUL-terminated) in resp, 0 when no offer is
 * acceptable (then no compression), -1 when the value is malformed */
int lh_pmd_server_negotiate(const char *hdr, size_t n, const lh_pmd_conf_t *conf,
                            lh_pmd_params_t *out, char resp[LH_PMD_HDR_MAX]);
/* client: the offer for conf (NUL-terminated); returns its length */
size_t lh_pmd_client_offer(const lh_pmd_conf_t *conf, char out[LH_PMD_HDR_MAX]);
/* client: the server's response hdr[0..n) to our offer for conf. returns 1
 * with *out set, 0 when it names no extension, -1 when we must fail the
 * connection (an extension or parameter we did not offer, a bad value) */
int lh_pmd_client_accept(const char *hdr, size_t n, const lh_pmd_conf_t *conf,
                         lh_pmd_params_t *out);

/* One connection's compression state; streams are made on first use. */
typedef struct lh_pmd {
  lh_pmd_params_t p;
  lh_role_t role;
  int level;          /* zlib level for what we send */
  int mem_level;      /* zlib memLevel (1..9) */
  void *inf;          /* z_stream, NULL until a compressed message arrives */
  void *def;          /* z_stream, NULL until one is sent */
  uint8_t tail;       /* bytes of the 00 00 ff ff tail fed to inf (0..4) */
} lh_pmd_t;

void lh_pmd_init(lh_pmd_t *z, lh_role_t role, const lh_pmd_params_t *p, int level,
                 int mem_level);
void lh_pmd_free(lh_pmd_t *z);

/* inflates compressed message bytes in[0..n) into out[0..cap): *used and
 * *made tell how many went in and came out. With last set, in holds the
 * end of the message, and the sync tail (00 00 ff ff) the sender dropped
 * is fed after it. returns 1 when the message is done (all input used and
 * all output made), 0 when more is to come (call again: more input, or
 * more room for output), LH_EWS_DEFLATE on corrupt data, LH_ENOMEM (then
 * *made still tells what came out before the failure) */
int lh_pmd_inflate(lh_pmd_t *z, const uint8_t *in, size_t n, int last, size_t *used,
                   uint8_t *out, size_t cap, size_t *made);

/* compresses in[0..n) of a message, appending to the buffer *buf (*len
 * bytes used of *cap, grown with realloc). fin: the message ends here;
 * its sync tail is then dropped (RFC 7692 7.2.1). 0, or LH_ENOMEM */
int lh_pmd_deflate(lh_pmd_t *z, const uint8_t *in, size_t n, int fin, uint8_t **buf,
                   size_t *len, size_t *cap);

#endif
