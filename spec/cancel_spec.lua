local h = require "helper"

-- Issue 3. If the server lacks cancellation, mark the file pending with:
--   local it = function(name) pending(name .. " (not implemented yet)") end

describe("handler cancellation", function()
  local srv
  setup(function() srv = h.start_server() end)
  teardown(function() if srv then srv:stop() end end)

  local function cancelled_count()
    local res = assert(h.raw_request(srv.port, h.req("GET", "/cancelled")))
    return tonumber(res.body)
  end

  it("closes the coroutine of a handler whose client went away, running <close>", function()
    local before = cancelled_count()
    local sock = assert(h.connect(srv))
    assert(sock:send(h.req("GET", "/cancel")))
    h.sleep(0.1)
    sock:close()
    local deadline = h.now() + 2
    local n = before
    while h.now() < deadline do
      n = cancelled_count()
      if n > before then break end
      h.sleep(0.05)
    end
    assert.equal(before + 1, n)
  end)

  it("stops pulling the response iterator of a client that went away", function()
    local sock = assert(h.connect(srv))
    assert(sock:send(h.req("GET", "/stream?n=" .. 512 * 1024 * 1024)))
    h.sleep(0.1)
    sock:close()
    h.sleep(0.3)
    local cpu0 = h.cpu_ticks(srv.pid)
    h.sleep(0.3)
    local cpu1 = h.cpu_ticks(srv.pid)
    -- clock ticks (usually 100/s): an idle server uses next to none
    assert.is_true(cpu1 - cpu0 < 10, "server still busy after the client left")
    local res = assert(h.raw_request(srv.port, h.req("GET", "/hello")))
    assert.equal(200, res.status)
  end)
end)
