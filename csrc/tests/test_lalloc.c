/* lalloc.c, the free-list cache in front of a Lua state's allocator, over a
 * real lua_State whose own allocator checks every size it is given back. */
#include <lauxlib.h>
#include <lualib.h>
#include <stdlib.h>
#include <string.h>

#include "lalloc.h"
#include "test.h"

/* the allocator below: a header before each block keeps its size; a free or
 * resize that names another size is counted in `bad` */
typedef struct {
  size_t live, blocks, calls, limit; /* limit: live bytes allowed, 0 none */
  int bad;
  int mark;                          /* record the next new block in `marked` */
  void *marked;
} acct_t;

static void *acct_alloc(void *ud, void *p, size_t osize, size_t nsize) {
  acct_t *a = ud;
  size_t *h = p ? (size_t *)p - 2 : NULL;
  a->calls++;
  if (h && h[0] != osize) a->bad++;
  if (nsize == 0) {
    if (h) {
      a->live -= h[0];
      a->blocks--;
      free(h);
    }
    return NULL;
  }
  size_t was = h ? h[0] : 0;
  if (a->limit && a->live - was + nsize > a->limit) return NULL;
  size_t *q = realloc(h, nsize + 2 * sizeof(size_t));
  if (!q) return NULL;
  if (!h) a->blocks++;
  a->live = a->live - was + nsize;
  q[0] = nsize;
  if (!h && a->mark) {
    a->marked = q + 2;
    a->mark = 0;
  }
  return q + 2;
}

/* a state with the standard libraries over acct_alloc */
static lua_State *acct_state(acct_t *acct) {
  lua_State *L = lua_newstate(acct_alloc, acct);
  if (L) luaL_openlibs(L);
  return L;
}

static int run(lua_State *L, const char *chunk) {
  if (luaL_dostring(L, chunk)) {
    printf("# lua: %s\n", lua_tostring(L, -1));
    lua_pop(L, 1);
    return -1;
  }
  return 0;
}

/* objects of many sizes, made and dropped */
static const char GARBAGE[] =
  "local keep = {}\n"
  "for i = 1, 20000 do\n"
  "  local t = {i, tostring(i), x = i}\n"
  "  local s = string.rep('s', i % 900) .. i\n"
  "  local f = function() return t, s end\n"
  "  if i % 100 == 0 then keep[#keep + 1] = f end\n"
  "end\n"
  "collectgarbage() collectgarbage()\n";

static void lalloc_gives_back_every_block_with_its_size(void) {
  acct_t acct = {0};
  lua_State *L = acct_state(&acct);
  REQUIRE(L != NULL);
  lh_alloc_t *a = lh_alloc_attach(L);
  REQUIRE(a != NULL);
  void *ud;
  CHECK(lua_getallocf(L, &ud) != acct_alloc);
  CHECK_EQ(run(L, GARBAGE), 0);
  CHECK_EQ(run(L, GARBAGE), 0);
  lh_alloc_detach(L, a);
  CHECK(lua_getallocf(L, &ud) == acct_alloc && ud == &acct);
  CHECK_EQ(run(L, GARBAGE), 0);
  lua_close(L);
  CHECK_EQ(acct.bad, 0);
  CHECK_EQ(acct.live, 0);
  CHECK_EQ(acct.blocks, 0);
}

static void lalloc_serves_allocations_from_freed_blocks(void) {
  size_t calls[2];
  for (int cached = 0; cached < 2; cached++) {
    acct_t acct = {0};
    lua_State *L = acct_state(&acct);
    REQUIRE(L != NULL);
    lh_alloc_t *a = cached ? lh_alloc_attach(L) : NULL;
    CHECK_EQ(run(L, "for i = 1, 100000 do local t = {x = i} end"), 0);
    calls[cached] = acct.calls;
    lh_alloc_detach(L, a);
    lua_close(L);
    CHECK_EQ(acct.bad, 0);
    CHECK_EQ(acct.live, 0);
  }
  /* a table and its node, made and freed; the cache recycles both */
  printf("# underlying allocator calls: %zu alone, %zu with the cache\n", calls[0], calls[1]);
  CHECK(calls[0] > 200000);
  CHECK(calls[1] < calls[0] / 10);
}

/* what another library might do: an allocator in front of ours */
static acct_t *outer_acct;
static lua_Alloc inner_f;
static void *inner_ud;
static void *outer_alloc(void *ud, void *p, size_t osize, size_t nsize) {
  (void)ud;
  outer_acct->calls++;
  return inner_f(inner_ud, p, osize, nsize);
}

static void lalloc_stays_as_a_pass_through_when_wrapped(void) {
  acct_t acct = {0};
  lua_State *L = acct_state(&acct);
  REQUIRE(L != NULL);
  acct.mark = 1;
  lh_alloc_t *a = lh_alloc_attach(L);
  REQUIRE(a != NULL);
  REQUIRE(acct.marked == (void *)a);
  outer_acct = &acct;
  inner_f = lua_getallocf(L, &inner_ud);
  lua_setallocf(L, outer_alloc, NULL);
  CHECK_EQ(run(L, GARBAGE), 0);
  lh_alloc_detach(L, a); /* cannot take itself out: it empties and stays */
  void *ud;
  CHECK(lua_getallocf(L, &ud) == outer_alloc);
  CHECK_EQ(run(L, GARBAGE), 0);
  lua_close(L);
  CHECK_EQ(acct.bad, 0);
  CHECK_EQ(acct.blocks, 1); /* the cache's own record, still in use */
  free((size_t *)acct.marked - 2);
}

static void lalloc_empties_itself_when_memory_runs_out(void) {
  acct_t acct = {0};
  lua_State *L = acct_state(&acct);
  REQUIRE(L != NULL);
  lh_alloc_t *a = lh_alloc_attach(L);
  REQUIRE(a != NULL);
  /* about 1 MiB of freed blocks ends up in the cache */
  CHECK_EQ(run(L, "for i = 1, 8000 do local s = string.rep('x', 200 + i % 800) .. i end\n"
                  "collectgarbage() collectgarbage()"), 0);
  acct.limit = acct.live + 256 * 1024;
  /* 400 KiB (twice, with string.rep's buffer) fits only once the cache is empty */
  CHECK_EQ(run(L, "big = string.rep('y', 400 * 1024)"), 0);
  acct.limit = 0;
  lh_alloc_detach(L, a);
  lua_close(L);
  CHECK_EQ(acct.bad, 0);
  CHECK_EQ(acct.live, 0);
}

int main(void) {
  unsetenv("LHYPER_ALLOC_CACHE");
  static const test_case_t tests[] = {
    TEST_CASE(lalloc_gives_back_every_block_with_its_size),
    TEST_CASE(lalloc_serves_allocations_from_freed_blocks),
    TEST_CASE(lalloc_stays_as_a_pass_through_when_wrapped),
    TEST_CASE(lalloc_empties_itself_when_memory_runs_out),
  };
  return T_RUN(tests);
}
