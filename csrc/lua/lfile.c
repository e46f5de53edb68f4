/* lhyper.core.file_info(path) -> { kind = "file" | "directory" | "other",
 * size = bytes, mtime = seconds since the epoch, mtime_ns = its
 * nanoseconds, ino = inode number }, or nil, err, kind where kind is
 * "not_found" (no such file, or a path through a file), "forbidden"
 * (permission denied) or "io". Symbolic links are followed, as open(2)
 * follows them. A blocking call: stat of a local file, as lhyper.static
 * makes one per request. */
#include "lfile.h"

#include <errno.h>
#include <lauxlib.h>
#include <string.h>
#include <sys/stat.h>

static int l_file_info(lua_State *L) {
  size_t n;
  const char *path = luaL_checklstring(L, 1, &n);
  if (strlen(path) != n) return luaL_argerror(L, 1, "a path with a NUL byte");
  struct stat st;
  if (stat(path, &st) != 0) {
    int e = errno;
    lua_pushnil(L);
    lua_pushfstring(L, "%s: %s", path, strerror(e));
    if (e == ENOENT || e == ENOTDIR || e == ENAMETOOLONG || e == ELOOP) lua_pushliteral(L, "not_found");
    else if (e == EACCES || e == EPERM) lua_pushliteral(L, "forbidden");
    else lua_pushliteral(L, "io");
    return 3;
  }
  lua_createtable(L, 0, 5);
  lua_pushstring(L, S_ISREG(st.st_mode) ? "file" : S_ISDIR(st.st_mode) ? "directory" : "other");
  lua_setfield(L, -2, "kind");
  lua_pushinteger(L, (lua_Integer)st.st_size);
  lua_setfield(L, -2, "size");
  lua_pushinteger(L, (lua_Integer)st.st_mtim.tv_sec);
  lua_setfield(L, -2, "mtime");
  lua_pushinteger(L, (lua_Integer)st.st_mtim.tv_nsec);
  lua_setfield(L, -2, "mtime_ns");
  lua_pushinteger(L, (lua_Integer)st.st_ino);
  lua_setfield(L, -2, "ino");
  return 1;
}

void lh_file_open(lua_State *L, int mod) {
  lua_pushcfunction(L, l_file_info);
  lua_setfield(L, mod, "file_info");
}
