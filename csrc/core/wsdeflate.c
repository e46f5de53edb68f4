#include "wsdeflate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* --- Sec-WebSocket-Extensions (RFC 6455 9.1) --- */

#define EXT_PARAMS 8   /* more parameters than any extension we know has */
#define VALUE_MAX 15   /* longer values are never valid for permessage-deflate */

typedef struct {
  const char *name;
  size_t nlen;
  char value[VALUE_MAX + 1];  /* unquoted, NUL-terminated */
  int has_value;
  int too_long;               /* the value did not fit: never acceptable */
} ext_param_t;

typedef struct {
  const char *name;
  size_t nlen;
  int nparams;
  int overflow;               /* more than EXT_PARAMS parameters */
  ext_param_t params[EXT_PARAMS];
} ext_t;

typedef struct {
  const char *p, *end;
} cur_t;

static int is_tchar(unsigned char ch) {
  /* RFC 9110 5.6.2 */
  if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9')) return 1;
  return ch && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

static void skip_ows(cur_t *c) {
  while (c->p < c->end && (*c->p == ' ' || *c->p == '\t')) c->p++;
}

static int token(cur_t *c, const char **s, size_t *n) {
  const char *b = c->p;
  while (c->p < c->end && is_tchar((unsigned char)*c->p)) c->p++;
  *s = b;
  *n = (size_t)(c->p - b);
  return *n > 0;
}

/* a parameter value: token or quoted-string, unquoted into v */
static int param_value(cur_t *c, ext_param_t *v) {
  size_t k = 0;
  if (c->p < c->end && *c->p == '"') {
    c->p++;
    for (;;) {
      if (c->p >= c->end) return 0;
      char ch = *c->p++;
      if (ch == '"') break;
      if (ch == '\\') {
        if (c->p >= c->end) return 0;
        ch = *c->p++;
      }
      /* RFC 6455 9.1: the unquoted value must be a token */
      if (!is_tchar((unsigned char)ch)) return 0;
      if (k < VALUE_MAX) v->value[k++] = ch;
      else v->too_long = 1;
    }
  } else {
    const char *s;
    size_t n;
    if (!token(c, &s, &n)) return 0;
    if (n > VALUE_MAX) v->too_long = 1;
    k = n > VALUE_MAX ? VALUE_MAX : n;
    memcpy(v->value, s, k);
  }
  if (k == 0) return 0;
  v->value[k] = 0;
  v->has_value = 1;
  return 1;
}

/* the next extension of the list: 1, 0 at the end, -1 when malformed */
static int next_ext(cur_t *c, ext_t *e) {
  memset(e, 0, sizeof *e);
  /* empty list elements are allowed (RFC 9110 5.6.1) */
  for (;;) {
    skip_ows(c);
    if (c->p < c->end && *c->p == ',') {
      c->p++;
      continue;
    }
    break;
  }
  if (c->p >= c->end) return 0;
  if (!token(c, &e->name, &e->nlen)) return -1;
  for (;;) {
    skip_ows(c);
    if (c->p >= c->end) return 1;
    if (*c->p == ',') {
      c->p++;
      return 1;
    }
    if (*c->p != ';') return -1;
    c->p++;
    skip_ows(c);
    ext_param_t tmp, *pa = e->nparams < EXT_PARAMS ? &e->params[e->nparams] : &tmp;
    memset(pa, 0, sizeof *pa);
    if (!token(c, &pa->name, &pa->nlen)) return -1;
    skip_ows(c);
    if (c->p < c->end && *c->p == '=') {
      c->p++;
      skip_ows(c);
      if (!param_value(c, pa)) return -1;
    }
    if (e->nparams < EXT_PARAMS) e->nparams++;
    else e->overflow = 1;
  }
}

static int name_is(const char *s, size_t n, const char *lit) {
  size_t ln = strlen(lit);
  if (n != ln) return 0;
  for (size_t i = 0; i < n; i++) {
    char ch = s[i];
    if (ch >= 'A' && ch <= 'Z') ch = (char)(ch + 32);
    if (ch != lit[i]) return 0;
  }
  return 1;
}

/* 8..15 written without leading zeros (RFC 7692 7.1.2.1), else 0 */
static int window_bits(const ext_param_t *pa) {
  const char *v = pa->value;
  if (pa->too_long) return 0;
  if (v[0] >= '8' && v[0] <= '9' && !v[1]) return v[0] - '0';
  if (v[0] == '1' && v[1] >= '0' && v[1] <= '5' && !v[2]) return 10 + v[1] - '0';
  return 0;
}

/* The permessage-deflate parameters of e (RFC 7692 7.1): 1 when valid.
 * Each flag is set 1 when the parameter is there; *_bits hold a value, 0
 * when absent, and client_bits is -1 for client_max_window_bits without a
 * value. */
typedef struct {
  int snct, cnct, server_bits, client_bits;
} pmd_offer_t;

static int pmd_params(const ext_t *e, pmd_offer_t *o) {
  memset(o, 0, sizeof *o);
  if (e->overflow) return 0;
  for (int i = 0; i < e->nparams; i++) {
    const ext_param_t *pa = &e->params[i];
    if (name_is(pa->name, pa->nlen, "server_no_context_takeover")) {
      if (o->snct || pa->has_value) return 0;
      o->snct = 1;
    } else if (name_is(pa->name, pa->nlen, "client_no_context_takeover")) {
      if (o->cnct || pa->has_value) return 0;
      o->cnct = 1;
    } else if (name_is(pa->name, pa->nlen, "server_max_window_bits")) {
      if (o->server_bits || !pa->has_value) return 0;
      if (!(o->server_bits = window_bits(pa))) return 0;
    } else if (name_is(pa->name, pa->nlen, "client_max_window_bits")) {
      if (o->client_bits) return 0;
      if (!pa->has_value) o->client_bits = -1;
      else if (!(o->client_bits = window_bits(pa))) return 0;
    } else {
      return 0; /* a parameter we do not know: the offer is declined */
    }
  }
  return 1;
}

static uint8_t conf_bits(uint8_t b) { return b >= 8 && b <= 15 ? b : 15; }

int lh_pmd_server_negotiate(const char *hdr, size_t n, const lh_pmd_conf_t *conf,
                            lh_pmd_params_t *out, char resp[LH_PMD_HDR_MAX]) {
  cur_t c = {hdr, hdr + n};
  ext_t e;
  int r, found = 0;
  /* the whole value is checked, even past the offer we take */
  while ((r = next_ext(&c, &e)) == 1) {
    pmd_offer_t o;
    if (found || !name_is(e.name, e.nlen, "permessage-deflate") || !pmd_params(&e, &o)) continue;
    found = 1;
    lh_pmd_params_t p;
    p.server_no_context_takeover = (uint8_t)(o.snct || conf->server_no_context_takeover);
    p.client_no_context_takeover = (uint8_t)(o.cnct || conf->client_no_context_takeover);
    p.server_max_window_bits = conf_bits(conf->server_max_window_bits);
    if (o.server_bits && o.server_bits < p.server_max_window_bits)
      p.server_max_window_bits = (uint8_t)o.server_bits;
    p.client_max_window_bits = o.client_bits > 0 ? (uint8_t)o.client_bits : 15;
    int ask_client = 0;
    if (o.client_bits && conf->client_max_window_bits >= 8 &&
        conf->client_max_window_bits < p.client_max_window_bits) {
      /* only a client that allows it may be told its window (7.1.2.2) */
      p.client_max_window_bits = conf->client_max_window_bits;
      ask_client = 1;
    }
    int k = snprintf(resp, LH_PMD_HDR_MAX, "permessage-deflate");
    if (p.server_no_context_takeover)
      k += snprintf(resp + k, (size_t)(LH_PMD_HDR_MAX - k), "; server_no_context_takeover");
    if (p.client_no_context_takeover)
      k += snprintf(resp + k, (size_t)(LH_PMD_HDR_MAX - k), "; client_no_context_takeover");
    if (o.server_bits || p.server_max_window_bits < 15)
      k += snprintf(resp + k, (size_t)(LH_PMD_HDR_MAX - k), "; server_max_window_bits=%d",
                    p.server_max_window_bits);
    if (ask_client)
      snprintf(resp + k, (size_t)(LH_PMD_HDR_MAX - k), "; client_max_window_bits=%d",
               p.client_max_window_bits);
    *out = p;
  }
  if (r < 0) return -1;
  return found;
}

size_t lh_pmd_client_offer(const lh_pmd_conf_t *conf, char out[LH_PMD_HDR_MAX]) {
  int k = snprintf(out, LH_PMD_HDR_MAX, "permessage-deflate");
  if (conf->server_no_context_takeover)
    k += snprintf(out + k, (size_t)(LH_PMD_HDR_MAX - k), "; server_no_context_takeover");
  if (conf->client_no_context_takeover)
    k += snprintf(out + k, (size_t)(LH_PMD_HDR_MAX - k), "; client_no_context_takeover");
  if (conf->server_max_window_bits >= 8 && conf->server_max_window_bits < 15)
    k += snprintf(out + k, (size_t)(LH_PMD_HDR_MAX - k), "; server_max_window_bits=%d",
                  conf->server_max_window_bits);
  if (conf->client_max_window_bits >= 8 && conf->client_max_window_bits < 15)
    k += snprintf(out + k, (size_t)(LH_PMD_HDR_MAX - k), "; client_max_window_bits=%d",
                  conf->client_max_window_bits);
  else
    k += snprintf(out + k, (size_t)(LH_PMD_HDR_MAX - k), "; client_max_window_bits");
  return (size_t)k;
}

int lh_pmd_client_accept(const char *hdr, size_t n, const lh_pmd_conf_t *conf,
                         lh_pmd_params_t *out) {
  cur_t c = {hdr, hdr + n};
  ext_t e;
  int r, found = 0;
  while ((r = next_ext(&c, &e)) == 1) {
    pmd_offer_t o;
    /* we offered one extension, once (RFC 6455 9.1) */
    if (found || !name_is(e.name, e.nlen, "permessage-deflate") || !pmd_params(&e, &o)) return -1;
    found = 1;
    if (o.client_bits < 0) return -1;  /* a response names a value (7.1.2.2) */
    uint8_t sb = conf->server_max_window_bits >= 8 && conf->server_max_window_bits < 15
                     ? conf->server_max_window_bits : 0;
    uint8_t cb = conf->client_max_window_bits >= 8 && conf->client_max_window_bits < 15
                     ? conf->client_max_window_bits : 15;
    if (sb && (!o.server_bits || o.server_bits > sb)) return -1;
    if (conf->server_no_context_takeover && !o.snct) return -1;
    if (o.client_bits > cb) return -1;
    out->server_no_context_takeover = (uint8_t)o.snct;
    out->client_no_context_takeover = (uint8_t)(o.cnct || conf->client_no_context_takeover);
    out->server_max_window_bits = o.server_bits ? (uint8_t)o.server_bits : 15;
    out->client_max_window_bits = o.client_bits ? (uint8_t)o.client_bits : cb;
  }
  if (r < 0) return -1;
  return found;
}

/* --- the codec --- */

static const uint8_t TAIL[4] = {0x00, 0x00, 0xff, 0xff};

void lh_pmd_init(lh_pmd_t *z, lh_role_t role, const lh_pmd_params_t *p, int level,
                 int mem_level) {
  memset(z, 0, sizeof *z);
  z->p = *p;
  z->role = role;
  z->level = level >= 0 && level <= 9 ? level : Z_DEFAULT_COMPRESSION;
  z->mem_level = mem_level >= 1 && mem_level <= 9 ? mem_level : 8;
}

void lh_pmd_free(lh_pmd_t *z) {
  if (z->inf) {
    inflateEnd(z->inf);
    free(z->inf);
    z->inf = NULL;
  }
  if (z->def) {
    deflateEnd(z->def);
    free(z->def);
    z->def = NULL;
  }
}

/* the window the peer compresses with: ours to inflate with. zlib writes a
 * 9-bit window for 8 (its 256-byte window is not supported), so 9 at least */
static int inflate_bits(const lh_pmd_t *z) {
  int b = z->role == LH_ROLE_SERVER ? z->p.client_max_window_bits : z->p.server_max_window_bits;
  return b < 9 ? 9 : b;
}

static int peer_resets(const lh_pmd_t *z) {
  return z->role == LH_ROLE_SERVER ? z->p.client_no_context_takeover
                                   : z->p.server_no_context_takeover;
}

static int we_reset(const lh_pmd_t *z) {
  return z->role == LH_ROLE_SERVER ? z->p.server_no_context_takeover
                                   : z->p.client_no_context_takeover;
}

int lh_pmd_inflate(lh_pmd_t *z, const uint8_t *in, size_t n, int last, size_t *used,
                   uint8_t *out, size_t cap, size_t *made) {
  z_stream *s = z->inf;
  *used = *made = 0;
  if (!s) {
    s = calloc(1, sizeof *s);
    if (!s) return LH_ENOMEM;
    if (inflateInit2(s, -inflate_bits(z)) != Z_OK) {
      free(s);
      return LH_ENOMEM;
    }
    z->inf = s;
  }
  s->next_out = out;
  s->avail_out = (uInt)cap;
  /* the message's bytes, then (when last) the tail */
  for (int part = 0; part < 2; part++) {
    if (part == 1 && !last) break;
    const uint8_t *p = part == 0 ? in : TAIL + z->tail;
    size_t len = part == 0 ? n : 4u - z->tail;
    if (part == 1 && *used < n) break;
    s->next_in = (Bytef *)p;
    s->avail_in = (uInt)len;
    while (s->avail_in && s->avail_out) {
      int r = inflate(s, Z_SYNC_FLUSH);
      if (r == Z_STREAM_END) {
        /* a block with BFINAL set (RFC 7692 7.2.3.3): what follows starts anew */
        inflateReset(s);
        continue;
      }
      if (r == Z_BUF_ERROR) break;
      if (r != Z_OK) {
        *made = cap - s->avail_out; /* what came before the failure */
        return r == Z_MEM_ERROR ? LH_ENOMEM : LH_EWS_DEFLATE;
      }
    }
    size_t took = len - s->avail_in;
    if (part == 0) *used = took;
    else z->tail = (uint8_t)(z->tail + took);
  }
  *made = cap - s->avail_out;
  if (!last || *used < n || z->tail < 4 || s->avail_out == 0) return 0;
  /* all of it in, and room left over: nothing more will come out */
  z->tail = 0;
  if (peer_resets(z)) inflateReset(s);
  return 1;
}

int lh_pmd_deflate(lh_pmd_t *z, const uint8_t *in, size_t n, int fin, uint8_t **buf,
                   size_t *len, size_t *cap) {
  z_stream *s = z->def;
  if (!s) {
    s = calloc(1, sizeof *s);
    if (!s) return LH_ENOMEM;
    int bits = z->role == LH_ROLE_SERVER ? z->p.server_max_window_bits
                                         : z->p.client_max_window_bits;
    /* zlib has no 256-byte window for raw deflate: with a 9-bit one and no
     * string matches, no distance can reach past 256 bytes */
    int strategy = bits < 9 ? Z_HUFFMAN_ONLY : Z_DEFAULT_STRATEGY;
    if (bits < 9) bits = 9;
    if (deflateInit2(s, z->level, Z_DEFLATED, -bits, z->mem_level, strategy) != Z_OK) {
      free(s);
      return LH_ENOMEM;
    }
    z->def = s;
  }
  s->next_in = (Bytef *)in;
  s->avail_in = (uInt)n;
  size_t before = *len;
  int flush = fin ? Z_SYNC_FLUSH : Z_NO_FLUSH;
  for (;;) {
    if (*cap - *len < 64) {
      size_t ncap = *cap ? *cap * 2 : 4096;
      while (ncap - *len < n / 2 + 64) ncap *= 2;
      uint8_t *nb = realloc(*buf, ncap);
      if (!nb) return LH_ENOMEM;
      *buf = nb;
      *cap = ncap;
    }
    s->next_out = *buf + *len;
    s->avail_out = (uInt)(*cap - *len);
    int r = deflate(s, flush);
    *len = *cap - s->avail_out;
    if (r != Z_OK && r != Z_BUF_ERROR) return LH_ENOMEM;
    if (s->avail_in == 0 && s->avail_out != 0) break;
  }
  if (fin) {
    /* a sync flush ends with an empty stored block: the tail the receiver
     * adds back (RFC 7692 7.2.1) */
    if (*len - before >= 4 && memcmp(*buf + *len - 4, TAIL, 4) == 0) *len -= 4;
    else if (*len == before) {
      /* zlib makes nothing of a flush right after a flush: an empty message
       * is then the header of an empty stored block (7.2.3.6) */
      (*buf)[(*len)++] = 0x00;
    }
    if (we_reset(z)) deflateReset(s);
  }
  return 0;
}
