/* core.log_writer(target, opts) -> writer: buffered lines written to a
 * file, a descriptor or a Lua file handle without blocking the loop
 * (csrc/uv/logw.c). The access_log layer writes through it. */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "llogw.h"

#include "ltask.h"

#define LOGW_MT LH_LOGW_MT

static lh_llogw_t *check_logw(lua_State *L) {
  lh_llogw_t *x = luaL_checkudata(L, 1, LOGW_MT);
  if (!x->w) luaL_error(L, "attempt to use a closed log writer");
  return x;
}

/* writer:write(s) -> true, or false when the buffer was full and s was dropped */
static int logw_write(lua_State *L) {
  lh_llogw_t *x = check_logw(L);
  size_t n;
  const char *p = luaL_checklstring(L, 2, &n);
  lua_pushboolean(L, lh_logw_write(x->w, p, n) == 0);
  return 1;
}

/* writer:flush(): starts writing what is buffered (it does not wait) */
static int logw_flush(lua_State *L) {
  lh_logw_flush(check_logw(L)->w);
  return 0;
}

static int logw_stats(lua_State *L) {
  lh_logw_stats_t st;
  lh_logw_stats(check_logw(L)->w, &st);
  lua_createtable(L, 0, 5);
  lua_pushinteger(L, (lua_Integer)st.written);
  lua_setfield(L, -2, "written");
  lua_pushinteger(L, (lua_Integer)st.dropped);
  lua_setfield(L, -2, "dropped");
  lua_pushinteger(L, (lua_Integer)st.lost);
  lua_setfield(L, -2, "lost");
  lua_pushinteger(L, (lua_Integer)st.pending);
  lua_setfield(L, -2, "pending");
  if (st.error) {
    lua_pushstring(L, lh_errname(st.error));
    lua_setfield(L, -2, "error");
  }
  return 1;
}

/* writer:close(): what is buffered is still written; idempotent (also __gc) */
static int logw_close(lua_State *L) {
  lh_llogw_t *x = luaL_checkudata(L, 1, LOGW_MT);
  if (x->w) {
    lh_logw_close(x->w);
    x->w = NULL;
  }
  return 0;
}

static int logw_tostring(lua_State *L) {
  lh_llogw_t *x = luaL_checkudata(L, 1, LOGW_MT);
  lua_pushstring(L, x->w ? "lhyper.log_writer" : "lhyper.log_writer (closed)");
  return 1;
}

/* the descriptor of target: a path (opened for appending, owned), an
 * integer descriptor or a Lua file handle (io.stdout ...). -1 after
 * pushing nil, err, kind */
/* Writes to a pipe or terminal must not wait for a reader, or the
 * process could not even exit while one stops reading: such a descriptor
 * we did not open is opened again through /proc (a description of our
 * own, whose O_NONBLOCK the other holders do not see). Regular files are
 * written as they are (by the thread pool). */
static int own_nonblocking(int fd, int *own) {
  struct stat sb;
  if (fstat(fd, &sb) || S_ISREG(sb.st_mode)) return fd;
  char p[64];
  snprintf(p, sizeof p, "/proc/self/fd/%d", fd);
  int nfd = open(p, O_WRONLY | O_APPEND | O_NONBLOCK | O_CLOEXEC);
  if (nfd < 0) return fd; /* a socket, or no /proc: as it is */
  *own = 1;
  return nfd;
}

static int target_fd(lua_State *L, int i, int *own) {
  *own = 0;
  if (lua_type(L, i) == LUA_TNUMBER) {
    lua_Integer fd = luaL_checkinteger(L, i);
    luaL_argcheck(L, fd >= 0 && fd <= 0x7fffffff, i, "not a file descriptor");
    return own_nonblocking((int)fd, own);
  }
  if (lua_type(L, i) == LUA_TSTRING) {
    const char *path = lua_tostring(L, i);
    /* a FIFO with no reader yet fails (ENXIO) rather than waiting */
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NONBLOCK, 0644);
    if (fd < 0) {
      int e = errno;
      lua_pushnil(L);
      lh_push_error(L, -e, lua_pushfstring(L, "%s: %s", path, strerror(e)));
      lua_remove(L, -2);
      lua_getfield(L, -1, "kind");
      return -1;
    }
    *own = 1;
    return fd;
  }
  luaL_Stream *s = luaL_testudata(L, i, LUA_FILEHANDLE);
  luaL_argexpected(L, s != NULL, i, "path, file descriptor or file handle");
  if (!s->closef) luaL_argerror(L, i, "attempt to use a closed file");
  fflush(s->f); /* what was written to it before comes first */
  return own_nonblocking(fileno(s->f), own);
}

/* core.log_writer(target[, limit[, interval]]) -> writer, or nil, err, kind */
static int l_log_writer(lua_State *L) {
  lh_lstate_t *st = lh_state(L);
  lua_Integer limit = luaL_optinteger(L, 2, 1024 * 1024);
  lua_Number interval = luaL_optnumber(L, 3, 1.0);
  luaL_argcheck(L, limit > 0, 2, "positive byte count expected");
  luaL_argcheck(L, interval >= 0 && interval <= 3600, 3, "seconds (0..3600) expected");
  lh_llogw_t *x = lua_newuserdatauv(L, sizeof *x, 0);
  x->w = NULL; /* closed until opened: safe if what follows raises */
  luaL_setmetatable(L, LOGW_MT);
  int own, fd = target_fd(L, 1, &own);
  if (fd < 0) return 3;
  x->w = lh_logw_start(st->loop, fd, own, (size_t)limit, interval);
  if (!x->w) {
    if (own) close(fd);
    return luaL_error(L, "log_writer: out of memory");
  }
  return 1;
}

static const luaL_Reg logw_methods[] = {
  {"write", logw_write}, {"flush", logw_flush}, {"stats", logw_stats},
  {"close", logw_close}, {NULL, NULL}};

void lh_logw_open(lua_State *L, int mod) {
  if (luaL_newmetatable(L, LOGW_MT)) {
    luaL_newlib(L, logw_methods);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, "__methods");
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, logw_close);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, logw_close);
    lua_setfield(L, -2, "__close");
    lua_pushcfunction(L, logw_tostring);
    lua_setfield(L, -2, "__tostring");
  }
  lua_pop(L, 1);
  lua_pushcfunction(L, l_log_writer);
  lua_setfield(L, mod, "log_writer");
}
