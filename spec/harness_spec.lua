-- The harness itself: what the valgrind pass of scripts/test.sh counts as a
-- memory error. valgrind -q prints errors only, with no ERROR or LEAK
-- SUMMARY lines, so those summaries cannot be what the pass looks for.
local h = require "helper"

local has_valgrind = os.execute("command -v valgrind >/dev/null 2>&1")

describe("the valgrind pass", function()
  local function under_valgrind(src)
    local dir = h.run("mktemp -d"):gsub("%s+$", "")
    finally(function() os.execute("rm -rf " .. h.shell_quote(dir)) end)
    h.write_file(dir .. "/p.c", src)
    local out, code = h.run(("cc -g -O0 -o %s/p %s/p.c 2>&1"):format(dir, dir))
    assert.equal(0, code, out)
    return (h.run(("valgrind -q --leak-check=full --errors-for-leak-kinds=definite "
      .. "--show-leak-kinds=definite %s/p 2>&1"):format(dir)))
  end

  it("sees an uninitialised read, a syscall given uninitialised bytes and a definite leak", function()
    if not has_valgrind then pending("valgrind not installed") return end
    local out = under_valgrind([[
#include <stdlib.h>
#include <unistd.h>
int main(void) {
  char *p = malloc(8);
  if (p[3]) p[0] = 1;
  write(-1, p, 8);
  p = malloc(16);
  p = 0;
  return 0;
}
]])
    assert.is_true(h.valgrind_report(out), out)
    assert.matches("Conditional jump", out, 1, true)
  end)

  it("sees nothing in a clean program", function()
    if not has_valgrind then pending("valgrind not installed") return end
    local out = under_valgrind([[
#include <stdlib.h>
int main(void) { char *p = calloc(1, 8); int r = p[3]; free(p); return r; }
]])
    assert.is_false(h.valgrind_report(out), out)
  end)

  it("does not count valgrind's warnings as errors", function()
    assert.is_false(h.valgrind_report("==12== Warning: set address range perms: large range\n"))
    assert.is_true(h.valgrind_report("==12== Invalid read of size 4\n==12==    at 0x1: f\n"))
  end)
end)
