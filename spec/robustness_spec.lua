local h = require "helper"

describe("robustness", function()
  local srv
  setup(function() srv = h.start_server() end)
  teardown(function() if srv then srv:stop() end end)

  it("ignores SIGPIPE once loaded, so a write to a peer that is gone costs an EPIPE, not the process", function()
    -- LuaSocket in this process ignores SIGPIPE and children inherit that:
    -- start from the default disposition to see what lhyper itself does
    local script = [[
      local function ignored()
        local f = io.open("/proc/self/status"); local s = f:read("a"); f:close()
        local mask = s:match("SigIgn:%s*(%x+)")
        return tonumber(mask:sub(-4, -4), 16) & 1 == 1
      end
      io.write(tostring(ignored()), " ")
      require "lhyper"
      io.write(tostring(ignored()))
    ]]
    local cmd = string.format("cd %s && env --default-signal=PIPE LUA_PATH=%s LUA_CPATH=%s %s%s -e %s 2>&1",
      h.shell_quote(h.ROOT), h.shell_quote(h.LUA_PATH), h.shell_quote(h.LUA_CPATH), h.PRELOAD_ENV, h.LUA,
      h.shell_quote(script))
    local p = io.popen(cmd)
    local out = p:read("a")
    p:close()
    assert.equal("false true", out)
  end)

  it("survives clients that reset the connection while a response is written", function()
    for _ = 1, 20 do
      local sock = assert(h.connect(srv))
      -- a big streamed response, read a little of, then a close with unread
      -- data (the kernel answers the server's next write with RST/EPIPE)
      assert(sock:send(h.req("GET", "/stream?n=8388608")))
      sock:settimeout(2)
      assert(sock:receive(1000))
      sock:setoption("linger", { on = true, timeout = 0 })
      sock:close()
    end
    h.sleep(0.2)
    assert.is_true(srv:alive(), "the server died")
    local res = assert(h.raw_request(srv.port, h.req("GET", "/hello")))
    assert.equal(200, res.status)
  end)

  it("survives a burst of connections that close before sending anything", function()
    for _ = 1, 100 do
      local sock = assert(h.connect(srv))
      sock:close()
    end
    local res = assert(h.raw_request(srv.port, h.req("GET", "/hello")))
    assert.equal(200, res.status)
  end)
end)
