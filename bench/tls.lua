-- bench/tls.lua: the lhyper https server of bench/tls.sh.
--   TLS_CERT=cert.pem TLS_KEY=key.pem [TLS_CIPHERS=...] \
--   LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='build/?.so;;' lua5.4 bench/tls.lua PORT
--   GET /            -> "Hello, World!" (13 bytes), as bench/hello.lua
--   GET /down?n=N    -> N bytes from a body iterator in 64 KiB chunks, as bench/stream.lua
--   PUT|POST /up     -> reads the body, answers the byte count
local lhyper = require "lhyper"

local CHUNK = 64 * 1024
local chunk = string.rep("x", CHUNK)

local function handler(req)
  local path = req.path
  if path == "/down" then
    local n = tonumber(req.query and req.query:match("n=(%d+)")) or 0
    local left = n
    return 200, { ["content-type"] = "application/octet-stream", ["content-length"] = tostring(n) },
      function()
        if left <= 0 then return nil end
        local c = left >= CHUNK and chunk or chunk:sub(1, left)
        left = left - #c
        return c
      end
  elseif path == "/up" then
    local total = 0
    for c in req:body() do total = total + #c end
    return 200, { ["content-type"] = "text/plain" }, tostring(total)
  end
  return 200, { ["content-type"] = "text/plain" }, "Hello, World!"
end

local cert, key = assert(os.getenv("TLS_CERT"), "TLS_CERT"), assert(os.getenv("TLS_KEY"), "TLS_KEY")
local ciphers = os.getenv("TLS_CIPHERS")
if ciphers == "" then ciphers = nil end
local server = assert(lhyper.server{
  host = "127.0.0.1", port = tonumber(arg[1]) or 8443, handler = handler,
  tls = { cert = cert, key = key, ciphers = ciphers },
})
io.stderr:write(("lhyper tls on 127.0.0.1:%d\n"):format(server.port))
local term = lhyper.on_signal("SIGTERM", function() lhyper.stop() end)
lhyper.run()
term:stop()
