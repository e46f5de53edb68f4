-- bench/layered.lua: the hello server of bench/hello.lua through the
-- composition layer: lhyper.router + request_id + access_log (to a file)
-- + timeout, for bench/layers.sh (and APP=layered bench/callgrind.sh).
--   LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='build/?.so;;' lua5.4 bench/layered.lua PORT
-- ACCESS_LOG: the log file (default: a temporary file, removed at exit).
-- LAYERS: the layers in front of the router, in order (default
-- "request_id,access_log,timeout"; "" for the router alone; metrics and
-- concurrency_limit too). TIMEOUT: the timeout layer's seconds (30);
-- LIMIT: concurrency_limit's n (1000, queue 1000).
-- LHYPER_GC as in hello.lua.
local lhyper = require "lhyper"
local L = lhyper.layers

local gc = os.getenv("LHYPER_GC")
if gc == "generational" or gc == "incremental" then
  collectgarbage(gc)
elseif gc and gc ~= "" then
  error("LHYPER_GC must be incremental or generational, not " .. gc)
end

local log = os.getenv("ACCESS_LOG")
local tmp = not log
if tmp then log = os.tmpname() end

local H = { ["content-type"] = "text/plain" }
local app = lhyper.router()
app:get("/", function() return 200, H, "Hello, World!" end)

-- LAYERS: which of them, in order (default "request_id,access_log,timeout")
local stack = {}
for name in (os.getenv("LAYERS") or "request_id,access_log,timeout"):gmatch("[%w_]+") do
  if name == "access_log" then stack[#stack + 1] = L.access_log { out = log }
  elseif name == "metrics" then stack[#stack + 1] = L.metrics()
  elseif name == "timeout" then stack[#stack + 1] = L.timeout(tonumber(os.getenv("TIMEOUT")) or 30)
  elseif name == "concurrency_limit" then
    local n = math.tointeger(tonumber(os.getenv("LIMIT"))) or 1000
    stack[#stack + 1] = L.concurrency_limit(n, { queue = n })
  else stack[#stack + 1] = L[name]() end
end
stack[#stack + 1] = app

local server = assert(lhyper.server {
  host = "127.0.0.1",
  port = tonumber(arg[1]) or 8080,
  handler = lhyper.stack(stack),
})
io.stderr:write(("lhyper layered hello on 127.0.0.1:%d, access log %s\n"):format(server.port, log))
local term = lhyper.on_signal("SIGTERM", function() lhyper.stop() end)
lhyper.run()
term:stop()
if tmp then os.remove(log) end
