-- WebSocket routes on lhyper.router (router:ws), behind router layers, for
-- spec/router_ws_spec.lua. Same protocol as spec/app.lua: options as a Lua
-- table literal in arg[1], prints "PORT <port> PID <pid> PGID <pgid>" once
-- listening, GET /__quit stops it. Options:
--   log   access_log (combined) to this file, as a router layer
local lhyper = require "lhyper"
local support = require "app_support"
local L = lhyper.layers

local opts = assert(load("return " .. (arg[1] or "{}"), "=options", "t", {}))()
local TEXT = { ["content-type"] = "text/plain" }

local app = lhyper.router()

-- an auth layer: ?token=ok or 401; notes what it saw in a header of its own
-- (on a 101 too: layers answer for WebSocket routes as for others)
app:layer(function(inner)
  return function(req)
    if req.query ~= "token=ok" and not (req.query or ""):find("^token=ok&") then
      return 401, TEXT, "token please\n"
    end
    return inner(req)
  end
end)
app:layer(L.request_id())
if opts.log then app:layer(L.access_log { out = opts.log }) end

local function echo(ws)
  for msg, kind in ws:messages() do
    if not ws:send(msg, kind) then break end
  end
end

app:ws("/echo", echo)
app:ws("/chat/{room}", function(ws, req)
  ws:send(("room=%s route=%s id=%s protocol=%s"):format(req.params.room, req.route, tostring(req.id),
    tostring(ws.protocol)))
  echo(ws)
end, { protocols = { "chat" } })
app:get("/both", function(req) return 200, TEXT, "plain GET of /both\n" end)
app:ws("/both", echo)
app:ws("/small", echo, { max_message = 10 })
app:ws("/deflate", function(ws)
  ws:send("extensions=" .. tostring(ws.extensions))
  echo(ws)
end, { compress = true })
app:get("/", function() return 200, TEXT, "home\n" end)

local quit = support.quit

local server = assert(lhyper.server { host = "127.0.0.1", port = 0, handler = lhyper.stack { quit, app } })
support.announce(server)
lhyper.run()
