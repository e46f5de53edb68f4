-- The bundled server: `lua5.4 serve.lua [port] [host]`, a small app built
-- with lhyper.router and a few layers.
--   GET  /              Hello, World!  (also /hello)
--   POST /echo          the request body back (16 MiB at most)
--   GET  /headers       the request head as text
--   GET  /stream?n=10   n lines, streamed as they are made
--   GET  /users/{id}    a JSON document from the path's number
--   GET  /metrics       Prometheus metrics
-- Every exchange is logged on stderr (ACCESS_LOG=off: not at all, or a
-- file path). SIGINT or SIGTERM closes it gracefully (running requests
-- finish, 10 s at most); a second signal stops it at once.
local lhyper = require "lhyper"
local L = lhyper.layers

local port = tonumber(arg[1] or os.getenv("PORT") or 8080)
local host = arg[2] or os.getenv("HOST") or "127.0.0.1"
local GRACE = 10

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

local layers = { L.request_id() }
local log = os.getenv("ACCESS_LOG")
if log ~= "off" then layers[#layers + 1] = L.access_log { out = log or io.stderr } end
layers[#layers + 1] = L.metrics { path = "/metrics" }
layers[#layers + 1] = app

local server = assert(lhyper.server { host = host, port = port, handler = lhyper.stack(layers) })
io.stderr:write(("lhyper listening on http://%s:%d/\n"):format(host, server.port))

local closing = false
local function on_signal(signum)
  if closing then
    io.stderr:write("lhyper: stopping now\n")
    lhyper.stop()
    return
  end
  closing = true
  io.stderr:write(("lhyper: signal %d, closing (grace %d s)\n"):format(signum, GRACE))
  server:close(GRACE)
end
local sigint = lhyper.on_signal("SIGINT", on_signal)
local sigterm = lhyper.on_signal("SIGTERM", on_signal)

lhyper.run()
sigint:stop()
sigterm:stop()
io.stderr:write("lhyper: closed\n")
