-- What the spec apps run by helper.start_app (spec/router_app.lua,
-- spec/router_ws_app.lua, spec/app.lua) share: the harness's stop route and
-- the line that tells the harness where the app listens.
local lhyper = require "lhyper"

local M = {}

-- a layer answering GET /__quit: stops the loop, so that lua_close and exit
-- run (and sanitizers can report leaks); everything else goes to `inner`
function M.quit(inner)
  return function(req)
    if req.path == "/__quit" then
      lhyper.stop()
      return 200, { connection = "close" }, "bye"
    end
    return inner(req)
  end
end

-- prints "PORT <port> PID <pid> PGID <pgid>" on stdout for the harness
function M.announce(server)
  local stat = assert(io.open("/proc/self/stat")):read("l")
  local pid, pgid = stat:match("^(%d+) %b() %S+ %d+ (%d+)")
  io.stdout:write(string.format("PORT %d PID %s PGID %s\n", server.port, pid, pgid))
  io.stdout:flush()
end

return M
