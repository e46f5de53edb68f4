local h = require "helper"

-- Issue 3. If the server lacks server:close(grace), mark the file pending with:
--   local it = function(name) pending(name .. " (not implemented yet)") end

describe("server:close(grace)", function()
  local srv
  before_each(function() srv = h.start_server() end)
  after_each(function() if srv then srv:stop() end end)

  it("closes idle connections, finishes running requests with Connection: close, then exits", function()
    local idle, ri = h.connect(srv)
    local busy, rb = h.connect(srv)
    finally(function() idle:close(); busy:close() end)
    assert(idle:send(h.req("GET", "/hello")))
    assert.equal(200, assert(ri:final_response()).status)
    assert(busy:send(h.req("GET", "/sleep?s=0.5")))
    h.sleep(0.05)

    local res = assert(h.raw_request(srv.port, h.req("GET", "/shutdown?grace=5")))
    assert.equal(200, res.status)
    assert.equal("closing", res.body)

    assert.is_true(ri:expect_close(1), "idle connection was not closed")
    res = assert(rb:final_response({ timeout = 3 }))
    assert.equal(200, res.status)
    assert.equal("slept", res.body)
    assert.equal("close", (res.headers.get("connection") or ""):lower())
    assert.is_true(rb:expect_close(1))
    assert.is_true(srv:wait_exit(2), "lhyper.run() did not return once nothing was left")
  end)

  it("stops accepting new connections at once", function()
    local busy, rb = h.connect(srv)
    finally(function() busy:close() end)
    assert(busy:send(h.req("GET", "/sleep?s=0.5")))
    assert.equal(200, assert(h.raw_request(srv.port, h.req("GET", "/shutdown?grace=5"))).status)
    h.sleep(0.1)
    local sock, err = h.connect(srv)
    if sock then
      -- connected in the backlog race: it must not be served
      local r = h.reader(sock)
      sock:send(h.req("GET", "/hello"))
      local res = r:final_response({ timeout = 1 })
      sock:close()
      assert.is_nil(res)
    else
      -- refused, or reset when the attempt sat in the backlog as the listener closed
      assert.is_true(err == "connection refused" or err == "closed", err)
    end
    assert.equal(200, assert(rb:final_response({ timeout = 3 })).status)
  end)

  it("gives a connection that never sent a byte only a short window", function()
    local silent, rs = h.connect(srv)
    finally(function() silent:close() end)
    h.sleep(0.05)
    local t0 = h.now()
    assert.equal(200, assert(h.raw_request(srv.port, h.req("GET", "/shutdown?grace=5"))).status)
    local data, how = rs:rest(4)
    assert.equal("closed", how)
    assert.is_true(data == "" or data:match("^HTTP/1%.1 [45]%d%d") ~= nil, data)
    assert.is_true(srv:wait_exit(1))
    assert.is_true(h.now() - t0 < 4.5, "waited for the whole grace period")
  end)

  it("forces connections closed after the grace period", function()
    local busy, rb = h.connect(srv)
    finally(function() busy:close() end)
    assert(busy:send(h.req("GET", "/sleep?s=10")))
    h.sleep(0.05)
    local t0 = h.now()
    assert.equal(200, assert(h.raw_request(srv.port, h.req("GET", "/shutdown?grace=0.3"))).status)
    local data, how = rb:rest(3)
    assert.equal("closed", how)
    assert.falsy(data:find("slept", 1, true))
    assert.is_true(h.now() - t0 < 2)
    assert.is_true(srv:wait_exit(2))
  end)
end)
