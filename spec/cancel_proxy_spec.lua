-- Issue 18, item 2: cancellation reaches what a handler opened. A client
-- that aborts a download through examples/proxy.lua must take the upstream
-- exchange with it at once: no upstream connection left ESTABLISHED (they
-- were, until the garbage collector ran), and the upstream handler, blocked
-- on backpressure, unblocked and cancelled.
local h = require "helper"
local up = require "upstreams"

local established, wait_for = h.established, h.wait_for

describe("cancellation through examples/proxy.lua", function()
  if not h.run("command -v ss"):find("ss") then
    pending("ss (iproute2) is needed")
    return
  end
  local upstream, proxy
  setup(function()
    upstream = h.start_server()
    proxy = up.lua_script("examples/proxy.lua", "0 http://127.0.0.1:" .. upstream.port)
  end)
  teardown(function()
    if proxy then proxy:stop() end
    if upstream then upstream:stop() end
  end)

  local function record(k) return h.record(upstream.port, k) or {} end

  it("closes the upstream connection of each aborted download and unblocks the upstream handler", function()
    local base = established(upstream.port)
    local socks = {}
    for i = 1, 5 do
      local sock, r = h.connect(proxy.port)
      assert(sock:send(h.req("GET", "/deadconn?mode=stream&key=abort" .. i)))
      -- some of the body arrived: the upstream handler streams through the proxy
      assert.is_true(r:fill(3), "no response started")
      socks[i] = sock
    end
    -- nobody reads: every buffer on the way fills, the proxy stops pulling
    -- the upstream body and the upstream handler waits on backpressure
    h.sleep(1)
    for _, sock in ipairs(socks) do sock:close() end
    local n, ok = wait_for(function() return established(upstream.port) end,
      function(v) return v <= base end)
    assert.is_true(ok, n .. " connections to the upstream still established (" .. base .. " before)")
    for i = 1, 5 do
      local rec, done = wait_for(function() return record("abort" .. i) end,
        function(x) return x.opened ~= nil and x.opened == x.closed end)
      assert.is_true(done, "upstream handler " .. i .. " still blocked: " .. h.serialize(rec))
      assert.equal("false", rec.handler_done)
      assert.equal("true", rec.guard_closed)
    end
  end)

  it("cancels an upstream request still waiting for its response head", function()
    local base = established(upstream.port)
    local sock = assert(h.connect(proxy.port))
    assert(sock:send(h.req("GET", "/sleep?s=30")))
    h.sleep(0.2)
    assert.equal(base + 2, established(upstream.port))
    sock:close()
    local n, ok = wait_for(function() return established(upstream.port) end,
      function(v) return v <= base end)
    assert.is_true(ok, n .. " connections to the upstream still established")
  end)

  it("still proxies complete downloads", function()
    local res = assert(h.raw_request(proxy.port, h.req("GET", "/stream?n=300000")))
    assert.equal(200, res.status)
    assert.equal(300000, #res.body)
  end)
end)
