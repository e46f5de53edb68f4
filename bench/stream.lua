-- bench/stream.lua: lhyper streaming app for bench/stream.sh.
--   GET /down?n=BYTES  -> n bytes produced by a body iterator in 64 KiB chunks
--   PUT|POST /up       -> consumes the request body with `for chunk in req:body()`,
--                         answers the byte count
--   anything else      -> "Hello, World!" (readiness probe)
--   LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='build/?.so;;' lua5.4 bench/stream.lua PORT
local lhyper = require "lhyper"

local CHUNK = 64 * 1024
local chunk = string.rep("x", CHUNK)

local function handler(req)
  if req.path == "/down" then
    local n = tonumber(req.query and req.query:match("n=(%d+)")) or 0
    local left = n
    return 200, { ["content-type"] = "application/octet-stream", ["content-length"] = tostring(n) },
      function()
        if left <= 0 then return nil end
        local c = left >= CHUNK and chunk or chunk:sub(1, left)
        left = left - #c
        return c
      end
  elseif req.path == "/up" then
    local total = 0
    for c in req:body() do total = total + #c end
    return 200, { ["content-type"] = "text/plain" }, tostring(total)
  end
  return 200, { ["content-type"] = "text/plain" }, "Hello, World!"
end

local server = assert(lhyper.server{ host = "127.0.0.1", port = tonumber(arg[1]) or 8080, handler = handler })
io.stderr:write(("lhyper stream on 127.0.0.1:%d\n"):format(server.port))
lhyper.run()
