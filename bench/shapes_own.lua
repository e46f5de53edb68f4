-- bench/shapes_own.lua: the handler VARIANT of bench/hello.lua called N times
-- on a plain table standing for the req, with no server: what the handler's
-- own Lua costs. bench/shapes.sh runs it under callgrind at N and 2N.
--   VARIANT=cl lua5.4 bench/shapes_own.lua N
-- bench/ceiling.c built with -DCEILING_LUA loads this file with the argument
-- "handler" and gets the handler and the req back, to call per request.
local first = ...
local handler
-- hello.lua asks lhyper for a server and runs it; this stand-in keeps the
-- handler and returns at once
package.loaded.lhyper = {
  server = function(opts) handler = opts.handler; return { port = 0 } end,
  run = function() end,
  on_signal = function() return { stop = function() end } end,
}
arg = { "0" }
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "hello.lua")
-- what the shapes read: the path, no query, the Host field
local req = { method = "GET", target = "/", path = "/", headers = { host = "127.0.0.1:8080" } }
if first == "handler" then return handler, req end
local n = assert(tonumber(first), "usage: VARIANT=name lua5.4 bench/shapes_own.lua N")
local status
for _ = 1, n do status = handler(req) end
assert(status == 200, "the handler did not answer 200")
