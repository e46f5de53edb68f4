-- The bundled server: `lua5.4 serve.lua [port] [host]`.
-- Routes: /          hello
--         /echo      the request body back
--         /headers   the request head as text
-- SIGINT or SIGTERM closes it gracefully (running requests finish, 10 s at
-- most); a second signal stops it at once.
local lhyper = require "lhyper"

local port = tonumber(arg[1] or os.getenv("PORT") or 8080)
local host = arg[2] or os.getenv("HOST") or "127.0.0.1"
local GRACE = 10

local function handler(req)
  local path = req.path
  if path == "/" or path == "/hello" then
    return 200, { ["content-type"] = "text/plain" }, "Hello, World!"
  elseif path == "/echo" then
    local body, err = req:read_all(16 * 1024 * 1024)
    if not body then return 413, { ["content-type"] = "text/plain" }, tostring(err) .. "\n" end
    return 200, { ["content-type"] = req.headers["content-type"] or "application/octet-stream" }, body
  elseif path == "/headers" then
    local out = { ("%s %s HTTP/%s"):format(req.method, req.target, req.version) }
    for name, value in req.headers:each() do out[#out + 1] = name .. ": " .. value end
    return 200, { ["content-type"] = "text/plain" }, table.concat(out, "\n") .. "\n"
  end
  return 404, { ["content-type"] = "text/plain" }, "not found\n"
end

local server = assert(lhyper.server { host = host, port = port, handler = handler })
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
