-- The bundled server: `lua5.4 serve.lua [port] [host] [options]`, a small
-- app built with lhyper.router and a few layers.
--   GET  /              Hello, World!  (also /hello)
--   POST /echo          the request body back (16 MiB at most)
--   GET  /headers       the request head as text
--   GET  /stream?n=10   n lines, streamed as they are made
--   GET  /users/{id}    a JSON document from the path's number
--   GET  /ws            a WebSocket that echoes each message (compression offered)
--   GET  /metrics       Prometheus metrics (each worker's own)
--   GET  /ready         200, or 503 while draining (a load balancer's check)
-- Every exchange is logged on stderr (ACCESS_LOG=off: not at all, or a
-- file path).
-- Options:
--   --workers N|auto      worker processes (auto: one per CPU this process may
--                         use); without it this process serves alone
--   --mode reuseport|shared   a listener per worker (default) or one for all
--   --grace S             seconds a draining server has (default 10)
--   --drain-delay S       seconds /ready says 503 before the listener closes (0)
-- SIGINT or SIGTERM drains (/ready turns 503, the listener closes after the
-- drain delay, running requests finish with Connection: close); a second
-- signal stops it at once. With workers the master takes the signals, and
-- SIGHUP starts workers with this file loaded anew, then drains the old ones.
-- TLS_CERT and TLS_KEY (PEM files) make it serve https. SIGHUP then reads
-- them again: alone, with server:reload_tls (open connections stay); with
-- workers, the new generation loads them as it starts.
do -- run from a built checkout (`make`), its module comes first
  local here = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
  local so = io.open(here .. "/build/lhyper/core.so")
  if so then
    so:close()
    package.path = here .. "/lua/?.lua;" .. here .. "/lua/?/init.lua;" .. package.path
    package.cpath = here .. "/build/?.so;" .. package.cpath
  end
end
local lhyper = require "lhyper"
local L = lhyper.layers

local opts = { port = os.getenv("PORT") or 8080, host = os.getenv("HOST") or "127.0.0.1",
  grace = 10, drain_delay = 0, mode = "reuseport" }
do
  local positional, i = 0, 1
  while arg[i] do
    local a = arg[i]
    local name = a:match("^%-%-([%w-]+)$")
    if name then
      local v = arg[i + 1]
      if v == nil then error("serve.lua: " .. a .. " needs a value") end
      if name == "workers" then opts.workers = v == "auto" and "auto" or assert(tonumber(v), "--workers: a number or auto")
      elseif name == "mode" then opts.mode = v
      elseif name == "grace" then opts.grace = assert(tonumber(v), "--grace: seconds")
      elseif name == "drain-delay" then opts.drain_delay = assert(tonumber(v), "--drain-delay: seconds")
      else error("serve.lua: unknown option " .. a) end
      i = i + 2
    else
      positional = positional + 1
      if positional == 1 then opts.port = a elseif positional == 2 then opts.host = a end
      i = i + 1
    end
  end
end
local host, port = opts.host, assert(tonumber(opts.port), "port: a number")
local tls_cert, tls_key = os.getenv("TLS_CERT"), os.getenv("TLS_KEY")
local tls = tls_cert and tls_key and { cert = tls_cert, key = tls_key } or nil
local scheme = tls and "https" or "http"

local TEXT = { ["content-type"] = "text/plain" }
local JSON = { ["content-type"] = "application/json" }

local app = lhyper.router()

local function hello() return 200, TEXT, "Hello, World!" end
app:get("/", hello)
app:get("/hello", hello)

app:post("/echo", lhyper.stack {
  L.body_limit(16 * 1024 * 1024),
  function(req)
    local body = req:read_all()
    if not body then return end -- over the limit: 413
    return 200, { ["content-type"] = req.headers["content-type"] or "application/octet-stream" }, body
  end,
})

app:get("/headers", function(req)
  local out = { ("%s %s HTTP/%s"):format(req.method, req.target, req.version) }
  for name, value in req.headers:each() do out[#out + 1] = name .. ": " .. value end
  return 200, TEXT, table.concat(out, "\n") .. "\n"
end)

app:get("/stream", function(req)
  local n = math.min(tonumber((req.query or ""):match("n=(%d+)")) or 10, 100000)
  local i = 0
  return 200, TEXT, function()
    if i == n then return nil end
    i = i + 1
    return ("line %d of %d\n"):format(i, n)
  end
end)

app:get("/users/{id:%d+}", function(req)
  local id = req.params.id
  return 200, JSON, ('{"id":%s,"name":"user %s","route":"%s"}\n'):format(id, id, req.route)
end)

app:ws("/ws", function(ws)
  for msg, kind in ws:messages() do
    if not ws:send(msg, kind) then break end
  end
end, { compress = true })

local layers = { L.request_id() }
local log = os.getenv("ACCESS_LOG")
if log ~= "off" then layers[#layers + 1] = L.access_log { out = log or io.stderr } end
layers[#layers + 1] = L.metrics { path = "/metrics" }
layers[#layers + 1] = app

local server = assert(lhyper.server { host = host, port = port, handler = lhyper.stack(layers),
  ready_path = "/ready", drain_delay = opts.drain_delay, tls = tls })

if opts.workers then
  local id, gen = lhyper.workers { n = opts.workers, mode = opts.mode, grace = opts.grace }
  if id then
    io.stderr:write(("lhyper worker %d (generation %d) serving %s://%s:%d/\n"):format(id, gen, scheme, host, server.port))
  elseif gen then
    error("serve.lua: workers did not start: " .. tostring(gen))
  end
  lhyper.run()
  if not id then io.stderr:write("lhyper: closed\n") end
  return
end

io.stderr:write(("lhyper listening on %s://%s:%d/\n"):format(scheme, host, server.port))

local closing = false
local function on_signal(signum)
  if closing then
    io.stderr:write("lhyper: stopping now\n")
    lhyper.stop()
    return
  end
  closing = true
  io.stderr:write(("lhyper: signal %d, closing: draining (grace %g s)\n"):format(signum, opts.grace))
  server:drain(opts.grace)
end
local sigint = lhyper.on_signal("SIGINT", on_signal)
local sigterm = lhyper.on_signal("SIGTERM", on_signal)
local sighup = tls and lhyper.on_signal("SIGHUP", function()
  local ok, err = server:reload_tls(tls)
  io.stderr:write(ok and "lhyper: certificates reloaded\n" or ("lhyper: reload failed: %s\n"):format(tostring(err)))
end)

lhyper.run()
sigint:stop()
sigterm:stop()
if sighup then sighup:stop() end
io.stderr:write("lhyper: closed\n")
