local h = require "helper"

-- Issue 3. If the server lacks these options, mark the file pending with:
--   local it = function(name) pending(name .. " (not implemented yet)") end

describe("max_connections", function()
  local srv
  setup(function() srv = h.start_server({ max_connections = 2 }) end)
  teardown(function() if srv then srv:stop() end end)

  it("stops accepting above the limit and resumes below it, losing nothing", function()
    local a, ra = h.connect(srv)
    local b, rb = h.connect(srv)
    local c, rc = h.connect(srv) -- the kernel completes the handshake; the server must not accept
    finally(function() a:close(); b:close(); c:close() end)
    assert(a:send(h.req("GET", "/hello")))
    assert.equal(200, assert(ra:final_response()).status)
    assert(b:send(h.req("GET", "/hello")))
    assert.equal(200, assert(rb:final_response()).status)
    assert(c:send(h.req("GET", "/info?seq=c")))
    assert.is_true(rc:quiet(0.3), "a third connection was served above max_connections")
    a:close()
    local res = assert(rc:final_response({ timeout = 3 }))
    assert.equal(200, res.status)
    assert.equal("c", res.headers.get("x-seq"))
  end)

  it("serves many short connections one after another", function()
    for _ = 1, 20 do
      local res = assert(h.raw_request(srv.port, h.req("GET", "/hello", { connection = "close" })))
      assert.equal(200, res.status)
    end
  end)
end)

describe("max_in_flight", function()
  local srv
  setup(function() srv = h.start_server({ max_in_flight = 2 }) end)
  teardown(function() if srv then srv:stop() end end)

  it("runs at most 2 handlers at once and answers all 10 slow requests", function()
    local conns = {}
    finally(function() for _, c in ipairs(conns) do c.sock:close() end end)
    for i = 1, 10 do
      local sock, r = h.connect(srv)
      assert(sock, r)
      conns[i] = { sock = sock, r = r }
    end
    local t0 = h.now()
    for _, c in ipairs(conns) do assert(c.sock:send(h.req("GET", "/inflight?s=0.2"))) end
    for i, c in ipairs(conns) do
      local res = assert(c.r:final_response({ timeout = 5 }))
      assert.equal(200, res.status, "request " .. i)
      assert.equal("done", res.body)
    end
    local elapsed = h.now() - t0
    local res = assert(h.raw_request(srv.port, h.req("GET", "/inflight/max")))
    assert.equal("2", res.body)
    assert.is_true(elapsed >= 0.95, "10 x 0.2 s with 2 at a time took only " .. elapsed)
  end)

  it("holds pipelined requests back too", function()
    local sock, r = h.connect(srv)
    local other, ro = h.connect(srv)
    finally(function() sock:close(); other:close() end)
    assert(sock:send(h.req("GET", "/inflight?s=0.2") .. h.req("GET", "/inflight?s=0.2")))
    assert(other:send(h.req("GET", "/inflight?s=0.2") .. h.req("GET", "/inflight?s=0.2")))
    for _ = 1, 2 do
      assert.equal(200, assert(r:final_response()).status)
      assert.equal(200, assert(ro:final_response()).status)
    end
    local res = assert(h.raw_request(srv.port, h.req("GET", "/inflight/max")))
    assert.is_true(tonumber(res.body) <= 2, res.body)
  end)
end)
