-- Router matching speed, CPU only: nanoseconds per router:match(path)
-- (the trie walk, the parameters' table and their decoding: what a
-- request's dispatch costs before its service runs), under the Lua that
-- runs this script. Routes: one static route alone, and the GitHub REST
-- API's 609 paths (bench/github_routes.txt).
--   LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='build/?.so;;' lua5.4 bench/router.lua
-- N=iterations per case (default 1,000,000); ROUNDS (default 3): the best
-- round is reported.
local router = require "lhyper.router"

local N = tonumber(os.getenv("N")) or 1000000
local ROUNDS = tonumber(os.getenv("ROUNDS")) or 3
local here = arg and arg[0] and arg[0]:match("^(.*)/[^/]*$") or "bench"

local function noop() return 200 end

local function github()
  local r = router.new()
  local n = 0
  for line in io.lines(here .. "/github_routes.txt") do
    if line ~= "" then
      r:get(line, noop)
      n = n + 1
    end
  end
  return r, n
end

local function bench(name, r, path, want, wantp)
  local route, params = r:match(path)
  assert(route == want, ("%s: %s matched %s, not %s"):format(name, path, tostring(route), want))
  for k, v in pairs(wantp or {}) do assert(params[k] == v, name .. ": param " .. k) end
  local match = r.match
  local best = math.huge
  for _ = 1, ROUNDS do
    collectgarbage()
    local t0 = os.clock()
    for _ = 1, N do match(r, path) end
    local dt = os.clock() - t0
    if dt < best then best = dt end
  end
  local ns = best / N * 1e9
  print(("%-40s %-44s %8.0f ns"):format(name, path, ns))
  return ns
end

print(("%s, %d iterations, best of %d rounds"):format(_VERSION, N, ROUNDS))
local one = router.new()
one:get("/hello", noop)
bench("static, 1 route", one, "/hello", "/hello")
local gh, n = github()
assert(n == 609, "expected 609 GitHub routes, got " .. n)
bench("static, GitHub (609 routes)", gh, "/user/repos", "/user/repos")
bench("1 parameter, GitHub", gh, "/users/octocat", "/users/{username}", { username = "octocat" })
bench("2 parameters, GitHub", gh, "/repos/vm-001/lua-radix-router/import",
  "/repos/{owner}/{repo}/import", { owner = "vm-001", repo = "lua-radix-router" })
bench("3 parameters, GitHub", gh, "/repos/lhyper/lhyper/issues/42/comments",
  "/repos/{owner}/{repo}/issues/{issue_number}/comments", { issue_number = "42" })
bench("no match, GitHub", gh, "/repos/a/b/nothing/here", nil)
