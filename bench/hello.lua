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
-- VARIANT picks the handler (default "hello", the README's); each answers
-- 200 with the same 13-byte body, and differs from hello in one way:
--   cl        sets its own content-length, as a string (tostring(#body))
--   cl_num    sets its own content-length, as a number (#body)
--   path      reads req.path
--   query     reads req.query
--   header    reads one request header, req.headers["host"]
--   headers3  reads three (host, user-agent and accept; the last two absent)
--   cookie    sets a set-cookie field
--   number    sets a field with a number value (x-count = 42)
--   table     builds its header table field by field (the hello's one field)
--   fields3   three fields in the table constructor (content-type, cache-control,
--             x-content-type-options)
--   table3    the same three fields, set one by one
--   app       what a new user writes: content-length as a string, and req.path
local lhyper = require "lhyper"

local gc = os.getenv("LHYPER_GC")
if gc == "generational" or gc == "incremental" then
  collectgarbage(gc)
elseif gc and gc ~= "" then
  error("LHYPER_GC must be incremental or generational, not " .. gc)
end

local pipeline_flush = arg[2] == "pipeline_flush" or os.getenv("LHYPER_PIPELINE_FLUSH") == "1"

local BODY = "Hello, World!"
local tostring = tostring

local handlers = {
  hello = function(req)
    return 200, { ["content-type"] = "text/plain" }, "Hello, World!"
  end,
  cl = function(req)
    return 200, { ["content-type"] = "text/plain", ["content-length"] = tostring(#BODY) }, BODY
  end,
  cl_num = function(req)
    return 200, { ["content-type"] = "text/plain", ["content-length"] = #BODY }, BODY
  end,
  path = function(req)
    if req.path ~= "/" then return 404 end
    return 200, { ["content-type"] = "text/plain" }, BODY
  end,
  query = function(req)
    local q = req.query
    if q and #q > 100 then return 414 end
    return 200, { ["content-type"] = "text/plain" }, BODY
  end,
  header = function(req)
    if not req.headers["host"] then return 400 end
    return 200, { ["content-type"] = "text/plain" }, BODY
  end,
  headers3 = function(req)
    local h = req.headers
    if not h["host"] or h["user-agent"] == "x" or h["accept"] == "x" then return 400 end
    return 200, { ["content-type"] = "text/plain" }, BODY
  end,
  cookie = function(req)
    return 200, { ["content-type"] = "text/plain", ["set-cookie"] = "sid=31d4d96e407aad42; Path=/; Secure; HttpOnly" }, BODY
  end,
  number = function(req)
    return 200, { ["content-type"] = "text/plain", ["x-count"] = 42 }, BODY
  end,
  table = function(req)
    local h = {}
    h["content-type"] = "text/plain"
    return 200, h, BODY
  end,
  fields3 = function(req)
    return 200, { ["content-type"] = "text/plain", ["cache-control"] = "no-store",
      ["x-content-type-options"] = "nosniff" }, BODY
  end,
  table3 = function(req)
    local h = {}
    h["content-type"] = "text/plain"
    h["cache-control"] = "no-store"
    h["x-content-type-options"] = "nosniff"
    return 200, h, BODY
  end,
  app = function(req)
    if req.path ~= "/" then return 404 end
    return 200, { ["content-type"] = "text/plain", ["content-length"] = tostring(#BODY) }, BODY
  end,
}

local variant = os.getenv("VARIANT")
if variant == nil or variant == "" then variant = "hello" end
local handler = handlers[variant]
if not handler then error("VARIANT: no handler named " .. variant) end

-- with workers, each counts what it served
local workers = os.getenv("LHYPER_WORKERS")
local served = 0
if workers then
  local serve = handler
  handler = function(req)
    served = served + 1
    return serve(req)
  end
end

local server = assert(lhyper.server{
  host = "127.0.0.1",
  port = tonumber(arg[1]) or 8080,
  pipeline_flush = pipeline_flush,
  handler = handler,
})
io.stderr:write(("lhyper hello (%s) on 127.0.0.1:%d%s\n"):format(variant, server.port,
  pipeline_flush and " (pipeline_flush)" or ""))

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
