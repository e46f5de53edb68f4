local h = require "helper"

-- Issue 3. If the server lacks these options, mark the file pending with:
--   local it = function(name) pending(name .. " (not implemented yet)") end

-- Reads what the server sends until it closes; nil when it stays open.
local function closed_within(r, t)
  local data, how = r:rest(t)
  if how ~= "closed" then return nil end
  return data
end

describe("header_read_timeout", function()
  local srv
  setup(function() srv = h.start_server({ header_read_timeout = 0.2 }) end)
  teardown(function() if srv then srv:stop() end end)

  it("closes a connection whose head is not complete in time", function()
    local sock, r = h.connect(srv)
    finally(function() sock:close() end)
    local t0 = h.now()
    assert(sock:send("GET /hello HTTP/1.1\r\nHost: x\r\n"))
    local data = closed_within(r, 2)
    assert.is_string(data, "connection still open after 2 s")
    assert.is_true(data == "" or data:match("^HTTP/1%.1 408") ~= nil, data)
    assert.is_true(h.now() - t0 >= 0.15)
  end)

  it("cuts off a client dripping a byte at a time", function()
    local sock, r = h.connect(srv)
    finally(function() sock:close() end)
    local msg = "GET /hello HTTP/1.1\r\nHost: x\r\nX-Slow: " .. string.rep("s", 100)
    local t0 = h.now()
    for i = 1, #msg do
      if not sock:send(msg:sub(i, i)) then break end
      if r:fill(0.03) or r.closed then break end
    end
    assert.is_string(closed_within(r, 2))
    assert.is_true(h.now() - t0 < 2)
  end)

  it("does not limit a handler that runs longer than the head timeout", function()
    local res = assert(h.raw_request(srv.port, h.req("GET", "/sleep?s=0.5")))
    assert.equal(200, res.status)
    assert.equal("slept", res.body)
  end)

  it("does not limit a slow request body", function()
    local sock, r = h.connect(srv)
    finally(function() sock:close() end)
    assert(sock:send("POST /sink HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\n"))
    for i = 1, 4 do
      h.sleep(0.1)
      assert(sock:send("b"))
    end
    local res = assert(r:final_response())
    assert.equal(200, res.status)
    assert.equal("4", res.body)
  end)

  it("keeps answering a normal client while 200 slowloris connections drip", function()
    local lorises = {}
    finally(function() for _, c in ipairs(lorises) do c.sock:close() end end)
    for i = 1, 200 do
      local sock, r = h.connect(srv)
      assert(sock, r)
      sock:send("GET /hello HTTP/1.1\r\nHost: x\r\n")
      lorises[i] = { sock = sock, r = r }
    end
    local deadline = h.now() + 0.8
    while h.now() < deadline do
      for _, c in ipairs(lorises) do
        c.sock:settimeout(0)
        c.sock:send("X: y\r\n")
        c.sock:settimeout(h.TEST_TIMEOUT)
      end
      local t0 = h.now()
      local res = assert(h.raw_request(srv.port, h.req("GET", "/hello")))
      assert.equal(200, res.status)
      assert.is_true(h.now() - t0 < 0.5, "normal request took " .. (h.now() - t0))
      h.sleep(0.05)
    end
    local open = 0
    for _, c in ipairs(lorises) do
      if not closed_within(c.r, 0.5) then open = open + 1 end
    end
    assert.equal(0, open)
  end)
end)

describe("idle_timeout", function()
  local srv
  setup(function() srv = h.start_server({ idle_timeout = 0.3 }) end)
  teardown(function() if srv then srv:stop() end end)

  it("closes a keep-alive connection idle for longer than the timeout", function()
    local sock, r = h.connect(srv)
    finally(function() sock:close() end)
    assert(sock:send(h.req("GET", "/hello")))
    assert.equal(200, assert(r:final_response()).status)
    local t0 = h.now()
    assert.is_true(r:expect_close(2))
    local waited = h.now() - t0
    assert.is_true(waited >= 0.2 and waited < 1.5, "closed after " .. waited)
  end)

  it("closes 100 idle connections, whether they still doze or sleep", function()
    -- past 64 idle connections the oldest give back their message state;
    -- the idle deadline holds for both kinds
    local conns = {}
    finally(function() for _, c in ipairs(conns) do c.sock:close() end end)
    for i = 1, 100 do
      local sock, r = assert(h.connect(srv))
      conns[i] = { sock = sock, r = r }
      assert(sock:send(h.req("GET", "/hello")))
      assert.equal(200, assert(r:final_response()).status)
    end
    for i, c in ipairs(conns) do
      assert.is_true(c.r:expect_close(2), "connection " .. i .. " still open")
    end
  end)

  it("keeps a connection that stays busy", function()
    -- gaps well under the timeout (a loaded machine delays the answers),
    -- adding up to more than twice the timeout
    local busy = h.start_server({ idle_timeout = 1 })
    local sock, r
    -- one finally: busted keeps only the last one given
    finally(function()
      if sock then sock:close() end
      busy:stop()
    end)
    sock, r = h.connect(busy)
    for _ = 1, 6 do
      assert(sock:send(h.req("GET", "/hello")))
      assert.equal(200, assert(r:final_response()).status)
      h.sleep(0.4)
    end
  end)

  it("does not count a running handler as idle time", function()
    local sock, r = h.connect(srv)
    finally(function() sock:close() end)
    assert(sock:send(h.req("GET", "/sleep?s=0.6")))
    local res = assert(r:final_response())
    assert.equal(200, res.status)
    assert.equal("slept", res.body)
  end)

  it("does not count a slow response download as idle time", function()
    local sock, r = h.connect(srv)
    finally(function() sock:close() end)
    assert(sock:send(h.req("GET", "/stream?n=300000&delay=0.1")))
    local res = assert(r:final_response())
    assert.is_true(res.complete)
    assert.equal(300000, #res.body)
  end)
end)
