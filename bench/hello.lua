-- bench/hello.lua: the lhyper hello server used by bench/run.sh and friends.
--   LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='build/?.so;;' lua5.4 bench/hello.lua PORT [pipeline_flush]
-- The pipeline_flush variant is chosen by a second argument "pipeline_flush"
-- or by the environment variable LHYPER_PIPELINE_FLUSH=1.
-- LHYPER_GC=incremental or =generational sets Lua's collector mode for the run.
-- LHYPER_WORKERS=N (or auto) serves from N worker processes (lhyper.workers,
-- mode LHYPER_WORKER_MODE, reuseport by default); each worker writes
-- "worker I requests N" to stderr when the master's SIGTERM ends it.
-- lhyper leaves the collector as it finds it; lua5.4, the standalone
-- interpreter, starts scripts in generational mode, so that is what the
-- benches measure unless LHYPER_GC says otherwise.
local lhyper = require "lhyper"

local gc = os.getenv("LHYPER_GC")
if gc == "generational" or gc == "incremental" then
  collectgarbage(gc)
elseif gc and gc ~= "" then
  error("LHYPER_GC must be incremental or generational, not " .. gc)
end

local pipeline_flush = arg[2] == "pipeline_flush" or os.getenv("LHYPER_PIPELINE_FLUSH") == "1"

local workers = os.getenv("LHYPER_WORKERS")
local served = 0
local handler = function(req)
  return 200, { ["content-type"] = "text/plain" }, "Hello, World!"
end
if workers then
  handler = function(req)
    served = served + 1
    return 200, { ["content-type"] = "text/plain" }, "Hello, World!"
  end
end

local server = assert(lhyper.server{
  host = "127.0.0.1",
  port = tonumber(arg[1]) or 8080,
  pipeline_flush = pipeline_flush,
  handler = handler,
})
io.stderr:write(("lhyper hello on 127.0.0.1:%d%s\n"):format(server.port, pipeline_flush and " (pipeline_flush)" or ""))

if workers then
  local id = lhyper.workers{ n = tonumber(workers) or workers, mode = os.getenv("LHYPER_WORKER_MODE") }
  lhyper.run()
  if id then io.stderr:write(("worker %d requests %d\n"):format(id, served)) end
  return
end
-- SIGTERM ends the run normally, so profilers (callgrind) write their data
local term = lhyper.on_signal("SIGTERM", function() lhyper.stop() end)
lhyper.run()
term:stop()
