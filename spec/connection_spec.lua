local h = require "helper"

describe("connection management", function()
  local srv
  setup(function() srv = h.start_server() end)
  teardown(function() if srv then srv:stop() end end)

  it("keeps an HTTP/1.1 connection open by default", function()
    local sock, r = h.connect(srv)
    finally(function() sock:close() end)
    for i = 1, 3 do
      assert(sock:send(h.req("GET", "/hello")))
      local res = assert(r:final_response())
      assert.equal(200, res.status, "request " .. i)
      assert.equal("Hello, World!", res.body)
    end
    assert.is_true(r:quiet(0.2))
  end)

  it("closes after the response when the client sends Connection: close", function()
    local sock, r = h.connect(srv)
    finally(function() sock:close() end)
    assert(sock:send(h.req("GET", "/hello", { connection = "close" })))
    local res = assert(r:final_response())
    assert.equal(200, res.status)
    assert.equal("Hello, World!", res.body)
    assert.is_true(r:expect_close())
  end)

  it("honours close among several Connection tokens", function()
    local sock, r = h.connect(srv)
    finally(function() sock:close() end)
    assert(sock:send(h.req("GET", "/hello", { connection = "foo, Close" })))
    assert.equal(200, assert(r:final_response()).status)
    assert.is_true(r:expect_close())
  end)

  it("does not answer a request pipelined after Connection: close", function()
    local sock, r = h.connect(srv)
    finally(function() sock:close() end)
    assert(sock:send(h.req("GET", "/hello", { connection = "close" }) .. h.req("GET", "/info")))
    local res = assert(r:final_response())
    assert.equal("Hello, World!", res.body)
    assert.is_true(r:expect_close())
  end)

  it("closes at once when the client closes an idle connection", function()
    local sock, r = h.connect(srv)
    assert(sock:send(h.req("GET", "/hello")))
    assert.equal(200, assert(r:final_response()).status)
    sock:close()
    -- the server must still serve new connections
    local res = assert(h.raw_request(srv.port, h.req("GET", "/hello")))
    assert.equal(200, res.status)
  end)
end)

describe("keep_alive = false", function()
  local srv
  setup(function() srv = h.start_server({ keep_alive = false }) end)
  teardown(function() if srv then srv:stop() end end)

  it("closes every connection after one response", function()
    local sock, r = h.connect(srv)
    finally(function() sock:close() end)
    assert(sock:send(h.req("GET", "/hello")))
    local res = assert(r:final_response())
    assert.equal(200, res.status)
    assert.equal("Hello, World!", res.body)
    assert.is_true(r:expect_close())
  end)
end)
