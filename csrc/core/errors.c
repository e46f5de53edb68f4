/* The error table (LH_ERRNO_MAP in lh.h): message, kind, detail and name
 * of each of lhyper's codes. */
#include "lh.h"

#include <stddef.h>


const char *lh_err_message(int err) {
  switch (err) {
#define XX(name, kind, what, msg) case LH_##name: return msg;
    LH_ERRNO_MAP(XX)
#undef XX
    default: return NULL;
  }
}

const char *lh_err_kind(int err) {
  switch (err) {
#define XX(name, kind, what, msg) case LH_##name: return kind;
    LH_ERRNO_MAP(XX)
#undef XX
    default: return NULL;
  }
}

const char *lh_err_what(int err) {
  switch (err) {
#define XX(name, kind, what, msg) case LH_##name: return what;
    LH_ERRNO_MAP(XX)
#undef XX
    default: return NULL;
  }
}

const char *lh_err_name(int err) {
  switch (err) {
#define XX(name, kind, what, msg) case LH_##name: return #name;
    LH_ERRNO_MAP(XX)
#undef XX
    default: return NULL;
  }
}
