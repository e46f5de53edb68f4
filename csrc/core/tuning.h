/* Switches for the hot path's shortcuts. Each is on by default and has the
 * plain path it stands in for; the binding reads them once, when lhyper is
 * loaded, from LHYPER_* environment variables (a value of 0 turns one off),
 * and the suite passes with all of them off. */
#ifndef LH_TUNING_H
#define LH_TUNING_H

typedef struct {
  unsigned fast_head : 1;   /* LHYPER_FAST_HEAD: one-pass scan of plain request heads (parse.c) */
  unsigned kept_heads : 1;  /* LHYPER_KEPT_HEADS: the last response head written again (lhead.c) */
  unsigned kept_values : 1; /* LHYPER_KEPT_VALUES: kept heads also with number values and the
                             * handler's own content-length (lhead.c) */
  unsigned next_msg : 1;    /* LHYPER_NEXT_MSG: pipelined requests in one coroutine (lsvc.c) */
  unsigned doze : 1;        /* LHYPER_DOZE: idle connections keep their dispatcher a while (sconn.c) */
  unsigned fast_close : 1;  /* LHYPER_FAST_CLOSE: sockets closed without epoll_ctl DEL (sconn.c) */
  unsigned alloc_cache : 1; /* LHYPER_ALLOC_CACHE: free lists before Lua's allocator (lalloc.c) */
  unsigned router_c : 1;    /* LHYPER_ROUTER_C: the router's trie walked in C (lroute.c) */
  unsigned tls_one_read : 1; /* LHYPER_TLS_ONE_READ: OpenSSL reads ahead (one BIO read for
                              * all the ciphertext there is), and no SSL_read once it is
                              * all taken and OpenSSL holds nothing (tls.c) */
  unsigned tls_keep_buffers : 1; /* LHYPER_TLS_KEEP_BUFFERS: OpenSSL's record buffers kept
                                  * while a connection is busy or dozing (tls.c) */
  unsigned fast_layers : 1; /* LHYPER_FAST_LAYERS: the timeout layer's child resumed without a
                             * protected call, its results moved rather than kept (lspawn.c);
                             * request ids kept in the req's own bytes (llayer.c) */
} lh_tuning_t;

/* all on until lh_tuning_load; tests may set fields directly */
extern lh_tuning_t lh_tuning;

/* reads the switches from the environment; the first call only */
void lh_tuning_load(void);

#endif
