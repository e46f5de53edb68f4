-- Graceful shutdown: on SIGTERM or SIGINT the server stops accepting, lets
-- the requests under way finish (their responses say Connection: close)
-- and closes the rest after a grace period; the signal's task waits for
-- the server to be done. A second signal stops at once. A periodic task
-- (lhyper.every) does not keep the process alive once the server is gone.
--   lua5.4 examples/shutdown.lua [port]      then Ctrl-C
local lhyper = require "lhyper"

local server = assert(lhyper.server {
  port = tonumber(arg[1]) or 8080,
  handler = function(req)
    if req.path == "/slow" then lhyper.sleep(1) end -- a request under way
    return 200, { ["content-type"] = "text/plain" }, "done\n"
  end,
})

lhyper.every(10, function()
  io.stderr:write(("%d connections\n"):format(server.connections))
end)

local stopping = false
local function shutdown(signum)
  if stopping then return lhyper.stop() end -- a second signal: at once
  stopping = true
  io.stderr:write("closing (signal " .. signum .. ")\n")
  server:close(10) -- 10 s of grace for the requests under way
  server:wait()
  io.stderr:write("closed\n")
end
local int = lhyper.on_signal("SIGINT", shutdown)
local term = lhyper.on_signal("SIGTERM", shutdown)

print("listening on http://127.0.0.1:" .. server.port)
io.stdout:flush()
lhyper.run() -- returns once nothing but the periodic task and the watchers is left
int:stop()
term:stop()
io.stderr:write("bye\n")
