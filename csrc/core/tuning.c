/* The shortcut switches (tuning.h), read from the environment once. */
#include "tuning.h"

#include <stdlib.h>
#include <string.h>

lh_tuning_t lh_tuning = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};

static unsigned on(const char *name) {
  const char *v = getenv(name);
  return !(v && strcmp(v, "0") == 0);
}

void lh_tuning_load(void) {
  static int loaded;
  if (loaded) return;
  loaded = 1;
  lh_tuning.fast_head = on("LHYPER_FAST_HEAD");
  lh_tuning.kept_heads = on("LHYPER_KEPT_HEADS");
  lh_tuning.kept_values = on("LHYPER_KEPT_VALUES");
  lh_tuning.next_msg = on("LHYPER_NEXT_MSG");
  lh_tuning.doze = on("LHYPER_DOZE");
  lh_tuning.fast_close = on("LHYPER_FAST_CLOSE");
  lh_tuning.alloc_cache = on("LHYPER_ALLOC_CACHE");
  lh_tuning.router_c = on("LHYPER_ROUTER_C");
  lh_tuning.tls_one_read = on("LHYPER_TLS_ONE_READ");
  lh_tuning.tls_keep_buffers = on("LHYPER_TLS_KEEP_BUFFERS");
  lh_tuning.fast_layers = on("LHYPER_FAST_LAYERS");
}
