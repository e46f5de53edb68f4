/* The binding of worker processes (csrc/uv/workers.c): the master's run
 * over the servers, a worker's control channel, the CPU count. The Lua
 * side (lua/lhyper/workers.lua) checks options and says what a worker
 * does on each command. */
#include "lworkers.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lsvc.h"
#include "ltask.h"
#include "workers.h"

/* core.workers_run({ n, shared, grace }, { server, ... }, argv | nil)
 * -> false in the master once every worker has exited; id, generation,
 * ctl in a worker; nil, err, kind when the workers could not start.
 * argv: the program's command line (arg[-k] .. arg[n]) for fresh code on
 * reload; nil: no reload. */
static int l_workers_run(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checktype(L, 2, LUA_TTABLE);
  lh_lstate_t *st = lh_state(L);
  if (st->running) return luaL_error(L, "lhyper.workers: call it before lhyper.run, not inside it");
  lh_workers_opts_t o;
  memset(&o, 0, sizeof o);
  o.n = (int)lh_opt_uint(L, 1, "n", 1, INT_MAX);
  o.grace = lh_opt_number(L, 1, "grace", 10);
  lua_getfield(L, 1, "shared");
  o.shared = lua_toboolean(L, -1);
  lua_pop(L, 1);
  int nsrv = (int)luaL_len(L, 2);
  /* the arrays live in userdata: a raise below frees them with the GC */
  lh_server_t **srv = lua_newuserdatauv(L, (size_t)(nsrv + 1) * sizeof *srv, 0);
  for (int i = 0; i < nsrv; i++) {
    lua_geti(L, 2, i + 1);
    srv[i] = lh_svc_server(L, -1);
    if (!srv[i]) return luaL_error(L, "lhyper.workers: server %d is closed", i + 1);
    lua_pop(L, 1);
  }
  char exe[PATH_MAX];
  char **argv = NULL;
  if (lua_type(L, 3) == LUA_TTABLE) {
    int argc = (int)luaL_len(L, 3);
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (argc > 0 && n > 0) {
      exe[n] = 0;
      argv = lua_newuserdatauv(L, (size_t)(argc + 1) * sizeof *argv, 0);
      for (int i = 0; i < argc; i++) {
        lua_geti(L, 3, i + 1);
        argv[i] = (char *)luaL_checkstring(L, -1);
        lua_pop(L, 1); /* still anchored by the table at 3 */
      }
      argv[argc] = NULL;
      o.exe = exe;
      o.argv = argv;
    }
  }
  lh_worker_info_t w = {0};
  int r = lh_workers_run(st->loop, srv, nsrv, &o, &w);
  if (r < 0) return lh_push_fail(L, r, NULL);
  if (r == 0) {
    lua_pushboolean(L, 0);
    return 1;
  }
  lua_pushinteger(L, w.id);
  lua_pushinteger(L, w.generation);
  lua_pushinteger(L, w.ctl);
  return 3;
}

/* core.worker_env() -> id, generation, ctl in a worker the master exec'd */
static int l_worker_env(lua_State *L) {
  lh_worker_info_t w;
  if (!lh_worker_from_env(&w)) return 0;
  lua_pushinteger(L, w.id);
  lua_pushinteger(L, w.generation);
  lua_pushinteger(L, w.ctl);
  return 3;
}

/* core.worker_control(ctl, fn): fn("drain" | "retire" | "quit") on the
 * main thread, under protection, for each command of the master (and the
 * worker's own SIGTERM, SIGQUIT). fn stays anchored for the process' life */
typedef struct {
  lh_lstate_t *st;
  int fn_ref;
} ctl_ctx;

static void ctl_cb(void *data, int cmd) {
  ctl_ctx *x = data;
  const char *name = cmd == LH_WORKER_DRAIN    ? "drain"
                     : cmd == LH_WORKER_RETIRE ? "retire"
                     : cmd == LH_WORKER_QUIT   ? "quit"
                                               : NULL;
  if (!name) return;
  lua_State *L = x->st->L;
  int top = lua_gettop(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, x->fn_ref);
  lua_pushstring(L, name);
  if (lua_pcall(L, 1, 0, 0) != LUA_OK)
    fprintf(stderr, "lhyper worker %d: %s\n", (int)getpid(), lh_error_text(L, -1));
  lua_settop(L, top);
}

static int l_worker_control(lua_State *L) {
  int fd = (int)luaL_checkinteger(L, 1);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  lh_lstate_t *st = lh_state(L);
  /* lives as long as the state: a full userdata in the registry */
  ctl_ctx *x = lua_newuserdatauv(L, sizeof *x, 0);
  x->st = st;
  lua_pushvalue(L, 2);
  x->fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  luaL_ref(L, LUA_REGISTRYINDEX);
  int r = lh_worker_ctl_start(st->loop, fd, ctl_cb, x);
  if (r < 0) return lh_push_fail(L, r, NULL);
  lua_pushboolean(L, 1);
  return 1;
}

static int l_cpu_count(lua_State *L) {
  lua_pushinteger(L, lh_cpu_count());
  return 1;
}

static const luaL_Reg funcs[] = {{"workers_run", l_workers_run},
                                 {"worker_env", l_worker_env},
                                 {"worker_control", l_worker_control},
                                 {"cpu_count", l_cpu_count},
                                 {NULL, NULL}};

void lh_workers_open(lua_State *L, int mod) {
  lua_pushvalue(L, mod);
  luaL_setfuncs(L, funcs, 0);
  lua_pop(L, 1);
}
