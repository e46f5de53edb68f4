-- bench/ws.lua: WebSocket echo server for bench/ws.sh (port from argv[1]);
-- GET / answers 200 so the bench can see it is up. WS_COMPRESS=1 turns
-- permessage-deflate on; WS_PING=0 turns keepalive pings off; WS_GC=1 runs
-- a full collection every half second (bench/wsmem.sh's live-byte snapshots);
-- WS_DETACH=1 echoes from ws:detach callbacks instead of a messages() loop.
local lhyper = require "lhyper"
local accept = lhyper.websocket.accept
local opts = { compress = os.getenv("WS_COMPRESS") == "1", max_message = 16 * 1024 * 1024 }
if os.getenv("WS_PING") == "0" then opts.ping_interval = false end
local detach = os.getenv("WS_DETACH") == "1"
local function echo(ws, msg, kind) ws:send(msg, kind) end
local srv = assert(lhyper.server {
  host = "127.0.0.1", port = tonumber(arg[1]) or 8080, backlog = 4096,
  handler = function(req)
    if req.path ~= "/ws" then return 200, nil, "ws echo" end
    local ws = accept(req, opts)
    if not ws then return end
    if detach then return ws:detach(echo) end
    for msg, kind in ws:messages() do
      if not ws:send(msg, kind) then break end
    end
  end,
})
if os.getenv("WS_GC") == "1" then
  lhyper.spawn(function()
    while true do
      lhyper.sleep(0.5)
      collectgarbage("collect")
    end
  end):detach()
end
io.stderr:write("ws echo on ", srv.port, "\n")
lhyper.run()
