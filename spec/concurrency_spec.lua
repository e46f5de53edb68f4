local h = require "helper"
local socket = require "socket"

describe("concurrency", function()
  local srv
  setup(function() srv = h.start_server() end)
  teardown(function() if srv then srv:stop() end end)

  local function open_many(n)
    local conns = {}
    finally(function() for _, c in ipairs(conns) do c.sock:close() end end)
    for i = 1, n do
      local sock, r = h.connect(srv)
      assert(sock, r)
      conns[i] = { sock = sock, r = r }
    end
    return conns
  end

  it("answers 50 connections open at the same time", function()
    local conns = open_many(50)
    for i, c in ipairs(conns) do assert(c.sock:send(h.req("GET", "/info?seq=" .. i))) end
    for i, c in ipairs(conns) do
      local res = assert(c.r:final_response())
      assert.equal(200, res.status)
      assert.equal(tostring(i), res.headers.get("x-seq"))
    end
  end)

  it("keeps 200 idle keep-alive connections usable, dozing or asleep", function()
    -- an idle connection keeps its message state while few others are idle
    -- (64 per server) and gives it back after: both kinds must serve again
    local conns = open_many(200)
    for round = 1, 3 do
      for i, c in ipairs(conns) do
        assert(c.sock:send(h.req("POST", "/echo?seq=" .. i, nil, ("r%d c%d"):format(round, i))))
        local res = assert(c.r:final_response())
        assert.equal(200, res.status)
        assert.equal(("r%d c%d"):format(round, i), res.body)
      end
      -- next round in another order: the oldest idle ones were put to sleep
      local n = #conns
      for i = 1, n // 2 do conns[i], conns[n + 1 - i] = conns[n + 1 - i], conns[i] end
    end
  end)

  it("runs 50 sleeping handlers concurrently", function()
    local conns = open_many(50)
    local t0 = h.now()
    for _, c in ipairs(conns) do assert(c.sock:send(h.req("GET", "/sleep?s=0.3"))) end
    for _, c in ipairs(conns) do
      local res = assert(c.r:final_response())
      assert.equal(200, res.status)
      assert.equal("slept", res.body)
    end
    local elapsed = h.now() - t0
    assert.is_true(elapsed >= 0.29, "too fast: " .. elapsed)
    assert.is_true(elapsed < 2, "handlers did not overlap: " .. elapsed)
  end)

  it("serves a fast client while another streams a large body slowly", function()
    local slow, r = h.connect(srv)
    finally(function() slow:close() end)
    assert(slow:send(h.req("GET", "/stream?n=" .. 64 * 1024 * 1024)))
    -- the slow client reads nothing; others must still be served promptly
    for _ = 1, 5 do
      local t0 = h.now()
      local res = assert(h.raw_request(srv.port, h.req("GET", "/hello")))
      assert.equal(200, res.status)
      assert.is_true(h.now() - t0 < 1)
    end
    assert.truthy(r:line())
  end)

  it("does not let one pipelining client starve another", function()
    local a, ra = h.connect(srv)
    finally(function() a:close() end)
    local batch = {}
    for i = 1, 500 do batch[i] = h.req("GET", "/hello") end
    a:settimeout(0)
    local data = table.concat(batch)
    local sent = a:send(data) -- may be partial; that is fine
    a:settimeout(h.TEST_TIMEOUT)
    local t0 = h.now()
    local res = assert(h.raw_request(srv.port, h.req("GET", "/hello")))
    assert.equal(200, res.status)
    assert.is_true(h.now() - t0 < 1)
    assert.truthy(sent == nil or sent > 0)
    assert.equal(200, assert(ra:final_response()).status)
  end)

  it("survives 100 connections that open and close without a request", function()
    for _ = 1, 100 do
      local s = assert(h.connect(srv))
      s:close()
    end
    socket.sleep(0.05)
    local res = assert(h.raw_request(srv.port, h.req("GET", "/hello")))
    assert.equal(200, res.status)
  end)
end)

describe("tasks and time", function()
  local srv
  setup(function() srv = h.start_server() end)
  teardown(function() if srv then srv:stop() end end)

  it("lhyper.sleep suspends only the handler for about the time asked", function()
    local t0 = h.now()
    local res = assert(h.raw_request(srv.port, h.req("GET", "/sleep?s=0.2")))
    local elapsed = h.now() - t0
    assert.equal(200, res.status)
    assert.is_true(elapsed >= 0.19 and elapsed < 1.5, "elapsed " .. elapsed)
    local inner = tonumber(res.headers.get("x-elapsed"))
    assert.is_true(inner >= 0.19 and inner < 1.5, "lhyper.now() measured " .. tostring(inner))
  end)

  it("lhyper.now advances across a sleep", function()
    local res = assert(h.raw_request(srv.port, h.req("GET", "/now")))
    local d = tonumber(res.body)
    assert.is_true(d >= 0.045 and d < 1, res.body)
  end)

  it("lhyper.spawn runs a task with its arguments", function()
    local res = assert(h.raw_request(srv.port, h.req("GET", "/spawn?key=t1")))
    assert.equal(200, res.status)
    assert.equal("left+right", res.body)
  end)
end)
