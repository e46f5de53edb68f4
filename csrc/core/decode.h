/* Body decoders, after hyper's proto/h1/decode.rs: Content-Length, chunked
 * (RFC 9112 7.1) and close-delimited. Bodies are decoded in place: the data
 * of the chunks found in a buffer is moved together. The trailer section
 * of a chunked body is not read here: the decoder stops after the last
 * chunk and parse.c reads the trailer fields with the grammar of head fields. */
#ifndef LH_DECODE_H
#define LH_DECODE_H

#include "lh.h"

/* chunk extension bytes allowed in one message (hyper's limit): they are
 * parsed and ignored, and would otherwise cost bandwidth and CPU outside
 * every body limit. Size digits past the sixteenth count as well. */
#define LH_CHUNK_EXT_MAX (16 * 1024)

typedef enum {
  LH_DEC_LENGTH = 0, /* Content-Length: remaining counts down */
  LH_DEC_CHUNKED,
  LH_DEC_EOF         /* the body runs to the end of the connection */
} lh_dec_kind_t;

/* what lh_decoder_decode returns besides 0 (more input) and errors */
enum { LH_DEC_DONE = 1, LH_DEC_TRAILERS = 2 };

/* zero-filled is a length decoder with nothing left */
typedef struct {
  lh_dec_kind_t kind;
  uint8_t state;      /* chunked: where in the framing (decode.c's CS_*) */
  uint8_t digits;     /* chunked: hex digits of the size line being read */
  uint64_t remaining; /* length: body bytes left; chunked: bytes left of this chunk's data */
  uint32_t ext;       /* chunked: extension bytes seen in this message */
} lh_decoder_t;

void lh_decoder_length(lh_decoder_t *d, uint64_t n);
void lh_decoder_chunked(lh_decoder_t *d);
void lh_decoder_eof(lh_decoder_t *d);

/* decodes data[0..len) in place: the body bytes found are
 * data[*body_off..*body_off + *body_len) (chunk data moved together) and
 * *consumed input bytes were used. returns
 * LH_DEC_DONE at the end of a length body, LH_DEC_TRAILERS after the last
 * chunk's line (the trailer section starts at data + *consumed), 0 when all
 * input was used and more is needed, or a negative code: LH_EPARSE_CHUNK for
 * broken framing, LH_EPARSE_CHUNK_EXT past LH_CHUNK_EXT_MAX. A close-delimited
 * body never ends here (the connection's end ends it). */
int lh_decoder_decode(lh_decoder_t *d, char *data, size_t len, size_t *consumed,
                      size_t *body_off, size_t *body_len);

#endif
