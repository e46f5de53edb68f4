local h = require "helper"

-- DESIGN.md: an unread request body is drained when what is buffered finishes
-- it, otherwise the connection is closed (never wait for unwanted megabytes).
describe("unread request bodies", function()
  local srv
  setup(function() srv = h.start_server() end)
  teardown(function() if srv then srv:stop() end end)

  it("drains a small Content-Length body and serves the next request", function()
    local sock, r = h.connect(srv)
    finally(function() sock:close() end)
    assert(sock:send(h.req("POST", "/noread", nil, "0123456789") .. h.req("GET", "/hello")))
    local res = assert(r:final_response())
    assert.equal(200, res.status)
    assert.equal("not read", res.body)
    res = assert(r:final_response())
    assert.equal("Hello, World!", res.body)
  end)

  it("drains a small chunked body and serves the next request", function()
    local sock, r = h.connect(srv)
    finally(function() sock:close() end)
    assert(sock:send(h.req("POST", "/noread", { ["transfer-encoding"] = "chunked" },
      h.chunked({ "abc", "def" }, "X-T: 1\r\n")) .. h.req("GET", "/hello")))
    assert.equal("not read", assert(r:final_response()).body)
    assert.equal("Hello, World!", assert(r:final_response()).body)
  end)

  it("answers and closes instead of waiting for a large unread body", function()
    local sock, r = h.connect(srv)
    finally(function() sock:close() end)
    assert(sock:send("POST /noread HTTP/1.1\r\nHost: x\r\nContent-Length: 10485760\r\n\r\n" .. string.rep("a", 1024)))
    local t0 = h.now()
    local res = assert(r:final_response({ timeout = 3 }))
    assert.equal(200, res.status)
    assert.equal("not read", res.body)
    assert.is_true(r:expect_close(3))
    assert.is_true(h.now() - t0 < 2)
  end)

  it("answers and closes instead of waiting for a large unread chunked body", function()
    local sock, r = h.connect(srv)
    finally(function() sock:close() end)
    assert(sock:send("POST /noread HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" ..
      "100000\r\n" .. string.rep("a", 1024)))
    local res = assert(r:final_response({ timeout = 3 }))
    assert.equal(200, res.status)
    assert.is_true(r:expect_close(3))
  end)

  it("is not confused by a body that looks like a request", function()
    local sock, r = h.connect(srv)
    finally(function() sock:close() end)
    local smuggled = h.req("GET", "/status/418")
    assert(sock:send(h.req("POST", "/noread", nil, smuggled) .. h.req("GET", "/hello")))
    assert.equal("not read", assert(r:final_response()).body)
    local res = r:final_response({ timeout = 2 })
    if res then
      assert.equal(200, res.status)
      assert.equal("Hello, World!", res.body)
    else
      assert.is_true(r.closed)
    end
  end)

  it("keeps serving new connections", function()
    local res = assert(h.raw_request(srv.port, h.req("GET", "/hello")))
    assert.equal(200, res.status)
  end)
end)
